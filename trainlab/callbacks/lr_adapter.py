"""The one adapter that writes a schedule's LR into the optimizer's param groups every step."""

from __future__ import annotations

from typing import Any

from trainlab.callbacks.base import Callback
from trainlab.callbacks.monitor import read


class LRScheduleCallback(Callback):
    """lr_g(step) = base_lr_g * schedule(step) * lr_scale (lr_scale shrinks at divergence rollbacks)."""

    order = 10
    name = "lr_schedule"

    def __init__(self, schedule, monitor: str = "val_loss"):
        self.schedule = schedule
        self.monitor = getattr(schedule, "monitor", monitor)
        self._dynamic = hasattr(schedule, "observe")
        self._written: tuple[float, object] | None = None  # (factor, param_groups) last written

    def on_step_start(self, trainer) -> None:
        factor = self.schedule(trainer.state.step) * trainer.state.lr_scale
        groups = trainer.optimizer.param_groups
        if self._written is not None and self._written[0] == factor and self._written[1] is groups:
            return  # constant stretches (and constant schedules) cost one comparison per step
        for group, base in zip(groups, trainer.base_lrs, strict=True):
            group["lr"] = base * factor
        self._written = (factor, groups)

    def on_validation_end(self, trainer, record: dict[str, Any]) -> None:
        if self._dynamic:
            self.schedule.observe(read(record, self.monitor))
