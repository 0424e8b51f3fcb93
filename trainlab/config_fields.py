"""The building blocks of the config's models: bounded integers, strict and named sections, short reprs.

``Int`` refuses booleans (YAML's yes/no) and integers beyond int64; ``Strict`` sections refuse unknown
keys; a ``Named`` section is a registered component: ``name`` plus its factory's keyword arguments.
The ``MAX_*`` bounds turn hostile or mistyped config files into one error line.
"""

from __future__ import annotations

import math
import reprlib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

INT_LIMIT = 2**63  # every count fits a signed 64-bit integer (torch, numpy)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, not a boolean; got {value}")
    if isinstance(value, int) and abs(value) >= INT_LIMIT:
        raise ValueError(f"must be an integer below 2**63; got {short_repr(value)}")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]  # YAML's yes/no/true are not counts


def _number_not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not a boolean; got {value}")
    return value


# YAML's true is not 1.0, and inf or nan (.inf, 1e999, --set x=inf) is no setting
Float = Annotated[float, BeforeValidator(_number_not_bool), Field(allow_inf_nan=False)]

# A config is a few hundred values; these bounds turn hostile or mistyped files into one line
# before anything big is built (YAML alias bombs, absurd layer sizes, thread counts).
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB of YAML
MAX_CONFIG_NODES = 100_000  # values in the config with every alias expanded
MAX_CONFIG_DEPTH = 64  # nesting of mappings and lists
MAX_MODEL_SIZE = 1_000_000  # any integer model option (a layer width, a channel count)
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


def short_repr(value: Any) -> str:
    """A repr of at most ~80 characters, whatever ``value`` holds (bounded depth and breadth)."""
    shown = _REPR.repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


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
