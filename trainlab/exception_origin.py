"""Where an exception came from, and its one-line text: what a one-line error quotes of a failure of the
user's code.

A user's factory, metric or schedule that raises is reported on one line naming the component, the
exception and the place in the user's own files that raised it: ``model factory 'mymodels:broken' raised
RuntimeError: boom (at mymodels.py:16)``. :func:`exception_line` gives ``RuntimeError: boom``,
:func:`first_line` the message alone (a multi-line message keeps its first non-blank line), and
:func:`raised_at` ``mymodels.py:16``: the innermost frame of the traceback that is none of trainlab's, an
installed package's or the standard library's; :func:`defined_at` is where a function of the user's is
defined (a callback's hook whose signature is refused before training).
"""

from __future__ import annotations

import dis
import inspect
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TRAINLAB_FOLDER = Path(__file__).resolve().parent


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message, stripped ("" for none): what a one-line error quotes
    of it."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def exception_line(exc: BaseException) -> str:
    """``RuntimeError: boom``: the type's name, ``": "`` and :func:`first_line`; the type's name alone for an
    empty message."""
    first = first_line(exc)
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _library_file(file: Path) -> bool:
    """A file of trainlab, of an installed package (torch, numpy) or of the standard library; also code
    without a file (``<string>``)."""
    if file.name.startswith("<") or file.is_relative_to(_TRAINLAB_FOLDER):
        return True
    if any(part in {"site-packages", "dist-packages"} for part in file.parts):
        return True
    stdlib = sysconfig.get_paths().get("stdlib")
    return bool(stdlib) and file.is_relative_to(Path(stdlib).resolve())


def _working_directory() -> Path | None:
    try:
        return Path.cwd().resolve()
    except OSError:  # the working directory was deleted: absolute paths
        return None


def _resolved(file: str, cwd: Path | None) -> Path:
    path = Path(file)
    return (path if path.is_absolute() or cwd is None else cwd / path).resolve()


def _shown(file: Path, line: int, cwd: Path | None) -> str:
    """``file:line``, the file relative to ``cwd`` when inside it, else absolute."""
    return f"{file.relative_to(cwd) if cwd is not None and file.is_relative_to(cwd) else file}:{line}"


def raised_at(exc: BaseException) -> str | None:
    """``file:line`` where the user's own code raised ``exc`` (or called the library that did): the
    innermost frame of its traceback outside trainlab, installed packages and the standard library
    (:func:`_library_file`), the file relative to the working directory when inside it, else absolute;
    None when every frame is library code (a factory called with arguments it does not take fails in
    trainlab's call)."""
    cwd = _working_directory()
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        file = _resolved(frame.f_code.co_filename, cwd)
        if not _library_file(file):
            found = (file, line)
    if found is None:
        return None
    return _shown(*found, cwd)


def _own_code(filename: str) -> bool:
    """Whether code of ``filename`` (a code object's) is the user's: a file outside trainlab, installed packages
    and the standard library (:func:`_library_file`), or code typed in (``<stdin>``, ``<ipython-input-3-...>``),
    not code a library generated (``<string>``: dataclasses' ``__init__``) nor Python's frozen modules."""
    if filename.startswith("<"):  # not "<string>": dataclasses' and other libraries' generated code is that too
        return filename == "<stdin>" or filename.startswith("<ipython-input")
    return not _library_file(_resolved(filename, _working_directory()))


def _raised_there(exc: BaseException) -> tuple[Any, bool] | None:
    """The innermost frame of ``exc``'s traceback (where it was raised) and whether its instruction there is a
    ``raise`` statement's (``RAISE_VARARGS``: not a call that failed, nor a bare re-raise); None without one."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    opcode = next((instruction.opname for instruction in dis.get_instructions(tb.tb_frame.f_code)
                   if instruction.offset == tb.tb_lasti), None)
    return tb.tb_frame, opcode == "RAISE_VARARGS"


def raised_by_own_statement(exc: BaseException) -> bool:
    """Whether ``exc`` came from a ``raise`` statement of the user's own code (:func:`_own_code`), read from
    the bytecode where it was raised: a model's own refusal (``raise RuntimeError("boom")`` in its forward),
    not a library's error on the values it was given (torch's "mat1 and mat2 shapes cannot be multiplied"
    from a layer, raised in torch's frame or by a tensor op on the user's line), nor the user's re-wording
    of one (``raise ValueError(...) from error``: judged by its cause)."""
    seen: set[int] = set()
    while id(exc) not in seen:  # along ``raise ... from cause`` (a chain may loop: ``raise error from error``)
        seen.add(id(exc))
        raised = _raised_there(exc)
        if raised is None or not raised[1] or not _own_code(raised[0].f_code.co_filename):
            return False
        if exc.__cause__ is None or exc.__cause__.__traceback__ is None:
            return True
        exc = exc.__cause__  # raised from another: where that one came from
    return True


def defined_at(function: Callable[..., Any]) -> str | None:
    """``file:line`` of the ``def`` of ``function`` (a method: its function), written as :func:`raised_at`
    writes a place; None for a callable without Python code of its own (a builtin, a C extension's)."""
    code = getattr(inspect.unwrap(getattr(function, "__func__", function)), "__code__", None)
    if code is None:
        return None
    cwd = _working_directory()
    return _shown(_resolved(code.co_filename, cwd), code.co_firstlineno, cwd)


def failure_text(exc: BaseException) -> str:
    """What a one-line error says of a user's code that raised ``exc``: :func:`exception_line`, then
    `` (at file:line)`` where :func:`raised_at` finds the user's frame (``KeyError: 'x' (at my_code.py:12)``)."""
    where = raised_at(exc)
    return f"{exception_line(exc)}{f' (at {where})' if where else ''}"

