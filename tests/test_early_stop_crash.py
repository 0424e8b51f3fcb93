"""Early stopping across a crash: a resumed run never trains past its stop, and keeps the right model.

A run that early-stops is copied as a crash at each of its checkpoints would leave it
(the folder with only that checkpoint, no model, no summary), in particular the
checkpoint of the epoch that decided to stop and the one written as training ended;
and as a crash between model.safetensors and summary.json would leave it. Each copy
resumed must end exactly as the uninterrupted run: same epochs, same best epoch, same
model bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.forked_runs import copy_with_only, run_cli, run_inline, train_losses, write_config
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.engine import checkpoint

STOPPING = {
    "name": "early-stop",
    "seed": 5,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "strategy": {
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "lr": 0.01},
        "batch_size": 32,
        "epochs": 40,
        "early_stopping": {"monitor": "val_loss", "patience": 1, "min_delta": 0.02, "restore_best": True},
    },
    "metrics": ["accuracy"],
    "output": {"progress": "off",
               "checkpoint": {"every_n_steps": 12, "every_n_epochs": 1, "keep_last": 1000, "every_seconds": None, "keep_after_finish": "all"}},
    "runtime": {"num_threads": 1},
}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("early-stop")
    out = root / "run"
    assert run_inline(["train", str(write_config(root / "config.yaml", STOPPING)), "--out", str(out),
                       "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] and summary["epochs_run"] < 40 and summary["best_epoch"] < summary["epochs_run"]
    return out


def _outcome(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {"epochs_run": summary["epochs_run"], "steps": summary["steps"], "best_epoch": summary["best_epoch"],
            "stopped_early": summary["stopped_early"], "stop_reason": summary["stop_reason"],
            "val": summary["val"], "model": (run / "model.safetensors").read_bytes(),
            "train_losses": train_losses(run)}


def test_resume_from_each_late_checkpoint_stops_where_the_run_stopped(stopped, tmp_path):
    reference = _outcome(stopped)
    steps_per_epoch = reference["steps"] // reference["epochs_run"]
    folders = checkpoint.step_folders(stopped / "checkpoint")
    # from the last epoch before the stop on: the stop was decided, written, and training ended
    late = [f for f in folders if int(f.name.split("-")[1]) >= reference["steps"] - steps_per_epoch]
    assert len(late) >= 3, [f.name for f in folders]
    failures = []
    for folder in late:
        copy_dir = copy_with_only(stopped, folder, tmp_path / folder.name)
        code = run_inline(["resume", str(copy_dir), "--quiet"])
        if code != 0:
            failures.append(f"{folder.name}: exit {code}")
            continue
        outcome = _outcome(copy_dir)
        different = [key for key in reference if outcome[key] != reference[key]]
        if different:
            failures.append(f"{folder.name}: {different} differ (epochs {outcome['epochs_run']} vs "
                            f"{reference['epochs_run']})")
    assert not failures, failures


def test_a_crash_between_the_model_and_the_summary_keeps_the_stopped_model(stopped, tmp_path):
    """model.safetensors written, then killed before summary.json and run.json said finished."""
    reference = _outcome(stopped)
    copy_dir = tmp_path / "crashed"
    shutil.copytree(stopped, copy_dir)
    (copy_dir / "summary.json").unlink()
    info = json.loads((copy_dir / "run.json").read_text())
    (copy_dir / "run.json").write_text(json.dumps({**info, "status": "running"}))
    assert run_inline(["resume", str(copy_dir), "--quiet"]) == 0
    assert _outcome(copy_dir) == reference


def test_a_kill_after_the_stopping_epochs_checkpoint_resumes_to_the_same_stop(stopped, tmp_path, monkeypatch):
    """SIGKILL as training ends, after the checkpoint of the epoch that decided to stop (a forked process)."""
    reference = _outcome(stopped)
    monkeypatch.setattr(CheckpointSaver, "on_train_end", lambda self, view: os.kill(os.getpid(), signal.SIGKILL))
    out = tmp_path / "run"
    config = write_config(tmp_path / "config.yaml", STOPPING)
    assert run_cli(["train", str(config), "--out", str(out), "--quiet"], tmp_path / "log") == -signal.SIGKILL
    monkeypatch.undo()
    newest = max(checkpoint.step_folders(out / "checkpoint"), key=lambda folder: folder.name)
    parts = checkpoint.load(newest)[1]["parts"]
    assert parts["train_state"]["step"] == reference["steps"] and not parts["train_state"]["finished"]
    assert parts["control"]["should_stop"], "the stop decision is not in the checkpoint"
    assert not (out / "model.safetensors").exists()
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert _outcome(out) == reference
