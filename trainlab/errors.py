"""Errors users see, each carrying the CLI exit code it maps to.

Exit codes: 2 usage or config error, 3 data error, 4 training failed (or an unexpected error),
5 the system: a file could not be written (disk full, read-only), memory ran out (the CLI's
``out of memory ...`` line), or tune's --storage database lost its connection, 128 + N stopped by
signal N (130 SIGINT, 141 SIGPIPE: the reader of the output went away, 143 SIGTERM). Never 1.
The CLI prints ``error: <message>`` on one line and exits with ``exit_code``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_SYSTEM = 5  # an OSError: the disk is full or read-only, a file vanished; a database gone; out of memory
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE's code: `trainlab predict ... | head` once head has read enough


class TrainlabError(Exception):
    """Base of every error trainlab reports to a user; ``str(err)`` is one line."""

    exit_code = 4


class ConfigError(TrainlabError):
    """The config (or a command-line override) is invalid."""

    exit_code = 2


class DataError(TrainlabError):
    """The data cannot be read, or does not fit the model, loss or metrics; also a damaged record of a run
    folder (run.json, model.json, model.safetensors...): a file that exists but cannot be read as written."""

    exit_code = 3


class TrainingError(TrainlabError):
    """Training failed, e.g. the loss became non-finite."""

    exit_code = 4


class RunDirError(TrainlabError):
    """A run folder cannot be used: it exists, is missing, is locked, or is from another version."""

    exit_code = 2


class WriteError(TrainlabError):
    """A file or folder could not be written: the disk is full or read-only, or permission is denied."""

    exit_code = EXIT_SYSTEM


# errors only a write meets: the CLI says "cannot write" for these, "cannot read or write" for other OSErrors
DISK_FULL_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
# a folder or lock that cannot be made for these reasons is the disk's fault (exit 5), not the path's (exit 2)
WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM})


def cannot(exc: OSError, verb: str = "write") -> str:
    """``cannot write (<file>): <reason>`` for an OSError, the file left out when it names none: the words
    every write failure's line starts with (the CLI's, a new run's)."""
    where = f" ({exc.filename})" if exc.filename else ""
    return f"cannot {verb}{where}: {exc.strerror or exc}"


def _is_folder(path: Path) -> bool:
    """``path.is_dir()``, False where the path itself is too long to look at."""
    try:
        return path.is_dir()
    except OSError:
        return False


def name_too_long(exc: OSError) -> str:
    """The line for ENAMETOOLONG, a path's fault (exit 2), not the disk's: the name in the path (``filename``, or
    a rename's ``filename2``) over the file system's limit per file or folder name (NAME_MAX, 255 bytes on
    Linux), else the path over its limit for a whole path (PATH_MAX, 4096), else both limits."""
    from trainlab.run_leftovers import NAME_MAX, name_max

    for filename in (exc.filename, exc.filename2):
        if not filename:
            continue
        path = os.fsdecode(filename)
        folder = Path(path).parent
        while not _is_folder(folder) and folder != folder.parent:  # the file system it would be on: its limits
            folder = folder.parent
        limit = name_max(folder)
        for name in Path(path).parts:
            if len(os.fsencode(name)) > limit:
                shown = name if len(name) <= 40 else f"{name[:20]}...{name[-12:]}"
                return (f"a name in the path is too long: '{shown}' has {len(os.fsencode(name))} bytes, and a file "
                        f"or folder name holds at most {limit}; give a shorter path")
        try:
            path_max = os.pathconf(folder, "PC_PATH_MAX")
        except (OSError, ValueError):
            path_max = 4096
        if len(os.fsencode(os.path.abspath(path))) >= path_max:
            return (f"the path '{path[:40]}...' is too long: {len(os.fsencode(os.path.abspath(path)))} bytes, and a "
                    f"path holds at most {path_max - 1}; give a shorter path")
    return (f"a path is too long: a file or folder name holds at most {NAME_MAX} bytes and a whole path 4095; give "
            "a shorter path")


def folder_error(message: str, exc: OSError) -> TrainlabError:
    """``message`` as a :class:`WriteError` when ``exc`` is the disk's fault, else as a :class:`RunDirError`."""
    return (WriteError if exc.errno in WRITE_ERRNOS else RunDirError)(f"{message}: {exc.strerror or exc}")


class Interrupted(TrainlabError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def passes_user_code(exc: BaseException) -> bool:
    """Whether ``exc``, raised inside a user's callback, schedule, metric or factory, passes the wrapper that
    words the user's failures (a CallbackError, a ConfigError naming their code) as raised: trainlab's own
    errors and the machine's (an OSError: a full disk; memory running out, :func:`~trainlab.out_of_memory.
    is_out_of_memory`), which no change to the user's code would mend."""
    from trainlab.out_of_memory import is_out_of_memory

    return isinstance(exc, TrainlabError | OSError) or is_out_of_memory(exc)
