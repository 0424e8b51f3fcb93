"""Where an exception came from, and its one-line text: what a one-line error quotes of a failure of the
user's code.

A user's factory, metric or schedule that raises is reported on one line naming the component, the
exception and the place in the user's own files that raised it: ``model factory 'mymodels:broken' raised
RuntimeError: boom (at mymodels.py:16)``. :func:`exception_line` gives ``RuntimeError: boom``,
:func:`first_line` the message alone (a multi-line message keeps its first non-blank line), and
:func:`raised_at` ``mymodels.py:16``: the innermost frame of the traceback that is none of trainlab's, an
installed package's or the standard library's.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

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


def raised_at(exc: BaseException) -> str | None:
    """``file:line`` where the user's own code raised ``exc`` (or called the library that did): the
    innermost frame of its traceback outside trainlab, installed packages and the standard library
    (:func:`_library_file`), the file relative to the working directory when inside it, else absolute;
    None when every frame is library code (a factory called with arguments it does not take fails in
    trainlab's call)."""
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the working directory was deleted: absolute paths
        cwd = None
    found = None
    for frame, line in traceback.walk_tb(exc.__traceback__):
        file = Path(frame.f_code.co_filename)
        file = (file if file.is_absolute() or cwd is None else cwd / file).resolve()
        if not _library_file(file):
            found = (file, line)
    if found is None:
        return None
    file, line = found
    return f"{file.relative_to(cwd) if cwd is not None and file.is_relative_to(cwd) else file}:{line}"


def failure_text(exc: BaseException) -> str:
    """What a one-line error says of a user's code that raised ``exc``: :func:`exception_line`, then
    `` (at file:line)`` where :func:`raised_at` finds the user's frame (``KeyError: 'x' (at my_code.py:12)``)."""
    where = raised_at(exc)
    return f"{exception_line(exc)}{f' (at {where})' if where else ''}"

