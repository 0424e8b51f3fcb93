"""Callbacks across an interruption, and ``trainlab.experiment`` and ``trainlab.run_resume`` from Python.

- A callback's ``state_dict`` saved in a checkpoint comes back on resume, into the user's callbacks and
  the run folder's own (the checkpoint saver's best value, so ``best/`` stays the best model): the
  reference is the same callback in a run that was never interrupted.
- Bad ``callbacks=`` are refused before any file is written; one Callback instance is accepted, as
  ``trainlab.fit`` accepts it.
- ``experiment.train(PATH)`` runs the ``module:attr`` code beside the config, as ``trainlab train PATH``
  does, and ``resume_if_exists`` continues the user's own run of it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.numpy import load_file

import trainlab
from trainlab.errors import ConfigError, Interrupted
from trainlab.experiment import train
from trainlab.run_resume import resume

CONFIG = {
    "name": "cb-resume",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                 "epochs": 4},
    "runtime": {"num_threads": 1},
    "output": {"progress": "off"},
}


class Counter(trainlab.Callback):
    """Counts steps (an int and a tensor) and the epochs it saw; SIGINTs the process after ``interrupt_at``."""

    def __init__(self, interrupt_at: int | None = None):
        self.steps, self.epochs_seen, self.interrupt_at = 0, [], interrupt_at
        self.tensor = torch.zeros(2)
        self.loaded = False

    def on_step_end(self, view, loss) -> None:
        self.steps += 1
        self.tensor += 1

    def on_epoch_end(self, view, record) -> None:
        self.epochs_seen.append(record["epoch"])
        if record["epoch"] == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # SignalStop's handler: the run stops at its next step

    def state_dict(self) -> dict:
        return {"steps": self.steps, "epochs_seen": list(self.epochs_seen), "tensor": self.tensor}

    def load_state_dict(self, state: dict) -> None:
        self.loaded = True
        self.steps, self.epochs_seen, self.tensor = state["steps"], list(state["epochs_seen"]), state["tensor"].clone()


class Fresh(trainlab.Callback):
    """A callback the interrupted run did not have: nothing saved for it, so it starts afresh."""

    def __init__(self):
        self.loaded, self.steps = False, 0

    def on_step_end(self, view, loss) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.loaded = True


class StopAfter(trainlab.Callback):
    """SIGINTs the process at the end of epoch ``epoch`` (no state)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, view, record) -> None:
        if record["epoch"] == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def _interrupted(config: dict, out: Path, callbacks: list) -> None:
    with pytest.raises(Interrupted):
        train(config, out=out, quiet=True, callbacks=callbacks)
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def _status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


# --------------------------------------------------------------------------- state comes back


def test_a_user_callbacks_state_comes_back_on_resume(tmp_path):
    reference = Counter()
    train(CONFIG, out=tmp_path / "ref", quiet=True, callbacks=[reference])
    _interrupted(CONFIG, tmp_path / "run", [Counter(interrupt_at=2)])

    resumed, fresh = Counter(), Fresh()
    resume(tmp_path / "run", quiet=True, callbacks=[resumed, fresh])

    assert resumed.loaded
    assert resumed.steps == reference.steps  # counted on from the checkpoint, not from 0
    assert resumed.epochs_seen == reference.epochs_seen == [1, 2, 3, 4]
    assert torch.equal(resumed.tensor, reference.tensor)  # a tensor in the state too
    assert not fresh.loaded and 0 < fresh.steps < reference.steps  # nothing saved for it: it starts afresh
    ref, run = load_file(str(tmp_path / "ref/model.safetensors")), load_file(str(tmp_path / "run/model.safetensors"))
    assert all((ref[k] == run[k]).all() for k in ref)  # resuming stays bit-identical


def test_a_resume_without_the_runs_own_callbacks_warns_naming_their_saved_state(tmp_path, capsys):
    """A saved state nobody takes: the resumed run goes on without what those callbacks did (stop, record)."""
    _interrupted(CONFIG, tmp_path / "run", [Counter(interrupt_at=2)])
    capsys.readouterr()
    resume(tmp_path / "run", quiet=True, callbacks=[Fresh()])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: the checkpoint holds the state of callback 'Counter', which this run was not given: "
                        "it goes on without it, so it may stop or record otherwise than the run that was "
                        "interrupted; resume with the same callbacks (trainlab.run_resume.resume(..., "
                        "callbacks=[...]))"]


def test_a_resume_with_the_runs_own_callbacks_warns_of_nothing(tmp_path, capsys):
    _interrupted(CONFIG, tmp_path / "run", [Counter(interrupt_at=2), StopAfter(99)])  # StopAfter saves no state
    capsys.readouterr()
    resume(tmp_path / "run", quiet=True, callbacks=[Counter()])
    assert "warning" not in capsys.readouterr().err


def test_the_best_checkpoint_stays_the_best_after_resume(tmp_path):
    """best/ holds the epoch of the lowest val_loss in metrics.jsonl (the saver's best value is restored),
    as in the run that was never interrupted; interrupted after the best epoch, a worse later epoch
    must not take its place."""
    config = {**CONFIG, "model": {"name": "mlp", "hidden": [64]},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.5}, "batch_size": 8,
                           "epochs": 8},
              "output": {"progress": "off", "checkpoint": {"every_n_epochs": 1, "keep_after_finish": "all"}}}

    def best_epochs(run: Path) -> tuple[int, int]:
        """(epoch of the lowest val_loss in metrics.jsonl, epoch best/ was written at)."""
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        epochs = {r["epoch"]: r["val_loss"] for r in records if "val_loss" in r and r.get("scope") != "step"}
        manifest = json.loads((run / "checkpoint/best/manifest.json").read_text())
        return min(epochs, key=epochs.get), manifest["epoch"]

    train(config, out=tmp_path / "ref", quiet=True)
    lowest, written = best_epochs(tmp_path / "ref")
    assert lowest == written
    assert lowest < 8, "the test needs a best epoch before the last (then a later, worse one is saved)"
    _interrupted(config, tmp_path / "run", [StopAfter(lowest)])
    resume(tmp_path / "run", quiet=True)
    assert best_epochs(tmp_path / "run") == (lowest, lowest)


def test_a_callback_that_cannot_load_its_saved_state_is_one_error_and_changes_nothing(tmp_path):
    class Strict(Counter):
        name = "Counter"  # the interrupted run's Counter state is handed to it

        def load_state_dict(self, state: dict) -> None:
            raise KeyError("total")

    _interrupted(CONFIG, tmp_path / "run", [Counter(interrupt_at=1)])
    metrics = (tmp_path / "run/metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=r"callback 'Counter' cannot load the state saved under its name .*KeyError"):
        resume(tmp_path / "run", quiet=True, callbacks=[Strict()])
    assert _status(tmp_path / "run") == "interrupted"
    assert (tmp_path / "run/metrics.jsonl").read_bytes() == metrics


# --------------------------------------------------------------------------- callbacks= checked first


class Named(trainlab.Callback):
    def __init__(self, name: str):
        self.name = name


BAD_CALLBACKS = {
    "lambda": ([lambda view: 0], "got function"),
    "a class": ([Counter], r"got the class Counter itself: pass an instance, Counter\(\)"),
    "a name twice": ([Named("same"), Named("same")], "callback name 'same' is used twice"),
    "the checkpoint saver's name": ([Named("checkpointing")], "callback name 'checkpointing' is used twice"),
    "not a list": (3, "callbacks must be a trainlab.Callback instance or a list of them; got int"),
    # as trainlab.fit says it (trainlab.callbacks.base.user_callbacks): with the fix
    "a dict": ({"counter": Counter()}, r"got a dict \(of 1 item\): give its callbacks as a list, e.g. "
                                       r"list\(callbacks.values\(\)\)"),
}


@pytest.mark.parametrize("bad", BAD_CALLBACKS.values(), ids=BAD_CALLBACKS.keys())
def test_bad_callbacks_are_refused_before_any_file_is_written(bad, tmp_path):
    callbacks, message = bad
    with pytest.raises(ConfigError, match=message):
        train(CONFIG, out=tmp_path / "new", quiet=True, callbacks=callbacks)
    assert not (tmp_path / "new").exists()
    train(CONFIG, out=tmp_path / "new", quiet=True)  # so a retry needs no overwrite

    before = {p.name: p.read_bytes() for p in (tmp_path / "new").iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=message):  # overwrite=True: the finished run stays as it was
        train(CONFIG, out=tmp_path / "new", overwrite=True, quiet=True, callbacks=callbacks)
    assert {p.name: p.read_bytes() for p in (tmp_path / "new").iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]  # no staging folder left beside it


def test_resume_refuses_bad_callbacks_before_writing(tmp_path):
    _interrupted(CONFIG, tmp_path / "run", [StopAfter(1)])
    metrics = (tmp_path / "run/metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="got function"):
        resume(tmp_path / "run", quiet=True, callbacks=[lambda view: 0])
    assert _status(tmp_path / "run") == "interrupted"
    assert (tmp_path / "run/metrics.jsonl").read_bytes() == metrics


def test_one_callback_instance_is_taken_as_trainlab_fit_takes_it(tmp_path):
    reference = Counter()
    train(CONFIG, out=tmp_path / "ref", quiet=True, callbacks=[reference])
    with pytest.raises(Interrupted):
        train(CONFIG, out=tmp_path / "run", quiet=True, callbacks=Counter(interrupt_at=2))
    resumed = Counter()
    resume(tmp_path / "run", quiet=True, callbacks=resumed)
    assert resumed.steps == reference.steps


# --------------------------------------------------------------------------- code beside the config

MODULE = "resume_cb_models"  # a name no other test imports

MODELS = """import torch.nn as nn


def make_net(input_shape, output_dim, hidden=8):
    (features,) = input_shape
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, output_dim))


def make_other(input_shape, output_dim, hidden=8):
    return make_net(input_shape, output_dim, hidden)
"""


@pytest.fixture
def config_with_code(tmp_path) -> Path:
    folder = tmp_path / "ext"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(MODELS)
    path = folder / "code.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "model": {"name": f"{MODULE}:make_net", "hidden": 8}}))
    return path


@pytest.mark.parametrize("cwd", ["config's folder", "elsewhere"])
def test_train_from_python_runs_the_code_beside_a_config_path(cwd, config_with_code, tmp_path, monkeypatch):
    monkeypatch.chdir(config_with_code.parent if cwd == "config's folder" else tmp_path)
    path_before = list(sys.path)
    summary, run = train(str(config_with_code), out=tmp_path / "run", quiet=True)
    assert summary["status"] == "finished"
    assert str(config_with_code.parent.resolve()) in json.loads((run / "run.json").read_text())["code_folders"]
    assert sys.path == path_before  # the folders are importable for the call only


def test_train_resume_if_exists_continues_the_users_own_run_of_a_config_path(config_with_code, tmp_path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    _interrupted(str(config_with_code), tmp_path / "run", [StopAfter(2)])
    summary, _ = train(str(config_with_code), out=tmp_path / "run", quiet=True, resume_if_exists=True)
    assert summary["status"] == "finished"


def test_resume_if_exists_still_refuses_code_the_users_config_does_not_name(config_with_code, tmp_path,
                                                                             monkeypatch):
    """run.json's config_hash matches the user's config, but config.yaml names other code: someone else's."""
    monkeypatch.chdir(tmp_path)
    _interrupted(str(config_with_code), tmp_path / "run", [StopAfter(2)])
    stored = tmp_path / "run/config.yaml"
    stored.write_text(stored.read_text().replace(f"{MODULE}:make_net", f"{MODULE}:make_other"))
    with pytest.raises(ConfigError, match="config.yaml was changed since the run started"):  # before any import
        train(str(config_with_code), out=tmp_path / "run", quiet=True, resume_if_exists=True)
    info = json.loads((tmp_path / "run/run.json").read_text())  # a run from before run.json kept that hash
    (tmp_path / "run/run.json").write_text(json.dumps({k: v for k, v in info.items() if k != "resolved_config_hash"}))
    with pytest.raises(ConfigError, match="a run folder's config imports no code without the opt-in"):
        train(str(config_with_code), out=tmp_path / "run", quiet=True, resume_if_exists=True)


def test_a_resumed_fine_tune_logs_its_parameter_counts_where_the_uninterrupted_run_did(tmp_path):
    """The finetune callback did not keep the counts it last logged: every resume added a 'parameters' event
    (a freeze or unfreeze that never happened) to metrics.jsonl and summary.json."""
    import numpy as np

    from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    config = {"name": "ft", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "d.npz")},
              "model": {"name": "mlp", "hidden": [8, 8]},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                           "epochs": 4, "finetune": {"freeze": True, "unfreeze_after_epochs": 2}},
              "output": {"progress": "off"}}
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=2)

    def events(folder):
        return json.loads((folder / "summary.json").read_text())["events"]

    assert [e["backbone_frozen"] for e in events(full) if e["event"] == "parameters"] == [True, False]
    for step in (2, 10):  # in the frozen epochs, and after the unfreeze
        resumed = resume_a_copy(full, checkpoints[step], tmp_path)
        assert (resumed / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()
        assert events(resumed) == events(full), step


def test_a_resume_whose_config_names_another_optimizer_is_refused_as_a_mismatch(tmp_path, capsys):
    """torch loads Adam's param groups into SGD without a word; the first step then died on KeyError
    'momentum' (exit 4, no advice). Now the checkpoint mismatch line, exit 3, the checkpoints untouched."""
    import numpy as np

    from tests.resume_from_checkpoints import train_keeping_checkpoints
    from trainlab.cli import main

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=x @ np.array([1.0, -2.0, 0.5], np.float32))
    config = {"name": "opt", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "d.npz")},
              "model": {"name": "mlp", "hidden": [8]},
              "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16, "epochs": 2},
              "output": {"progress": "off"}}
    full, _ = train_keeping_checkpoints(config, tmp_path, every_n_steps=2)
    info = json.loads((full / "run.json").read_text())
    # interrupted, and from before run.json kept the resolved config's hash (a newer run's edit is refused first)
    info = {k: v for k, v in info.items() if k != "resolved_config_hash"}
    (full / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    edited = (full / "config.yaml").read_text().replace("name: adam", "name: momentum")
    (full / "config.yaml").write_text(edited)
    before = sorted(p.name for p in (full / "checkpoint").iterdir())
    capsys.readouterr()
    assert main(["resume", str(full), "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: checkpoint {full / 'checkpoint'}") and "does not match the optimizer built from" in err
    assert "parameter group 0 has no dampening, momentum of SGD" in err and err.endswith("start a new run instead")
    assert sorted(p.name for p in (full / "checkpoint").iterdir()) == before
