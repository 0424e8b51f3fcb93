"""Atomic file writes: temp file in the same folder, flush, fsync, rename, fsync the folder.

A crash at any moment leaves either the old file or the new one under the final
name, never a half-written file.
"""

from __future__ import annotations

import contextlib
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

from trainlab.errors import ConfigError
from trainlab.run_leftovers import sibling_stem


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
        # a name near NAME_MAX has its start and a hash stand for it (sibling_stem), so that the temporary's
        # 14 more bytes never refuse a name that fits (a 249-byte file name was 'File name too long')
        fd, tmp = tempfile.mkstemp(prefix=f".{sibling_stem(path)}.", suffix=".tmp", dir=path.parent)
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


def append_bytes(path: str | os.PathLike[str], data: bytes) -> int:
    """Append ``data`` to the existing regular file ``path`` in one ``write`` (O_APPEND; repeated only for the
    rest of a short write), then fsync it; returns the file's size after. A write that fails (a full disk
    after part of ``data``) is cut back to the file's size before it (best effort), so the file ends where it
    ended; only a kill during the write can leave part of ``data`` at the end, so a caller appends whole lines
    and rewrites the file (:func:`write_bytes`) when its size is not the one it last wrote. A symbolic link is
    refused (ELOOP), never followed; an OSError names ``path``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except OSError as exc:
        raise named_after(exc, path) from None
    before = None
    try:
        before = os.fstat(fd).st_size
        rest = memoryview(data)
        while rest:
            rest = rest[os.write(fd, rest):]
        os.fsync(fd)
        return os.fstat(fd).st_size
    except OSError as exc:
        if before is not None:
            with contextlib.suppress(OSError):  # a cut row would read as a value (a CSV number cut short)
                os.ftruncate(fd, before)
        raise named_after(exc, path) from None
    finally:
        os.close(fd)


def appended_size(path: str | os.PathLike[str]) -> int | None:
    """``path``'s size in bytes, its link not followed (:func:`append_bytes` refuses links); None when it cannot
    be read. An appender compares it with the size its last write left: another size means the file changed
    (a row cut off by a kill, someone else's write) and is rewritten whole."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


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


RUN_RECORD, RUN_CONFIG = "run.json", "config.yaml"  # what every run folder holds (trainlab.run_records)


def run_folder_around(path: str | os.PathLike[str]) -> Path | None:
    """The run folder that ``path`` (its links followed) lies in, or None: its own folder when that holds
    ``run.json``, else the nearest ancestor, up to the filesystem root, holding ``run.json`` and
    ``config.yaml``. An output written there would replace a run's records."""
    folder = Path(os.path.realpath(path)).parent
    if (folder / RUN_RECORD).exists():
        return folder
    return next((above for above in folder.parents
                 if (above / RUN_RECORD).exists() and (above / RUN_CONFIG).exists()), None)


def _kind(path: Path) -> str:
    """What a file written in place (:func:`is_written_in_place`) is, in words."""
    mode = os.stat(path).st_mode
    if names_descriptor(path):
        return "an open file descriptor"
    return ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device")


def link_target(path: Path) -> Path:
    """The file the symlink ``path`` leads to, which a write through it replaces. Refused (ConfigError): a
    target whose folder does not exist (never created: a dangling link could make any folder), a folder, or
    a file inside a run folder (:func:`run_folder_around`: its records must not be replaced)."""
    target = Path(os.path.realpath(path))
    leads = f"{path} is a symbolic link to {target}"
    if not target.parent.is_dir():
        raise ConfigError(f"{leads}, whose folder {target.parent} does not exist; create it, or give another file")
    if target.is_dir():
        raise ConfigError(f"{leads}, a folder; give the file to write")
    run = run_folder_around(target)
    if run is not None:
        raise ConfigError(f"{leads}, inside the run folder {run}, whose records must not be replaced; "
                          "give a file outside it")
    return target


def check_output_place(path: str | os.PathLike[str]) -> None:
    """Refuse (ConfigError) an output file path that is a folder, or that lies under a file (``notes.txt/a.png``):
    usage errors, not the disk's (the write said ``cannot read or write (d.png): Is a directory``, exit 5)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"output path '{path}' is a folder; give the file to write (e.g. {path / path.name})")
    blocked = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocked is not None:
        raise ConfigError(f"output path '{path}': '{blocked}' is a file, not a folder; give a path in a folder")


def check_output_path(path: str | os.PathLike[str], *, follow_link: bool) -> None:
    """Refuse (ConfigError) an output path that :func:`write_output_bytes` must not write: a folder or a path
    under a file (:func:`check_output_place`); with ``follow_link`` (the user named the path: ``-o``, or the
    Python API's ``out``) a symlink whose target :func:`link_target` refuses. Without it (a default name such
    as ``report.html``, which a cloned folder could hold as a link to ``~/.bashrc``) any symlink, device, FIFO,
    socket or descriptor."""
    path = Path(path)
    check_output_place(path)
    if follow_link:
        if path.is_symlink() and not is_written_in_place(path):
            link_target(path)
        return
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link (to {os.readlink(path)}): give -o {path} to write "
                          "through it, or remove it")
    if is_written_in_place(path):
        raise ConfigError(f"{path} is {_kind(path)}, not a regular file: give -o {path} to write into it, "
                          "or remove it")


def replace_keeping_mode(path: Path, data: bytes) -> Path:
    """:func:`write_bytes`, the new file given the permission bits of the regular file it replaces (a 0600
    file stays 0600; a new file gets :func:`open_temporary`'s)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return write_bytes(path, data)

    def write(handle: BinaryIO) -> None:
        os.fchmod(handle.fileno(), mode)  # before the rename: the data is never readable under wider bits
        handle.write(data)

    return write_with(path, write)


def write_output_bytes(path: str | os.PathLike[str], data: bytes, *, follow_link: bool) -> Path:
    """Write ``data`` to an output file (``predict -o``, ``plot -o``, ``report -o``) after
    :func:`check_output_path`. ``follow_link``: the user named ``path`` (``-o`` given, or the Python API's
    ``out``); a default name that is a symlink, device, FIFO or descriptor is refused, never followed.

    Where the name leads: a symlink's target (:func:`link_target`; never created folders, never in a run
    folder) or a new or regular file is written atomically (:func:`replace_keeping_mode`; the link stays a
    link, a replaced file keeps its permission bits, a new file's folders are created), and a device, FIFO,
    socket or descriptor (:func:`is_written_in_place`: ``/dev/null``, ``/dev/stdout``, a named pipe) is
    opened for writing (appending, as ``>>`` would, where it has an end) and written whole; its errors
    (``/dev/full``'s ENOSPC) name ``path``. Returns the path written."""
    path = Path(path)
    check_output_path(path, follow_link=follow_link)
    if not is_written_in_place(path):
        if path.is_symlink():
            return replace_keeping_mode(link_target(path), data)
        path.parent.mkdir(parents=True, exist_ok=True)
        return replace_keeping_mode(path, data)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND), "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise named_after(exc, path) from None
    return path


def write_output_text(path: str | os.PathLike[str], text: str, *, follow_link: bool) -> Path:
    """:func:`write_output_bytes` of ``text`` encoded as UTF-8."""
    return write_output_bytes(path, text.encode(), follow_link=follow_link)


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
