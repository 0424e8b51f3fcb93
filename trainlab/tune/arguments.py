"""The checks of :class:`~trainlab.tune.study.TuneSettings`' arguments, through :mod:`trainlab.arguments`
(the checks compare's arguments get too), each argument named as its caller knows it: the flag (``--trials``,
``--timeout``) inside a CLI command (the code policy's ``cli``,
:func:`trainlab.code_policy.command_code_policy`), else the Python argument (``trials``, ``timeout_s``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainlab import arguments
from trainlab.code_policy import current_policy
from trainlab.compare.strategies import folder_name_problem
from trainlab.config_fields import path_argument, short_repr
from trainlab.errors import ConfigError

# TuneSettings' field -> the trainlab tune flag that sets it (the base config is the command's CONFIG argument)
FLAGS = {"base": "CONFIG", "space": "--space", "trials": "--trials", "out": "--out", "metric": "--metric",
         "direction": "--direction", "jobs": "--jobs", "storage": "--storage", "study_name": "--study",
         "pruner": "--pruner", "timeout_s": "--timeout", "seed": "--seed", "refit_seeds": "--refit-seeds",
         "quiet": "--quiet", "overrides": "--set"}

SEED_LIMIT = 2**32  # fANOVA's random forest (best.json's importances) takes seeds in [0, 2**32) only
OPTUNA_WORDS = {"max": "maximize", "min": "minimize"}


def named(field: str) -> str:
    """``field`` of TuneSettings as its caller knows it: the flag in a CLI command, the argument in Python."""
    return FLAGS[field] if current_policy().cli else field


def direction(value: Any, metric: str, default: str) -> str:
    """``maximize``/``minimize`` (``max``/``min`` too, as compare takes them), as Optuna's word; None is
    ``default`` (the metric's own direction)."""
    shown = arguments.direction(named("direction"), value, f"{default} for {metric}")
    return default if shown is None else OPTUNA_WORDS[shown]


def path(field: str, value: Any) -> Path:
    """A path argument (str or os.PathLike); from the command line it is always one."""
    return path_argument(value, named(field))


def optional_path(field: str, value: Any) -> Path | None:
    return None if value is None else path(field, value)


def out_folder(base: Path, out: Path | None, refit_seeds: int) -> Path:
    """``out``, or for None ``tunes/<base file stem>`` (running the same call again finds the same study).

    The base file's stem names folders: the study's where ``out`` is None, and with ``refit_seeds`` the
    refit's task folder ``<out>/refit/runs/<stem>/`` (a compare task). Where it names one, a stem that cannot
    be a folder name by the rule compare's task and strategy names follow
    (:func:`~trainlab.compare.strategies.folder_name_problem`: ``...yaml``'s ``..`` made ``tunes/..`` the
    working directory, ``.a.yaml``'s a hidden folder) is one ConfigError naming the file and what to do."""
    stem = base.stem
    problem = folder_name_problem(stem)
    if problem is not None and (out is None or refit_seeds):
        where, fix = ((f"the study's folder tunes/{stem} ({named('out')}'s default)", f", or pass {named('out')}")
                      if out is None else (f"the refit's task folder {out / 'refit' / 'runs' / stem}", ""))
        raise ConfigError(f"{named('base')} {base}: its file stem {short_repr(stem)} cannot be a folder name: it "
                          f"{problem}; the stem names {where}; rename the file{fix}")
    return Path("tunes") / stem if out is None else out
