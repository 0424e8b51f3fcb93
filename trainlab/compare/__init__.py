"""Compare training strategies over seeds and tasks, with honest statistics.

``stats`` (pure statistics), ``strategies`` (STRATEGIES.yaml), ``runner`` (planning and
running the runs), ``leaderboard`` (reading them back), ``command`` (``trainlab compare``).
"""

from trainlab.compare.command import compare, compare_files

__all__ = ["compare", "compare_files"]
