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


def _compare_missing(exc: ModuleNotFoundError) -> bool:
    """The module not found is trainlab.compare's own (a package without it), not one it imports: any other
    import failure is raised as it is, its cause named (was said to be a missing trainlab.compare)."""
    return (exc.name or "").startswith("trainlab.compare")


def check_available() -> None:
    """Before any trial: ``--refit-seeds`` without trainlab.compare is a usage error."""
    try:
        import trainlab.compare  # noqa: F401
    except ModuleNotFoundError as exc:
        if not _compare_missing(exc):
            raise
        raise ConfigError("--refit-seeds needs trainlab.compare ('trainlab compare'), which this installation "
                          "lacks; rerun without --refit-seeds") from None


def refit(settings: TuneSettings, best: dict[str, Any]) -> dict[str, Any]:
    """Compare tuned vs base over ``settings.refit_seeds`` seeds in ``DIR/refit``.

    Returns ``{"metric", "dir", "rows"}``: the leaderboard rows as ``trainlab compare`` writes them
    (leaderboard.csv's columns), numbers as numbers and empty cells as None.
    """
    try:
        from trainlab.compare import compare
        from trainlab.compare.leaderboard import to_csv
        from trainlab.compare.strategies import NamedStrategy
    except ModuleNotFoundError as exc:
        if not _compare_missing(exc):
            raise
        raise ConfigError("--refit-seeds needs trainlab.compare ('trainlab compare'), which this installation "
                          "lacks; the tune results are written; rerun without --refit-seeds") from None
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
