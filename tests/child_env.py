"""The environment of a Python child process a test starts."""

from __future__ import annotations

import os
from pathlib import Path


def with_repo_first(repo: Path) -> str:
    """PYTHONPATH with ``repo`` first and the parent's own entries after it: where trainlab's dependencies
    come by PYTHONPATH (a GPU machine without an install), the child still finds them."""
    return os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH", "")]))
