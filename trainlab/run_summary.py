"""A finished run's summary (``summary.json``, :class:`trainlab.records.Summary`): how it ended, its val
and test metrics as the run's evaluator computes them (TTA included), and what the build noted."""

from __future__ import annotations

from typing import Any

from trainlab import __version__
from trainlab.builders import Built
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.engine.weight_averaging import AveragedStep
from trainlab.records import best_epoch, safe_summary
from trainlab.runtime import environment


def _final_notes(built: Built) -> dict[str, Any]:
    """The build's notes for the summary, told what the run ended as: weight averaging that never began
    (``start_epochs`` past the run's end, or a time budget that ended it sooner) evaluated the raw weights."""
    notes = {k: v for k, v in built.notes.items() if k not in ("gd_mode", "requested_hash")}
    if "weight_averaging" in notes and isinstance(built.step, AveragedStep) and built.step.shadow is None:
        notes["weight_averaging"] = {**notes["weight_averaging"], "evaluated": "raw weights (averaging never began)"}
    return notes


def summarize(built: Built) -> dict[str, Any]:
    """The run's summary (see :class:`trainlab.records.Summary`), evaluated on val and test."""
    trainer, state = built.trainer, built.trainer.state
    stopping = trainer.callbacks.find(EarlyStopping)
    best = stopping[0].best_epoch if stopping else best_epoch(state.history, built.monitor, built.mode)
    return safe_summary({
        "name": built.config.name,
        "status": "finished",
        "seed": built.config.seed,
        "config_hash": built.notes.get("requested_hash", built.config.hash()),
        "epochs_run": state.epoch,
        "steps": state.step,
        "best_epoch": best,
        "stopped_early": state.stopped_early,
        "stop_reason": state.stop_reason,
        "train_time_s": round(state.train_time_s, 6),
        "samples_per_s": round(state.samples_seen / state.train_time_s, 3) if state.train_time_s > 0 else None,
        "val": built.evaluator.evaluate(built.data.val),
        "test": built.evaluator.evaluate(built.data.test),
        "evaluation": {"tta": built.evaluator.tta.describe() if built.evaluator.tta else None},
        "loss": built.loss.name,
        "optimizer": built.config.strategy.optimizer.name,
        "mode": built.notes["gd_mode"],
        "events": state.events,
        "notes": _final_notes(built),
        "environment": environment(),
        "trainlab": __version__,
    })
