"""A temporary disk-full: the run keeps training and ends with every record written.

The run writes into a small tmpfs (a real ENOSPC; mounting needs root, the test is skipped
otherwise). While it trains, a ballast file fills the disk; a moment later the ballast is
deleted. Checkpoint writes in between fail (warned, recorded as events), and so may
metrics.jsonl rewrites; once there is room again everything must be written: exit 0, one
record per epoch, summary.json and a loadable model.safetensors. The second test fills
the disk just as the run writes its final files (model, summary) and frees it 2 s later.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import trainlab.experiment
from tests.forked_runs import fork_cli, has_checkpoint, records, run_inline, wait, wait_until, write_config

CONFIG = {
    "name": "disk-full",
    "seed": 0,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [64]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 32,
                 "epochs": 40},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 10, "keep_last": 2, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (skipped where mounting is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk is full (ENOSPC); returns its path."""
    ballast = disk / "ballast"
    chunk = b"\0" * 65536
    with open(ballast, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # the last blocks too
        with open(ballast, "ab", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                pass
    return ballast


def _assert_complete(out: Path, epochs: int) -> None:
    assert [r["epoch"] for r in records(out) if "event" not in r] == list(range(1, epochs + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == epochs
    assert summary["test"]["accuracy"] > 0.8
    assert load_file(out / "model.safetensors")  # complete and readable
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_a_disk_full_during_training_loses_no_record(small_disk, tmp_path):
    out = small_disk / "run"
    config = write_config(tmp_path / "config.yaml", CONFIG)
    run_inline(["train", str(config), "--out", str(tmp_path / "warm"), "--quiet"])  # imports, and the run's length
    length = json.loads((tmp_path / "warm" / "summary.json").read_text())["train_time_s"]
    log = tmp_path / "stderr.log"
    pid = fork_cli(["train", str(config), "--out", str(out), "--quiet"], log)
    assert wait_until(lambda: has_checkpoint(out), pid) is None, log.read_text()
    ballast = fill(small_disk)
    time.sleep(length / 4)  # a few epoch ends and checkpoints while the disk is full
    ballast.unlink()
    running = os.waitpid(pid, os.WNOHANG)[0] == 0
    assert running, "the run ended while the disk was full (see the next test); make it longer"
    code = wait(pid)
    err = log.read_text()
    assert code == 0, err
    assert "No space left on device" in err  # the disk really was full while it trained
    _assert_complete(out, CONFIG["strategy"]["epochs"])
    events = [r for r in records(out) if r.get("event") == "checkpoint_failed"]
    assert events, "no checkpoint write failed: the disk was freed too early to test anything"


@pytest.mark.slow
def test_a_disk_full_while_writing_the_final_files_is_waited_out(small_disk, tmp_path, monkeypatch):
    out = small_disk / "run"
    config = write_config(tmp_path / "config.yaml", CONFIG)
    run_inline(["train", str(config), "--out", str(tmp_path / "warm"), "--quiet"])
    summarize = trainlab.experiment.summarize

    def fill_then_summarize(built):  # runs in the forked child: the disk fills just before the final writes
        ballast = fill(small_disk)
        threading.Timer(2.0, os.unlink, [ballast]).start()
        return summarize(built)

    monkeypatch.setattr(trainlab.experiment, "summarize", fill_then_summarize)
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(config), "--out", str(out), "--quiet"], log))
    monkeypatch.undo()
    assert code == 0, log.read_text()
    _assert_complete(out, CONFIG["strategy"]["epochs"])


def test_a_write_that_fills_the_disk_names_the_file_it_was_writing(small_disk):
    """ENOSPC from write() names no file; the error (and so the CLI's 'cannot write (FILE)' line) names the
    file or checkpoint the caller asked for, not a temporary beside it."""
    import torch

    from trainlab.atomic import write_bytes
    from trainlab.engine import checkpoint

    target = small_disk / "model.safetensors"
    with pytest.raises(OSError) as raised:
        write_bytes(target, b"\0" * (8 << 20))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert not target.exists() and list(small_disk.iterdir()) == []
    with pytest.raises(OSError) as raised:
        checkpoint.save(small_disk / "checkpoint", "step-000000001", {}, {"w": torch.zeros(2 << 20)}, {"step": 1})
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(small_disk / "checkpoint" / "step-000000001")
    assert list((small_disk / "checkpoint").iterdir()) == []
