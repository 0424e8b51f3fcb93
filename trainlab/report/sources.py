"""Reading what a report shows: run folders and comparison folders, as plain records.

A run folder (see :mod:`trainlab.run_folder`) gives a :class:`RunRecords`: its resolved
config, its metric records split into curve records and event records (records with an
``"event"`` key), its summary and run.json. A comparison folder (``trainlab compare``) is
``DIR/leaderboard.json`` plus ``DIR/runs/<task>/<strategy>/seed-<k>/``; it gives a
:class:`Comparison`. Missing optional files (summary.json of a run that never finished,
metrics.jsonl of a run that never logged) read as empty, so a partly failed comparison
still reports; a finished run without its summary.json is refused, as ``trainlab compare`` refuses
it (:func:`refuse_missing_summary`); a path that is neither kind raises :class:`ConfigError`.

A folder may be someone else's, and its records end up in an HTML page: every record is read
bounded and never through a symbolic link (:func:`~trainlab.records.read_record_text`; config.yaml
through :func:`~trainlab.yaml_files.load_yaml_file`, with its size, alias and depth limits), and a
record that is damaged, nested too deeply or of the wrong type is one DataError or ConfigError line; a
folder or record that cannot be read (permission denied) is one DataError naming it (exit 3, never an
OSError, which the CLI reports as a write that failed: :func:`~trainlab.run_records.is_record_file`). A
metrics.jsonl line that is damaged is left out of the curves with one ``warning:`` line on stderr
(:func:`read_metrics`), as the rest of the file is still worth showing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.code_policy import resume_command_words
from trainlab.compare.folder_identity import RECORD_FILE, RETRAINING_MARKER
from trainlab.errors import ConfigError, DataError
from trainlab.folder_owner import written_by
from trainlab.records import (
    FIT_RECORDS,
    is_epoch_record,
    is_finite_number,
    read_metrics_file,
    read_record_text,
)
from trainlab.run_lock import LOCK, holder
from trainlab.run_records import check_readable, is_fit_records, is_record_file, unreadable
from trainlab.shell_command import quoted_command
from trainlab.yaml_files import load_yaml_file

LEADERBOARD = "leaderboard.json"
SEED_FOLDER = re.compile(r"^seed-(\d+)$")
CURVES = "the report's curves"  # what a metrics.jsonl's damaged lines are left out of, as its warning says
# the status of a run whose run.json says running while no process writes it: killed before it finished
STOPPED = "stopped"
DIVERGED_AT = re.compile(r"diverged at step (\d+)")


@dataclass
class RunRecords:
    """One run folder, read."""

    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]  # metric records in file order (epoch and step records)
    events: list[dict[str, Any]]  # records with an "event" key
    summary: dict[str, Any]
    info: dict[str, Any]
    seed: int | None = None

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.config.get("name") or self.path.name)

    @property
    def status(self) -> str:
        """run.json's status (else summary.json's); ``stopped`` for a run.json that says ``running`` while no
        process holds the folder's lock (:func:`writer_gone`): the run was killed before it finished."""
        status = str(self.info.get("status") or self.summary.get("status") or "unknown")
        return STOPPED if status == "running" and self.writer_gone else status

    @property
    def writer_gone(self) -> bool:
        """Whether no live process holds the run folder's lock (:func:`~trainlab.run_lock.holder`: no ``.lock``,
        or the process it names is gone). A running run holds it to its end; a killed one leaves its file."""
        return holder(self.path) is None

    @property
    def stop_reason(self) -> str | None:
        """Why the run ended: summary.json's ``stop_reason``, or for a diverged run its ``reason``; for a
        :data:`STOPPED` run, that its writer is gone and how to go on."""
        reason = self.summary.get("stop_reason") or self.summary.get("reason")
        if not reason and self.status == STOPPED:
            return (f"writer gone, not finished (killed?); resume with "
                    f"{quoted_command(*resume_command_words(self.path))}")
        return str(reason) if reason else None

    @property
    def loss(self) -> str:
        """The loss the run trained: summary.json's ``loss`` (``huber``), else its config's ``strategy.loss`` (a
        name, or a mapping's ``name``); ``?`` where neither says."""
        if isinstance(self.summary.get("loss"), str):
            return self.summary["loss"]
        strategy = self.config.get("strategy")
        loss = strategy.get("loss") if isinstance(strategy, Mapping) else None
        loss = loss.get("name") if isinstance(loss, Mapping) else loss
        return str(loss) if loss else "?"

    @property
    def divergence_step(self) -> int | None:
        """The step whose loss (or weights) made a diverged run stop: the step its last ``divergence`` event
        names, else the one its reason names (``training diverged at step 5: ...``); None for a run that did
        not diverge. The divergence guard reads the losses every few steps (``check_every``), so the run's
        ``steps`` (where it stopped) can be past this step."""
        if self.status != "diverged":
            return None
        steps = [e.get("step") for e in self.events if e.get("event") == "divergence"]
        if steps and isinstance(steps[-1], int) and not isinstance(steps[-1], bool):
            return steps[-1]
        found = DIVERGED_AT.search(self.stop_reason or "")
        return int(found.group(1)) if found else None

    def progress(self) -> tuple[Any, Any, Any, bool]:
        """(epochs run, steps, training seconds, from_records): summary.json's ``epochs_run``, ``steps`` and
        ``train_time_s``, each it lacks from the records (a diverged run's summary keeps only its ``steps``):
        the last epoch record's ``epoch`` (epochs completed), the last ``step`` and the last ``elapsed_s`` of any
        record. ``from_records``: the summary has none of them (still running, killed). None where neither has
        one."""
        given = [self.summary.get(key) for key in ("epochs_run", "steps", "train_time_s")]
        epochs = [r["epoch"] for r in self.records if is_epoch_record(r) and is_finite_number(r.get("epoch"))]
        steps = [r["step"] for r in self.records if is_finite_number(r.get("step"))]
        clock = [r["elapsed_s"] for r in self.records if is_finite_number(r.get("elapsed_s"))]
        recorded = max(epochs, default=None), max(steps, default=None), max(clock, default=None)
        found = tuple(value if value is not None else record for value, record in zip(given, recorded, strict=True))
        return (*found, all(value is None for value in given) and any(value is not None for value in found))

    def split_metric(self, key: str) -> float | None:
        """``test_accuracy`` -> summary["test"]["accuracy"]; ``train_time_s`` -> summary["train_time_s"]."""
        if key in self.summary and not isinstance(self.summary[key], dict):
            return _number(self.summary[key])
        split, _, metric = key.partition("_")
        block = self.summary.get(split)
        if isinstance(block, dict):
            return _number(block.get(metric))
        return None


@dataclass
class Comparison:
    """A ``trainlab compare`` folder: the leaderboard and every run under ``runs/``."""

    path: Path
    leaderboard: dict[str, Any]
    runs: dict[str, dict[str, list[RunRecords]]] = field(default_factory=dict)  # task -> strategy -> seeds

    @property
    def tasks(self) -> list[str]:
        return list(self.leaderboard.get("tasks") or self.runs)

    def strategies(self, task: str) -> list[dict[str, Any]]:
        """The leaderboard entries of ``task``, ranked (rank 1 first; unranked last, in file order)."""
        entries = list(((self.leaderboard.get("tasks") or {}).get(task) or {}).get("strategies") or [])
        return sorted(entries, key=lambda e: (e.get("rank") is None, e.get("rank") or 0))


def _number(value: Any) -> float | None:
    return float(value) if is_finite_number(value) else None


def _read_json(path: Path, default: Any) -> Any:
    """The JSON in ``path`` (``default`` when there is no such file); DataError when it cannot be read."""
    if not is_record_file(path):
        return default
    try:
        return json.loads(read_record_text(path))
    except OSError as exc:
        raise unreadable(path, exc) from None
    except ValueError as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}; {DAMAGED_FIX}") from None
    except RecursionError:
        raise DataError(f"cannot read {path}: its JSON is nested too deeply; {DAMAGED_FIX}") from None


# what to do with a record file of a run or comparison that is damaged (cut off by a full disk, edited)
DAMAGED_FIX = "the file was damaged or changed: restore it from a copy, or leave that folder out"


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (summary.json, run.json), {} when there is no such file; DataError
    when it cannot be read or holds another type."""
    record = _read_json(path, {})
    if not isinstance(record, dict):
        raise DataError(f"{path} holds a JSON {type(record).__name__}, not an object; the file was changed or "
                        "damaged: restore it or leave the run out of the report")
    return record


def read_metrics(path: Path, left_out_of: str | None = CURVES) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(curve records, event records) from a metrics.jsonl, read as :func:`~trainlab.records.parse_metrics`
    reads it: a damaged line (torn, not JSON, nested too deeply) is left out, and one warning line on stderr
    names it as left out of ``left_out_of`` (:func:`~trainlab.records.damaged_lines_warning`); None: no
    warning, for a caller that has said so already (``trainlab compare`` warns as it reads its runs, then
    writes their report). An unreadable file is a DataError."""
    if not is_record_file(path):
        return [], []
    try:
        parsed = read_metrics_file(path, left_out_of)
    except OSError as exc:
        raise unreadable(path, exc) from None
    except ValueError as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
    return parsed.records, parsed.events


def is_run_folder(path: Path) -> bool:
    """``path`` holds a run.json or a config.yaml; a folder that cannot be read is a DataError naming it
    (:func:`~trainlab.run_records.is_record_file`), as is every record of it that cannot be read."""
    return _is_folder(path) and (is_record_file(path / "run.json") or is_record_file(path / "config.yaml"))


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError as exc:  # its parent cannot be searched
        raise unreadable(path.parent, exc, "folder") from None


def _subfolders(folder: Path) -> list[Path]:
    """The folders in ``folder`` (none when it is absent), sorted; DataError when it cannot be listed (a
    comparison whose runs could not be seen would be reported as having none)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(entry.path) for entry in entries if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise unreadable(folder, exc, "folder") from None


def is_unfinished_comparison(path: Path) -> bool:
    """``path`` is a ``trainlab compare`` folder without its leaderboard.json yet: compare was stopped (killed,
    Ctrl-C, the machine) or is still running. Compare writes its folder's record (:data:`~trainlab.compare.folder_identity.RECORD_FILE`)
    under its lock before any run, then each run at ``runs/<task>/<strategy>/seed-<k>/``, and the leaderboard
    only once every run is done; either of the first two is enough (a comparison started from Python without a
    strategies file has no record). A folder whose leaderboard.json is an earlier invocation's, with runs trained
    since (:data:`~trainlab.compare.folder_identity.RETRAINING_MARKER`), is unfinished too: its numbers are not
    those of the runs there now."""
    if is_record_file(path / RETRAINING_MARKER):
        return True
    if is_record_file(path / LEADERBOARD):
        return False
    if is_record_file(path / RECORD_FILE):  # written by compare before any run: the strategies it belongs to
        return True
    return any(SEED_FOLDER.match(seed.name) and is_run_folder(seed)
               for task in _subfolders(path / "runs") for strategy in _subfolders(task) for seed in _subfolders(strategy))


def unfinished_comparison_text(path: Path) -> str:
    """The refusal of an unfinished comparison folder (:func:`is_unfinished_comparison`): how to finish it, or
    to report its run folders; while a process holds its lock (``.lock``), that it is still running."""
    runs = f"trainlab report {shlex.quote(str(path))}/runs/*/*/*"
    running = holder(path)
    state = (f"its {LEADERBOARD} is from an earlier trainlab compare, and runs were trained since"
             if is_record_file(path / RETRAINING_MARKER) else f"no {LEADERBOARD} yet")
    if running is not None:
        return (f"{path} is a comparison still running ({running} holds {path / LOCK}; {state}): "
                f"wait for it to finish, or report the run folders it has written: {runs}")
    return (f"{path} is an unfinished comparison ({state}): rerun the same trainlab compare command "
            f"to finish it, or report its run folders: {runs}")


def load_run(path: str | Path, seed: int | None = None, fit_records: bool = False,
             left_out_of: str | None = CURVES) -> RunRecords:
    """Read one run folder (with ``fit_records``, also a folder of ``trainlab.fit(out=...)``, whose config
    is its strategy.yaml); raises :class:`ConfigError` when ``path`` does not exist or is not one. ``left_out_of``: as
    :func:`read_metrics` warns about damaged metrics lines."""
    path = Path(path)
    if not _exists(path):  # said so, not "is not a run folder", which reads as a folder of other files
        raise ConfigError(f"run folder {path} does not exist")
    if fit_records and is_fit_records(path):
        config_path = path / "strategy.yaml"
    elif not is_run_folder(path):
        if is_fit_records(path):
            what = (f"; it holds the records of trainlab.fit ({', '.join(FIT_RECORDS)}), which 'trainlab plot' draws, "
                    "while report and eval need a run folder of 'trainlab train'")
        elif (owner := written_by(path)) is not None:  # a tuning study: tune writes its own report
            what = f"; it holds {owner}, whose report is {path / 'report.html'}, written by each 'trainlab tune' there"
        elif is_unfinished_comparison(path):
            raise ConfigError(unfinished_comparison_text(path))
        else:
            what = ""
        raise ConfigError(f"{path} is not a run folder (no run.json or config.yaml) nor a comparison folder "
                          f"(no {LEADERBOARD}){what}")
    else:
        config_path = path / "config.yaml"
    if is_record_file(config_path):
        check_readable(config_path)  # a config.yaml that may not be read is the run's data (3), not a bad config (2)
        config = load_yaml_file(config_path, follow_links=False)
    else:
        config = {}
    if config is not None and not isinstance(config, dict):
        raise DataError(f"{config_path} holds a YAML {type(config).__name__}, not a mapping of config sections; "
                        "the file was changed or damaged: restore it or leave the run out of the report")
    records, events = read_metrics(path / "metrics.jsonl", left_out_of)
    summary = _read_object(path / "summary.json")
    events = events or [e for e in summary.get("events") or [] if isinstance(e, dict)]
    if seed is None:
        seed = summary.get("seed", (config or {}).get("seed"))
    return RunRecords(path, config or {}, records, events, summary, _read_object(path / "run.json"), seed)


# how to mend a comparison's finished run without its summary.json, as trainlab compare says it
COMPARISON_FIX = ("restore it from a copy, or delete the folder {folder} and run the same 'trainlab compare' "
                  "command again to train that run again")


def refuse_missing_summary(run: RunRecords, fix: str) -> None:
    """A DataError (exit 3) for a run whose run.json says ``finished`` but whose summary.json is missing: a
    run writes its summary before it says so, so the file was lost after the run (as ``trainlab compare``,
    which refuses such a folder, and as a damaged summary.json, which :func:`load_run` refuses). Reported,
    the run would show no metrics, as if it had not finished. ``fix`` says what to do."""
    summary = run.path / "summary.json"
    if run.info.get("status") == "finished" and not run.summary and not os.path.lexists(summary):
        raise DataError(f"{summary} of the finished run {run.path} is missing (its run.json says it finished, "
                        f"and a run writes its summary.json first); {fix}")


def run_labels(runs: list[RunRecords]) -> list[str]:
    """Labels for legends: each folder's name, with parent folders added only where names repeat.

    Among the runs whose folders share a name, parents are added (one more for all of them at a time) until
    their labels differ: ``A/adam/seed-0``, ``B/adam/seed-0`` and ``base/adam/seed-0`` beside a lone ``wine``.
    A label that would reach the file system's root is the folder's absolute path (``/a/x``). Pass each
    folder once (:func:`distinct_folders`): one folder twice has no label that tells the two apart.
    """
    paths = [run.path.resolve() for run in runs]
    labels = [path.name or str(path) for path in paths]
    for name in {label for label in labels if labels.count(label) > 1}:
        same = [index for index, label in enumerate(labels) if label == name]
        depth = 1
        deepest = max(len(paths[index].parts) for index in same)
        while len({labels[index] for index in same}) < len(same) and depth < deepest:
            depth += 1
            for index in same:
                labels[index] = _last_parts(paths[index], depth)
    return labels


def _last_parts(path: Path, depth: int) -> str:
    """The last ``depth`` parts of the absolute ``path`` joined by ``/``; the whole path once they reach its root
    (never ``//tmp/...``: the root is a part of its own)."""
    named = path.parts[1:] if path.anchor else path.parts
    return "/".join(named[-depth:]) if depth < len(named) else str(path)


def distinct_folders(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` without the repeats of a folder given twice (``runs/wine`` and ``runs/wine/``, or a relative and
    an absolute path to it: the same folder once resolved), in the order given, each as first written."""
    seen: set[Path] = set()
    kept = []
    for path in map(Path, paths):
        try:
            resolved = path.resolve()
        except OSError:  # a folder that cannot be resolved is kept, for its reader to name
            resolved = path.absolute()
        if resolved not in seen:
            seen.add(resolved)
            kept.append(path)
    return kept


def read_leaderboard(path: Path) -> Any:
    """``path``'s leaderboard.json as read (None when there is none; the caller checks its shape); a DataError
    naming the file when it cannot be read."""
    return _read_json(path / LEADERBOARD, None)


def load_comparison(path: str | Path, left_out_of: str | None = CURVES) -> Comparison:
    """Read ``DIR/leaderboard.json`` and the runs under ``DIR/runs/<task>/<strategy>/seed-<k>/``
    (``left_out_of``: as :func:`read_metrics` warns about damaged metrics lines)."""
    path = Path(path)
    leaderboard = read_leaderboard(path)
    if not isinstance(leaderboard, dict):
        raise ConfigError(f"{path} has no {LEADERBOARD}; run 'trainlab compare' first, or pass run folders")
    runs: dict[str, dict[str, list[RunRecords]]] = {}
    root = path / "runs"
    listed = _listed_runs(leaderboard)
    for task_dir in _subfolders(root):
        for strategy_dir in _subfolders(task_dir):
            seeds = []
            for seed_dir in _subfolders(strategy_dir):
                match = SEED_FOLDER.match(seed_dir.name)
                if listed is not None and (task_dir.name, strategy_dir.name, seed_dir.name) not in listed:
                    continue  # an earlier invocation's run (another strategy, seed or task): not on this board
                if match and is_run_folder(seed_dir):
                    run = load_run(seed_dir, seed=int(match.group(1)), left_out_of=left_out_of)
                    refuse_missing_summary(run, COMPARISON_FIX.format(folder=seed_dir))
                    seeds.append(run)
            if seeds:
                seeds.sort(key=lambda run: run.seed if run.seed is not None else -1)
                runs.setdefault(task_dir.name, {})[strategy_dir.name] = seeds
    return Comparison(path, leaderboard, runs)


def _listed_runs(leaderboard: dict[str, Any]) -> set[tuple[str, str, str]] | None:
    """The (task, strategy, seed folder) names of the runs the leaderboard ranks, ``runs/<task>/<name>/seed-<k>``
    as compare plans them from each entry's ``name`` and ``seeds``; None for a board without them (then every
    run under ``runs/``; a board of another shape is refused by the report's own checks)."""
    tasks = leaderboard.get("tasks")
    if not isinstance(tasks, dict):
        return None
    listed: set[tuple[str, str, str]] = set()
    for task, table in tasks.items():
        entries = table.get("strategies") if isinstance(table, dict) else None
        for entry in entries or []:
            seeds = entry.get("seeds") if isinstance(entry, dict) else None
            if not isinstance(seeds, list):
                return None
            listed.update((str(task), str(entry.get("name")), f"seed-{seed}") for seed in seeds)
    return listed or None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError as exc:  # its parent cannot be searched: whether it exists cannot be known
        raise unreadable(path.parent, exc, "folder") from None


def classify(paths: list[Path], left_out_of: str | None = CURVES) -> Comparison | list[RunRecords]:
    """One comparison folder, or one or more run folders; anything else is a :class:`ConfigError`.
    ``left_out_of``: as :func:`read_metrics` warns about damaged metrics lines."""
    if not paths:
        raise ConfigError("report needs a comparison folder or at least one run folder")
    missing = [p for p in paths if not _exists(p)]
    if missing:
        raise ConfigError(f"{missing[0]} does not exist; pass a comparison folder or run folders")
    comparisons = [p for p in paths if is_record_file(p / LEADERBOARD)]
    if comparisons and is_unfinished_comparison(comparisons[0]):  # a rerun stopped: its leaderboard is stale
        raise ConfigError(unfinished_comparison_text(comparisons[0]))
    if comparisons:
        if len(paths) > 1:
            raise ConfigError(f"pass one comparison folder on its own (got {len(paths)} paths, "
                              f"{comparisons[0]} holds a {LEADERBOARD}); write one report per comparison")
        return load_comparison(comparisons[0], left_out_of)
    runs = [load_run(p, left_out_of=left_out_of) for p in distinct_folders(paths)]  # a folder twice: reported once
    for run in runs:
        refuse_missing_summary(run, "restore it from a copy, or leave the run out of the report")
    return runs
