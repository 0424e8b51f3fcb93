"""A ``--jobs`` worker's error, said once by the tune process.

A worker that stops on an error (as many trials failed as ``--trials``, a file it cannot write) does not
print it: it writes the line to the pool's folder (``notices.shared_once``) as ``error-<pid>``, and the
tune process raises the earliest of them as its own error, with that worker's exit code and the error
class of that code, once every worker has ended (or puts it in its interrupt's line): one ``error:``
line however many workers met the same cause.

Where the pool has no folder (none could be made) or the write fails, the worker prints its line itself,
as the CLI would, and the tune process's error says to see the lines above.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from trainlab.errors import EXIT_SYSTEM, ConfigError, DataError, TrainingError, TrainlabError, WriteError

PREFIX = "error-"  # the warnings' files in the same folder are named by a SHA-1: 40 hex digits
_CLASSES = {ConfigError.exit_code: ConfigError, DataError.exit_code: DataError, EXIT_SYSTEM: WriteError}


def worker_error(message: str, exit_code: int, pid: int | None = None) -> TrainlabError:
    """The error a worker stopped on, as the tune process raises it: the class of its exit code (2
    :class:`ConfigError`, 3 :class:`DataError`, 5 :class:`WriteError`, else :class:`TrainingError`, as
    ``tune(jobs=1)`` would raise it), that code, and ``worker_pid``."""
    error = _CLASSES.get(exit_code, TrainingError)(message)
    error.exit_code = exit_code
    error.worker_pid = pid  # type: ignore[attr-defined]
    return error


def relay(folder: str | None, message: str, exit_code: int) -> None:
    """In a worker: leave ``message`` (its error, without ``error:``) for the tune process to say; printed
    here instead where it cannot be left (no folder, a full or read-only temporary folder)."""
    if folder is not None:
        path = Path(folder) / f"{PREFIX}{os.getpid()}"
        part = path.with_name(path.name + ".part")
        try:
            part.write_text(json.dumps({"message": message, "exit_code": exit_code, "time": time.time()}))
            os.replace(part, path)  # whole or absent: the tune process never reads half a line
            return
        except OSError:
            pass
    print(f"error: {message}", file=sys.stderr)


def relayed(folder: str | None) -> list[TrainlabError]:
    """In the tune process: the workers' relayed errors (:func:`worker_error`), the earliest first."""
    if folder is None:
        return []
    found: list[tuple[float, TrainlabError]] = []
    for path in Path(folder).glob(f"{PREFIX}*"):
        if path.name.endswith(".part"):
            continue
        try:
            record = json.loads(path.read_text())
            pid = int(path.name[len(PREFIX):])
            found.append((float(record["time"]), worker_error(str(record["message"]), int(record["exit_code"]), pid)))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: that worker's code still makes the tune process's own error
    return [error for _, error in sorted(found, key=lambda item: item[0])]
