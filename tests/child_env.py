"""The environment of a Python child process a test starts."""

from __future__ import annotations

import os
from pathlib import Path


def with_repo_first(repo: Path) -> str:
    """PYTHONPATH with ``repo`` first and the parent's own entries after it: where trainlab's dependencies
    come by PYTHONPATH (a GPU machine without an install), the child still finds them."""
    return os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH", "")]))


def skip_where_compare_spawns(what: str) -> None:
    """Skip the test where compare's workers cannot see ``what`` (a monkeypatch of the test process): compare
    forks its workers, which inherit the patch, but spawns them where CUDA is present (trainlab/compare/pool.py)."""
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip(f"on a CUDA machine compare spawns its workers (trainlab/compare/pool.py), which do not see {what}")
