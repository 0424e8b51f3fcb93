"""Schedules against torch.optim.lr_scheduler (float64 LRs, rtol 1e-9), NumPy formulas, and registry properties."""

from __future__ import annotations

import doctest
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler

import trainlab.schedules as schedules_module
from trainlab.errors import ConfigError
from trainlab.schedules import SCHEDULES, build_schedule, schedule_series

BASE_LR = 0.1
RTOL = 1e-9


def ours(name: str, total_steps: int, steps_per_epoch: int, **kwargs) -> np.ndarray:
    """The LR sequence ``base_lr * factor(t)`` for t in [0, total_steps)."""
    schedule = build_schedule({"name": name, **kwargs}, total_steps, steps_per_epoch)
    return BASE_LR * np.array(schedule_series(schedule, total_steps), dtype=np.float64)


def torch_lrs(make_scheduler, total_steps: int, steps_per_epoch: int | None = None) -> np.ndarray:
    """Drive a torch scheduler on a dummy SGD optimizer; read the LR used by each optimizer step.

    ``steps_per_epoch=None``: the scheduler steps after every optimizer step (per-step schedulers);
    otherwise once at the end of each epoch (torch's per-epoch schedulers: StepLR, MultiStepLR, ExponentialLR).
    """
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=BASE_LR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR passes the deprecated epoch argument internally
        scheduler = make_scheduler(optimizer)
        lrs = []
        for step in range(total_steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if steps_per_epoch is None or (step + 1) % steps_per_epoch == 0:
                scheduler.step()
    return np.array(lrs, dtype=np.float64)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0)


# --------------------------------------------------------------------------- torch references, per epoch

@pytest.mark.parametrize("total_steps", [70, 75])  # 75: the run ends mid-epoch
def test_step_matches_torch_steplr_stepped_per_epoch(total_steps):
    expected = torch_lrs(lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), total_steps, 7)
    assert_same(ours("step", total_steps, 7, step_size=3, gamma=0.5), expected)


def test_multistep_matches_torch_multisteplr_stepped_per_epoch():
    expected = torch_lrs(lambda opt: lr_scheduler.MultiStepLR(opt, milestones=[2, 5, 8], gamma=0.3), 60, 6)
    actual = ours("multistep", 60, 6, milestones=[2, 5, 8], gamma=0.3)
    assert_same(actual, expected)
    assert len(np.unique(actual)) == 4  # all three milestones fall inside the run


def test_exponential_matches_torch_exponentiallr_per_epoch_and_per_step():
    per_epoch = torch_lrs(lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.8), 50, 5)
    assert_same(ours("exponential", 50, 5, gamma=0.8), per_epoch)
    per_step = torch_lrs(lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.97), 50)
    assert_same(ours("exponential", 50, 5, gamma=0.97, per="step"), per_step)


# --------------------------------------------------------------------------- torch references, per step

@pytest.mark.parametrize("min_factor", [0.0, 0.1])
def test_cosine_matches_torch_cosineannealinglr(min_factor):
    expected = torch_lrs(lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=120, eta_min=min_factor * BASE_LR),
                         120)
    assert_same(ours("cosine", 120, 10, min_factor=min_factor), expected)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_matches_torch_polynomiallr(power):
    expected = torch_lrs(lambda opt: lr_scheduler.PolynomialLR(opt, total_iters=90, power=power), 90)
    assert_same(ours("polynomial", 90, 9, power=power), expected)


def test_polynomial_end_factor_is_torch_polynomiallr_lifted_to_the_floor():
    end = 0.2  # factor = e + (1 - e) * torch_factor
    torch_factor = torch_lrs(lambda opt: lr_scheduler.PolynomialLR(opt, total_iters=90, power=2.0), 90) / BASE_LR
    assert_same(ours("polynomial", 90, 9, power=2.0, end_factor=end), BASE_LR * (end + (1 - end) * torch_factor))


@pytest.mark.parametrize(("T_0", "T_mult", "min_factor"), [(10, 1, 0.0), (7, 2, 0.05), (5, 3, 0.0)])
def test_cosine_restarts_per_step_matches_torch_cosineannealingwarmrestarts(T_0, T_mult, min_factor):
    expected = torch_lrs(lambda opt: lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=T_0, T_mult=T_mult, eta_min=min_factor * BASE_LR), 160)
    actual = ours("cosine_restarts", 160, 16, T_0=T_0, T_mult=T_mult, min_factor=min_factor, per="step")
    assert_same(actual, expected)
    assert np.sum(np.diff(actual) > 0) >= 2  # at least two restarts happened inside the run


@pytest.mark.parametrize("T_mult", [1, 2])
def test_cosine_restarts_in_epochs_matches_torch_fractional_epoch_stepping(T_mult):
    # torch's documented per-batch use: scheduler.step(epoch + batch / iters); our T_0 counts epochs
    steps_per_epoch, total_steps = 8, 8 * 14
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=BASE_LR)
    scheduler = lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2, T_mult=T_mult, eta_min=0.01 * BASE_LR)
    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(total_steps):
            scheduler.step(step / steps_per_epoch)
            expected.append(optimizer.param_groups[0]["lr"])
    actual = ours("cosine_restarts", total_steps, steps_per_epoch, T_0=2, T_mult=T_mult, min_factor=0.01)
    # torch's epoch form goes through float division and log; agreement to ~1e-12 is the float noise
    np.testing.assert_allclose(actual, np.array(expected), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize(("total_steps", "pct_start", "anneal", "three_phase"), [
    (100, 0.3, "cos", False), (100, 0.25, "linear", False), (97, 0.3, "cos", False),  # 97: fractional peak
    (120, 0.3, "cos", True), (83, 0.2, "linear", True),
])
def test_one_cycle_matches_torch_onecyclelr(total_steps, pct_start, anneal, three_phase):
    expected = torch_lrs(lambda opt: lr_scheduler.OneCycleLR(
        opt, max_lr=BASE_LR, total_steps=total_steps, pct_start=pct_start, anneal_strategy=anneal,
        div_factor=20.0, final_div_factor=300.0, three_phase=three_phase, cycle_momentum=False), total_steps)
    actual = ours("one_cycle", total_steps, 10, pct_start=pct_start, anneal_strategy=anneal, div_factor=20.0,
                  final_div_factor=300.0, three_phase=three_phase)
    assert_same(actual, expected)


@pytest.mark.parametrize(("warmup", "end_factor"), [(10, 0.0), (25, 0.1), (2, 0.0)])
def test_warmup_linear_matches_torch_linearlr_sequence(warmup, end_factor):
    total = 100

    def make(opt):
        ramp = lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
        decay = lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=end_factor, total_iters=total - warmup)
        return lr_scheduler.SequentialLR(opt, [ramp, decay], milestones=[warmup])

    assert_same(ours("warmup_linear", total, 10, warmup_steps=warmup, end_factor=end_factor), torch_lrs(make, total))


@pytest.mark.parametrize(("warmup", "min_factor"), [(10, 0.0), (30, 0.1)])
def test_warmup_cosine_matches_torch_linearlr_then_cosine(warmup, min_factor):
    total = 100

    def make(opt):
        ramp = lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
        decay = lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_factor * BASE_LR)
        return lr_scheduler.SequentialLR(opt, [ramp, decay], milestones=[warmup])

    assert_same(ours("warmup_cosine", total, 10, warmup_steps=warmup, min_factor=min_factor), torch_lrs(make, total))


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("cooldown", [0, 2])
def test_reduce_on_plateau_matches_torch_reducelronplateau(mode, cooldown):
    rng = np.random.default_rng(0)
    # improves, stalls with noise, creeps down by less than the relative threshold, improves, stalls for good
    values = np.concatenate([np.linspace(1.0, 0.5, 8), 0.5 + 0.01 * rng.random(12),
                             0.5 * (1 - 2e-4) ** np.arange(1, 9), np.linspace(0.49, 0.3, 6),
                             0.3 + 0.02 * rng.random(30)])
    series = values if mode == "min" else 2.0 - values
    kwargs = dict(mode=mode, factor=0.5, patience=2, threshold=1e-3, cooldown=cooldown)
    ours_schedule = SCHEDULES.build({"name": "reduce_on_plateau", **kwargs, "min_factor": 0.01}, 100, 10)
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=BASE_LR)
    reference = lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs, min_lr=0.01 * BASE_LR)
    seen = []
    for value in series:
        ours_schedule.observe(float(value))
        reference.step(float(value))
        seen.append(BASE_LR * ours_schedule(0))
        assert seen[-1] == pytest.approx(optimizer.param_groups[0]["lr"], rel=RTOL)
    assert len(set(seen)) >= 4  # several reductions happened
    if cooldown == 0:
        assert min(seen) == pytest.approx(0.01 * BASE_LR, rel=RTOL)  # down to the floor


# --------------------------------------------------------------------------- NumPy transcriptions

def numpy_wsd(total, warmup, decay_fraction, shape, end):
    t = np.arange(total, dtype=np.float64)
    decay = round(decay_fraction * total)
    start = total - decay
    progress = np.clip((t - start) / decay, 0.0, 1.0)
    shapes = {"linear": 1 - progress, "cosine": 0.5 * (1 + np.cos(np.pi * progress)), "1-sqrt": 1 - np.sqrt(progress)}
    decayed = end + (1 - end) * shapes[shape]
    ramp = (t + 1) / max(warmup, 1)
    return np.where(t < warmup, ramp, np.where(t < start, 1.0, decayed))


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize(("total", "warmup", "decay_fraction", "end"), [(200, 20, 0.2, 0.0), (157, 0, 0.33, 0.05)])
def test_wsd_matches_numpy_formula(shape, total, warmup, decay_fraction, end):
    actual = ours("wsd", total, 10, warmup_steps=warmup, decay_fraction=decay_fraction, decay_shape=shape,
                  end_factor=end) / BASE_LR
    expected = numpy_wsd(total, warmup, decay_fraction, shape, end)
    assert_same(actual, expected)
    assert np.sum(actual == 1.0) >= total * (1 - decay_fraction) - warmup - 1  # the stable phase is flat at 1


def test_warmup_cosine_matches_numpy_formula_with_warmup_fraction():
    total, fraction, m = 250, 0.1, 0.05
    warmup = round(fraction * total)
    t = np.arange(total, dtype=np.float64)
    cos = m + (1 - m) * 0.5 * (1 + np.cos(np.pi * (t - warmup) / (total - warmup)))
    expected = np.where(t < warmup, (t + 1) / warmup, cos)
    assert_same(ours("warmup_cosine", total, 10, warmup_fraction=fraction, min_factor=m) / BASE_LR, expected)


def test_warmup_linear_matches_numpy_formula():
    total, warmup, end = 300, 30, 0.1
    t = np.arange(total, dtype=np.float64)
    expected = np.where(t < warmup, (t + 1) / warmup, end + (1 - end) * (total - t) / (total - warmup))
    assert_same(ours("warmup_linear", total, 10, warmup_steps=warmup, end_factor=end) / BASE_LR, expected)


def test_docstring_examples_run():
    result = doctest.testmod(schedules_module)
    assert result.attempted >= 2 and result.failed == 0


# --------------------------------------------------------------------------- properties over the whole registry

T, SPE = 120, 12
# name -> (kwargs, phase boundaries that must be continuous, steps where a jump is allowed)
REGISTRY_CASES: dict[str, tuple[dict, list[int], set[int]]] = {
    "constant": ({}, [], set()),
    "step": ({"step_size": 2, "gamma": 0.5}, [], set(range(0, T, SPE))),
    "multistep": ({"milestones": [3, 7], "gamma": 0.2}, [], set(range(0, T, SPE))),
    "exponential": ({"gamma": 0.9}, [], set(range(0, T, SPE))),
    "polynomial": ({"power": 2.0, "end_factor": 0.1}, [], set()),
    "cosine": ({"min_factor": 0.1}, [], set()),
    "cosine_restarts": ({"T_0": 2, "T_mult": 2, "per": "epoch"}, [], {24, 72}),  # restarts by design
    "warmup_cosine": ({"warmup_steps": 15}, [15], set()),
    "warmup_linear": ({"warmup_steps": 15, "end_factor": 0.05}, [15], set()),
    "wsd": ({"warmup_steps": 15, "decay_fraction": 0.25, "decay_shape": "cosine"}, [15, 90], set()),
    "one_cycle": ({"pct_start": 0.25}, [30], set()),  # peak at step 29
    "reduce_on_plateau": ({"patience": 1}, [], set()),
}


def test_every_registered_schedule_has_a_property_case():
    assert sorted(REGISTRY_CASES) == SCHEDULES.names()


@pytest.mark.parametrize("name", sorted(REGISTRY_CASES))
def test_factor_finite_nonnegative_and_bounded_by_one(name):
    kwargs, _, _ = REGISTRY_CASES[name]
    schedule = build_schedule({"name": name, **kwargs}, T, SPE)
    values = np.array([schedule(step) for step in range(T + 5)])  # a few steps past the end too
    assert np.all(np.isfinite(values)) and np.all(values >= 0) and np.all(values <= 1 + 1e-12)


@pytest.mark.parametrize("name", sorted(REGISTRY_CASES))
def test_schedules_are_pure_functions_of_step(name):
    # resuming at step k must give the LR an uninterrupted run had: evaluate out of order on a fresh instance
    kwargs, _, _ = REGISTRY_CASES[name]
    forward = schedule_series(build_schedule({"name": name, **kwargs}, T, SPE), T)
    resumed = build_schedule({"name": name, **kwargs}, T, SPE)
    order = np.random.default_rng(1).permutation(T)
    assert [resumed(int(step)) for step in order] == [forward[step] for step in order]


def continuous_at(values: np.ndarray, boundary: int) -> bool:
    """|f(b) - f(b-1)| is no larger than the change one step either side of the boundary b."""
    change = np.abs(np.diff(values))
    return bool(change[boundary - 1] <= max(change[boundary - 2], change[boundary]) + 1e-12)


def test_continuity_check_detects_a_jump():
    assert continuous_at(np.array([0.0, 0.1, 0.2, 0.3, 0.4]), 2)
    assert not continuous_at(np.array([0.0, 0.1, 0.2, 0.9, 1.0]), 3)


@pytest.mark.parametrize("name", sorted(REGISTRY_CASES))
def test_continuous_at_phase_boundaries_and_jumps_only_where_declared(name):
    kwargs, boundaries, jumps = REGISTRY_CASES[name]
    values = np.array(schedule_series(build_schedule({"name": name, **kwargs}, T, SPE), T))
    change = np.abs(np.diff(values))  # change[t - 1] = |f(t) - f(t - 1)|
    for boundary in boundaries:
        assert continuous_at(values, boundary), f"{name} jumps at step {boundary}"
    if jumps or name in ("constant", "reduce_on_plateau"):
        rises_only = name == "cosine_restarts"  # between restarts it decays smoothly; only the rises are jumps
        moving = {t for t in range(1, T) if change[t - 1] > 0 and (not rises_only or values[t] > values[t - 1])}
        assert moving <= jumps, f"{name} changes at undeclared steps {sorted(moving - jumps)[:5]}"
        if name == "cosine_restarts":
            assert moving == jumps
    else:  # smooth schedules: no step changes by more than 10 mean steps (range / T); a jump would
        assert change.max() <= 10 * (values.max() - values.min()) / T, name


def test_one_cycle_peaks_at_one_and_ends_at_the_minimum():
    values = schedule_series(build_schedule({"name": "one_cycle", "pct_start": 0.25, "div_factor": 10,
                                             "final_div_factor": 100}, T, SPE), T)
    assert max(values) == 1.0 and values.index(1.0) == 29
    assert values[0] == pytest.approx(0.1) and values[-1] == pytest.approx(1e-3)


@settings(max_examples=40, deadline=None)
@given(total=st.integers(2, 400), warmup_fraction=st.floats(0.0, 0.45), decay_fraction=st.floats(0.01, 0.5),
       shape=st.sampled_from(["linear", "cosine", "1-sqrt"]), pct_start=st.floats(0.05, 0.9))
def test_warmup_schedules_bounded_for_any_horizon(total, warmup_fraction, decay_fraction, shape, pct_start):
    specs = [{"name": "warmup_cosine", "warmup_fraction": warmup_fraction},
             {"name": "warmup_linear", "warmup_fraction": warmup_fraction},
             {"name": "wsd", "warmup_fraction": warmup_fraction, "decay_fraction": decay_fraction,
              "decay_shape": shape},
             {"name": "one_cycle", "pct_start": pct_start}]
    for spec in specs:
        try:
            schedule = build_schedule(spec, total, 7)
        except ConfigError:
            continue  # a horizon too short for the phases is rejected when built, never at step time
        values = np.array(schedule_series(schedule, total))
        assert np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 1 + 1e-12, spec


def test_reduce_on_plateau_state_dict_round_trip():
    first = SCHEDULES.build({"name": "reduce_on_plateau", "patience": 1, "factor": 0.5, "cooldown": 2}, 100, 10)
    for value in [1.0, 0.9, 0.95, 0.97, 0.96]:  # one reduction, then cooldown running
        first.observe(value)
    saved = json.loads(json.dumps(first.state_dict()))  # checkpoints store it as JSON-like data
    resumed = SCHEDULES.build({"name": "reduce_on_plateau", "patience": 1, "factor": 0.5, "cooldown": 2}, 100, 10)
    resumed.load_state_dict(saved)
    fresh = SCHEDULES.build({"name": "reduce_on_plateau", "patience": 1, "factor": 0.5, "cooldown": 2}, 100, 10)
    later = [0.98, 0.99, 1.0, 0.5, 0.6, 0.7, 0.8]
    trace_first, trace_resumed, trace_fresh = [], [], []
    for value in later:
        for schedule, trace in ((first, trace_first), (resumed, trace_resumed), (fresh, trace_fresh)):
            schedule.observe(value)
            trace.append(schedule(0))
    assert trace_resumed == trace_first
    assert trace_fresh != trace_first  # the state actually mattered
    assert resumed.state_dict() == first.state_dict()


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize(("spec", "total", "message"), [
    ({"name": "warmup_cosine", "warmup_steps": 500}, 400, "schedule.warmup_steps (500) must be < total steps (400)"),
    ({"name": "warmup_linear", "warmup_fraction": 1.0}, 400, "schedule.warmup_fraction (1.0)"),
    ({"name": "wsd", "warmup_steps": 300, "decay_fraction": 0.5}, 400, "schedule.warmup_steps (300) + decay steps (200"),
    ({"name": "wsd", "decay_shape": "sqrt"}, 400, "schedule.decay_shape ('sqrt') must be one of 'linear', 'cosine', '1-sqrt'"),
    ({"name": "wsd", "decay_fraction": 0.001}, 400, "schedule.decay_fraction (0.001) gives 0 decay steps"),
    ({"name": "multistep", "milestones": [5, 3]}, 400, "schedule.milestones ([5, 3])"),
    ({"name": "multistep", "milestones": [0, 3]}, 400, "schedule.milestones ([0, 3])"),
    ({"name": "step", "gamma": 1.5}, 400, "schedule.gamma (1.5) must be a number in (0, 1]"),
    ({"name": "step", "step_size": 0}, 400, "schedule.step_size (0) must be an integer >= 1"),
    ({"name": "polynomial", "power": 0}, 400, "schedule.power (0)"),
    ({"name": "polynomial", "end_factor": "low"}, 400, "option 'end_factor' must be a number; got 'low'"),
    ({"name": "cosine_restarts", "T_mult": 1.5}, 400, "option 'T_mult' must be a whole number; got 1.5"),
    ({"name": "cosine_restarts", "T_mult": 0}, 400, "schedule.T_mult (0) must be an integer >= 1"),
    ({"name": "cosine_restarts", "per": "batch"}, 400, "schedule.per ('batch')"),
    ({"name": "one_cycle", "pct_start": 0.001}, 400, "0.001 x 400 = 0.4 steps, which must be more than 1: train at least 1001 steps"),
    ({"name": "one_cycle", "anneal_strategy": "cosine"}, 400, "schedule.anneal_strategy ('cosine')"),
    ({"name": "one_cycle", "div_factor": 0.5}, 400, "schedule.div_factor (0.5)"),
    ({"name": "one_cycle", "pct_start": 0.6, "three_phase": True}, 400, "schedule.pct_start (0.6) with three_phase"),
    ({"name": "exponential", "per": "batch"}, 400, "schedule.per ('batch')"),
    ({"name": "reduce_on_plateau", "factor": 1.0}, 400, "schedule.factor (1.0)"),
    ({"name": "reduce_on_plateau", "mode": "lower"}, 400, "schedule.mode ('lower')"),
    ({"name": "cosine", "min_factor": True}, 400, "option 'min_factor' must be a number; got True"),
    ({"name": "cosine"}, 0, "total steps >= 1; got 0"),
])
def test_bad_arguments_raise_config_error_naming_key_and_value(spec, total, message):
    with pytest.raises(ConfigError) as info:
        build_schedule(spec, total, 10)
    assert message in str(info.value)


def test_too_long_a_warmup_names_the_full_key_and_the_fix():
    with pytest.raises(ConfigError) as info:
        build_schedule({"name": "warmup_cosine", "warmup_steps": 10}, 10, 2)
    assert str(info.value) == ("strategy.schedule.warmup_steps (10) must be < total steps (10); set a smaller "
                               "warmup_steps, or replace it by warmup_fraction (0.1: a tenth of the steps, whatever "
                               "the run's length)")
    with pytest.raises(ConfigError, match=r"^strategy\.schedule\.gamma \(1\.5\) must be a number in \(0, 1\]$"):
        build_schedule({"name": "step", "gamma": 1.5}, 400, 10)


def test_unknown_argument_is_a_config_error():
    with pytest.raises(ConfigError, match="decay_frac"):
        build_schedule({"name": "wsd", "decay_frac": 0.1}, 100, 10)


def test_schedule_series_lists_each_step():
    assert schedule_series(lambda step: step / 4, 4) == [0.0, 0.25, 0.5, 0.75]
    assert schedule_series(build_schedule("constant", 3, 1), 3) == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="total_steps"):
        schedule_series(lambda step: 1.0, -1)


def test_cosine_restarts_cycle_lengths_follow_t_mult():
    values = np.array(schedule_series(build_schedule({"name": "cosine_restarts", "T_0": 3, "T_mult": 2,
                                                      "per": "step"}, 45, 5), 45))
    restarts = [0] + [t for t in range(1, 45) if values[t] > values[t - 1]]
    assert restarts == [0, 3, 9, 21]  # cycles of 3, 6, 12, 24 steps
    assert math.isclose(values[21], 1.0)


USER_SCHEDULES = '''import torch


def takes_the_optimizer(optimizer, total_steps):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def returns_a_number(total_steps, steps_per_epoch):
    return 5


def returns_text(total_steps, steps_per_epoch):
    return lambda step: "high"


def halves(total_steps, steps_per_epoch):
    return lambda step: 0.5
'''


@pytest.mark.parametrize(("attr", "says"), [
    # where the user's file called torch's LambdaLR, which raised (Registry.build, with the registry's contract)
    ("takes_the_optimizer", "schedule factory 'usersched_t:takes_the_optimizer' raised AttributeError: 'int' "
                            "object has no attribute 'param_groups' (at usersched_t.py:5); a schedule factory is "
                            "called as factory(total_steps, steps_per_epoch, **options) and returns schedule(step) "
                            "-> float"),
    ("returns_a_number", "schedule factory 'usersched_t:returns_a_number' returned int (5), not a schedule; a "
                         "schedule factory is called as"),
    ("returns_text", "schedule factory 'usersched_t:returns_text' returned a schedule whose schedule(0) is str "
                     "('high'), not a number"),
])
def test_a_user_schedule_breaking_the_contract_is_one_config_error(tmp_path, monkeypatch, attr, says):
    """They crashed inside torch (lr_scheduler.py: 'int' object has no attribute 'param_groups') or at the
    first step (lr_adapter.py: 'int' object is not callable)."""
    import sys

    (tmp_path / "usersched_t.py").write_text(USER_SCHEDULES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigError) as caught:
            build_schedule({"name": f"usersched_t:{attr}"}, 100, 10)
        assert str(caught.value).startswith(says) and "\n" not in str(caught.value)
        assert schedule_series(build_schedule({"name": "usersched_t:halves"}, 4, 2), 4) == [0.5] * 4
    finally:
        sys.modules.pop("usersched_t", None)
