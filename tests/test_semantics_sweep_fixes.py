"""Fixes from a semantics sweep, each against an independent reference.

* ``checkpoint/best/`` follows every validation the monitor sees, mid-epoch ones (``eval_every_n_steps``)
  included: it holds the model early stopping's ``restore_best`` keeps (it held the best epoch record's).
* ``reduce_on_plateau`` never takes a NaN validation as a new best (torch's ``ReduceLROnPlateau`` does
  not), and its ``mode`` defaults to the monitor's direction (``val_accuracy``: max).
* Early stopping with mid-epoch validations: its stop reason counts validations, ``best_epoch`` is
  fractional (typed so), and a ``train_loss`` monitor skips the mid-epoch records that lack it.
* L-BFGS's full-batch warning compares ``batch_size x grad_accum_steps`` with the training rows.
"""

from __future__ import annotations

import json
import math
import typing

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch.optim import lr_scheduler

import trainlab
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.cli import main
from trainlab.engine import checkpoint
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.state import Control, TrainState
from trainlab.plan_warnings import warn_if_full_batch_method_on_mini_batches
from trainlab.records import Summary
from trainlab.schedules import SCHEDULES

# ----------------------------------------------------------------------------- best/ follows every validation

MIDVAL = {  # the sweep's repro: seed 1's best validation is a mid-epoch one (step 35 of 18-step epochs)
    "name": "midval", "seed": 1,
    "data": {"source": "diabetes", "standardize_target": True},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "mse", "optimizer": {"name": "momentum", "lr": 0.05, "momentum": 0.9},
                 "batch_size": 16, "epochs": 30, "eval_every_n_steps": 5, "early_stopping": {"patience": 6}},
    "output": {"progress": "off", "checkpoint": {"every_n_epochs": 1, "every_seconds": None,
                                                 "keep_after_finish": "all"}},
    "metrics": ["mse"],
}


def test_best_checkpoint_is_the_best_validation_mid_epoch_ones_included(tmp_path):
    config = tmp_path / "midval.yaml"
    config.write_text(yaml.safe_dump(MIDVAL))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    validations = [r for r in records if "val_loss" in r]
    best = min(validations, key=lambda r: r["val_loss"])  # the reference: the lowest val_loss of any validation
    assert best.get("scope") == "step"  # a mid-epoch validation: what best/ used to miss
    manifest, _, tensors = checkpoint.load(out / "checkpoint" / checkpoint.BEST)
    assert manifest["step"] == best["step"] and manifest["val_loss"] == best["val_loss"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == best["epoch"] and summary["val"]["loss"] == pytest.approx(best["val_loss"])
    # best/ holds the weights restore_best put back, the ones model.safetensors holds
    model = load_file(out / "model.safetensors")
    assert model and all(torch.equal(tensors[f"parts.step.model.{name}"], value) for name, value in model.items())


class View:
    """What the checkpoint saver reads of a TrainerView, scripted."""

    def __init__(self) -> None:
        self.state, self.control = TrainState(), Control()
        self.weight = torch.zeros(2)

    def capture(self) -> Snapshot:
        return Snapshot({"parts": {"train_state": self.state.state_dict()}, "rng": {}}, {"w": self.weight.clone()})

    def prepare_save(self) -> bool:
        return self.control.rollback_to is None


def _validate(saver: CheckpointSaver, view: View, step: int, value: float, steps_per_epoch: int = 10) -> None:
    """A validation at ``step`` as the loop fires it: mid-epoch (a step record), or at an epoch's end."""
    view.state.step, view.weight = step, torch.full((2,), float(step))
    if step % steps_per_epoch:
        view.state.batch_in_epoch = step % steps_per_epoch
        saver.on_validation_end(view, {"scope": "step", "step": step, "epoch": step / steps_per_epoch,
                                       "val_loss": value})
    else:
        view.state.epoch, view.state.batch_in_epoch = step // steps_per_epoch, 0
        record = {"epoch": view.state.epoch, "step": step, "val_loss": value}
        saver.on_validation_end(view, record)
        saver.on_epoch_end(view, record)


@pytest.mark.parametrize("every_n_epochs", [1, 2])
def test_best_is_offered_every_validation_whatever_the_epoch_cadence(tmp_path, every_n_epochs):
    """Validations at steps 5 (mid-epoch), 10 (epoch 1), 15, 20 (epoch 2): the best of them is in best/, its
    weights those of its step, whether or not the epoch cadence saves that epoch."""
    losses = {5: 0.8, 10: 0.6, 15: 0.9, 20: 0.7}
    saver = CheckpointSaver(tmp_path, None, every_n_epochs, None, keep_last=100, warn=lambda m: None)
    view = View()
    for step, value in losses.items():
        _validate(saver, view, step, value)
    manifest, _, tensors = checkpoint.load(tmp_path / checkpoint.BEST)
    assert (manifest["step"], manifest["val_loss"]) == (10, 0.6)
    assert torch.equal(tensors["w"], torch.full((2,), 10.0)) and saver.best == 0.6


def test_a_mid_epoch_best_beats_the_epochs_and_a_vetoed_or_failed_one_is_not_kept(tmp_path, monkeypatch):
    saver = CheckpointSaver(tmp_path, None, 1, None, keep_last=100, warn=lambda m: None)
    view = View()
    _validate(saver, view, 10, 0.6)
    view.control.rollback_to = view.capture()  # a guard asks for a rollback: nothing is written
    _validate(saver, view, 13, 0.2)
    view.control.rollback_to = None
    assert checkpoint.load(tmp_path / checkpoint.BEST)[0]["step"] == 10 and saver.best == 0.6

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", disk_full)
    _validate(saver, view, 14, 0.3)
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert checkpoint.load(tmp_path / checkpoint.BEST)[0]["step"] == 10 and saver.best == 0.6  # best/ kept
    _validate(saver, view, 15, 0.5)  # better than what best/ holds, worse than the failed write's 0.3
    manifest, _, _ = checkpoint.load(tmp_path / checkpoint.BEST)
    assert (manifest["step"], manifest["epoch"], manifest["batch_in_epoch"], manifest["val_loss"]) == (15, 1, 5, 0.5)
    assert [p.name for p in checkpoint.step_folders(tmp_path)] == [checkpoint.folder_name(10)]  # no step folder


# ----------------------------------------------------------------------------- reduce_on_plateau


def _torch_lrs(values: list[float], **options) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, eps=0.0, **options)
    lrs = []
    for value in values:
        scheduler.step(value)
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def _ours(values: list[float], **options) -> list[float]:
    schedule = SCHEDULES.build({"name": "reduce_on_plateau", **options}, 100, 10)
    lrs = []
    for value in values:
        schedule.observe(value)
        lrs.append(schedule(0))
    return lrs


NAN = float("nan")


@pytest.mark.parametrize("values", [
    [NAN, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # a NaN first: it was the best, and nothing beats NaN
    [1.0, NAN, 0.9, NAN, NAN, 0.8, 0.7, 0.6],
    [NAN, NAN, NAN, 1.0, 0.9, 0.8],
])
def test_reduce_on_plateau_never_takes_nan_as_a_best_as_torch(values):
    assert _ours(values, factor=0.5, patience=1) == _torch_lrs(values, factor=0.5, patience=1)


def test_reduce_on_plateau_follows_the_monitors_direction_by_default():
    rising = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.91]  # accuracy improving every validation
    assert _ours(rising, monitor="val_accuracy", factor=0.5, patience=1) == \
        _torch_lrs(rising, mode="max", factor=0.5, patience=1) == [1.0] * len(rising)
    falling = list(reversed(rising))  # a loss improving every validation
    assert _ours(falling, factor=0.5, patience=1) == _torch_lrs(falling, mode="min", factor=0.5, patience=1)
    # mode set explicitly still wins over the monitor's direction
    assert _ours(rising, monitor="val_accuracy", mode="min", factor=0.5, patience=1) == \
        _torch_lrs(rising, mode="min", factor=0.5, patience=1)
    assert SCHEDULES.build({"name": "reduce_on_plateau", "monitor": "val_f1"}, 100, 10).mode == "max"
    assert SCHEDULES.build({"name": "reduce_on_plateau", "monitor": "train_loss"}, 100, 10).mode == "min"


def test_a_run_monitoring_val_accuracy_keeps_its_lr_while_accuracy_rises():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(4, 2), train=(x, y), val=(x, y), metrics=["accuracy"], seed=0,
                          runtime={"device": "cpu"},
                          strategy={"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1},
                                    "batch_size": 10, "epochs": 6,
                                    "schedule": {"name": "reduce_on_plateau", "monitor": "val_accuracy",
                                                 "patience": 0, "factor": 0.5}})
    accuracies = [record["val_accuracy"] for record in result.history]
    # the reference: torch's scheduler in max mode, fed the same validations, gives each epoch's LR
    expected = [0.1 * lr for lr in _torch_lrs(accuracies, mode="max", patience=0, factor=0.5)]
    assert [record["lr"] for record in result.history[1:]] == pytest.approx(expected[:-1])
    assert accuracies[1] > accuracies[0] and result.history[1]["lr"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- early stopping's wording and types

def _regression(n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return x, x.sum(1) + 0.5 * torch.randn(n, generator=generator)


def _fit_stopping(patience: int, every: int | None, monitor: str = "val_loss", epochs: int = 40):
    x, y = _regression()
    xv, yv = _regression(12, seed=9)
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    strategy = {"loss": "mse", "optimizer": {"name": "momentum", "lr": 0.08, "momentum": 0.9}, "batch_size": 4,
                "epochs": epochs, "early_stopping": {"monitor": monitor, "patience": patience}}
    if every:
        strategy["eval_every_n_steps"] = every
    return trainlab.fit(model, train=(x, y), val=(xv, yv), strategy=strategy, seed=3, runtime={"device": "cpu"})


def test_early_stopping_counts_validations_and_says_so_with_mid_epoch_ones():
    result = _fit_stopping(patience=3, every=3)
    reason = result.summary["stop_reason"]
    assert result.summary["stopped_early"] and "did not improve for 3 validations" in reason
    # the reference: the validations in order (step records and epoch records, one per step), the rule applied
    validations = sorted({r["step"]: r for r in [*result.step_records, *result.history] if "val_loss" in r}.items())
    best_value, best_epoch, wait = math.inf, None, 0
    for _, record in validations:
        if record["val_loss"] < best_value:
            best_value, best_epoch, wait = record["val_loss"], record["epoch"], 0
        else:
            wait += 1
            if wait >= 3:
                break
    assert result.summary["best_epoch"] == best_epoch and f"at epoch {best_epoch})" in reason
    plain = _fit_stopping(patience=3, every=None)
    assert plain.summary["stopped_early"] and "did not improve for 3 epochs" in plain.summary["stop_reason"]


def test_a_fractional_best_epoch_is_typed_as_one():
    assert typing.get_type_hints(Summary)["best_epoch"] == float | None
    assert typing.get_type_hints(EarlyStopping.evaluate)["epoch"] is float
    stopping = EarlyStopping(patience=1)
    stopping.evaluate(0.5, 1.5)
    assert stopping.evaluate(0.6, 2)[1] == "early stopping: val_loss did not improve for 1 epoch (best 0.5 at epoch 1.5)"


def test_a_stop_after_nan_validations_only_says_so():
    """Every validation NaN (never an improvement) up to the patience: the reason names no best (it raised a
    TypeError formatting the missing best)."""
    stopping = EarlyStopping(patience=2)
    assert stopping.evaluate(NAN, 1) == (False, None)
    assert stopping.evaluate(NAN, 2) == (True, "early stopping: val_loss did not improve for 2 epochs (no value so far was a number)")
    assert stopping.best_epoch is None


def test_the_validations_wording_survives_a_resume():
    """The counting word is state: a run resumed after its mid-epoch validations says "validations" too."""
    stopping = EarlyStopping(patience=2, restore_best=False)
    view = type("V", (), {"control": Control(), "state": TrainState()})()
    stopping.on_validation_end(view, {"scope": "step", "epoch": 0.5, "val_loss": 1.0})
    resumed = EarlyStopping(patience=2, restore_best=False)
    resumed.load_state_dict(json.loads(json.dumps(stopping.state_dict())))
    for epoch in (1, 2):
        resumed.on_validation_end(view, {"epoch": epoch, "val_loss": 2.0})
    assert view.control.should_stop and "did not improve for 2 validations" in view.control.stop_reason
    assert "mid_epoch" not in EarlyStopping().state_dict()  # checkpoints without mid-epoch validations as before


def test_a_train_loss_monitor_skips_the_mid_epoch_validations_that_do_not_record_it():
    result = _fit_stopping(patience=2, every=3, monitor="train_loss", epochs=3)  # was a KeyError
    assert result.summary["best_epoch"] in [record["epoch"] for record in result.history]


# ----------------------------------------------------------------------------- L-BFGS's full-batch warning

@pytest.mark.parametrize(("batch_size", "accum", "warned"), [
    (10, 2, False), (5, 4, False), (7, 3, False), (20, 1, False), (5, 2, True), (19, 1, True), (6, 3, True)])
def test_lbfgs_is_warned_of_only_when_a_step_sees_fewer_rows_than_the_training_set(capsys, batch_size, accum, warned):
    warn_if_full_batch_method_on_mini_batches({"name": "lbfgs"}, batch_size, 20, accum)
    err = capsys.readouterr().err
    assert ("is a full-batch method" in err) == warned
    if warned and accum > 1:
        assert f"batch_size {batch_size} x grad_accum_steps {accum} = {batch_size * accum} < 20" in err


def test_a_full_batch_lbfgs_run_by_accumulation_is_not_warned_of(capsys):
    x, y = _regression(20, seed=2)
    for batch_size, accum, warned in ((10, 2, False), (5, 2, True)):
        torch.manual_seed(1)
        trainlab.fit(torch.nn.Linear(4, 1), train=(x, y), seed=0, runtime={"device": "cpu"},
                     strategy={"loss": "mse", "optimizer": {"name": "lbfgs"}, "batch_size": batch_size,
                               "grad_accum_steps": accum, "epochs": 1})
        assert ("is a full-batch method" in capsys.readouterr().err) == warned


def test_reduce_on_plateau_on_train_loss_skips_the_mid_epoch_validations_that_do_not_record_it():
    """A mid-epoch validation records val_* only: a train_loss plateau schedule reads epoch records (was a KeyError)."""
    x, y = _regression()
    xv, yv = _regression(12, seed=9)
    torch.manual_seed(5)
    strategy = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": 4, "epochs": 3,
                "eval_every_n_steps": 3,
                "schedule": {"name": "reduce_on_plateau", "monitor": "train_loss", "patience": 0, "factor": 0.5}}
    result = trainlab.fit(torch.nn.Linear(4, 1), train=(x, y), val=(xv, yv), strategy=strategy, seed=3,
                          runtime={"device": "cpu"})
    assert len(result.history) == 3 and result.step_records
