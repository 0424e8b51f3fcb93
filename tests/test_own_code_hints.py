"""The commands trainlab hands a user whose config names modules of their own (``module:attr`` code beside
the config) paste and work as printed.

- A run stopped by Ctrl-C said ``continue with: trainlab resume DIR``, which exits 2: a run folder's config
  imports no code, not even the user's own modules, without ``--allow-code``. Every resume hint of such a
  run (the "continue with" line, the Python call with the user's callbacks, a resume cut short by Ctrl-C or
  a full disk, ``train --resume`` of another config) names the opt-in; a run of trainlab's names only does not.
- ``trainlab train DIR/best.yaml`` after a tune found no module beside the base config: best.yaml carries no
  trust of its own (a config received from someone else must not import code from a folder it names), so
  the tune's last line gives the command that trains it from the folder holding the modules.

Each hint is cut out of its message, split as a POSIX shell splits it (``shlex.split``) and run; the tune's
line is run by ``sh`` as pasted, from another directory.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import trainlab.cli
from tests.test_callback_contract import InterruptAt
from trainlab.cli import main
from trainlab.code_policy import code_policy, outside_code_references, resume_command_words
from trainlab.engine.loop import Trainer
from trainlab.errors import Interrupted
from trainlab.experiment import train
from trainlab.run_resume import resume
from trainlab.tune.results import tuned_train_command

REPO = Path(__file__).resolve().parents[1]
MODULE = "owncode_hints_mods"
USER_CODE = '''
import numpy as np
import torch.nn as nn

from trainlab.data import RawData


def blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4)) + 1.5 * y[:, None]
    return RawData(x.astype(np.float32), y.astype(np.int64))


def net(input_shape, output_dim, hidden=8):
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, output_dim))
'''
CONFIG = {
    "name": "owncode",
    "seed": 0,
    "data": {"source": f"{MODULE}:blobs"},
    "model": {"name": f"{MODULE}:net"},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                 "epochs": 3},
    "metrics": ["accuracy"],
    "runtime": {"num_threads": 1},
    "output": {"progress": "off", "checkpoint": {"every_n_epochs": 1, "every_seconds": None}},
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The user's folder (their module beside config.yaml); the working directory is another folder."""
    folder = tmp_path / "my project"  # a space: the hints must quote it
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(USER_CODE)
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("TRAINLAB_ALLOW_CODE", raising=False)
    yield folder
    for name in [name for name in sys.modules if name.startswith(MODULE)]:
        sys.modules.pop(name)


def _elsewhere(tmp_path: Path, monkeypatch) -> Path:
    """A fresh working directory, and the user's module forgotten: the pasted command imports it itself."""
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    monkeypatch.chdir(folder)
    for name in [name for name in sys.modules if name.startswith(MODULE)]:
        sys.modules.pop(name)
    return folder


def _interrupt_first_epoch(monkeypatch) -> None:
    """SIGINT once, at the end of the first epoch: the run writes that checkpoint and stops."""
    real_end_epoch = Trainer.end_epoch
    sent = []

    def end_epoch(self, *args, **kwargs):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return real_end_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "end_epoch", end_epoch)


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


# --------------------------------------------------------------------------- which configs need the opt-in

def test_only_module_attr_code_outside_trainlab_needs_the_opt_in():
    tree = {"data": {"source": "mine.data:rows", "path": "C:/data/x.csv", "url": "http://host:80/x"},
            "model": {"name": "trainlab.models.mlp:MLP"}, "metrics": ["accuracy", "pkg:score"],
            "strategy": {"init": [{"name": "inits:fan_in"}], "loss": "mse"}}
    assert outside_code_references(tree) == {"mine.data:rows", "pkg:score", "inits:fan_in"}
    assert outside_code_references({"model": {"name": "trainlab.models.mlp:MLP"}, "data": {"path": "a:/b"}}) == set()


def test_a_run_of_registered_names_only_keeps_the_plain_resume_command(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "data": {"source": "iris"},
                                                     "model": {"name": "mlp"}}))
    assert resume_command_words(run) == ["trainlab", "resume", str(run)]
    (run / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    assert resume_command_words(run) == ["trainlab", "--allow-code", "resume", str(run)]
    assert resume_command_words(tmp_path / "none") == ["trainlab", "resume", str(tmp_path / "none")]


# --------------------------------------------------------------------------- the resume hints

def test_the_continue_with_hint_of_a_run_of_own_modules_pastes_and_resumes(project, tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "int 3"
    _interrupt_first_epoch(monkeypatch)
    assert main(["train", str(project / "config.yaml"), "--out", str(run)]) == 130
    monkeypatch.undo()
    line = _error_line(capsys.readouterr().err)
    assert "after writing a checkpoint; continue with: " in line, line
    words = shlex.split(line.split("continue with: ", 1)[1])
    assert words == ["trainlab", "--allow-code", "resume", str(run.resolve())], line
    _elsewhere(tmp_path, monkeypatch)
    assert main(words[1:]) == 0, capsys.readouterr().err
    assert _status(run) == "finished"




def test_the_python_hint_with_user_callbacks_names_pythons_opt_in(project, tmp_path, monkeypatch):
    run = tmp_path / "py run"
    with pytest.raises(Interrupted) as raised:
        train(project / "config.yaml", out=run, quiet=True, callbacks=[InterruptAt(6)])
    where = str(run.resolve())
    assert str(raised.value).endswith(
        f"continue with: with trainlab.code_policy.code_policy(allow=True): trainlab.run_resume.resume({where!r}, "
        f"callbacks=[...]) in Python, with the same callbacks (InterruptAt), which get their saved state back "
        f"(trainlab --allow-code resume '{where}' would run without them)"), str(raised.value)
    _elsewhere(tmp_path, monkeypatch)
    resumed = InterruptAt()
    with code_policy(allow=True):  # the call the hint names does it
        summary, _ = resume(where, quiet=True, callbacks=[resumed])
    assert summary["status"] == "finished" and resumed.steps == summary["steps"]


@pytest.mark.parametrize("raised, before", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/file"), "once the disk is writable, "),
    (KeyboardInterrupt(), "its checkpoints are intact: "),
], ids=["disk-full", "ctrl-c"])
def test_a_resume_cut_short_hints_the_opt_in_for_a_run_of_own_modules(tmp_path, monkeypatch, capsys, raised, before):
    def cut_short(args):
        raise raised

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setitem(trainlab.cli.COMMANDS, "resume", cut_short)
    main(["--allow-code", "resume", str(run)])
    line = _error_line(capsys.readouterr().err)
    assert shlex.split(line.split(before, 1)[1]) == ["trainlab", "--allow-code", "resume", str(run)], line


def test_train_resume_of_another_config_hints_the_opt_in_to_continue_the_stored_one(project, tmp_path, monkeypatch,
                                                                                   capsys):
    run = tmp_path / "done"
    assert main(["train", str(project / "config.yaml"), "--out", str(run), "--quiet"]) == 0
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "failed"}))  # a run resume would continue
    assert main(["train", str(project / "config.yaml"), "--out", str(run), "--resume", "--set", "seed=1"]) == 2
    line = _error_line(capsys.readouterr().err)
    hint = line.rsplit("; use another --out, or ", 1)[1].removesuffix(" to continue the stored one")
    words = shlex.split(hint[1:-1] if hint.startswith("'") else hint)
    assert words == ["trainlab", "--allow-code", "resume", str(run)], line


# --------------------------------------------------------------------------- tune's best.yaml

def _shell(command: str, cwd: Path, bin_folder: Path) -> subprocess.CompletedProcess:
    """``command`` run by ``sh`` as a user pastes it, with ``trainlab`` on PATH running this tree's trainlab."""
    bin_folder.mkdir(exist_ok=True)
    # the parent's PYTHONPATH entries go last: where trainlab's dependencies come that way (a GPU machine without
    # an install) the shim finds them, and the user's modules are still found only as trainlab finds them
    dependencies = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    program = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.extend({dependencies!r}); "
               "from trainlab.cli import main; sys.exit(main())")
    shim = bin_folder / "trainlab"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -P -c {shlex.quote(program)} "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("TRAINLAB_ALLOW_CODE", None)
    env.pop("PYTHONPATH", None)
    return subprocess.run(["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_tune_line_gives_a_command_that_trains_best_yaml_as_pasted(project, tmp_path, monkeypatch, capsys):
    space = project / "space.yaml"
    space.write_text(yaml.safe_dump({"strategy.optimizer.lr": {"low": 0.001, "high": 0.05, "log": True}}))
    out = tmp_path / "tune 2"
    assert main(["tune", str(project / "config.yaml"), "--space", str(space), "--trials", "2", "--out", str(out),
                 "--quiet"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"results in {out}: best.yaml, best.json"), last
    command = last.split(f"best.yaml names your modules in {project}: train it with ", 1)[1]
    assert command == f"cd '{project}' && trainlab train '{out / 'best.yaml'}'"
    elsewhere = _elsewhere(tmp_path, monkeypatch)
    # best.yaml names no trust of its own: the plain command finds no module beside the base config
    assert main(["train", str(out / "best.yaml"), "--quiet"]) == 2
    assert f"cannot import module '{MODULE}'" in capsys.readouterr().err
    done = _shell(command, elsewhere, tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    runs = list((project / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("owncode-tuned") and _status(runs[0]) == "finished"


@pytest.mark.slow
def test_best_yaml_of_modules_in_two_folders_gets_a_command_with_the_opt_in(project, tmp_path):
    """Modules in the tune's working directory and beside the base config: no one folder to cd to."""
    work = Path.cwd()
    (work / "owncode_hints_models.py").write_text(USER_CODE)
    out, run = tmp_path / "study", tmp_path / "study" / "trials" / "0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"code_folders": [str(work), str(project)]}))
    (out / "best.json").write_text(json.dumps({"run_dir": str(run)}))
    tuned = {**CONFIG, "name": "owncode-tuned", "model": {"name": "owncode_hints_models:net"}}
    (out / "best.yaml").write_text(yaml.safe_dump(tuned))
    command = tuned_train_command(out).split("train it with ", 1)[1]
    assert command == (f"cd {work} && PYTHONPATH='{project}' trainlab --allow-code train {out / 'best.yaml'}")
    done = _shell(command, tmp_path, tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    assert _status(next((work / "runs").iterdir())) == "finished"
    (out / "best.yaml").write_text(yaml.safe_dump({**CONFIG, "data": {"source": "iris"}, "model": {"name": "mlp"}}))
    assert tuned_train_command(out) is None  # trainlab's names only: the plain command works


# --------------------------------------------------------------------------- the refusal's words

def test_the_refusal_of_a_run_folders_own_module_says_what_it_is(project, tmp_path, capsys):
    """It called the user's own module beside their config "outside your own code"."""
    run = tmp_path / "run"
    assert main(["train", str(project / "config.yaml"), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: config references '{MODULE}:blobs', but a run folder's config imports no code without the opt-in, "
        "not even your own modules (the folder may come from someone else); pass --allow-code to run it (or set "
        "TRAINLAB_ALLOW_CODE=1)")


def test_eval_s_predict_hint_names_the_opt_in_for_a_run_of_own_modules(tmp_path, capsys):
    """`trainlab eval RUN --data-dir missing` pointed to 'trainlab predict RUN FILE', which a run of the user's own
    modules refuses without --allow-code."""
    from trainlab.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "missing")]) == 2
    assert f"run trainlab --allow-code predict {run} FILE" in capsys.readouterr().err
    (run / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "data": {"source": "iris"}, "model": {"name": "mlp"}}))
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "missing")]) == 2
    assert f"run trainlab predict {run} FILE" in capsys.readouterr().err
