"""Reading what a report shows: run folders and comparison folders, as plain records.

A run folder (see :mod:`trainlab.run_folder`) gives a :class:`RunRecords`: its resolved
config, its metric records split into curve records and event records (records with an
``"event"`` key), its summary and run.json. A comparison folder (``trainlab compare``) is
``DIR/leaderboard.json`` plus ``DIR/runs/<task>/<strategy>/seed-<k>/``; it gives a
:class:`Comparison`. Missing optional files (summary.json of a run that never finished,
metrics.jsonl of a run that never logged) read as empty, so a partly failed comparison
still reports; a path that is neither kind raises :class:`ConfigError`.

A folder may be someone else's, and its records end up in an HTML page: every record is read
bounded and never through a symbolic link (:func:`~trainlab.records.read_record_text`; config.yaml
through :func:`~trainlab.yaml_files.load_yaml_file`, with its size, alias and depth limits), and a
record that is damaged, nested too deeply or of the wrong type is one DataError or ConfigError line. A
metrics.jsonl line that is damaged is left out of the curves with one ``warning:`` line on stderr
(:func:`read_metrics`), as the rest of the file is still worth showing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.errors import ConfigError, DataError
from trainlab.records import FIT_RECORDS, is_finite_number, read_metrics_file, read_record_text
from trainlab.yaml_files import load_yaml_file

LEADERBOARD = "leaderboard.json"
SEED_FOLDER = re.compile(r"^seed-(\d+)$")
CURVES = "the report's curves"  # what a metrics.jsonl's damaged lines are left out of, as its warning says


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
        return str(self.info.get("status") or self.summary.get("status") or "unknown")

    @property
    def stop_reason(self) -> str | None:
        """Why the run ended: summary.json's ``stop_reason``, or for a diverged run its ``reason``."""
        reason = self.summary.get("stop_reason") or self.summary.get("reason")
        return str(reason) if reason else None

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
    if not path.is_file():
        return default
    try:
        return json.loads(read_record_text(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
    except RecursionError:
        raise DataError(f"cannot read {path}: its JSON is nested too deeply") from None


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
    if not path.is_file():
        return [], []
    try:
        parsed = read_metrics_file(path, left_out_of)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
    return parsed.records, parsed.events


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "run.json").is_file() or (path / "config.yaml").is_file())


def is_fit_records(path: Path) -> bool:
    """``path`` holds the records of ``trainlab.fit(out=...)`` (no run.json: it is not a run folder)."""
    return not is_run_folder(path) and all((path / name).is_file() for name in FIT_RECORDS)


def load_run(path: str | Path, seed: int | None = None, fit_records: bool = False,
             left_out_of: str | None = CURVES) -> RunRecords:
    """Read one run folder (with ``fit_records``, also a folder of ``trainlab.fit(out=...)``, whose config
    is its strategy.yaml); raises :class:`ConfigError` when ``path`` is not one. ``left_out_of``: as
    :func:`read_metrics` warns about damaged metrics lines."""
    path = Path(path)
    if fit_records and is_fit_records(path):
        config_path = path / "strategy.yaml"
    elif not is_run_folder(path):
        fit = (f"; it holds the records of trainlab.fit ({', '.join(FIT_RECORDS)}), which 'trainlab plot' draws, "
               "while report and eval need a run folder of 'trainlab train'") if is_fit_records(path) else ""
        raise ConfigError(f"{path} is not a run folder (no run.json or config.yaml) nor a comparison folder "
                          f"(no {LEADERBOARD}){fit}")
    else:
        config_path = path / "config.yaml"
    config = load_yaml_file(config_path, follow_links=False) if config_path.is_file() else {}
    if config is not None and not isinstance(config, dict):
        raise DataError(f"{config_path} holds a YAML {type(config).__name__}, not a mapping of config sections; "
                        "the file was changed or damaged: restore it or leave the run out of the report")
    records, events = read_metrics(path / "metrics.jsonl", left_out_of)
    summary = _read_object(path / "summary.json")
    events = events or [e for e in summary.get("events") or [] if isinstance(e, dict)]
    if seed is None:
        seed = summary.get("seed", (config or {}).get("seed"))
    return RunRecords(path, config or {}, records, events, summary, _read_object(path / "run.json"), seed)


def run_labels(runs: list[RunRecords]) -> list[str]:
    """Folder names, with parent folders added until every label is unique (for legends)."""
    depth = 1
    while True:
        labels = ["/".join(run.path.resolve().parts[-depth:]) for run in runs]
        if len(set(labels)) == len(labels) or depth >= max(len(run.path.resolve().parts) for run in runs):
            return labels
        depth += 1


def load_comparison(path: str | Path, left_out_of: str | None = CURVES) -> Comparison:
    """Read ``DIR/leaderboard.json`` and the runs under ``DIR/runs/<task>/<strategy>/seed-<k>/``
    (``left_out_of``: as :func:`read_metrics` warns about damaged metrics lines)."""
    path = Path(path)
    leaderboard = _read_json(path / LEADERBOARD, None)
    if not isinstance(leaderboard, dict):
        raise ConfigError(f"{path} has no {LEADERBOARD}; run 'trainlab compare' first, or pass run folders")
    runs: dict[str, dict[str, list[RunRecords]]] = {}
    root = path / "runs"
    for task_dir in sorted(p for p in root.glob("*") if p.is_dir()):
        for strategy_dir in sorted(p for p in task_dir.glob("*") if p.is_dir()):
            seeds = []
            for seed_dir in strategy_dir.iterdir():
                match = SEED_FOLDER.match(seed_dir.name)
                if match and is_run_folder(seed_dir):
                    seeds.append(load_run(seed_dir, seed=int(match.group(1)), left_out_of=left_out_of))
            if seeds:
                seeds.sort(key=lambda run: run.seed if run.seed is not None else -1)
                runs.setdefault(task_dir.name, {})[strategy_dir.name] = seeds
    return Comparison(path, leaderboard, runs)


def classify(paths: list[Path], left_out_of: str | None = CURVES) -> Comparison | list[RunRecords]:
    """One comparison folder, or one or more run folders; anything else is a :class:`ConfigError`.
    ``left_out_of``: as :func:`read_metrics` warns about damaged metrics lines."""
    if not paths:
        raise ConfigError("report needs a comparison folder or at least one run folder")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"{missing[0]} does not exist; pass a comparison folder or run folders")
    comparisons = [p for p in paths if (p / LEADERBOARD).is_file()]
    if comparisons:
        if len(paths) > 1:
            raise ConfigError(f"pass one comparison folder on its own (got {len(paths)} paths, "
                              f"{comparisons[0]} holds a {LEADERBOARD}); write one report per comparison")
        return load_comparison(comparisons[0], left_out_of)
    return [load_run(p, left_out_of=left_out_of) for p in paths]
