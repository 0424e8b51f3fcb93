"""The divergence guard on negative losses (Gaussian NLL, log-likelihood objectives, some contrastive losses).

The finding: the rule was written for positive losses. Its floor ``reference / 4`` went below 0 for a
negative starting loss, leaving the MAD alone as the spread, and "counts at once above 10 x the
threshold" put the bar below the threshold once that was negative, so every spike counted at once: an
NLL steady at -0.5 +- 0.005 was stopped by one loss of 0.0 ("> -0.2511"). The rule now uses
``|reference|`` in the floor and takes its multiples of a threshold above ``b = min(median, 0)``
(module docstring of trainlab/callbacks/spike_rule.py): for positive losses exactly today's rule,
for negative ones the multiple of the threshold's excess over the median.

Every decision is checked against :func:`written_out_rule`, the rule written out here value by value
from the module docstring (plain Python and NumPy), not against the guard itself.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from tests.test_divergence_guard_sequences import FakeView, feed
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.errors import TrainingError


def fewest_in_a_row(rate: float) -> int:
    """The fewest n >= 2 with rate ** n <= 1e-6 (at most 1000), by counting up."""
    n = 2
    while n < 1000 and rate ** n > 1e-6 * (1 + 1e-9):
        n += 1
    return n


def written_out_rule(losses, spike_factor: float, window: int, *, today: bool = False) -> int | None:
    """The index of the loss at which the guard (one loss per step, rows >= 32) stops, or None.

    Start: m the first loss; before the reference (median of the first max(5, window // 2) good losses)
    exists a loss above m + 100 k max(|m|, 0.01) / 4 is held, and counts as the third held in a row, or the
    second when above m + 1000 k max(|m|, 0.01) / 4; a loss at or below the first bar accepts the held
    ones before it, in order, and m becomes the largest of them. Then T = m + k max(1.4826 MAD, |ref| / 4)
    over the last ``window`` good losses (m their median), recomputed at every 10th judged loss. A loss
    above T is a spike. The spike memory: spikes of finished runs (the newest 128, of the last 1000
    judged) above T that passed a threshold <= b + 10 (T - b), plus the window's losses above T;
    q = (their count - 1) / span, S their median. A spike counts above b + 10 (max(T, S) - b), or when it
    ends a run of n spikes (q ** n <= 1e-6), b = min(m, 0). ``today``: the rule before negative losses
    were considered, ref / 4 in the floor and b = 0.
    """
    k = spike_factor
    recent: list[float] = []
    reference = start = threshold = median = None
    judged, run, memory = 0, [], []  # run and memory: (judged index, value, threshold passed)
    held: list[float] = []  # before the reference: the losses above the start bar, in a row
    reference_after = max(5, window // 2)
    for index, value in enumerate(losses):
        if not math.isfinite(value):
            return index
        if reference is None:
            if start is None:
                start = value
            elif value > start + 100 * k * max(abs(start), 0.01) / 4:
                held.append(value)
                if len(held) == 3 or (len(held) == 2 and value > start + 1000 * k * max(abs(start), 0.01) / 4):
                    return index
                continue
            elif held:
                start = max(start, *held)
                for earlier in held:
                    recent.append(earlier)
                    if reference is None and len(recent) >= reference_after:
                        reference = float(np.median(recent))
                held = []
        else:
            if threshold is None or judged % 10 == 0:
                last = np.array(recent[-window:])
                median = float(np.median(last))
                mad = float(np.median(np.abs(last - median)))
                threshold = median + k * max(1.4826 * mad, (reference if today else abs(reference)) / 4)
            judged += 1
            if value > threshold:
                base = 0.0 if today else min(median, 0.0)
                kept = [s for s in memory[-128:] if s[0] > judged - 1000]
                span = min(1000, judged + reference_after)
                if len(kept) == 128:
                    span = min(span, judged - kept[0][0] + 1)
                high = base + 10 * (threshold - base)
                spikes = [v for v in recent[-window:] if v > threshold]
                spikes += [v for _, v, passed in kept if v > threshold and passed <= high]
                rate = (len(spikes) - 1) / span if spikes else 0.0
                level = max(threshold, float(np.median(spikes))) if spikes else threshold
                if value > base + 10 * (level - base) or len(run) + 1 >= fewest_in_a_row(rate):
                    return index
                run.append((judged, value, threshold))
                continue
        memory += run
        run = []
        recent.append(value)
        if reference is None and len(recent) >= reference_after:
            reference = float(np.median(recent))
    return None


def guard_stop(losses, spike_factor: float = 50.0, window: int = 50) -> int | None:
    """The index of the loss the guard stops at (0-based), or None when it lets the sequence through."""
    view = FakeView()
    guard = DivergenceGuard("stop", spike_factor, window, lr_factor=0.5, max_rollbacks=3)
    try:
        feed(guard, view, losses)
    except TrainingError:
        return view.state.events[-1]["step"] - 1
    assert view.state.events == []
    return None


def as_float32(losses) -> list[float]:
    """The losses as the guard reads them (float32 tensors)."""
    return np.asarray(losses, dtype=np.float32).astype(np.float64).tolist()


def steady_nll(steps: int = 400, level: float = -0.5, noise: float = 0.005, seed: int = 0) -> np.ndarray:
    """An NLL-like loss steady at ``level`` +- ``noise`` (normal)."""
    return level + noise * np.random.default_rng(seed).normal(size=steps)


# ----------------------------------------------------------------------------- the finding


def test_one_benign_bump_of_a_steady_negative_loss_is_not_divergence():
    """The finding: NLL at -0.5 +- 0.005, one loss of 0.0 at step 151. A loss 0.5 above its level is as
    healthy as it is for a loss steady at +0.5 (threshold 0.5 + 50 x 0.5 / 4 = 6.75)."""
    losses = steady_nll()
    losses[150] = 0.0
    losses = as_float32(losses)
    assert written_out_rule(losses, 50.0, 50) is None
    assert written_out_rule(losses, 50.0, 50, today=True) == 150  # what the issue saw
    assert guard_stop(losses) is None


def test_two_bumps_in_a_row_below_the_floor_are_not_divergence():
    """The floor: with ``reference / 4`` negative the threshold was -0.5 + 50 x 1.4826 MAD (~ -0.25), and two
    losses of 0.0 in a row counted; |reference| / 4 puts it at 5.75, as 6.75 for the loss steady at +0.5."""
    losses = steady_nll(seed=1)
    losses[150:152] = 0.0
    losses = as_float32(losses)
    assert written_out_rule(losses, 50.0, 50) is None
    assert guard_stop(losses) is None
    shifted = as_float32(np.asarray(losses) + 1.0)  # the same sequence steady at +0.5: today's rule agrees
    assert written_out_rule(shifted, 50.0, 50, today=True) is None and guard_stop(shifted) is None


@pytest.mark.parametrize("bad", [1e6, math.nan, math.inf])
def test_a_negative_loss_exploding_is_stopped_at_its_step(bad):
    losses = steady_nll(seed=2)
    losses[150] = 0.0  # the benign bump, still not counted
    losses[300] = bad
    losses = as_float32(losses)
    assert written_out_rule(losses, 50.0, 50) == 300
    assert guard_stop(losses) == 300


def test_a_negative_loss_that_keeps_growing_is_stopped():
    """Divergence from a negative level: the loss grows x10 every 4 steps from -0.5 + 0.01."""
    losses = steady_nll(seed=3)
    losses[200:] = -0.5 + 0.01 * 10.0 ** np.minimum(np.arange(200) / 4, 30.0)  # capped below float32's max
    losses = as_float32(losses)
    expected = written_out_rule(losses, 50.0, 50)
    assert expected is not None and 200 < expected < 215
    assert guard_stop(losses) == expected


@pytest.mark.parametrize(("held", "expected"), [
    ([3000.0], None),               # one held, then the level again: cleared, the start level 3000
    ([3000.0, 20000.0], None),      # two, the second below the far bar: cleared
    ([3000.0, 30000.0], 4),         # two, the second above -2 + 12500 x 2 = 24998: counts
    ([3000.0] * 3, 5),              # three in a row: counts
    ([2400.0] * 3, None),           # below -2 + 1250 x 2 = 2498 (|m|): accepted, not held
])
def test_a_negative_start_holds_losses_above_a_bar_measured_by_its_size(held, expected):
    """Start level -2 (an NLL): the start bar -2 + 1250 x |-2| = 2498 and the far bar 24998, above 0 as
    for a start of +2 (m + 1250 m would be -2502, every loss above it)."""
    base = list(steady_nll(steps=60, level=-2.0, noise=0.01, seed=12))
    losses = as_float32(base[:3] + held + base[3:])
    assert written_out_rule(losses, 50.0, 50) == expected
    assert guard_stop(losses) == expected


# ----------------------------------------------------------------------------- the bar above a negative median


def improving_nll(steps: int = 600, seed: int = 0) -> np.ndarray:
    """A Gaussian NLL whose predicted variance shrinks: from -0.5 down to -20 over 200 steps, then steady,
    +- 0.05 noise; its threshold is then -20 + 50 x 0.5 / 4 = -13.75, below 0."""
    rng = np.random.default_rng(seed)
    trend = np.concatenate([np.full(50, -0.5), np.linspace(-0.5, -20.0, 200), np.full(steps - 250, -20.0)])
    return trend + 0.05 * rng.normal(size=steps)


def test_a_lone_hard_batch_of_a_loss_below_zero_is_not_divergence():
    """Threshold -13.75: ``10 x T`` = -137.5 put every spike past the bar; the bar is now the median
    + 10 x (T - median) = -20 + 62.5. A lone loss of -5 (15 above the level) is a spike, not divergence;
    two in a row, or one above the bar, count."""
    losses = improving_nll()
    losses[400] = -5.0
    lone = as_float32(losses)
    assert written_out_rule(lone, 50.0, 50) is None
    assert written_out_rule(lone, 50.0, 50, today=True) == 400  # 10 x T, below T
    assert guard_stop(lone) is None
    losses[401] = -5.0
    twice = as_float32(losses)
    assert written_out_rule(twice, 50.0, 50) == 401 and guard_stop(twice) == 401
    losses[401] = -20.0
    losses[400] = 50.0  # above -20 + 10 x 6.25 = 42.5
    high = as_float32(losses)
    assert written_out_rule(high, 50.0, 50) == 400 and guard_stop(high) == 400


def test_the_spike_memory_of_a_loss_below_zero_sets_how_long_a_run_must_be():
    """NLL at -20 whose batches spike at ~20% (hard batches 30 above the level): a run counts when q ** n <=
    1e-6 (n 9 at q = 0.2). The memory keeps the spikes that passed a threshold <= b + 10 (T - b): with
    ``10 x T`` (below T) it kept none, so two spikes in a row counted."""
    losses = improving_nll(steps=1500, seed=5)
    losses[np.random.default_rng(5).random(1500) < 0.2] += 30.0
    losses = as_float32(losses)
    assert written_out_rule(losses, 50.0, 50) is None
    assert written_out_rule(losses, 50.0, 50, today=True) is not None
    assert guard_stop(losses) is None
    diverged = np.asarray(losses)
    diverged[1200:] += 30.0  # every batch a spike from step 1201: a run longer than the data makes
    diverged = as_float32(diverged)
    expected = written_out_rule(diverged, 50.0, 50)
    assert expected is not None and 1200 < expected < 1230
    assert guard_stop(diverged) == expected


# ----------------------------------------------------------------------------- positive losses: as before


def outlier_batches(steps: int, rate: float, seed: int) -> np.ndarray:
    """Positive batch losses: lognormal around a level falling 2 -> 0.5, a fraction ``rate`` of the batches
    holding an outlier row (x 78) and ~rate / 7 holding two (x 156), 1% lone losses of 20-300 (some
    between median + 10 x (T - median) and 10 x T: where the two bars decide apart), and a loss growing
    x10 every 4 steps from a random step of the second half on (every other seed)."""
    rng = np.random.default_rng(seed)
    losses = np.exp(rng.normal(0.0, 0.3, steps)) * np.linspace(2.0, 0.5, steps)
    draw = rng.random(steps)
    losses[draw < rate] *= 78.0
    losses[draw < rate / 7] *= 2.0
    lone = draw > 0.99
    losses[lone] = rng.uniform(20.0, 300.0, lone.sum())
    if seed % 2:
        at = int(rng.integers(steps // 2, steps - 40))
        losses[at:] *= 10.0 ** np.minimum(np.arange(steps - at) / 4, 30.0)  # capped below float32's max
    return losses


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.27])
def test_positive_losses_are_judged_exactly_as_before(rate, seed):
    """For positive losses the rule is today's, ``reference / 4`` and ``10 x max(T, S)``, written out."""
    losses = as_float32(outlier_batches(1500, rate, seed))
    expected = written_out_rule(losses, 50.0, 50, today=True)
    assert guard_stop(losses) == expected
    if seed % 2:
        assert expected is not None  # the growing loss is caught


@pytest.mark.parametrize("spike", [120.0, 130.0, 140.0])
def test_a_positive_lone_spike_counts_at_once_above_ten_times_the_threshold_as_before(spike):
    """A loss steady at 1.0 +- 0.01: T = 1 + 50 x 1 / 4 = 13.5, so 10 x T = 135 while median + 10 x (T -
    median) would be 126. A lone spike of 130 is not counted, as before; 140 counts at once."""
    losses = steady_nll(level=1.0, noise=0.01, seed=7)
    losses[300] = spike
    losses = as_float32(losses)
    expected = written_out_rule(losses, 50.0, 50, today=True)
    assert expected == (300 if spike > 135.0 else None)
    assert guard_stop(losses) == expected


def test_small_steps_of_a_loss_below_zero_name_the_bar_above_the_median():
    """Steps of 4 rows are judged by 8-step medians; an open group counts once 5 of its steps are above the
    bar a complete group's median counts at once at: -20 + 10 x 50 x 0.5 / 4 = 42.5 here, not 10 x T."""
    losses = improving_nll(steps=2400, seed=9)  # judged by 8-step medians: 300 medians, the level -20
    losses[2000:] = 1e3
    losses = as_float32(losses)
    view = FakeView()
    guard = DivergenceGuard("stop", 50.0, 50, lr_factor=0.5, max_rollbacks=3, rows_per_step=4)
    with pytest.raises(TrainingError, match="steps 2001-2005 of a 8-step group above ") as stopped:
        feed(guard, view, losses)
    medians = np.median(np.reshape(losses[:2000], (250, 8)), axis=1)
    reference, window = float(np.median(medians[:5])), medians[-50:]
    median = float(np.median(window))
    spread = max(1.4826 * float(np.median(np.abs(window - median))), abs(reference) / 4)
    assert median < -19.9 and median + 50 * spread < -13.0  # the threshold is below 0
    shown = float(str(stopped.value).split(" group above ")[1].split(" = ")[0])
    assert shown == pytest.approx(median + 10 * 50 * spread, rel=1e-3)  # the line shows 4 digits
    assert "= median + 10 x 50 x spread of recent 8-step medians: its median will be too" in str(stopped.value)


def test_a_resumed_guard_measures_from_the_median_the_uninterrupted_one_does():
    """The window's median the cached threshold was computed with is guard state: a guard loaded from
    another's state (a checkpoint round trip) counts the same run of spikes at the same step."""
    losses = improving_nll(seed=11)
    losses[400:402] = -5.0  # two spikes in a row, below median + 10 x (T - median): the second counts
    losses = as_float32(losses)
    assert written_out_rule(losses, 50.0, 50) == 401 and guard_stop(losses) == 401
    interrupted, view = DivergenceGuard("stop", 50.0, 50, lr_factor=0.5, max_rollbacks=3), FakeView()
    feed(interrupted, view, losses[:395])
    state = json.loads(json.dumps(interrupted.state_dict()))
    # 25 losses made the reference, 370 were judged; the threshold was last computed before the 361st
    assert state["judged"] == 370
    assert state["median"] == pytest.approx(float(np.median(losses[335:385])), rel=1e-12)
    resumed = DivergenceGuard("stop", 50.0, 50, lr_factor=0.5, max_rollbacks=3)
    resumed.load_state_dict(state)
    resumed_view = FakeView()
    resumed_view.state = copy.deepcopy(view.state)
    with pytest.raises(TrainingError, match="at step 402: loss spike"):
        for value in losses[395:]:
            resumed_view.advance()
            resumed.on_step_end(resumed_view, torch.tensor(value))
        resumed.on_before_save(resumed_view)
