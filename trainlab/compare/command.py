"""``trainlab compare``: validate, plan, run, then write the leaderboard (and the report when available)."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from trainlab import arguments
from trainlab.atomic import is_written_in_place
from trainlab.bounded_read import read_regular_file
from trainlab.code_policy import (
    CodePolicy,
    allow_local_modules,
    code_references,
    current_policy,
    is_own_run,
    own_folder_policy,
    trusting_runs,
    using_policy,
)
from trainlab.compare.busy_run import busy_error
from trainlab.compare.display import Tally
from trainlab.compare.folder_identity import ComparisonSource, record_source, refuse_other_source
from trainlab.compare.leaderboard import build_leaderboard, print_leaderboard, write_leaderboard
from trainlab.compare.loss_scale import loss_scale_warning
from trainlab.compare.machine_failure import not_run_error
from trainlab.compare.metric_keys import (
    direction_of,
    parse_target,
    read_metric,
    refuse_negative_loss_target,
    stand_in,
)
from trainlab.compare.runner import (
    ERROR_FILE,
    RunPlan,
    plan_runs,
    refuse_damaged,
    run_action,
    run_plans,
    say_runs_complete,
)
from trainlab.compare.strategies import (
    MAX_NAME_BYTES,
    SET_BY_COMPARE,
    NamedStrategy,
    as_strategies,
    check_run_names,
    folder_name_problem,
    load_strategies,
    validate_strategies,
)
from trainlab.config import Config, read_yaml
from trainlab.config_fields import path_argument, short_repr
from trainlab.config_overrides import apply_overrides, override_key
from trainlab.errors import ConfigError, DataError, TrainingError, WriteError, cannot, folder_error
from trainlab.folder_owner import refuse_foreign, refuse_overwrite
from trainlab.metric_hints import unrecorded_hint
from trainlab.notices import each_once, warn
from trainlab.preflight import DATA_COLUMN_KEYS, DATA_FILE_KEYS, check_data_columns, check_data_found
from trainlab.records import SUMMARY_NUMBERS, DataTasks, recorded_keys
from trainlab.registry import did_you_mean
from trainlab.run_lock import RunLock
from trainlab.shell_command import command_line
from trainlab.sigterm import runs_complete
from trainlab.user_code import user_module_file

DEFAULT_METRIC = "test_accuracy"  # the CLI's --metric default
OWN_RECORD = "leaderboard.json"  # what makes --out an earlier comparison's folder (written before the others)
# what a comparison writes in --out beside its runs/ folder (write_compare_leaderboard, write_report_if_available):
# an --out of no comparison (no OWN_RECORD as compare writes it: is_comparison_record) that holds one is the
# user's, and refused; a leaderboard.json of the user's among them
RESULT_FILES = (OWN_RECORD, "leaderboard.csv", "report.html")
# fields of every leaderboard.json compare has written (compare.leaderboard.build_leaderboard)
RECORD_FIELDS = {"metric": str, "direction": str, "seed_list": list, "methods": dict, "tasks": dict}
MAX_RECORD_BYTES = 256 * 2**20  # far above any leaderboard's; a larger file of that name is not one
# compare.strategies.NAME_RULE for a task: the same check (folder_name_problem) keeps both folders
TASK_NAME_RULE = ("a task name is the folder of its runs (runs/<task>/), so it keeps a strategy name's rule: not empty "
                  "or blank, no leading '.', no '/', '\\' or control character, at most "
                  f"{MAX_NAME_BYTES} bytes in UTF-8")


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
    and the target's metric (:func:`check_recorded`); each other refusal is one ConfigError. Failed runs are
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
    _check_flags(metric=metric, target=target, live=live, quiet=quiet, wait=wait, show_leaderboard=show_leaderboard)
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
        _check_metric_and_target(configs, metric, target, parsed_target, policies)
        direction = direction or direction_of(metric)
        plans = plan_runs(bases, strategies, list(range(seeds)), out)
        groups = _by_policy(plans, policies)
        with comparison_lock(out, wait):  # a second compare into the same folder would race for its runs
            _before_the_runs(out, source, plans, several_groups=len(groups) > 1)
            not_run = run_groups(groups, jobs, metric, direction, live, quiet)
            runs_complete("the comparison", "compare")  # a Ctrl-C now would leave the leaderboard without its report
            board = build_leaderboard(plans, metric, direction, parsed_target, not_run=not_run)
            write_compare_leaderboard(board, out)
            if show_leaderboard:
                print_leaderboard(board)
            report = write_report_if_available(groups, out)
    _say_written(board, out, report, metric, show_leaderboard)
    return board


def _check_metric_and_target(configs: dict[tuple[str, str], Config], metric: str, target: str | None,
                             parsed_target: dict[str, Any] | None, policies: Mapping[str, CodePolicy]) -> None:
    """Before any run: a loss target below 0 that no run's loss can reach is refused
    (:func:`~trainlab.compare.metric_keys.refuse_negative_loss_target`, as ``trainlab train`` refuses it), every
    run records ``metric`` and the target's metric (:func:`check_recorded`), and losses on different scales
    ranked by loss are warned of (:func:`warn_loss_scales`)."""
    target_metric = parsed_target["metric"] if parsed_target else None
    if target:
        refuse_negative_loss_target(target, parsed_target, [config.strategy.loss.name for config in configs.values()])
    check_recorded(configs, metric, target_metric, policies)
    warn_loss_scales(configs, metric, target_metric)


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


def _before_the_runs(out: Path, source: ComparisonSource | None, plans: list[RunPlan], several_groups: bool) -> None:
    """Under the comparison's lock, before any run: ``source`` refused again where ``out`` records another
    strategies file (a comparison of it may have held the lock since :func:`_checked_source`); every damaged run
    folder refused (:func:`_refuse_damaged_runs`: each group's before the first group runs; with one group and no
    ``source``, :func:`run_plans` refuses them), so that a refused comparison writes nothing; then ``out``
    records ``source`` (:func:`~trainlab.compare.folder_identity.record_source`)."""
    if source is not None:
        refuse_other_source(out, source, named("out"))
    if several_groups or source is not None:
        _refuse_damaged_runs(plans)
    if source is not None:
        record_source(out, source)


def _refuse_damaged_runs(plans: list[RunPlan]) -> None:
    """One refusal naming every damaged run folder of ``plans`` (:func:`run_action`'s "damaged")."""
    fingerprints: dict[str, str | None] = {}
    refuse_damaged([note for plan in plans for action, note in [run_action(plan, fingerprints)] if action == "damaged"])


def is_comparison_record(path: Path) -> bool:
    """``path`` is a leaderboard.json as compare writes it: a regular file (not a link: compare replaces its
    own atomically) holding a JSON object with every :data:`RECORD_FIELDS` field of its type. A user's file of
    that name is not, and makes no folder an earlier comparison's (:func:`compare` refuses to replace it)."""
    try:
        record = json.loads(read_regular_file(path, MAX_RECORD_BYTES, follow_links=False))
    except (OSError, ValueError, RecursionError):  # missing, a link, a folder, too large, not JSON
        return False
    return isinstance(record, dict) and all(isinstance(record.get(field), kind) for field, kind in RECORD_FIELDS.items())


def _say_written(board: dict[str, Any], out: Path, report: Path | None, metric: str, show: bool) -> None:
    """Name the files written (``show``), then raise what the comparison left undone: runs the machine stopped
    or another process held (:func:`compare`'s docstring), else a ``metric`` no run recorded."""
    if report is not None and show:
        print(f"report: {report}")
    if show:
        print(f"leaderboard: {out / 'leaderboard.json'}, {out / 'leaderboard.csv'}")
    stopped = not_run_error(board, out) or busy_error(board, out)
    if stopped is not None:
        raise stopped
    check_metric_found(board, metric)


RERUN = "rerun the same command once the disk is writable (finished runs are not trained again)"


def write_compare_leaderboard(board: dict[str, Any], out: Path) -> None:
    """:func:`~trainlab.compare.leaderboard.write_leaderboard`, an OSError as a WriteError (exit 5) whose advice
    is the comparison's own: the runs are written, and rerunning the same command writes the leaderboard."""
    try:
        write_leaderboard(board, out)
    except OSError as exc:
        raise WriteError(f"{cannot(exc)}; the runs are written: {RERUN}") from None


def run_groups(groups: Mapping[CodePolicy | None, list[RunPlan]], jobs: int, metric: str, direction: str,
               live: bool | None, quiet: bool) -> dict[str, str]:
    """Run each group's plans (:func:`run_plans`), one group after another under its code policy
    (:func:`_by_policy`); a stop signal stops the groups after it as the runs after it (Interrupted where one
    is left to run). Returns why runs were not run, by :attr:`RunPlan.label` (outcomes ``not run``: the
    machine stopped them, or another process held their folders): the reasons the leaderboard shows where a
    run's folder may hold none (the disk was full, or not writable; a busy folder is not written)."""
    outcomes: dict[str, dict[str, Any]] = {}
    for policy, group in groups.items():
        tally = Tally(task=group[0].task, total=len(group), metric=metric, direction=direction, read_metric=read_metric)
        with nullcontext() if policy is None else using_policy(policy):
            # a stop signal a run of an earlier group took as it finished stops this group too (Interrupted)
            outcomes.update(run_plans(group, jobs, tally, live=live, quiet=quiet, earlier=outcomes))
    say_runs_complete(outcomes)  # only now: no group is left that the signal would have stopped
    return {label: o["reason"] for label, o in outcomes.items() if o["status"] == "not run"}


def named(argument: str) -> str:
    """``argument`` of :func:`compare` as its caller wrote it: the flag (``--seeds``) inside the CLI command,
    the keyword (``seeds``) from Python."""
    return f"--{argument}" if current_policy().cli else argument


def compare_direction(direction: Any) -> str | None:
    """``direction`` as compare writes it, ``min`` or ``max`` (None stays None: by the metric's name);
    ``minimize``/``maximize`` (tune's words) are taken too."""
    return arguments.direction(named("direction"), direction, "by the metric's name")


def _check_flags(metric: Any, target: Any, live: Any, quiet: Any, wait: Any, show_leaderboard: Any) -> None:
    """``metric`` a string, ``target`` one or None (their values: :func:`parse_target`, :func:`check_recorded`),
    ``quiet``/``wait`` bools, ``live``/``show_leaderboard`` a bool or None; else one ConfigError naming the
    argument."""
    for name, value in (("metric", metric), ("target", target)):
        if not isinstance(value, str) and not (name == "target" and value is None):
            example = "'val_accuracy=0.9' or None" if name == "target" else "'test_accuracy'"
            raise ConfigError(f"{name} must be a string such as {example}; got {short_repr(value)} "
                              f"({type(value).__name__})")
    for name, value, valid in (("live", live, (bool, type(None))), ("quiet", quiet, bool), ("wait", wait, bool),
                               ("show_leaderboard", show_leaderboard, (bool, type(None)))):
        if not isinstance(value, valid):
            raise ConfigError(f"{name} must be {'True or False' if valid is bool else 'True, False or None'}; "
                              f"got {short_repr(value)}")


def _paths_argument(name: str, value: Any) -> list[Path]:
    """One path, or a list (tuple) of them, as a list; else one ConfigError naming the argument."""
    items = [value] if isinstance(value, str | os.PathLike) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"{name} must be a config file's path or a non-empty list of them; got "
                          f"{short_repr(value)} ({type(value).__name__})")
    return [path_argument(item, f"each of {name}") for item in items]


def check_bases(bases: Any) -> dict[str, dict[str, Any]]:
    """``compare``'s ``bases``: a non-empty mapping of task names to config mappings (config files:
    :func:`compare_files`). A task name is its runs' folder, checked as a strategy name is
    (:func:`~trainlab.compare.strategies.folder_name_problem`: ``.hidden`` made a hidden ``runs/.hidden/``)."""
    files = "for config files, use compare_files(['iris.yaml'], 'strategies.yaml')"
    if not isinstance(bases, Mapping) or not bases:
        raise ConfigError(f"bases must be a mapping {{task name: config dict}}, e.g. {{'iris': read_yaml('iris.yaml')}}; "
                          f"{files}; got {short_repr(bases)} ({type(bases).__name__})")
    for task, base in bases.items():
        problem = "is not a string" if not isinstance(task, str) else folder_name_problem(task)
        if problem:
            raise ConfigError(f"bases: task name {short_repr(task)} cannot be a folder name: it {problem}; "
                              f"{TASK_NAME_RULE}")
        if not isinstance(base, Mapping):
            raise ConfigError(f"bases['{task}'] must be a config dict (read_yaml('{task}.yaml')); got "
                              f"{short_repr(base)} ({type(base).__name__}); {files}")
    return {task: dict(base) for task, base in bases.items()}


def check_folders(folders: Any, bases: Mapping[str, Any]) -> dict[str, Path]:
    """``compare``'s ``folders``: None, or a folder for every task of ``bases`` (resolved)."""
    if folders is None:
        return {}
    if not isinstance(folders, Mapping) or set(folders) != set(bases):
        raise ConfigError(f"folders must map every task of bases ({', '.join(bases)}) to its config's folder; "
                          f"got {short_repr(folders)}")
    return {task: path_argument(folder, f"folders['{task}']").resolve() for task, folder in folders.items()}


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


def check_data_files(configs: Mapping[tuple[str, str], Config], strategies: Sequence[NamedStrategy]) -> None:
    """Before any run: the data files and folders each run's config names are there, looked up without
    reading them (:func:`~trainlab.preflight.check_data_found`), and the columns a CSV section names are in
    its header line (:func:`~trainlab.preflight.check_data_columns`), once per data section, so that a data
    path not found or a wrong ``data.target`` is one DataError (exit 3) with nothing written, not every run
    failing alike after it, whether or not the config lists its ``metrics``.

    ``configs`` by ``(task, strategy)`` as :func:`validate_strategies` returns them: each strategy's own
    data section, so a strategy that sets ``data.path`` (or ``data.target``) is checked for its own files;
    the refusal then names it (and the task, with several), as a base's missing file names the task where
    there are several.
    """
    # a strategy naming its own files or columns (or the whole section)
    file_keys = tuple(f"data.{key}" for key in (*DATA_FILE_KEYS, *DATA_COLUMN_KEYS))
    sets_data = {s.name for s in strategies
                 if any(str(key) == "data" or str(key).startswith(file_keys) for key in s.overrides)}
    several = len({task for task, _ in configs}) > 1
    checked: set[str] = set()
    for (task, strategy), config in configs.items():
        section = config.data.model_dump_json()
        if section in checked:
            continue
        checked.add(section)
        try:
            check_data_found(config)
            check_data_columns(config)
        except (DataError, ConfigError) as exc:
            on_task = f" on task '{task}'" if several else ""
            kind = DataError if isinstance(exc, DataError) else ConfigError  # exit 3 or 2, as the run's own
            if strategy in sets_data:
                raise kind(f"strategy '{strategy}'{on_task}: {exc}") from None
            if several:
                raise kind(f"task '{task}': {exc}") from None
            raise


def check_recorded(configs: dict[tuple[str, str], Config], metric: str, target_metric: str | None,
                   policies: Mapping[str, CodePolicy] | None = None) -> None:
    """Before any run: every run records ``metric`` (``--metric``) and ``target_metric`` (``--target``'s).

    ``configs`` by ``(task, strategy)`` as :func:`validate_strategies` returns them. A config that
    lists no ``metrics`` and sets no ``data.task`` has its data read (as its runs will read it, once
    per data section; with ``policies``, each task's under its own code policy) for the task, only when
    the key is not a loss or a summary number. Raises ConfigError naming the flag, the key and the task
    (the strategy too, where only some of the task's strategies lack it), with a did-you-mean and the
    keys that are recorded.
    """
    shared = DataTasks()
    own_tasks: dict[str, DataTasks] = {}

    def keys_of(task: str, config: Config) -> list[str]:
        if policies is None:
            return recorded_keys(config, config.data.task if config.metrics else shared(config))
        tasks = own_tasks.setdefault(task, DataTasks())  # 'mydata:load' may be another file for another task
        with using_policy(policies[task]):
            return recorded_keys(config, config.data.task if config.metrics else tasks(config))

    always = {"test_loss", "val_loss", *SUMMARY_NUMBERS}
    for flag, wanted in (("--metric", metric), ("--target", target_metric)):
        if wanted is None or wanted in always:
            continue
        for task in dict.fromkeys(task for task, _ in configs):
            own = {strategy: keys_of(t, config) for (t, strategy), config in configs.items() if t == task}
            if flag == "--target":
                own = {strategy: [k for k in keys if k.startswith("val_")] for strategy, keys in own.items()}
            missing = [strategy for strategy, keys in own.items() if wanted not in keys]
            if not missing:
                continue
            keys, loss = own[missing[0]], configs[(task, missing[0])].strategy.loss.name
            where = (f"the runs of task '{task}'" if len(missing) == len(own)
                     else f"strategy '{missing[0]}' on task '{task}'")
            default = flag == "--metric" and wanted == DEFAULT_METRIC
            split_key = ("val_" if flag == "--target" else "test_") + wanted  # 'r2' typed for the split's key
            guess = (f"; did you mean '{split_key}'? (a key names its split)" if split_key in keys
                     else unrecorded_hint(wanted, keys, loss))
            instead = stand_in(wanted, keys) if default else None  # test_r2 on a regression
            if instead and "did you mean" not in guess:
                guess += f"; did you mean '{instead}'?"
            hint = f"; {DEFAULT_METRIC} is --metric's default: pass --metric with one of these" if default else ""
            raise ConfigError(f"{flag} '{wanted}' is not recorded by {where}{guess} "
                              f"(recorded: {', '.join(keys)}){hint}")


def warn_loss_scales(configs: dict[tuple[str, str], Config], metric: str, target_metric: str | None) -> None:
    """Before any run: one ``warning:`` line on stderr where ``metric`` or ``target_metric`` is the training
    loss (``test_loss``, ``val_loss``) and a task's strategies train different losses, whose values are
    on different scales (:func:`~trainlab.compare.loss_scale.loss_scale_warning`). Not a refusal: one
    loss across optimizers is a fair ranking by it, and the user may mean the scale they chose."""
    message = loss_scale_warning(configs, metric, target_metric)
    if message:
        warn(message)


def no_run_finished(board: dict[str, Any], out: Path) -> str | None:
    """The error line for a comparison where not one run finished (None when one did)."""
    entries = [e for table in board["tasks"].values() for e in table["strategies"]]
    if any(e["runs"] for e in entries):
        return None
    failed = sum(e["failed"] for e in entries)
    reasons = {str(f.get("reason")) for e in entries for f in e.get("failures") or []}
    # one reason for every run (a data file not found, a model that cannot be built): said here
    shared = f", all for the same reason: {reasons.pop()}" if len(reasons) == 1 and failed > 1 else ""
    return (f"no run finished: {failed} of {failed + sum(e['missing'] for e in entries)} runs failed{shared}; the "
            f"reasons are under 'failures' in {out / 'leaderboard.json'} (and in each run folder's "
            f"{ERROR_FILE}, summary.json or run.json)")


def own_runs(plans: list[RunPlan]) -> list[Path]:
    """The planned run folders whose config.yaml names no ``module:attr`` code beyond what the plan's
    config (the user's base with the strategy) names; a folder whose config cannot be read is left out."""
    return [plan.path for plan in plans if is_own_run(plan.path, plan.raw)]


def write_report_if_available(groups: Mapping[CodePolicy | None, list[RunPlan]], out: Path) -> Path | None:
    """``DIR/report.html`` through trainlab.report when that module is installed. ``groups``: the plans by
    the code policy they ran under (:func:`_by_policy`; None: the one in force), which the report reads
    their run folders under too. A report the disk refuses is a WriteError (exit 5) naming the file; any other
    failure of it is a warning, since the leaderboard is written."""
    try:
        from trainlab.report import write_report
    except ImportError:
        return None
    report = out / "report.html"
    if report.is_symlink() or is_written_in_place(report):  # compare has no -o to write through it
        warn(f"{report} not written: it is a symbolic link or not a regular file (a copied folder's?); remove "
             f"it and run the comparison again, or write the report elsewhere: {command_line('trainlab', 'report', str(out), '-o', 'FILE')}")
        return None
    try:
        with ExitStack() as trusted:  # their module:attr models are the user's own: no --allow-code
            for policy, plans in groups.items():
                trusted.enter_context(trusting_runs(own_runs(plans), policy))
            # its runs' damaged metrics lines were named as the leaderboard read them (compare.run_record)
            # a default name: a symlink there (a copied folder's) is refused, not followed (atomic.write_output_bytes)
            return write_report([out], out / "report.html", warn_damaged_metrics=False, follow_link=False)
    except (OSError, WriteError) as exc:  # the disk's: exit 5, as a run or the leaderboard that cannot be written
        raise _report_not_written(exc, report, out) from None
    except Exception as exc:  # noqa: BLE001 - the leaderboard is written; a report failure must not hide it
        warn(f"report.html not written: {type(exc).__name__}: {exc}")
        return None


def _report_not_written(exc: OSError | WriteError, report: Path, out: Path) -> WriteError:
    """The comparison's line for a ``report`` the disk refused: ``cannot write (<file>): <reason>`` (never an
    OSError's ``[Errno 28]`` repr), that the leaderboard and runs are written, and what to do."""
    if isinstance(exc, OSError):
        what = cannot(exc) if exc.filename else f"cannot write ({report}): {exc.strerror or exc}"
    else:
        what = str(exc).split("; ")[0]
    return WriteError(f"{what}; the leaderboard ({out / 'leaderboard.json'}) and the runs are written: {RERUN}, "
                      f"or write the report elsewhere: {command_line('trainlab', 'report', str(out), '-o', 'FILE')}")


def compare_files(base_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  strategies_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                  overrides: str | Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """``compare`` on config files: ``base_paths`` one path or a list, task names their file stems
    (:func:`task_names`), each trusted for its own folder's ``module:attr`` code as ``trainlab train``
    trusts it; ``overrides`` (``--set KEY=VALUE``, one string or a list) change every base before the
    strategies; ``options`` are :func:`compare`'s (seeds, jobs, target, metric, direction, live, quiet, wait,
    show_leaderboard).

    Raises TrainingError (exit 4), once the leaderboard is written, when not one run finished; WriteError
    (exit 5) as :func:`compare` raises it, first.
    """
    paths = _paths_argument("base_paths", base_paths)
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
    bases = dict(zip(names, (_overridden(p, overrides, several=len(paths) > 1) for p in paths), strict=True))
    check_task_names(names, paths)
    # a missing file says which argument named it, in the words its caller used (not "config file")
    strategies = load_strategies(strategies_path, f"{'--strategies' if current_policy().cli else 'strategies_path'} file")
    check_overrides_reach_runs(overrides, strategies)
    folder = Path(out) if out else default_out(strategies_path)
    source = ComparisonSource.of_files(strategies_path, dict(zip(names, paths, strict=True)), default_out=out is None)
    board = compare(bases, strategies, folder, folders={name: Path(p).parent for name, p in zip(names, paths, strict=True)},
                    source=source, **options)
    error = no_run_finished(board, folder)
    if error:
        raise TrainingError(error)
    return board


def check_task_names(names: Sequence[str], paths: Sequence[Path]) -> None:
    """Each base file's task name (:func:`task_names`: its stem) can be its runs' folder
    (:func:`~trainlab.compare.strategies.folder_name_problem`, as a strategy name): else one ConfigError naming
    the file, as :func:`check_bases` would name the task, which its CLI user never wrote."""
    for name, path in zip(names, paths, strict=True):
        problem = folder_name_problem(name)
        if problem:
            raise ConfigError(f"{path}: its task name {short_repr(name)} (the file's stem) cannot be a folder name: "
                              f"it {problem}; {TASK_NAME_RULE}; rename the file")


def _overridden(path: Path, overrides: Sequence[str], several: bool) -> dict[str, Any]:
    """The base config at ``path`` with ``--set`` applied; with several bases, a refused override names the
    file it was refused for."""
    try:
        return apply_overrides(read_yaml(path), list(overrides))
    except ConfigError as exc:
        if not several:
            raise
        raise ConfigError(f"{path}: {exc}") from None


def check_overrides_reach_runs(overrides: Sequence[str], strategies: Sequence[NamedStrategy]) -> None:
    """``--set`` changes the bases, and each strategy then sets its keys over them: a strategy key equal to
    an override's, or a section holding it (``strategy.optimizer`` over ``strategy.optimizer.lr``), replaces
    the override in that strategy's runs. One replaced in every strategy changes no run (its value was
    not even checked): a ConfigError naming it; one replaced in some strategies: a warning naming them."""
    for text in overrides:
        parts = override_key(text).split(".")
        replacing = {strategy.name: dotted for strategy in strategies for dotted in strategy.overrides
                     if parts[:len(str(dotted).split("."))] == str(dotted).split(".")}
        if not replacing:
            continue
        names = list(replacing)
        where = ", ".join(f"{name} ({replacing[name]})" for name in names[:3]) + (
            f" and {len(names) - 3} more" if len(names) > 3 else "")
        if len(replacing) == len(strategies):
            raise ConfigError(f"--set {text} changes no run: every strategy sets its own value over it: {where}; "
                              "set it in the strategies file, or drop it from those strategies")
        warn(f"--set {text} does not reach the runs of {where}: each sets its own value over it")


# compare's keyword options that compare_files passes on (the others it makes from its files)
COMPARE_OPTIONS = tuple(name for name in inspect.signature(compare).parameters
                        if name not in ("bases", "strategies", "out", "folders", "source"))
