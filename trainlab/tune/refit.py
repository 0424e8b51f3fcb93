"""``--refit-seeds K``: rerun the tuned config and the base config with K seeds through ``trainlab compare``.

Tuning picks the best of many noisy runs, so its winner's validation score is
biased upward; rerunning both configs over fresh seeds, scored on the test
split, says whether the tuned strategy is really better than the base. The
comparison (runs, statistics, leaderboard) belongs to :mod:`trainlab.compare`;
this module only calls it with two strategies: ``tuned`` (the best trial's
values, i.e. best.yaml) and ``base`` (no change).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from trainlab.errors import ConfigError
from trainlab.tune.study import TuneSettings


def check_available(written: str = "") -> None:
    """Before any trial (and again before the refit, ``written`` then saying the results are): ``--refit-seeds``
    without trainlab.compare is a usage error. Only the package's own absence: an import failure inside it
    is raised as it is, its cause named."""
    try:
        import trainlab.compare  # noqa: F401
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("trainlab.compare"):
            raise
        raise ConfigError(f"--refit-seeds needs trainlab.compare ('trainlab compare'), which this installation "
                          f"lacks{written}; rerun without --refit-seeds") from None


def refit(settings: TuneSettings, best: dict[str, Any]) -> dict[str, Any]:
    """Compare tuned vs base over ``settings.refit_seeds`` seeds in ``DIR/refit``.

    Returns ``{"metric", "dir", "rows"}``: the leaderboard rows as ``trainlab compare`` writes them
    (leaderboard.csv's columns), numbers as numbers and empty cells as None.
    """
    check_available("; the tune results are written")
    from trainlab.compare import compare
    from trainlab.compare.leaderboard import to_csv
    from trainlab.compare.strategies import NamedStrategy

    out = settings.out / "refit"
    metric = "test_" + settings.metric.removeprefix("val_")
    strategies = [NamedStrategy("tuned", dict(best["params"])), NamedStrategy("base", {})]  # config values
    board = compare({settings.base.stem: settings.base_config()}, strategies, out, seeds=settings.refit_seeds,
                    jobs=1, metric=metric, direction="max" if settings.direction == "maximize" else "min",
                    live=False, quiet=settings.quiet, wait=True)  # workers of one study refit in turn
    rows = [{key: _typed(key, text) for key, text in row.items()}
            for row in csv.DictReader(io.StringIO(to_csv(board)))]
    return {"metric": metric, "dir": str(out.resolve()), "rows": rows}  # absolute, as best.json's run_dir


TEXT_COLUMNS = ("task", "strategy", "test", "verdict")  # leaderboard.csv's columns that stay text


def _typed(column: str, text: str) -> Any:
    """A leaderboard.csv cell as the value it was written from: None, bool, int, float or text."""
    if text == "":
        return None
    if column in TEXT_COLUMNS:
        return text
    if text in ("True", "False"):
        return text == "True"
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text
