"""Reading a file that someone else may have put there: a regular file, of bounded size.

A run folder, a config or a study may come from elsewhere: a link to ``/dev/zero`` would be read
without end, and opening a FIFO blocks. :func:`read_regular_file` stats the path first and refuses
both before opening, then reads at most ``limit + 1`` bytes. With ``follow_links=False`` (a run folder's
records, which trainlab writes in place) a symbolic link is refused too: a folder sent to you could link
``config.yaml`` to any file of yours, which a report would then copy. Callers turn the exceptions into
their own one-line errors.
"""

from __future__ import annotations

import errno
import os
import stat


class NotRegularFileError(ValueError):
    """The path is a device, a FIFO or a socket (through a link or not)."""


class LinkError(NotRegularFileError):
    """The path is a symbolic link where a file written in place is expected (a run folder's record)."""


class FileTooLargeError(ValueError):
    """The file holds more than the caller's limit."""


def regular_file_info(path: str | os.PathLike[str], follow_links: bool = True) -> os.stat_result:
    """``os.stat(path)`` of a regular file, checked before anything opens it (opening a FIFO would block):
    for a caller that reads the file its own way (safetensors maps it). A link is followed unless
    ``follow_links`` is False (then only the last component is checked: the folder may be a link).

    Raises:
        IsADirectoryError: ``path`` is a folder.
        LinkError: ``path`` is a symbolic link and ``follow_links`` is False.
        NotRegularFileError: ``path`` is not a regular file.
        OSError: it cannot be reached (missing, permission, I/O).
    """
    if not follow_links and os.path.islink(path):
        raise LinkError(f"{path} is a symbolic link, not a file of its folder (a link can point at any file "
                        "on this machine)")
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFileError(f"{path} is not a regular file")
    return info


def read_regular_file(path: str | os.PathLike[str], limit: int | None = None, follow_links: bool = True) -> bytes:
    """The bytes of the regular file at ``path`` (:func:`regular_file_info`), at most ``limit`` of them.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        LinkError: ``path`` is a symbolic link and ``follow_links`` is False.
        NotRegularFileError: ``path`` is not a regular file.
        FileTooLargeError: it holds more than ``limit`` bytes.
        OSError: it cannot be read (missing, permission, I/O).
    """
    regular_file_info(path, follow_links)
    with open(path, "rb") as handle:
        data = handle.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise FileTooLargeError(f"{path} is larger than {limit // 2**20} MiB" if limit >= 2**20
                                else f"{path} is larger than {limit // 1024} KiB")
    return data
