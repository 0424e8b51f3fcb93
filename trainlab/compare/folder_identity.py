"""Which strategies file a comparison folder belongs to: its record ``DIR/.comparison.json``.

``--out`` defaults to ``runs/compare-<strategies file name>``, so two strategies files of one name
(``a/strategies.yaml``, ``b/strategies.yaml``) share a default folder: the second comparison read the first's
runs as its own changed config and trained them again over it, replacing that comparison's runs and
leaderboard, exit 0. The record names the strategies file that made the folder (its resolved absolute path)
and each task's base config; a comparison of another strategies file into the folder is refused before any
run is touched (:func:`refuse_other_source`), while the same file, edited, continues as the rerun it is
(docs/compare.md, "Stopping and starting again"). So does the file that sits where the recorded one sat
relative to the folder: a project copied or moved whole (folder and file together, as ``cp -a exp exp2``)
is the same comparison in its new place, as a tune study folder is. A folder without a record (made before it existed, or by
:func:`~trainlab.compare.command.compare` from dicts, which names no file) is taken as before.

Record: ``{"strategies_file": "/abs/strategies.yaml", "strategies_given": "/abs/current.yaml",
"strategies_from_folder": "../../strategies.yaml",
"base_configs": {"<task>": "/abs/iris.yaml"}}`` (``strategies_from_folder``: the file's path relative to the
folder; ``strategies_given``: the path as given, links kept: a link re-pointed to another version of the
strategies is the same comparison, as the same file edited is); each comparison of the same strategies file adds its tasks' base configs (a task's latest file wins).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.atomic import write_json
from trainlab.errors import ConfigError
from trainlab.records import read_record_object

RECORD_FILE = ".comparison.json"  # hidden, as tune's .tune.study: the folder's bookkeeping, not a result
# present while the folder's leaderboard.json is from an earlier invocation and runs have been trained since
RETRAINING_MARKER = ".comparison.retraining"


@dataclass(frozen=True)
class ComparisonSource:
    """The files a comparison is made of: ``strategies_file`` and each task's base config (``base_configs``),
    resolved absolute paths; ``default_out``: its folder is ``--out``'s default (the refusal's advice differs)."""

    strategies_file: Path
    base_configs: Mapping[str, Path] = field(default_factory=dict)
    default_out: bool = False
    strategies_given: Path | None = None  # the path as given, absolute, links not followed (a "current" link)

    @classmethod
    def of_files(cls, strategies_file: str | Path, base_configs: Mapping[str, str | Path],
                 default_out: bool) -> ComparisonSource:
        """The source with every path resolved (links followed, ``..`` folded): one file, one name; and the
        strategies file's path as given, made absolute (``..`` folded, links kept)."""
        given = Path(os.path.normpath(Path(strategies_file).absolute()))
        return cls(Path(strategies_file).resolve(), {task: Path(path).resolve() for task, path in base_configs.items()},
                   default_out, given)

    def from_folder(self, out: Path) -> str:
        """The strategies file's path relative to the comparison folder ``out`` (both resolved)."""
        return os.path.relpath(self.strategies_file, out.resolve())

    def made(self, out: Path, recorded: Mapping[str, Any]) -> bool:
        """Whether the ``recorded`` comparison of ``out`` is of this strategies file: the same path, the same
        path as given (a link, ``current.yaml -> v2.yaml``, that now names another version: the name
        ``--out``'s default is made of), or the same path relative to ``out`` (the folder and the file were
        copied or moved together)."""
        return (recorded["strategies_file"] == str(self.strategies_file)
                or (self.strategies_given is not None
                    and recorded.get("strategies_given") == str(self.strategies_given))
                or recorded.get("strategies_from_folder") == self.from_folder(out))

    def record(self, out: Path, recorded: Mapping[str, Any] | None) -> dict[str, Any]:
        """The record to write: this source's files, after the base configs ``recorded`` lists for other tasks."""
        earlier = (recorded or {}).get("base_configs")
        bases = {task: path for task, path in earlier.items() if isinstance(path, str)} \
            if isinstance(earlier, dict) else {}
        bases.update({task: str(path) for task, path in self.base_configs.items()})
        given = {} if self.strategies_given is None else {"strategies_given": str(self.strategies_given)}
        return {"strategies_file": str(self.strategies_file), **given, "strategies_from_folder": self.from_folder(out),
                "base_configs": bases}


def recorded_source(out: Path) -> dict[str, Any] | None:
    """``out``'s record as written (a JSON object with a string ``strategies_file``); None where there is none,
    or it cannot be read as one (a damaged record makes the folder one made before records: taken as before)."""
    record = read_record_object(out / RECORD_FILE)
    if record is None or not isinstance(record.get("strategies_file"), str):
        return None
    return record


def refuse_other_source(out: Path, source: ComparisonSource, argument: str) -> None:
    """ConfigError (exit 2) where ``out`` records another strategies file than ``source``'s: its runs are that
    comparison's, which this one would train again over. ``argument``: ``--out`` (the CLI) or ``out`` (Python).

    The advice: with ``--out``'s default, pass ``--out`` (both comparisons then keep their runs); with an
    ``--out`` given, another one. Either way, deleting the folder is how to replace that comparison: compare
    has no ``--overwrite``."""
    recorded = recorded_source(out)
    if recorded is None or source.made(out, recorded):
        return
    setting = f"{argument} DIR" if argument.startswith("--") else f"{argument}=DIR"
    made = (f"{out} holds the comparison of strategies file {recorded['strategies_file']}, and this one's is "
            f"{source.strategies_file}")
    if source.default_out:
        raise ConfigError(f"{made}: {argument}'s default is runs/compare-<strategies file name>, the same for both, "
                          f"and comparing here would train its runs again over that comparison's; pass {setting} "
                          f"to keep both (or delete {out} to replace that comparison)")
    raise ConfigError(f"{argument} {made}: comparing here would train its runs again over that comparison's; "
                      f"give another {argument}, or delete {out} to replace that comparison")


def record_source(out: Path, source: ComparisonSource) -> None:
    """Write ``out``'s record (:meth:`ComparisonSource.record`), once nothing refuses the comparison
    (:func:`refuse_other_source`, damaged run folders) and before any run, where it says something new: a rerun
    of the same command leaves every file of the folder untouched. Best effort: a folder the disk refuses the
    record keeps none (the runs' own writes then report the disk's failure, as without it), and the next
    comparison writes it."""
    recorded = recorded_source(out)
    record = source.record(out, recorded)
    if record == recorded:
        return
    try:
        write_json(out / RECORD_FILE, record)
    except OSError:
        pass


def mark_retraining(out: Path) -> None:
    """Say in ``out`` (:data:`RETRAINING_MARKER`) that a comparison is about to train runs there while the
    folder holds the leaderboard of an earlier invocation: from the first such run until the comparison writes
    its own leaderboard (:func:`clear_retraining`), that leaderboard describes runs that may be gone (a config
    changed, a strategy added), and ``trainlab report`` refuses the folder as unfinished instead of showing its
    numbers beside the new runs. Called only when a run is to be trained: a rerun that trains nothing leaves
    every file as it was."""
    if not (out / RETRAINING_MARKER).is_file():
        write_json(out / RETRAINING_MARKER, {"note": "runs trained since leaderboard.json was written; rerun the "
                                                     "same trainlab compare command to write a new one"})


def clear_retraining(out: Path) -> None:
    """Remove :data:`RETRAINING_MARKER` once ``out``'s new leaderboard is written (nothing when absent)."""
    try:
        (out / RETRAINING_MARKER).unlink()
    except FileNotFoundError:
        pass
