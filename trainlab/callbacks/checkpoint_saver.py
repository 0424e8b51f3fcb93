"""The checkpointing callback: cadence, keep-last-K, the best kept separately, safe failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.monitor import is_improvement
from trainlab.engine import checkpoint


class CheckpointSaver(Callback):
    """Saves every ``every_n_steps`` steps, every ``every_n_epochs`` epochs, every ``every_seconds``
    seconds, and when training ends or is interrupted (the cadence defaults live in
    :class:`trainlab.config.CheckpointConfig`). Before each save the other callbacks clear their
    pending checks (``on_before_save``); a save they veto is skipped. A write that fails (disk
    full, permission denied) is reported as a warning and an event, once per run of failures for one
    reason (the event counts them); the previous checkpoint stays intact and training goes on.

    Its state is the best monitored value so far (``best``): a resumed run gets it back from the
    checkpoint, so ``best/`` is replaced only by a better epoch than any before the interruption.
    ``last_saved`` is a path, not state: the caller sets it to the checkpoint a run resumed from.
    """

    order = 90
    name = "checkpointing"

    def __init__(self, root: str | Path, every_n_steps: int | None, every_n_epochs: int | None,
                 every_seconds: float | None, keep_last: int, info: dict[str, Any] | None = None,
                 monitor: str = "val_loss", mode: str = "min", warn: Callable[[str], None] = print):
        self.root = Path(root)
        self.every_n_steps, self.every_n_epochs = every_n_steps, every_n_epochs
        self.every_seconds, self.keep_last = every_seconds, keep_last
        self.info = dict(info or {})
        self.monitor, self.mode, self.warn = monitor, mode, warn
        self.best: float | None = None
        self.last_saved: str | None = None  # the newest checkpoint written or resumed from
        self._last_time = time.monotonic()
        self._saved_step = -1
        self._failing: dict[str, Any] | None = None  # the event of the current run of failed saves

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]

    def on_train_start(self, view: TrainerView) -> None:
        self._last_time = time.monotonic()

    def on_step_end(self, view: TrainerView, loss) -> None:
        step = view.state.step
        if self.every_n_steps and step % self.every_n_steps == 0:
            self.save(view)
        elif self.every_seconds and time.monotonic() - self._last_time >= self.every_seconds:
            self.save(view)

    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self.every_n_epochs and view.state.epoch % self.every_n_epochs == 0:
            self.save(view, record)

    def on_train_end(self, view: TrainerView) -> None:
        if view.state.finished or view.control.interrupted_by is not None:
            self.save(view)

    def _failed(self, state: Any, reason: str) -> None:
        """One warning and one ``checkpoint_failed`` event per run of failures with the same reason (a full
        disk fails every save until it is freed): the event counts them (``failures``, ``last_step``)."""
        if self._failing is not None and self._failing["error"] == reason:
            self._failing["failures"] += 1
            self._failing["last_step"] = state.step
            return
        kept = f"previous checkpoint {self.last_saved} kept" if self.last_saved else "no earlier checkpoint"
        self.warn(f"warning: checkpoint at step {state.step} not written: {reason} ({kept}); training continues "
                  "(further failures for the same reason are counted, not repeated)")
        self._failing = {"event": "checkpoint_failed", "step": state.step, "error": reason, "failures": 1,
                         "last_step": state.step}
        state.events.append(self._failing)

    def save(self, view: TrainerView, record: dict[str, Any] | None = None) -> Path | None:
        state = view.state
        if state.step == self._saved_step and state.batch_in_epoch == 0 and record is None and not state.finished:
            return None  # nothing new since the last save
        if not view.prepare_save():
            return None  # a guard found a bad step: the loop rolls back instead
        value = None
        if record is not None and self.monitor in record:
            value = float(record[self.monitor])
        improved = value is not None and is_improvement(value, self.best, self.mode)
        if improved:
            self.best = value
        captured = view.capture()
        info = {**self.info, "step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch}
        name = checkpoint.folder_name(state.step)
        try:
            path = checkpoint.save(self.root, name, captured.tree, captured.tensors, info)
            if improved:
                checkpoint.save(self.root, checkpoint.BEST, captured.tree, captured.tensors,
                                {**info, self.monitor: value})
        except OSError as exc:
            self._failed(state, exc.strerror or str(exc))
            return None
        if self._failing is not None:
            self.warn(f"note: checkpoints written again from step {state.step}, after {self._failing['failures']} "
                      "failed")
            self._failing = None
        self._saved_step = state.step
        self._last_time = time.monotonic()
        self.last_saved = str(path)
        checkpoint.prune(self.root, self.keep_last)
        return path
