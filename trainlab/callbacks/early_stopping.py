"""Early stopping: stop when the monitored value has not improved for ``patience`` validations (epochs, where
validation is per epoch)."""

from __future__ import annotations

from typing import Any

import torch

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.monitor import is_improvement, read
from trainlab.config_fields import counted
from trainlab.notices import warn


class EarlyStopping(Callback):
    """Keras/Lightning semantics; with ``restore_best`` the best weights are put back at the end (whether the run
    stopped early or ran its epochs), and ``restored_epoch`` says whose they are (the summary's ``restored_epoch``).

    ``patience`` counts the validations the monitor is read in: one per epoch, plus the mid-epoch ones of
    ``eval_every_n_steps`` (a record without the monitor, e.g. ``train_loss`` at a mid-epoch validation, is
    not counted). ``best_epoch`` is the epoch of the best validation: fractional for a mid-epoch one
    (its record's ``epoch``, e.g. 1.5 halfway through the second), and the stop reason says "validations"
    rather than "epochs" once a mid-epoch validation was counted.

    The weights kept are the ones validation evaluated (for schedule-free optimizers the
    averaged weights x), and they are restored after the step is put in eval mode, so the
    summary's validation loss is the best validation's.
    """

    order = 30
    name = "early_stopping"

    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 10,
                 min_delta: float = 0.0, restore_best: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; got {mode!r}. Pass mode='max' for accuracy-like metrics")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.reset()

    def reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: float | None = None  # an int for an epoch's validation, fractional for a mid-epoch one
        self.wait = 0
        self.mid_epoch = False  # a mid-epoch validation was counted: patience counts validations, not epochs
        self.best_weights: dict[str, torch.Tensor] | None = None
        # the loss's state at the best epoch, where the loss learns (a learned variance): restored with the
        # weights, so the summary scores the best epoch's model with the loss it was validated with
        self.best_loss_weights: dict[str, torch.Tensor] | None = None
        self._said_undefined = False  # the warning of a monitor NaN from its first validation, once per fit
        self.restored_epoch: float | None = None  # the epoch whose weights on_train_end put back, once it has

    def on_train_start(self, view: TrainerView) -> None:
        if view.state.epoch == 0 and view.state.step == 0:
            self.reset()  # instances can be re-used across fit() calls

    def evaluate(self, value: float, epoch: float) -> tuple[bool, str | None]:
        """Pure decision: (should_stop, reason); updates best/wait."""
        if is_improvement(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False, None
        self.wait += 1
        if self.wait >= self.patience:  # Keras/Lightning: stop after `patience` validations without improvement
            waited = counted(self.wait, "validation" if self.mid_epoch else "epoch")
            # every value so far NaN (never an improvement): there is no best to name
            best = "no value so far was a number" if self.best is None else f"best {self.best:.6g} at epoch {self.best_epoch}"
            return True, f"early stopping: {self.monitor} did not improve for {waited} ({best})"
        return False, None

    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self.monitor not in record:
            return  # a mid-epoch validation records val_* only: a train_loss monitor is read at epoch ends
        if record.get("scope") == "step":
            self.mid_epoch = True
        value = read(record, self.monitor)
        if value != value and self.best is None:  # NaN, and no number before it
            self._warn_undefined(record["epoch"])
        should_stop, reason = self.evaluate(value, record["epoch"])
        if self.restore_best and self.best_epoch == record["epoch"]:
            self.best_weights = view.weights()
            self.best_loss_weights = view.loss_weights() or None
        if should_stop:
            view.control.stop(reason)

    def _warn_undefined(self, epoch: float) -> None:
        """One warning at the first validation whose monitored value is NaN with no number before it: the run
        would stop after ``patience`` of them with no best to restore, having said nothing until then (val_r2
        on a 1-row validation split)."""
        if self._said_undefined:
            return
        self._said_undefined = True
        r2 = " (R² is undefined on fewer than 2 rows or a constant target)" if self.monitor.endswith("r2") else ""
        other = "monitor val_loss, or " if self.monitor != "val_loss" else ""
        restore = " with no best to restore" if self.restore_best else ""
        warn(f"early stopping monitors {self.monitor}, which is NaN (undefined) at epoch {epoch:g}{r2}: if it stays "
             f"NaN, no value improves on another, and the run stops after {counted(self.patience, 'such validation')}"
             f"{restore}; {other}hold out more validation rows (data.val_fraction)")

    def on_train_end(self, view: TrainerView) -> None:
        if self.restore_best and self.best_weights is not None and view.state.finished:
            view.load_weights(self.best_weights)
            self.restored_epoch = self.best_epoch
            if self.best_loss_weights is not None:
                view.load_loss_weights(self.best_loss_weights)

    def state_dict(self) -> dict[str, Any]:
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                 "best_weights": self.best_weights}
        if self.mid_epoch:  # only with mid-epoch validations: other checkpoints are as before
            state["mid_epoch"] = True
        if self.best_loss_weights is not None:  # only where the loss learns: other checkpoints are as before
            state["best_loss_weights"] = self.best_loss_weights
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.best_weights = state["best_weights"]
        self.mid_epoch = bool(state.get("mid_epoch", False))  # absent: none counted yet, or an older checkpoint
        self.best_loss_weights = state.get("best_loss_weights")  # absent: a loss without state, an older checkpoint
