"""Resolving ``data.path``: absolute, or relative to ``--data-dir`` / ``TRAINLAB_DATA_DIR`` or the cwd."""

from __future__ import annotations

import os
from pathlib import Path

from trainlab.errors import DataError

DATA_DIR_ENV = "TRAINLAB_DATA_DIR"


def candidates(path: str | os.PathLike[str]) -> list[Path]:
    path = Path(path).expanduser()
    if path.is_absolute():
        return [path]
    tried = []
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        tried.append(Path(root).expanduser() / path)
    tried.append(Path.cwd() / path)
    return tried


def resolve(path: str | os.PathLike[str], expected: str = "") -> Path:
    """The first existing candidate, or a DataError naming every path tried (and what was expected)."""
    tried = candidates(path)
    for candidate in tried:
        if candidate.exists():
            return candidate
    hint = f"; expected {expected}" if expected else ""
    where = ", ".join(str(p) for p in tried)
    return_hint = "" if os.environ.get(DATA_DIR_ENV) else f" (set --data-dir or {DATA_DIR_ENV})"
    raise DataError(f"data file not found: '{path}' (tried {where}){hint}{return_hint}")


def resolve_file(path: str | os.PathLike[str], expected: str = "") -> Path:
    """:func:`resolve`, then refuse a folder where a file is expected (reading it would fail obscurely)."""
    found = resolve(path, expected)
    if found.is_dir():
        hint = f"; expected {expected}" if expected else ""
        resolved = f" (resolved to {found})" if Path(path) != found else ""
        raise DataError(f"data.path '{path}' is a folder, not a file{resolved}{hint}")
    return found
