"""A comparison's run whose folder another live process holds: not run this time, and no failure.

``trainlab resume`` of one of the comparison's runs (or a ``train`` into its folder) holds that run folder's
lock (:class:`trainlab.run_lock.RunLock`) while it runs, and the comparison's own resume of the run is then
refused (``run folder ... is in use by process N``). That says nothing about the run's strategy, and it
passes once that process ends, so the run is *not run*, as one the machine stopped is
(:mod:`trainlab.compare.machine_failure`), with one difference: nothing is recorded in its folder (the
other process owns it). Its reason, ``busy: process N holds its folder (lock ...)``, goes to the
leaderboard's ``not_run``; the comparison exits 2 (:func:`busy_error`, the code of every "in use" refusal),
and the next invocation resumes the run from its newest checkpoint.

A ``compare-error.json`` that an earlier version wrote for such a refusal (``RunDirError: run folder ... is
in use by ...``, with the config hash, which made the run a permanent failure) is read as not the run's
failure either (:func:`recorded_busy`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainlab.config_fields import counted
from trainlab.errors import RunDirError

BUSY = "busy: "  # how a busy run's reason starts (the leaderboard's not_run, the run's line)

# trainlab.run_lock.RunLock.acquire's refusal: "run folder F is in use by process N (lock F/.lock); wait ..."
_IN_USE = re.compile(r" is in use by (?P<owner>process \d+|another process) \(lock (?P<lock>.+)\); wait for it")
_LEGACY_RECORD = re.compile(r"RunDirError: run folder .* is in use by (process \d+|another process) \(lock ")


def busy_reason(exc: BaseException) -> str | None:
    """``busy: process N holds its folder (lock F/.lock)`` when ``exc`` is the refusal of a run folder
    locked by another process; None for any other error (a finished run, a folder of another version...)."""
    if not isinstance(exc, RunDirError):
        return None
    match = _IN_USE.search(str(exc))
    if match is None:
        return None
    return f"{BUSY}{match['owner']} holds its folder (lock {match['lock']})"


def is_busy(reason: Any) -> bool:
    """Whether a not-run ``reason`` is a busy folder's (:func:`busy_reason`), not the machine's."""
    return str(reason).startswith(BUSY)


def recorded_busy(record: Mapping[str, Any]) -> bool:
    """Whether a run's ``compare-error.json`` (``record``) is an earlier version's record of a folder in use
    by another process: no failure of the run, set aside as the machine's are."""
    return _LEGACY_RECORD.match(str(record.get("reason") or "")) is not None


def busy_error(board: Mapping[str, Any], out: Path) -> RunDirError | None:
    """The comparison's error line (exit 2) when another process held the folders of some of its runs (the
    leaderboard's ``not_run`` with a busy reason, written already): how many, the first with its reason, and
    to rerun the same command once that process has ended, which resumes them; None when none was."""
    busy = [(task, entry["name"], item) for task, table in board["tasks"].items()
            for entry in table["strategies"] for item in entry.get("not_run") or [] if is_busy(item["reason"])]
    if not busy:
        return None
    task, strategy, first = busy[0]
    total = board["seeds"] * sum(len(table["strategies"]) for table in board["tasks"].values())
    them, its = ("it", "its") if len(busy) == 1 else ("them", "their")
    return RunDirError(f"{counted(len(busy), 'run')} of {total} not run: another process held {its} folder "
                       f"({task}/{strategy}/seed-{first['seed']}: {first['reason']}); {out / 'leaderboard.json'} "
                       f"lists {them} under 'not_run', left out of the statistics: rerun the same command once "
                       f"that process has ended to resume {them}")
