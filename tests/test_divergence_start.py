"""The divergence guard's start: losses judged before the window's reference exists.

The reference (the median of the first half-window of judged losses, 25 steps by default) used to be
the first thing the guard judged by: until it existed nothing but NaN/Inf counted, so a loss that
exploded at the second step (iris, Adam at lr 1e3: 1.1, then 2e11) was accepted, became the reference
itself, and the run ended "epochs=20 reached" with exit 0 and no event. Now each loss after the first
finite one, s, counts at once above s + 100 x spike_factor x max(|s|, 0.01) / 4 (module docstring of
trainlab/callbacks/divergence_guard.py); the bars below are that formula worked out by hand.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.test_divergence_guard_sequences import FakeView, feed
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.cli import main
from trainlab.errors import TrainingError

IRIS_BLOWUP = {
    "name": "iris-blowup", "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp"},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 1e3}, "batch_size": 32,
                 "epochs": 20},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "log_every_n_steps": 1},
    "runtime": {"num_threads": 1},
}


def guard(policy: str = "stop", spike_factor: float = 50.0, window: int = 50,
          rows_per_step: int | None = None) -> DivergenceGuard:
    return DivergenceGuard(policy, spike_factor, window, lr_factor=0.5, max_rollbacks=3,
                           rows_per_step=rows_per_step)


def step_losses(run) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in records if r.get("scope") == "step"]


# ---------------------------------------------------------------------------------------------- the repro


@pytest.mark.parametrize(("batch_size", "lr"), [(32, 1e6), (32, 1e3), ("full", 1e6)])
def test_an_adam_blowup_at_the_second_step_stops_the_run_there(write_config, tmp_path, capsys,
                                                               batch_size, lr):
    config = write_config(IRIS_BLOWUP, strategy__batch_size=batch_size,
                          strategy__optimizer={"name": "adam", "lr": lr})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training diverged at step 2: loss spike (> "), err
    assert "starting loss" in err[0] and "Traceback" not in err[0]
    losses = step_losses(out)
    # independently of the guard: the second loss is over a thousand times the first (1.1 -> 1e11 and more)
    assert losses[1] > 1e4 * losses[0] and 0.5 < losses[0] < 2.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert [(e["step"], e["action"]) for e in summary["events"]] == [(2, "stop")]
    assert summary["events"][0]["value"] == pytest.approx(losses[1], rel=1e-6)


def test_an_adam_blowup_at_the_second_step_rolls_back_to_the_start_and_recovers(write_config, tmp_path):
    config = write_config(IRIS_BLOWUP, strategy__divergence={"policy": "rollback", "lr_factor": 1e-4})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (event,) = summary["events"]
    assert (event["step"], event["action"], event["restored_step"]) == (2, "rollback", 0)
    assert event["lr_scale"] == pytest.approx(1e-4)
    # at lr 0.1 the replay trains: the exploded loss was not kept as the level to judge by
    assert summary["status"] == "finished" and summary["test"]["accuracy"] >= 0.8
    assert max(step_losses(out)[2:]) < 100


# ------------------------------------------------------------------------------------ the bar, by hand


@pytest.mark.parametrize(("start", "spike_factor", "bar"), [
    (1.1, 50.0, 1376.1),      # 1.1 + 100 * 50 * 1.1 / 4
    (1.1, 20.0, 551.1),       # 1.1 + 100 * 20 * 1.1 / 4
    (0.01, 50.0, 12.51),      # a fine-tune's small loss: 0.01 + 1250 * 0.01
    (0.002, 50.0, 12.502),    # nearer 0 than 0.01: 0.002 + 1250 * 0.01
    (0.0, 50.0, 12.5),
    (-2.0, 50.0, 2498.0),     # Gaussian NLL: -2 + 1250 * 2
    (-0.004, 50.0, 12.496),
])
def test_a_loss_counts_at_once_above_the_start_bar_and_not_below(start, spike_factor, bar):
    below, above = bar - 1e-3 * abs(bar), bar + 1e-3 * abs(bar)
    view = FakeView()
    g = guard(spike_factor=spike_factor)
    assert feed(g, view, [start, below, start]) == 3 and view.state.events == []
    assert g.reference is None and len(g.recent) == 3  # accepted into the window
    view = FakeView()
    with pytest.raises(TrainingError, match=r"at step 2: loss spike \(> .* = starting loss "):
        feed(guard(spike_factor=spike_factor), view, [start, above])
    assert view.state.events[-1]["step"] == 2


def test_a_gradual_explosion_counts_at_the_first_loss_past_the_bar():
    losses = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 1e4] + [1e5] * 30  # bar: 1251
    view, g = FakeView(), guard()
    with pytest.raises(TrainingError, match="at step 8: loss spike"):
        feed(g, view, losses)
    assert g.reference is None and 3000.0 not in g.recent  # it never became part of the reference


def test_an_exploded_loss_never_becomes_the_reference():
    """The old rule accepted the first 25 losses as they came: 1.1 then 2e20... made the reference 2e20."""
    losses = [1.099] + [2e20 * 1.2 ** i for i in range(40)]
    view, g = FakeView(), guard("rollback")
    assert feed(g, view, losses) == 10  # losses are read every 10 steps
    target = view.control.rollback_to
    assert target is not None and target.step == 0 and target.train_state()["events"][-1]["step"] == 2
    assert g.reference is None and list(g.recent) == [pytest.approx(1.099)]


# --------------------------------------------------------------------------- legitimate starts pass


def noisy(trend: np.ndarray, seed: int, spread: float = 1.3) -> np.ndarray:
    """``trend`` times log-normal noise x/÷ ``spread`` (one sigma)."""
    return trend * np.exp(np.random.default_rng(seed).normal(0.0, math.log(spread), trend.size))


@pytest.mark.parametrize("seed", range(3))
def test_legitimate_early_rises_are_not_flagged(seed):
    steps = 300
    # an LR warm-up raising the loss 3 x, a fine-tune from 0.01 to 0.05, a hinge loss from 0
    warmup = np.concatenate([np.linspace(1.0, 3.0, 10), np.geomspace(3.0, 0.3, steps - 10)])
    finetune = np.concatenate([np.linspace(0.01, 0.05, 15), np.geomspace(0.05, 0.02, steps - 15)])
    from_zero = np.concatenate([[0.0], np.linspace(0.05, 0.8, 20), np.full(steps - 21, 0.6)])
    for trend in (warmup, finetune, from_zero):
        view, g = FakeView(), guard()
        assert feed(g, view, noisy(trend, seed)) == steps
        assert view.state.events == [] and g.reference is not None
    # a Gaussian NLL: negative, rising from -2 to -0.5 in the first steps
    nll = np.concatenate([np.linspace(-2.0, -0.5, 10), np.full(steps - 10, -0.5)])
    nll += np.random.default_rng(seed).normal(0.0, 0.05, steps)
    view, g = FakeView(), guard()
    assert feed(g, view, nll) == steps and view.state.events == []


# ------------------------------------------------------------------------------------ small batches


def test_with_steps_of_one_row_the_start_is_the_first_groups_median_and_an_open_group_counts_early():
    """Batch size 1: groups of 32 steps. The first group's median (1.0) is the start (bar 1251); from
    step 33 on every loss is 1e20, so the 17th of the second group (step 49) makes its median sure."""
    losses = list(noisy(np.ones(32), 0, 1.1)) + [1e20] * 40
    view = FakeView()
    spike = r"at step \d+: loss spike \(17 of the 17 steps 33-49 .*starting loss"
    with pytest.raises(TrainingError, match=spike):
        feed(guard(rows_per_step=1), view, losses)
    assert 33 <= view.state.events[-1]["step"] <= 49


def test_with_steps_of_one_row_no_snapshot_is_taken_while_the_open_group_climbs_past_the_start_bar():
    """Snapshots every 50 steps, groups of 32 (the reference after 5 groups, step 160). The loss climbs
    past the bar from step 135, inside the group 129-160: the snapshot due at step 150 is held, so the
    rollback lands a window before the group's first step (at 50), not at 100, 21 steps before it."""
    losses = list(noisy(np.ones(134), 1, 1.1)) + [1e5] * 30
    view, g = FakeView(), guard("rollback", rows_per_step=1)
    assert feed(g, view, losses) == 160  # the 17th step above the bar is 151, read at the check at 160
    assert view.snapshots == [0, 50, 100]
    assert view.control.rollback_to is not None and view.control.rollback_to.step == 50


# ------------------------------------------------------------------------------------------- resume


def test_the_starting_loss_is_guard_state_a_resumed_run_judges_by():
    first, resumed = guard(), guard()
    feed(first, FakeView(), [1.0, 1.1, 0.9])
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.start == pytest.approx(1.0)
    with pytest.raises(TrainingError, match="loss spike"):
        feed(resumed, FakeView(), [1300.0])  # above 1 + 1250 x 1
    older = {k: v for k, v in first.state_dict().items() if k != "start"}  # a checkpoint before the start bar
    legacy = guard()
    legacy.load_state_dict(older)
    assert legacy.start == pytest.approx(1.0)
