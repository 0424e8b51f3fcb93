"""``trainlab compare``: validate, plan, run, then write the leaderboard (and the report when available)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.compare.display import Tally
from trainlab.compare.leaderboard import (
    build_leaderboard,
    direction_of,
    parse_target,
    print_leaderboard,
    read_metric,
    write_leaderboard,
)
from trainlab.compare.runner import RunPlan, plan_runs, run_plans
from trainlab.compare.strategies import NamedStrategy, load_strategies, validate_strategies
from trainlab.config import apply_overrides, read_yaml
from trainlab.errors import ConfigError


def task_names(paths: Sequence[str | Path]) -> list[str]:
    """Each base config's file stem; a repeated stem gets ``-2``, ``-3``..."""
    names: list[str] = []
    for path in paths:
        stem = Path(path).stem or "task"
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names


def default_out(strategies_path: str | Path) -> Path:
    """Deterministic, so that the same command finds its runs again: ``runs/compare-<file stem>``."""
    return Path("runs") / f"compare-{Path(strategies_path).stem}"


def compare(bases: dict[str, dict[str, Any]], strategies: list[NamedStrategy], out: Path, seeds: int = 5,
            jobs: int = 2, target: str | None = None, metric: str = "test_accuracy",
            direction: str | None = None, live: bool | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run (or finish) a comparison in ``out`` and return its leaderboard (also written to disk)."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1; got {seeds}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1; got {jobs}")
    if direction not in (None, "min", "max"):
        raise ConfigError(f"--direction must be 'min' or 'max'; got {direction!r}")
    check_metric_name(metric)
    parsed_target = parse_target(target)
    validate_strategies(bases, strategies)  # before any run: a bad strategy costs nothing
    direction = direction or direction_of(metric)
    plans = plan_runs(bases, strategies, list(range(seeds)), Path(out))
    tally = Tally(task=plans[0].task, total=len(plans), metric=metric, direction=direction, read_metric=read_metric)
    run_plans(plans, jobs, tally, live=live)
    board = build_leaderboard(plans, metric, direction, parsed_target)
    _check_metric(board, metric)
    write_leaderboard(board, Path(out))
    if not quiet:
        print_leaderboard(board)
    report = write_report_if_available(plans, Path(out))
    if report is not None and not quiet:
        print(f"report: {report}")
    if not quiet:
        print(f"leaderboard: {Path(out) / 'leaderboard.json'}, {Path(out) / 'leaderboard.csv'}")
    return board


SUMMARY_NUMBERS = ("train_time_s", "samples_per_s", "epochs_run", "steps", "best_epoch")


def check_metric_name(metric: str) -> None:
    """Before any run: a metric key is ``test_<name>``, ``val_<name>`` or a top-level summary number."""
    split, _, name = metric.partition("_")
    if not ((split in ("test", "val") and name) or metric in SUMMARY_NUMBERS):
        from trainlab.registry import did_you_mean

        raise ConfigError(f"--metric must be test_<metric>, val_<metric> or one of {', '.join(SUMMARY_NUMBERS)}"
                          f"{did_you_mean(metric, list(SUMMARY_NUMBERS))}; got '{metric}'")


def _check_metric(board: dict[str, Any], metric: str) -> None:
    """A --metric no finished run has is a usage error naming the keys that exist."""
    available: set[str] = set()
    any_values = False
    for table in board["tasks"].values():
        for entry in table["strategies"]:
            available.update(k for k, v in entry["metrics"].items() if v["values"])
            any_values = any_values or bool(entry["metrics"].get(metric, {}).get("values"))
    if available and not any_values:
        from trainlab.registry import did_you_mean

        names = sorted(available)
        raise ConfigError(f"--metric '{metric}' is not in the runs' summaries{did_you_mean(metric, names)} "
                          f"(available: {', '.join(names)})")


def write_report_if_available(plans: list[RunPlan], out: Path) -> Path | None:
    """``DIR/report.html`` through trainlab.report when that module is installed."""
    try:
        from trainlab.report import write_report
    except ImportError:
        return None
    try:
        return write_report([out], out / "report.html")
    except Exception as exc:  # noqa: BLE001 - the leaderboard is written; a report failure must not hide it
        import sys

        print(f"warning: report.html not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def compare_files(base_paths: Sequence[str], strategies_path: str, out: str | None = None,
                  overrides: Sequence[str] = (), **options: Any):
    """``compare`` on config files; ``overrides`` (``--set KEY=VALUE``) change every base before the strategies."""
    bases = dict(zip(task_names(base_paths), (apply_overrides(read_yaml(p), list(overrides)) for p in base_paths),
                     strict=True))
    strategies = load_strategies(strategies_path)
    return compare(bases, strategies, Path(out) if out else default_out(strategies_path), **options)
