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
From Python a number may also be a NumPy scalar (``np.float32(0.5)``, ``np.int64(3)``) or a 0-d tensor, and a
list a 1-D NumPy array or tensor of numbers (``compute_class_weight``'s output as ``class_weights``):
:func:`numbers_read` gives the factory plain floats and lists of them (:func:`plain_numbers`). Inside a list,
text is a number only in the form YAML 1.1 leaves unread (an exponent without a dot: ``1e-4``); a quoted
numeral (``[1, "2", 3]``) is refused, naming the item, as it would be stored as text in the run's records.
Any other type (a tensor of another shape, a callable, a class) and an annotation that cannot be resolved are
not checked: the check only refuses what the annotation rules out. Text that ``float`` reads as no number written
(``1e-400`` as 0.0, ``1e400`` as inf) is no number, and the message says why; a near miss of a ``Literal``
choice (``fan_inn``) names the closest one. A factory may carry ``option_notes``
(``{option: hint}``, the hint a string or a function of the value giving one or None):
:class:`trainlab.registry.Registry` adds the hint to that option's message.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import re
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

import numpy as np

from trainlab.config_fields import DECIMAL_TEXT, underflow_problem
from trainlab.yaml_files import bool_words

_UNCHECKED = object()  # a type this module does not check
# a number PyYAML (YAML 1.1) leaves as text: an exponent without a dot or without a sign (1e-4, 5e3, 1.5e3)
YAML_TEXT_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def option_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The factory's resolved parameter annotations; {} when they cannot be resolved."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - a forward reference that does not resolve: check nothing
        return {}


def _is_number(value: Any) -> bool:
    """An int or float (not a bool), a NumPy scalar or 0-d tensor of a real number, or a string YAML 1.1 left
    unparsed that reads as a finite number (``5e-4`` without a dot is a string to PyYAML; :func:`numbers_read`
    converts it for the factory)."""
    if isinstance(value, str):
        return _text_number_problem(value) is None
    if _is_tensor(value):
        return value.ndim == 0 and _real_dtype(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _text_number_problem(text: str) -> str | None:
    """Why ``text`` is no number a factory can be given; None when it reads as one: "" when Python's ``float``
    does not read it (``'fast'``), else why the 64-bit float it reads as is not the number written: ``inf``,
    ``nan`` and ``1e400`` (read as inf) are not finite, and ``1e-400`` reads as 0.0
    (:func:`~trainlab.config_fields.underflow_problem`, the config's own words for ``1.0e-400``); text other than
    decimal digits (``1_0``, ``٠.٥``), which ``float`` reads, is refused as the config's number fields refuse it."""
    try:
        number = float(text)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return f"{text.strip()} is not a finite number (a 64-bit float reads it as {number}); write a finite number"
    if not DECIMAL_TEXT.match(text):  # float() reads '1_0' as 10 and other scripts' digits ('٠.٥' as 0.5)
        return (f"{text.strip()} is no decimal number (the config's numbers are written with the digits 0-9, a "
                "point and an exponent, e.g. 10, 0.5 or 1e-3)")
    return underflow_problem(text)


def _is_tensor(value: Any) -> bool:
    """``value`` is a torch tensor (looked up, not imported: a config is read without torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_quoted_numeral(value: Any) -> bool:
    """Text that reads as a number but that YAML would have read as one unquoted (``"2"``, ``"0.5"``): written
    in quotes (or passed as a str from Python), not YAML 1.1's unread exponent form (``1e-4``)."""
    return isinstance(value, str) and _is_number(value) and not YAML_TEXT_NUMBER.fullmatch(value.strip())


def _as_list(value: Any) -> list[Any] | tuple[Any, ...] | None:
    """``value`` as the list it stands for: a list or tuple as it is, a 1-D NumPy array or tensor of real
    numbers as a list of Python numbers (:func:`plain_numbers`); None for anything else."""
    if isinstance(value, list | tuple):
        return value
    if (isinstance(value, np.ndarray) or _is_tensor(value)) and value.ndim == 1:
        plain = plain_numbers(value)
        return plain if isinstance(plain, list) else None
    return None


def _real_dtype(array: Any) -> bool:
    """The array or tensor holds integers or floats (not bools, complex numbers, text or objects)."""
    if _is_tensor(array):
        return not (array.dtype.is_complex or array.dtype == sys.modules["torch"].bool)
    return array.dtype.kind in "iuf"


def plain_numbers(value: Any) -> Any:
    """``value`` with NumPy and torch numbers made plain Python, for a factory and for a config's records
    (YAML, JSON): a NumPy scalar or 0-d tensor of a real number as its ``float``/``int``, a 1-D array or
    tensor of real numbers as a list of them, lists, tuples and dicts item by item; anything else (text, an
    array of another shape or of text, a bool array) as it is."""
    if isinstance(value, np.ndarray) or _is_tensor(value):
        return value.tolist() if value.ndim <= 1 and _real_dtype(value) else value  # Python floats and ints
    if isinstance(value, np.generic) and value.dtype.kind in "iuf":
        return value.item()
    if isinstance(value, list | tuple):
        return type(value)(plain_numbers(item) for item in value)
    if isinstance(value, dict):
        return {key: plain_numbers(item) for key, item in value.items()}
    return value


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
        value = _as_list(value)
        if value is None:
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return False
            items = list(zip(value, args, strict=True))
        else:
            items = [(item, args[0]) for item in value] if args else []
        if any(_is_quoted_numeral(item) and _refuses_text(item_hint) for item, item_hint in items):
            return False  # [1, "2", 3] for numbers: text in the records (mismatch names the item)
        results = [_fits(item, item_hint) for item, item_hint in items]
        if any(r is False for r in results):
            return False
        return True
    return _UNCHECKED


def _refuses_text(hint: Any) -> bool:
    """``hint`` takes no text (a number type): a quoted numeral given for it would be kept as text."""
    return _fits("not a number", hint) is False


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


def _checked_throughout(hint: Any) -> bool:
    """Every type in ``hint`` is one :func:`_fits` checks (no ``Any``, tensor or class that may take an array
    as it is): NumPy and torch numbers given for it are read as plain ones (:func:`plain_numbers`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (float, int, bool, str, type(None)) or origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType, tuple, list, collections.abc.Sequence):
        return all(_checked_throughout(arg) for arg in args if arg is not Ellipsis)
    return False


def _number_read(value: Any, hint: Any) -> Any:
    if _checked_throughout(hint):
        value = plain_numbers(value)  # np.float32(0.5) -> 0.5, an array or tensor of numbers -> a list
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
            return option, _describe(hint) + _quoted_item_note(value, hint) + _unread_number_note(value) \
                + _closest_literal_note(value, hint) + _yaml_word_note(value, hint)
    return None


def _unread_number_note(value: Any) -> str:
    """``; 1e-400 is too small for a 64-bit float (...)`` for text written as a number that reads as none a
    factory can take (:func:`_text_number_problem`: YAML 1.1 leaves ``1e-400`` and ``1e400`` as text, which
    ``float`` reads as 0.0 and inf), naming the list item that holds it; "" otherwise."""
    items = _as_list(value)
    for index, item in [(None, value)] if items is None else list(enumerate(items)):
        problem = _text_number_problem(item) if isinstance(item, str) else None
        if problem:
            return f"; {problem}" if index is None else f"; item {index}: {problem}"
    return ""


def _closest_literal_note(value: Any, hint: Any) -> str:
    """`` (did you mean 'fan_in'?)`` for text close to one of ``hint``'s ``Literal`` choices (``fan_inn``;
    :func:`~trainlab.registry.did_you_mean`: letter case aside, or difflib's closest); "" otherwise."""
    from trainlab.registry import did_you_mean  # imported here: the registry imports this module

    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    literals = [h for h in (typing.get_args(hint) if union else (hint,)) if typing.get_origin(h) is typing.Literal]
    choices = [str(choice) for literal in literals for choice in typing.get_args(literal) if isinstance(choice, str)]
    if not isinstance(value, str) or not choices:
        return ""
    hint_text = did_you_mean(value, choices)  # "; did you mean 'x'?"
    return f" ({hint_text.removeprefix('; ')})" if hint_text else ""


def _yaml_word_note(value: Any, hint: Any) -> str:
    """``; item 0 was read as the boolean true: YAML reads on, yes and true unquoted so; quote the word ('on')``
    where ``hint`` takes text and ``value`` (or a list item) is a boolean: a CSV column named ``on`` listed in
    ``categorical: [on]`` was refused as ``got [True]``, naming no cause. "" otherwise."""
    if "string" not in _describe(hint):
        return ""
    items = _as_list(value)
    for index, item in [(None, value)] if items is None else list(enumerate(items)):
        if isinstance(item, bool):
            where = "it was" if index is None else f"item {index} was"
            return (f"; {where} read as the boolean {str(item).lower()}: YAML reads {bool_words(item)} unquoted so; "
                    "quote the word")
    return ""


def _quoted_item_note(value: Any, hint: Any) -> str:
    """`` (item 1 is the text '2': write the number without quotes)`` for a list holding a quoted numeral
    (:func:`_is_quoted_numeral`) where ``hint``'s items are numbers; "" otherwise."""
    items = _as_list(value) or []
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    lists = [h for h in (typing.get_args(hint) if union else (hint,))
             if typing.get_origin(h) in (tuple, list, collections.abc.Sequence)]
    numbers_only = bool(lists) and all(_refuses_text(arg) for h in lists for arg in typing.get_args(h)
                                       if arg is not Ellipsis)
    quoted = [index for index, item in enumerate(items) if numbers_only and _is_quoted_numeral(item)]
    if not quoted:
        return ""
    return f" (item {quoted[0]} is the text {items[quoted[0]]!r}: write the number without quotes)"
