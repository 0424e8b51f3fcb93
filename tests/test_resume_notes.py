"""A resumed run's summary notes are the uninterrupted run's, those of ``lr: auto`` and ``loss: auto`` included.

A resume builds from the run's config.yaml, which holds what ``lr: auto`` and ``loss: auto`` resolved to:
its build runs no range test and asks no advisor. run.json keeps the notes those made at the run's
creation (``auto_notes``), and the resume puts them back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints

CONFIG = {
    "name": "auto-notes",
    "seed": 5,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "auto", "optimizer": {"name": "adam", "lr": "auto"}, "batch_size": 64, "epochs": 2},
    "metrics": ["accuracy"],
    "output": {"progress": "off"},
    "runtime": {"num_threads": 1},
}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, dict[int, Path]]:
    return train_keeping_checkpoints(CONFIG, tmp_path_factory.mktemp("auto_notes"), every_n_steps=5)


def test_resumed_summary_has_the_uninterrupted_runs_notes(full_run, tmp_path):
    full, checkpoints = full_run
    notes = _json(full / "summary.json")["notes"]
    assert {"lr_auto", "lr_auto_s", "loss_advice"} <= set(notes)  # the config has both autos
    resumed = resume_a_copy(full, checkpoints[min(checkpoints)], tmp_path)
    resumed_notes = _json(resumed / "summary.json")["notes"]
    # every note, in the same order; lr_auto_s is the original range test's seconds, not a new measurement
    assert list(resumed_notes.items()) == list(notes.items())
    assert (resumed / "model.json").read_bytes() == (full / "model.json").read_bytes()


def test_run_json_keeps_exactly_the_auto_notes(full_run):
    full, _ = full_run
    notes = _json(full / "summary.json")["notes"]
    stored = _json(full / "run.json")["auto_notes"]
    assert stored == {key: notes[key] for key in ("loss_advice", "lr_auto", "lr_auto_s")}


@pytest.mark.parametrize("stored", ["absent", "damaged"])
def test_a_run_folder_without_stored_notes_still_resumes(full_run, tmp_path, stored):
    """A run folder from before run.json kept them (or one whose entry was damaged) resumes, without them."""
    full, checkpoints = full_run
    source = tmp_path / "source"
    shutil.copytree(full, source)
    info = _json(source / "run.json")
    if stored == "absent":
        del info["auto_notes"]
    else:
        info["auto_notes"] = ["not", "a", "mapping"]
    (source / "run.json").write_text(json.dumps(info))
    resumed = resume_a_copy(source, source / "checkpoint" / checkpoints[min(checkpoints)].name, tmp_path)
    notes = _json(resumed / "summary.json")["notes"]
    expected = {k: v for k, v in _json(full / "summary.json")["notes"].items()
                if k not in ("lr_auto", "lr_auto_s", "loss_advice")}
    assert notes == expected
    assert (resumed / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()


def test_a_run_without_autos_stores_no_notes(tmp_path):
    """A config with a number for lr and a named loss: nothing to keep, the resumed notes are the same."""
    config = {**CONFIG, "strategy": {**CONFIG["strategy"], "loss": "cross_entropy",
                                     "optimizer": {"name": "adam", "lr": 0.01}}}
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=5)
    assert _json(full / "run.json")["auto_notes"] == {}
    resumed = resume_a_copy(full, checkpoints[min(checkpoints)], tmp_path)
    assert _json(resumed / "summary.json")["notes"] == _json(full / "summary.json")["notes"]


def test_the_resume_line_says_how_far_the_run_had_come(full_run, tmp_path, capsys):
    """It said "(epoch 2, step 34)" for a checkpoint in the third epoch: the epoch counter is of epochs done."""
    from trainlab.cli import main

    full, checkpoints = full_run
    step = min(checkpoints)
    copy_dir = tmp_path / "copy"
    shutil.copytree(full, copy_dir, ignore=shutil.ignore_patterns("model.safetensors", "best"))
    for other in (copy_dir / "checkpoint").glob("step-*"):
        if other.name != checkpoints[step].name:
            shutil.rmtree(other)
    info = _json(copy_dir / "run.json")
    (copy_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    capsys.readouterr()
    assert main(["resume", str(copy_dir)]) == 0
    assert step > 1  # the fixture's first checkpoint: "batches", plural
    assert f"from {checkpoints[step].name} (step {step}: 0 epochs done and {step} batches into the next)" in \
        capsys.readouterr().err


def test_a_checkpoint_at_an_epochs_last_batch_is_said_with_its_validation_to_come(tmp_path, capsys):
    """A crash trial: "step 864: 11 epochs done and 72 batches into the next", of 72 batches an epoch."""
    from trainlab.cli import main

    full, checkpoints = train_keeping_checkpoints(CONFIG, tmp_path, every_n_steps=9)  # 18 batches an epoch
    copy_dir = tmp_path / "copy"
    shutil.copytree(full, copy_dir, ignore=shutil.ignore_patterns("model.safetensors", "best"))
    for other in (copy_dir / "checkpoint").glob("step-*"):
        if other.name != checkpoints[18].name:
            shutil.rmtree(other)
    info = _json(copy_dir / "run.json")
    (copy_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    capsys.readouterr()
    assert main(["resume", str(copy_dir)]) == 0
    assert (f"from {checkpoints[18].name} (step 18: 0 epochs done and all 18 batches of the next, its end to "
            "come)") in capsys.readouterr().err
