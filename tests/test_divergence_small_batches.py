"""The divergence guard on steps of few rows: a judged loss covers at least 32 rows.

Per-sample SGD on regression data with a few outlier targets (+50) was stopped as "diverged": one
outlier row's squared error is hundreds of times the median row loss, above LONE_SPIKE x the spike
threshold, so it counted at once, though nothing diverged. The guard now judges steps of r < 32 rows
in groups of ceil(32 / r) steps by the median of their losses, on the statistics of such medians; a
NaN/Inf step loss still counts at once, and a group more than half of whose steps are already above
the bar counts before it is complete. The open group is guard state: a kill and resume mid-group
stays bit-identical.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.forked_runs import run_inline, write_config
from tests.test_divergence_guard_sequences import STEPS_PER_EPOCH, FakeView, feed
from tests.test_kill_fuzz import _assert_kills_at_steps_resume_identically
from trainlab.callbacks.divergence_guard import ROWS_JUDGED, DivergenceGuard, steps_per_judged_loss
from trainlab.callbacks.spike_rule import LONE_SPIKE
from trainlab.cli import main
from trainlab.errors import TrainingError

OUTLIER_SHIFT = 50.0  # added to 3% of the targets


def outlier_regression(path: Path, n: int = 600, seed: int = 0) -> Path:
    """y = x @ w + 0.3 noise over 8 standard-normal features; 3% of the targets shifted by +50."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = x @ rng.normal(size=8) + 0.3 * rng.normal(size=n)
    y[rng.choice(n, size=n * 3 // 100, replace=False)] += OUTLIER_SHIFT
    np.savez(path, x=x, y=y.astype(np.float32))
    return path


def per_sample_sgd(data: Path, **strategy) -> dict:
    """examples/linear_regression_sgd.yaml on ``data``: batch size 1, 3 epochs."""
    return {
        "name": "per-sample-sgd", "seed": 0,
        "data": {"source": "npz", "path": str(data), "task": "regression"},
        "model": {"name": "linear"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 1, "epochs": 3,
                     "schedule": {"name": "exponential", "gamma": 0.9}, **strategy},
        "metrics": ["mse"],
        "output": {"progress": "off"},
        "runtime": {"num_threads": 1},
    }


# LR rising linearly to 1.0 over 90% of the run: per-sample SGD on this data is stable up to ~0.05 (step
# ~130), then the loss grows by orders of magnitude within tens of steps and reaches inf at step ~300
DIVERGING = {"optimizer": {"name": "sgd", "lr": 1.0}, "schedule": {"name": "warmup_linear", "warmup_fraction": 0.9}}


def _step_losses(run: Path) -> np.ndarray:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return np.array([math.nan if r["train_loss"] is None else r["train_loss"]
                     for r in records if r.get("scope") == "step" and "train_loss" in r])


# ----------------------------------------------------------------------------- real runs


def test_per_sample_sgd_with_outlier_rows_trains_to_the_end(tmp_path):
    """The finding's shape: nothing diverges (policy off ends with the same bounded losses), and the
    guarded run trains all its epochs, with no divergence event, to the same weights."""
    data = outlier_regression(tmp_path / "outliers.npz")
    guarded, unguarded = tmp_path / "guarded", tmp_path / "unguarded"
    config = write_config(tmp_path / "c.yaml", per_sample_sgd(data))
    assert main(["train", str(config), "--out", str(guarded), "--quiet"]) == 0
    config_off = write_config(tmp_path / "off.yaml", per_sample_sgd(data, divergence={"policy": "off"}))
    assert main(["train", str(config_off), "--out", str(unguarded), "--quiet"]) == 0
    summary = json.loads((guarded / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 3 and summary["events"] == []
    trained, free = load_file(guarded / "model.safetensors"), load_file(unguarded / "model.safetensors")
    assert trained.keys() == free.keys() and all(torch.equal(trained[k], free[k]) for k in trained)
    # what made the old rule stop: single rows far above the bulk of the row losses
    off = json.loads((unguarded / "summary.json").read_text())
    assert math.isfinite(off["test"]["mse"]) and off["test"]["mse"] < 100


def test_a_diverging_per_sample_run_is_stopped_within_a_few_steps_and_rolled_back_before_it(tmp_path, capsys):
    data = outlier_regression(tmp_path / "outliers.npz")
    off = tmp_path / "off"
    config = per_sample_sgd(data, **DIVERGING, divergence={"policy": "off"})
    config["output"]["log_every_n_steps"] = 1
    assert main(["train", str(write_config(tmp_path / "off.yaml", config)), "--out", str(off), "--quiet"]) == 0
    losses = _step_losses(off)
    healthy = losses[:100]  # outlier rows included: hundreds of times the median row loss
    assert np.isfinite(healthy).all() and healthy.max() > 100 * np.median(healthy)
    # the first bad loss, independently of the guard: 1000 x anything the healthy start saw, or non-finite
    first_bad = int(np.argmax(~(losses <= 1000 * healthy.max()))) + 1
    assert 100 < first_bad < int(np.argmax(~np.isfinite(losses))) + 1

    stopped = tmp_path / "stop"
    config = per_sample_sgd(data, **DIVERGING)
    capsys.readouterr()  # the unguarded run's warning
    assert main(["train", str(write_config(tmp_path / "stop.yaml", config)), "--out", str(stopped),
                 "--quiet"]) == 4
    err = capsys.readouterr().err
    event = json.loads((stopped / "summary.json").read_text())["events"][-1]
    # counted once more than half of a 32-step group is past the bar: at most 17 steps (rows) after it
    assert event["action"] == "stop" and 100 < event["step"] <= first_bad + ROWS_JUDGED // 2 + 1, (event, first_bad)
    assert err.startswith(f"error: training diverged at step {event['step']}: loss spike") and err.count("\n") == 1
    # the advice fits steps of one row, besides the lower learning rate
    assert "with 1 row a step" in err and "strategy.loss: huber" in err and "strategy.batch_size" in err
    assert "strategy.divergence.spike_factor" in err and "lower learning rate" in err

    rolled = tmp_path / "rollback"
    config = per_sample_sgd(data, **DIVERGING, divergence={"policy": "rollback", "window": 50, "lr_factor": 0.05})
    assert main(["train", str(write_config(tmp_path / "rb.yaml", config)), "--out", str(rolled), "--quiet"]) == 0
    summary = json.loads((rolled / "summary.json").read_text())
    first = summary["events"][0]
    assert first["action"] == "rollback" and first["step"] == event["step"]
    # back to a snapshot a window before the step the counted group began at, where the loss was healthy
    begun = int(first["problem"].split("steps ")[1].split("-")[0])
    assert first["restored_step"] <= begun - 50 and first["restored_step"] <= 100
    assert summary["status"] == "finished" and math.isfinite(summary["test"]["mse"])


@pytest.mark.slow
def test_kill_and_resume_inside_a_group_is_bit_identical(tmp_path, monkeypatch):
    """Kills after checkpoints written with a group open (the steps are not multiples of 32), one inside
    the group that is counted later and rolls back (its partial sum decides that: it must survive)."""
    data = outlier_regression(tmp_path / "outliers.npz")
    config = per_sample_sgd(data, **DIVERGING, divergence={"policy": "rollback", "window": 50, "lr_factor": 0.05})
    config["output"]["checkpoint"] = {"every_n_steps": 5, "keep_last": 2, "every_seconds": None,
                                      "keep_after_finish": "all"}
    config_path = write_config(tmp_path / "config.yaml", config)
    reference = tmp_path / "reference"
    assert run_inline(["train", str(config_path), "--out", str(reference), "--quiet"]) == 0
    events = json.loads((reference / "summary.json").read_text())["events"]
    rollback = next(e for e in events if e.get("action") == "rollback")
    begun = int(rollback["problem"].split("steps ")[1].split("-")[0])
    inside = next(s for s in range(begun + 1, rollback["step"]) if s % 5 == 0)  # the group is open there
    assert inside % ROWS_JUDGED and 45 % ROWS_JUDGED
    _assert_kills_at_steps_resume_identically(config_path, reference, [45, inside, rollback["step"] + 42],
                                              tmp_path, monkeypatch)


# ----------------------------------------------------------------------------- the rule, scripted


def _guard(rows_per_step: int | None, policy: str = "stop", spike_factor: float = 50.0,
           window: int = 50) -> DivergenceGuard:
    return DivergenceGuard(policy, spike_factor, window, lr_factor=0.5, max_rollbacks=3,
                           rows_per_step=rows_per_step)


def row_losses(rows: int, seed: int, outlier_rate: float = 0.03) -> np.ndarray:
    """Per-row squared errors of a regression that converges as the rows go by: residuals N(0, s) with s
    falling from 3 (a model started at zero) to 0.3, and 3% of the rows with a target off by 50, whose
    loss (~2500) is hundreds to tens of thousands of times the median row loss."""
    rng = np.random.default_rng(seed)
    residuals = np.geomspace(3.0, 0.3, rows) * rng.normal(size=rows)
    outliers = rng.random(rows) < outlier_rate
    residuals[outliers] += OUTLIER_SHIFT
    return (residuals ** 2).astype(np.float32).astype(np.float64)  # the guard reads float32 losses


def step_losses(steps: int, rows: int, seed: int, outlier_rate: float = 0.03) -> np.ndarray:
    """The losses of ``steps`` steps of ``rows`` rows each: means of consecutive :func:`row_losses`."""
    losses = row_losses(steps * rows, seed, outlier_rate).reshape(steps, rows).mean(axis=1)
    return losses.astype(np.float32).astype(np.float64)


def test_steps_of_fewer_than_32_rows_are_judged_in_groups_of_32_rows_or_more():
    assert [steps_per_judged_loss(r) for r in (None, 1, 2, 5, 31, 32, 1000)] == [1, 32, 16, 7, 2, 1, 1]


@pytest.mark.parametrize("seed", range(4))
def test_outlier_rows_at_batch_size_1_are_not_divergence(seed):
    losses = row_losses(3000, seed)
    # judged row by row, one outlier row among clean rows counts at once: above 10 x the threshold
    lone = row_losses(300, seed, outlier_rate=0.0)
    lone[150] = losses.max()
    with pytest.raises(TrainingError, match="at step 151: loss spike"):
        feed(_guard(None), FakeView(), lone)
    view = FakeView()
    assert feed(_guard(1), view, losses) == len(losses) and view.state.events == []


def grouped_rule(losses, group: int, spike_factor: float, window: int) -> tuple[int, int] | None:
    """The small-batch rule written out step by step (module docstring): the 1-based steps (first of the
    group, the step at which it counts) where the guard counts a loss, or None. Medians of ``group`` consecutive step losses are judged with
    median + k * max(1.4826 MAD, reference / 4) of the last ``window`` good medians, the reference being
    the median of the first max(5, ceil((window // 2) / group)) medians; a median below LONE_SPIKE x the
    threshold right after a good one is left out and counts only if the next is one too; a NaN/Inf step
    counts at once; an open group counts once more than half of its ``group`` steps are above what a
    complete group's median must pass to count at once."""
    def threshold(recent, reference):
        med = float(np.median(recent[-window:]))
        mad = float(np.median(np.abs(np.array(recent[-window:]) - med)))
        return med + spike_factor * max(1.4826 * mad, reference / 4)

    recent, reference, spiked, opened = [], None, False, []
    for index, value in enumerate(losses):
        first = index + 1 - len(opened)
        if not math.isfinite(value):
            return first, index + 1
        opened.append(value)
        if reference is not None:
            bar = threshold(recent, reference) * (1.0 if spiked else LONE_SPIKE)
            if sum(v > bar for v in opened) > group // 2:
                return first, index + 1
        if len(opened) < group:
            continue
        median, opened = float(np.median(opened)), []
        if reference is not None and median > threshold(recent, reference):
            if spiked or median > LONE_SPIKE * threshold(recent, reference):
                return first, index + 1
            spiked = True
            continue
        spiked = False
        recent.append(median)
        if reference is None and len(recent) >= max(5, -(-(window // 2) // group)):
            reference = float(np.median(recent))
    return None


@pytest.mark.parametrize("rows", [1, 4, 12])
@pytest.mark.parametrize("seed", range(3))
def test_the_guard_counts_where_the_rule_written_out_does(rows, seed):
    """Healthy steps (chi-square row losses, no outliers: with 12 rows a step, a group is 3 steps and a
    3% outlier rate puts 2 outlier steps in one group often, as it puts 2 outliers in a 32-row batch),
    then a loss that grows by 1.5x a step from a random step on: the guard
    (reading losses every 10 steps) counts at the step the written-out rule does, soon after the growth
    began, naming the step of the group's largest loss."""
    rng = np.random.default_rng(seed)
    group = steps_per_judged_loss(rows)
    losses = step_losses(1500, rows, seed, outlier_rate=0.0)
    start = int(rng.integers(600, 1200))
    losses[start:] *= 1.5 ** np.arange(1, len(losses) - start + 1)  # float64: past float32's range at the end
    counted = grouped_rule(losses.tolist(), group, 50.0, 50)
    assert counted is not None and start < counted[1] < start + 60
    first, at = counted
    largest = first + int(np.argmax(losses[first - 1:at]))
    view = FakeView()
    with pytest.raises(TrainingError, match=rf"at step {largest}: loss spike \(.*steps {first}-{at} "):
        feed(_guard(rows), view, losses)
    assert view.state.events[-1]["step"] == largest


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("at", [3, 700 + 17])  # before the reference exists, and inside a later group
def test_a_non_finite_step_loss_counts_at_once_at_its_step(bad, at):
    losses = row_losses(1000, seed=7)
    losses[at - 1] = bad
    view = FakeView()
    with pytest.raises(TrainingError, match=f"at step {at}: non-finite loss"):
        feed(_guard(1), view, losses)
    assert view.state.events[-1]["batch"] == (at - 1) % STEPS_PER_EPOCH


def test_a_pending_nan_is_caught_before_a_checkpoint_is_written():
    guard, view = _guard(2), FakeView()
    guard.on_train_start(view)
    for value in [2.3, 2.2, math.nan]:
        view.advance()
        guard.on_step_end(view, torch.tensor(value))
    with pytest.raises(TrainingError, match="at step 3: non-finite loss"):
        guard.on_before_save(view)


def test_a_minority_of_outlier_steps_never_counts_and_a_raised_median_counts_when_it_recurs():
    losses = row_losses(2000, seed=3, outlier_rate=0.0)
    group = steps_per_judged_loss(1)
    at = 40 * group  # the first step of a group
    minority = losses.copy()
    for start in range(at, len(losses) - group, group):  # 15 of each group's 32 rows: the median stays put
        minority[start:start + 15] = 2500.0
    view = FakeView()
    assert feed(_guard(1), view, minority) == len(minority) and view.state.events == []
    lone = losses.copy()
    lone[at:at + 17] = 50.0  # a group's median ~ 50: above the threshold (~30), below 10 x it
    view = FakeView()
    assert feed(_guard(1), view, lone) == len(lone) and view.state.events == []
    twice = lone.copy()
    twice[at + group:at + group + 17] = 50.0
    view = FakeView()
    # counted as soon as 17 of the 32 steps are above the threshold: the median is sure to be
    second = at + group + 1
    with pytest.raises(TrainingError, match=rf"at step {second}: loss spike \(17 of the 17 steps {second}-{second + 16} "):
        feed(_guard(1), view, twice)


def test_the_open_group_is_saved_with_the_guards_state():
    """A guard loaded from another's state mid-group (as a resume loads a checkpoint) completes the group
    and counts where the uninterrupted guard does."""
    losses = row_losses(1500, seed=5)
    losses[1000:] *= 1.3 ** np.arange(1, 501)
    reference_view = FakeView()
    with pytest.raises(TrainingError) as reference:
        feed(_guard(1, "stop"), reference_view, losses)
    counted = reference_view.state.events[-1]["step"]
    cut = counted - 7
    assert cut % ROWS_JUDGED  # the group is open at the cut
    interrupted, view = _guard(1), FakeView()
    feed(interrupted, view, losses[:cut])  # ends with on_before_save, as a checkpoint does
    state = copy.deepcopy(interrupted.state_dict())
    assert state["group"]["losses"] and len(state["group"]["losses"]) == cut % ROWS_JUDGED
    resumed = _guard(1)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # what a checkpoint round trip keeps
    with pytest.raises(TrainingError) as after:
        for value in losses[cut:]:
            view.advance()
            resumed.on_step_end(view, torch.tensor(float(value)))
        resumed.on_before_save(view)
    assert str(after.value) == str(reference.value)
    assert view.state.events[-1] == reference_view.state.events[-1]


def test_the_small_step_advice_names_a_loss_that_fits_the_task():
    """A diverged classification run was told to try strategy.loss: huber, a regression loss."""
    from trainlab.callbacks.divergence_guard import DivergenceGuard
    from trainlab.losses import build_loss
    from trainlab.run_checks import outlier_remedy

    assert outlier_remedy("regression", build_loss("mse")) == "a robust loss (strategy.loss: huber)"
    assert outlier_remedy("multiclass", build_loss("cross_entropy")) == \
        "label smoothing (strategy.loss.label_smoothing: 0.1)"
    assert outlier_remedy("binary", build_loss("bce")) is None
    spike = "loss spike (> 3 = median + 50 x spread of recent losses)"
    for remedy, expected in (("label smoothing (strategy.loss.label_smoothing: 0.1)",
                              "try label smoothing (strategy.loss.label_smoothing: 0.1), a larger strategy.batch_size"),
                             (None, "try a larger strategy.batch_size")):
        guard = DivergenceGuard("stop", 50.0, 50, 0.5, 3, rows_per_step=4, outlier_loss=remedy)
        assert expected in guard._advice(spike) and "huber" not in guard._advice(spike)
