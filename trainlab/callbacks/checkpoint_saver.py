"""The checkpointing callback: cadence, keep-last-K, the best evaluation kept separately, safe failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.monitor import is_improvement
from trainlab.engine import checkpoint
from trainlab.notices import note
from trainlab.notices import warn as notices_warn


class CheckpointSaver(Callback):
    """Saves every ``every_n_steps`` steps, every ``every_n_epochs`` epochs, every ``every_seconds``
    seconds, and when training ends or is interrupted (the cadence defaults live in
    :class:`trainlab.config.CheckpointConfig`). Before each save the other callbacks clear their
    pending checks (``on_before_save``); a save they veto is skipped. A write that fails (disk
    full, permission denied) is reported as a warning and an event, once per run of failures for one
    reason (the event counts them); the previous checkpoint stays intact and training goes on. Step
    checkpoints and ``best/`` fail apart, each reported as itself: a step checkpoint written counts
    though ``best/`` then fails.

    With ``every_n_epochs``, ``best/`` holds the best evaluation by the monitored metric (``monitor``,
    ``mode``; NaN never improves): every validation the monitor sees is offered (``on_validation_end``),
    the mid-epoch ones of ``eval_every_n_steps`` included, so ``best/`` holds the weights early stopping's
    ``restore_best`` keeps. It is the state right after that validation, written atomically like any
    checkpoint; an epoch-end best whose epoch is saved anyway shares that save's state. ``best/`` is the
    best model, not a resume point: resuming uses the newest ``step-*`` checkpoint.

    The save as training ends runs before early stopping's ``restore_best`` (``train_end_order``): a step
    checkpoint always holds that step's weights, the best ones are ``best/`` and the run's model.safetensors.

    Its state is the best monitored value so far (``best``): a resumed run gets it back from the
    checkpoint, so ``best/`` is replaced only by a better evaluation than any before the interruption.
    ``last_saved`` is a path, not state: the caller sets it to the checkpoint a run resumed from.

    ``warn`` gets each warning's message (default :func:`trainlab.notices.warn`, which prefixes
    ``warning:``); ``note`` each ``note: ...`` line (a run of failures is over), default stderr.
    ``run_folder``, the run folder as the user knows it (a staged overwrite's final folder), is named in the
    warning of a failed step checkpoint ("checkpoint at step 36 of runs/a not written: ..."): the runs of a
    comparison fail side by side, and ``best/``'s warning names its path too. None names none.
    """

    order = 90
    # the run's last checkpoint before early stopping's restore_best (30) and the user's hooks (50): a step
    # checkpoint holds that step's weights (``--checkpoint last`` evaluates the weights training ended with)
    train_end_order = 25
    name = "checkpointing"

    def __init__(self, root: str | Path, every_n_steps: int | None, every_n_epochs: int | None,
                 every_seconds: float | None, keep_last: int, info: dict[str, Any] | None = None,
                 monitor: str = "val_loss", mode: str = "min", warn: Callable[[str], None] = notices_warn,
                 note: Callable[[str], None] = note, run_folder: str | Path | None = None):
        self.root = Path(root)
        self.every_n_steps, self.every_n_epochs = every_n_steps, every_n_epochs
        self.every_seconds, self.keep_last = every_seconds, keep_last
        self.info = dict(info or {})
        self.monitor, self.mode, self.warn, self.note = monitor, mode, warn, note
        self.run_folder = run_folder
        self.best: float | None = None
        self.last_saved: str | None = None  # the newest checkpoint written or resumed from
        self._last_time = time.monotonic()
        self._saved_step = -1
        self._failing: dict[str, dict[str, Any]] = {}  # "step"/"best": the event of its current run of failed saves

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

    def _epoch_save_due(self, view: TrainerView) -> bool:
        return bool(self.every_n_epochs) and view.state.epoch % self.every_n_epochs == 0

    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if not self.every_n_epochs or self.monitor not in record:
            return
        if record.get("scope") != "step" and self._epoch_save_due(view):
            return  # an epoch record: on_epoch_end's save offers it, best/ and the epoch's checkpoint from one capture
        self.save_best(view, float(record[self.monitor]))

    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self._epoch_save_due(view):
            self.save(view, record)

    def on_train_end(self, view: TrainerView) -> None:
        if view.state.finished or view.control.interrupted_by is not None:
            self.save(view)

    def _failed(self, state: Any, reason: str, best_value: float | None = None, ending: bool = False) -> None:
        """One warning and one ``checkpoint_failed`` event per run of failures with the same reason (a full
        disk fails every save until it is freed): the event counts them (``failures``, ``last_step``).
        Step checkpoints and ``best/`` (``best_value`` given) are counted apart, and the event of a
        ``best/`` failure says ``"checkpoint": "best"``: a disk with room for the one but not the other
        fails only ``best/``, at every improvement, while every step checkpoint is written."""
        kind = "best" if best_value is not None else "step"
        failing = self._failing.get(kind)
        if failing is not None and failing["error"] == reason:
            failing["failures"] += 1
            failing["last_step"] = state.step
            if kind == "best" and is_improvement(best_value, failing.get("best_value"), self.mode):
                failing["best_value"], failing["best_step"] = best_value, state.step
            return
        if kind == "best":
            best = self.root / checkpoint.BEST
            kept = f"previous {best} kept" if best.is_dir() else f"no earlier {checkpoint.BEST}/"
            self.warn(f"{best}/ (the best evaluation, {self.monitor} {best_value:.6g} at step {state.step}) "
                      f"not written: {reason} ({kept}); training continues and a later evaluation better than the "
                      "previous best is written (further failures for the same reason are counted, not repeated)")
        else:
            kept = f"previous checkpoint {self.last_saved} kept" if self.last_saved else "no earlier checkpoint"
            if self.last_saved and self._saved_step == state.step:  # the run's end saves its last step again
                kept = f"the checkpoint written at this step before, {self.last_saved}, kept"
            of = f" of {self.run_folder}" if self.run_folder is not None else ""
            goes_on = "the run ends as it would" if ending else "training continues"
            self.warn(f"checkpoint at step {state.step}{of} not written: {reason} ({kept}); {goes_on} "
                      "(further failures for the same reason are counted, not repeated)")
        # a best/ failure keeps the best value it could not write, and its step: what best/ then lacks
        lost = {"checkpoint": checkpoint.BEST, "monitor": self.monitor, "mode": self.mode, "best_value": best_value,
                "best_step": state.step} if kind == "best" else {}
        failing = {"event": "checkpoint_failed", "step": state.step, "error": reason, "failures": 1,
                   "last_step": state.step, **lost}
        self._failing[kind] = failing
        state.events.append(failing)

    def save(self, view: TrainerView, record: dict[str, Any] | None = None) -> Path | None:
        """Write the step's checkpoint (``step-*``); with an epoch ``record`` whose monitored value improves,
        ``best/`` first, from the same state. The two writes fail apart: a ``best/`` not written leaves the
        previous ``best/`` and best value (a later better one is written), and the step's checkpoint is then
        captured again, so that it holds the best value and the failure event the run goes on with: a run
        resumed from it continues as the uninterrupted run does. A step checkpoint that fails is reported as
        such (``best/``, written, stays)."""
        state = view.state
        if state.step == self._saved_step and state.batch_in_epoch == 0 and record is None and not state.finished:
            return None  # nothing new since the last save
        if not view.prepare_save():
            return None  # a guard found a bad step: the loop rolls back instead
        value = None
        if record is not None and self.monitor in record:
            value = float(record[self.monitor])
        previous_best = self.best
        improved = value is not None and is_improvement(value, self.best, self.mode)
        if improved:
            self.best = value  # before the capture: best/ and the step's checkpoint carry the best they hold
        captured = view.capture()
        info = self._info(state)
        if improved and value is not None and \
                self._write_best(state, captured, {**info, self.monitor: value}, value, previous_best) is None:
            captured = view.capture()  # with the previous best and the failure's event, as the run goes on
        try:
            path = checkpoint.save(self.root, checkpoint.folder_name(state.step), captured.tree, captured.tensors, info)
        except OSError as exc:  # the end's save (finished, or stopped by a signal): no training follows
            self._failed(state, _reason(exc), ending=state.finished or view.control.interrupted_by is not None)
            return None
        self._written(state)
        self._saved_step = state.step
        self._last_time = time.monotonic()
        self.last_saved = str(path)
        checkpoint.prune(self.root, self.keep_last)
        return path

    def save_best(self, view: TrainerView, value: float) -> Path | None:
        """Write ``best/`` alone when ``value`` (a validation's monitored value) improves on the best so far;
        the step's ``step-*`` checkpoint is left to the cadence. A write that fails keeps the previous
        ``best/`` and the previous best value, so a later validation better than that one is written."""
        if not is_improvement(value, self.best, self.mode):
            return None
        state = view.state
        if not view.prepare_save():
            return None  # a guard found a bad step: the loop rolls back instead
        previous_best, self.best = self.best, value  # before the capture: the checkpoint carries the best it is
        captured = view.capture()
        return self._write_best(state, captured, {**self._info(state), self.monitor: value}, value, previous_best)

    def _write_best(self, state: Any, captured: Any, info: dict[str, Any], value: float,
                    previous_best: float | None) -> Path | None:
        """Write ``best/`` from ``captured``; on failure ``self.best`` goes back to ``previous_best`` (what
        ``best/`` still holds) and the failure is reported as ``best/``'s."""
        try:
            path = checkpoint.save(self.root, checkpoint.BEST, captured.tree, captured.tensors, info)
        except OSError as exc:
            self.best = previous_best
            self._failed(state, _reason(exc), best_value=value)
            return None
        self._written(state, checkpoint.BEST)
        return path

    def _info(self, state: Any) -> dict[str, Any]:
        return {**self.info, "step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch}

    def _written(self, state: Any, kind: str = "step") -> None:
        """A checkpoint of ``kind`` (``"step"`` or ``"best"``) was written: its run of failed saves, if any,
        is over."""
        failing = self._failing.pop(kind, None)
        if failing is not None:
            what = f"{self.root / checkpoint.BEST}/ written" if kind == "best" else "checkpoints written"
            self.note(f"note: {what} again from step {state.step}, after {failing['failures']} failed")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
