"""What a comparison's failed runs make of its exit, once the leaderboard is written.

Not one run finished: exit 4 (a TrainingError), unless every failed run was refused on its config or its data
(a :class:`~trainlab.errors.ConfigError` or :class:`~trainlab.errors.DataError`, or a subclass, as its recorded
reason ``"<error class>: <message>"`` names it), which exits 2 or 3 as ``trainlab train`` does for it. Some runs
finished: exit 0, unless some strategy's every run was refused so (``class_weights`` of 2 numbers for 3
classes, a mistake only the data shows, which the checks before the runs cannot see): then 2 or 3, naming
each such strategy, whatever its runs' messages (they may name the seed). A run the machine stopped is no
failure (exit 5, raised before these: :mod:`trainlab.compare.machine_failure`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trainlab.compare.run_actions import ERROR_FILE
from trainlab.errors import ConfigError, DataError, TrainingError

_CLASS_NAME = re.compile(r"[A-Za-z_]\w*")


def refusal_kind(reason: str) -> type[ConfigError] | type[DataError] | None:
    """ConfigError or DataError where a failed run's ``reason`` (``"<error class>: <message>"``, or ``"<error
    class> (at file:line)"`` for an error without a message) names one of them or a subclass
    (``CallbackError``); None for any other failure."""
    match = _CLASS_NAME.match(reason)
    for kind in (ConfigError, DataError):
        family, kinds = [], [kind]
        while kinds:
            family.append(kinds.pop())
            kinds.extend(family[-1].__subclasses__())
        if match is not None and match.group() in {member.__name__ for member in family}:
            return kind
    return None


def _message(reason: str) -> str:
    """A reason without its error class: the message the run's ``error:`` line gave."""
    return reason.split(": ", 1)[1] if ": " in reason else reason


def _refused_kind(entry: dict[str, Any]) -> type[ConfigError] | type[DataError] | None:
    """The kind every run of a leaderboard entry was refused with, where none finished, none is missing and
    every failure is the config's (or every one the data's); else None."""
    reasons = [str(failure.get("reason")) for failure in entry.get("failures") or []]
    if entry["runs"] or entry["missing"] or not entry["failed"] or not reasons:
        return None
    kinds = {refusal_kind(reason) for reason in reasons}
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _refused(board: dict[str, Any]) -> list[tuple[str, dict[str, Any], type[ConfigError] | type[DataError]]]:
    """``(task, entry, kind)`` of each leaderboard entry every run of which was refused (:func:`_refused_kind`)."""
    found = []
    for task, table in board["tasks"].items():
        for entry in table["strategies"]:
            kind = _refused_kind(entry)
            if kind is not None:
                found.append((task, entry, kind))
    return found


def _kind_of(refused: list[tuple[str, dict[str, Any], Any]]) -> type[ConfigError] | type[DataError]:
    """ConfigError (exit 2) where any refusal is the config's, else DataError (exit 3)."""
    return ConfigError if any(kind is ConfigError for *_, kind in refused) else DataError


def _names(board: dict[str, Any], refused: list[tuple[str, dict[str, Any], Any]]) -> str:
    """``'cw3'``, ``'cw3', 'cw4'``, with ``on task 't'`` where the comparison has several tasks."""
    several = len(board["tasks"]) > 1
    return ", ".join(f"'{entry['name']}'" + (f" on task '{task}'" if several else "") for task, entry, _ in refused)


def comparison_error(board: dict[str, Any], out: Path) -> TrainingError | ConfigError | DataError | None:
    """The error the comparison ends with (the module docstring), or None: every run finished, or the ones that
    failed did so in training (a divergence, a crash) beside runs that finished."""
    entries = [entry for table in board["tasks"].values() for entry in table["strategies"]]
    refused = _refused(board)
    where = f"'failures' in {out / 'leaderboard.json'}"
    if not any(entry["runs"] for entry in entries):
        failed = sum(entry["failed"] for entry in entries)
        reasons = {str(f.get("reason")) for entry in entries for f in entry.get("failures") or []}
        # one reason for every run (a data file not found, a model that cannot be built): said here
        shared = f", all for the same reason: {next(iter(reasons))}" if len(reasons) == 1 and failed > 1 else ""
        failing = [entry for entry in entries if entry["failed"]]
        all_refused = bool(failing) and len(refused) == len(failing)
        named = f" (refused on their config or data: {_names(board, refused)})" \
            if all_refused and len(refused) > 1 and not shared else ""
        kind = _kind_of(refused) if all_refused else TrainingError
        return kind(f"no run finished: {failed} of {failed + sum(e['missing'] for e in entries)} runs failed{shared}"
                    f"{named}; the reasons are under {where} (and in each run folder's {ERROR_FILE}, summary.json or "
                    "run.json)")
    if not refused:
        return None
    (_, first, _), several = refused[0], len(refused) > 1
    reason = _message(str(first["failures"][0].get("reason")))
    told = f"'{first['name']}': {reason}; the others' reasons are under {where}" if several else reason
    return _kind_of(refused)(f"{'strategies' if several else 'strategy'} {_names(board, refused)}: every run was "
                             f"refused: {told} (the leaderboard, {out / 'leaderboard.json'}, ranks the other "
                             "strategies; a changed strategy's runs are trained again)")
