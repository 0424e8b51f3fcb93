"""Learning-rate schedules: pure ``step -> multiplier`` functions of the base LR.

A schedule factory is ``factory(total_steps, steps_per_epoch, **kwargs)`` and
returns a callable ``schedule(step) -> float`` (the multiplier of each group's
base LR at optimizer step ``step``, counted from 0). Factories validate their
arguments when built. Dynamic schedules (reduce-on-plateau) also implement
``observe(value)`` and ``state_dict``/``load_state_dict``; the LR callback feeds
them the monitored metric after each validation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from trainlab.errors import ConfigError
from trainlab.registry import Registry

Schedule = Callable[[int], float]
SCHEDULES: Registry = Registry("schedule")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@SCHEDULES.register("constant")
def constant(total_steps: int, steps_per_epoch: int) -> Schedule:
    """factor(t) = 1."""
    return lambda step: 1.0


@SCHEDULES.register("step")
def step_decay(total_steps: int, steps_per_epoch: int, step_size: int = 10, gamma: float = 0.1) -> Schedule:
    """factor = gamma ** (epoch // step_size), epoch = t // steps_per_epoch (torch StepLR per epoch)."""
    _require(step_size >= 1, f"schedule.step_size must be >= 1 epoch; got {step_size}")
    _require(0 < gamma <= 1, f"schedule.gamma must be in (0, 1]; got {gamma}")
    return lambda step: gamma ** ((step // steps_per_epoch) // step_size)


@SCHEDULES.register("exponential")
def exponential(total_steps: int, steps_per_epoch: int, gamma: float = 0.95, per: str = "epoch") -> Schedule:
    """factor = gamma ** epoch (``per: epoch``, torch ExponentialLR) or gamma ** t (``per: step``)."""
    _require(0 < gamma <= 1, f"schedule.gamma must be in (0, 1]; got {gamma}")
    _require(per in ("epoch", "step"), f"schedule.per must be 'epoch' or 'step'; got {per!r}")
    if per == "step":
        return lambda step: gamma**step
    return lambda step: gamma ** (step // steps_per_epoch)


def _cosine(progress: float, min_factor: float) -> float:
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@SCHEDULES.register("cosine")
def cosine(total_steps: int, steps_per_epoch: int, min_factor: float = 0.0) -> Schedule:
    """factor = m + (1 - m) (1 + cos(pi t / T)) / 2 over T = total steps (torch CosineAnnealingLR)."""
    _require(0 <= min_factor <= 1, f"schedule.min_factor must be in [0, 1]; got {min_factor}")
    return lambda step: _cosine(step / max(total_steps, 1), min_factor)


@SCHEDULES.register("warmup_cosine")
def warmup_cosine(total_steps: int, steps_per_epoch: int, warmup_steps: int | None = None,
                  warmup_fraction: float = 0.05, min_factor: float = 0.0) -> Schedule:
    """1) linear warmup from 0 to 1 over W steps; 2) cosine decay to ``min_factor`` over the rest."""
    warmup = warmup_steps if warmup_steps is not None else int(round(warmup_fraction * total_steps))
    _require(0 <= warmup < max(total_steps, 1), f"schedule warmup ({warmup} steps) must be < total steps ({total_steps})")
    _require(0 <= min_factor <= 1, f"schedule.min_factor must be in [0, 1]; got {min_factor}")

    def schedule(step: int) -> float:
        if step < warmup:  # 1) warmup: (t + 1) / W, so the first step already moves
            return (step + 1) / warmup
        return _cosine((step - warmup) / max(total_steps - warmup, 1), min_factor)  # 2) decay

    return schedule


class ReduceOnPlateau:
    """Multiply the LR by ``factor`` after ``patience`` validations without improvement (torch ReduceLROnPlateau)."""

    dynamic = True

    def __init__(self, total_steps: int, steps_per_epoch: int, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, min_factor: float = 0.0, cooldown: int = 0,
                 monitor: str = "val_loss"):
        _require(mode in ("min", "max"), f"schedule.mode must be 'min' or 'max'; got {mode!r}")
        _require(0 < factor < 1, f"schedule.factor must be in (0, 1); got {factor}")
        _require(patience >= 0, f"schedule.patience must be >= 0; got {patience}")
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.min_factor, self.cooldown, self.monitor = threshold, min_factor, cooldown, monitor
        self.current = 1.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.cooldown_left = 0

    def __call__(self, step: int) -> float:
        return self.current

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":  # relative threshold, as torch's default threshold_mode='rel'
            return value < self.best * (1 - self.threshold)
        return value > self.best * (1 + self.threshold)

    def observe(self, value: float) -> None:
        if self._improved(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            self.current = max(self.current * self.factor, self.min_factor)
            self.cooldown_left, self.bad_epochs = self.cooldown, 0

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "best": self.best, "bad_epochs": self.bad_epochs,
                "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current, self.best = state["current"], state["best"]
        self.bad_epochs, self.cooldown_left = state["bad_epochs"], state["cooldown_left"]


SCHEDULES.register("reduce_on_plateau")(ReduceOnPlateau)


def build_schedule(spec: dict[str, Any], total_steps: int, steps_per_epoch: int) -> Schedule:
    return SCHEDULES.build(spec, total_steps, steps_per_epoch)
