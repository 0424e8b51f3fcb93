"""What resume refuses and what it needs no writing for.

- A config.yaml edited by hand in an interrupted run's folder was resumed "with it" (a warning): the rest
  of the run trained with the new settings while run.json and summary.json kept the old config hash, and
  ``trainlab eval`` then refused the finished run as "changed after training". Now resume refuses it too,
  exit 2, with nothing written.
- Resuming a finished run on a read-only mount exited 5 (its lock could not be opened), though a finished
  run's resume writes nothing (README: a preemptible job re-submits ``train --resume``): now exit 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.resume_from_checkpoints import train_keeping_checkpoints
from trainlab.cli import main

CONFIG = {
    "name": "guards",
    "seed": 1,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 16,
                 "epochs": 3},
    "metrics": ["accuracy"],
    "output": {"progress": "off"},
    "runtime": {"num_threads": 1},
}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, dict[int, Path]]:
    return train_keeping_checkpoints(CONFIG, tmp_path_factory.mktemp("guards"), every_n_steps=4)


def _interrupted_copy(full: Path, checkpoints: dict[int, Path], tmp_path: Path) -> Path:
    copy_dir = tmp_path / "run"
    shutil.copytree(full, copy_dir, ignore=shutil.ignore_patterns("model.safetensors", "summary.json", "best"))
    for step, folder in checkpoints.items():
        if step != min(checkpoints):
            shutil.rmtree(copy_dir / "checkpoint" / folder.name)
    info = json.loads((copy_dir / "run.json").read_text())
    (copy_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    return copy_dir


def test_an_unchanged_interrupted_run_resumes(full_run, tmp_path):
    run = _interrupted_copy(*full_run, tmp_path)
    assert main(["resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_a_config_yaml_edited_since_the_run_started_is_refused_and_nothing_is_written(full_run, tmp_path, capsys):
    run = _interrupted_copy(*full_run, tmp_path)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.003", "lr: 0.03"))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {config} was changed since the run started"), err
    assert "restore the file, or train a new run" in err[0]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before
    config.write_text(config.read_text().replace("lr: 0.03", "lr: 0.003"))  # restored: it resumes
    assert main(["resume", str(run), "--quiet"]) == 0


def test_a_finished_run_on_a_read_only_folder_is_nothing_to_resume(full_run, tmp_path, capsys, monkeypatch):
    """A read-only mount, as the lock sees it (EROFS on opening it): the finished run's line, exit 0."""
    import errno
    import os

    full, _ = full_run
    run = tmp_path / "finished"
    shutil.copytree(full, run)
    (run / ".lock").unlink(missing_ok=True)
    opened = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(run)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["resume", str(run)]) == 0
    assert main(["train", str(full.parent / "config.yaml"), "--out", str(run), "--resume"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"run {run} already finished (test accuracy ") for line in lines)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))  # not finished: still exit 5
    assert main(["resume", str(run)]) == 5
    assert "Read-only file system" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["lion", "lamb", "prodigy", "schedule_free_adamw", "adam_textbook",
                                       "momentum_textbook", "adafactor", "muon", "adam", "sgd"])
def test_every_optimizers_own_checkpoint_resumes_bit_identical(optimizer, tmp_path):
    """A checkpoint of lion, lamb, prodigy, schedule-free AdamW, adam_textbook (trainlab's own optimizers)
    was refused as "saved by another optimizer": the check asked each loaded group for every key of the
    optimizer's defaults, which their groups never hold. Resumed from an early checkpoint, each run ends
    byte-identical to the uninterrupted one."""
    from tests.resume_from_checkpoints import resume_a_copy

    config = {**CONFIG, "strategy": {**CONFIG["strategy"], "optimizer": {"name": optimizer, "lr": 0.003}}}
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=4)
    resumed = resume_a_copy(full, checkpoints[min(checkpoints)], tmp_path)
    assert (resumed / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


def test_lr_auto_runs_its_range_test_with_trainlabs_own_optimizers(tmp_path):
    """The range test restores the step's state after its probe: it crashed for lion (and eight others)."""
    import yaml

    config = {**CONFIG, "strategy": {**CONFIG["strategy"], "optimizer": {"name": "lion", "lr": "auto"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["notes"]["lr_auto"] > 0
