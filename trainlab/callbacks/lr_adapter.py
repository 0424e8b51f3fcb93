"""The one adapter between a schedule and the optimizer: writes the step's LR factor every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.monitor import read


@dataclass(frozen=True)
class GroupHorizon:
    """A routed parameter group that trains for its first ``steps`` optimizer steps only.

    From ``strategy.optimizer.groups[i].train_epochs = E``: ``steps = ceil(E * steps_per_epoch)`` and
    ``schedule`` is the strategy's schedule built over ``steps`` (a linear decay reaches 0 there). Its
    param groups (``"route" == route``) get ``lr = base_lr * schedule(step) * lr_scale`` while
    ``step < steps``, and from then on are stopped: lr 0 and their parameters' ``requires_grad`` False
    (airbench's whitening bias: 3 epochs, then no gradient).
    """

    route: str
    steps: int
    schedule: Any  # step -> factor


class LRAdapter(Callback):
    """lr_g(step) = base_lr_g * schedule(step) * lr_scale (lr_scale shrinks at divergence rollbacks).

    A schedule is a ``step -> factor`` function; one that adapts to a metric (reduce_on_plateau)
    has ``observe(value)`` and ``monitor``, and its state is saved with this callback. Routed groups
    with a :class:`GroupHorizon` follow their own schedule and stop at its end.
    """

    order = 10
    name = "lr_schedule"

    def __init__(self, schedule, monitor: str = "val_loss", horizons: tuple[GroupHorizon, ...] = ()):
        self.schedule = schedule
        self.monitor = getattr(schedule, "monitor", monitor)
        self._dynamic = hasattr(schedule, "observe")
        self.horizons = tuple(horizons)
        self._last: tuple[float, dict[str, float | None]] | None = None  # the last (factor, routes) written

    def on_step_start(self, view: TrainerView) -> None:
        step, scale = view.state.step, view.state.lr_scale
        if not self.horizons:
            view.set_lr_factor(self.schedule(step) * scale)
            return
        routes = {h.route: (h.schedule(step) * scale if step < h.steps else None) for h in self.horizons}
        self._last = (self.schedule(step) * scale, routes)
        view.set_lr_factor(*self._last)

    def on_train_end(self, view: TrainerView) -> None:
        # give stopped parameters back (requires_grad True; their lr stays 0): trainlab.fit trains the
        # user's model in place, and a later fit or loop must find every parameter trainable
        if self._last is not None and None in self._last[1].values():
            factor, routes = self._last
            view.set_lr_factor(factor, {route: 0.0 if value is None else value for route, value in routes.items()})

    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self._dynamic and self.monitor in record:  # a mid-epoch validation records val_* only
            self.schedule.observe(read(record, self.monitor))

    def state_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict() if hasattr(self.schedule, "state_dict") else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("schedule") is not None and hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(state["schedule"])
