"""trainlab: choose, run, compare and tune training strategies on PyTorch.

``trainlab.fit``, ``trainlab.load_run`` and ``trainlab.Callback`` are imported lazily, so ``trainlab --version``
and the CLI's start-up do not pay for torch until a command needs it.
"""

from __future__ import annotations

from typing import Any

# the "trainlab" logger, which every warning goes through, gets its handler and settings now, at
# `import trainlab`, so that what a user then sets on it (a level, propagate, handlers) stands
from trainlab import notices  # noqa: F401

__version__ = "0.1.0"
__all__ = ["Callback", "FitResult", "LoadedRun", "__version__", "fit", "load_run"]


def __getattr__(name: str) -> Any:
    if name in ("fit", "FitResult"):
        from trainlab import api

        return getattr(api, name)
    if name == "load_run":
        from trainlab.inference import load_run

        return load_run
    if name == "LoadedRun":
        from trainlab.loaded_run import LoadedRun

        return LoadedRun
    if name == "Callback":
        from trainlab.callbacks.base import Callback

        return Callback
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
