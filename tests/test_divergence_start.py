"""The divergence guard's start: losses judged before the window's reference exists.

The reference (the median of the first half-window of judged losses, 25 steps by default) used to be
the first thing the guard judged by: until it existed nothing but NaN/Inf counted, so a loss that
exploded at the second step (iris, Adam at lr 1e3: 1.1, then 2e11) was accepted, became the reference
itself, and the run ended "epochs=20 reached" with exit 0 and no event. A bar from the first loss
alone, s + 100 x spike_factor x max(|s|, 0.01) / 4, counting at once, then stopped legitimate runs:
unstandardised zero-inflated targets (97% of y = 0, the rest ~40) whose first batch held no non-zero
target (loss 0.17; an ordinary batch with a few non-zero targets is 1000x that). Now a loss above
B = m + 100 x k x max(|m|, 0.01) / 4 is held, m the start level (the first loss, raised to the largest
of a held run that a later loss came back below); the third held in a row counts, or the second when
above m + 1000 x k x max(|m|, 0.01) / 4 (module docstring of trainlab/callbacks/spike_rule.py).
The bars below are that formula worked out by hand, and :func:`written_out_rule` is the whole rule
written out value by value in tests/test_divergence_negative.py.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from tests.test_divergence_guard_sequences import FakeView, feed
from tests.test_divergence_negative import written_out_rule
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

# the reviewer's run: unstandardised zero-inflated regression targets, batches of 32
ZERO_INFLATED = {
    "name": "zero-inflated", "seed": 0,
    "data": {"source": "csv", "path": "zi.csv", "target": "y", "task": "regression"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 1e-3}, "batch_size": 32, "epochs": 1},
    "output": {"progress": "off", "log_every_n_steps": 1},
    "runtime": {"num_threads": 1},
}

# the reviewer's seed 5, its first ten step losses: seven batches without a non-zero target, then ordinary ones
REVIEWED = [0.1745, 0.0844, 0.1486, 0.0921, 0.0851, 0.1232, 0.1421, 218.325, 102.215, 61.916]


def guard(policy: str = "stop", spike_factor: float = 50.0, window: int = 50,
          rows_per_step: int | None = None) -> DivergenceGuard:
    return DivergenceGuard(policy, spike_factor, window, lr_factor=0.5, max_rollbacks=3,
                           rows_per_step=rows_per_step)


def step_losses(run) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in records if r.get("scope") == "step"]


def stopped_at(losses, spike_factor: float = 50.0, window: int = 50) -> int | None:
    """The 0-based index of the loss the guard stops at, or None."""
    view = FakeView()
    try:
        feed(guard(spike_factor=spike_factor, window=window), view, losses)
    except TrainingError:
        return view.state.events[-1]["step"] - 1
    return None


def first_loss_bar_stops(losses, spike_factor: float = 50.0, window: int = 50) -> bool:
    """Whether the rule this replaced (a loss before the reference above s + 100 k max(|s|, 0.01) / 4, s the
    first loss, counts at once) stops ``losses``, written out."""
    s = losses[0]
    return any(v > s + 100 * spike_factor * max(abs(s), 0.01) / 4 for v in losses[1:max(5, window // 2)])


def zero_inflated_batches(steps: int, seed: int, start: float = 0.17) -> np.ndarray:
    """MSE of batches of 32 at the start of training on targets 97% 0, else 40 +- 5: a model predicting
    ~0 (row loss ``start`` on a zero target); the first batch has no non-zero target."""
    rng = np.random.default_rng(seed)
    nonzero = rng.binomial(32, 0.03, steps)
    nonzero[0] = 0
    losses = [(np.sum(rng.normal(40.0, 5.0, k) ** 2) + (32 - k) * start * rng.uniform(0.5, 1.5)) / 32
              for k in nonzero]
    return np.asarray(losses, dtype=np.float32).astype(np.float64)


def as_float32(losses) -> list[float]:
    return np.asarray(losses, dtype=np.float32).astype(np.float64).tolist()


# ---------------------------------------------------------------------------------- the blow-up repro


@pytest.mark.parametrize(("batch_size", "lr"), [(32, 1e6), (32, 1e3), ("full", 1e6)])
def test_an_adam_blowup_at_the_second_step_stops_the_run_at_the_third(write_config, tmp_path, capsys,
                                                                     batch_size, lr):
    config = write_config(IRIS_BLOWUP, strategy__batch_size=batch_size,
                          strategy__optimizer={"name": "adam", "lr": lr})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training diverged at step 3: loss spike (> "), err
    assert "start level" in err[0] and "judged loss 2 of a run above the start bar" in err[0]
    assert "Traceback" not in err[0]
    losses = step_losses(out)
    # independently of the guard: the second and third losses are far above the first (1.1 -> 1e11 and more)
    assert min(losses[1:3]) > 1e5 * losses[0] and 0.5 < losses[0] < 2.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert [(e["step"], e["action"]) for e in summary["events"]] == [(3, "stop")]
    assert summary["events"][0]["value"] == pytest.approx(losses[2], rel=1e-6)


def test_an_adam_blowup_at_the_second_step_rolls_back_to_the_start_and_recovers(write_config, tmp_path):
    config = write_config(IRIS_BLOWUP, strategy__divergence={"policy": "rollback", "lr_factor": 1e-4})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (event,) = summary["events"]
    assert (event["step"], event["action"], event["restored_step"]) == (3, "rollback", 0)
    assert event["lr_scale"] == pytest.approx(1e-4)
    # at lr 0.1 the replay trains: the exploded losses were not kept as the level to judge by
    assert summary["status"] == "finished" and summary["test"]["accuracy"] >= 0.8
    assert max(step_losses(out)[3:]) < 100


# --------------------------------------------------------------------------- the zero-inflated repro


def test_the_reviewed_zero_inflated_start_is_not_divergence():
    """Seed 5: 0.17 (no non-zero target in the batch), then 218.3 > 0.1745 + 1250 x 0.1745 = 218.3 was
    counted at once. Held now, and cleared by the next loss (102): the start level becomes 218.3."""
    rest = zero_inflated_batches(300, seed=5)[1:]  # ordinary batches: 0.1-0.3 without, 30-250 with targets
    losses = as_float32([*REVIEWED, *rest])
    assert first_loss_bar_stops(losses)  # what the reviewer saw
    view, g = FakeView(), guard()
    assert feed(g, view, losses) == len(losses) and view.state.events == []
    held_then_cleared = losses[:25]  # every one accepted, in order: the reference is their median
    assert g.rule.reference == pytest.approx(float(np.median(held_then_cleared)), rel=1e-12)
    assert g.rule.start == pytest.approx(218.325, rel=1e-6)  # the start level: the held loss, cleared


def test_two_ordinary_batches_in_a_row_above_the_start_bar_are_not_divergence():
    """The reviewer's data at seed 39 starts 0.02 (bar 25.02), then two batches with a non-zero target
    (88, 60), then 0.01: two held, the second not far above (12,502), the third back below the bar."""
    losses = as_float32([0.02, 87.95, 60.29, 0.0113, 0.0201, 0.0116, 60.17, 207.88, 77.21, 60.64, 0.013]
                        + list(zero_inflated_batches(200, seed=39, start=0.02)[1:]))
    assert first_loss_bar_stops(losses)
    assert stopped_at(losses) is None
    assert written_out_rule(losses, 50.0, 50) is None


def test_zero_inflated_starts_decide_as_the_written_out_rule_and_most_pass():
    """60 simulated starts of zero-inflated batches, the first without a non-zero target (row loss
    0.01-0.3), up to the reference (25 losses) and a few after: the guard stops exactly where the rule
    written out value by value does. The bar from the first loss alone stopped about half of them; the
    held runs stop a few (the module docstring: ~5% of such starts, each a run of three batches 1000x
    the first, or two, the second 12,500x)."""
    starts = [as_float32(zero_inflated_batches(30, seed, start=0.01 + 0.29 * (seed % 10) / 9))
              for seed in range(60)]
    expected = [written_out_rule(losses, 50.0, 50) for losses in starts]
    assert [stopped_at(losses) for losses in starts] == expected
    old = sum(first_loss_bar_stops(losses) for losses in starts)
    new = sum(index is not None and index < 25 for index in expected)  # stopped by the start rule
    assert old >= 20 and new <= 5, (old, new)


def zero_inflated_csv(path, rows: int = 3000, seed: int = 0) -> None:
    """The reviewer's data's shape: features a-d standard normal (a shifted on the non-zero rows), y 0 on
    97% of the rows, else 40 +- 5."""
    rng = np.random.default_rng(seed)
    nonzero = rng.random(rows) < 0.03
    x = rng.normal(size=(rows, 4))
    x[nonzero, 0] += 1.8
    y = np.where(nonzero, rng.normal(40.0, 5.0, rows), 0.0)
    lines = ["a,b,c,d,y"] + [",".join(f"{v:.4f}" for v in [*features, target]) for features, target in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_unstandardised_zero_inflated_regression_trains_every_seed(write_config, tmp_path, capsys):
    """The reviewer's run through the CLI, seeds 0-5: each finishes with no divergence event, though the
    first loss of some is a batch without a non-zero target, a thousand times below those that follow."""
    zero_inflated_csv(tmp_path / "zi.csv")
    passed_the_first_loss_bar = []
    for seed in range(6):
        config = write_config(ZERO_INFLATED, name=f"seed{seed}.yaml", seed=seed,
                              data__path=str(tmp_path / "zi.csv"))
        out = tmp_path / f"run{seed}"
        assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["events"] == []
        assert math.isfinite(summary["test"]["mse"])
        passed_the_first_loss_bar.append(first_loss_bar_stops(step_losses(out)))
    assert any(passed_the_first_loss_bar)  # independently of the guard: the bar from the first loss stops some


# ------------------------------------------------------------------------------------ the bars, by hand


@pytest.mark.parametrize(("start", "spike_factor", "bar", "far"), [
    (1.1, 50.0, 1376.1, 13751.1),   # 1.1 + 100 (1000) * 50 * 1.1 / 4
    (1.1, 20.0, 551.1, 5501.1),     # 1.1 + 100 (1000) * 20 * 1.1 / 4
    (0.01, 50.0, 12.51, 125.01),    # a fine-tune's small loss: 0.01 + 1250 (12500) * 0.01
    (0.002, 50.0, 12.502, 125.002),  # nearer 0 than 0.01: 0.002 + 1250 (12500) * 0.01
    (0.0, 50.0, 12.5, 125.0),
    (-2.0, 50.0, 2498.0, 24998.0),  # Gaussian NLL: -2 + 1250 (12500) * 2
    (-0.004, 50.0, 12.496, 124.996),
])
def test_a_run_above_the_start_bar_counts_at_its_third_loss_or_its_second_far_above(start, spike_factor, bar,
                                                                                     far):
    def up(value: float) -> float:
        return value + 1e-3 * abs(value)

    def down(value: float) -> float:
        return value - 1e-3 * abs(value)

    def run(losses) -> tuple[DivergenceGuard, FakeView]:
        view, g = FakeView(), guard(spike_factor=spike_factor)
        feed(g, view, losses)
        return g, view

    g, view = run([start, down(bar), start])  # below the bar: accepted
    assert view.state.events == [] and g.rule.reference is None and len(g.rule.recent) == 3
    assert g.rule.start == pytest.approx(start, rel=1e-6)
    g, view = run([start, up(bar), down(far), start])  # two held, the second not far above: cleared
    assert view.state.events == [] and list(g.rule.recent) == pytest.approx([start, up(bar), down(far), start])
    assert g.rule.start == pytest.approx(down(far))  # the start level: the largest of the cleared run
    for losses, step in (([start, up(bar), up(far)], 3), ([start, up(bar), up(bar), up(bar)], 4),
                         ([start, up(far), up(bar), up(bar)], 4)):
        view = FakeView()
        with pytest.raises(TrainingError, match=rf"at step {step}: loss spike \(> .* = start level .* from step 2"):
            feed(guard(spike_factor=spike_factor), view, losses)
        assert view.state.events[-1]["step"] == step


def test_a_gradual_explosion_counts_at_the_third_loss_past_the_bar():
    """x3 a step: 3000 (step 8) passes 1 + 1250 = 1251, 1e4 (step 9) is below the far bar 12,501, 1e5 (step
    10) is the third in a row. The start level is not raised by the climb below the bar (1, 3, ..., 1000:
    each below the bar of the one before), so the climb never becomes the reference."""
    losses = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 1e4] + [1e5] * 30
    view, g = FakeView(), guard()
    with pytest.raises(TrainingError, match="at step 10: loss spike .* from step 8"):
        feed(g, view, losses)
    assert g.rule.reference is None and g.rule.start == 1.0 and 3000.0 not in g.rule.recent


def test_an_exploded_loss_never_becomes_the_reference():
    """The old rule accepted the first 25 losses as they came: 1.1 then 2e20... made the reference 2e20."""
    losses = [1.099] + [2e20 * 1.2 ** i for i in range(40)]
    view, g = FakeView(), guard("rollback")
    assert feed(g, view, losses) == 10  # losses are read every 10 steps
    target = view.control.rollback_to
    assert target is not None and target.step == 0 and target.train_state()["events"][-1]["step"] == 3
    assert g.rule.reference is None and list(g.rule.recent) == [pytest.approx(1.099)]


@pytest.mark.parametrize("held", [0, 1, 2])
def test_a_non_finite_loss_counts_at_once(held):
    """NaN at once: as the first loss, right after it, or while a run is held."""
    view = FakeView()
    with pytest.raises(TrainingError, match=f"at step {3 + held}: non-finite loss"):
        feed(guard(), view, [1.0, 1.5] + [5000.0] * held + [math.nan] + [1.0] * 10)
    view = FakeView()
    with pytest.raises(TrainingError, match="at step 1: non-finite loss"):
        feed(guard(), view, [math.nan, 1.0])


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
        assert view.state.events == [] and g.rule.reference is not None
    # a Gaussian NLL: negative, rising from -2 to -0.5 in the first steps
    nll = np.concatenate([np.linspace(-2.0, -0.5, 10), np.full(steps - 10, -0.5)])
    nll += np.random.default_rng(seed).normal(0.0, 0.05, steps)
    view, g = FakeView(), guard()
    assert feed(g, view, nll) == steps and view.state.events == []


# ------------------------------------------------------------------------------------ small batches


def test_with_steps_of_one_row_the_start_is_the_first_groups_median_and_an_open_group_counts_early():
    """Batch size 1: groups of 32 steps. The first group's median (1.0) is the start level (bar 1251, far
    bar 12,501); from step 33 on every loss is 1e20: the group 33-64 is held, and the 17th step of the next
    group (step 81) makes its median sure to be above the far bar: the second of a run, it counts there."""
    losses = list(noisy(np.ones(32), 0, 1.1)) + [1e20] * 80
    view = FakeView()
    spike = r"at step 65: loss spike \(17 of the 17 steps 65-81 of a 32-step group above \S+ = start level .*from step 33"
    with pytest.raises(TrainingError, match=spike):  # named by the group's largest step loss: its first, 65
        feed(guard(rows_per_step=1), view, losses)
    assert view.state.events[-1]["step"] == 65


def test_with_steps_of_one_row_a_held_group_the_next_clears_is_accepted():
    """One group of 32 steps at 5000 (its median above the bar 1251), then ordinary ones: held, cleared,
    accepted into the window, and the start level is its median."""
    ordinary = list(noisy(np.ones(32 * 8), 2, 1.1))
    losses = ordinary[:64] + [5000.0] * 32 + ordinary[64:]
    view, g = FakeView(), guard(rows_per_step=1)
    assert feed(g, view, losses) == len(losses) and view.state.events == []
    medians = np.median(np.reshape(as_float32(losses), (-1, 32)), axis=1)
    assert g.rule.start == pytest.approx(5000.0) and g.rule.reference == pytest.approx(float(np.median(medians[:5])))


def test_with_steps_of_one_row_no_snapshot_is_taken_while_the_open_group_climbs_past_the_start_bar():
    """Snapshots every 50 steps, groups of 32 (the reference after 5 groups, step 160). The loss climbs
    past the bar from step 135, inside the group 129-160: the snapshot due at step 150 is held, and the
    group is held at 160 (no snapshot while a run is held). The next group's median is sure at its 17th
    step (177, read at 180): the rollback lands a window before the held group's first step (at 50), not
    at 100, 29 steps before it."""
    losses = list(noisy(np.ones(134), 1, 1.1)) + [1e5] * 60
    view, g = FakeView(), guard("rollback", rows_per_step=1)
    assert feed(g, view, losses) == 180
    assert view.snapshots == [0, 50, 100]
    assert view.control.rollback_to is not None and view.control.rollback_to.step == 50


def test_with_steps_of_one_row_no_snapshot_is_taken_while_a_group_is_held():
    """Groups of 32 steps, snapshots every 50. Groups 2-3 (steps 33-96) at 2000, above the bar (~1251),
    below the far bar (~12,501): held at 64 and 96, cleared by group 4 at 128. The snapshot at 50 is not
    taken (the open group is past the bar), nor the one at 100 (a run is held); those at 150 and 200 are."""
    ordinary = list(noisy(np.ones(32 * 5), 3, 1.1))
    losses = ordinary[:32] + [2000.0] * 64 + ordinary[32:]
    view, g = FakeView(), guard("rollback", rows_per_step=1)
    assert feed(g, view, losses) == len(losses) and view.state.events == []
    assert view.snapshots == [0, 150, 200] and g.rule.start == 2000.0 and g.rule.reference is not None


def test_with_steps_of_one_row_a_rollback_lands_a_window_before_the_held_run():
    """Groups 4-6 (steps 97-192) at 2000: held at 128 and 160, and the third counts when sure, at step 177
    (read at 180). The rollback lands a window before the run's first step (97): at 0, not at 50."""
    losses = list(noisy(np.ones(96), 4, 1.1)) + [2000.0] * 96
    view, g = FakeView(), guard("rollback", rows_per_step=1)
    assert feed(g, view, losses) == 180
    assert view.snapshots == [0, 50] and view.control.rollback_to is not None
    assert view.control.rollback_to.step == 0
    assert "from step 97" in view.control.rollback_to.train_state()["events"][-1]["problem"]


# ------------------------------------------------------------------------------------------- resume


def test_the_held_run_is_guard_state_a_resumed_run_judges_by():
    """Interrupted with one loss held (a checkpoint's on_before_save): the resumed guard counts the run at
    the step the uninterrupted one does, and clears it as that one would."""
    losses = [1.0, 1.5, 0.75, 2000.0, 3000.0, 4000.0]
    uninterrupted = FakeView()
    with pytest.raises(TrainingError, match="at step 6: loss spike") as counted:
        feed(guard(), uninterrupted, losses)

    def resumed_from(state: dict, rest: list[float]) -> tuple[DivergenceGuard, FakeView]:
        g, view = guard(), FakeView()
        g.load_state_dict(json.loads(json.dumps(state)))
        view.state = copy.deepcopy(interrupted_view.state)
        feed(g, view, rest)
        return g, view

    interrupted, interrupted_view = guard(), FakeView()
    feed(interrupted, interrupted_view, losses[:4])
    state = interrupted.state_dict()
    assert state["start"] == 1.0 and state["start_run"] == {"losses": [2000.0], "first": 4}
    with pytest.raises(TrainingError, match="at step 6: loss spike") as resumed:
        resumed_from(state, losses[4:])
    assert str(resumed.value) == str(counted.value)
    g, view = resumed_from(state, [3000.0, 1.0])  # cleared: both held losses accepted, the level raised
    assert view.state.events == [] and list(g.rule.recent) == [1.0, 1.5, 0.75, 2000.0, 3000.0, 1.0]
    assert g.rule.start == 3000.0
    older = {k: v for k, v in state.items() if k not in ("start", "start_run")}  # a checkpoint before these
    legacy = guard()
    legacy.load_state_dict(older)
    assert legacy.rule.start == pytest.approx(1.0) and legacy.rule._start_run == []
