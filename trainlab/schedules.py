"""Learning-rate schedules: pure ``step -> multiplier`` functions of the base LR.

A schedule factory is ``factory(total_steps, steps_per_epoch, **kwargs)`` and
returns a callable ``schedule(step) -> float``: the multiplier of each param
group's base LR at optimizer step ``step``, counted from 0 (the engine writes
``base_lr * schedule(step)`` into ``param_groups`` before every step). Factories
validate their arguments when built and raise :class:`ConfigError` naming the
key and the value. Every schedule except reduce-on-plateau is a pure function of
``step``, so a run resumed at step ``k`` gets the same LR as an uninterrupted
one. A run never asks for a step past ``total_steps``; there, the schedules with an end (the warmup ones,
cosine, polynomial, one-cycle, wsd) keep their final value, and step, exponential and cosine-restarts go on
by their formulas.

Dynamic schedules (reduce-on-plateau) also implement ``observe(value)`` and
``state_dict``/``load_state_dict``; the LR callback feeds them the monitored
metric after each validation.

Catalog, simple to complex: constant, step, multistep, exponential, polynomial,
cosine, cosine_restarts, warmup_cosine, warmup_linear, wsd, one_cycle,
reduce_on_plateau.
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, passes_user_code
from trainlab.exception_origin import failure_text
from trainlab.registry import Registry, did_you_mean

Schedule = Callable[[int], float]
# what a schedule factory must be, said when a user's breaks it (it raises, returns no schedule, its schedule(0)
# is no number): a torch lr_scheduler written as one fails in the user's own code
CONTRACT = ("a schedule factory is called as factory(total_steps, steps_per_epoch, **options) and returns "
            "schedule(step) -> float, the multiplier of the base LR at optimizer step `step` (trainlab owns the "
            "optimizer: return a function, not a torch lr_scheduler; docs/extending.md)")
SCHEDULES: Registry = Registry("schedule", contract=CONTRACT)
KEY = "strategy.schedule"  # where a config holds a schedule's options (fit: the strategy dict's "schedule")


# --------------------------------------------------------------------------- validation

def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_int(key: str, value: Any, minimum: int) -> int:
    """An integer >= ``minimum`` (bools are rejected: YAML ``yes`` is not a step count)."""
    _require(isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum,
             f"{KEY}.{key} ({value!r}) must be an integer >= {minimum}")
    return int(value)


def _check_real(key: str, value: Any, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    """A real number in the interval ``low..high`` (open or closed at each end)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    _require(ok, f"{KEY}.{key} ({value!r}) must be a number in {interval}")
    return float(value)


def _check_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    _require(value in choices, f"{KEY}.{key} ({value!r}) must be one of {', '.join(map(repr, choices))}"
             + (did_you_mean(value, list(choices)) if isinstance(value, str) else ""))
    return value


def _check_horizon(total_steps: int, steps_per_epoch: int) -> None:
    _require(isinstance(total_steps, numbers.Integral) and total_steps >= 1,
             f"schedule needs total steps >= 1; got {total_steps!r} (set strategy.epochs or strategy.max_steps)")
    _require(isinstance(steps_per_epoch, numbers.Integral) and steps_per_epoch >= 1,
             f"schedule needs steps per epoch >= 1; got {steps_per_epoch!r}")


def _warmup_steps(total_steps: int, warmup_steps: int | None, warmup_fraction: float) -> int:
    """``warmup_steps`` if given, else ``round(warmup_fraction * total_steps)``; must be < total steps."""
    if warmup_steps is not None:
        warmup = _check_int("warmup_steps", warmup_steps, 0)
        _require(warmup < total_steps, f"{KEY}.warmup_steps ({warmup}) must be < total steps ({total_steps}); "
                                       "set a smaller warmup_steps, or replace it by warmup_fraction (0.1: a "
                                       "tenth of the steps, whatever the run's length)")
        return warmup
    fraction = _check_real("warmup_fraction", warmup_fraction, 0.0, 1.0, high_open=True)
    warmup = int(round(fraction * total_steps))
    _require(warmup < total_steps, f"{KEY}.warmup_fraction ({fraction:g}) gives {warmup} warmup steps; "
                                   f"must be < total steps ({total_steps})")
    return warmup


# --------------------------------------------------------------------------- shapes

def _linear_warmup(step: int, warmup: int) -> float:
    # (t + 1) / W rather than t / W, so the first optimizer step already moves the weights
    return (step + 1) / warmup


def _cosine(progress: float, min_factor: float) -> float:
    """m + (1 - m) (1 + cos(pi p)) / 2 for progress p clamped to [0, 1]."""
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


# --------------------------------------------------------------------------- piecewise-constant schedules

@SCHEDULES.register("constant")
def constant(total_steps: int, steps_per_epoch: int) -> Schedule:
    """factor(t) = 1."""
    _check_horizon(total_steps, steps_per_epoch)
    return lambda step: 1.0


@SCHEDULES.register("step")
def step_decay(total_steps: int, steps_per_epoch: int, step_size: int = 10, gamma: float = 0.1) -> Schedule:
    """factor = gamma ** (epoch // step_size), epoch = t // steps_per_epoch (torch StepLR per epoch)."""
    _check_horizon(total_steps, steps_per_epoch)
    step_size = _check_int("step_size", step_size, 1)
    gamma = _check_real("gamma", gamma, 0.0, 1.0, low_open=True)
    return lambda step: gamma ** ((step // steps_per_epoch) // step_size)


@SCHEDULES.register("multistep")
def multistep(total_steps: int, steps_per_epoch: int, milestones: Sequence[int] = (30, 60, 90),
              gamma: float = 0.1) -> Schedule:
    """factor = gamma ** (number of milestones <= epoch), epoch = t // steps_per_epoch (torch MultiStepLR).

    ``milestones`` are epochs, strictly increasing, each >= 1.

    >>> f = multistep(40, 2, milestones=[5, 10], gamma=0.5)
    >>> [f(t) for t in (9, 10, 19, 20)]
    [1.0, 0.5, 0.5, 0.25]
    """
    _check_horizon(total_steps, steps_per_epoch)
    gamma = _check_real("gamma", gamma, 0.0, 1.0, low_open=True)
    bounds = list(milestones) if isinstance(milestones, Sequence) and not isinstance(milestones, str) else None
    _require(bounds is not None and len(bounds) >= 1
             and all(isinstance(m, numbers.Integral) and not isinstance(m, bool) and m >= 1 for m in bounds)
             and all(a < b for a, b in zip(bounds, bounds[1:], strict=False)),
             f"{KEY}.milestones ({milestones!r}) must be a non-empty, strictly increasing list of epochs >= 1")
    return lambda step: gamma ** bisect.bisect_right(bounds, step // steps_per_epoch)


# --------------------------------------------------------------------------- smooth decays over the run

@SCHEDULES.register("exponential")
def exponential(total_steps: int, steps_per_epoch: int, gamma: float = 0.95, per: str = "epoch") -> Schedule:
    """factor = gamma ** epoch (``per: epoch``, torch ExponentialLR) or gamma ** t (``per: step``)."""
    _check_horizon(total_steps, steps_per_epoch)
    gamma = _check_real("gamma", gamma, 0.0, 1.0, low_open=True)
    _check_choice("per", per, ("epoch", "step"))
    if per == "step":
        return lambda step: gamma**step
    return lambda step: gamma ** (step // steps_per_epoch)


@SCHEDULES.register("polynomial")
def polynomial(total_steps: int, steps_per_epoch: int, power: float = 1.0, end_factor: float = 0.0) -> Schedule:
    """factor = e + (1 - e) (1 - min(t, T) / T) ** power over T = total steps.

    With ``end_factor`` e = 0 this is torch ``PolynomialLR(total_iters=T, power=power)``; ``power: 1`` is
    a linear decay, ``power: 0.5`` the square-root decay of some detection recipes.
    """
    _check_horizon(total_steps, steps_per_epoch)
    power = _check_real("power", power, 0.0, math.inf, low_open=True, high_open=True)
    end_factor = _check_real("end_factor", end_factor, 0.0, 1.0)
    return lambda step: end_factor + (1.0 - end_factor) * (1.0 - min(step, total_steps) / total_steps) ** power


@SCHEDULES.register("cosine")
def cosine(total_steps: int, steps_per_epoch: int, min_factor: float = 0.0) -> Schedule:
    """factor = m + (1 - m) (1 + cos(pi t / T)) / 2 over T = total steps (torch CosineAnnealingLR)."""
    _check_horizon(total_steps, steps_per_epoch)
    min_factor = _check_real("min_factor", min_factor, 0.0, 1.0)
    return lambda step: _cosine(step / total_steps, min_factor)


@SCHEDULES.register("cosine_restarts")
def cosine_restarts(total_steps: int, steps_per_epoch: int, T_0: int = 10, T_mult: int = 1,
                    min_factor: float = 0.0, per: str = "epoch") -> Schedule:
    """SGDR: cosine from 1 to ``min_factor`` over a cycle of T_i steps, then restart at 1; T_{i+1} = T_mult T_i.

    factor = m + (1 - m) (1 + cos(pi T_cur / T_i)) / 2, T_cur = steps since the last restart
    (torch CosineAnnealingWarmRestarts stepped once per optimizer step). ``T_0`` counts epochs
    (``per: epoch``, converted to ``T_0 * steps_per_epoch`` steps, annealing every step as in the
    paper) or steps (``per: step``). The jumps back to 1 at restarts are intended.

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """
    _check_horizon(total_steps, steps_per_epoch)
    T_0 = _check_int("T_0", T_0, 1)
    T_mult = _check_int("T_mult", T_mult, 1)
    min_factor = _check_real("min_factor", min_factor, 0.0, 1.0)
    _check_choice("per", per, ("epoch", "step"))
    first_cycle = T_0 * steps_per_epoch if per == "epoch" else T_0

    def schedule(step: int) -> float:
        # integer arithmetic, so a restart lands exactly on its step (no float log as in torch's epoch form)
        since_restart, cycle = step, first_cycle
        if T_mult == 1:
            since_restart = step % cycle
        else:
            while since_restart >= cycle:
                since_restart -= cycle
                cycle *= T_mult
        return _cosine(since_restart / cycle, min_factor)

    return schedule


# --------------------------------------------------------------------------- warmup schedules

@SCHEDULES.register("warmup_cosine")
def warmup_cosine(total_steps: int, steps_per_epoch: int, warmup_steps: int | None = None,
                  warmup_fraction: float = 0.05, min_factor: float = 0.0) -> Schedule:
    """1) linear warmup (t + 1) / W for t < W; 2) cosine decay from 1 to ``min_factor`` over the other T - W steps.

    W is ``warmup_steps``, or ``round(warmup_fraction * T)`` when it is not given.
    """
    _check_horizon(total_steps, steps_per_epoch)
    warmup = _warmup_steps(total_steps, warmup_steps, warmup_fraction)
    min_factor = _check_real("min_factor", min_factor, 0.0, 1.0)

    def schedule(step: int) -> float:
        if step < warmup:  # 1) warmup
            return _linear_warmup(step, warmup)
        return _cosine((step - warmup) / (total_steps - warmup), min_factor)  # 2) cosine decay

    return schedule


@SCHEDULES.register("warmup_linear")
def warmup_linear(total_steps: int, steps_per_epoch: int, warmup_steps: int | None = None,
                  warmup_fraction: float = 0.1, end_factor: float = 0.0) -> Schedule:
    """1) linear warmup (t + 1) / W for t < W; 2) linear decay e + (1 - e) (T - t) / (T - W) after.

    The BERT fine-tuning schedule (Devlin et al. 2019; HF ``get_linear_schedule_with_warmup`` when
    e = 0, except that HF warms up with t / W and so spends its first step at LR 0).

    >>> f = warmup_linear(10, 10, warmup_steps=2)
    >>> [round(f(t), 3) for t in range(10)]
    [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    """
    _check_horizon(total_steps, steps_per_epoch)
    warmup = _warmup_steps(total_steps, warmup_steps, warmup_fraction)
    end_factor = _check_real("end_factor", end_factor, 0.0, 1.0)

    def schedule(step: int) -> float:
        if step < warmup:  # 1) warmup
            return _linear_warmup(step, warmup)
        remaining = max(total_steps - step, 0) / (total_steps - warmup)  # 2) linear decay, 1 at t = W
        return end_factor + (1.0 - end_factor) * remaining

    return schedule


_DECAY_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda progress: 1.0 - progress,
    "cosine": lambda progress: 0.5 * (1.0 + math.cos(math.pi * progress)),
    "1-sqrt": lambda progress: 1.0 - math.sqrt(progress),
}


@SCHEDULES.register("wsd")
def wsd(total_steps: int, steps_per_epoch: int, warmup_steps: int | None = None, warmup_fraction: float = 0.0,
        decay_fraction: float = 0.2, decay_shape: str = "1-sqrt", end_factor: float = 0.0) -> Schedule:
    """Warmup-stable-decay: 1) warmup (t + 1) / W; 2) constant 1; 3) decay over the last D steps.

    D = round(decay_fraction * T), decay starts at S = T - D, progress p = (t - S) / D and
    factor = e + (1 - e) shape(p) with shape ``linear`` 1 - p, ``cosine`` (1 + cos(pi p)) / 2 or
    ``1-sqrt`` 1 - sqrt(p). Because the stable phase does not depend on T, a run can be branched
    off and cooled down at any step.

    References: Hu et al., "MiniCPM", 2024 (WSD); Hägele et al., "Scaling Laws and Compute-Optimal
    Training Beyond Fixed Training Durations", 2024 (1-sqrt cooldown).
    """
    _check_horizon(total_steps, steps_per_epoch)
    warmup = _warmup_steps(total_steps, warmup_steps, warmup_fraction)
    decay_fraction = _check_real("decay_fraction", decay_fraction, 0.0, 1.0, low_open=True)
    _check_choice("decay_shape", decay_shape, tuple(_DECAY_SHAPES))
    end_factor = _check_real("end_factor", end_factor, 0.0, 1.0)
    decay = int(round(decay_fraction * total_steps))
    _require(decay >= 1, f"{KEY}.decay_fraction ({decay_fraction:g}) gives 0 decay steps "
                         f"of total steps ({total_steps}); raise it")
    _require(warmup + decay <= total_steps,
             f"{KEY}.warmup_steps ({warmup}) + decay steps ({decay}, from decay_fraction {decay_fraction:g}) "
             f"must be <= total steps ({total_steps})")
    decay_start, shape = total_steps - decay, _DECAY_SHAPES[decay_shape]

    def schedule(step: int) -> float:
        if step < warmup:  # 1) warmup
            return _linear_warmup(step, warmup)
        if step < decay_start:  # 2) stable
            return 1.0
        progress = min((step - decay_start) / decay, 1.0)  # 3) decay
        return end_factor + (1.0 - end_factor) * shape(progress)

    return schedule


@SCHEDULES.register("one_cycle")
def one_cycle(total_steps: int, steps_per_epoch: int, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4, anneal_strategy: str = "cos", three_phase: bool = False) -> Schedule:
    """1cycle (torch OneCycleLR), as a multiplier of the configured LR, which is the peak.

    Phases over T steps with P = pct_start * T (torch's phase ends, in steps):
    1) anneal 1/div_factor -> 1 over t in [0, P - 1];
    2) anneal 1 -> 1/(div_factor * final_div_factor) over [P - 1, T - 1].
    With ``three_phase``: 2) 1 -> 1/div_factor over [P - 1, 2P - 2]; 3) -> the minimum over [2P - 2, T - 1].
    ``anneal_strategy`` ``cos``: end + (start - end) (1 + cos(pi p)) / 2, ``linear``: start + (end - start) p.
    Only the LR is scheduled; torch's momentum cycling is not part of this schedule.

    Reference: Smith & Topin, "Super-Convergence", 2019.
    """
    _check_horizon(total_steps, steps_per_epoch)
    pct_start = _check_real("pct_start", pct_start, 0.0, 1.0, low_open=True, high_open=True)
    div_factor = _check_real("div_factor", div_factor, 1.0, math.inf, high_open=True)
    final_div_factor = _check_real("final_div_factor", final_div_factor, 1.0, math.inf, high_open=True)
    _check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    _require(isinstance(three_phase, bool), f"{KEY}.three_phase ({three_phase!r}) must be true or false")
    peak = float(pct_start * total_steps) - 1  # torch's end of phase 1, possibly fractional
    _require(peak > 0, f"schedule one_cycle warms up over pct_start x total steps = {pct_start:g} x {total_steps} = "
                       f"{pct_start * total_steps:g} steps, which must be more than 1: train at least "
                       f"{math.floor(1 / pct_start) + 1} steps (strategy.max_steps / epochs), raise {KEY}.pct_start, "
                       "or use another schedule (constant) for so short a run")
    initial, minimum = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)
    if three_phase:
        _require(2 * peak < total_steps - 1,
                 f"{KEY}.pct_start ({pct_start:g}) with three_phase leaves no steps for phase 3 of total "
                 f"steps ({total_steps}); need 2 * pct_start * total steps - 2 < total steps - 1")
        phases = [(peak, initial, 1.0), (2 * peak, 1.0, initial), (total_steps - 1, initial, minimum)]
    else:
        _require(peak < total_steps - 1, f"{KEY}.pct_start ({pct_start:g}) leaves no annealing steps "
                                         f"of total steps ({total_steps})")
        phases = [(peak, initial, 1.0), (total_steps - 1, 1.0, minimum)]

    def anneal(start: float, end: float, pct: float) -> float:
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def schedule(step: int) -> float:
        step = min(step, total_steps - 1)  # past the end: stay at the minimum (torch raises)
        phase_start = 0.0
        for index, (phase_end, start, end) in enumerate(phases):  # phase 1) up, 2) down[, 3) down]
            if step <= phase_end or index == len(phases) - 1:
                return anneal(start, end, (step - phase_start) / (phase_end - phase_start))
            phase_start = phase_end
        raise AssertionError("unreachable: the last phase always returns")

    return schedule


# --------------------------------------------------------------------------- dynamic schedules

class ReduceOnPlateau:
    """Multiply the LR by ``factor`` after ``patience`` validations without improvement (torch ReduceLROnPlateau).

    Improvement is relative (torch ``threshold_mode='rel'``): ``value < best (1 - threshold)`` in
    ``mode: min``, ``value > best (1 + threshold)`` in ``max``; ``mode`` left out (None, or ``auto``) is the monitor's
    direction (:func:`trainlab.metrics.monitor_mode`, as early stopping's: ``max`` for
    ``val_accuracy``, ``min`` for losses). A NaN validation never improves: it counts as a bad one, as in
    torch and early stopping. After a reduction, ``cooldown`` validations pass before bad ones count
    again; the multiplier never drops below ``min_factor``. Unlike torch there is no ``eps``: a
    reduction is applied however small the LR change.
    """

    dynamic = True

    def __init__(self, total_steps: int, steps_per_epoch: int, mode: str | None = None, factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, min_factor: float = 0.0, cooldown: int = 0,
                 monitor: str = "val_loss"):
        _check_horizon(total_steps, steps_per_epoch)
        if mode == "auto":  # Keras's word for the monitor's direction, which mode left out is
            mode = None
        if mode is not None:
            _check_choice("mode", mode, ("min", "max", "auto"))
        factor = _check_real("factor", factor, 0.0, 1.0, low_open=True, high_open=True)
        patience = _check_int("patience", patience, 0)
        threshold = _check_real("threshold", threshold, 0.0, 1.0, high_open=True)
        min_factor = _check_real("min_factor", min_factor, 0.0, 1.0)
        cooldown = _check_int("cooldown", cooldown, 0)
        _require(isinstance(monitor, str) and monitor != "",
                 f"{KEY}.monitor ({monitor!r}) must be a metric name such as 'val_loss'")
        if mode is None and isinstance(monitor, str):
            from trainlab.metrics import monitor_mode  # imported here: metrics imports the loss registry

            mode = monitor_mode(monitor)
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.min_factor, self.cooldown, self.monitor = threshold, min_factor, cooldown, monitor
        self.current = 1.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.cooldown_left = 0

    def __call__(self, step: int) -> float:
        return self.current

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False  # NaN is never a new best (torch compares and gets False; is_improvement agrees)
        if self.best is None:
            return True
        if self.mode == "min":  # relative threshold, as torch's default threshold_mode='rel'
            return value < self.best * (1 - self.threshold)
        return value > self.best * (1 + self.threshold)

    def observe(self, value: float) -> None:
        value = float(value)
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


# --------------------------------------------------------------------------- helpers

def build_schedule(spec: dict[str, Any], total_steps: int, steps_per_epoch: int) -> Schedule:
    """The schedule ``spec`` names, built for a run of ``total_steps`` steps of ``steps_per_epoch`` per epoch.

    The factory's result is checked here, where it is built: it must be callable, and ``schedule(0)`` a real
    number. A ``module:attr`` factory that raises (:meth:`Registry.build <trainlab.registry.Registry.build>`
    words it, with the user's file:line and :data:`CONTRACT`), or returns anything else (a number, a torch
    ``lr_scheduler``), is one ConfigError naming it and the contract, instead of a crash inside torch or at
    the first optimizer step.
    """
    name = spec.get("name") if isinstance(spec, dict) else spec
    user = isinstance(name, str) and ":" in name
    schedule = SCHEDULES.build(spec, total_steps, steps_per_epoch)
    if not callable(schedule):
        raise ConfigError(f"schedule factory '{name}' returned {type(schedule).__name__} ({short_repr(schedule)}), "
                          f"not a schedule; {CONTRACT}")
    try:
        first_factor = schedule(0)
    except Exception as exc:
        if not user or passes_user_code(exc):  # a built-in's bug; trainlab's own or the machine's
            raise
        raise ConfigError(f"schedule factory '{name}' returned a {type(schedule).__name__} that fails on "
                          f"schedule(0): {failure_text(exc)}; {CONTRACT}") from exc
    if isinstance(first_factor, bool) or not isinstance(first_factor, numbers.Real):
        raise ConfigError(f"schedule factory '{name}' returned a schedule whose schedule(0) is "
                          f"{type(first_factor).__name__} ({short_repr(first_factor)}), not a number; {CONTRACT}")
    return schedule


def schedule_series(schedule: Schedule, total_steps: int) -> list[float]:
    """``[schedule(0), ..., schedule(total_steps - 1)]`` as floats (for plots, reports and tests)."""
    _require(isinstance(total_steps, numbers.Integral) and total_steps >= 0,
             f"total_steps ({total_steps!r}) must be an integer >= 0")
    return [float(schedule(step)) for step in range(total_steps)]
