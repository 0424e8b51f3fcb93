"""A config option's value checked against the type its factory declares, before the factory runs.

Component options (``strategy.optimizer.momentum``, ``model.dropout``, ``strategy.init.std``) reach
their factory as keyword arguments. A value of the wrong kind used to fail inside it, or later inside
torch, with Python's words: ``'<=' not supported between instances of 'float' and 'str'``,
``tuple index out of range`` (``betas: [0.9]``), ``_fused_adam_() received an invalid combination``
(``amsgrad: "yes"``); or it passed silently (``momentum: true`` read as 1.0). :func:`mismatch` reads
the factory's annotation and says what was expected:

    float                -> a number (an int is one, and so is a string such as "5e-4"; true/false is not)
    int                  -> a whole number (3 or 3.0)
    bool                 -> true or false
    str                  -> a string
    None                 -> null
    tuple[A, B]          -> a list of exactly 2 items, each checked
    tuple[A, ...], list[A], Sequence[A] -> a list, each item checked
    Literal[...]         -> one of the literals
    A | B                -> either
Any other type (a tensor, a callable, a class) and an annotation that cannot be resolved are not
checked: the check only refuses what the annotation rules out. A factory may carry ``option_notes``
(``{option: hint}``): :class:`trainlab.registry.Registry` adds the hint to that option's message.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
import typing
from collections.abc import Callable
from typing import Any

_UNCHECKED = object()  # a type this module does not check


def option_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's resolved parameter annotations; {} when they cannot be resolved."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - a forward reference that does not resolve: check nothing
        return {}


def _is_number(value: Any) -> bool:
    """An int or float (not a bool), or a string YAML 1.1 left unparsed that reads as a finite number
    (``5e-4`` without a dot is a string to PyYAML; :func:`numbers_read` converts it for the factory)."""
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return "a number"
    if hint is int:
        return "a whole number"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if hint is type(None):
        return "null"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a) for a in args))
    if origin is tuple and args and args[-1] is not Ellipsis:
        kinds = list(dict.fromkeys(_describe(a) for a in args))
        if len(kinds) == 1:
            return f"a list of {len(args)} {_plural(kinds[0])}"
        return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
    if origin in (tuple, list, collections.abc.Sequence) and args:
        return f"a list of {_plural(_describe(args[0]))}"
    return getattr(hint, "__name__", str(hint))


def _plural(kind: str) -> str:
    """'a number' -> 'numbers', 'a whole number or null' -> 'whole numbers or nulls'."""
    return " or ".join(part.removeprefix("a ") + "s" for part in kind.split(" or "))


def _fits(value: Any, hint: Any) -> bool | object:
    """True / False, or :data:`_UNCHECKED` for a type this module does not check."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return _UNCHECKED
    if hint is float:
        return _is_number(value)
    if hint is int:
        return _is_number(value) and not isinstance(value, str) and float(value).is_integer()
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        results = [_fits(value, a) for a in args]
        if any(r is True for r in results):
            return True
        return _UNCHECKED if any(r is _UNCHECKED for r in results) else False
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False
            items = list(zip(value, args, strict=True))
        else:
            items = [(item, args[0]) for item in value] if args else []
        results = [_fits(item, item_hint) for item, item_hint in items]
        if any(r is False for r in results):
            return False
        return True
    return _UNCHECKED


def numbers_read(factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with each number YAML 1.1 left as text (``1e-4``, ``5e-3``: an exponent without a dot)
    read as the float it is, where the option's annotation takes a number and no string: the factories get
    ``0.0001``, not ``'1e-4'``; and each whole-number float (``3.0``, which :func:`mismatch` lets through as
    a whole number) as the int it is, where the annotation takes an int and no float: torch refuses a float
    size ("type must be tuple of ints, but got float"). Lists of numbers too; anything else is returned as
    it is."""
    hints = option_hints(factory)
    return {option: _number_read(value, hints[option]) if option in hints else value
            for option, value in options.items()}


def _number_read(value: Any, hint: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and _takes_whole_number(hint):
        return int(value)
    if isinstance(value, str):
        return float(value) if _takes_number_not_text(hint) and _is_number(value) else value
    if isinstance(value, list | tuple):
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):  # Sequence[float] | None: the list's own hint
            sequences = [a for a in args if typing.get_origin(a) in (tuple, list, collections.abc.Sequence)]
            if len(sequences) != 1:
                return value
            origin, args = typing.get_origin(sequences[0]), typing.get_args(sequences[0])
        if origin in (tuple, list, collections.abc.Sequence) and args:
            hints = list(args) if origin is tuple and args[-1] is not Ellipsis else [args[0]] * len(value)
            if len(hints) == len(value):
                return type(value)(_number_read(item, item_hint) for item, item_hint in zip(value, hints, strict=True))
    return value


def _takes_number_not_text(hint: Any) -> bool:
    """The annotation takes a float and no string (``float``, ``float | None``, not ``float | str``)."""
    if hint is float:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return float in args and str not in args and not any(typing.get_origin(a) is typing.Literal for a in args)
    return False


def _takes_whole_number(hint: Any) -> bool:
    """The annotation takes an int and no float (``int``, ``int | None``, not ``float | int``)."""
    if hint is int:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return int in args and float not in args
    return False


def mismatch(factory: Callable[..., Any], options: dict[str, Any]) -> tuple[str, str] | None:
    """(option, what it must be) for the first option whose value its annotation rules out, else None."""
    hints = option_hints(factory)
    for option, value in options.items():
        hint = hints.get(option)
        if hint is not None and _fits(value, hint) is False:
            return option, _describe(hint)
    return None
