"""A signal at the step where the run itself decides to stop: the interrupted run, resumed, ends there.

A SIGTERM (or Ctrl-C) ends the process after a checkpoint, but it is not the run's decision to stop. When a
callback's stop lands at the same step (a user's callback), or at the validation of the epoch that step
closes (early stopping), the checkpoint must carry that stop: the resumed run ends at once with the stop's
reason and record. Reference: the same run never interrupted -- identical records, summary and model bytes.
The signal is a real SIGTERM the process sends itself as the step starts; SignalStop turns it into
``interrupted_by`` at that step's end.
"""

from __future__ import annotations

import copy
import json
import os
import signal
from pathlib import Path

import pytest

import trainlab
from trainlab.errors import Interrupted
from trainlab.experiment import train
from trainlab.run_resume import resume

CONFIG = {
    "name": "signal-with-stop",
    "seed": 0,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 32,
                 "epochs": 4},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 1000, "keep_last": 5, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}
EARLY_STOPPING = {"monitor": "val_loss", "patience": 0, "min_delta": 10.0}  # stops at epoch 2's validation


class StopAt(trainlab.Callback):
    """The run's own stop at step ``at``."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at:
            view.control.stop(f"user stop at {self.at}")


class SigtermDuring(trainlab.Callback):
    """SIGTERM to this process as step ``at`` starts (SignalStop's handler keeps it for that step's end)."""

    def __init__(self, at: int):
        self.at = at

    def on_step_start(self, view) -> None:
        if view.state.step == self.at - 1:
            os.kill(os.getpid(), signal.SIGTERM)


def _outcome(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    records = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in lines]
    return {"records": records, "model": (run / "model.safetensors").read_bytes(),
            **{k: summary[k] for k in ("steps", "epochs_run", "stopped_early", "stop_reason", "val")}}


def _interrupted_then_resumed(config: dict, at: int, user_callbacks: list, root: Path) -> Path:
    with pytest.raises(Interrupted):
        train(copy.deepcopy(config), out=root / "interrupted", quiet=True, callbacks=[*user_callbacks, SigtermDuring(at)])
    run = root / "interrupted"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert not (run / "summary.json").exists()
    resume(run, quiet=True, callbacks=user_callbacks)
    return run


def test_a_user_stop_at_the_signals_step_mid_epoch_is_where_the_resumed_run_ends(tmp_path):
    at = 45  # inside epoch 2 (36 steps an epoch)
    _, reference = train(copy.deepcopy(CONFIG), out=tmp_path / "reference", quiet=True, callbacks=[StopAt(at)])
    expected = _outcome(reference)
    assert (expected["steps"], expected["stop_reason"], expected["stopped_early"]) == (at, f"user stop at {at}", True)
    assert _outcome(_interrupted_then_resumed(CONFIG, at, [StopAt(at)], tmp_path)) == expected


def test_early_stopping_at_the_validation_of_the_epoch_a_signal_ended_is_where_the_resumed_run_ends(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["strategy"]["early_stopping"] = EARLY_STOPPING
    _, reference = train(copy.deepcopy(config), out=tmp_path / "reference", quiet=True)
    expected = _outcome(reference)
    assert expected["stopped_early"] and expected["epochs_run"] < CONFIG["strategy"]["epochs"], expected["stop_reason"]
    last_step = expected["steps"]  # the last step of the epoch whose validation decided to stop
    assert _outcome(_interrupted_then_resumed(config, last_step, [], tmp_path)) == expected
