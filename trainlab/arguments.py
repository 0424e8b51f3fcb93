"""Checks of a command's arguments, as the CLI flags and the Python functions (``trainlab.compare``,
``trainlab.tune``) both take them: each wrong type or value is one ConfigError naming the argument as its
caller wrote it (``shown``: ``--trials`` inside a CLI command, ``trials`` from Python), the rule and the value
received (:func:`~trainlab.config_fields.short_repr`, its type added where the type is what is wrong).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trainlab.code_policy import current_policy
from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.registry import did_you_mean

# the most worker processes --jobs starts (each holds its own torch and data: hundreds already exhaust a large
# machine's memory) and the most seeds a comparison plans (statistics settle long before; 10^8 plans ran out of memory)
MAX_JOBS = 256
MAX_SEEDS = 1000

# every spelling of an optimisation direction -> "max" or "min" (compare writes these, Optuna maximize/minimize)
DIRECTIONS = {"max": "max", "min": "min", "maximize": "max", "minimize": "min"}


def or_none(meaning: str) -> str:
    """The None a Python argument may be, said where a Python caller reads the message (a flag has no None)."""
    return "" if current_policy().cli else f" (or None: {meaning})"


def got(value: Any, with_type: bool = True) -> str:
    return f"got {short_repr(value)}" + (f" ({type(value).__name__})" if with_type else "")


def _is_int(value: Any) -> bool:
    """A whole number, Python's or NumPy's (``np.int64``), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def whole(shown: str, value: Any, least: int = 1, below: int | None = None) -> int:
    """A count or seed: an int ``>= least`` (and ``< below``); a bool, float or string is refused, not
    rounded or compared (``1.5`` trials ran 2; ``"4"`` raised a TypeError)."""
    if _is_int(value) and value >= least and (below is None or value < below):
        return int(value)
    rule = f">= {least}" if below is None else f"from {least} to {below - 1}"
    raise ConfigError(f"{shown} must be a whole number {rule}; {got(value, not _is_int(value))}")


def direction(shown: str, value: Any, none_means: str) -> str | None:
    """``max`` or ``min`` (any spelling of :data:`DIRECTIONS`); None stays None (``none_means`` says what it
    does)."""
    if value is None:
        return None
    if isinstance(value, str) and value in DIRECTIONS:
        return DIRECTIONS[value]
    raise ConfigError(f"{shown} must be one of {', '.join(DIRECTIONS)}{or_none(none_means)}; "
                      f"{got(value, not isinstance(value, str))}")


def seconds(shown: str, value: Any, none_means: str) -> float | None:
    """None or a finite number of seconds > 0 (``nan`` would never end or never start)."""
    if value is None:
        return None
    number = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    if number and math.isfinite(value) and value > 0:
        return float(value)
    raise ConfigError(f"{shown} must be a number of seconds > 0{or_none(none_means)}; {got(value, not number)}")


def text(shown: str, value: Any, example: str, none_means: str | None = None) -> str | None:
    """A non-empty string; None too where ``none_means`` says what None does."""
    if none_means is not None and value is None:
        return None
    if isinstance(value, str) and value:
        return value
    alternative = "" if none_means is None else or_none(none_means)
    raise ConfigError(f"{shown} must be a non-empty string such as {example}{alternative}; "
                      f"{got(value, not isinstance(value, str))}")


def choice(shown: str, value: Any, choices: Sequence[str], aliases: Mapping[str, str] | None = None) -> str:
    """One of ``choices``; a misspelt one gets a did-you-mean, another tool's name for one (``aliases``:
    Optuna's ``successive_halving`` for ``hyperband``) that choice."""
    if isinstance(value, str) and value in choices:
        return value
    if isinstance(value, str):
        raise ConfigError(f"{shown} '{value}' is unknown{did_you_mean(value, list(choices), aliases)} "
                          f"(valid: {', '.join(choices)})")
    raise ConfigError(f"{shown} must be one of {', '.join(choices)}; {got(value)}")


def flag(shown: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{shown} must be True or False; got {short_repr(value)}")


def overrides(shown: str, value: Any) -> tuple[str, ...]:
    """``--set KEY=VALUE``: one string is one override (not its characters), or a list or tuple of strings."""
    items = (value,) if isinstance(value, str) else value
    if isinstance(items, Sequence) and not isinstance(items, str | bytes) and all(isinstance(i, str) for i in items):
        return tuple(items)
    raise ConfigError(f"{shown} must be 'KEY=VALUE' or a list of them; got {short_repr(value)}")
