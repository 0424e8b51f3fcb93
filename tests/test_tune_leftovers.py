"""Checkpoints a killed worker left in a finished trial's run folder: the next trainlab tune deletes what the
run's keep_after_finish deletes, and nothing else (not the model, the records, or an unfinished trial's)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_tune import BASE, _env, read_trials, settings, write
from trainlab.run_lock import RunLock
from trainlab.tune import tune
from trainlab.tune.leftovers import tidy_trial_folders

# every epoch a checkpoint, three kept while training: a finished run keeps best/ and the newest step
CHECKPOINTED = {**BASE, "strategy": {**BASE["strategy"], "epochs": 3},
                "output": {"progress": "off", "checkpoint": {"every_seconds": None, "every_n_epochs": 1,
                                                              "keep_last": 3}}}
SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}

# `trainlab tune`, SIGKILLed as its run's end deletes the checkpoints it no longer needs: the oldest step
# half deleted (rmtree cut short), the others all there
KILLED_MID_PRUNE = """
import os, signal, sys
import trainlab.engine.checkpoint as checkpoint

def killed(root, keep):
    oldest = checkpoint.step_folders(root)[-1]
    next(p for p in sorted(oldest.iterdir()) if p.is_file()).unlink()
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint.prune_after_finish = killed
from trainlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _records(folder: Path) -> dict[str, str]:
    """sha256 of every file of a run folder outside checkpoint/: its model and records."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file() and "checkpoint" not in p.relative_to(folder).parts and p.name != ".lock"}


@pytest.mark.slow
def test_a_worker_killed_while_its_finished_run_deletes_checkpoints_leaves_them_to_the_next_tune(tmp_path):
    base, space = write(tmp_path, CHECKPOINTED, SPACE)
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_PRUNE, "tune", str(base), "--space", str(space),
                             "--trials", "1", "--out", str(out), "--quiet"], env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = out / "trials" / "0"
    steps = sorted(p.name for p in (folder / "checkpoint").iterdir() if p.name.startswith("step-"))
    assert len(steps) == 3 and (folder / "checkpoint" / "best").is_dir()  # what the kill left
    assert '"finished"' in (folder / "run.json").read_text()
    records = _records(folder)
    assert "model.safetensors" in records and "summary.json" in records
    best = tune(settings(tmp_path, 1, base=CHECKPOINTED, space=SPACE))
    assert sorted(p.name for p in (folder / "checkpoint").iterdir()) == ["best", steps[-1]]  # as keep "last" says
    assert _records(folder) == records  # the model and the records as they were
    # its run had finished: the trial is recorded from its records (trainlab.tune.recovery), not run again
    assert [row["state"] for row in read_trials(out)] == ["COMPLETE"]
    assert best["trial"] == 0 and best["value"] == json.loads((folder / "summary.json").read_text())["val"]["accuracy"]
    assert not (out / "trials" / "1").exists()


def _finished_trial(tmp_path: Path, keep: str = "last") -> Path:
    """A finished trial's run folder whose checkpoints were all kept: as a kill before the deletion leaves it."""
    base = {**CHECKPOINTED, "output": {**CHECKPOINTED["output"],
                                       "checkpoint": {**CHECKPOINTED["output"]["checkpoint"], "keep_after_finish": "all"}}}
    tune(settings(tmp_path, 1, base=base, space=SPACE))
    folder = tmp_path / "out" / "trials" / "0"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["output"]["checkpoint"]["keep_after_finish"] = keep
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_only_finished_unlocked_runs_are_tidied_and_keep_after_finish_is_the_runs_own(tmp_path):
    folder = _finished_trial(tmp_path)
    trials = folder.parent
    steps = sorted(p.name for p in (folder / "checkpoint").iterdir() if p.name.startswith("step-"))
    assert len(steps) == 3
    for number, status in ((1, "running"), (2, "interrupted")):  # cut short before finishing: kept whole
        other = trials / str(number)
        shutil.copytree(folder, other)
        (other / "run.json").write_text((other / "run.json").read_text().replace('"finished"', f'"{status}"'))
    kept = {number: _contents(trials / str(number)) for number in (1, 2)}
    shutil.copytree(folder, trials / "3")
    shutil.copytree(folder, trials / "4")
    config = yaml.safe_load((trials / "4" / "config.yaml").read_text())
    config["output"]["checkpoint"]["keep_after_finish"] = "none"
    (trials / "4" / "config.yaml").write_text(yaml.safe_dump(config))
    dead_tmp = trials / "3" / "checkpoint" / ".step-000000099.tmp-999999999"  # a write of a pid that is no more
    dead_tmp.mkdir()
    (trials / "3" / "checkpoint" / steps[0] / "manifest.json").unlink()  # half deleted
    live = RunLock(trials / "3")
    live.acquire()  # a live process holds trial 3: left alone
    try:
        assert [p.name for p in tidy_trial_folders(trials)] == ["0", "4"]
        assert dead_tmp.exists()
    finally:
        live.release()
    assert {number: _contents(trials / str(number)) for number in (1, 2)} == kept
    assert sorted(p.name for p in (folder / "checkpoint").iterdir()) == ["best", steps[-1]]
    assert list((trials / "4" / "checkpoint").iterdir()) == []
    assert [p.name for p in tidy_trial_folders(trials)] == ["3"]  # its lock free now
    assert sorted(p.name for p in (trials / "3" / "checkpoint").iterdir()) == ["best", steps[-1]]
    assert tidy_trial_folders(trials) == []  # nothing left to tidy: no folder is locked or written again


def test_a_finished_trial_whose_checkpoint_folder_is_a_link_is_left_alone(tmp_path):
    """A trial folder whose checkpoint/ links elsewhere (a folder sent to you): tidying would delete the
    step folders at the link's target, which is not the run's to delete (resume refuses such a folder)."""
    folder = _finished_trial(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(folder / "checkpoint"), str(elsewhere))
    (folder / "checkpoint").symlink_to(elsewhere, target_is_directory=True)
    before = _contents(elsewhere)
    assert len([p for p in elsewhere.iterdir() if p.name.startswith("step-")]) == 3
    assert tidy_trial_folders(folder.parent) == []
    assert _contents(elsewhere) == before
