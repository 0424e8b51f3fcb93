"""SpikeRule alone, on scripted losses (no trainer, no model): the threshold against the formula written out in
NumPy, the start rule's held run, NaN at once, and a state_dict round-trip that judges the rest as before."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainlab.callbacks.spike_rule import SpikeRule


def judge_all(rule: SpikeRule, losses: list[float], first_step: int = 0) -> list[tuple[int, str | None, int]]:
    """Each loss judged in turn: (step, why it counts or None, the first step of what counted)."""
    return [(first_step + i, *rule.judge(value, first_step + i)) for i, value in enumerate(losses)]


def numpy_threshold(window: list[float], reference: float, spike_factor: float) -> float:
    median = np.median(window)
    mad = np.median(np.abs(np.asarray(window) - median))
    return float(median + spike_factor * max(1.4826 * mad, abs(reference) / 4))


def test_the_threshold_a_good_window_sets_is_median_plus_factor_times_the_robust_spread():
    rng = np.random.default_rng(0)
    losses = list(1.0 + 0.05 * rng.standard_normal(60))
    rule = SpikeRule(spike_factor=50.0, window=20)
    assert all(problem is None for _, problem, _ in judge_all(rule, losses))
    reference = float(np.median(losses[:10]))  # the median of the first half-window
    assert rule.reference == pytest.approx(reference, rel=1e-12)
    expected = numpy_threshold(list(rule.recent), reference, 50.0)
    above = rule.problem(expected * (1 + 1e-9))
    assert above is not None and above.startswith("loss spike")
    assert rule.problem(expected * (1 - 1e-9)) is None
    # a spike below 10 x the threshold does not count alone: it opens a run, left out of the window
    assert rule.judge(expected * 2, 60) == (None, 60) and rule.run_open and expected * 2 not in rule.recent
    assert rule.judge(1.0, 61) == (None, 61) and not rule.run_open  # a good loss ends the run
    # the remembered spike (2 T) is the spike level S: a loss counts at once above 10 x max(T, S) = 20 T
    assert rule.judge(expected * 19, 62) == (None, 62)
    problem, since = rule.judge(expected * 21, 63)
    assert problem is not None and since == 62  # the run it ends began at step 62


def test_a_nan_counts_at_once_and_one_big_loss_alone_is_only_held_at_the_start():
    rule = SpikeRule(spike_factor=50.0, window=20)
    assert rule.judge(1.0, 0) == (None, 0)
    # far above the start bar (1 + 100 x 50 x 1 / 4 = 1251) but alone: held, not counted
    assert rule.judge(5000.0, 1) == (None, 1)
    assert rule.run_open
    assert rule.judge(1.1, 2) == (None, 2)  # back below the bar: the held loss was the data's, accepted
    assert not rule.run_open and rule.start == 5000.0 and list(rule.recent) == [1.0, 5000.0, 1.1]
    problem, since = rule.judge(math.nan, 3)
    assert problem == "non-finite loss" and since == 3


def test_a_climb_from_the_first_loss_counts_on_its_third_held_loss_from_the_run_s_first_step():
    rule = SpikeRule(spike_factor=50.0, window=20)
    verdicts = judge_all(rule, [1.0, 2000.0, 3000.0, 4000.0])  # each above the start bar 1251, below the far bar
    assert [problem is None for _, problem, _ in verdicts] == [True, True, True, False]
    assert verdicts[-1][2] == 1  # the run's first step


def test_a_rule_restored_from_its_state_dict_judges_the_rest_of_a_sequence_as_the_uninterrupted_one():
    rng = np.random.default_rng(1)
    clean = 1.0 + 0.1 * rng.standard_normal(300)
    spiky = np.where(rng.random(300) < 0.05, 40.0, 0.0)  # hard batches at 5%, as outlier rows make them
    losses = list(clean + spiky) + [500.0, 800.0, 1200.0]  # then a divergence
    whole = SpikeRule(spike_factor=50.0, window=50)
    expected = judge_all(whole, losses)
    first = SpikeRule(spike_factor=50.0, window=50)
    head = judge_all(first, losses[:150])
    state = first.state_dict()
    resumed = SpikeRule(spike_factor=50.0, window=50)
    resumed.load_state_dict(state)
    assert head + judge_all(resumed, losses[150:], first_step=150) == expected
    assert any(problem is not None for _, problem, _ in expected[300:])  # the divergence counts
