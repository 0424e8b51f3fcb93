"""``--refit-seeds K``: rerun the tuned config and the base config with K seeds through ``trainlab compare``.

Tuning picks the best of many noisy runs, so its winner's validation score is
biased upward; rerunning both configs over fresh seeds, scored on the test
split, says whether the tuned strategy is really better than the base. The
comparison (runs, statistics, leaderboard) belongs to :mod:`trainlab.compare`;
this module only calls it with two strategies: ``tuned`` (the best trial's
values, i.e. best.yaml) and ``base`` (no change). When the best trial is the
base config itself (:func:`best_is_base`), the two would be the same runs, and
their paired test a certain "indistinguishable p=1": the base config alone is
trained over the seeds, the line :data:`BEST_IS_BASE` says so, and the refit's
record holds ``"best_is_base": true``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from trainlab.errors import ConfigError
from trainlab.notices import note
from trainlab.tune.study import TuneSettings

BEST_IS_BASE = ("the best trial is the base config itself: the refit has nothing to compare; trained it over "
                "{seeds} seeds once")


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
    """Compare tuned vs base over ``settings.refit_seeds`` seeds in ``DIR/refit``, ``settings.jobs`` runs at a time
    (no more than the refit's runs: compare shares the cores out by its ``jobs``).

    Returns ``{"metric", "dir", "rows"}``: the leaderboard rows as ``trainlab compare`` writes them
    (leaderboard.csv's columns), numbers as numbers and empty cells as None. When the best trial is the base
    config (:func:`best_is_base`), only ``base`` is trained, :data:`BEST_IS_BASE` is said (not under
    ``quiet``) and the record adds ``"best_is_base": True``. The leaderboard is printed, under ``quiet`` too
    (which hides the line per run): it is the refit's result.
    """
    check_available("; the tune results are written")
    from trainlab.compare import compare
    from trainlab.compare.leaderboard_output import to_csv
    from trainlab.compare.strategies import NamedStrategy

    out = settings.out / "refit"
    metric = "test_" + settings.metric.removeprefix("val_")
    same = best_is_base(settings, best)
    strategies = [NamedStrategy("base", {})] if same else \
        [NamedStrategy("tuned", dict(best["params"])), NamedStrategy("base", {})]  # config values
    if same and not settings.quiet:
        note(BEST_IS_BASE.format(seeds=settings.refit_seeds))
    board = compare({settings.base.stem: settings.base_config()}, strategies, out, seeds=settings.refit_seeds,
                    jobs=min(settings.jobs, len(strategies) * settings.refit_seeds), metric=metric, direction="max" if settings.direction == "maximize" else "min",
                    live=False, quiet=settings.quiet, wait=True,  # workers of one study refit in turn
                    show_leaderboard=True)  # a result: printed under --quiet too, as compare's --quiet prints it
    rows = [{key: _typed(key, text) for key, text in row.items()}
            for row in csv.DictReader(io.StringIO(to_csv(board)))]
    record = {"metric": metric, "dir": str(out.resolve()), "rows": rows}  # absolute, as best.json's run_dir
    return {**record, "best_is_base": True} if same else record


def best_is_base(settings: TuneSettings, best: dict[str, Any]) -> bool:
    """Whether the best trial's values (``best["params"]``) set on the base config, as the refit's ``tuned``
    strategy sets them, give the base config itself: the two resolved configs are equal, an option at its
    factory's default counting as left out (:func:`~trainlab.tune.base_point.settled_config`; hash-equal
    configs are). A config either refuses is no match."""
    from trainlab.compare.strategies import apply_strategy
    from trainlab.tune.base_point import settled_config

    base_raw = settings.base_config()
    base = settled_config(base_raw)
    return base is not None and settled_config(apply_strategy(base_raw, dict(best["params"]))) == base


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
