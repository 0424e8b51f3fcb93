"""Resolving ``data.path``: absolute, or relative to ``--data-dir`` / ``TRAINLAB_DATA_DIR`` or the cwd."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainlab.config_fields import short_repr
from trainlab.errors import DataError

DATA_DIR_ENV = "TRAINLAB_DATA_DIR"


def candidates(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where a data path is looked for, in order: itself when absolute, else under the data folder (``root``,
    by default ``$TRAINLAB_DATA_DIR``), then under the working directory."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return [path]
    tried = []
    root = root if root is not None else os.environ.get(DATA_DIR_ENV)
    if root:
        tried.append(Path(root).expanduser() / path)
    tried.append(Path.cwd() / path)
    return tried


def resolve(path: str | os.PathLike[str], expected: str = "") -> Path:
    """The first existing candidate, or a DataError naming every path tried (and what was expected).

    A relative path found in the working directory while the data folder (``--data-dir`` or
    ``TRAINLAB_DATA_DIR``) is no folder is read, with one warning per such folder and process: the folder
    was likely mistyped, and the file read may not be the one meant."""
    tried = candidates(path)
    for candidate in tried:
        if candidate.exists():
            _warn_if_data_dir_missing(candidate, tried)
            return candidate
    hint = f"; expected {expected}" if expected else ""
    where = ", ".join(str(p) for p in tried)
    root = os.environ.get(DATA_DIR_ENV)
    if Path(path).expanduser().is_absolute():  # --data-dir and the variable only prefix relative paths
        return_hint = ""
    else:
        return_hint = f" (set --data-dir or {DATA_DIR_ENV})" if not root else missing_data_dir(root)
    raise DataError(f"data file not found: {short_repr(str(path))} (tried {where}){hint}{return_hint}")


_WARNED_ROOTS: set[str] = set()  # data folders already warned of as missing, in this process


def _warn_if_data_dir_missing(found: Path, tried: list[Path], root: str | os.PathLike[str] | None = None) -> None:
    root = str(root) if root is not None else os.environ.get(DATA_DIR_ENV)
    if not root or len(tried) < 2 or found != tried[-1] or root in _WARNED_ROOTS:
        return
    missing = missing_data_dir(root)
    if missing:
        from trainlab.notices import warn

        _WARNED_ROOTS.add(root)
        warn(f"{missing.removeprefix('; ')}: relative data paths are read from the working directory "
             f"({Path.cwd()}) instead")


def missing_data_dir(root: str) -> str:
    """``"; the data folder ROOT (--data-dir or TRAINLAB_DATA_DIR) does not exist"`` (or "is not a folder")
    when ``root`` is no folder, for the error of a data path not found in it; ``""`` otherwise. Checked
    only there: commands that read no data files (built-in sets, eval of a run) are not refused for it."""
    folder = Path(root).expanduser()
    if folder.is_dir():
        return ""
    what = "is not a folder" if folder.exists() else "does not exist"
    return f"; the data folder {root} (--data-dir or {DATA_DIR_ENV}) {what}"


def resolve_file(path: str | os.PathLike[str], expected: str = "", what: str = "data.path") -> Path:
    """:func:`resolve`, then refuse a folder where a file is expected (reading it would fail obscurely).
    ``what`` names the path in messages (``data.path``, or predict's input)."""
    found = resolve(path, expected)
    hint = f"; expected {expected}" if expected else ""
    resolved = f" (resolved to {found})" if Path(path) != found else ""
    if found.is_dir():
        raise DataError(f"{what} '{path}' is a folder, not a file{resolved}{hint}")
    if not found.is_file():  # /dev/zero, a FIFO, a socket: reading would never end or never start
        raise DataError(f"{what} '{path}' is not a regular file (a device, pipe or socket){resolved}{hint}")
    return found


# keys of a data section that name files or folders, made absolute by resolve_data_paths
PATH_KEYS = ("path", "train", "val", "test", "tokenizer_path", "cache_dir")


def resolve_data_paths(data: dict[str, Any], data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A copy of a ``data`` config section whose relative paths are absolute, for a run's config.yaml.

    Each string under :data:`PATH_KEYS` that is a relative path is replaced by the first existing
    candidate: ``data_dir / value`` (``data_dir`` defaults to ``$TRAINLAB_DATA_DIR``), then
    ``cwd / value``, the order :func:`resolve` uses. A value with no existing candidate is left as it
    is (loading reports it), except ``cache_dir``, which is made absolute against the cwd (it may not
    exist yet). ``train``/``val``/``test`` are relative to ``path`` when ``path`` is set, so they are
    left as they are then. The run then reads the same files from any working directory.
    """
    resolved = dict(data)
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    for key in PATH_KEYS:
        value = resolved.get(key)
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            if isinstance(value, str) and value.startswith("~"):
                resolved[key] = str(Path(value).expanduser())
            continue
        if key in ("train", "val", "test") and resolved.get("path"):
            continue
        tried = candidates(value, root)
        found = next((p for p in tried if p.exists()), None)
        if found is not None:
            _warn_if_data_dir_missing(found, tried, root)
            resolved[key] = str(found.absolute())
        elif key == "cache_dir":
            resolved[key] = str((Path.cwd() / value).absolute())
    return resolved
