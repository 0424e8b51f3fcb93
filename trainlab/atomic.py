"""Atomic file writes: temp file in the same folder, flush, fsync, rename, fsync the folder.

A crash at any moment leaves either the old file or the new one under the final
name, never a half-written file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save as safetensors_bytes


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # elsewhere: the set-and-restore read (not thread-safe, but rare)
    os.umask(current)
    return current


def open_temporary(path: Path) -> tuple[int, str]:
    """``mkstemp`` beside ``path``, with the mode ``open`` would give a new file (0o666 less the umask)
    instead of mkstemp's private 0o600: reports and run folders are shared as any file is."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the caller asked for, not the temporary beside it
        missing = exc.errno == errno.ENOENT and not path.parent.is_dir()
        raise OSError(exc.errno, f"{exc.strerror}{' (its folder does not exist)' if missing else ''}",
                      str(path)) from None
    try:
        os.fchmod(fd, 0o666 & ~umask())
    except OSError:
        pass
    return fd, tmp


def write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """``write(handle)`` into a hidden temporary beside ``path`` (:func:`open_temporary`), fsynced, then
    ``os.replace``d over ``path``: a reader sees the old file or the whole new one. On any failure the
    temporary is removed, and an OSError that names no file (a full disk's ENOSPC) or the temporary names
    ``path`` (:func:`named_after`)."""
    path = Path(path)
    fd, tmp = open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            raise named_after(exc, path) from None
        raise
    fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_with(path, lambda handle: handle.write(data))


def named_after(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """``exc`` naming ``path``: a write's OSError (a full disk's ENOSPC) names no file, or the temporary
    beside the file the caller asked for; the CLI's ``error: cannot write (<file>)`` line names this one."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode())


# the folder of a process's open file descriptors, which /dev/stdout and /dev/fd/N lead to
DESCRIPTOR_FOLDER = re.compile(r"/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/fd")
MAX_LINKS = 40  # as Linux's ELOOP limit: a longer chain is a loop


def names_descriptor(path: str | os.PathLike[str]) -> bool:
    """True when following ``path``'s links passes through a process's open file descriptors
    (``/dev/stdout``, ``/dev/fd/3``, ``/proc/self/fd/1``): what the file is there is the shell's redirection,
    which a rename over its resolved name would not reach (or would wipe, for ``>>``)."""
    current = os.path.abspath(path)
    for _ in range(MAX_LINKS):
        folder = os.path.realpath(os.path.dirname(current))
        if DESCRIPTOR_FOLDER.fullmatch(folder):
            return True
        current = os.path.join(folder, os.path.basename(current))
        if not os.path.islink(current):
            return False
        current = os.path.normpath(os.path.join(folder, os.readlink(current)))
    return False


def is_written_in_place(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` (its links followed) is an existing file that is not a regular one (a character or
    block device, a FIFO, a socket) or is an open file descriptor (:func:`names_descriptor`): such a file is
    opened and written, as a shell's ``>`` does, never replaced by a regular file renamed over it."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) or names_descriptor(path)


def write_output_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a file the user named (``predict -o``, ``plot -o``, ``report -o``) where the name
    leads: a symlink is followed and its target written atomically (:func:`write_bytes`; the link stays a
    link; the target's folder is created), a new or regular file is written atomically, and a device, FIFO,
    socket or descriptor (:func:`is_written_in_place`: ``/dev/null``, ``/dev/stdout``, a named pipe) is opened
    for writing (appending, as ``>>`` would, where it has an end) and written whole; its errors
    (``/dev/full``'s ENOSPC) name ``path``. Returns the path written."""
    if not is_written_in_place(path):
        target = Path(os.path.realpath(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_bytes(target, data)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND), "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise named_after(exc, path) from None
    return Path(path)


def write_output_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_output_bytes` of ``text`` encoded as UTF-8."""
    return write_output_bytes(path, text.encode())


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes of contiguous CPU tensors; tensors sharing storage (tied weights) are copied."""
    plain: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in tensors.items():
        value = value.detach().to("cpu")
        view = (value.untyped_storage().data_ptr(), value.storage_offset()) if value.numel() else (0, id(value))
        if view in seen or not value.is_contiguous():
            value = value.contiguous().clone()
        elif value.numel() and value.untyped_storage().nbytes() != value.numel() * value.element_size():
            value = value.clone()  # a view into a larger buffer: safetensors wants whole storages
        seen.add(view)
        plain[key] = value
    return safetensors_bytes(plain, metadata=metadata)


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor],
                      metadata: dict[str, str] | None = None) -> Path:
    return write_bytes(path, tensors_to_bytes(tensors, metadata))
