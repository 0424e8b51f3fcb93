"""SIGINT/SIGTERM while a run finishes: a clean exit with one message, the run complete or resumable.

The signal is sent by the (forked) training process to itself at two late moments: while the
final checkpoint is written (inside ``fit``) and during the final evaluation (the summary's
val/test metrics, after ``fit``). Either the run completes (exit 0, a warning) or it stops
with exit 128 + signal and one ``error:`` line saying how to continue; never a traceback,
never a silent death. Resumed, it ends with the model of a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import trainlab.experiment
from tests.forked_runs import fork_cli, run_inline, status, wait, write_config
from trainlab.callbacks.checkpoint_saver import CheckpointSaver

CONFIG = {
    "name": "finish",
    "seed": 1,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.2},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 32,
                 "epochs": 3},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 10, "keep_last": 2, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("finish-reference")
    out = root / "run"
    assert run_inline(["train", str(write_config(root / "config.yaml", CONFIG)), "--out", str(out), "--quiet"]) == 0
    return (out / "model.safetensors").read_bytes()


def _signal_self_then(original, signum: int):
    def wrapped(*args, **kwargs):
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler runs here, in the middle of the work
        return original(*args, **kwargs)

    return wrapped


# experiment.run_training installs the signal handlers around trainer.fit() only; the final evaluation runs


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["final_checkpoint", "final_evaluation"])
def test_a_signal_while_finishing_exits_cleanly_and_the_run_completes(moment, signum, reference, tmp_path,
                                                                      monkeypatch):
    if moment == "final_checkpoint":
        monkeypatch.setattr(CheckpointSaver, "on_train_end",
                            _signal_self_then(CheckpointSaver.on_train_end, signum))
    else:
        monkeypatch.setattr(trainlab.experiment, "summarize", _signal_self_then(trainlab.experiment.summarize, signum))
    out = tmp_path / "run"
    log = tmp_path / "stderr.log"
    config = write_config(tmp_path / "config.yaml", CONFIG)
    code = wait(fork_cli(["train", str(config), "--out", str(out)], log))
    monkeypatch.undo()
    err = log.read_text()
    assert "Traceback" not in err, err
    assert code in (0, 128 + signum), f"exit {code}: {err}"
    if code == 0:
        assert status(out) == "finished" and "received" in err, err
    else:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "trainlab resume" in errors[0], err
        assert status(out) == "interrupted", status(out)
        assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == CONFIG["strategy"]["epochs"]


def twice(original):
    def wrapped(*args, **kwargs):
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return original(*args, **kwargs)

    return wrapped


def test_ctrl_c_twice_mid_training_stops_at_once_says_where_resuming_starts_and_resumes(reference, tmp_path,
                                                                                       monkeypatch):
    from trainlab.engine.loop import Trainer

    monkeypatch.setattr(Trainer, "end_epoch", twice(Trainer.end_epoch))  # inside fit: epoch 1 ends at step 36
    out = tmp_path / "run"
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    err = log.read_text()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 130 and "Traceback" not in err and len(errors) == 1, f"exit {code}: {err}"
    assert ("SIGINT received twice: stopped at once at step 36; resuming continues from its last checkpoint "
            f"({out.resolve()}/checkpoint/step-000000030)") in errors[0]
    assert errors[0].endswith(f"trainlab resume {out.resolve()}")
    assert status(out) == "interrupted"
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference


def test_ctrl_c_twice_in_an_overwrite_before_its_first_checkpoint_leaves_the_old_run_untouched(reference, tmp_path,
                                                                                              monkeypatch):
    from trainlab.engine.loop import Trainer

    out = tmp_path / "run"
    config = write_config(tmp_path / "config.yaml", {**CONFIG, "output": {
        "progress": "off", "checkpoint": {"every_n_steps": 1000, "every_seconds": None}}})
    assert run_inline(["train", str(config), "--out", str(out), "--quiet"]) == 0
    old = (out / "model.safetensors").read_bytes()
    monkeypatch.setattr(Trainer, "end_epoch", twice(Trainer.end_epoch))
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(config), "--out", str(out), "--overwrite"], log))
    monkeypatch.undo()
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert code == 130 and len(errors) == 1, log.read_text()
    assert errors[0].endswith(f"before the first checkpoint; the run in {out.resolve()} is untouched (train with "
                              "--overwrite again to replace it)")
    assert (out / "model.safetensors").read_bytes() == old and status(out) == "finished"


def test_sigint_from_a_terminal_during_the_final_evaluation(reference, tmp_path: Path, monkeypatch):
    """Ctrl-C twice during the final evaluation: the second one stops at once, still with one line, exit 130."""

    monkeypatch.setattr(trainlab.experiment, "summarize", twice(trainlab.experiment.summarize))
    out = tmp_path / "run"
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    err = log.read_text()
    assert code == 130 and "Traceback" not in err, f"exit {code}: {err}"
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert status(out) != "finished" or (out / "summary.json").exists()
    if status(out) != "finished":
        assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_data_loads_is_one_error_line_and_no_run(signum, tmp_path, monkeypatch):
    """Before the run's own handler is up (its data loading), SIGTERM is handled as Ctrl-C: one line, 128 + N."""
    import trainlab.builders

    monkeypatch.setattr(trainlab.builders, "load_dataset", _signal_self_then(trainlab.builders.load_dataset, signum))
    out = tmp_path / "run"
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    err = log.read_text()
    assert code == 128 + signum and "Traceback" not in err, f"exit {code}: {err}"
    assert err.splitlines()[-1] == "error: interrupted" + (" by SIGTERM" if signum == signal.SIGTERM else ""), err
    assert not (out / "model.safetensors").exists() and status(out) != "finished"


def test_image_decoding_workers_die_silently_on_a_signal_to_the_process_group(tmp_path, monkeypatch):
    """Forked decoding workers inherited the CLI's SIGTERM-as-Ctrl-C handler: a SIGTERM (or Ctrl-C) sent to the
    whole process group, as systemd, Docker and Slurm send it, raised KeyboardInterrupt in each worker. Their
    initializer now restores the default: killed at once, nothing printed (the parent reports it once)."""
    import trainlab.data.image_decode as images
    from trainlab.sigterm import sigterm_as_ctrl_c

    log = tmp_path / "child.log"
    for quiet in (False, True):
        pid = os.fork()
        if pid == 0:  # a worker as fork makes it: the parent's Python handler for SIGTERM
            code = 0
            try:
                os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
                with sigterm_as_ctrl_c([]):
                    if quiet:
                        images._quiet_worker()
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
            except KeyboardInterrupt:
                os.write(2, b"KeyboardInterrupt in the worker")
                code = 70
            finally:
                os._exit(code)
        assert wait(pid) == (-signal.SIGTERM if quiet else 70)
        assert ("KeyboardInterrupt" in log.read_text()) is not quiet
    started: list[dict] = []  # and decode_images starts its workers with it

    class Pool(images.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(kwargs)
            super().__init__(*args, **kwargs)

    from PIL import Image

    for i in range(images.POOL_MIN_FILES):
        Image.new("RGB", (4, 4), (i % 256, 0, 0)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(images, "ProcessPoolExecutor", Pool)
    files = sorted(tmp_path.glob("*.png"))
    assert images.decode_images(files, (4, 4), "RGB", False, workers=2).shape == (len(files), 3, 4, 4)
    assert started and started[0].get("initializer") is images._quiet_worker
