"""The events of the loop, the ``Callback`` base class, and the narrow view callbacks get of the Trainer.

The loop fires, in this order::

    on_train_start(view)
    per epoch:  on_epoch_start(view)                  # skipped when resuming mid-epoch
                per optimizer step: on_step_start(view), (the Step runs), on_step_end(view, loss)
                    [on_validation_end(view, step record)]  # a mid-epoch validation (eval_every_n_steps)
                on_validation_end(view, record)       # record: epoch, step, lr, train_loss, val_* ...
                on_epoch_end(view, record)
    on_train_end(view)                                # always, in a finally block
    on_before_save(view)                              # before any checkpoint is written (see below)
    on_log(view, record)                              # a step record (log_every_n_steps, eval_every_n_steps)

``on_validation_end`` fires once per validation pass: an epoch that a stop or the step limit ends at the
step of a mid-epoch validation takes that validation's val_* for its record and gets ``on_epoch_end`` alone.

Callbacks see a :class:`TrainerView`, not the Trainer: the progress state
(``view.state``), the control flags (``view.control``: ``stop(reason)``,
``rollback(snapshot)``) and a few readers. ``on_before_save`` lets a callback
that checks things lazily (the divergence guard reads the loss every few steps)
clear every pending check before a checkpoint is written: a checkpoint is never
written from a state a guard has not cleared.

Each callback has an ``order`` (lower runs first) and may keep resumable state
via ``state_dict``/``load_state_dict`` (tensors allowed anywhere in the tree).
Only the hooks a callback overrides are called, so an unused hook costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

import torch

from trainlab.engine.snapshot import Snapshot
from trainlab.engine.state import Control, TrainState
from trainlab.engine.step import loss_weights_of, lr_columns
from trainlab.errors import ConfigError


class Event(StrEnum):
    TRAIN_START = "on_train_start"
    EPOCH_START = "on_epoch_start"
    STEP_START = "on_step_start"
    STEP_END = "on_step_end"
    VALIDATION_END = "on_validation_end"
    EPOCH_END = "on_epoch_end"
    TRAIN_END = "on_train_end"
    BEFORE_SAVE = "on_before_save"
    LOG = "on_log"


class _Viewed(Protocol):
    """What the view reads of the Trainer (a Protocol, so that this module never imports the loop)."""

    state: TrainState
    control: Control
    plan: Any
    limits: Any
    step: Any
    callbacks: CallbackList
    total_steps: int

    def elapsed(self) -> float: ...

    def end_at_step(self, step: int, reason: str) -> None: ...

    def capture(self) -> Snapshot: ...


class TrainerView:
    """What a callback may read and ask of the Trainer, and nothing more."""

    def __init__(self, trainer: _Viewed):
        self._trainer = trainer

    @property
    def state(self) -> TrainState:
        return self._trainer.state

    @property
    def control(self) -> Control:
        return self._trainer.control

    @property
    def steps_per_epoch(self) -> int:
        return self._trainer.plan.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self._trainer.total_steps

    @property
    def epochs(self) -> int:
        """The epochs this run trains, ``ceil(total_steps / steps_per_epoch)``: fewer than
        ``strategy.epochs`` when ``max_steps`` ends it first."""
        return -(-self.total_steps // max(self.steps_per_epoch, 1))

    @property
    def elapsed_s(self) -> float:
        """Training wall time so far, summed over resumes (``train_time_s``)."""
        return self._trainer.elapsed()

    def end_at_step(self, step: int, reason: str) -> None:
        """End training at optimizer step ``step``, for ``reason`` (the time budget's planner is the one caller)."""
        self._trainer.end_at_step(step, reason)

    @property
    def model(self) -> torch.nn.Module | None:
        """The step's model (None for steps that train several)."""
        return self._trainer.step.model

    @property
    def lr(self) -> float:
        return self._trainer.step.lr()

    def lrs(self) -> dict[str, Any]:
        """``{"lr": first param group's LR, "lr/<group>": each routed group's LR}``: a record's LR columns."""
        return lr_columns(self._trainer.step)

    def set_lr_factor(self, factor: float, routes: Mapping[str, float | None] | None = None) -> None:
        """LR of every param group = its base LR x ``factor``, a routed group named in ``routes`` its own
        factor (None: stopped); the LR adapter is the only caller."""
        if routes is None:  # a Step written to the one-argument contract keeps working
            self._trainer.step.set_lr_factor(factor)
        else:
            self._trainer.step.set_lr_factor(factor, routes)

    def grad_norm(self) -> float | None:
        """The global L2 norm of the last step's gradients (before clipping), when the step measured it."""
        norm = getattr(self._trainer.step, "last_grad_norm", None)
        return None if norm is None else float(norm)

    def parameters_changed(self) -> None:
        """Tell the step that parameters were frozen or unfrozen."""
        self._trainer.step.parameters_changed()

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the model weights as evaluation sees them."""
        return self._trainer.step.weights()

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self._trainer.step.load_weights(weights)

    def loss_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the state of a loss that learns (a learned variance, alpha...); empty for most losses."""
        return loss_weights_of(self._trainer.step)

    def load_loss_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self._trainer.step.load_loss_weights(weights)

    def capture(self) -> Snapshot:
        """Everything needed to resume from here (references, not copies: write it out at once)."""
        return self._trainer.capture()

    def snapshot(self) -> Snapshot:
        """A deep copy of :meth:`capture` to keep while training goes on."""
        return self._trainer.capture().clone()

    def log(self, record: dict[str, Any]) -> None:
        """Keep a step record (metrics.jsonl, checkpoints) and hand it to the ``on_log`` hooks (loggers)."""
        self._trainer.state.step_records.append(record)
        self._trainer.callbacks.fire(Event.LOG, self, record)

    def prepare_save(self) -> bool:
        """Fire ``on_before_save``; False when a callback asked for a rollback (then do not save)."""
        self._trainer.callbacks.fire(Event.BEFORE_SAVE, self)
        return self._trainer.control.rollback_to is None


class Callback:
    """No-op hooks; subclasses override what they need (``view`` is a :class:`TrainerView`)."""

    order: int = 50
    name: str = ""  # unique per run; defaults to the class name

    def on_train_start(self, view: TrainerView) -> None: ...
    def on_epoch_start(self, view: TrainerView) -> None: ...
    def on_step_start(self, view: TrainerView) -> None: ...
    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None: ...
    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None: ...
    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None: ...
    def on_train_end(self, view: TrainerView) -> None: ...
    def on_before_save(self, view: TrainerView) -> None: ...
    def on_log(self, view: TrainerView, record: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def callback_name(callback: Callback) -> str:
    return callback.name or type(callback).__name__


def overrides(callback: Callback, event: Event) -> bool:
    return getattr(type(callback), event.value) is not getattr(Callback, event.value)


class CallbackList:
    """Dispatches each event to the callbacks that override it, in ``order``."""

    def __init__(self, callbacks: list[Callback]):
        for callback in callbacks:
            if isinstance(callback, type) and issubclass(callback, Callback):
                raise ConfigError(f"callbacks must be trainlab.Callback instances; got the class {callback.__name__} "
                                  f"itself: pass an instance, {callback.__name__}()")
            if not isinstance(callback, Callback):
                raise ConfigError(f"callbacks must be trainlab.Callback instances (a class overriding the hooks it "
                                  f"needs); got {type(callback).__name__}")
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        names = [callback_name(cb) for cb in self.callbacks]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ConfigError(f"callback name {twice[0]!r} is used twice (callbacks: {', '.join(names)}); a "
                              "callback's state is saved under its name: give each instance its own "
                              "(callback.name = '...')")
        self.hooks = {
            event: [getattr(cb, event.value) for cb in self.callbacks if overrides(cb, event)] for event in Event
        }

    def fire(self, event: Event, view: TrainerView, *args: Any) -> None:
        for hook in self.hooks[event]:
            hook(view, *args)

    def find(self, kind: type) -> list[Any]:
        return [cb for cb in self.callbacks if isinstance(cb, kind)]

    def state_dict(self) -> dict[str, Any]:
        return {callback_name(cb): cb.state_dict() for cb in self.callbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Give each callback the state saved under its name; one with none saved (added since) keeps its own.
        A callback whose ``load_state_dict`` fails on its saved state is a ConfigError naming it."""
        for cb in self.callbacks:
            name = callback_name(cb)
            if name not in state:
                continue
            try:
                cb.load_state_dict(state[name])
            except Exception as exc:  # noqa: BLE001 -- the user's code: said in one line, the traceback chained
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise ConfigError(f"callback {name!r} cannot load the state saved under its name in the checkpoint "
                                  f"({type(exc).__name__}: {first}); its load_state_dict must read what its "
                                  "state_dict returned, or give it another name (callback.name) to start it "
                                  "afresh") from exc
