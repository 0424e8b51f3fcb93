"""A comparison's runs that the machine stopped, not their strategy: told apart, retried, and reported.

A run that raised because the disk is full or read-only, a folder or file cannot be created (permission
denied), or memory ran out (:func:`trainlab.out_of_memory.is_out_of_memory`: a MemoryError, or torch's
allocator failing on the CPU or the GPU) did not fail for its config, and may pass when run again. Counting it
as its strategy's failure would rank the strategy on the seeds the machine let finish, and skipping it next
time (as a failure that would repeat is skipped) would leave the leaderboard so for good. So such a run is
*not run*: its ``compare-error.json`` says ``"machine_failure": true``, the leaderboard lists it under
``not_run`` (a missing seed, left out of the statistics, not a failure), the comparison exits 5
(:func:`not_run_error`), and the next invocation trains it again (resumed from its checkpoint where it has
one). So is a run whose worker process a signal killed (``--jobs N``: SIGKILL from the out-of-memory killer or a
user, SIGSEGV: trainlab.compare.pool.death_outcome), whose reason starts :data:`WORKER_DIED`. A failure that
would repeat (the config, the data, the user's code, a divergence) stays failed.
An interrupt is neither: the run is left at its checkpoint (trainlab.compare.runner).

Running out of memory is the machine's once: a config that needs more memory than the machine has would
otherwise be retrained on every invocation and its strategy ranked on the seeds that fit. A run whose
folder already holds the machine's record of running out of memory for the same config on the same data
(the invocation before ran it out of memory too) fails (:func:`out_of_memory_again`), with advice to make the
batch or the model smaller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainlab.compare.busy_run import is_busy
from trainlab.config_fields import counted
from trainlab.errors import DISK_FULL_OR_READ_ONLY, WRITE_ERRNOS, TrainlabError, WriteError, cannot
from trainlab.exception_origin import exception_line, first_line
from trainlab.out_of_memory import is_out_of_memory

MACHINE_ERRNOS = DISK_FULL_OR_READ_ONLY | WRITE_ERRNOS  # full, read-only, quota, I/O error, permission denied
RECORD_KEY = "machine_failure"  # compare-error.json's flag: true for a run the machine stopped
OUT_OF_MEMORY = "out of memory"  # how the reason of a run that ran out of memory starts
WORKER_DIED = "worker died"  # how the reason of a run whose worker process died starts (trainlab.compare.pool)


def is_machine_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the machine's: a :class:`~trainlab.errors.WriteError` (a file or folder that could not
    be written), an OSError whose errno is one of :data:`MACHINE_ERRNOS`, or memory running out
    (:func:`~trainlab.out_of_memory.is_out_of_memory`: a MemoryError, torch's allocator failing on the CPU or the
    GPU), as the CLI tells it (exit 5). Any other OSError (a file not found, a name too long) may well repeat,
    and is not."""
    if isinstance(exc, WriteError) or is_out_of_memory(exc):
        return True
    return isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS


def machine_reason(exc: BaseException) -> str:
    """One line saying what the machine refused, in the CLI's words, without advice (the comparison gives
    its own): ``cannot write (runs/.../metrics.jsonl): No space left on device`` for an OSError (never its
    ``[Errno 28]`` repr), a WriteError's own line up to its advice, ``out of memory (MemoryError: ...)`` (or
    ``(OutOfMemoryError: CUDA out of memory. ...)``, ``(RuntimeError: ... DefaultCPUAllocator: ...)``: the
    exception torch raised, whose message says the device and the size)."""
    if is_out_of_memory(exc):
        return f"{OUT_OF_MEMORY} ({exception_line(exc)})"
    if isinstance(exc, OSError):
        return cannot(exc, "write" if exc.errno in DISK_FULL_OR_READ_ONLY else "read or write")
    line = first_line(exc) if isinstance(exc, TrainlabError) else f"{type(exc).__name__}: {first_line(exc)}"
    return line.split("; ")[0]  # "...: No space left on device; training had not started: rerun ..."


# a reason written before RECORD_KEY existed: "WriteError: ...", "MemoryError...", "OSError: [Errno 28] ..."
_LEGACY_REASON = re.compile(r"(?P<type>\w+)(?::\s*\[Errno (?P<errno>\d+)\])?")
_OS_ERROR_NAMES = frozenset({"OSError", "PermissionError", "IOError"})


def recorded_machine_failure(record: Mapping[str, Any]) -> bool:
    """Whether a run's ``compare-error.json`` (``record``) says the machine stopped it: its
    :data:`RECORD_KEY`; a record written before that key existed, by its reason (a ``WriteError``, a
    ``MemoryError``, or an OSError of one of :data:`MACHINE_ERRNOS`), so that a comparison left with a
    full disk by an earlier version trains those runs again too."""
    if RECORD_KEY in record:
        return record[RECORD_KEY] is True
    match = _LEGACY_REASON.match(str(record.get("reason") or ""))
    if match is None:
        return False
    if match["type"] in ("WriteError", "MemoryError"):
        return True
    return match["type"] in _OS_ERROR_NAMES and match["errno"] is not None and int(match["errno"]) in MACHINE_ERRNOS


def stopped_so_before(previous: Mapping[str, Any] | None, identity: Mapping[str, str | None], kind: str) -> bool:
    """Whether the run's folder held, before this try, the machine's ``compare-error.json`` (``previous``) of a
    failure of ``kind`` (its reason's start: :data:`OUT_OF_MEMORY`, :data:`WORKER_DIED`) for the same config on
    the same data (``identity``: the ``config_hash`` and ``data_fingerprint`` an error record holds; a config
    without a hash is never the same)."""
    if not isinstance(previous, Mapping) or identity.get("config_hash") is None:
        return False
    same_run = all(previous.get(key) == identity.get(key) for key in ("config_hash", "data_fingerprint"))
    return same_run and recorded_machine_failure(previous) and str(previous.get("reason")).startswith(kind)


def stopped_again(reason: str, why: str) -> str:
    """The failure reason of a run the machine stopped with ``reason`` in a second invocation in a row
    (:func:`stopped_so_before`): no longer the machine's, but the config's; ``why``: why, and what to change."""
    return f"{reason} again, as in the invocation before: {why}"


def out_of_memory_again(exc: BaseException, previous: Mapping[str, Any] | None,
                        identity: Mapping[str, str | None]) -> str | None:
    """The failure reason of a run that ran out of memory (``exc``, as
    :func:`~trainlab.out_of_memory.is_out_of_memory` tells) in a second invocation in a row
    (:func:`stopped_so_before` with :data:`OUT_OF_MEMORY`). None otherwise: the first time it is the
    machine's, and not run."""
    if not is_out_of_memory(exc) or not stopped_so_before(previous, identity, OUT_OF_MEMORY):
        return None
    return stopped_again(machine_reason(exc), "this config needs more memory than the machine has; make "
                         "strategy.batch_size or the model smaller (or free memory and delete the run's folder to try "
                         "it again)")


def not_run_error(board: Mapping[str, Any], out: Path) -> WriteError | None:
    """The comparison's error line (exit 5) when the machine stopped some of its runs (the leaderboard's
    ``not_run``, written already): how many, the first with its reason, and to rerun the same command once
    the disk is writable (or memory free), which trains them and nothing finished (where only workers killed
    by a signal stopped them, to rerun it to retry them); None when none. A run
    whose folder another process held (:mod:`trainlab.compare.busy_run`) is not the machine's."""
    missed = [(task, entry["name"], item) for task, table in board["tasks"].items()
              for entry in table["strategies"] for item in entry.get("not_run") or [] if not is_busy(item["reason"])]
    if not missed:
        return None
    task, strategy, first = missed[0]
    total = board["seeds"] * sum(len(table["strategies"]) for table in board["tasks"].values())
    reasons = [str(item["reason"]) for *_, item in missed]
    memory = any(reason.startswith(OUT_OF_MEMORY) for reason in reasons)
    disk = any(not reason.startswith((OUT_OF_MEMORY, WORKER_DIED)) for reason in reasons)
    once = " and ".join(part for part, needed in (("the disk is writable", disk), ("memory is free", memory))
                        if needed)
    them = "it" if len(missed) == 1 else "them"
    # a worker killed by a signal (trainlab.compare.pool.death_outcome) needs nothing done first: rerun
    rerun = f"once {once} to train {them}" if once else f"to retry {them}"
    return WriteError(f"{counted(len(missed), 'run')} of {total} could not run for the machine's reasons "
                      f"({task}/{strategy}/seed-{first['seed']}: {first['reason']}); {out / 'leaderboard.json'} "
                      f"lists {them} under 'not_run', left out of the statistics: rerun the same command {rerun}")
