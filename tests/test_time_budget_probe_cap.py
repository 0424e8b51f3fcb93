"""A time budget the calibration shows it cannot meet stops the calibration there (trainlab.time_budget).

The probe once timed all its steps and a validation before refusing: a 60 s budget on a 22 s step was
refused after 94 s. Now, after each step, the time spent plus the timed steps still needed and one step of
training (at the mean timed step so far) is checked against the budget; these tests script the step
times with a fake clock (no training), and check by hand which step makes the budget hopeless.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.time_budget import (
    BUDGET_MARGIN,
    MAX_TIMED_STEPS,
    MIN_TIMED_STEPS,
    MIN_USEFUL_STEPS,
    CutShort,
    StepTiming,
    no_time_to_train,
    time_steps,
)


class ScriptedProbe:
    """What ``time_steps`` reads of a built run: each step advances ``clock`` by the next of ``step_times``
    (the last repeating), a validation by ``validation_s``; ``trained`` counts the steps."""

    def __init__(self, step_times: list[float], validation_s: float = 0.5, total_steps: int = 1000):
        self.now, self.trained, self.validations = 0.0, 0, 0

        def train_step(micro_batches, state):
            self.now += step_times[min(self.trained, len(step_times) - 1)]
            self.trained += 1

        def steps_forever(plan):
            while True:
                yield []

        def evaluate():
            self.now += validation_s
            self.validations += 1

        self.step = SimpleNamespace(train_step=train_step, set_mode=lambda training: None)
        batches = SimpleNamespace(device=torch.device("cpu"), steps_forever=steps_forever)
        self.trainer = SimpleNamespace(batches=batches, plan=None, total_steps=total_steps,
                                       validation=SimpleNamespace(evaluate=evaluate))

    def clock(self) -> float:
        return self.now


def test_the_users_case_stops_after_the_first_timed_step_not_after_the_whole_calibration():
    # the report: a 27 s warm-up step, then 22.2 s a step, budget 60. After the warm-up, 27 s spent and no
    # step timed: go on. After timed step 1, 49.2 s spent, and 2 more timed steps plus one step of training
    # at 22.2 s: 49.2 + 3 x 22.2 = 115.8 > 60: stop there (the old calibration ran 1 + 3 steps and a validation)
    probe = ScriptedProbe([27.0, 22.2])
    cut = time_steps(probe, min_timed_s=1.0, clock=probe.clock, budget_s=60.0)
    assert isinstance(cut, CutShort)
    assert probe.trained == 2 and probe.validations == 0
    assert (cut.timed_steps, cut.steps_left) == (1, MIN_TIMED_STEPS - 1)
    assert cut.spent_s == pytest.approx(49.2) and cut.step_s == pytest.approx(22.2)
    # what the error proposes: the calibration as it would have gone on (49.2 + 2 x 22.2 s), 10 steps, the margin
    assert cut.projected().calibration_s == pytest.approx(49.2 + 2 * 22.2)
    message = no_time_to_train(60.0, cut, range_test=False)
    proposed = math.ceil(BUDGET_MARGIN * (49.2 + 2 * 22.2 + MIN_USEFUL_STEPS * 22.2))
    assert message == (
        "strategy.time_budget_s=60 leaves no time to train: the calibration stopped after 49.2 s, 1 timed step in, "
        "with no room left for the rest of it and one step of training: a step takes about 22.2 s (an estimate "
        f"from 1 timed step; no validation timed); raise time_budget_s to at least {proposed} (by that estimate: "
        f"the calibration and {MIN_USEFUL_STEPS} steps, with a {BUDGET_MARGIN:g}x margin for the next calibration's "
        "own time and a validation), or set epochs instead")


def test_the_probe_stops_after_the_step_that_made_the_budget_hopeless():
    # 1 s a step, budget 20.5, a calibration that would time 50 steps (min_timed_s never reached). After timed
    # step k, 1 + k s are spent; past MIN_TIMED_STEPS the test is 1 + k + 1 > 20.5: first true at k = 19
    probe = ScriptedProbe([1.0])
    cut = time_steps(probe, min_timed_s=1e9, clock=probe.clock, budget_s=20.5)
    assert isinstance(cut, CutShort)
    assert probe.trained == 1 + 19 and cut.timed_steps == 19 and cut.steps_left == 0
    assert cut.spent_s == 20.0 <= 20.5  # it never spent past the budget
    # with 0.5 s more, timed step 19 still leaves room (20 + 1 <= 21): it stops one step later
    longer = ScriptedProbe([1.0])
    assert isinstance(time_steps(longer, min_timed_s=1e9, clock=longer.clock, budget_s=21.0), CutShort)
    assert longer.trained == 1 + 20


def test_a_warm_up_step_past_the_budget_stops_the_probe_at_once():
    probe = ScriptedProbe([65.0, 0.1])
    cut = time_steps(probe, min_timed_s=1.0, clock=probe.clock, budget_s=60.0)
    assert isinstance(cut, CutShort) and probe.trained == 1
    assert (cut.timed_steps, cut.step_s, cut.spent_s) == (0, 65.0, 65.0)
    message = no_time_to_train(60.0, cut, range_test=True)
    assert "the calibration (with lr: auto's range test) stopped after 65.0 s, at its warm-up step" in message
    assert "an estimate from the warm-up step" in message and "\n" not in message


def test_a_slow_warm_up_within_the_budget_is_no_estimate_of_the_steps():
    # a first step of 50 s (compilation, allocation) and 0.25 s steps after it fit a 60 s budget: the warm-up's
    # time alone never refuses the budget (only time already past it does)
    probe = ScriptedProbe([50.0, 0.25])
    timing = time_steps(probe, min_timed_s=1.0, clock=probe.clock, budget_s=60.0)
    assert isinstance(timing, StepTiming) and timing.timed_steps == 4  # 4 x 0.25 s reach min_timed_s
    assert timing.step_s == 0.25 and probe.validations == 1


def test_a_budget_that_fits_calibrates_with_all_its_steps():
    # 1 s a step, budget 1000: all MAX_TIMED_STEPS timed steps and the validation, as without a budget
    budgeted, plain = ScriptedProbe([1.0]), ScriptedProbe([1.0])
    timing = time_steps(budgeted, min_timed_s=1e9, clock=budgeted.clock, budget_s=1000.0)
    reference = time_steps(plain, min_timed_s=1e9, clock=plain.clock)
    assert isinstance(timing, StepTiming) and timing == reference
    assert timing.timed_steps == MAX_TIMED_STEPS and budgeted.trained == 1 + MAX_TIMED_STEPS
    assert budgeted.validations == 1 and timing.validation_s == pytest.approx(0.5)
    assert timing.calibration_s == pytest.approx(1 + MAX_TIMED_STEPS + 0.5)


def test_time_spent_before_the_calibration_counts_toward_the_budget():
    # lr: auto's range test took 55 s: after the warm-up (1 s) and timed step 1 (1 s), 57 + 3 x 1 = 60 fits a
    # budget of 60; timed step 2: 58 + 2 = 60 fits; timed step 3: 59 + 1 = 60 fits; 4: 60 + 1 > 60 (min_timed_s 5)
    probe = ScriptedProbe([1.0])
    cut = time_steps(probe, min_timed_s=5.0, clock=probe.clock, budget_s=60.0, spent_before_s=55.0)
    assert isinstance(cut, CutShort) and cut.timed_steps == 4 and cut.spent_s == pytest.approx(60.0)
    without = ScriptedProbe([1.0])
    assert isinstance(time_steps(without, min_timed_s=5.0, clock=without.clock, budget_s=60.0), StepTiming)


def test_a_hopeless_budget_is_refused_after_two_steps_of_a_real_probe_and_its_states_given_back():
    """Through assemble_within_budget: a clock that reads 1 s later each time makes every step 1 s."""
    from test_time_budget import BASE, TickingClock, _assemble_pieces

    from trainlab.builders import assemble, run_scope
    from trainlab.config import validate
    from trainlab.time_budget import assemble_within_budget

    trained = []
    config = validate({**BASE, "strategy": {**BASE["strategy"], "time_budget_s": 4.0}})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        before = {k: v.clone() for k, v in model.state_dict().items()}

        def counting_assemble(*args, **kwargs):
            built = assemble(*args, **kwargs)
            train_step = built.step.train_step
            built.step.train_step = lambda *a: (trained.append(1), train_step(*a))[1]
            return built

        with pytest.raises(ConfigError) as caught:
            assemble_within_budget(counting_assemble, config, data, loss, model, notes, quiet=True,
                                   clock=TickingClock(1.0))
    # clock reads: started 1, warm-up 2 (1 s spent), timed step 1 at 3 (2 s spent, 1 s a step): 2 + 3 x 1 > 4
    assert len(trained) == 2
    message = str(caught.value)
    assert message.startswith("strategy.time_budget_s=4 leaves no time to train: the calibration stopped after "
                              "2.0 s, 1 timed step in") and "an estimate from 1 timed step" in message
    assert "\n" not in message
    assert all(torch.equal(before[k], v.to(before[k].device)) for k, v in model.state_dict().items())
