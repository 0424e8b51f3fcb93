"""The building blocks of the config's models: bounded integers, strict and named sections, short reprs.

``Int`` refuses booleans (YAML's yes/no), strings and integers beyond int64 (``Float``: booleans, strings,
inf and nan); ``Strict`` sections refuse unknown keys; a ``Named`` section is a registered component: ``name`` plus its factory's keyword arguments.
The ``MAX_*`` bounds turn hostile or mistyped config files into one error line.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from trainlab.errors import ConfigError
from trainlab.shell_command import home_expanded

INT_LIMIT = 2**63  # every count fits a signed 64-bit integer (torch, numpy)
FLOAT32_MAX = 3.4028234663852886e38  # float32's largest: torch holds lrs, options and fills in float32


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, not a boolean; got {value}")
    if isinstance(value, str):  # pydantic would read '1_0' as 10 and '010' as 10 (YAML 1.1: octal 8)
        raise ValueError(f"must be an integer in decimal digits (e.g. 10), not a string; got {short_repr(value)}")
    if isinstance(value, int) and abs(value) >= INT_LIMIT:
        raise ValueError(f"must be an integer of magnitude below 2**63; got {short_repr(value)}")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]  # YAML's yes/no/true are not counts, nor strings numbers


# a number written in decimal: what YAML leaves a string (1e-3, which has no dot) and Python's float() reads
DECIMAL_TEXT = re.compile(r"^\s*[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*$")


def underflow_problem(text: str) -> str | None:
    """Why decimal ``text`` (a float Python reads) is refused when a nonzero number reads as 0.0 (``1e-400``);
    None when it does not."""
    text = text.strip()
    if float(text) == 0.0 and any(c in "123456789" for c in re.split("[eE]", text)[0]):
        return f"{text} is too small for a 64-bit float (it would read as 0.0); write 0 or a number above 1e-308"
    return None


def _number_not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not a boolean; got {value}")
    if isinstance(value, str):  # decimal text only: pydantic would read '1_0.5' as 10.5
        if value.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):  # --set x=inf
            raise ValueError(f"must be a finite number; got {value.strip()}")
        if not DECIMAL_TEXT.match(value):
            raise ValueError(f"must be a number (e.g. 0.5 or 1e-3); got {short_repr(value)}")
        problem = underflow_problem(value)
        if problem:
            raise ValueError(problem)
        number = float(value)
        if not math.isfinite(number):  # 1e999
            raise ValueError(f"must be a finite number; got {value.strip()}")
        return number
    return value


# YAML's true is not 1.0, and inf or nan (.inf, 1e999, --set x=inf) is no setting
Float = Annotated[float, BeforeValidator(_number_not_bool), Field(allow_inf_nan=False)]

# A config is a few hundred values; these bounds turn hostile or mistyped files into one line
# before anything big is built (YAML alias bombs, absurd layer sizes, thread counts).
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB of YAML
MAX_CONFIG_NODES = 100_000  # values in the config with every alias expanded
MAX_CONFIG_DEPTH = 64  # nesting of mappings and lists
MAX_MODEL_SIZE = 1_000_000  # any integer model option (a layer width, a channel count)
# layers of a built-in model: above ResNet-1202 (He et al. 2016, the deepest net of the papers the zoo follows)
# and 10x any transformer stack in use; such a model builds in about a second, where hidden: [4] * 90000 took
# 8-13 s to build (its parameters far under trainlab.models.MAX_PARAMETERS) and minutes an epoch
MAX_LAYERS = 2_000
COUNT_WORDS = ("layers", "depth")  # an option whose name holds one of these repeats the layers (a multiplier)
# the built-in models whose list options are layer sizes and whose *layers*/*depth* options count layers: every
# model trainlab.models.builtins registers but hf_pretrained (its size is the checkpoint's, a file the user chose)
LAYER_BOUNDED_MODELS = frozenset({"linear", "mlp", "cnn1d", "cnn2d", "resnet", "airbench", "airbench_muon",
                                  "cifar_tutorial_cnn", "transformer_encoder"})
MAX_THREADS = 1024
MAX_NAME_CHARS = 200  # the folder runs/<name>-<timestamp> must fit NAME_MAX (255 bytes)

class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int over 4,300 digits raises ValueError (a YAML hex literal has no such limit)
        if abs(x).bit_length() > 10_000:
            return f"<an integer of about {int(abs(x).bit_length() * math.log10(2)) + 1} digits>"
        return super().repr_int(x, level)


_REPR = _ShortRepr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def path_argument(value: Any, argument: str) -> Path:
    """``value`` of a Python API argument that names a file or folder (a non-empty ``str`` or
    ``os.PathLike``) as a Path, a leading ``~`` expanded as the CLI's paths and a config's ``output.dir``
    are (:func:`~trainlab.shell_command.home_expanded`; Python passes no shell: ``out="~/runs/x"`` was made
    as ``./~/runs/x``); anything else, or a ``~user`` of no such user, is one ConfigError naming
    ``argument`` (pathlib's TypeError came out instead)."""
    if isinstance(value, str | os.PathLike) and not isinstance(value, bytes) and str(value):
        try:
            return Path(home_expanded(value))
        except ValueError as exc:
            raise ConfigError(f"{argument}: {exc}") from None
    raise ConfigError(f"{argument} must be a path (str or pathlib.Path); got {short_repr(value)} "
                      f"({type(value).__name__})")


def short_repr(value: Any) -> str:
    """A repr of at most ~80 characters, whatever ``value`` holds (bounded depth and breadth)."""
    shown = " ".join(_REPR.repr(value).split())  # one line: a torch module's repr spans many
    return shown if len(shown) <= 80 else shown[:77] + "..."


def plain_scalar(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (``np.int64(7)`` -> 7, ``np.str_('red')`` -> 'red'), as the
    user wrote it, for :func:`short_repr` in messages; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def counted(n: Any, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, the noun plural unless ``n == 1``: ``plural`` where given, else ``noun + "s"``.

    ``n`` is shown as it is, so a placeholder such as ``"?"`` reads as a plural.

    >>> counted(1, "epoch"), counted(2, "epoch"), counted(3, "batch", "batches")
    ('1 epoch', '2 epochs', '3 batches')
    """
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def layer_count_problem(name: str, options: dict[str, Any]) -> str | None:
    """What is wrong with the depth of model ``name`` with ``options`` (its other config keys), as one clause
    naming the option, its value and :data:`MAX_LAYERS`; None when nothing is. Only the
    :data:`LAYER_BOUNDED_MODELS` (any case) are bounded: a list option of more than :data:`MAX_LAYERS` entries
    (``mlp`` ``hidden``, ``cnn1d``/``cnn2d`` ``channels``: one layer per entry), or an integer option named
    with one of :data:`COUNT_WORDS` (``transformer_encoder`` ``layers``, ``resnet`` ``depth``) above it. A
    user's factory keeps its own meaning of its options. Torch-free, so that the config checks it as it loads
    (before any data is read) and ``trainlab.models.build_model`` before it builds anything."""
    if name.lower() not in LAYER_BOUNDED_MODELS:
        return None
    for key, value in options.items():
        if key == "name":
            continue
        if isinstance(value, list | tuple) and len(value) > MAX_LAYERS:
            return f"option '{key}' lists {len(value):,} layers ({short_repr(value)}); trainlab builds at most " \
                   f"{MAX_LAYERS:,} layers"
        if any(word in key for word in COUNT_WORDS) and isinstance(value, int) and not isinstance(value, bool) \
                and value > MAX_LAYERS:
            return f"option '{key}' is {value:,} layers; trainlab builds at most {MAX_LAYERS:,} layers"
    return None


def shown_name(name: Any) -> str:
    """A column or class name for a one-line message: as written when printable and short, else its
    escaped repr (a quoted CSV header may hold a newline, which would split the message)."""
    text = str(name)
    return text if text.isprintable() and len(text) <= 80 else short_repr(text)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Named(BaseModel):
    """A component: ``name`` plus keyword arguments for its factory."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    def spec(self) -> dict[str, Any]:
        return self.model_dump()


def name_only(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value
