"""Callback base class and the event names of the loop.

The loop calls, in this order::

    on_train_start
    per epoch:  on_epoch_start
                per optimizer step: on_step_start, (forward/backward/step), on_step_end
                on_validation_end(record)   # record: epoch, step, lr, train_loss, val_* ...
                on_epoch_end(record)
    on_train_end                            # always, in a finally block

Callbacks read the trainer and ask for changes through ``trainer.control``
(``stop(reason)``, ``rollback_to``). Each has an ``order`` (lower runs first)
and may keep resumable state via ``state_dict``/``load_state_dict``. Only the
hooks a callback overrides are called, so an unused hook costs nothing per step.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.engine.loop import Trainer


class Event(StrEnum):
    TRAIN_START = "on_train_start"
    EPOCH_START = "on_epoch_start"
    STEP_START = "on_step_start"
    STEP_END = "on_step_end"
    VALIDATION_END = "on_validation_end"
    EPOCH_END = "on_epoch_end"
    TRAIN_END = "on_train_end"


class Callback:
    """No-op hooks; subclasses override what they need."""

    order: int = 50
    name: str = "callback"

    def on_train_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_step_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: Any) -> None: ...
    def on_validation_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def overrides(callback: Callback, event: Event) -> bool:
    return getattr(type(callback), event.value) is not getattr(Callback, event.value)


class CallbackList:
    """Dispatches each event to the callbacks that override it, in ``order``."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        names = [cb.name for cb in self.callbacks]
        if len(set(names)) != len(names):
            raise ValueError(f"callback names must be unique; got {names}")
        self.hooks = {
            event: [getattr(cb, event.value) for cb in self.callbacks if overrides(cb, event)] for event in Event
        }

    def fire(self, event: Event, trainer: Trainer, *args: Any) -> None:
        for hook in self.hooks[event]:
            hook(trainer, *args)

    def state_dict(self) -> dict[str, Any]:
        return {cb.name: cb.state_dict() for cb in self.callbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for cb in self.callbacks:
            if cb.name in state:
                cb.load_state_dict(state[cb.name])
