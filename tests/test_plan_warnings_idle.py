"""Settings that provably do nothing over a run's length are warned of (trainlab.plan_warnings.warn_if_idle):
class weights that cancel at batch_size 1, a step / multistep schedule whose decays lie past the last
epoch, an early stopping or reduce_on_plateau patience no run this long exhausts. Each claim is checked
against what the run then does (identical weights, a constant LR, every step trained), and the counts
against the engine's own validations; plus did-you-mean for a misspelt batch_size 'full'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainlab
from trainlab.errors import ConfigError
from trainlab.plan_warnings import run_validations

N_TRAIN = 30
BASE = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": 10, "epochs": 10}


def _data(n: int = N_TRAIN, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(scale=2.0, size=(3, 4))[y] + rng.normal(size=(n, 4))).astype(np.float32), y


def _fit(strategy: dict, callbacks=(), n: int = N_TRAIN, seed: int = 0) -> tuple[trainlab.FitResult, torch.nn.Module]:
    x, y = _data(n)
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, int(y.max()) + 1)
    result = trainlab.fit(model, (x, y), strategy, val=_data(15, seed=1), callbacks=list(callbacks))
    return result, model


def _warnings(capsys, about: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:") and about in line]


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().double().numpy() for p in model.parameters()]


# ----------------------------------------------------------------------------------------------- class weights

WEIGHTED = {"name": "cross_entropy", "class_weights": [1.0, 1.0, 100.0]}


def test_class_weights_at_batch_size_1_are_warned_of_and_change_nothing(capsys):
    one_row = dict(BASE, batch_size=1, epochs=1)
    _, weighted = _fit(dict(one_row, loss=WEIGHTED))
    lines = _warnings(capsys, "class_weights")
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: strategy.loss.class_weights [1.0, 1.0, 100.0] cancel at batch_size 1")
    assert "grad_accum_steps" in lines[0] and "batch_size 2 or more" in lines[0]
    _, plain = _fit(one_row)
    for a, b in zip(_weights(weighted), _weights(plain), strict=True):  # the claim: as without them
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("changes", [{"batch_size": 2}, {"grad_accum_steps": 2}], ids=["batch2", "accum2"])
def test_class_weights_act_with_two_rows_per_step_and_are_not_warned_of(capsys, changes):
    strategy = {**BASE, "batch_size": 1, "epochs": 1, **changes}
    _, weighted = _fit(dict(strategy, loss=WEIGHTED))
    assert not _warnings(capsys, "class_weights")
    _, plain = _fit(strategy)
    assert max(np.abs(a - b).max() for a, b in zip(_weights(weighted), _weights(plain), strict=True)) > 1e-3


def test_pos_weight_scales_a_mean_over_rows_and_acts_at_batch_size_1(capsys):
    x, y = _data()
    y = (y == 2).astype(np.int64)
    trained = []
    for loss in ({"name": "bce", "pos_weight": 5.0}, "bce"):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        trainlab.fit(model, (x, y), dict(BASE, loss=loss, batch_size=1, epochs=1))
        trained.append(_weights(model)[0])
    assert not _warnings(capsys, "cancel")
    assert np.abs(trained[0] - trained[1]).max() > 1e-3


# ----------------------------------------------------------------------------------------------- schedules

def _lrs(result: trainlab.FitResult) -> set[float]:
    return {record["lr"] for record in result.history}


@pytest.mark.parametrize(("schedule", "warned"), [
    ({"name": "step", "step_size": 10}, True),  # 10 epochs: epoch indices 0..9 never reach 10
    ({"name": "step"}, True),  # the factory's default step_size is 10
    ({"name": "step", "step_size": 9}, False),
    ({"name": "multistep", "milestones": [30, 60]}, True),
    ({"name": "multistep", "milestones": [10]}, True),
    ({"name": "multistep", "milestones": [9]}, False),
])
def test_step_schedules_that_never_decay_are_warned_of(capsys, schedule, warned):
    result, _ = _fit(dict(BASE, schedule=schedule))
    lines = _warnings(capsys, "never decays")
    assert len(lines) == int(warned), lines
    assert (len(_lrs(result)) == 1) == warned  # the claim: the LR never moves; unwarned, it does
    if warned:
        assert "the run trains 10 epochs (30 steps)" in lines[0] and "below 10" in lines[0]


def test_multistep_milestones_past_the_run_are_named(capsys):
    result, _ = _fit(dict(BASE, schedule={"name": "multistep", "milestones": [4, 10, 30]}))
    lines = _warnings(capsys, "never reached")
    assert len(lines) == 1 and "milestones [10, 30] (epochs) are never reached" in lines[0], lines
    assert "decays 1 time, not 3" in lines[0]
    assert len(_lrs(result)) == 2


@pytest.mark.parametrize(("step_size", "warned"), [(4, True), (3, False)])
def test_max_steps_shortens_the_run_the_decay_is_measured_on(capsys, step_size, warned):
    result, _ = _fit(dict(BASE, max_steps=12, schedule={"name": "step", "step_size": step_size}))
    assert len(_warnings(capsys, "never decays")) == int(warned)
    assert (len(_lrs(result)) == 1) == warned


# ----------------------------------------------------------------------------------------------- patience

class CountValidations(trainlab.Callback):
    """The validations early stopping and reduce_on_plateau read: those whose record holds the monitor."""

    def __init__(self, monitor: str = "val_loss"):
        self.monitor, self.count = monitor, 0

    def on_validation_end(self, view, record):
        self.count += self.monitor in record


@pytest.mark.parametrize(("epochs", "max_steps", "every", "monitor"), [
    (10, None, None, "val_loss"), (4, None, 2, "val_loss"), (4, None, 3, "val_loss"), (5, 13, 2, "val_loss"),
    (5, 14, 7, "val_loss"), (5, 13, 2, "train_loss"), (3, None, 4, "val_accuracy")])
def test_run_validations_counts_what_the_engine_validates(epochs, max_steps, every, monitor):
    counter = CountValidations(monitor)
    strategy = dict(BASE, epochs=epochs, max_steps=max_steps, eval_every_n_steps=every)
    result, _ = _fit(strategy, [counter])
    steps = result.summary["steps"]
    mid = every if monitor.startswith("val_") else None
    assert counter.count == run_validations(steps, 3, mid), (steps, counter.count)


STILL = {"name": "sgd", "lr": 1e-30}  # no weight moves: the monitor never improves after its first value


@pytest.mark.parametrize(("patience", "every", "warned"), [
    (20, None, True), (10, None, True), (9, None, True), (8, None, False), (10, 2, False), (18, 2, False),
    (19, 2, True), (20, 2, True)])
def test_early_stopping_patience_no_run_this_long_exhausts_is_warned_of(capsys, patience, every, warned):
    """A flat monitor's first value is the best: it stops at validation patience + 1, which cuts the run
    short only before the last (patience 8 of 10 validations, 18 of 20); the fix names that patience."""
    strategy = dict(BASE, optimizer=STILL, eval_every_n_steps=every, early_stopping={"patience": patience})
    result, _ = _fit(strategy)
    lines = _warnings(capsys, "early_stopping.patience")
    assert len(lines) == int(warned), lines
    validations = 10 if every is None else 20  # 10 ends + 15 multiples of 2 - 5 of 6
    if not warned:  # the claim's other side: the run is cut short
        assert result.summary["steps"] < 30
        return
    # the claim: even a monitor that never improves trains every step
    assert result.summary["steps"] == 30
    assert "can never stop the run early" in lines[0] and "restore_best still keeps" in lines[0]
    assert f"in {validations} validations" in lines[0]
    assert f"at validation {patience + 1} at the earliest" in lines[0]
    assert f"set patience to {validations - 2} or less" in lines[0]


def test_early_stopping_on_train_loss_counts_the_epoch_records_alone(capsys):
    strategy = dict(BASE, eval_every_n_steps=2, early_stopping={"patience": 10, "monitor": "train_loss"})
    _fit(strategy)
    lines = _warnings(capsys, "early_stopping.patience")
    assert len(lines) == 1 and "reads train_loss in 10 validations (once per epoch, 10 epochs)" in lines[0]


@pytest.mark.parametrize(("patience", "warned"), [(10, True), (9, True), (8, True), (7, False)])
def test_reduce_on_plateau_that_never_reduces_is_warned_of(capsys, patience, warned):
    """10 validations, the first the best: a flat monitor lowers the LR at validation patience + 2, which
    trains a step only before the last (patience 7); patience 8 lowers it at the last validation, after which
    no step trains, so it is warned of (only a NaN first value would lower it one validation sooner)."""
    result, _ = _fit(dict(BASE, optimizer=STILL, schedule={"name": "reduce_on_plateau", "patience": patience}))
    lines = _warnings(capsys, "reduce_on_plateau")
    assert len(lines) == int(warned), lines
    if warned:  # the claim: even a monitor that never improves leaves the LR as it is
        assert len(_lrs(result)) == 1
        assert f"lowers the LR after more than patience={patience} validations" in lines[0]
        assert "in 10 validations" in lines[0] and "set patience to 7 or less" in lines[0]
    if patience == 7:
        assert len(_lrs(result)) == 2


# ----------------------------------------------------------------------------------------------- batch_size

@pytest.mark.parametrize("word", ["fulll", "Full", "FULL", "ful"])
def test_a_misspelt_full_batch_size_names_full(word):
    with pytest.raises(ConfigError, match=r"must be a positive int or 'full'; got '.*'; did you mean 'full'\?"):
        _fit(dict(BASE, batch_size=word))
