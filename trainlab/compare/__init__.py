"""Compare training strategies over seeds and tasks, with honest statistics.

``stats`` (pure statistics), ``strategies`` (STRATEGIES.yaml), ``runner`` (planning and
running the runs), ``leaderboard`` (reading them back), ``folder_identity`` (the strategies file a
comparison folder belongs to), ``command`` (``trainlab compare``) with ``inputs`` (its arguments checked),
``precheck`` (the run configs checked before any run) and ``outputs`` (what a finished comparison writes).

``compare`` and ``compare_files`` load ``command`` (and torch) on first use, so that importing a
light submodule such as ``metric_keys`` (the report does) costs nothing beyond that submodule.
"""

from typing import Any

__all__ = ["compare", "compare_files"]


def __getattr__(name: str) -> Any:  # PEP 562: the command's import is deferred until it is asked for
    if name in __all__:
        from trainlab.compare import command
        return getattr(command, name)
    raise AttributeError(f"module 'trainlab.compare' has no attribute {name!r}")
