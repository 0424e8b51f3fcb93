"""Divergence rollback with Adam on a task that really diverges.

Adam at lr 10 on digits blows the loss up to ~1e3 several times. With policy rollback the run
must finish with finite weights, log each rollback, never write a checkpoint holding a
non-finite tensor, and resume bit-identically from any checkpoint, in particular from the
ones written between a snapshot and the detection of the spike that rolls back to it.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.forked_runs import copy_with_only, records, run_inline, train_losses, write_config
from trainlab.callbacks import Callback
from trainlab.config import load_config
from trainlab.engine import checkpoint
from trainlab.experiment import train

DIVERGING_ADAM = {
    "name": "rollback-adam",
    "seed": 5,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "strategy": {
        "loss": "cross_entropy",
        "optimizer": {"name": "adam", "lr": 10.0},
        "batch_size": 32,
        "epochs": 4,
        "schedule": {"name": "warmup_linear", "warmup_fraction": 0.5},
        "divergence": {"policy": "rollback", "spike_factor": 20, "window": 10, "lr_factor": 0.3,
                       "max_rollbacks": 4},
    },
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 5, "keep_last": 1000, "every_seconds": None, "keep_after_finish": "all"}},
    "runtime": {"num_threads": 1},
}


def _non_finite(path: Path) -> list[str]:
    """Names of the floating-point tensors of a safetensors file holding NaN or Inf."""
    return [name for name, tensor in load_file(path).items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def _all_checkpoints(run: Path) -> list[Path]:
    return [p for p in (run / "checkpoint").iterdir() if p.is_dir() and not p.name.startswith(".")]


@pytest.fixture(scope="module")
def rolled_back(tmp_path_factory) -> Path:
    """The run, with a copy of every checkpoint as it was written in ``<run>/../written/``.

    A replay after a rollback rewrites the checkpoints between the snapshot and the spike under
    the same names; the copies keep the versions written before the spike was detected.
    """
    root = tmp_path_factory.mktemp("rollback")
    out, written = root / "run", root / "written"
    save = checkpoint.save

    def save_and_copy(folder_root, name, *args, **kwargs):
        path = save(folder_root, name, *args, **kwargs)
        if name != checkpoint.BEST:
            shutil.copytree(path, written / f"{len(list(written.glob('*'))) if written.exists() else 0:04d}-{name}")
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "save", save_and_copy)
        assert run_inline(["train", str(write_config(root / "config.yaml", DIVERGING_ADAM)), "--out", str(out),
                           "--quiet"]) == 0
    return out


def test_rollback_with_adam_finishes_with_finite_weights_and_logs_each_rollback(rolled_back):
    assert not _non_finite(rolled_back / "model.safetensors")
    summary = json.loads((rolled_back / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] == 4
    assert summary["test"]["accuracy"] > 0.5  # it recovered; chance is 0.1
    rollbacks = [e for e in summary["events"] if e.get("action") == "rollback"]
    assert len(rollbacks) >= 2, summary["events"]
    for event in rollbacks:  # each names what was bad and where it went back to
        assert event["event"] == "divergence" and event["restored_step"] < event["step"]
    assert [e["lr_scale"] for e in rollbacks] == pytest.approx([0.3 ** (i + 1) for i in range(len(rollbacks))])
    logged = [r for r in records(rolled_back) if r.get("event") == "divergence"]
    assert logged == rollbacks


def test_no_checkpoint_ever_holds_a_non_finite_tensor(rolled_back):
    folders = _all_checkpoints(rolled_back)
    assert len(folders) > 20
    bad = {folder.name: _non_finite(folder / "tensors.safetensors") for folder in folders}
    assert not {name: tensors for name, tensors in bad.items() if tensors}


def _step(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[1])


def _resume_points(run: Path) -> list[Path]:
    """The copies of the checkpoints written after a snapshot and before the spike that rolled back to it
    (the replay rewrote them under the same names), plus the first and the last checkpoint written."""
    copies = sorted((run.parent / "written").iterdir())
    events = json.loads((run / "summary.json").read_text())["events"]
    spans = [(e["restored_step"], e["step"]) for e in events if e.get("action") == "rollback"]
    first_writes = {}
    for copy_dir in copies:
        first_writes.setdefault(_step(copy_dir), copy_dir)
    before_spikes = [c for s, c in first_writes.items() if any(start < s < spike for start, spike in spans)]
    return list(dict.fromkeys([copies[0], *before_spikes, copies[-1]]))  # in order, each once


def test_resume_from_each_checkpoint_around_a_rollback_is_bit_identical(rolled_back, tmp_path):
    reference_model = (rolled_back / "model.safetensors").read_bytes()
    reference_losses = train_losses(rolled_back)
    reference_events = json.loads((rolled_back / "summary.json").read_text())["events"]
    points = _resume_points(rolled_back)
    assert len(points) >= 4, [p.name for p in points]  # at least two written before their spike was detected
    failures = []
    for written in points:
        name = checkpoint.folder_name(_step(written))
        copy_dir = copy_with_only(rolled_back, written, tmp_path / written.name, name=name)
        folder = copy_dir / "checkpoint" / name
        code = run_inline(["resume", str(copy_dir), "--quiet"])
        if code != 0:
            failures.append(f"{folder.name}: resume exit {code}")
            continue
        if (copy_dir / "model.safetensors").read_bytes() != reference_model:
            failures.append(f"{folder.name}: model.safetensors differs")
        if train_losses(copy_dir) != reference_losses:
            failures.append(f"{folder.name}: train_loss differs")
        if json.loads((copy_dir / "summary.json").read_text())["events"] != reference_events:
            failures.append(f"{folder.name}: events differ")
    assert not failures, failures


def test_when_rollbacks_run_out_the_last_good_checkpoint_named_is_good(tmp_path, capsys):
    config = copy.deepcopy(DIVERGING_ADAM)
    config["strategy"]["epochs"] = 10  # the warm-up reaches lr 10 again after the rollbacks: it gives up
    config["strategy"]["divergence"]["max_rollbacks"] = 2
    out = tmp_path / "run"
    assert run_inline(["train", str(write_config(tmp_path / "config.yaml", config)), "--out", str(out),
                       "--quiet"]) == 4
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "after the maximum number of rollbacks" in error[0]
    named = re.search(r"last good checkpoint: (\S+?);", error[0])
    assert named, error[0]
    folder = Path(named.group(1))
    assert folder.is_dir(), f"{folder} named as the last good checkpoint does not exist"
    assert not _non_finite(folder / "tensors.safetensors")
    for other in _all_checkpoints(out):
        assert not _non_finite(other / "tensors.safetensors"), other.name
    # the named checkpoint resumes; the run then diverges again the same way (exit 4), not a crash
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert run_inline(["resume", str(out), "--quiet"]) == 4


class PoisonWeightsOnce(Callback):
    """Sets every weight to NaN once, at the end of step ``at`` (a step that blew up, as seen by the loop)."""

    order = 10  # before the guard (20) and the saver (90) look at this step
    name = "poison"

    def __init__(self, at: int):
        self.at, self.fired = at, False

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at and not self.fired:
            self.fired = True
            with torch.no_grad():
                for parameter in view.model.parameters():
                    parameter.fill_(math.nan)


@pytest.mark.parametrize("poisoned_step", [23, 24], ids=["NaN loss pending at a checkpoint", "NaN weights at a checkpoint"])
def test_nan_between_two_guard_checks_never_reaches_a_checkpoint(poisoned_step, tmp_path):
    """Checkpoints every 4 steps, losses read every 10: the step-24 checkpoint comes before the guard's read."""
    config = copy.deepcopy(DIVERGING_ADAM)
    config["strategy"]["optimizer"] = {"name": "adam", "lr": 0.003}
    config["strategy"]["schedule"] = {"name": "constant"}
    config["strategy"]["epochs"] = 2
    config["strategy"]["divergence"] = {"policy": "rollback", "window": 20, "lr_factor": 0.5, "max_rollbacks": 2}
    config["output"]["checkpoint"]["every_n_steps"] = 4
    path = write_config(tmp_path / "config.yaml", config)
    out = tmp_path / "run"
    summary, _ = train(load_config(path, []), out=out, quiet=True, callbacks=[PoisonWeightsOnce(poisoned_step)])
    assert summary["status"] == "finished" and not _non_finite(out / "model.safetensors")
    rollbacks = [e for e in summary["events"] if e.get("action") == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["restored_step"] == 0, summary["events"]  # window 20: the snapshot a window before step 24
    for folder in _all_checkpoints(out):
        assert not _non_finite(folder / "tensors.safetensors"), folder.name


class _RollBackOnce(Callback):
    """Snapshots the state at the end of step ``at`` (as the divergence guard does, in a step-end hook:
    before that step's mid-epoch validation) and rolls back to it at step ``back``."""

    name = "roll_back_once"

    def __init__(self, at: int, back: int):
        self.at, self.back, self.kept = at, back, None

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at and self.kept is None:
            self.kept = view.snapshot()
        elif view.state.step == self.back and view.state.rollbacks == 0:
            view.control.rollback_to = self.kept.with_train_state(rollbacks=1)


def test_a_rollback_to_a_snapshot_taken_before_its_steps_validation_validates_there_again():
    """The snapshot holds the state before step 8's mid-epoch validation; restoring it dropped that
    validation's record (and early stopping's view of it) for good. It now runs again after the restore."""
    from trainlab.builders import build, run_scope
    from trainlab.config import validate

    config = validate({"name": "rollback-validation", "seed": 0, "data": {"source": "digits"},
                       "model": {"name": "mlp", "hidden": [16]},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05},
                                    "batch_size": 32, "max_steps": 14, "epochs": None, "eval_every_n_steps": 4},
                       "output": {"progress": "off"}})
    with run_scope(config):
        built = build(config, quiet=True)
        built.trainer.add_callbacks([_RollBackOnce(at=8, back=10)])
        state = built.trainer.fit()
    validated = [r["step"] for r in state.step_records if "val_loss" in r]
    assert state.rollbacks == 1 and validated == [4, 8, 12], validated
