"""``--refit-seeds K``: rerun best.yaml and the base config with K seeds through ``trainlab compare``.

Tuning picks the best of many noisy runs, so its winner's score is biased
upward; rerunning both configs over fresh seeds says whether the tuned strategy
is really better than the base. The comparison itself (runs, statistics,
leaderboard) belongs to :mod:`trainlab.compare`; this module only calls it.
"""

from __future__ import annotations

from typing import Any

from trainlab.errors import ConfigError
from trainlab.tune.study import TuneSettings


def refit(settings: TuneSettings, best: dict[str, Any]) -> dict[str, Any]:
    """Compare ``DIR/best.yaml`` with the base config over ``settings.refit_seeds`` seeds into ``DIR/refit``.

    Returns ``{"rows": leaderboard rows, "html": leaderboard HTML or None, "dir": folder}``.
    """
    try:
        from trainlab.compare import compare_configs
    except ImportError:
        raise ConfigError("--refit-seeds needs trainlab.compare (the 'trainlab compare' command), which this "
                          "installation lacks; rerun without --refit-seeds, or compare later with "
                          f"'trainlab compare {settings.out / 'best.yaml'} {settings.base}'") from None
    out = settings.out / "refit"
    result = compare_configs([settings.out / "best.yaml", settings.base], seeds=settings.refit_seeds, out=out,
                             metric=settings.metric, quiet=settings.quiet)
    return {"rows": result.get("rows", []), "html": result.get("html"), "dir": str(out)}
