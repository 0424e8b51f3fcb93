"""``trainlab compare``'s arguments checked before anything is planned: the bases and their task names, the
config folders, the flags given from Python or the CLI, and the ``--set`` overrides against the strategies."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainlab import arguments
from trainlab.code_policy import current_policy
from trainlab.compare.strategies import MAX_NAME_BYTES, NamedStrategy, folder_name_problem
from trainlab.config import read_yaml
from trainlab.config_fields import path_argument, short_repr
from trainlab.config_overrides import apply_overrides, override_key
from trainlab.errors import ConfigError
from trainlab.notices import warn

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


def named(argument: str) -> str:
    """``argument`` of :func:`~trainlab.compare.command.compare` as its caller wrote it: the flag (``--seeds``) inside the CLI command,
    the keyword (``seeds``) from Python."""
    return f"--{argument}" if current_policy().cli else argument


def compare_direction(direction: Any) -> str | None:
    """``direction`` as compare writes it, ``min`` or ``max`` (None stays None: by the metric's name);
    ``minimize``/``maximize`` (tune's words) are taken too."""
    return arguments.direction(named("direction"), direction, "by the metric's name")


def check_flags(metric: Any, target: Any, live: Any, quiet: Any, wait: Any, show_leaderboard: Any) -> None:
    """``metric`` a string, ``target`` one or None (their values: :func:`~trainlab.compare.metric_keys.parse_target`,
    :func:`~trainlab.compare.precheck.check_recorded`),
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


def paths_argument(name: str, value: Any) -> list[Path]:
    """One path, or a list (tuple) of them, as a list; else one ConfigError naming the argument."""
    items = [value] if isinstance(value, str | os.PathLike) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"{name} must be a config file's path or a non-empty list of them; got "
                          f"{short_repr(value)} ({type(value).__name__})")
    return [path_argument(item, f"each of {name}") for item in items]


def check_bases(bases: Any) -> dict[str, dict[str, Any]]:
    """``compare``'s ``bases``: a non-empty mapping of task names to config mappings (config files:
    :func:`~trainlab.compare.command.compare_files`). A task name is its runs' folder, checked as a strategy name is
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


def check_task_names(names: Sequence[str], paths: Sequence[Path]) -> None:
    """Each base file's task name (:func:`task_names`: its stem) can be its runs' folder
    (:func:`~trainlab.compare.strategies.folder_name_problem`, as a strategy name): else one ConfigError naming
    the file, as :func:`check_bases` would name the task, which its CLI user never wrote."""
    for name, path in zip(names, paths, strict=True):
        problem = folder_name_problem(name)
        if problem:
            raise ConfigError(f"{path}: its task name {short_repr(name)} (the file's stem) cannot be a folder name: "
                              f"it {problem}; {TASK_NAME_RULE}; rename the file")


def overridden(path: Path, overrides: Sequence[str], several: bool) -> dict[str, Any]:
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
