"""The environment of a Python child process a test starts."""

from __future__ import annotations

import os
import tempfile
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


def iris_on_file(base: dict) -> dict:
    """``base`` reading scikit-learn's iris from an npz file where it names ``source: iris``: the same rows,
    standardized as the iris source does, so the same runs; a trainlab child process then never imports
    scikit-learn, about 1.5 s of CPU at each start (a tune --jobs 2 starts three). One file for every test
    (configs written in two folders stay equal), written once: published by a hard link, which fails where
    another xdist worker published it first, so it is never replaced (its mtime is in the runs' data
    fingerprints) and never read half-written."""
    data = base.get("data") or {}
    if data.get("source") != "iris":
        return base
    path = Path(tempfile.gettempdir()) / f"trainlab-tests-iris-{os.getuid()}.npz"
    if not path.exists():
        import numpy as np
        from sklearn.datasets import load_iris

        iris = load_iris()
        partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(partial, x=iris.data.astype("float32"), y=iris.target)
        try:
            os.link(partial, path)
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return {**base, "data": {**data, "source": "npz", "path": str(path), "standardize": True}}
