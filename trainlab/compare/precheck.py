"""Checks of a comparison's run configs before any run (and of its metric after them): every run's data files
and CSV columns are there, every run records ``--metric`` and ``--target``'s metric, losses ranked on
different scales are warned of; a finished comparison without the metric is refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainlab.code_policy import CodePolicy, using_policy
from trainlab.compare.inputs import named
from trainlab.compare.loss_scale import loss_scale_warning
from trainlab.compare.metric_keys import direction_warning, refuse_negative_loss_target, stand_in
from trainlab.compare.strategies import NamedStrategy
from trainlab.config import Config
from trainlab.data.positive_class import both_classes_metrics, scores_class_one
from trainlab.errors import ConfigError, DataError
from trainlab.metric_hints import unrecorded_hint
from trainlab.notices import warn
from trainlab.preflight import DATA_COLUMN_KEYS, DATA_FILE_KEYS, check_data_columns, check_data_found
from trainlab.records import SUMMARY_NUMBERS, DataTasks, recorded_keys
from trainlab.registry import did_you_mean

DEFAULT_METRIC = "test_accuracy"  # the CLI's --metric default


def check_data_files(configs: Mapping[tuple[str, str], Config], strategies: Sequence[NamedStrategy]) -> None:
    """Before any run: the data files and folders each run's config names are there, looked up without
    reading them (:func:`~trainlab.preflight.check_data_found`), and the columns a CSV section names are in
    its header line (:func:`~trainlab.preflight.check_data_columns`), once per data section, so that a data
    path not found or a wrong ``data.target`` is one DataError (exit 3) with nothing written, not every run
    failing alike after it, whether or not the config lists its ``metrics``.

    ``configs`` by ``(task, strategy)`` as :func:`~trainlab.compare.strategies.validate_strategies` returns them: each strategy's own
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

    ``configs`` by ``(task, strategy)`` as :func:`~trainlab.compare.strategies.validate_strategies` returns them. A config that
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
    for argument, wanted in (("metric", metric), ("target", target_metric)):
        if wanted is None or wanted in always:
            continue
        flag = named(argument)  # --metric in the CLI, metric from Python
        for task in dict.fromkeys(task for task, _ in configs):
            own = {strategy: keys_of(t, config) for (t, strategy), config in configs.items() if t == task}
            if argument == "target":
                own = {strategy: [k for k in keys if k.startswith("val_")] for strategy, keys in own.items()}
            missing = [strategy for strategy, keys in own.items() if wanted not in keys]
            if not missing:
                continue
            keys, loss = own[missing[0]], configs[(task, missing[0])].strategy.loss.name
            where = (f"the runs of task '{task}'" if len(missing) == len(own)
                     else f"strategy '{missing[0]}' on task '{task}'")
            default = argument == "metric" and wanted == DEFAULT_METRIC
            split_key = ("val_" if argument == "target" else "test_") + wanted  # 'r2' typed for the split's key
            guess = (f"; did you mean '{split_key}'? (a key names its split)" if split_key in keys
                     else unrecorded_hint(wanted, keys, loss))
            instead = stand_in(wanted, keys) if default else None  # test_r2 on a regression
            if instead and "did you mean" not in guess:
                guess += f"; did you mean '{instead}'?"
            hint = f"; {DEFAULT_METRIC} is {flag}'s default: pass {flag} with one of these" if default else ""
            raise ConfigError(f"{flag} '{wanted}' is not recorded by {where}{guess} "
                              f"(recorded: {', '.join(keys)}){hint}")


def warn_loss_scales(configs: dict[tuple[str, str], Config], metric: str, target_metric: str | None) -> list[str]:
    """Before any run: one ``warning:`` line on stderr where ``metric`` or ``target_metric`` is the training
    loss (``test_loss``, ``val_loss``) and a task's strategies train different losses, whose values are
    on different scales (:func:`~trainlab.compare.loss_scale.loss_scale_warning`). Not a refusal: one
    loss across optimizers is a fair ranking by it, and the user may mean the scale they chose.

    Returns the warning's text without its ``warning:`` (``[]`` when none), for the leaderboard's ``notes``:
    the ranking it qualifies is kept in leaderboard.json and printed under the table, long after this line."""
    message = loss_scale_warning(configs, metric, target_metric)
    if message:
        warn(message)
    return [message] if message else []


def check_metric_and_target(configs: dict[tuple[str, str], Config], metric: str, target: str | None,
                             parsed_target: dict[str, Any] | None, policies: Mapping[str, CodePolicy],
                             direction: str | None = None) -> list[str]:
    """Before any run: a loss target below 0 that no run's loss can reach is refused
    (:func:`~trainlab.compare.metric_keys.refuse_negative_loss_target`, as ``trainlab train`` refuses it), every
    run records ``metric`` and the target's metric (:func:`check_recorded`), and a ``direction`` against the
    metric's own (:func:`~trainlab.compare.metric_keys.direction_warning`) and losses on different scales ranked
    by loss (:func:`warn_loss_scales`) are warned of; strategies that make other classes positive are refused where
    the metric or the target's is of the positive class (:func:`refuse_mixed_positive_class`). Returns the warnings' texts, the leaderboard's ``notes``
    (``[]`` when none)."""
    target_metric = parsed_target["metric"] if parsed_target else None
    for argument, ranked in (("metric", metric), ("target", target_metric)):
        refuse_mixed_positive_class(configs, ranked, argument)
    if target:
        refuse_negative_loss_target(target, parsed_target, [config.strategy.loss.name for config in configs.values()])
    check_recorded(configs, metric, target_metric, policies)
    reversed_ranking = direction_warning(metric, direction)
    if reversed_ranking:
        warn(reversed_ranking)
    return ([reversed_ranking] if reversed_ranking else []) + warn_loss_scales(configs, metric, target_metric)


def refuse_mixed_positive_class(configs: Mapping[tuple[str, str], Config], metric: str | None,
                                argument: str = "metric") -> None:
    """A ConfigError, before any run, where the runs of one task set ``data.positive_class`` differently and
    ``metric`` (``--metric``, or ``--target``'s) is of class 1 alone (``test_f1``: :data:`CLASS_ONE_METRICS`):
    it would rank (``argument`` ``target``: time) f1 of one class against f1 of the other. Metrics of both
    classes (accuracy, roc_auc, f1_macro) rank alike whichever class is positive."""
    if not scores_class_one(metric):
        return
    by_task: dict[str, dict[Any, str]] = {}
    for (task, strategy), config in configs.items():
        chosen = by_task.setdefault(task, {})
        chosen.setdefault(config.data.positive_class, strategy)
        if len(chosen) > 1:
            (first, one), (second, other) = list(chosen.items())[:2]
            shown = ["the default" if value is None else repr(value) for value in (first, second)]
            both = both_classes_metrics(metric.split("_", 1)[0])
            raise ConfigError(f"strategies '{one}' and '{other}' set data.positive_class to {shown[0]} and "
                              f"{shown[1]}: {named(argument)} {metric} would {'time' if argument == 'target' else 'rank'} "
                              f"a figure of one class against the other's; set it in the base config (or --set "
                              f"data.positive_class=...), or use a metric of both classes ({both})")


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
        raise ConfigError(f"{named('metric')} '{metric}' is in none of the finished runs' summaries (is its split empty?)"
                          f"{did_you_mean(metric, names)} (they have: {', '.join(names)})")
