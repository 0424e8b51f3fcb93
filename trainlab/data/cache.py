"""A disk cache for generated datasets (MNIST-1D takes ~5 s to generate; reading it back ~10 ms).

Entries live in :func:`cache_dir` (``$TRAINLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/trainlab``, else
``~/.cache/trainlab``) as ``<name>-<key hash>.npz``, where the key is every argument that shapes
the data plus the generator's version, so a changed argument or package is a new entry. Files are
written pickle-free (``np.savez``, read with ``allow_pickle=False``) and atomically (a temp file in
the same folder, then ``os.replace``), so a reader never sees half an entry and two processes may
fill the same entry at once. A cache folder that cannot be written only costs the regeneration.
``TRAINLAB_CACHE_DIR=off`` turns the cache off.

Both caches read their files through :func:`read_entry`, by one rule: a damaged file (cut short, a byte
changed, a member missing: :data:`DAMAGE`) or one holding other arrays than the caller expects (its
``check``) is one ``warning:`` line naming the file and why; the data is then made again and the file
rewritten atomically, so the next run reads it. A cache never stops a run and never needs deleting by hand.

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
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.atomic import write_with
from trainlab.notices import warn

CACHE_ENV = "TRAINLAB_CACHE_DIR"
FORMAT = 1  # bump when what a cached entry holds changes
# what reading a damaged .npz raises: a cut zip (BadZipFile: "File is not a zip file"), a changed byte (BadZipFile:
# "Bad CRC-32"), a cut or garbled .npy member (ValueError, EOFError), a compressed member's garbled stream
# (zlib.error), a member missing (KeyError), a disk that fails the read (OSError)
DAMAGE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


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


def _why(exc: BaseException) -> str:
    """A read failure in words: a KeyError's message without the quotes ``str`` adds; for bytes that are neither
    a zip nor an .npy (which numpy can only read as a pickle, refused), what they are not, not numpy's advice
    to load them with ``allow_pickle``; else the message or the type."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if "allow_pickle" in str(exc):
        return "not an .npz archive"
    return str(exc) or type(exc).__name__


def read_entry(file: Path, names: Sequence[str] | None, check: Callable[[dict[str, np.ndarray]], str | None] | None,
               remade: str) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` (None: every member) of the cache file ``file``, read whole (each member's CRC-32
    checked), or None when there is none to use: silently when ``file`` does not exist, and with one warning
    naming it when it is damaged (:data:`DAMAGE`) or ``check(arrays)`` says why it is not what the caller
    wrote (other shapes or dtypes). ``remade`` says what the caller does then (``the images are decoded
    again``); it rewrites the file, atomically (:func:`write_npz`)."""
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in (archive.files if names is None else names)}
        why = check(arrays) if check is not None else None
    except FileNotFoundError:  # none yet, or removed since it was listed: nothing to say
        return None
    except DAMAGE as exc:
        why = _why(exc)
    if why is None:
        return arrays
    warn(f"cache file {file} is damaged ({why}), so it is not used: {remade}, and the file is rewritten")
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


def cached(name: str, key: dict[str, Any], generate: Callable[[], dict[str, np.ndarray]],
           check: Callable[[dict[str, np.ndarray]], str | None] | None = None) -> dict[str, np.ndarray]:
    """The arrays ``generate()`` returns for ``key``, from the cache when an entry exists.

    ``generate`` must be a pure function of ``key`` (same key, same arrays). A damaged entry, or one
    ``check`` (the arrays -> why they are not what ``generate`` makes, or None) refuses, is warned of
    (:func:`read_entry`), generated again and rewritten.
    """
    file = entry_path(name, key)
    if file is not None:
        arrays = read_entry(file, None, check, f"the {name} data set is generated again")
        if arrays is not None:
            return arrays
    arrays = {k: np.asarray(v) for k, v in generate().items()}
    if file is not None:
        _write(file, arrays)
    return arrays
