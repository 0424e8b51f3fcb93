"""``trainlab plot RUN_DIR...``: the epoch records of run folders as curves (:func:`plot_run_folders`), and
what to say where a folder has nothing to draw: no epoch record yet, a run that diverged or failed before
its first epoch, records lost from a finished run, a metric only in step records or null in every epoch.
The figure itself is :func:`trainlab.plots.curves_figure`'s."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainlab.atomic import check_output_path
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn
from trainlab.plots import check_plot_path, is_number, missing_metric, null_in_every_record, plot_curves
from trainlab.records import is_epoch_record
from trainlab.shell_command import quoted_command


def _step_only_metric(runs: Sequence[Any], metric: str) -> None:
    """Raise :class:`ConfigError` when ``metric`` is in step records of ``runs`` but in none of their epoch
    records, naming what the epoch records hold (``trainlab plot`` draws one value per epoch)."""
    in_epochs = any(is_epoch_record(r) and r.get(metric) is not None for run in runs for r in run.records)
    if in_epochs or not any(r.get(metric) is not None for run in runs for r in run.records):
        return
    available = {k for run in runs for r in run.records if is_epoch_record(r) for k, v in r.items() if is_number(v)}
    raise ConfigError(f"metric '{metric}' is only in step records, and 'trainlab plot' draws one value per epoch; "
                      f"plot one of: {', '.join(sorted(available - {'epoch'})) or 'none'} (the report draws "
                      "step records: 'trainlab report RUN_DIR -o report.html')")


def plot_run_folders(run_dirs: Sequence[str | os.PathLike[str]], metric: str, path: str | os.PathLike[str], *,
                     follow_link: bool = True) -> Path:
    """``trainlab plot``: ``metric`` by epoch, one line per run folder, labelled by folder name
    (with parent folders added to the names that repeat: :func:`~trainlab.report.sources.run_labels`); a
    folder given twice (``runs/wine runs/wine/``) is one line. Only epoch records are drawn
    (:func:`~trainlab.records.is_epoch_record`: step records and events are left out), one value per epoch;
    a missing metric's error lists the keys of the epoch records. Folders written by
    ``trainlab.fit(out=...)`` are drawn too. Raises
    :class:`ConfigError` for a folder that is neither, for folders none of which has an epoch record yet
    (each one's metrics.jsonl said as it is: :func:`_no_epochs`), for a metric only step records hold, and
    for a ``path`` :func:`~trainlab.atomic.check_output_path` refuses (``follow_link`` False: ``trainlab plot``
    without ``-o``, whose default name is not followed where it is a symlink).
    """
    from trainlab.report.sources import LEADERBOARD, distinct_folders, load_run, run_labels

    check_plot_path(path)
    check_output_path(path, follow_link=follow_link)  # before reading the runs
    for run_dir in run_dirs:
        if (Path(run_dir) / LEADERBOARD).is_file():
            report = quoted_command("trainlab", "report", run_dir, "-o", "report.html")
            raise ConfigError(f"{run_dir} is a comparison folder; use {report}, "
                              f"or plot its run folders {Path(run_dir) / 'runs'}/<task>/<strategy>/seed-<k>")
    runs = [load_run(run_dir, fit_records=True, left_out_of="the plot") for run_dir in distinct_folders(run_dirs)]
    histories = {label: [r for r in run.records if is_epoch_record(r)]
                 for label, run in zip(run_labels(runs), runs, strict=True)}
    if not any(histories.values()):  # not "metric 'val_loss' is in no history": no metric is in any
        said = f"nothing to plot: {'; '.join(_no_epochs(run) for run in runs)}"
        # a finished run's records are lost, not yet to come: damaged data (exit 3), not a usage error
        raise DataError(said) if any(_finished(run) for run in runs) else ConfigError(said)
    _step_only_metric(runs, metric)
    path = plot_curves(histories, metric, path, follow_link=follow_link)
    if missing := missing_metric(histories, metric):
        whys = {label: _why_missing(histories[label], metric, run) for label, run in zip(histories, runs, strict=True)}
        said = [f"{label} ({whys[label]})" if whys[label] else label for label in missing]
        warn(f"no '{metric}' in {', '.join(said)}: left out of the plot")
    return path


def _why_missing(history: Sequence[Mapping[str, Any]], metric: str, run: Any) -> str | None:
    """Why a run's line of ``metric`` is missing from the plot, where its records say: no epoch record (the run
    ended early or has not recorded one yet), or the metric null in every epoch (non-finite); None otherwise."""
    if not history:
        return _ended_early(run) or "its metrics.jsonl holds no epoch records yet"
    return "not a finite number in any epoch: training went non-finite" if null_in_every_record(history, metric) else None


def _ended_early(run: Any) -> str | None:
    """``the run diverged at step 3, before its first epoch ended`` for a run folder whose run.json says it
    ended for good (diverged, failed) without an epoch record: none will come, unlike a run still running or
    interrupted (which a resume continues). None for any other run."""
    status = run.info.get("status")
    if status not in ("diverged", "failed") or any(is_epoch_record(r) for r in run.records):
        return None
    steps = [e.get("step") for e in run.events if isinstance(e, dict) and e.get("event") == "divergence"]
    at = f" at step {steps[0]}" if steps and isinstance(steps[0], int) and not isinstance(steps[0], bool) else ""
    return f"the run {status}{at}, before its first epoch ended"


def _finished(run: Any) -> bool:
    """Whether a run folder says its run finished: run.json's status ``finished`` and a summary.json."""
    return run.info.get("status") == "finished" and bool(run.summary)


def _no_epochs(run: Any) -> str:
    """Why a run folder (a :class:`~trainlab.report.sources.RunRecords`) without epoch records has none, as
    its metrics.jsonl shows: missing or empty (an epoch record is written as each epoch ends: the run
    recorded no epoch yet; damaged where the run finished: :func:`_finished`), only step records and events
    (its first epoch still running), or unreadable."""
    path = Path(run.path) / "metrics.jsonl"
    if (ended := _ended_early(run)) is not None:
        return (f"{run.path} holds no epoch records: {ended} "
                f"({quoted_command('trainlab', 'report', run.path, '-o', 'report.html')} draws its step records and "
                "events)")
    if _finished(run) and (not path.is_file() or path.stat().st_size == 0):
        return (f"{path} is {'missing' if not path.is_file() else 'empty'} though the run finished (run.json, "
                "summary.json): its epoch records are lost; summary.json still holds the final metrics")
    if not path.is_file():
        return f"{run.path} has no metrics.jsonl (the run recorded no epoch yet)"
    if run.records or run.events:
        return (f"{path} holds no epoch records (only step records and events: the run recorded no epoch yet; "
                f"{quoted_command('trainlab', 'report', run.path, '-o', 'report.html')} draws step records)")
    if path.stat().st_size == 0:
        return f"{path} holds no epoch records (empty: the run recorded no epoch yet)"
    return f"{path} holds no epoch records (none of its lines could be read)"
