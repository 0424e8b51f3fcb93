"""The one adapter between a schedule and the optimizer: writes the step's LR factor every step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.monitor import read
from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, passes_user_code
from trainlab.exception_origin import exception_line, raised_at
from trainlab.schedules import CONTRACT


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


def schedule_factor(schedule: Any, step: int, route: str | None = None, name: str | None = None) -> float:
    """``schedule(step)``, a finite number >= 0 (the LR multiplier of step ``step``); anything else is one
    ConfigError naming the schedule (``name``: the config's, ``mysched:f``; ``route``: a routed group's),
    the step, the value and the contract (:data:`trainlab.schedules.CONTRACT`). A negative factor made the
    optimizer ascend the loss without a word, and a NaN was reported as a divergence with the advice to
    lower the learning rate.

    A schedule that raises (the user's code failing at step 21) is the same one line, with the exception
    and where the user's code raised it (:func:`trainlab.exception_origin.raised_at`). One comparison of Python
    numbers a step; a schedule that returns a tensor (against the contract) would be read on the host here."""
    try:
        factor = schedule(step)
    except Exception as exc:
        if passes_user_code(exc):  # trainlab's own, the machine's (a full disk, memory running out)
            raise
        where = raised_at(exc)
        raise ConfigError(f"{_whose(route, name)} raised {exception_line(exc)} at step {step}"
                          f"{f' (at {where})' if where else ''}; {CONTRACT}") from exc
    try:
        if 0.0 <= factor < math.inf:  # False for NaN
            return factor
    except TypeError:  # not a number: '<=' is not defined for it
        pass
    raise ConfigError(f"{_whose(route, name)} gave {short_repr(factor)} at step {step}; an LR multiplier must be a "
                      f"finite number >= 0 (a negative one ascends the loss); {CONTRACT}")


def _whose(route: str | None, name: str | None) -> str:
    """The strategy's schedule, or the one built over routed group ``route``'s train_epochs: ``schedule
    'mysched:f' (strategy.schedule)`` (``name``: the config's; None: ``the schedule``)."""
    which = "the schedule" if name is None else f"schedule {short_repr(name)}"
    if route is None:
        return f"{which} (strategy.schedule)"
    return f"{which} of parameter group '{route}' (strategy.schedule over its train_epochs)"


class LRAdapter(Callback):
    """lr_g(step) = base_lr_g * schedule(step) * lr_scale (lr_scale shrinks at divergence rollbacks).

    A schedule is a ``step -> factor`` function whose factor is a finite number >= 0 (else a ConfigError
    at that step: :func:`schedule_factor`); one that adapts to a metric (reduce_on_plateau)
    has ``observe(value)`` and ``monitor``, and its state is saved with this callback. Routed groups
    with a :class:`GroupHorizon` follow their own schedule and stop at its end.
    """

    order = 10
    name = "lr_schedule"

    def __init__(self, schedule, monitor: str = "val_loss", horizons: tuple[GroupHorizon, ...] = (),
                 name: str | None = None):
        """``name``: the config's schedule (``strategy.schedule.name``), which a factor breaking the contract
        is said of; None (a schedule of the Python API's own): "the schedule"."""
        self.schedule = schedule
        self.schedule_name = name
        self.monitor = getattr(schedule, "monitor", monitor)
        self._dynamic = hasattr(schedule, "observe")
        self.horizons = tuple(horizons)
        self._last: tuple[float, dict[str, float | None]] | None = None  # the last (factor, routes) written

    def on_step_start(self, view: TrainerView) -> None:
        step, scale = view.state.step, view.state.lr_scale
        name = self.schedule_name
        if not self.horizons:
            view.set_lr_factor(schedule_factor(self.schedule, step, name=name) * scale)
            return
        routes = {h.route: (schedule_factor(h.schedule, step, h.route, name) * scale if step < h.steps else None)
                  for h in self.horizons}
        self._last = (schedule_factor(self.schedule, step, name=name) * scale, routes)
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
