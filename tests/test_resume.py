"""Kill-and-resume: a run stopped by SIGTERM, then SIGKILLed at random moments, and resumed ends bit-identical.

Each training process is a real subprocess; the test stops it once its first checkpoint exists, resumes it
(and kills it again at a random time after its next checkpoint), and finally compares ``model.safetensors``
byte for byte with a run that never stopped.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.resume_from_checkpoints import resume_a_copy

CONFIG = {
    "name": "resume",
    "seed": 3,
    "data": {"source": "mnist1d", "num_samples": 4000},
    "model": {"name": "mlp", "hidden": [128, 128], "dropout": 0.2},
    "strategy": {
        "loss": {"name": "cross_entropy", "label_smoothing": 0.05},
        "optimizer": {"name": "adamw", "lr": 0.003},
        "batch_size": 16,
        "epochs": 15,
        "schedule": {"name": "warmup_cosine", "warmup_fraction": 0.1},
        "regularization": {"weight_decay": 0.01, "l2": 1e-5},
        "grad_accum_steps": 2,
        "early_stopping": {"monitor": "val_accuracy", "mode": "max", "patience": 50},
    },
    "metrics": ["accuracy", "f1"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 7, "keep_last": 2}},
    "runtime": {"num_threads": 1},
}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainlab.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}


def _wait_for_checkpoint(folder: Path, process: subprocess.Popen, timeout: float = 60) -> bool:
    """Whether ``process`` wrote a step checkpoint that was not in ``folder`` when the wait began (a resumed
    run trains again once it has), before it exited."""
    before = {path.name for path in folder.glob("checkpoint/step-*")}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if {path.name for path in folder.glob("checkpoint/step-*")} - before:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("reference")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = root / "run"
    subprocess.run(_command("train", str(config), "--out", str(out), "--quiet"), check=True, env=_env(),
                   capture_output=True, timeout=300)
    return (out / "model.safetensors").read_bytes()


def _finished(run: Path) -> bool:
    try:
        return json.loads((run / "run.json").read_text()).get("status") == "finished"
    except (OSError, ValueError):
        return False


def _assert_sigterm_checkpointed(process: subprocess.Popen, out: Path) -> None:
    """SIGTERM in the training loop: exit 143, one `error:` line naming `trainlab resume`, status interrupted."""
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "trainlab resume" in lines[0] and "Traceback" not in stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def test_a_sigterm_then_sigkills_at_random_moments_then_resume_is_bit_identical(tmp_path, reference):
    """The run is stopped by a SIGTERM (it checkpoints and exits 143), then SIGKILLed at random moments of
    the resumed runs; the last resume ends with the bytes of the run that never stopped."""
    rng = random.Random(int(os.environ.get("TRAINLAB_KILL_SEED", "12345")))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    process = subprocess.Popen(_command("train", str(config), "--out", str(out)), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert _wait_for_checkpoint(out, process)
    _assert_sigterm_checkpointed(process, out)
    kills = 0
    command = _command("resume", str(out), "--quiet")
    for _ in range(4):
        process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if _wait_for_checkpoint(out, process):
            time.sleep(rng.uniform(0.0, 1.5))
            process.send_signal(signal.SIGKILL)
            kills += process.wait() == -signal.SIGKILL
        else:
            process.wait()
        if _finished(out) or kills == 2:  # finished: also when a kill came as the finished run was exiting
            break
    assert kills >= 2, "the run finished before it could be killed twice; make it longer"
    if not _finished(out):  # model.safetensors alone is no finished run: it is written before summary.json
        subprocess.run(command, check=True, env=_env(), capture_output=True, timeout=300)
    assert (out / "model.safetensors").read_bytes() == reference
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == CONFIG["strategy"]["epochs"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, CONFIG["strategy"]["epochs"] + 1))


def _train_losses(folder: Path) -> list[float]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [record["train_loss"] for record in map(json.loads, lines) if "train_loss" in record]


def test_resume_from_every_kind_of_checkpoint_position_is_bit_identical(tmp_path, monkeypatch):
    """In-process: resume from checkpoints early, mid-epoch, at an epoch boundary and near the end.

    The epoch-loss sums fold every 16 batches here (80 steps of 2 micro-batches per epoch), so the
    pending batch losses in a checkpoint are part of what must come back exactly.
    """
    import copy

    from trainlab.cli import main
    from trainlab.engine.state import EpochSum

    monkeypatch.setattr(EpochSum, "fold_every", 16)

    config = copy.deepcopy(CONFIG)
    config["strategy"]["epochs"] = 2
    config["output"]["checkpoint"] = {"every_n_steps": 8, "keep_last": 1000, "every_seconds": None, "keep_after_finish": "all"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    full = tmp_path / "full"
    assert main(["train", str(path), "--out", str(full), "--quiet"]) == 0
    reference_bytes = (full / "model.safetensors").read_bytes()
    folders = sorted((full / "checkpoint").glob("step-*"))
    # steps per epoch here: 2560 rows / 16 / 2 = 80, so step 80 ends epoch 1
    chosen = [f for f in folders if int(f.name.split("-")[1]) in (8, 40, 80, 152)]
    assert len(chosen) == 4
    for folder in chosen:
        copy_dir = resume_a_copy(full, folder, tmp_path)
        assert (copy_dir / "model.safetensors").read_bytes() == reference_bytes, folder.name
        assert _train_losses(copy_dir) == _train_losses(full), folder.name
