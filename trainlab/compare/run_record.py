"""One run of a comparison read back from its folder: ``summary.json``, ``metrics.jsonl`` and the
failure record, as a :class:`RunRecord`; the time it took to reach a target and its convergence figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trainlab.compare.stats as stats
from trainlab.compare.busy_run import recorded_busy
from trainlab.compare.machine_failure import recorded_machine_failure
from trainlab.compare.metric_keys import direction_of, read_metric
from trainlab.compare.run_actions import ERROR_FILE, RunPlan, recorded_run_change
from trainlab.config_identity import RUN_IDENTITY
from trainlab.notices import warn
from trainlab.records import MetricsLines, is_finite_number, read_metrics_file, read_record_object


@dataclass
class RunRecord:
    seed: int
    path: Path
    status: str  # finished | failed | missing (not run: the machine stopped it, its folder was busy, or not run yet)
    summary: dict[str, Any] | None
    records: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    damaged_lines: tuple[int, ...] = ()  # of metrics.jsonl, left out of records (trainlab.records.parse_metrics)


def read_metrics_lines(path: Path, left_out_of: str) -> MetricsLines:
    """``path/metrics.jsonl`` read as :func:`~trainlab.records.parse_metrics` reads it, with one warning line on
    stderr when a line of it is damaged or the file is there but cannot be read (a link, unreadable): what
    ``left_out_of`` figures then leave out is said, not silently missing. No file: no records, no warning."""
    metrics = path / "metrics.jsonl"
    try:
        return read_metrics_file(metrics, left_out_of)
    except FileNotFoundError:
        return MetricsLines([], [])
    except (OSError, ValueError) as exc:
        warn(f"cannot read {metrics} ({getattr(exc, 'strerror', None) or exc}); its records are left "
             f"out of {left_out_of}")
        return MetricsLines([], [])


def load_run(plan: RunPlan, not_run_reason: str | None = None,
             fingerprints: dict[str, str | None] | None = None) -> RunRecord:
    """The run of ``plan`` as its folder holds it: finished (summary.json), failed (diverged, a
    compare-error.json, run.json's ``failed``) or missing. A compare-error.json of the machine's failure
    (:func:`~trainlab.compare.machine_failure.recorded_machine_failure`), or an earlier version's of a folder
    in use by another process (:func:`~trainlab.compare.busy_run.recorded_busy`), is missing with its reason, as is a
    folder that holds nothing telling, with ``not_run_reason`` (this comparison's outcome for it, where the
    machine left no record: a full disk, a folder that could not be created) or ``not run yet``.

    The folder's summary.json, run.json and metrics.jsonl are read only where they are ``plan``'s run
    (:func:`holds_plans_run`): a changed run that failed or that the machine stopped before it had a
    checkpoint still holds the earlier config's run (an overwrite keeps it until then), whose results are
    not this strategy's. ``fingerprints``: data fingerprints already taken
    (:func:`~trainlab.compare.run_actions.current_data_fingerprint`)."""
    summary = read_record_object(plan.path / "summary.json")
    info = read_record_object(plan.path / "run.json")
    if holds_plans_run(plan, info, summary, fingerprints):
        metrics = read_metrics_lines(plan.path, f"the time to target and convergence figures of {plan.label}")
    else:  # another config's run: this invocation's outcome for the plan (its error record) decides
        summary, info, metrics = None, None, MetricsLines([], [])
    records, damaged = metrics.records, metrics.damaged
    if isinstance(summary, dict) and summary.get("status") == "finished":
        return RunRecord(plan.seed, plan.path, "finished", summary, records, damaged_lines=damaged)
    error = read_record_object(plan.path / ERROR_FILE)
    if isinstance(summary, dict) and summary.get("status") == "diverged":
        events = [e.get("reason") or e.get("event") for e in summary.get("events", []) if isinstance(e, dict)]
        why = summary.get("reason") if isinstance(summary.get("reason"), str) else events[-1] if events else None
        reason = "diverged" + (f": {why}" if why else "")
        return RunRecord(plan.seed, plan.path, "failed", None, records, reason, damaged)
    if isinstance(error, dict):
        status = "missing" if recorded_machine_failure(error) or recorded_busy(error) else "failed"
        return RunRecord(plan.seed, plan.path, status, None, records, str(error.get("reason")), damaged)
    if isinstance(info, dict) and info.get("status") == "failed":  # its training raised (experiment._record_failure)
        return RunRecord(plan.seed, plan.path, "failed", None, records, str(info.get("error") or "failed"), damaged)
    return RunRecord(plan.seed, plan.path, "missing", None, records, not_run_reason or "not run yet", damaged)


def holds_plans_run(plan: RunPlan, info: dict[str, Any] | None, summary: dict[str, Any] | None,
                    fingerprints: dict[str, str | None] | None = None) -> bool:
    """Whether the run that ``plan``'s folder records (``info``: its run.json; ``summary``: its summary.json,
    None where missing) is ``plan``'s: the test :func:`~trainlab.compare.run_actions.run_action` trains a run
    again by (:func:`~trainlab.compare.run_actions.recorded_run_change`: the same config hash or run identity, the
    same data files). A folder whose records name no config (no run.json, a summary.json without a
    ``config_hash``: one written by hand) is taken as ``plan``'s: nothing says otherwise."""
    info = info or {}
    recorded = info.get("config_hash") or (summary or {}).get("config_hash")
    if recorded is None and RUN_IDENTITY not in info:
        return True
    return recorded_run_change(plan, plan.config, info, recorded, fingerprints) is None


def time_to_target(records: list[dict[str, Any]], target: dict[str, Any]) -> tuple[float | None, int | None]:
    """(elapsed_s, step) of the first validation record whose target metric reached the target value."""
    key, value = target["metric"], target["value"]
    reached = (lambda v: v >= value) if target["direction"] == "max" else (lambda v: v <= value)
    for record in sorted((r for r in records if key in r), key=lambda r: (r.get("step", 0), r.get("elapsed_s", 0))):
        observed = record[key]
        if isinstance(observed, (int, float)) and math.isfinite(observed) and reached(observed):
            return record.get("elapsed_s"), record.get("step")
    return None, None



RUNNING_TRAIN_LOSS_NOTE = (
    "gap_loss is val_loss - train_loss of the last epoch record, whose train_loss is a running mean over the "
    "epoch in train mode (dropout and augmentation on, weights moving), not the final weights' loss on the "
    "training split, which summary.json lacks (output.evaluate_train: false, or a run from before it)")


def loss_gap(run: RunRecord) -> tuple[float | None, str | None]:
    """(gap_loss, note): :func:`trainlab.report.series.final_loss_gap` of the run (the report draws the same
    figure): the final weights' ``val.loss - train.loss`` from its summary; a summary without a ``train``
    block, the last epoch record's ``val_loss - train_loss`` with :data:`RUNNING_TRAIN_LOSS_NOTE`, since
    that ``train_loss`` was measured another way."""
    from trainlab.report.series import final_loss_gap

    gap, from_summary = final_loss_gap(run.summary or {}, run.records)
    return gap, (None if from_summary or gap is None else RUNNING_TRAIN_LOSS_NOTE)


def convergence(run: RunRecord, val_key: str, metric_name: str | None) -> dict[str, Any]:
    """Best-validation epoch, mean height of the validation curve, and the generalisation gaps
    (``gap_loss``: :func:`loss_gap`, with its ``note`` where it is the running train loss's).

    A validation value that is not a finite number (NaN or inf, written as null in metrics.jsonl:
    ``roc_auc`` on a split lacking a class, an overflowing ``val_loss``) is left out, as
    :func:`trainlab.records.best_epoch` does (NaN is never best); with none left, ``best_val_epoch``
    and ``val_curve_mean`` are None.
    """
    epochs = {}
    for record in run.records:
        if "epoch" in record and val_key in record:
            epochs[record["epoch"]] = record  # a resumed run may repeat an epoch: keep the last
    ordered = [epochs[e] for e in sorted(epochs)]
    out: dict[str, Any] = {"best_val_epoch": None, "val_curve_mean": None, "gap_loss": None, "gap_val_test": None}
    finite = [r for r in ordered if is_finite_number(r[val_key])]
    if finite:
        values = [float(r[val_key]) for r in finite]
        pick = max if direction_of(val_key) == "max" else min
        out["best_val_epoch"] = finite[values.index(pick(values))]["epoch"]
        out["val_curve_mean"] = stats.curve_mean([r["epoch"] for r in finite], values)
    out["gap_loss"], note = loss_gap(run)
    if note:
        out["note"] = note
    if metric_name and run.summary:
        val, test = read_metric(run.summary, f"val_{metric_name}"), read_metric(run.summary, f"test_{metric_name}")
        if val is not None and test is not None:
            out["gap_val_test"] = val - test
    return out


def time_to_target_line(path: Path, target: dict) -> str:
    """When the run's validation records first reached ``target`` (training seconds, step)."""
    records = read_metrics_lines(path, "the time to target").records
    seconds, step = time_to_target(records, target)
    relation = ">=" if target["direction"] == "max" else "<="
    wanted = f"{target['metric']} {relation} {target['value']:g}"
    if seconds is not None:
        return f"time to {wanted}: {seconds:.2f} s of training (step {step})"
    seen = [r[target["metric"]] for r in records if isinstance(r.get(target["metric"]), int | float)
            and r[target["metric"]] == r[target["metric"]]]  # not NaN
    best = (max(seen) if target["direction"] == "max" else min(seen)) if seen else None
    if best is not None:
        return f"{wanted} was not reached (best {best:.6g})"
    if any(target["metric"] in r for r in records):  # recorded, as null: R² on a 1-row split, say
        return f"{wanted} was not reached (no value of it was a number: undefined on this validation split)"
    return f"{wanted} was not reached (no such validation metric)"
