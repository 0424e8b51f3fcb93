"""``trainlab compare``: validate, plan, run, then write the leaderboard (and the report when available)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainlab.compare.display import Tally
from trainlab.compare.leaderboard import build_leaderboard, print_leaderboard, write_leaderboard
from trainlab.compare.metric_keys import direction_of, parse_target, read_metric
from trainlab.compare.runner import ERROR_FILE, RunPlan, plan_runs, run_plans
from trainlab.compare.strategies import SET_BY_COMPARE, NamedStrategy, load_strategies, validate_strategies
from trainlab.config import Config, apply_overrides, read_yaml
from trainlab.errors import ConfigError, TrainingError, TrainlabError, folder_error
from trainlab.folder_owner import refuse_foreign
from trainlab.records import SUMMARY_NUMBERS, DataTasks, recorded_keys
from trainlab.registry import code_references, did_you_mean, trusting_runs
from trainlab.run_lock import RunLock
from trainlab.yaml_files import load_yaml_file

DEFAULT_METRIC = "test_accuracy"  # the CLI's --metric default


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
            jobs: int = 2, target: str | None = None, metric: str = DEFAULT_METRIC,
            direction: str | None = None, live: bool | None = None, quiet: bool = False,
            wait: bool = False) -> dict[str, Any]:
    """Run (or finish) a comparison in ``out`` and return its leaderboard (also written to disk).

    ``out`` is locked for the whole comparison: another comparison writing it is refused, or with
    ``wait`` waited for (tune workers sharing a study refit into one folder: the later finds the runs done).

    Before any run: the options, every strategy on every base (:func:`validate_strategies`), and
    that every run will record ``metric`` and the target's metric (:func:`check_recorded`); each
    refusal is one ConfigError. Failed runs are in the leaderboard with their reasons, never raised.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1; got {seeds}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1; got {jobs}")
    if direction not in (None, "min", "max"):
        raise ConfigError(f"--direction must be 'min' or 'max'; got {direction!r}")
    refuse_foreign(Path(out), "compare", own=("leaderboard.json",))
    parsed_target = parse_target(target)
    configs = validate_strategies(bases, strategies)  # before any run: a bad strategy costs nothing
    check_recorded(configs, metric, parsed_target["metric"] if parsed_target else None)
    direction = direction or direction_of(metric)
    plans = plan_runs(bases, strategies, list(range(seeds)), Path(out))
    tally = Tally(task=plans[0].task, total=len(plans), metric=metric, direction=direction, read_metric=read_metric)
    with comparison_lock(Path(out), wait):  # a second compare into the same folder would race for its runs
        run_plans(plans, jobs, tally, live=live)
        board = build_leaderboard(plans, metric, direction, parsed_target)
        write_leaderboard(board, Path(out))
        if not quiet:
            print_leaderboard(board)
        report = write_report_if_available(plans, Path(out))
    if report is not None and not quiet:
        print(f"report: {report}")
    if not quiet:
        print(f"leaderboard: {Path(out) / 'leaderboard.json'}, {Path(out) / 'leaderboard.csv'}")
    check_metric_found(board, metric)
    return board


@contextmanager
def comparison_lock(out: Path, wait: bool = False) -> Iterator[None]:
    """``out/.lock`` held for the whole comparison: a second ``compare`` into ``out`` is refused in one
    line naming the process, instead of both racing for the same runs (each run's own lock would then
    fail the loser's runs with error records the winner's finished runs keep)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(f"cannot create the comparison folder {out}", exc) from None
    lock = RunLock(out, what="comparison folder")
    lock.acquire(wait)
    try:
        yield
    finally:
        lock.release()


def check_metric_found(board: dict[str, Any], metric: str) -> None:
    """After the runs: finished runs none of which has ``metric`` in its summary (an empty test or
    validation split records no test_/val_ keys) are a usage error naming the keys they have."""
    available: set[str] = set()
    found = False
    for table in board["tasks"].values():
        for entry in table["strategies"]:
            available.update(k for k, v in entry["metrics"].items() if v["values"])
            found = found or bool(entry["metrics"].get(metric, {}).get("values"))
    if available and not found:
        names = sorted(available)
        raise ConfigError(f"--metric '{metric}' is in none of the finished runs' summaries (is its split empty?)"
                          f"{did_you_mean(metric, names)} (they have: {', '.join(names)})")


def check_recorded(configs: dict[tuple[str, str], Config], metric: str, target_metric: str | None) -> None:
    """Before any run: every run records ``metric`` (``--metric``) and ``target_metric`` (``--target``'s).

    ``configs`` by ``(task, strategy)`` as :func:`validate_strategies` returns them. A config that
    lists no ``metrics`` and sets no ``data.task`` has its data read (as its runs will read it, once
    per data section) for the task, only when the key is not a loss or a summary number. Raises
    ConfigError naming the flag, the key and the task (the strategy too, where only some of the
    task's strategies lack it), with a did-you-mean and the keys that are recorded.
    """
    tasks = DataTasks()

    def keys_of(config: Config) -> list[str]:
        return recorded_keys(config, config.data.task if config.metrics else tasks(config))

    always = {"test_loss", "val_loss", *SUMMARY_NUMBERS}
    for flag, wanted in (("--metric", metric), ("--target", target_metric)):
        if wanted is None or wanted in always:
            continue
        for task in dict.fromkeys(task for task, _ in configs):
            own = {strategy: keys_of(config) for (t, strategy), config in configs.items() if t == task}
            if flag == "--target":
                own = {strategy: [k for k in keys if k.startswith("val_")] for strategy, keys in own.items()}
            missing = [strategy for strategy, keys in own.items() if wanted not in keys]
            if not missing:
                continue
            keys = own[missing[0]]
            where = (f"the runs of task '{task}'" if len(missing) == len(own)
                     else f"strategy '{missing[0]}' on task '{task}'")
            hint = (f"; {DEFAULT_METRIC} is --metric's default: pass --metric with one of these"
                    if flag == "--metric" and wanted == DEFAULT_METRIC else "")
            raise ConfigError(f"{flag} '{wanted}' is not recorded by {where}{did_you_mean(wanted, keys)} "
                              f"(recorded: {', '.join(keys)}){hint}")


def no_run_finished(board: dict[str, Any], out: Path) -> str | None:
    """The error line for a comparison where not one run finished (None when one did)."""
    entries = [e for table in board["tasks"].values() for e in table["strategies"]]
    if any(e["runs"] for e in entries):
        return None
    failed = sum(e["failed"] for e in entries)
    return (f"no run finished: {failed} of {failed + sum(e['missing'] for e in entries)} runs failed; the "
            f"reasons are under 'failures' in {out / 'leaderboard.json'} (and in each run folder's "
            f"{ERROR_FILE} or summary.json)")


def own_runs(plans: list[RunPlan]) -> list[Path]:
    """The planned run folders whose config.yaml names no ``module:attr`` code beyond what the plan's
    config (the user's base with the strategy) names; a folder whose config cannot be read is left out."""
    own = []
    for plan in plans:
        try:
            stored = load_yaml_file(plan.path / "config.yaml", follow_links=False)
        except (TrainlabError, OSError):
            continue
        if code_references(stored) <= code_references(plan.raw):
            own.append(plan.path)
    return own


def write_report_if_available(plans: list[RunPlan], out: Path) -> Path | None:
    """``DIR/report.html`` through trainlab.report when that module is installed."""
    try:
        from trainlab.report import write_report
    except ImportError:
        return None
    try:
        with trusting_runs(own_runs(plans)):  # their module:attr models are the user's own: no --allow-code
            # its runs' damaged metrics lines were named as the leaderboard read them (compare.run_record)
            return write_report([out], out / "report.html", warn_damaged_metrics=False)
    except Exception as exc:  # noqa: BLE001 - the leaderboard is written; a report failure must not hide it
        import sys

        print(f"warning: report.html not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def compare_files(base_paths: Sequence[str], strategies_path: str, out: str | None = None,
                  overrides: Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """``compare`` on config files; ``overrides`` (``--set KEY=VALUE``) change every base before the strategies.

    Raises TrainingError (exit 4), once the leaderboard is written, when not one run finished.
    """
    for text in overrides:
        key = text.partition("=")[0].strip()
        if key in SET_BY_COMPARE:
            raise ConfigError(f"--set {text}: compare sets '{key}' for every run: {SET_BY_COMPARE[key]}")
    bases = dict(zip(task_names(base_paths), (apply_overrides(read_yaml(p), list(overrides)) for p in base_paths),
                     strict=True))
    strategies = load_strategies(strategies_path)
    folder = Path(out) if out else default_out(strategies_path)
    board = compare(bases, strategies, folder, **options)
    error = no_run_finished(board, folder)
    if error:
        raise TrainingError(error)
    return board
