"""A disk cache for generated datasets (MNIST-1D takes ~5 s to generate; reading it back ~10 ms).

Entries live in :func:`cache_dir` (``$TRAINLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/trainlab``, else
``~/.cache/trainlab``) as ``<name>-<key hash>.npz``, where the key is every argument that shapes
the data plus the generator's version, so a changed argument or package is a new entry. Files are
written pickle-free (``np.savez``, read with ``allow_pickle=False``) and atomically (a temp file in
the same folder, then ``os.replace``), so a reader never sees half an entry and two processes may
fill the same entry at once. An unreadable entry is regenerated; a cache folder that cannot be
written only costs the regeneration. ``TRAINLAB_CACHE_DIR=off`` turns the cache off.

:func:`write_npz` is the atomic, pickle-free write both caches use: this one and ``data.cache_dir``
(the decoded arrays of ``image_folder``, :mod:`trainlab.data.images`). A cache is an optimisation,
so a cache that cannot be written never stops a run: this one says nothing (the next run regenerates
in seconds), ``data.cache_dir`` gives one ``warning:`` line naming the cache file and the reason (the
disk full, read-only, permission denied: :func:`not_written`) and the run trains on the arrays it
decoded, as Keras and Hugging Face datasets do with a cache they cannot write.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.atomic import write_with

CACHE_ENV = "TRAINLAB_CACHE_DIR"
FORMAT = 1  # bump when what a cached entry holds changes


def cache_dir() -> Path | None:
    """Where generated datasets are cached, or None when ``TRAINLAB_CACHE_DIR=off``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return None if configured.lower() in ("off", "0", "none") else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "trainlab"


def entry_path(name: str, key: dict[str, Any]) -> Path | None:
    """The file of the entry ``name`` for ``key`` (JSON-serialisable arguments), or None without a cache."""
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "name": name, **key}, sort_keys=True).encode())
    return folder / f"{name}-{digest.hexdigest()[:20]}.npz"


def _read(file: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(file, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def write_npz(file: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``file`` (``np.savez``, pickle-free) atomically, with :func:`trainlab.atomic.write_with`:
    on an OSError (disk full, read-only, permission denied) the temporary is removed and the error names
    ``file``, not the temporary."""
    return write_with(file, lambda handle: np.savez(handle, **arrays))


def not_written(file: Path, exc: OSError) -> str:
    """Why ``file`` was not written, for a warning: the OSError's reason as the system says it (``No space
    left on device``, ``Read-only file system``, ``Permission denied``), and what frees it."""
    reason = exc.strerror or str(exc)
    fix = ("free space there, or remove data.cache_dir" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
           else "make the folder writable, or point data.cache_dir elsewhere")
    return f"{file} not written: {reason} ({fix})"


def _write(file: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically; any failure (read-only or full disk) leaves no partial file and is not an error."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_npz(file, arrays)
    except OSError:
        return


def cached(name: str, key: dict[str, Any], generate: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``generate()`` returns for ``key``, from the cache when an entry exists.

    ``generate`` must be a pure function of ``key`` (same key, same arrays).
    """
    file = entry_path(name, key)
    if file is not None and file.is_file():
        arrays = _read(file)
        if arrays is not None:
            return arrays
    arrays = {k: np.asarray(v) for k, v in generate().items()}
    if file is not None:
        _write(file, arrays)
    return arrays
