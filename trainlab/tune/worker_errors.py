"""A ``--jobs`` worker's error, said once by the tune process.

A worker that stops on an error (as many trials failed as ``--trials``, a file it cannot write) does not
print it: it writes the line to the pool's folder (``notices.shared_once``) as ``error-<pid>``, and the
tune process, once every worker has ended, raises the first of them as its own error with that worker's
exit code. Two workers meeting the same exhausted study, each with its line, and the pool's "workers
exited with codes [4, 4]" were three ``error:`` lines for one cause; now it is the one.

Where the pool has no folder (none could be made) or the write fails, the worker prints its line itself,
as the CLI would, and the tune process's error says to see the lines above.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from trainlab.errors import TrainlabError

PREFIX = "error-"  # the warnings' files in the same folder are named by a SHA-1: 40 hex digits


class WorkerError(TrainlabError):
    """A worker's error, raised in the tune process with the worker's message and exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


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


def relayed(folder: str | None) -> list[WorkerError]:
    """In the tune process, once the workers have ended: their relayed errors, the earliest first."""
    if folder is None:
        return []
    found: list[tuple[float, WorkerError]] = []
    for path in Path(folder).glob(f"{PREFIX}*"):
        if path.name.endswith(".part"):
            continue
        try:
            record = json.loads(path.read_text())
            found.append((float(record["time"]), WorkerError(str(record["message"]), int(record["exit_code"]))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: that worker's code still makes the tune process's own error
    return [error for _, error in sorted(found, key=lambda item: item[0])]
