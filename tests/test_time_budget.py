"""``strategy.time_budget_s``: the run times its own step, then trains the steps that fit the budget.

The contract (trainlab.time_budget): ``S`` is the largest step count with ``S * step_s +
validations(S) * validation_s <= budget - calibration_s``, capped by the config's own length; the
run is then built from ``max_steps: S`` with the model, loss and RNGs as they were before the
calibration, so it trains exactly as a run of its recorded ``config.yaml``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import yaml

from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.time_budget import StepTiming, steps_within_budget, validations_within

BASE = {
    "name": "budget",
    "seed": 5,
    "data": {"source": "mnist1d", "num_samples": 400, "channels_first": True},
    # BatchNorm (buffers the calibration moves) and dropout (RNG the calibration draws) in one model
    "model": {"name": "cnn1d", "channels": [4, 8], "batch_norm": True, "hidden": 16, "dropout": 0.3},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                 "epochs": 40, "schedule": {"name": "cosine"}, "time_budget_s": 3.0},
    "output": {"progress": "off"},
    "runtime": {"num_threads": 1, "deterministic": True},  # bit-identical runs on a GPU too (cuDNN)
}


class TickingClock:
    """A clock that advances ``tick`` seconds each time it is read: the calibration's timings are then
    a function of how often it reads the clock, not of the machine."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_validations_count_epoch_ends_a_last_partial_epoch_and_mid_epoch_passes():
    assert validations_within(8, 4, None) == 2
    assert validations_within(9, 4, None) == 3  # the step limit ends epoch 3 early: it still validates
    assert validations_within(9, 4, 2) == 3 + 2  # passes at 2 and 6; those due at 4 and 8 are the epochs' own
    assert validations_within(0, 4, None) == 0


def _passes(steps: int, per_epoch: int, every: int | None) -> int:
    """Validation passes of a run of ``steps``, step by step as the loop makes them: an epoch's end, else a
    mid-epoch pass every ``every`` steps; a run ending mid-epoch validates its partial epoch."""
    made = sum(1 for t in range(1, steps + 1) if t % per_epoch == 0 or (every and t % every == 0))
    return made + (steps % per_epoch != 0)


def test_steps_are_the_most_that_fit_the_budget_left_after_the_calibration():
    # by hand: budget 10, calibration 1, 1 s a step, 0.5 s a validation, 4 steps an epoch:
    # S = 8 costs 8 + 2 * 0.5 = 9 = 10 - 1; S = 9 costs 9 + 3 * 0.5 = 10.5
    timing = StepTiming(step_s=1.0, validation_s=0.5, calibration_s=1.0, timed_steps=3)
    assert steps_within_budget(10.0, timing, 4, cap_steps=100) == 8
    assert steps_within_budget(10.0, timing, 4, cap_steps=5) == 5  # the config's own length caps it
    assert steps_within_budget(0.5, timing, 4, cap_steps=100) == 0  # the calibration alone overran
    # against a plain scan of every step count, over a grid of timings
    for step_s, validation_s, every, spe in itertools.product((0.03, 0.7, 2.4), (0.0, 0.3, 5.0), (None, 3), (1, 7)):
        timing = StepTiming(step_s, validation_s, 0.4, 3)
        left = 40.0 - 0.4
        fits = [s for s in range(0, 2001) if s * step_s + _passes(s, spe, every) * validation_s <= left]
        assert steps_within_budget(40.0, timing, spe, 2000, every) == max(fits)


class CountingProbe:
    """What ``time_steps`` reads of a built run, with a Step that counts the steps it trains (no model)."""

    def __init__(self, total_steps: int):
        from types import SimpleNamespace

        self.trained = 0

        def train_step(micro_batches, state):
            self.trained += 1

        def steps_forever(plan):
            while True:
                yield []

        self.step = SimpleNamespace(train_step=train_step, set_mode=lambda training: None)
        batches = SimpleNamespace(device=torch.device("cpu"), steps_forever=steps_forever)
        self.trainer = SimpleNamespace(batches=batches, plan=None, total_steps=total_steps,
                                       validation=SimpleNamespace(evaluate=dict))


@pytest.mark.parametrize(("total_steps", "trained", "timed"),
                         [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 5, 4), (51, 51, 50), (60, 51, 50)])
def test_calibration_trains_no_more_steps_than_the_run_itself(total_steps, trained, timed):
    from trainlab.time_budget import MAX_TIMED_STEPS, WARMUP_STEPS, time_steps

    assert (WARMUP_STEPS, MAX_TIMED_STEPS) == (1, 50)  # the table's warm-up step and cap
    # a clock that never reaches the timed seconds: only the step counts end the calibration. A run of one
    # step times that step with no warm-up; otherwise 1 warm-up step, then timed steps up to the run's length
    probe = CountingProbe(total_steps)
    timing = time_steps(probe, min_timed_s=1e9, clock=TickingClock(0.01))
    assert (probe.trained, timing.timed_steps) == (trained, timed)
    assert timing.step_s > 0


def test_calibration_stops_at_its_timed_seconds_after_the_fewest_timed_steps():
    from trainlab.time_budget import MIN_TIMED_STEPS, time_steps

    probe = CountingProbe(1000)
    timing = time_steps(probe, min_timed_s=1e-9, clock=TickingClock(0.01))
    assert timing.timed_steps == MIN_TIMED_STEPS and probe.trained == 1 + MIN_TIMED_STEPS


def _assemble_pieces(config):
    from trainlab.builders import build_data, build_loss_for, build_model_for

    data, notes = build_data(config), {}
    loss = build_loss_for(config, data, notes)
    return data, loss, build_model_for(config, data, loss), notes


def _trained_weights(built) -> dict[str, torch.Tensor]:
    built.trainer.fit()
    return {k: v.clone() for k, v in built.step.model.state_dict().items()}


def test_calibration_leaves_no_trace_a_budget_beyond_the_length_trains_as_the_plain_config():
    from trainlab.builders import assemble, build, run_scope
    from trainlab.time_budget import assemble_within_budget

    config = validate({**BASE, "strategy": {**BASE["strategy"], "epochs": 3, "time_budget_s": 1e6}})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        built = assemble_within_budget(assemble, config, data, loss, model, notes, quiet=True,
                                       clock=TickingClock(0.01))
        record = notes["time_budget"]
        assert record["timed_steps"] >= 3 and record["planned_steps"] == built.trainer.total_steps
        budgeted = _trained_weights(built)
    assert built.trainer.state.step == 3 * built.trainer.plan.steps_per_epoch
    plain_config = validate({**BASE, "strategy": {**BASE["strategy"], "epochs": 3, "time_budget_s": None}})
    with run_scope(plain_config):
        reference = _trained_weights(build(plain_config, quiet=True))
    # bit-identical: the calibration's steps, BatchNorm statistics and dropout draws left no trace
    assert budgeted.keys() == reference.keys()
    for name in reference:
        assert torch.equal(budgeted[name], reference[name]), name


class StepClock:
    """The trainer's wall clock as a function of its step: ``fast`` seconds a step up to ``slow_from``,
    ``slow`` seconds a step after (a machine that slows down mid-run)."""

    def __init__(self, trainer, fast: float, slow: float, slow_from: int):
        self.trainer, self.fast, self.slow, self.slow_from = trainer, fast, slow, slow_from

    def __call__(self) -> float:
        step = self.trainer.state.step
        return min(step, self.slow_from) * self.fast + max(0, step - self.slow_from) * self.slow


class LRRecorder:
    """The LR of each step, read after the LR adapter wrote it."""

    def __init__(self):
        from trainlab.callbacks.base import Callback

        recorder = self

        class Recording(Callback):
            order = 20

            def on_step_start(self, view):
                recorder.lrs[view.state.step] = view.lr

        self.lrs: dict[int, float] = {}
        self.callback = Recording()


def _budgeted_linear_run(budget_steps: int, train_s: float, clock_args: tuple[float, float, int]):
    from trainlab.builders import assemble, run_scope
    from trainlab.time_budget import BudgetPlan

    config = validate({**BASE, "strategy": {**BASE["strategy"], "schedule": {"name": "warmup_linear",
                                                                            "warmup_steps": 0}}})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        record: dict = {}
        built = assemble(config, data, loss, model, notes, quiet=True,
                         budget=BudgetPlan(budget_steps, train_s, record))
        recorder = LRRecorder()
        built.trainer.add_callbacks([recorder.callback])
        built.trainer.clock = StepClock(built.trainer, *clock_args)
        built.trainer.fit()
    return built, recorder.lrs, record


def test_a_machine_that_slows_down_mid_run_shortens_it_and_the_schedule_still_ends_at_zero():
    # planned 100 steps at 0.01 s in a 1.0 s budget; from step 40 a step takes 0.02 s. Re-plans every
    # 4 steps (100 // 25), the pace over the last 3 windows (12 steps): at step 44, (0.48 - 0.32) / 12 s a
    # step leaves 0.52 s for 39 steps (end 83); at 48, 0.44 s / (0.2 / 12) = 26 (end 74); at 52 the
    # window is all slow steps: 0.36 s / 0.02 = 18 (end 70), and 0.4 + 30 * 0.02 = 1.0 s exactly
    built, lrs, record = _budgeted_linear_run(100, 1.0, (0.01, 0.02, 40))
    length = 40 * built.trainer.plan.steps_per_epoch  # the config's 40 epochs: the schedule's virtual steps
    base = 0.01
    assert [(r["step"], r["end"]) for r in record["replans"]] == [(44, 83), (48, 74), (52, 70)]
    end = built.trainer.state.step
    assert end == 70 and built.trainer.elapsed() == pytest.approx(1.0)
    # the LR of every step from the warp's formula, re-plan by re-plan:
    # virtual(t) = u0 + (t - t0) (L - u0) / (end - t0), and at a re-plan (t0, u0) <- (t, virtual(t))
    t0, u0, planned = 0, 0.0, 100
    replans = {r["step"]: r["end"] for r in record["replans"]}
    for t in range(end):
        if t in replans:
            t0, u0, planned = t, u0 + (t - t0) * (length - u0) / (planned - t0), replans[t]
        virtual = u0 + (t - t0) * (length - u0) / (planned - t0)
        assert lrs[t] == pytest.approx(base * (length - math.floor(virtual)) / length, rel=1e-9), t
    assert lrs[end - 1] < 0.04 * base  # the decay reached (nearly) 0 at the run's last step
    assert built.trainer.state.history[-1]["step"] == end  # the last, partial epoch was validated
    assert built.trainer.state.stop_reason == "time budget: ended at step 70"


def test_a_machine_faster_than_the_calibration_lengthens_the_run_up_to_the_configs_length():
    built, _, record = _budgeted_linear_run(100, 1.0, (0.001, 0.001, 0))
    length = 40 * built.trainer.plan.steps_per_epoch
    assert built.trainer.state.step == length  # never beyond the config's 40 epochs
    assert record["replans"][0]["end"] == length
    # the config's length ended the run, not the budget: the summary says so
    assert built.trainer.state.stop_reason == f"the config's whole length fit in the time budget: ended at step {length}"


def test_steps_the_clock_cannot_see_leave_the_whole_budget_for_the_configs_length():
    """A clock that does not advance (too coarse to see a step) measures a pace of 0 s a step: the budget
    left pays for every step of the config's length. The re-plan ended the run at its current step."""
    built, _, record = _budgeted_linear_run(100, 1.0, (0.0, 0.0, 0))
    length = 40 * built.trainer.plan.steps_per_epoch
    assert built.trainer.state.step == length
    assert record["replans"][0]["end"] == length


class ScriptedRun:
    """A budgeted run without training: the trainer's loop order (trainlab.engine.loop) over a scripted
    clock. Each step reads its LR at its start (the LR adapter: ``schedule(step)``), then its seconds pass,
    then the planner's step end runs, then the run stops once its step reaches the planned end."""

    def __init__(self, planner):
        from types import SimpleNamespace

        self.planner, self.state, self.elapsed_s, self.end = planner, SimpleNamespace(step=0), 0.0, None

    def end_at_step(self, step: int, reason: str) -> None:
        self.end = step

    def fit(self, schedule, seconds_of_step) -> list[float]:
        lrs = []
        self.planner.on_train_start(self)
        while self.state.step < self.end:
            lrs.append(schedule(self.state.step))
            self.state.step += 1
            self.elapsed_s += seconds_of_step(self.state.step)
            self.planner.on_step_end(self, None)
        return lrs


def _stall_then_recovery(step: int) -> float:
    """1 s a step, a stall of 3 s a step over steps 6-10, then 0.8 s a step."""
    return 1.0 if step <= 5 else 3.0 if step <= 10 else 0.8


def test_a_run_that_reaches_its_planned_end_stops_there_and_is_not_lengthened_at_lr_zero():
    from trainlab.callbacks.time_budget import BudgetPlanner, ScheduleWarp

    # a linear decay over L = 100 virtual steps; planned 32 steps in 32 s, re-plans every 5 steps, the pace
    # over the last 3 windows. By hand: at 5 (5 s) the pace 1 s keeps the end at 32; at 10 (20 s) the
    # stall's pace 20 / 10 = 2 s leaves 12 s: end 16; at 15 (24 s) the pace 24 / 15 = 1.6 s leaves 8 s: end
    # 20, the schedule's remainder spread over 5 steps, not 1; at 20 (28 s), the planned end, the pace
    # (28 - 5) / 15 s would leave 4 s for 2 steps more, but the schedule is at its end there (LR 0): it stops
    length = 100
    schedule = lambda virtual: (length - virtual) / length  # noqa: E731
    warp = ScheduleWarp(schedule, length, 32)
    planner = BudgetPlanner(32.0, length, 32, 5, warp)
    run = ScriptedRun(planner)
    lrs = run.fit(warp, _stall_then_recovery)
    assert [(r["step"], r["end"]) for r in planner.replans] == [(10, 16), (15, 20)]
    assert run.state.step == run.end == 20
    # every step's LR by the warp's formula, segment by segment: virtual(t) = u0 + (t - t0) (L - u0) / (E - t0)
    u1 = 10 * length / 32
    u2 = u1 + 5 * (length - u1) / (16 - 10)  # 88.5: the re-plan at 15 was near the end
    virtual = [t * length / 32 for t in range(10)] + [u1 + (t - 10) * (length - u1) / 6 for t in range(10, 15)] + \
        [u2 + (t - 15) * (length - u2) / 5 for t in range(15, 20)]
    assert lrs == pytest.approx([(length - math.floor(v)) / length for v in virtual], rel=1e-12)
    assert min(lrs) > 0  # no step trained at the schedule's end


def test_a_schedule_that_is_not_warped_may_still_lengthen_the_run_at_its_planned_end():
    from trainlab.callbacks.time_budget import BudgetPlanner

    # the same timings with no warp (reduce_on_plateau follows a metric, not the run's end): at 20 the
    # planner finds 4 s left for 2 more steps, (28 - 5) / 15 s each, and takes them; the run ends at 22,
    # before the next re-plan is due
    planner = BudgetPlanner(32.0, 100, 32, 5, None)
    run = ScriptedRun(planner)
    run.fit(lambda step: 1.0, _stall_then_recovery)
    assert [(r["step"], r["end"]) for r in planner.replans] == [(10, 16), (15, 20), (20, 22)]
    assert run.state.step == 22


def test_resume_continues_the_plan_of_the_checkpoint():
    from trainlab.builders import assemble, run_scope
    from trainlab.callbacks.base import Callback, Event
    from trainlab.callbacks.time_budget import BudgetPlanner
    from trainlab.time_budget import BudgetPlan

    class StopAt(Callback):
        early = None

        def on_step_end(self, view, loss):
            if view.state.step == 10:
                StopAt.early = view.snapshot()  # the first plan: end 100
            if view.state.step == 50:
                view.control.stop("killed")

    config = validate(BASE)
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        first = assemble(config, data, loss, model, notes, quiet=True, budget=BudgetPlan(100, 1.0, {}))
        first.trainer.add_callbacks([StopAt()])
        first.trainer.clock = StepClock(first.trainer, 0.01, 0.02, 40)
        first.trainer.fit()
        saved = first.trainer.capture().clone()
    planner = first.trainer.callbacks.find(BudgetPlanner)[0]
    assert planner.end != 100 and planner.warp.t0 > 0  # it re-planned before the stop
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        second = assemble(config, data, loss, model, notes, quiet=True, budget=BudgetPlan(300, 5.0, {}))
        second.trainer.restore(saved)
    resumed = second.trainer.callbacks.find(BudgetPlanner)[0]
    assert (resumed.end, resumed.train_budget_s, resumed.points) == (planner.end, 1.0, planner.points)
    assert resumed.warp.state_dict() == planner.warp.state_dict()
    assert resumed.record["replans"] == planner.replans

    # a rollback inside a run (the divergence guard) brings back an earlier plan: the trainer's end follows
    # it before the next step, not the later re-plan's end it still holds
    first.trainer.restore(StopAt.early)
    assert planner.end == 100 and first.trainer.total_steps != 100
    first.trainer.callbacks.fire(Event.STEP_START, first.trainer.view)
    assert first.trainer.total_steps == 100 and planner.warp.end == 100


def test_a_resume_keeps_the_averaging_decays_horizon_of_the_first_plan():
    """weight_averaging's decay_power schedule d * (t / T)^p runs over the run's first plan T (here 100 steps of
    a 480-step config); the resume, built with no plan, took T = 480, and d fell ~100x at once."""
    from trainlab.builders import assemble, run_scope
    from trainlab.time_budget import BudgetPlan

    averaging = {"kind": "ema", "decay": 0.99, "decay_power": 3.0}
    config = validate({**BASE, "strategy": {**BASE["strategy"], "weight_averaging": averaging}})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        first = assemble(config, data, loss, model, notes, quiet=True, budget=BudgetPlan(100, 1.0, {}))
        saved = first.step.state_dict()
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        resumed = assemble(config, data, loss, model, notes, quiet=True, budget=BudgetPlan(None, 1.0, {}))
        assert resumed.trainer.total_steps > 100  # the config's whole length
        resumed.step.load_state_dict(saved)
    for t in (10, 50, 100):
        assert resumed.step.rule.decay_at(t, 100) == pytest.approx(0.99 * (t / 100) ** 3.0, rel=1e-12), t


def test_budget_too_short_for_one_step_is_a_one_line_config_error():
    from trainlab.builders import assemble, run_scope
    from trainlab.time_budget import assemble_within_budget

    config = validate({**BASE, "strategy": {**BASE["strategy"], "time_budget_s": 2.0}})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ConfigError) as caught:
            assemble_within_budget(assemble, config, data, loss, model, notes, quiet=True, clock=TickingClock(1.0))
    message = str(caught.value)
    assert "\n" not in message and "strategy.time_budget_s=2 leaves no time to train" in message
    assert "raise time_budget_s to at least" in message
    assert all(torch.equal(before[k], v.to(before[k].device)) for k, v in model.state_dict().items())  # given back


def test_zero_budget_is_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"time_budget_s.*greater than 0; got 0"):
        validate({**BASE, "strategy": {**BASE["strategy"], "time_budget_s": 0}})


def test_cli_run_records_the_measurement_and_keeps_the_budget_in_its_config(tmp_path, capsys):
    from trainlab.experiment import train

    config = validate({**BASE, "strategy": {**BASE["strategy"], "epochs": 1000, "time_budget_s": 1.5}})
    summary, path = train(config, out=tmp_path / "run")
    record = summary["notes"]["time_budget"]
    assert record["seconds"] == 1.5 and 1 <= record["planned_steps"] < record["length_steps"] == 1000 * 8
    assert summary["stop_reason"] == f"time budget: ended at step {summary['steps']}"
    # the planner's last re-plan set the end it stopped at; the time spent is the budget's, loosely (a real clock)
    assert not record["replans"] or record["replans"][-1]["end"] == summary["steps"]
    assert summary["train_time_s"] + record["calibration_s"] < 1.5 * 1.5
    stored = yaml.safe_load((path / "config.yaml").read_text())["strategy"]
    assert stored["time_budget_s"] == 1.5 and stored["max_steps"] is None  # the length follows the machine
    printed = capsys.readouterr().err
    assert f"time budget 1.5 s: {record['timed_steps']} timed steps" in printed
    assert f"-> {record['planned_steps']} steps" in printed and printed.count("time budget") == 1


def test_a_resumed_run_keeps_the_first_runs_plan_and_calibration_without_timing_again(tmp_path):
    import json

    from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints

    config = {**BASE, "strategy": {**BASE["strategy"], "epochs": 1000, "time_budget_s": 2.0}}
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=40)
    first = json.loads((full / "summary.json").read_text())["notes"]["time_budget"]
    middle = sorted(checkpoints)[len(checkpoints) // 2]
    resumed = resume_a_copy(full, checkpoints[middle], tmp_path)
    record = json.loads((resumed / "summary.json").read_text())["notes"]["time_budget"]
    # the checkpoint's calibration, not a new one: a resume times nothing
    for key in ("step_s", "validation_s", "calibration_s", "timed_steps", "planned_steps", "length_steps"):
        assert record[key] == first[key], key
    assert record["replans"][: len([r for r in first["replans"] if r["step"] <= middle])] == \
        [r for r in first["replans"] if r["step"] <= middle]


def test_a_run_killed_before_its_first_checkpoint_is_timed_when_resumed(tmp_path, capsys):
    import json
    import shutil

    from tests.resume_from_checkpoints import train_keeping_checkpoints
    from trainlab.cli import main

    config = {**BASE, "strategy": {**BASE["strategy"], "epochs": 1000, "time_budget_s": 1.5}}
    full, _ = train_keeping_checkpoints(config, tmp_path, every_n_steps=40)
    # as if SIGKILLed before the first checkpoint was written: no checkpoint, model or summary, status running
    shutil.rmtree(full / "checkpoint")
    (full / "checkpoint").mkdir()
    for name in ("model.safetensors", "summary.json"):
        (full / name).unlink()
    info = json.loads((full / "run.json").read_text())
    (full / "run.json").write_text(json.dumps({**info, "status": "running"}))
    capsys.readouterr()
    assert main(["resume", str(full)]) == 0
    summary = json.loads((full / "summary.json").read_text())
    record = summary["notes"]["time_budget"]
    printed = capsys.readouterr().err  # the new plan is told, as a new run tells it
    assert f"time budget 1.5 s: {record['timed_steps']} timed steps" in printed
    assert f"-> {record['planned_steps']} steps" in printed
    # timed afresh (a resume from a checkpoint records no timing of its own: the keys below would be missing),
    # so planned within the budget, not started at the config's whole length of 8,000 steps
    assert record["timed_steps"] >= 3 and 1 <= record["planned_steps"] < record["length_steps"] == 8000
    assert summary["stop_reason"] == f"time budget: ended at step {summary['steps']}" and summary["steps"] < 8000


def test_lr_auto_range_test_is_spent_out_of_the_budget(tmp_path):
    from trainlab.experiment import train

    # a budget far beyond the 20 epochs' needs, so a slow machine cannot make it "too short": the plan is the
    # whole length, and what is checked is what the budget was charged
    strategy = {**BASE["strategy"], "optimizer": {"name": "adam", "lr": "auto"}, "epochs": 20, "time_budget_s": 60.0}
    summary, _ = train(validate({**BASE, "strategy": strategy}), out=tmp_path / "run", quiet=True)
    notes = summary["notes"]
    record = notes["time_budget"]
    assert record["lr_auto_s"] == notes["lr_auto_s"] > 0 and record["planned_steps"] == 20 * 8
    # c (what the plan subtracts from the budget) holds the range test as well as the timed steps
    assert record["calibration_s"] >= record["lr_auto_s"] + record["timed_steps"] * record["step_s"]


def test_the_cli_line_gives_a_budgeted_runs_length_in_fractional_epochs_when_it_ended_inside_one():
    from trainlab.run_result_lines import run_length as _length

    budget = {"time_budget": {"steps_per_epoch": 49}}
    assert _length({"epochs_run": 24, "steps": 1134, "notes": budget}) == "23.14 epochs (1134 steps)"
    assert _length({"epochs_run": 2, "steps": 98, "notes": budget}) == "2 epochs"  # on an epoch's end
    assert _length({"epochs_run": 3, "steps": 100, "notes": {}}) == "3 epochs"  # no budget: the epochs run


def test_the_planned_end_is_the_schedules_end_even_where_the_warp_formula_rounds_below_it():
    """A re-plan state (found by a random search) whose formula gives 7791.999999999999 at the planned end
    6562: the planner took the schedule for unfinished and lengthened the run to 7792 at lr 1.3e-4 x base."""
    from types import SimpleNamespace

    from trainlab.callbacks.time_budget import BudgetPlanner, ScheduleWarp

    length, t0, end, u0 = 7792, 6476, 6562, 892.1596857949913
    assert u0 + (end - t0) * (length - u0) / (end - t0) < length  # the rounding this guards against
    warp = ScheduleWarp(lambda v: (length - v) / length, length, end)
    warp.load_state_dict({"t0": t0, "u0": u0, "end": end})
    assert warp.virtual(end) == length and warp(end) == 0.0
    planner = BudgetPlanner(100_000.0, length, end, 10, warp)
    moved: list[int] = []
    view = SimpleNamespace(state=SimpleNamespace(step=0), elapsed_s=0.0,
                           end_at_step=lambda step, reason: moved.append(step))
    planner.on_train_start(view)
    assert moved == [end]  # the trainer is told the planned end at its start
    planner.points = [(6000, 6000.0)]
    view.state.step, view.elapsed_s = end, float(end)  # 1 s a step and plenty of budget left
    planner.on_step_end(view, None)
    assert planner.replans == [] and moved == [end]


def test_a_budget_that_cuts_the_min_steps_floor_says_so(capsys):
    """``min_steps`` stretches the epochs; a time budget only shortens the run: with both, the plan line said
    one length, the min_steps note another, and the run ended short of the floor without a word."""
    from trainlab.builders import assemble, run_scope
    from trainlab.time_budget import assemble_within_budget

    config = validate({**BASE, "strategy": {**BASE["strategy"], "epochs": 1, "min_steps": 500, "time_budget_s": 3.0}})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        built = assemble_within_budget(assemble, config, data, loss, model, notes, quiet=True,
                                       clock=TickingClock(0.01))
    planned = notes["time_budget"]["planned_steps"]
    assert planned < 500 and built.trainer.total_steps >= 500  # the floor stretched the length; the budget cut it
    err = capsys.readouterr().err
    assert (f"warning: strategy.min_steps=500 will not be reached: strategy.time_budget_s=3 pays for about "
            f"{planned} steps on this machine, and a time budget only shortens a run") in err


def test_no_min_steps_warning_where_max_steps_ends_the_run_before_the_floor(capsys):
    """max_steps 30 below min_steps 500: the whole length fits the budget, and a larger budget changes nothing."""
    from trainlab.builders import assemble, run_scope
    from trainlab.time_budget import assemble_within_budget

    strategy = {**BASE["strategy"], "epochs": 1, "min_steps": 500, "max_steps": 30, "time_budget_s": 1e6}
    config = validate({**BASE, "strategy": strategy})
    with run_scope(config):
        data, loss, model, notes = _assemble_pieces(config)
        assemble_within_budget(assemble, config, data, loss, model, notes, quiet=True, clock=TickingClock(0.01))
    assert notes["time_budget"]["planned_steps"] == 30
    assert "min_steps" not in capsys.readouterr().err


def test_a_replan_pays_for_the_validations_its_end_brings_and_the_pace_leaves_theirs_out():
    """A re-plan took floor(left / pace) steps alone: an end crossing epoch ends paid for none of their
    validations (a run 13% over its budget for 15 steps past an epoch's end, one more validation pass)."""
    from types import SimpleNamespace

    from trainlab.callbacks.time_budget import BudgetPlanner

    # 1 s a step, 10 steps an epoch, a validation 3 s; 40 s, re-plans every 5 steps. By hand: at step 5 (5 s)
    # 35 s are left: ending at 30 costs 25 steps + 3 validations (epochs 1-3) = 34 s, at 31 a fourth: 38 s
    planner = BudgetPlanner(40.0, 100, 40, 5, None, {"steps_per_epoch": 10, "validation_s": 3.0})
    view = SimpleNamespace(state=SimpleNamespace(step=0), elapsed_s=0.0, end_at_step=lambda step, reason: None)
    planner.on_train_start(view)
    for step, elapsed in ((5, 5.0), (10, 10.0)):
        view.state.step, view.elapsed_s = step, elapsed
        planner.on_step_end(view, None)
    assert [(r["step"], r["end"]) for r in planner.replans] == [(5, 30)]
    view.elapsed_s = 10.0
    planner.on_before_validation(view)
    view.elapsed_s = 13.0  # epoch 1's validation: 3 s, out of the steps' pace
    planner.on_validation_end(view, {})
    view.state.step, view.elapsed_s = 15, 18.0
    planner.on_step_end(view, None)
    # pace (18 - 3) / 15 = 1 s; 22 s left, epoch 1's validation made: 15 steps + 2 validations = 21 s -> end 30
    assert planner.end == 30 and len(planner.replans) == 1


def test_a_resumed_planner_keeps_the_first_runs_replan_interval():
    """A resume builds its planner over the config's whole length (no calibration): every length // 25
    steps, 28,800 where the plan's 1,188 was due, so a slowed resumed run went 81% over its budget."""
    from trainlab.callbacks.time_budget import BudgetPlanner

    first = BudgetPlanner(16.0, 720_000, 29_700, 1_188, None)
    resumed = BudgetPlanner(16.0, 720_000, 720_000, 28_800, None)
    resumed.load_state_dict(first.state_dict())
    assert resumed.every == 1_188 and resumed.end == 29_700


def _budgeted_run(budget: float, replan_every: int, every_n: int | None = None,
                  validation_seconds: tuple[float, ...] = ()) -> tuple[int, float, list[dict[str, float]]]:
    """(steps run, seconds spent, the re-plans) of a real Trainer and planner under a fake clock: 1 s a step, 10 steps an
    epoch, a validation 3 s (or ``validation_seconds`` in turn), planned at first for the whole length."""
    from tests.test_step_contract import TwoOptimizerStep
    from trainlab.callbacks.time_budget import BudgetPlanner
    from trainlab.data.dataset import Split
    from trainlab.engine.batching import BatchPlan, TensorBatches
    from trainlab.engine.loop import Limits, Trainer, Validation

    clock = [0.0]
    validations: list[float] = []

    class OneSecondSteps(TwoOptimizerStep):
        def train_step(self, batches, state):
            clock[0] += 1.0
            return super().train_step(batches, state)

    def evaluate():
        seconds = validation_seconds[len(validations)] if len(validations) < len(validation_seconds) else 3.0
        validations.append(seconds)
        clock[0] += seconds
        return {"x": 0.0}

    plan = BatchPlan(160, batch_size=16, seed=0)
    record = {"steps_per_epoch": 10, "validation_s": 3.0, "eval_every_n_steps": every_n}
    planner = BudgetPlanner(budget, 1000, 1000, replan_every, None, record)
    data = Split(torch.randn(160, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(160))
    trainer = Trainer(OneSecondSteps(0), TensorBatches(data, None, 0, torch.device("cpu")), plan,
                      Limits(epochs=100), [planner], Validation(evaluate, every_n))
    trainer.clock = lambda: clock[0]
    trainer.fit()
    return trainer.state.step, clock[0], planner.replans


@pytest.mark.parametrize("budget, replan_every, every_n", [
    (40.0, 10, None), (43.0, 10, None), (47.0, 5, None), (100.0, 10, None), (60.0, 7, 4), (60.0, 5, 10),
    (400.0, 12, 10)])
def test_a_budgeted_run_ends_within_its_budget_with_its_validations_paid(budget, replan_every, every_n):
    """Re-plans at every epoch's end (the step whose validation follows it) counted that validation as made:
    40 s ran 43 s; a pass due on an epoch's last step (every_n 10) was charged twice, cutting the run short."""
    steps, spent, replans = _budgeted_run(budget, replan_every, every_n)
    assert budget - 4.0 < spent <= budget  # within a step and a validation of the budget, never over
    assert len(replans) == 1  # a steady pace is planned once (from the whole length), not corrected after


def test_one_slow_validation_does_not_set_the_price_of_the_rest():
    """The last pass's seconds priced every pass to come: a first validation of 30 s (caches, a compile) cut
    the end to a third of the run, and the schedule's warp kept the offset."""
    steps_even, _, _ = _budgeted_run(400.0, 12)
    steps_slow_first, spent, replans = _budgeted_run(400.0, 12, validation_seconds=(30.0,))
    assert spent <= 400.0 and steps_slow_first >= steps_even - 30  # 27 s lost to the slow pass: ~27 steps
    assert min(replan["end"] for replan in replans) >= steps_even - 30  # no end cut for it on the way (was 100)
