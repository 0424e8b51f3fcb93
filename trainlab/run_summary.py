"""A finished run's summary (``summary.json``, :class:`trainlab.records.Summary`): how it ended, its val,
test and train metrics as the run's evaluator computes them (TTA included), and what the build noted.

A run that went non-finite and still finished (``strategy.divergence.policy: off`` lets it) says so:
its summary's ``non_finite`` lists the first epoch of each non-finite training value besides its own
null values, and :func:`non_finite_warning` is the one line warned at its end (:func:`warn_if_non_finite`:
by ``train``, ``resume`` and ``trainlab.fit`` alike).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

from trainlab import __version__
from trainlab.builders import Built
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.engine.weight_averaging import AveragedStep
from trainlab.initializers import symmetric_init
from trainlab.records import best_epoch, safe_summary
from trainlab.run_checks import input_fixes
from trainlab.runtime import environment
from trainlab.trivial_outcome import TrivialOutcome


def _final_notes(built: Built) -> dict[str, Any]:
    """The build's notes for the summary, told what the run ended as: weight averaging that never began
    (``start_epochs`` past the run's end, or a time budget that ended it sooner) evaluated the raw weights."""
    notes = {k: v for k, v in built.notes.items() if k not in ("gd_mode", "requested_hash")}
    if "weight_averaging" in notes and isinstance(built.step, AveragedStep) and built.step.shadow is None:
        notes["weight_averaging"] = {**notes["weight_averaging"], "evaluated": "raw weights (averaging never began)"}
    return notes


def _diverged_in_training(history: list[dict[str, Any]]) -> list[str]:
    """``train_loss=nan from epoch 1 (step 6)``: each loss of the epoch records (``train_*``, ``val_loss``)
    at the first epoch it was non-finite. Only losses: a metric may be NaN on healthy outputs (R² of one
    row), a loss only when the outputs or the weights are."""
    first: dict[str, str] = {}
    for record in history:
        for key, value in record.items():
            is_loss = key.startswith("train_") or key == "val_loss"
            if is_loss and key not in first and isinstance(value, float) and not math.isfinite(value):
                first[key] = f"{key}={value} from epoch {record.get('epoch')} (step {record.get('step')})"
    return list(first.values())


def non_finite_warning(summary: dict[str, Any]) -> str | None:
    """The warning's message (:func:`trainlab.notices.warn`) for a finished run whose losses went non-finite (its ``non_finite`` names a
    training loss, ``val.loss``, ``test.loss`` or ``train.loss``), naming them; None otherwise."""
    found = summary.get("non_finite") or []
    losses = [entry for entry in found
              if entry.startswith(("train_", "val_loss", "val.loss=", "test.loss=", "train.loss="))]
    if not losses:
        return None
    return (f"the run went non-finite: {'; '.join(losses)}; the train/val/test metrics of non-finite "
            "outputs are null (summary.json non_finite), and the model's outputs mean nothing; lower the "
            "learning rate, or let strategy.divergence.policy (stop, rollback) catch it")


_TOLD_BY_CALLER: contextvars.ContextVar[bool] = contextvars.ContextVar("trainlab_outcome_told", default=False)


@contextlib.contextmanager
def outcome_told_by_caller() -> Iterator[None]:
    """Within the block no run warns of its outcome: that it went non-finite (:func:`warn_if_non_finite`), or
    that it is no better than a constant (:mod:`trainlab.trivial_outcome`). For ``compare`` and ``tune``, whose
    runs a non-finite outcome fails with a line of their own naming the run (test_mse is nan ...), and whose
    leaderboard and trials.csv set each run's metrics beside the others'."""
    token = _TOLD_BY_CALLER.set(True)
    try:
        yield
    finally:
        _TOLD_BY_CALLER.reset(token)


def warn_if_non_finite(summary: dict[str, Any]) -> None:
    """:func:`non_finite_warning`'s line, warned (:func:`trainlab.notices.warn`) where there is one: at the end of
    every run that finishes (``train``, ``resume``, ``trainlab.fit``, the CLI's commands), so that a Python
    caller hears of it as the CLI's user does; not inside :func:`outcome_told_by_caller`."""
    from trainlab.notices import warn

    warning = non_finite_warning(summary)
    if warning and not _TOLD_BY_CALLER.get():
        warn(warning)


def eval_non_finite_warning(split: str, found: list[str], summary: dict[str, Any] | None) -> str | None:
    """The warning's message for ``trainlab eval``'s metrics of ``split`` that are not finite (``found``: as
    :func:`trainlab.records.json_safe` lists them, ``loss=nan``; printed as null, as train prints them), saying
    why: a non-finite loss means non-finite outputs (only they, or the weights, make one), which the run's
    ``summary`` (its summary.json, or None) traces to weights gone non-finite in training when its
    ``non_finite`` names a training loss; a finite loss beside them means metrics undefined on the split's
    rows (R² of one row). None when every metric is finite."""
    if not found:
        return None
    names = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
    several = len(found) > 1
    said = f"the {split} metric{'s' if several else ''} {names} {'are' if several else 'is'} not finite (shown as null)"
    if not any(entry.startswith("loss=") for entry in found):
        return (f"{said}, while the loss is, so the model's outputs are finite: undefined on the "
                f"{split} split's rows (R² needs two rows or more; ROC AUC and average precision a class with "
                "positive and negative rows)")
    in_training = [entry for entry in (summary or {}).get("non_finite") or [] if entry.startswith("train_")]
    why = (f"the run's weights went non-finite in training (summary.json non_finite: {in_training[0]})" if in_training
           else "the run's weights, or these rows' inputs, make them so")
    return (f"{said}: the model's outputs on the {split} split are not finite, as {why}, so they mean nothing; "
            "retrain with a lower learning rate, or let strategy.divergence.policy (stop, rollback) catch it")


MAX_PRINTED_NUMBERS = 400  # a 20 x 20 confusion matrix: a list-valued metric holding more is shown by its shape


def _numbers_in(value: Any) -> int:
    """How many numbers (nulls included) the nested lists ``value`` hold."""
    if not isinstance(value, list | tuple):
        return 1
    if not any(isinstance(item, list | tuple) for item in value):
        return len(value)  # a matrix's row: counted at once
    return sum(_numbers_in(item) for item in value)


def _shape(value: list[Any] | tuple[Any, ...], count: int) -> str:
    """``1000 x 1000`` for a matrix, ``1000 x 2 x 2`` for multi-label's per-label matrices (the lengths along
    the first items), ``1000 values`` for a flat list or lists of unequal lengths (``count`` numbers)."""
    lengths, item = [], value
    while isinstance(item, list | tuple) and item:
        lengths.append(len(item))
        item = item[0]
    if len(lengths) < 2 or math.prod(lengths) != count:
        return f"{count} values"
    return " x ".join(map(str, lengths))


def abbreviated_metric(value: Any, held_in: str = "in summary.json") -> str | None:
    """What the terminal prints for a list-valued metric (a confusion matrix, a per-class list) of more than
    :data:`MAX_PRINTED_NUMBERS` numbers instead of the numbers: its shape and where the numbers are
    (``held_in``): ``1000 x 1000, in summary.json`` (a 1000-class matrix printed whole was a 6 MB line).
    None for any other value, printed as it is."""
    if not isinstance(value, list | tuple):
        return None
    count = _numbers_in(value)
    return f"{_shape(value, count)}, {held_in}" if count > MAX_PRINTED_NUMBERS else None


def final_evaluations(built: Built) -> dict[str, dict[str, Any]]:
    """The final weights' metrics on each split, as the run's evaluator computes them: ``{"val", "test"}``,
    then ``"train"`` unless ``output.evaluate_train`` is false.

    Each is computed as val and test are (eval mode: no dropout, batch-norm's running statistics; early
    stopping's restored weights, the averaged ones, TTA where configured) on the split's raw rows:
    augmentation is the data's ``train_transform``, applied only to training batches, never here. So
    ``val["loss"] - train["loss"]`` is the generalisation gap of the model the run ended with; the epoch
    records' ``train_loss`` is not that model's (a running mean in train mode while the weights moved).
    Train is evaluated last, so val and test are what they were before it existed. A final model no better
    than a constant on val and test is warned of (:mod:`trainlab.trivial_outcome`), unless the caller tells
    the outcome (:func:`outcome_told_by_caller`).
    """
    outcome = None if _TOLD_BY_CALLER.get() else TrivialOutcome(built.data.task)
    evaluations = {split: built.evaluator.evaluate(getattr(built.data, split), outcome and outcome.observer(split))
                   for split in ("val", "test")}
    if outcome is not None:
        outcome.warn(built.data, built.loss, built.config.data.standardize_target,
                     input_fixes(built.data).raw_targets, symmetric_init(built.config.strategy.init))
    if built.config.output.evaluate_train:
        evaluations["train"] = built.evaluator.evaluate(built.data.train)
    return evaluations


def summarize(built: Built) -> dict[str, Any]:
    """The run's summary (see :class:`trainlab.records.Summary`), evaluated on val, test and train
    (:func:`final_evaluations`)."""
    trainer, state = built.trainer, built.trainer.state
    stopping = trainer.callbacks.find(EarlyStopping)
    best = stopping[0].best_epoch if stopping else best_epoch(state.history, built.monitor, built.mode)
    summary = safe_summary({
        "name": built.config.name,
        "status": "finished",
        "seed": built.config.seed,
        "config_hash": built.notes.get("requested_hash", built.config.hash()),
        "epochs_run": state.epoch,
        "steps": state.step,
        "best_epoch": best,
        # the epoch whose weights early stopping put back into the saved model (restore_best); None: the weights
        # training ended with (no early stopping, restore_best: false, or no validation was a number)
        "restored_epoch": stopping[0].restored_epoch if stopping else None,
        "stopped_early": state.stopped_early,
        "stop_reason": state.stop_reason,
        "train_time_s": round(state.train_time_s, 6),
        "samples_per_s": round(state.samples_seen / state.train_time_s, 3) if state.train_time_s > 0 else None,
        **final_evaluations(built),
        "evaluation": {"tta": built.evaluator.tta.describe() if built.evaluator.tta else None},
        "rows": {split: len(getattr(built.data, split)) for split in ("train", "val", "test")},
        "loss": built.loss.name,
        "optimizer": built.config.strategy.optimizer.name,
        "mode": built.notes["gd_mode"],
        "events": state.events,
        "notes": _final_notes(built),
        "environment": environment(),
        "trainlab": __version__,
    })
    in_training = _diverged_in_training(state.history)
    if in_training:
        summary["non_finite"] = in_training + summary.get("non_finite", [])
    return summary
