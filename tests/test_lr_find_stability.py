"""The LR range test's suggestion trains: it stays a decade below where the raw loss bottoms out (the EMA's
steepest fall lags past it), lr-find names each optimizer group's lr at it, and its no-descent message names
the longer sweep lr: auto runs, which lr-find then reproduces."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from trainlab.config import Config
from trainlab.errors import TrainingError
from trainlab.lr_finder import NoDescentError, suggest_lr

# --------------------------------------------------------------------------- 1. the lag of the smoothed loss


def late_sharp_drop(noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 100-step sweep whose loss is flat at 2.3, drops to 0.3 between lr 0.024 and 0.041 and rises again
    from lr 0.05 (a V, as batch-8 digits sweeps with momentum have it), with relative noise."""
    lrs = np.geomspace(1e-7, 10.0, 100)
    x = np.log10(lrs)
    drop = 1.0 / (1.0 + np.exp(-(x + 1.5) / 0.05))
    rise = np.where(x > -1.3, 2.0 * (x + 1.3) ** 2, 0.0)
    return lrs, (2.3 - 2.0 * drop + rise) * (1 + noise * np.random.default_rng(seed).standard_normal(100))


@pytest.mark.parametrize(("noise", "seed"), [(0.0, 0), (0.1, 0), (0.1, 1), (0.1, 2)])
def test_a_late_sharp_drop_gets_a_suggestion_well_below_the_raw_minimum(noise, seed):
    """The bias-corrected EMA (beta 0.98) lags such a drop by tens of steps, so its steepest fall came at the
    lr where the raw loss is lowest (0.045 to 0.055 here, the raw minimum 0.055), the edge of divergence."""
    lrs, losses = late_sharp_drop(noise, seed)
    raw_minimum = lrs[int(np.argmin(late_sharp_drop(0.0, 0)[1]))]  # the reference: the noise-free curve's
    assert 0.05 < raw_minimum < 0.06
    suggestion = suggest_lr(lrs, losses)
    assert suggestion in lrs
    assert raw_minimum / 30 < suggestion <= raw_minimum / 3


DIGITS_MOMENTUM = {
    "name": "digits-momentum", "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [64]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                 "batch_size": 8, "epochs": 4, "schedule": "cosine"},
    "runtime": {"device": "cpu", "num_threads": 1}, "output": {"progress": "off"}}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_suggestion_for_digits_with_momentum_at_batch_8_trains(tmp_path, seed):
    """The user's case: lr-find suggested 0.095, 0.17 and 0.14 for seeds 0-2, and runs at them diverged (or
    ended at a val loss of 221); constant lrs of 0.01 to 0.03 train (val loss 0.16 to 0.19, accuracy 0.96
    over 5 epochs). The reference is that grid's outcome, not the finder's own curve."""
    from trainlab.experiment import train
    from trainlab.lr_find_run import lr_find_config

    raw = {**copy.deepcopy(DIGITS_MOMENTUM), "seed": seed}
    suggestion, _, _ = lr_find_config(Config.model_validate(raw))
    raw["strategy"]["optimizer"]["lr"] = suggestion
    summary, _ = train(Config.model_validate(raw), out=tmp_path / "run", quiet=True)
    assert summary["status"] == "finished", (suggestion, summary.get("reason"))
    assert summary["val"]["loss"] < 0.5 and summary["val"]["accuracy"] > 0.93, suggestion


# --------------------------------------------------------------------------- 2. optimizer groups


GROUPS = {
    "name": "iris-groups", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy",
                 "optimizer": {"name": "sgd", "lr": 0.1, "groups": [{"name": "head", "select": "head", "lr": 1.0},
                                                                   {"name": "biases", "select": "biases"}]},
                 "batch_size": 10, "epochs": 20},
    "runtime": {"device": "cpu", "num_threads": 1}, "output": {"progress": "off"}}


def test_lr_find_prints_each_groups_lr_at_the_suggestion(write_config, capsys, monkeypatch):
    """It printed only "suggested lr: 0.201": the top level's, while the sweep had scaled the head group (lr
    1.0 beside the top level's 0.1) with it. The reference: the lr each group's parameters trained at in the
    sweep, at the step of the suggested lr."""
    import trainlab.lr_find_run
    from trainlab.cli import main

    seen: list[dict[str, float]] = []
    real = trainlab.lr_find_run.range_test_step

    def spy(step, batches, **options):
        train_step = step.train_step

        def recording(batch, state):
            seen.append({group["route"]: group["lr"] for optimizer in step.optimizer.optimizers
                         for group in optimizer.param_groups})
            return train_step(batch, state)

        step.train_step = recording
        return real(step, batches, **options)

    monkeypatch.setattr(trainlab.lr_find_run, "range_test_step", spy)
    assert main(["lr-find", str(write_config(GROUPS))]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    suggestion = float(re.match(r"suggested lr: (\S+) \(strategy\.optimizer\.lr; ", line).group(1))
    at = min(seen, key=lambda lrs: abs(np.log(lrs["rest"] / suggestion)))  # the suggested step (3 digits shown)
    assert at["rest"] == pytest.approx(suggestion, rel=5e-3)
    assert f"group head {at['head']:.3g}, 10x as in the config" in line
    assert f"group biases {at['biases']:.3g}, the same (it sets no lr)" in line
    assert at["head"] == pytest.approx(10 * at["rest"]) and at["biases"] == pytest.approx(at["rest"])
    assert "\n" not in line


def test_lr_find_without_groups_prints_the_bare_line(write_config, capsys):
    from trainlab.cli import main

    raw = copy.deepcopy(GROUPS)
    del raw["strategy"]["optimizer"]["groups"]
    assert main(["lr-find", str(write_config(raw))]) == 0
    assert re.fullmatch(r"suggested lr: [0-9.e+-]+\n", capsys.readouterr().out)


# --------------------------------------------------------------------------- 3. the longer sweep's steps


def imbalanced_config(tmp_path) -> Config:
    """1500 rows: 300 test, 240 val, 960 training rows; at batch 80, 12 steps a pass over them, so the
    longer sweep of lr: auto (3 x 100 steps, at most 20 passes) has 240 steps, not 300."""
    from sklearn.datasets import make_classification

    x, y = make_classification(1500, 8, n_informative=5, weights=[.92, .08], random_state=3)
    np.savez(tmp_path / "imb.npz", x=x.astype(np.float32), y=y)
    return Config.model_validate({
        "name": "imb", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "imb.npz")},
        "model": {"name": "mlp", "hidden": [16]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": "auto"}, "batch_size": 80,
                     "epochs": 10},
        "runtime": {"device": "cpu", "num_threads": 1}, "output": {"progress": "off"}})


def flat_sweep(swept: list[int]):
    """A range test whose losses show no descent (noise around 0.69), recording each sweep's steps."""
    def range_test_step(step, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, **_):
        swept.append(num_steps)
        lrs = list(np.geomspace(start_lr, end_lr, num_steps))
        return lrs, list(0.69 + np.random.default_rng(num_steps).normal(0, 0.03, num_steps))
    return range_test_step


def test_the_no_descent_message_of_lr_find_names_the_steps_lr_auto_retries_with(tmp_path, monkeypatch):
    """It said "--steps 300" (3 x 100) where lr: auto, capped at 20 passes over the 960 rows, retried with
    240 steps and found an lr that lr-find --steps 300 did not suggest."""
    import trainlab.lr_find_run
    import trainlab.step_builders
    from trainlab.builders import build, run_scope
    from trainlab.errors import TrainingError

    config = imbalanced_config(tmp_path)
    auto_sweeps: list[int] = []
    monkeypatch.setattr(trainlab.step_builders, "range_test_step", flat_sweep(auto_sweeps))
    with run_scope(config), pytest.raises(TrainingError):
        build(config, quiet=True)
    assert auto_sweeps == [100, 240]
    monkeypatch.setattr(trainlab.lr_find_run, "range_test_step", flat_sweep([]))
    with pytest.raises(NoDescentError) as caught:
        trainlab.lr_find_run.lr_find_config(config, num_steps=100)
    assert "sweep more steps (trainlab lr-find CONFIG --steps 240, the longer sweep lr: auto runs on this data)" \
        in str(caught.value)
    assert "--steps 300" not in str(caught.value)
    with pytest.raises(NoDescentError) as caught:  # a sweep of another length than lr: auto's first: 3x it
        trainlab.lr_find_run.lr_find_config(config, num_steps=40)
    assert "(trainlab lr-find CONFIG --steps 120)" in str(caught.value) and "lr: auto" not in str(caught.value)


def test_lr_find_with_those_steps_reproduces_the_longer_sweep_of_lr_auto(tmp_path, monkeypatch):
    """The message's command gives the very curve (and suggestion) of lr: auto's second sweep."""
    import trainlab.lr_find_run
    import trainlab.step_builders
    from trainlab.builders import build, run_scope
    from trainlab.lr_finder import range_test_step

    config = imbalanced_config(tmp_path)
    sweeps: list[tuple[list[float], list[float]]] = []
    planned: list[int] = []

    def recorded(*args, **options):
        planned.append(options["num_steps"])
        sweeps.append(range_test_step(*args, **options))
        return sweeps[-1]

    def first_shows_none(lrs, losses, **options):
        if len(sweeps) == 1:
            raise NoDescentError("scripted: no descent in the first sweep")
        return suggest_lr(lrs, losses, **options)

    monkeypatch.setattr(trainlab.step_builders, "range_test_step", recorded)
    monkeypatch.setattr(trainlab.step_builders, "suggest_lr", first_shows_none)
    with run_scope(config):
        built = build(config, quiet=True)
    assert planned == [100, 240]  # each stopped where its loss diverged
    suggestion, lrs, losses = trainlab.lr_find_run.lr_find_config(config, num_steps=240)
    assert lrs == sweeps[1][0]
    np.testing.assert_allclose(losses, sweeps[1][1], rtol=1e-6)
    assert suggestion == built.notes["lr_auto"]


def test_a_loss_that_rises_within_a_decade_of_the_sweeps_start_asks_for_a_lower_start():
    """The suggestion is at most a tenth of the LR where the loss starts to rise: a sweep from 1e-3 whose loss
    rises from its 15th step (lr 4e-3) has no LR that low. It returned the sweep's first LR, above that cap."""
    lrs = np.geomspace(1e-3, 10, 100)
    steps = np.arange(100)
    losses = np.where(steps < 15, 2.0 - 0.1 * steps, 0.5 + 0.2 * (steps - 15)) + 0.001 * np.sin(steps)
    with pytest.raises(TrainingError, match=r"started to rise at lr 0\.00\d+, less than 10x the sweep's first lr "
                                            r"0\.001.*start the sweep lower \(trainlab lr-find --start-lr\)"):
        suggest_lr(lrs, losses)
