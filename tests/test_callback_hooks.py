"""What the loop does with what a user's callback asks and adds: a stop asked in ``on_epoch_start`` or
``on_step_start`` takes no further step (the references: the same stop asked one hook earlier, at the
previous epoch's or step's end, and ``max_steps``), values a callback adds to a record become JSON numbers or
are refused at that hook, and methods named like another framework's hooks are warned of."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

import trainlab
from tests.conftest import DIGITS_MLP
from tests.forked_runs import records
from trainlab.callbacks.base import Callback
from trainlab.callbacks.callback_list import CallbackList
from trainlab.callbacks.hook_rules import unknown_hooks
from trainlab.errors import ConfigError
from trainlab.records import metrics_file_records

# 150 iris rows at 32 a step: 5 steps an epoch; a constant LR, so a record's lr is the same at any step
STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": 32, "epochs": 4}


def _iris():
    x, y = load_iris(return_X_y=True)
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32), y


class Stop(trainlab.Callback):
    """Asks for a stop in hook ``hook`` once ``view.state``'s ``counter`` (epoch or step) is ``at``; counts the
    steps started and taken and the epoch records seen."""

    def __init__(self, hook: str, at: int):
        self.hook, self.at = hook, at
        self.step_starts, self.steps_taken, self.epoch_records = 0, 0, 0

    def _maybe_stop(self, view, hook: str, counter: int) -> None:
        if hook == self.hook and counter == self.at:
            view.control.stop("asked")

    def on_train_start(self, view):
        self._maybe_stop(view, "on_train_start", view.state.step)

    def on_epoch_start(self, view):
        self._maybe_stop(view, "on_epoch_start", view.state.epoch)

    def on_step_start(self, view):
        self.step_starts += 1
        self._maybe_stop(view, "on_step_start", view.state.step)

    def on_step_end(self, view, loss):
        self.steps_taken += 1
        self._maybe_stop(view, "on_step_end", view.state.step)

    def on_epoch_end(self, view, record):
        self.epoch_records += 1
        self._maybe_stop(view, "on_epoch_end", view.state.epoch)


def _fit(strategy=STRATEGY, callbacks=()):
    x, y = _iris()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    result = trainlab.fit(model, (x, y), strategy, val=(x, y), callbacks=list(callbacks))
    return result, {k: v.clone() for k, v in model.state_dict().items()}


def _same_run(result, weights, reference, reference_weights, keys=("steps", "epochs_run", "stopped_early", "val")):
    untimed = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in result.history]
    assert untimed == [{k: v for k, v in r.items() if k != "elapsed_s"} for r in reference.history]
    for key in keys:
        assert result.summary[key] == reference.summary[key], key
    assert all(torch.equal(weights[k], reference_weights[k]) for k in weights)


@pytest.mark.parametrize("asked, reference", [
    (("on_epoch_start", 2), ("on_epoch_end", 2)),   # before epoch 3: as a stop at epoch 2's end
    (("on_epoch_start", 0), ("on_train_start", 0)),  # before the first epoch: as a stop before training
    (("on_step_start", 10), ("on_epoch_end", 2)),   # before epoch 3's first step: no record of 0 steps
    (("on_step_start", 7), ("on_step_end", 7)),      # mid-epoch: the partial record at step 7
])
def test_a_stop_asked_before_an_epoch_or_a_step_takes_no_further_step(asked, reference):
    """It trained one more step (and wrote a 1-step partial-epoch record): Keras' stop_training and Lightning's
    should_stop, asked before a batch, do not run it."""
    stop, same = Stop(*asked), Stop(*reference)
    result, weights = _fit(callbacks=[stop])
    expected, expected_weights = _fit(callbacks=[same])
    _same_run(result, weights, expected, expected_weights)
    assert (stop.steps_taken, stop.epoch_records) == (same.steps_taken, same.epoch_records)
    # an epoch stopped in on_epoch_start starts no step (the LR adapter's, a freeze schedule's hooks included)
    assert stop.step_starts == same.step_starts + (asked[0] == "on_step_start")
    assert result.summary["stop_reason"] == "asked"


def test_a_stop_in_on_step_start_ends_as_max_steps_does():
    result, weights = _fit(callbacks=[Stop("on_step_start", 7)])
    limited, limited_weights = _fit({**STRATEGY, "max_steps": 7})
    _same_run(result, weights, limited, limited_weights, keys=("steps", "epochs_run", "val"))
    assert [(r["epoch"], r["step"]) for r in result.history] == [(1, 5), (2, 7)]


class StopBeforeStep(Callback):
    name = "stop_before"

    def on_step_start(self, view):
        if view.state.step == 7:
            view.control.stop("asked before step 8")


def test_a_run_resumed_before_a_stop_asked_in_on_step_start_ends_as_the_whole_run(tmp_path, monkeypatch):
    """Resumed from the checkpoint of step 5 or 7 (written at those steps' ends, before the stop was asked),
    the run asks for it again at step 8's start and writes the same records."""
    from trainlab.callbacks.checkpoint_saver import CheckpointSaver
    from trainlab.experiment import train
    from trainlab.run_resume import resume

    config = copy.deepcopy(DIGITS_MLP)
    config["output"]["checkpoint"] = {"every_n_steps": 1, "keep_last": 100, "every_seconds": None,
                                      "keep_after_finish": "all"}
    # the final checkpoint, written as training ends, would replace step 7's: left out
    monkeypatch.setattr(CheckpointSaver, "on_train_end", lambda self, view: None)
    summary, full = train(config, tmp_path / "full", quiet=True, callbacks=[StopBeforeStep()])
    assert (summary["steps"], summary["stop_reason"]) == (7, "asked before step 8")
    untimed = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records(full)]
    assert [(r["epoch"], r["step"]) for r in untimed if "epoch" in r] == [(1, 7)]
    for step in (5, 7):
        copy_dir = tmp_path / f"from-{step}"
        shutil.copytree(full, copy_dir, ignore=shutil.ignore_patterns("model.safetensors", "best"))
        for other in (copy_dir / "checkpoint").glob("step-*"):
            if int(other.name.split("-")[1]) != step:
                shutil.rmtree(other)
        info = json.loads((copy_dir / "run.json").read_text())
        (copy_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
        resumed_summary, _ = resume(copy_dir, quiet=True, callbacks=[StopBeforeStep()])
        assert resumed_summary["steps"] == 7
        assert [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records(copy_dir)] == untimed
        assert (copy_dir / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


class AddValues(trainlab.Callback):
    """Adds what a Keras user puts in ``logs``: a float32 metric, a 0-d tensor, a NumPy int, a list of them."""

    def on_epoch_end(self, view, record):
        record["val_custom"] = np.float32(0.5)
        record["val_tensor"] = torch.tensor(0.25, requires_grad=True) * 1
        record["count"] = np.int64(view.state.epoch)
        record["per_class"] = [np.float32(0.125), torch.tensor(1.0)]

    def on_step_end(self, view, loss):
        if view.state.step == 3:
            view.log({"step": view.state.step, "my_loss": loss})  # a 0-d tensor, as the hook gets it


def test_numpy_scalars_and_zero_d_tensors_a_callback_adds_are_recorded_as_numbers(tmp_path):
    """They made writing metrics.jsonl fail with a bare TypeError after training, and fit removed its folder."""
    x, y = _iris()
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "epochs": 2}, val=(x, y),
                          callbacks=[AddValues()], out=tmp_path / "fit")
    for number, record in enumerate(result.history, 1):
        assert (record["val_custom"], record["val_tensor"], record["count"]) == (0.5, 0.25, number)
        assert record["per_class"] == [0.125, 1.0]
        assert [type(record[k]) for k in ("val_custom", "val_tensor", "count")] == [float, float, int]
    (logged,) = result.step_records
    assert type(logged["my_loss"]) is float
    lines = [json.loads(line) for line in (tmp_path / "fit" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_custom"] for r in lines if "epoch" in r] == [0.5, 0.5]
    assert [r for r in lines if "my_loss" in r] == [logged]


class AddSet(trainlab.Callback):
    name = "adds_a_set"

    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, view, record):
        self.epochs += 1
        record["val_tags"] = {"a", "b"}


def test_a_value_json_cannot_hold_is_refused_at_the_epoch_naming_the_key_and_the_callback(tmp_path):
    x, y = _iris()
    adds = AddSet()
    with pytest.raises(ConfigError, match=r"record key 'val_tags' holds a set, put there by callback 'adds_a_set' "
                                          r"\(on_epoch_end\)") as caught:
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, val=(x, y), callbacks=[adds])
    assert adds.epochs == 1  # refused at the first epoch, not after training
    assert "\n" not in str(caught.value)


def test_a_config_run_refused_for_a_callbacks_value_keeps_the_records_written(tmp_path):
    """The bad value is taken out as it is refused: the run folder's metrics.jsonl, written as training ends,
    holds the epoch record."""
    from trainlab.experiment import train

    with pytest.raises(ConfigError, match="val_tags"):
        train(DIGITS_MLP, tmp_path / "run", quiet=True, callbacks=[AddSet()])
    written = records(tmp_path / "run")
    assert [r["epoch"] for r in written if "epoch" in r] == [1]
    assert "val_tags" not in written[-1]


def test_early_stopping_on_a_metric_the_run_does_not_list_says_to_list_it():
    """monitor val_roc_auc without roc_auc in metrics was offered 'val_recall'."""
    x, y = _iris()
    strategy = {**STRATEGY, "early_stopping": {"monitor": "val_roc_auc", "patience": 2}}
    with pytest.raises(ConfigError, match=r"monitors 'val_roc_auc', which is not recorded; add 'roc_auc' to the "
                                          r"run's metrics \(metrics: \[\.\.\.\] in a config, metrics=\[\.\.\.\] in "
                                          r"fit\) to record it \(available: "):
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=(x, y))


def test_a_refused_value_of_a_type_starting_with_a_vowel_is_an_object():
    with pytest.raises(ConfigError, match=r"record key 'val_bad' holds an object, put there by"):
        metrics_file_records([{"epoch": 1, "step": 4, "val_bad": object()}], [], [])


def test_the_metrics_writer_makes_numbers_of_numpy_and_tensor_values_and_names_a_bad_key():
    history = [{"epoch": 1, "step": 2, "a": np.float32(1.5), "b": torch.tensor(2), "c": (np.bool_(True), None)}]
    assert metrics_file_records(history, [], []) == [{"epoch": 1, "step": 2, "a": 1.5, "b": 2, "c": [True, None]}]
    assert type(history[0]["a"]) is np.float32  # the caller's record is left as it is
    with pytest.raises(ConfigError, match=r"record key 'w' holds a torch.Tensor shaped \(3,\), put there by a "
                                          r"callback \(the record of step 4\)"):
        metrics_file_records([{"epoch": 1, "step": 4, "w": torch.zeros(3)}], [], [])


class Lightningish(trainlab.Callback):
    def on_train_epoch_end(self, view, *args):
        raise AssertionError("never called")

    def on_batch_end(self, view, *args):
        raise AssertionError("never called")

    def on_epoch_ennd(self, view, record):
        raise AssertionError("never called")

    def on_step_end(self, view, loss):  # a trainlab hook: no warning
        pass

    def helper(self):  # not named like a hook: no warning
        pass


def test_methods_named_like_another_frameworks_hooks_are_warned_of_once_with_trainlabs_hook(capsys):
    CallbackList([Lightningish()])
    lines = capsys.readouterr().err.splitlines()
    assert all(line.startswith("warning: ") for line in lines)  # trainlab.notices, as every trainlab warning
    messages = sorted(line.removeprefix("warning: ") for line in lines if "no trainlab hook" in line)
    assert len(messages) == 3
    assert messages[0].startswith("callback Lightningish has a method on_batch_end, which is no trainlab hook and "
                                  "is never called; did you mean 'on_step_end'?")
    assert "method on_epoch_ennd," in messages[1] and "did you mean 'on_epoch_end'?" in messages[1]
    assert "method on_train_epoch_end," in messages[2] and "did you mean 'on_epoch_end'?" in messages[2]
    CallbackList([Lightningish()])  # once per class: a second list (fit's, after the check) says nothing
    assert capsys.readouterr().err == ""


class Kerasish(trainlab.Callback):
    def on_epoch_end(self, epoch, logs=None):  # Keras's parameters: takes (view, record), so it was called, unsaid
        pass

    def on_train_start(self, logs=None):
        pass

    def on_step_end(self, view, loss):  # trainlab's: no warning
        pass


def test_a_hook_with_keras_parameter_names_is_warned_of_once_saying_what_it_is_given(capsys):
    CallbackList([Kerasish()])
    assert capsys.readouterr().err.splitlines() == [
        "warning: callback Kerasish's on_train_start(self, logs=None) names its parameters as Keras's hooks do, but "
        "trainlab calls it as on_train_start(self, view): its 'logs' is the trainer's view (view.state.epoch and "
        "view.state.step are the counts)",
        "warning: callback Kerasish's on_epoch_end(self, epoch, logs=None) names its parameters as Keras's hooks do, "
        "but trainlab calls it as on_epoch_end(self, view, record): its 'epoch' is the trainer's view "
        "(view.state.epoch and view.state.step are the counts; record holds the logs)"]
    CallbackList([Kerasish()])
    assert capsys.readouterr().err == ""


def test_trainlabs_own_callbacks_have_no_method_named_like_a_hook_that_is_none():
    import importlib
    import pkgutil

    import trainlab.callbacks

    for module in pkgutil.iter_modules(trainlab.callbacks.__path__):
        importlib.import_module(f"trainlab.callbacks.{module.name}")

    def subclasses(kind):
        for sub in kind.__subclasses__():
            yield sub
            yield from subclasses(sub)

    own = [kind for kind in subclasses(Callback) if kind.__module__.startswith("trainlab.")]
    assert len(own) > 8
    assert {kind.__name__: unknown_hooks(object.__new__(kind)) for kind in own} == {kind.__name__: [] for kind in own}
