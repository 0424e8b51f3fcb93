"""The divergence guard on regression data with rare extreme outlier targets, at batch sizes >= 32.

The finding: a CSV where 1% of the targets are shifted by +50 x std(y), MSE, batch 32, Adam or SGD, was
stopped as "diverged" within its first ~50 steps, though a plain torch loop on the same data converges
to the least-squares fit. A batch holding one outlier row has a loss ~78 x the clean starting loss, past
the spike threshold (median + 12.5 x the starting loss): 27% of the batches of 32 hold one, so two in a
row (which counted as divergence) come every ~13 steps, and a batch holding two (4%) passed 10 x the
threshold, which counted at once. The guard now judges a spike against the spikes the run has shown
(module docstring of trainlab/callbacks/spike_rule.py): runs of spikes count when they are longer
than the observed spike rate makes likely, and a spike counts at once above 10 x the level of the
remembered spikes. Real divergence is still caught: the NaN/Inf, exploding-LR and growth tests of the
other test_divergence* files, and a loss growing 10x every 4 steps here, on clean and on outlier data.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.forked_runs import records, run_inline, write_config
from tests.test_divergence_guard_sequences import FakeView, converging_run, feed
from tests.test_kill_fuzz import _assert_kills_at_steps_resume_identically
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.callbacks.spike_rule import spikes_in_a_row
from trainlab.errors import TrainingError

SHIFT = 50.0  # outlier targets: y + SHIFT * std(y)


def outlier_data(rate: float, seed: int, n: int = 3000, features: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, outlier mask): y = x @ w + 0.3 noise over standard-normal features; round(rate * n) rows get
    y += SHIFT * std(y)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = x @ rng.normal(size=features) + 0.3 * rng.normal(size=n)
    outliers = np.zeros(n, dtype=bool)
    outliers[rng.choice(n, size=round(rate * n), replace=False)] = True
    y[outliers] += SHIFT * y.std()
    return x, y, outliers


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    header = ",".join([*(f"x{i}" for i in range(x.shape[1])), "y"])
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.6f")
    return path


def plain_torch_loop(x: np.ndarray, y: np.ndarray, outliers: np.ndarray, batch: int, optimizer: str,
                     steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A linear model trained by MSE on standardised features, mini-batches reshuffled every epoch, lr 0.01:
    (step losses, whether each step's batch held an outlier row, final weights and bias)."""
    torch.manual_seed(seed)
    features = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    targets = torch.tensor(y, dtype=torch.float32)
    model = torch.nn.Linear(features.shape[1], 1)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=0.01)
    losses, hit = [], []
    generator = torch.Generator().manual_seed(seed)
    while len(losses) < steps:
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            rows = order[start:start + batch]
            loss = torch.nn.functional.mse_loss(model(features[rows]).squeeze(1), targets[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            hit.append(bool(outliers[rows.numpy()].any()))
            if len(losses) == steps:
                break
    weights = np.append(model.weight.detach().numpy().ravel(), model.bias.item())
    return np.array(losses, dtype=np.float32).astype(np.float64), np.array(hit), weights


def least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights and bias of the least-squares fit on standardised features: what the loop should converge to."""
    design = np.column_stack([(x - x.mean(0)) / x.std(0), np.ones(len(x))])
    return np.linalg.lstsq(design, y, rcond=None)[0]


def guard(rows: int, policy: str = "stop") -> DivergenceGuard:
    # the config's defaults: spike_factor 50, window 50, lr_factor 0.5, max_rollbacks 3
    return DivergenceGuard(policy, 50.0, 50, lr_factor=0.5, max_rollbacks=3, rows_per_step=rows)


def stop_step(losses, rows: int) -> int | None:
    """The step the guard stops at (1-based), or None when it lets the whole sequence through."""
    view = FakeView()
    try:
        feed(guard(rows), view, losses)
    except TrainingError:
        return view.state.events[-1]["step"]
    assert view.state.events == []
    return None


# ----------------------------------------------------------------------------- the finding, end to end


def test_a_regression_csv_with_one_percent_outlier_targets_trains_to_the_end(tmp_path):
    """1% of the targets +50 sigma, batch 32, Adam: a plain torch loop converges to the least-squares fit,
    and trainlab with its default guard trains every epoch, to the weights of the unguarded run."""
    x, y, outliers = outlier_data(0.01, seed=0)
    losses, hit, weights = plain_torch_loop(x, y, outliers, 32, "adam", 2000, seed=0)
    # healthy: the fit converges, and the loss of the batches without an outlier falls and stays low
    assert np.abs(weights - least_squares(x, y)).max() < 0.1
    clean = losses[~hit]
    assert np.median(clean[-200:]) < np.median(clean[:20]) / 2
    # the shape that stopped the old rule: batches with an outlier ~100 x the others, often two in a row
    assert np.median(losses[hit]) > 100 * np.median(clean[-200:]) and (hit[1:] & hit[:-1]).mean() > 0.05

    data = write_csv(tmp_path / "outliers.csv", x, y)
    config = {"name": "outliers", "seed": 0,
              "data": {"source": "csv", "path": str(data), "target": "y", "task": "regression"},
              "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 20},
              "metrics": ["mse"], "output": {"progress": "off"}, "runtime": {"num_threads": 1}}
    guarded, unguarded = tmp_path / "guarded", tmp_path / "unguarded"
    assert run_inline(["train", str(write_config(tmp_path / "c.yaml", config)), "--out", str(guarded),
                       "--quiet"]) == 0
    off = copy.deepcopy(config)
    off["strategy"]["divergence"] = {"policy": "off"}
    assert run_inline(["train", str(write_config(tmp_path / "off.yaml", off)), "--out", str(unguarded),
                       "--quiet"]) == 0
    summary = json.loads((guarded / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 20 and summary["events"] == []
    trained, free = load_file(guarded / "model.safetensors"), load_file(unguarded / "model.safetensors")
    assert trained.keys() == free.keys() and all(torch.equal(trained[k], free[k]) for k in trained)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("batch", [32, 64, 128])
@pytest.mark.parametrize("rate", [0.005, 0.01, 0.02])
def test_outlier_batches_of_a_converging_run_are_never_divergence(rate, batch, seed):
    """The step losses of a plain torch loop (Adam on even seeds, SGD on odd ones) on data with 0.5-2%
    outlier targets: the guard lets all 2000 steps through."""
    x, y, outliers = outlier_data(rate, seed)
    losses, hit, weights = plain_torch_loop(x, y, outliers, batch, "adam" if seed % 2 == 0 else "sgd", 2000, seed)
    assert np.abs(weights - least_squares(x, y)).max() < 0.5  # converged (SGD's last steps jitter more)
    assert (hit[1:] & hit[:-1]).sum() >= 10  # two outlier batches in a row, again and again
    assert stop_step(losses, batch) is None


# ----------------------------------------------------------------------------- real divergence


def grow(losses: np.ndarray, start: int, tenfold_every: int = 4) -> np.ndarray:
    """``losses`` with every loss from index ``start`` on multiplied by 10 every ``tenfold_every`` steps."""
    grown = losses.copy()
    steps = np.minimum(np.arange(1, len(losses) - start + 1), 30 * tenfold_every)  # up to 1e30 x, finite
    grown[start:] *= 10.0 ** (steps / tenfold_every)
    return grown


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_growing_tenfold_in_four_steps_is_stopped_as_soon_as_before(seed):
    """A clean converging run (it never spikes): a loss growing 10x every 4 steps (times its noise, x/÷ 3)
    counts, as before the outlier rule, at the second loss in a row above the spike threshold (27-31 after
    the first epochs: median + 12.5 x the starting loss 2.3) or at once 10x above it, whatever level it
    grew from."""
    losses = converging_run(seed=seed)
    start = int(np.random.default_rng(seed).integers(1000, 7000))
    grown = grow(losses, start)
    step = stop_step(grown, rows=32)
    above = grown > 31.0
    # 1-based: the first step ending two losses in a row above 31, or above 310
    latest = int(np.argmax((above[1:] & above[:-1]) | (grown[1:] > 310.0))) + 2
    earliest = int(np.argmax(grown > 27.0)) + 2  # a second spike after the first above 27
    assert step is not None and start < earliest <= step <= latest, (start, earliest, step, latest)


@pytest.mark.parametrize("batch", [32, 64, 128])
@pytest.mark.parametrize("rate", [0.005, 0.01, 0.02])
def test_a_loss_growing_tenfold_in_four_steps_on_outlier_data_is_stopped_within_16_steps(rate, batch):
    """On outlier data the clean batches start ~2 orders of magnitude below the outlier batches' level S;
    a loss growing 10x every 4 steps passes 10 x S within 4 x log10(10 S / clean loss) steps (<= 16 here)."""
    x, y, outliers = outlier_data(rate, seed=1)
    losses, _, _ = plain_torch_loop(x, y, outliers, batch, "adam", 1500, seed=1)
    assert stop_step(losses, batch) is None
    start = 1000
    step = stop_step(grow(losses, start), batch)
    assert step is not None and start < step <= start + 16, (start, step)


def test_two_spikes_in_a_row_still_count_where_the_data_never_spiked():
    """What the rule is for data without outlier batches is unchanged: q = 0, two spikes in a row count."""
    assert [spikes_in_a_row(q) for q in (0.0, 1e-3, 0.01, 0.1, 0.275, 0.5, 0.75)] == [2, 2, 3, 6, 11, 20, 49]
    losses = converging_run(seed=7)
    at = 150 * 20
    losses[at:at + 2] = 40.0  # above the threshold (~29), below 10 x it
    assert stop_step(losses, 32) == at + 2


# ----------------------------------------------------------------------------- resume


def test_the_spike_memory_and_the_open_run_are_saved_with_the_guards_state():
    """A guard loaded from another's state in the middle of a run of spikes, on outlier data (as a resume
    loads a checkpoint), counts where the uninterrupted guard does: the memory decides how long a run must
    be, and the open run how far it has got. A guard that lost its memory counts elsewhere."""
    x, y, outliers = outlier_data(0.01, seed=2)
    losses, _, _ = plain_torch_loop(x, y, outliers, 32, "adam", 1500, seed=2)
    shifted = losses.copy()
    shifted[1000:] += 100.0  # every batch above the threshold (~55), none above 10 x the outlier batches' ~300
    reference_view = FakeView()
    with pytest.raises(TrainingError, match="in a row") as reference:
        feed(guard(32), reference_view, shifted)
    counted = reference_view.state.events[-1]["step"]
    assert 1005 < counted < 1030
    cut = 1004  # the run of spikes is 4 long
    interrupted, view = guard(32), FakeView()
    feed(interrupted, view, shifted[:cut])  # ends with on_before_save, as a checkpoint does
    state = json.loads(json.dumps(interrupted.state_dict()))  # what a checkpoint round trip keeps
    assert len(state["run"]["spikes"]) == 4 and state["run"]["first"] == 1001 and len(state["spikes"]) > 20
    at_cut = copy.deepcopy(view.state)

    def resumed_count(guard_state: dict) -> tuple[str, dict]:
        resumed, resumed_view = guard(32), FakeView()
        resumed.load_state_dict(guard_state)
        resumed_view.state = copy.deepcopy(at_cut)
        with pytest.raises(TrainingError) as stopped:
            for value in shifted[cut:]:
                resumed_view.advance()
                resumed.on_step_end(resumed_view, torch.tensor(float(value)))
            resumed.on_before_save(resumed_view)
        return str(stopped.value), resumed_view.state.events[-1]

    assert resumed_count(state) == (str(reference.value), reference_view.state.events[-1])
    # without the memory two spikes in a row count: the open run already is longer
    assert resumed_count({**state, "spikes": []})[1]["step"] == cut + 1


def test_no_snapshot_is_taken_while_a_run_of_spikes_is_open():
    """A rollback must land before the run's first spike; the guard keeps two snapshots, so one taken inside a
    long run of spikes (its weights may be on the way out) would push the good one out."""
    x, y, outliers = outlier_data(0.01, seed=2)
    losses, _, _ = plain_torch_loop(x, y, outliers, 32, "adam", 1500, seed=2)
    shifted = losses.copy()
    shifted[995:] += 100.0  # a run of spikes from step 996, across the snapshot step 1000
    view = FakeView()
    feed(guard(32, policy="rollback"), view, shifted)
    assert view.control.rollback_to is not None  # the event is in the state the rollback restores
    rollback = view.control.rollback_to.tree["parts"]["train_state"]["events"][-1]
    assert rollback["step"] > 1000  # the run was still open at step 1000
    assert not [step for step in view.snapshots if 996 <= step <= rollback["step"]]
    assert rollback["restored_step"] <= 996 - 50


def replayed_state(losses, steps: int) -> dict:
    """The guard's state after ``steps`` step losses and a checkpoint (on_before_save), as a run's guard has it."""
    g = guard(32)
    feed(g, FakeView(), losses[:steps])
    return g.state_dict()


def test_kill_and_resume_on_outlier_data_is_bit_identical(tmp_path, monkeypatch):
    """Kills right after checkpoints of a run on outlier data written while a run of outlier batches was
    open, with outlier batches remembered: the resumed runs judge with the memory and the open run the
    uninterrupted run had (without them a pair of outlier batches would stop them), and end bit-identical."""
    x, y, _ = outlier_data(0.01, seed=3, n=1500)
    data = write_csv(tmp_path / "outliers.csv", x, y)
    every = 7
    config = {"name": "outliers-resume", "seed": 0,
              "data": {"source": "csv", "path": str(data), "target": "y", "task": "regression"},
              "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 6},
              "metrics": ["mse"], "runtime": {"num_threads": 1},
              "output": {"progress": "off",
                         "checkpoint": {"every_n_steps": every, "keep_last": 2, "every_seconds": None,
                                        "keep_after_finish": "all"}}}
    config_path = write_config(tmp_path / "config.yaml", config)
    reference = tmp_path / "reference"
    assert run_inline(["train", str(config_path), "--out", str(reference), "--quiet"]) == 0
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["events"] == []
    # the step losses, from the same run with step records (their samples/s would differ between runs)
    logged = copy.deepcopy(config)
    logged["output"]["log_every_n_steps"] = 1
    assert run_inline(["train", str(write_config(tmp_path / "logged.yaml", logged)), "--out", str(tmp_path / "logged"),
                       "--quiet"]) == 0
    losses = [r["train_loss"] for r in records(tmp_path / "logged") if r.get("scope") == "step"]
    assert len(losses) == summary["steps"]
    open_runs = [step for step in range(10 * every, len(losses) - every, every)
                 if replayed_state(losses, step)["run"]["spikes"]]
    assert len(open_runs) >= 2 and len(replayed_state(losses, open_runs[0])["spikes"]) >= 5
    _assert_kills_at_steps_resume_identically(config_path, reference, [open_runs[0], open_runs[-1]], tmp_path,
                                              monkeypatch)
