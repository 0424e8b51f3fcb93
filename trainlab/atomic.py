"""Atomic file writes: temp file in the same folder, flush, fsync, rename, fsync the folder.

A crash at any moment leaves either the old file or the new one under the final
name, never a half-written file.
"""

from __future__ import annotations

import errno
import json
import os
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
