"""The one adapter between a schedule and the optimizer: writes the step's LR factor every step."""

from __future__ import annotations

from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.monitor import read


class LRAdapter(Callback):
    """lr_g(step) = base_lr_g * schedule(step) * lr_scale (lr_scale shrinks at divergence rollbacks).

    A schedule is a ``step -> factor`` function; one that adapts to a metric (reduce_on_plateau)
    has ``observe(value)`` and ``monitor``, and its state is saved with this callback.
    """

    order = 10
    name = "lr_schedule"

    def __init__(self, schedule, monitor: str = "val_loss"):
        self.schedule = schedule
        self.monitor = getattr(schedule, "monitor", monitor)
        self._dynamic = hasattr(schedule, "observe")

    def on_step_start(self, view: TrainerView) -> None:
        view.set_lr_factor(self.schedule(view.state.step) * view.state.lr_scale)

    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self._dynamic:
            self.schedule.observe(read(record, self.monitor))

    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict() if hasattr(self.schedule, "state_dict") else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("schedule") is not None and hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(state["schedule"])
