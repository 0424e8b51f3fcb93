"""``trainlab compare``: validate, plan, run, then write the leaderboard (and the report when available)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from trainlab import arguments
from trainlab.code_policy import (
    CodePolicy,
    allow_local_modules,
    code_references,
    current_policy,
    own_folder_policy,
    using_policy,
)
from trainlab.compare.display import Tally
from trainlab.compare.folder_identity import (
    ComparisonSource,
    mark_retraining,
    record_source,
    refuse_other_source,
)
from trainlab.compare.inputs import (
    check_bases,
    check_flags,
    check_folders,
    check_overrides_reach_runs,
    check_task_names,
    compare_direction,
    default_out,
    named,
    overridden,
    paths_argument,
    task_names,
)
from trainlab.compare.leaderboard import build_leaderboard
from trainlab.compare.leaderboard_output import print_leaderboard
from trainlab.compare.metric_keys import direction_of, parse_target, read_metric
from trainlab.compare.outputs import (
    is_comparison_record,
    say_written,
    write_compare_leaderboard,
    write_report_if_available,
)
from trainlab.compare.precheck import DEFAULT_METRIC, check_data_files, check_metric_and_target
from trainlab.compare.refusals import comparison_error
from trainlab.compare.run_actions import RunPlan, plan_runs, run_action
from trainlab.compare.runner import refuse_damaged, run_plans, say_runs_complete
from trainlab.compare.strategies import (
    SET_BY_COMPARE,
    NamedStrategy,
    as_strategies,
    check_run_names,
    load_strategies,
    validate_strategies,
)
from trainlab.config_fields import path_argument, short_repr
from trainlab.config_overrides import override_key
from trainlab.errors import ConfigError, folder_error
from trainlab.folder_owner import refuse_foreign, refuse_overwrite
from trainlab.notices import each_once
from trainlab.registry import did_you_mean
from trainlab.run_lock import RunLock
from trainlab.sigterm import runs_complete
from trainlab.user_code import user_module_file

OWN_RECORD = "leaderboard.json"  # what makes --out an earlier comparison's folder (written before the others)
# what a comparison writes in --out beside its runs/ folder (write_compare_leaderboard, write_report_if_available):
# an --out of no comparison (no OWN_RECORD as compare writes it: is_comparison_record) that holds one is the
# user's, and refused; a leaderboard.json of the user's among them
RESULT_FILES = (OWN_RECORD, "leaderboard.csv", "report.html")


def compare(bases: Mapping[str, Mapping[str, Any]], strategies: Sequence[NamedStrategy] | Mapping[str, Any],
            out: str | os.PathLike[str], seeds: int = 5, jobs: int = 2, target: str | None = None,
            metric: str = DEFAULT_METRIC, direction: str | None = None, live: bool | None = None,
            quiet: bool = False, wait: bool = False,
            folders: Mapping[str, str | os.PathLike[str]] | None = None,
            show_leaderboard: bool | None = None, source: ComparisonSource | None = None) -> dict[str, Any]:
    """Run (or finish) a comparison in ``out`` and return its leaderboard (also written to disk).

    ``bases`` maps task names to config dicts; ``strategies`` is a list of :class:`NamedStrategy` or a
    mapping (:func:`~trainlab.compare.strategies.as_strategies`). ``direction`` is ``min``/``max``
    (``minimize``/``maximize`` too; None: by the metric's name). ``folders`` maps each task to its config's
    folder (:func:`compare_files` passes them): trusted for its ``module:attr`` code, as ``trainlab train``
    trusts a config's folder; where two folders hold different modules of a name the configs reference,
    each task imports its own (:func:`task_code_policies`). ``source``: the files the comparison is made of
    (:func:`compare_files` passes it): an ``out`` that records another strategies file is refused, and ``out``
    records this one (:mod:`trainlab.compare.folder_identity`); None (dicts, no file): neither.

    ``quiet``: no line per run and no live panel (notes and warnings still print). ``show_leaderboard``: print
    the table and the files written (None: unless ``quiet``; the CLI's ``--quiet`` prints them).

    ``out`` is locked for the whole comparison: another comparison writing it is refused, or with ``wait``
    waited for (tune workers sharing a study refit into one folder). Before any run: the arguments (a wrong
    type is one ConfigError naming it, as ``seeds`` from Python and ``--seeds`` from the CLI: :func:`named`),
    that each run's name ``<task>-<strategy>`` fits a config's
    (:func:`~trainlab.compare.strategies.check_run_names`), every strategy on every base
    (:func:`validate_strategies`), that every run's data files are there and a CSV's header holds the columns
    the config names (:func:`check_data_files`: one DataError), and that every run will record ``metric``
    and the target's metric (:func:`~trainlab.compare.precheck.check_recorded`); each other refusal is one ConfigError. Failed runs are
    in the leaderboard with their reasons, never raised.

    Raises :class:`~trainlab.errors.WriteError` (exit 5), once all else is written, for runs the machine stopped
    (:func:`~trainlab.compare.machine_failure.not_run_error`: the next invocation trains them) and for a
    leaderboard or ``report.html`` that cannot be written; each says to rerun the same command. Else
    :class:`~trainlab.errors.RunDirError` (exit 2), once everything is written, for runs whose folders another
    process held (:func:`~trainlab.compare.busy_run.busy_error`: the next invocation resumes them).
    """
    bases, strategies = check_bases(bases), as_strategies(strategies)
    check_run_names(list(bases), strategies)  # each run's name is <task>-<strategy>: refused here, not per run
    out = path_argument(out, "out")
    seeds = arguments.whole(named("seeds"), seeds, below=arguments.MAX_SEEDS + 1)
    jobs = arguments.whole(named("jobs"), jobs, below=arguments.MAX_JOBS + 1)
    direction = compare_direction(direction)
    check_flags(metric=metric, target=target, live=live, quiet=quiet, wait=wait, show_leaderboard=show_leaderboard)
    show_leaderboard = not quiet if show_leaderboard is None else show_leaderboard
    folders = check_folders(folders, bases)
    _refuse_taken_out(out)
    source = _checked_source(source, out)  # before the checks below: nothing of this comparison is run
    parsed_target = parse_target(target)
    with ExitStack() as trusted:
        trusted.enter_context(each_once())  # its runs read the same data: each warning once
        for folder in dict.fromkeys(folders.values()):  # as the CLI's command_code_policy does for its bases
            trusted.enter_context(allow_local_modules(folder))
        policies = task_code_policies(bases, strategies, folders)
        configs = validate_strategies(bases, strategies, policies)  # before any run: a bad strategy costs nothing
        check_data_files(configs, strategies)  # ... nor a data file not found, whether or not the task is read
        notes = check_metric_and_target(configs, metric, target, parsed_target, policies, direction)  # in the board
        direction = direction or direction_of(metric)
        plans = plan_runs(bases, strategies, list(range(seeds)), out)
        groups = _by_policy(plans, policies)
        with comparison_lock(out, wait):  # a second compare into the same folder would race for its runs
            stale = _before_the_runs(out, source, plans, several_groups=len(groups) > 1)
            not_run = run_groups(groups, jobs, metric, direction, live, quiet, before_training=stale)
            runs_complete("the comparison", "compare")  # a Ctrl-C now would leave the leaderboard without its report
            board = build_leaderboard(plans, metric, direction, parsed_target, not_run=not_run, notes=notes)
            write_compare_leaderboard(board, out)  # and the folder's leaderboard is current again (clear_retraining)
            report = write_report_if_available(groups, out)  # before the printing, which a closed pipe ends
            if show_leaderboard:
                print_leaderboard(board)
    say_written(board, out, report, metric, show_leaderboard)
    return board


def _refuse_taken_out(out: Path) -> None:
    """Refuse an ``out`` that another command wrote, or that holds a comparison's results already."""
    refuse_foreign(out, "compare", own=(OWN_RECORD,))
    refuse_overwrite(out, "compare", own=(OWN_RECORD,), writes=RESULT_FILES, argument=named("out"),
                     is_record=is_comparison_record)


def _checked_source(source: Any, out: Path) -> ComparisonSource | None:
    """``compare``'s ``source``: None, or a :class:`ComparisonSource` (what :func:`compare_files` passes) whose
    strategies file is the one ``out`` records, if any (:func:`refuse_other_source`); else one ConfigError."""
    if source is not None and not isinstance(source, ComparisonSource):
        raise ConfigError(f"source must be None or a trainlab.compare.folder_identity.ComparisonSource (what "
                          f"compare_files passes); got {short_repr(source)} ({type(source).__name__})")
    if source is not None:
        refuse_other_source(out, source, named("out"))
    return source


def _before_the_runs(out: Path, source: ComparisonSource | None, plans: list[RunPlan],
                     several_groups: bool) -> Callable[[], None] | None:
    """Under the comparison's lock, before any run: ``source`` refused again where ``out`` records another
    strategies file (a comparison of it may have held the lock since :func:`_checked_source`); every damaged run
    folder refused (:func:`_refuse_damaged_runs`: each group's before the first group runs; with one group and no
    ``source``, :func:`run_plans` refuses them), so that a refused comparison writes nothing; then ``out``
    records ``source`` (:func:`~trainlab.compare.folder_identity.record_source`). Returns what to call before
    the first run trained where ``out`` holds an earlier invocation's leaderboard, stale from then on until
    this one writes its own (:func:`~trainlab.compare.folder_identity.mark_retraining`); None where it holds none."""
    if source is not None:
        refuse_other_source(out, source, named("out"))
    if several_groups or source is not None:
        _refuse_damaged_runs(plans)
    if source is not None:
        record_source(out, source)
    return (lambda: mark_retraining(out)) if is_comparison_record(out / OWN_RECORD) else None


def _refuse_damaged_runs(plans: list[RunPlan]) -> None:
    """One refusal naming every damaged run folder of ``plans`` (:func:`run_action`'s "damaged")."""
    fingerprints: dict[str, str | None] = {}
    refuse_damaged([note for plan in plans for action, note in [run_action(plan, fingerprints)] if action == "damaged"])


def run_groups(groups: Mapping[CodePolicy | None, list[RunPlan]], jobs: int, metric: str, direction: str,
               live: bool | None, quiet: bool, before_training: Callable[[], None] | None = None) -> dict[str, str]:
    """Run each group's plans (:func:`run_plans`), one group after another under its code policy
    (:func:`_by_policy`); a stop signal stops the groups after it as the runs after it (Interrupted where one
    is left to run). Returns why runs were not run, by :attr:`RunPlan.label` (outcomes ``not run``: the
    machine stopped them, or another process held their folders): the reasons the leaderboard shows where a
    run's folder may hold none (the disk was full, or not writable; a busy folder is not written).
    ``before_training`` is called before each group's first run, where a group trains one (:func:`run_plans`)."""
    outcomes: dict[str, dict[str, Any]] = {}
    for policy, group in groups.items():
        tally = Tally(task=group[0].task, total=len(group), metric=metric, direction=direction, read_metric=read_metric)
        with nullcontext() if policy is None else using_policy(policy):
            # a stop signal a run of an earlier group took as it finished stops this group too (Interrupted)
            outcomes.update(run_plans(group, jobs, tally, live=live, quiet=quiet, earlier=outcomes,
                                      before_training=before_training))
    say_runs_complete(outcomes)  # only now: no group is left that the signal would have stopped
    return {label: o["reason"] for label, o in outcomes.items() if o["status"] == "not run"}


def task_code_policies(bases: Mapping[str, dict[str, Any]], strategies: Sequence[NamedStrategy],
                       folders: Mapping[str, Path]) -> dict[str, CodePolicy] | None:
    """Each task's code policy, its own config's folder trusted and the other bases' not
    (:func:`~trainlab.code_policy.own_folder_policy`), where that matters: a module name the configs
    reference (``mymodels`` of ``mymodels:make_net``) is a different file for different tasks (two
    folders, each with its ``mymodels.py``). None otherwise: one policy, the one in force, serves all."""
    distinct = set(folders.values())
    if len(distinct) < 2:
        return None
    policies = {task: own_folder_policy(folders[task], distinct) for task in bases}
    files: dict[str, set[Path]] = {}
    for task, base in bases.items():
        names = {reference.partition(":")[0] for reference in code_references([base, *(s.overrides for s in strategies)])}
        with using_policy(policies[task]):
            for name in names:
                file = user_module_file(name)
                if file is not None:
                    files.setdefault(name.split(".")[0], set()).add(file)
    return policies if any(len(found) > 1 for found in files.values()) else None


def _by_policy(plans: list[RunPlan], policies: Mapping[str, CodePolicy] | None) -> dict[CodePolicy | None, list[RunPlan]]:
    """The plans in groups run one after another, each under its tasks' code policy (a worker pool
    takes one policy for all its runs); one group (None: the policy in force) without ``policies``."""
    groups: dict[CodePolicy | None, list[RunPlan]] = {}
    for plan in plans:
        groups.setdefault(None if policies is None else policies[plan.task], []).append(plan)
    return groups


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


def compare_files(base_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  strategies_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                  overrides: str | Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """``compare`` on config files: ``base_paths`` one path or a list, task names their file stems
    (:func:`task_names`), each trusted for its own folder's ``module:attr`` code as ``trainlab train``
    trusts it; ``overrides`` (``--set KEY=VALUE``, one string or a list) change every base before the
    strategies; ``options`` are :func:`compare`'s (seeds, jobs, target, metric, direction, live, quiet, wait,
    show_leaderboard).

    Raises, once the leaderboard is written and returned nothing: when not one run finished, TrainingError (exit
    4), or ConfigError or DataError (exit 2 or 3) where every failed run was refused on its config or data; else
    ConfigError or DataError naming each strategy every run of which was refused so
    (:func:`~trainlab.compare.refusals.comparison_error`); WriteError (exit 5) as :func:`compare` raises it, first.
    """
    paths = paths_argument("base_paths", base_paths)
    strategies_path = path_argument(strategies_path, "strategies_path")
    if out is not None:
        out = path_argument(out, "out")  # ~ expanded: the messages name the folder written
    overrides = [overrides] if isinstance(overrides, str) else overrides
    if not isinstance(overrides, list | tuple) or not all(isinstance(text, str) for text in overrides):
        raise ConfigError(f"overrides must be 'KEY=VALUE' or a list of them; got {short_repr(overrides)}")
    unknown = [name for name in options if name not in COMPARE_OPTIONS]
    if unknown:
        raise ConfigError(f"compare_files got an unknown option '{unknown[0]}'"
                          f"{did_you_mean(unknown[0], list(COMPARE_OPTIONS))} (options: {', '.join(COMPARE_OPTIONS)})")
    for text in overrides:
        key = override_key(text)
        if key in SET_BY_COMPARE:
            raise ConfigError(f"--set {text}: compare sets '{key}' for every run: {SET_BY_COMPARE[key]}")
    names = task_names(paths)
    bases = dict(zip(names, (overridden(p, overrides, several=len(paths) > 1) for p in paths), strict=True))
    check_task_names(names, paths)
    # a missing file says which argument named it, in the words its caller used (not "config file")
    strategies = load_strategies(strategies_path, f"{'--strategies' if current_policy().cli else 'strategies_path'} file")
    check_overrides_reach_runs(overrides, strategies)
    folder = Path(out) if out else default_out(strategies_path)
    source = ComparisonSource.of_files(strategies_path, dict(zip(names, paths, strict=True)), default_out=out is None)
    board = compare(bases, strategies, folder, folders={name: Path(p).parent for name, p in zip(names, paths, strict=True)},
                    source=source, **options)
    error = comparison_error(board, folder)
    if error is not None:
        raise error
    return board


# compare's keyword options that compare_files passes on (the others it makes from its files)
COMPARE_OPTIONS = tuple(name for name in inspect.signature(compare).parameters
                        if name not in ("bases", "strategies", "out", "folders", "source"))
