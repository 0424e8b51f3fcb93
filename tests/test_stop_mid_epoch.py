"""A stop inside an epoch: a callback's stop ends the epoch as the step limit does, with a partial-epoch
record whose validation is the summary's; a signal leaves the epoch open for the resume; and a run
resumed from the checkpoint its stopping step wrote writes the same partial record."""

from __future__ import annotations

import copy
import json
import signal

import torch
from sklearn.datasets import load_iris

import trainlab
from tests.conftest import DIGITS_MLP
from tests.forked_runs import records
from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints
from trainlab.callbacks.checkpoint_saver import CheckpointSaver

STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 10}


def _iris():
    x, y = load_iris(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y  # 150 rows: 5 steps of 32 an epoch


class StopAtStep(trainlab.Callback):
    def __init__(self, at: int, interrupt: bool = False):
        self.at, self.interrupt = at, interrupt

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at:
            if self.interrupt:  # what SignalStop does on a pending SIGTERM (no control.stop: not the run's decision)
                view.control.interrupted_by = signal.SIGTERM
            else:
                view.control.stop(f"stopped at step {self.at}")


def _without_time(history):
    return [{k: v for k, v in record.items() if k != "elapsed_s"} for record in history]


def test_a_callback_stop_mid_epoch_ends_with_the_partial_epochs_record_as_max_steps_does():
    """Reference: the same run ended by ``max_steps=7`` (its partial-epoch record was already written)."""
    x, y = _iris()
    torch.manual_seed(0)
    stopped = trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, val=(x, y), callbacks=[StopAtStep(7)])
    torch.manual_seed(0)
    limited = trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "max_steps": 7}, val=(x, y))
    assert [(r["epoch"], r["step"]) for r in stopped.history] == [(1, 5), (2, 7)]
    assert _without_time(stopped.history) == _without_time(limited.history)
    summary = stopped.summary
    assert (summary["steps"], summary["epochs_run"], summary["stopped_early"]) == (7, 2, True)
    assert summary["stop_reason"] == "stopped at step 7"
    last = stopped.history[-1]
    assert summary["val"] == {k.removeprefix("val_"): v for k, v in last.items() if k.startswith("val_")}


def test_a_signal_mid_epoch_leaves_the_epoch_open_for_the_resume():
    """An interruption is not the run's end: no partial record (the resumed run writes the epoch's at its end)."""
    x, y = _iris()
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, val=(x, y), callbacks=[StopAtStep(7, interrupt=True)])
    assert [(r["epoch"], r["step"]) for r in result.history] == [(1, 5)]
    assert result.summary["steps"] == 7


def test_a_run_resumed_from_its_stopping_steps_checkpoint_writes_the_same_partial_record(tmp_path, monkeypatch):
    """The checkpoint written by the last step's hooks (here every 9 steps, and max_steps 9 of 36 an epoch)
    holds a state where the run is done but the partial epoch has no record yet; resumed from it (as after a
    kill before training ended), the run writes that record as the uninterrupted one did. The run's final
    checkpoint, written as training ends, would replace it in the same folder: that write is left out."""
    config = copy.deepcopy(DIGITS_MLP)
    config["strategy"].update(epochs=3, max_steps=9)
    monkeypatch.setattr(CheckpointSaver, "on_train_end", lambda self, view: None)
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=9)
    monkeypatch.undo()
    reference = [r for r in records(full) if "epoch" in r]
    assert [(r["epoch"], r["step"]) for r in reference] == [(1, 9)], reference
    resumed = resume_a_copy(full, checkpoints[9], tmp_path)
    assert _without_time(records(resumed)) == _without_time(records(full))
    assert json.loads((resumed / "summary.json").read_text())["epochs_run"] == 1
