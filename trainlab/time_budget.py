"""A time budget: as many optimizer steps as fit ``strategy.time_budget_s`` seconds on this machine.

A recipe written as "9 epochs" takes 7 minutes on one CPU and 19 on another; a speed target ("the
best model in 18 minutes") needs the run's length to follow the machine. With
``strategy.time_budget_s: B`` the run first times its own step, then trains the steps that fit, its
LR schedule laid over exactly those steps (budgeted training: the schedule decays to its end within
the budget instead of being cut off; Li, Yumer & Ramanan, ICLR 2020). Here, before the run:

1. calibrate: ``WARMUP_STEPS`` steps (not timed: first-call allocations, kernel selection), then
   timed steps until at least ``MIN_TIMED_STEPS`` steps and ``max(MIN_TIMED_S, TIMED_SHARE * B)``
   seconds (1% of the budget: a long run is worth a steadier estimate), at most ``MAX_TIMED_STEPS``,
   and warm-up and timed steps together at most the run's own length (a run of one step times that
   step, with no warm-up); ``s`` = their mean time per optimizer step (micro-batches,
   augmentation, forward, backward, clipping, update: the run's own Step). One validation pass is
   timed too (after an untimed one on a GPU or with ``runtime.compile``): ``v`` seconds. ``c`` = the
   calibration's wall time, plus ``lr: auto``'s range test when the probe's building ran one.
   A budget it cannot meet stops it early: after each step (the warm-up, then each timed one), when the
   time spent (with the range test) plus the timed steps it still needs and one step of training, at
   the mean of the steps timed so far (0 before the first), exceeds ``B`` (:func:`calibration_overruns`),
   it stops there and the run is refused as in step 2, from that estimate. So a hopeless budget costs
   about ``B`` (at most one step past it), not the whole calibration.
2. ``S`` = the largest step count with ``S s + validations(S) v <= B - c``, where
   ``validations(S)`` counts the epoch ends up to ``S`` (a last partial epoch validates too) and
   the mid-epoch validations of ``strategy.eval_every_n_steps``; never more than the config's own
   length ``L`` (``epochs``/``max_steps``/``min_steps``: the budget only shortens a run).
3. the model, loss and RNG states go back to what they were before the calibration (the probe's
   steps leave no trace), and the run is built with its schedule over ``L`` squeezed onto ``S``
   steps and a planner that re-plans as it runs, so that ``B - c`` seconds of training hold when the
   machine's speed drifts (trainlab.callbacks.time_budget).

The calibration's steps run the Step alone (no callbacks: a backbone that a callback would freeze is
timed unfrozen, so the first plan errs on the short side; the planner lengthens it). The budget counts
training, as the summary's ``train_time_s`` does, plus the calibration and, with ``lr: auto``, the LR
range test the probe's building runs (``lr_auto_s``: ``c`` includes it); not the final (test, TTA)
evaluation. ``config.yaml`` keeps ``time_budget_s``: a budgeted run's length depends on the machine.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from trainlab import notices
from trainlab.callbacks.time_budget import BudgetPlanner, ScheduleWarp, most_that_fit, validations_within
from trainlab.config import Config
from trainlab.engine.state import TrainState
from trainlab.errors import ConfigError
from trainlab.plan_warnings import warn_if_min_steps_cut
from trainlab.runtime import process_rng_states, resolve_device, set_process_rng_states

MIN_TIMED_STEPS = 3
MIN_TIMED_S = 1.0
TIMED_SHARE = 0.01
MAX_TIMED_STEPS = 50
WARMUP_STEPS = 1
REPLANS = 25  # re-plans over a run (trainlab.callbacks.time_budget.BudgetPlanner)
MIN_USEFUL_STEPS = 10  # the least budget the "leaves no time to train" error proposes: room for this many steps
# ... times this margin, rounded up: the next calibration is no copy of the last (3.0 s, then 3.3 s with the
# 3 s the unmargined estimate proposed), and its lr: auto range test may take its longer second sweep
BUDGET_MARGIN = 1.5
WITH_RANGE_TEST = " (with lr: auto's range test)"


@dataclass(frozen=True)
class StepTiming:
    """What the calibration measured (seconds)."""

    step_s: float  # mean wall time of one optimizer step
    validation_s: float  # one validation pass (0 without validation data)
    calibration_s: float  # the calibration's steps and validation (and lr: auto's range test, when it ran)
    timed_steps: int


@dataclass(frozen=True)
class CutShort:
    """A calibration stopped early (:func:`calibration_overruns`): what it had measured (seconds)."""

    spent_s: float  # the calibration so far, with lr: auto's range test when the probe's building ran one
    step_s: float  # estimate: the mean timed step, or the warm-up step's time when none was timed
    timed_steps: int
    steps_left: int  # timed steps the calibration still needed, at the least

    def projected(self) -> StepTiming:
        """The calibration it would have made, as far as known: the steps it still needed at ``step_s`` each,
        and no validation (none was timed)."""
        return StepTiming(self.step_s, 0.0, self.spent_s + self.steps_left * self.step_s, self.timed_steps)


def calibration_overruns(budget_s: float, spent_s: float, step_s: float, steps_left: int) -> bool:
    """Whether ``spent_s + (steps_left + 1) x step_s > budget_s``: the time already spent and, at ``step_s``
    each, the timed steps the calibration still needs and one step of training do not fit ``budget_s``. A
    lower bound of the calibration's end (its validation, and timed seconds past ``MIN_TIMED_STEPS``, not
    counted), so a budget that the whole calibration would find room in for a step is not cut short (up to
    the estimate's noise).

    >>> calibration_overruns(60.0, spent_s=49.1, step_s=22.2, steps_left=2)  # 49.1 + 3 x 22.2 = 115.7
    True
    >>> calibration_overruns(60.0, spent_s=27.0, step_s=0.0, steps_left=3)  # after the warm-up: no estimate yet
    False
    """
    return spent_s + (steps_left + 1) * step_s > budget_s


def least_useful_budget_s(timing: StepTiming) -> int:
    """The budget the "leaves no time to train" error proposes, in whole seconds:
    ``ceil(BUDGET_MARGIN x (calibration_s + MIN_USEFUL_STEPS x step_s + validation_s))``, room for the
    calibration, ``MIN_USEFUL_STEPS`` steps and a validation with a margin for the next calibration's drift.

    >>> least_useful_budget_s(StepTiming(step_s=0.0005, validation_s=0.0009, calibration_s=2.96, timed_steps=3))
    5
    """
    needed = timing.calibration_s + MIN_USEFUL_STEPS * timing.step_s + timing.validation_s
    return math.ceil(BUDGET_MARGIN * needed)


def steps_within_budget(budget_s: float, timing: StepTiming, steps_per_epoch: int, cap_steps: int,
                        every_n_steps: int | None = None) -> int:
    """The largest ``S <= cap_steps`` with ``S * step_s + validations_within(S) * validation_s <= budget_s
    - calibration_s`` (0 when not even one step fits). The left side grows with ``S``: a bisection."""
    left = budget_s - timing.calibration_s

    def cost(steps: int) -> float:
        return steps * timing.step_s + validations_within(steps, steps_per_epoch, every_n_steps) * timing.validation_s

    return 0 if left < 0 else most_that_fit(cap_steps, cost, left)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(built: Any, min_timed_s: float = MIN_TIMED_S, clock: Callable[[], float] = time.perf_counter,
               budget_s: float | None = None, spent_before_s: float = 0.0) -> StepTiming | CutShort:
    """Calibration steps through ``built``'s own Step on the run's first batches (timed for at least
    ``min_timed_s``), and one validation pass (after an untimed one on a GPU or with ``runtime.compile``);
    ``built``'s model and optimizer are left changed (the caller restores what it keeps). The warm-up
    and timed steps together are at most ``MAX_TIMED_STEPS + WARMUP_STEPS`` and the run's
    ``total_steps``: the calibration trains no batch the run itself would not.

    With ``budget_s``, the calibration stops after the step at which ``spent_before_s`` (time spent before
    it: lr: auto's range test) and its own time show it :func:`calibration_overruns` the budget, and returns
    a :class:`CutShort` (no validation timed)."""
    trainer, step = built.trainer, built.step
    device = trainer.batches.device
    # never more steps than the run trains (no batch the run would not reach): a run of one step is timed
    # with no warm-up step
    warmup = min(WARMUP_STEPS, trainer.total_steps - 1)
    most_timed = min(MAX_TIMED_STEPS, trainer.total_steps - warmup)
    least_timed = min(MIN_TIMED_STEPS, most_timed)
    state = TrainState()
    started = clock()
    step.set_mode(training=True)
    timed, first = 0, started
    for micro_batches in trainer.batches.steps_forever(trainer.plan):
        step.train_step(micro_batches, state)
        state.step += 1
        _sync(device)
        now = clock()
        if state.step == warmup:
            first = now
        elif state.step > warmup:
            timed += 1
        mean_s = (now - first) / timed if timed else 0.0  # the warm-up's time is no step's: no estimate yet
        spent = spent_before_s + now - started
        if budget_s is not None and calibration_overruns(budget_s, spent, mean_s, max(0, least_timed - timed)):
            estimate = mean_s if timed else (now - started) / state.step
            return CutShort(spent, estimate, timed, max(0, least_timed - timed))
        if timed >= most_timed or (timed >= MIN_TIMED_STEPS and now - first >= min_timed_s):
            break
    step.set_mode(training=False)
    if device.type == "cuda" or getattr(step, "options", None) is not None and step.options.compile:
        trainer.validation.evaluate()  # not timed: its first pass compiles or autotunes the eval graph
    validation_started = clock()
    trainer.validation.evaluate()
    _sync(device)
    validation_s = clock() - validation_started
    return StepTiming(mean_s, validation_s, clock() - started, timed)


def _on_cpu(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a state dict with its tensors on the CPU (no second copy of the weights on a GPU)."""
    return {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else copy.deepcopy(v)
            for k, v in tree.items()}


def _saved_states(model: torch.nn.Module, loss: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    return {"model": _on_cpu(model.state_dict()), "loss": _on_cpu(loss.state_dict()),
            "requires_grad": [p.requires_grad for p in model.parameters()], "training": model.training,
            "rng": process_rng_states(cuda=device.type == "cuda")}  # the probe would start CUDA's RNG itself


def _restore_states(model: torch.nn.Module, loss: torch.nn.Module, saved: dict[str, Any]) -> None:
    model.load_state_dict(saved["model"])
    if saved["loss"]:
        loss.load_state_dict(saved["loss"])
    for parameter, requires_grad in zip(model.parameters(), saved["requires_grad"], strict=True):
        parameter.requires_grad_(requires_grad)
        parameter.grad = None
    model.train(saved["training"])
    set_process_rng_states(saved["rng"])


def plan_line(record: dict[str, Any]) -> str:
    """The one line that tells the user what the calibration measured and planned (``notes.time_budget``)."""
    steps, per_epoch, range_test = record["planned_steps"], record["steps_per_epoch"], record.get("lr_auto_s")
    return (f"time budget {record['seconds']:g} s: {record['timed_steps']} timed steps at {record['step_s']:.3g} s a "
            f"step, a validation {record['validation_s']:.3g} s, calibration {record['calibration_s']:.1f} s"
            f"{f' ({range_test:.1f} s of it lr: auto' + chr(39) + 's range test)' if range_test else ''} -> {steps} "
            f"steps ({steps / per_epoch:.2f} epochs of {per_epoch}"
            f"{'' if steps < record['length_steps'] else '; the config' + chr(39) + 's whole length'}), "
            f"re-planned as it runs")


def no_time_to_train(budget_s: float, timing: StepTiming | CutShort, range_test: bool) -> str:
    """The one line refusing a budget in which not even one step fits, proposing
    :func:`least_useful_budget_s` (of the calibration the probe would have made, when it stopped early)."""
    calibration = f"strategy.time_budget_s={budget_s:g} leaves no time to train: the calibration" + (
        WITH_RANGE_TEST if range_test else "")
    if isinstance(timing, CutShort):
        plural = "s" if timing.timed_steps > 1 else ""
        where, source = ((f"{timing.timed_steps} timed step{plural} in", f"{timing.timed_steps} timed step{plural}")
                         if timing.timed_steps else  # its time, first-call allocations and all, is the only one
                         ("at its warm-up step", "the warm-up step, which errs long: it also allocates"))
        return (f"{calibration} stopped after {timing.spent_s:.1f} s, {where}, with no room left for the rest of "
                f"it and one step of training: a step takes about {timing.step_s:.3g} s (an estimate from {source}; "
                f"no validation timed); raise time_budget_s to at least {least_useful_budget_s(timing.projected())} "
                f"(by that estimate: the calibration and {MIN_USEFUL_STEPS} steps, with a {BUDGET_MARGIN:g}x margin "
                "for the next calibration's own time and a validation), or set epochs instead")
    return (f"{calibration} took {timing.calibration_s:.1f} s and a step takes {timing.step_s:.3g} s (a validation "
            f"{timing.validation_s:.3g} s); raise time_budget_s to at least {least_useful_budget_s(timing)} "
            f"(the calibration, {MIN_USEFUL_STEPS} steps and a validation, with a {BUDGET_MARGIN:g}x margin for "
            "the next calibration's own time), or set epochs instead")


@dataclass(frozen=True)
class BudgetPlan:
    """What the run starts with: ``steps`` (the calibration's estimate of the steps that fit) within
    ``train_s`` seconds of training (the budget less the calibration), and the record that
    ``summary.json`` keeps as ``notes.time_budget`` (the planner adds its re-plans to it)."""

    steps: int | None  # None: the run's whole length (a resume, whose checkpoint holds the plan)
    train_s: float
    record: dict[str, Any]


def budgeted(schedule: Any, length: int, budget: BudgetPlan) -> tuple[Any, BudgetPlanner]:
    """(the LR adapter's schedule, the planner) of a budgeted run whose schedule was built over ``length`` steps;
    a schedule that follows a metric (reduce_on_plateau) is not warped, only the run's end moves."""
    steps = length if budget.steps is None else budget.steps
    warp = None if hasattr(schedule, "observe") else ScheduleWarp(schedule, length, steps)
    planner = BudgetPlanner(budget.train_s, length, steps, max(1, steps // REPLANS), warp, budget.record)
    return (schedule if warp is None else warp), planner


def assemble_within_budget(assemble: Callable[..., Any], config: Config, data: Any, loss: Any,
                           model: torch.nn.Module, notes: dict[str, Any], quiet: bool, calibrate: bool = True,
                           clock: Callable[[], float] = time.perf_counter) -> Any:
    """``assemble(config, data, loss, model, notes, quiet)``, fitted to ``strategy.time_budget_s`` (module
    docstring); without a budget, ``assemble`` itself. ``notes["time_budget"]`` records the measurement.

    ``calibrate=False`` (a resume) times nothing: the run starts planned at its whole length and the
    checkpoint's planner state, loaded next, brings back the plan and the record of the first run.
    """
    budget = config.strategy.time_budget_s
    if budget is None:
        return assemble(config, data, loss, model, notes, quiet)
    if not calibrate:
        notes["time_budget"] = {"seconds": budget, "replans": []}
        return assemble(config, data, loss, model, notes, quiet, budget=BudgetPlan(None, budget, notes["time_budget"]))
    saved = _saved_states(model, loss, resolve_device(config.runtime.device))
    probe_output = io.StringIO()  # what the probe prints: the real build below prints it once
    try:
        # the probe's warnings (trainlab.notices) are held back, and the library warnings.warn silenced
        # (leaving catch_warnings resets the once-per-line registry), so the real build below gives each once
        with notices.held_back() as probe_warnings, contextlib.redirect_stderr(probe_output), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = assemble(config, data, loss, model, notes, True)
        timing = time_steps(probe, max(MIN_TIMED_S, TIMED_SHARE * budget), clock, budget,
                            spent_before_s=notes.get("lr_auto_s", 0.0))
    except BaseException:  # no real build follows: what the probe said may say why
        sys.stderr.write(probe_output.getvalue())
        for message in probe_warnings:
            notices.warn(message)
        raise
    finally:
        _restore_states(model, loss, saved)
    lr_auto_s = notes.get("lr_auto_s", 0.0)  # lr: auto's range test ran before the calibration: counted too
    if isinstance(timing, CutShort):
        raise ConfigError(no_time_to_train(budget, timing, bool(lr_auto_s)))
    steps_per_epoch, length = probe.trainer.plan.steps_per_epoch, probe.trainer.total_steps
    resolved = probe.config  # what the probe's building resolved (lr: auto, loss: auto): not resolved twice
    del probe  # its step, optimizer state and device copy of the data go before the run's own are built
    if lr_auto_s:
        timing = replace(timing, calibration_s=timing.calibration_s + lr_auto_s)
    every = config.strategy.eval_every_n_steps
    steps = steps_within_budget(budget, timing, steps_per_epoch, length, every)
    if steps < 1:
        raise ConfigError(no_time_to_train(budget, timing, bool(lr_auto_s)))
    record = {"seconds": budget, **asdict(timing), "planned_steps": steps, "length_steps": length,
              "steps_per_epoch": steps_per_epoch, "eval_every_n_steps": every,
              "planned_epochs": round(steps / steps_per_epoch, 3), "replans": []}
    if lr_auto_s:
        record["lr_auto_s"] = lr_auto_s
    notes["time_budget"] = record
    if not quiet:
        print(plan_line(record), file=sys.stderr)
    warn_if_min_steps_cut(config.strategy.min_steps, budget, steps, length)
    return assemble(resolved, data, loss, model, notes, quiet,
                    budget=BudgetPlan(steps, budget - timing.calibration_s, record))
