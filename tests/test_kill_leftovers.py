"""What a SIGKILL leaves in a run folder, and what trainlab makes of it afterwards.

Each kill is real: a ``trainlab`` subprocess SIGKILLs itself at one file operation (the first call of
``os.replace`` / ``shutil.rmtree`` on a path containing a given text), before it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainlab.cli import main
from trainlab.creation_leftovers import stopped_before_run_json
from trainlab.run_leftovers import clean_stale_temporaries, is_stale_temporary
from trainlab.run_lock import LOCK, process_started_at

_KILLED_AT = """
import os, shutil, signal, sys
module, name, needle = {"os": os, "shutil": shutil}[sys.argv[1]], sys.argv[2], sys.argv[3]
real = getattr(module, name)
def killed_at(*args, **kwargs):
    if needle in str(args[0]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(module, name, killed_at)
from trainlab.cli import main
sys.exit(main(sys.argv[4:]))
"""

CONFIG = {
    "name": "killed", "seed": 2, "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64,
                 "epochs": 1},
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 2, "keep_last": 1, "every_seconds": None,
                                                 "keep_after_finish": "all"}},
    "runtime": {"num_threads": 1},
}


def _train_killed_at(config: Path, out: Path, module: str, name: str, needle: str) -> int:
    """``trainlab train config --out out`` in a subprocess SIGKILLed at the first ``module.name(path)`` whose
    path contains ``needle``; returns its pid."""
    process = subprocess.Popen([sys.executable, "-c", _KILLED_AT, module, name, needle, "train", str(config),
                                "--out", str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == -9, stderr.decode()
    return process.pid


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- a kill during keep-last pruning: checkpoint/.step-N.deleting-<pid> ---------------------------------------


@pytest.mark.slow
def test_resume_removes_the_checkpoint_that_a_kill_during_pruning_left_half_deleted(config, tmp_path):
    """Renamed aside to .step-N.deleting-<pid> and killed before (or while) it was deleted: a whole checkpoint
    of disk, never a checkpoint again. keep_after_finish: all deletes nothing at the end, so resume's
    cleanup is what removes it."""
    run = tmp_path / "run"
    pid = _train_killed_at(config, run, "shutil", "rmtree", ".deleting-")
    leftovers = [p.name for p in (run / "checkpoint").iterdir() if ".deleting-" in p.name]
    assert len(leftovers) == 1 and leftovers[0].endswith(f".deleting-{pid}")
    assert main(["resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert not [p.name for p in (run / "checkpoint").iterdir() if ".deleting-" in p.name]


def test_a_deleting_folder_of_a_dead_process_is_stale_and_removed(tmp_path):
    checkpoints = tmp_path / "checkpoint"
    aside = checkpoints / f".step-000000004.deleting-{_dead_pid()}"
    aside.mkdir(parents=True)
    (aside / "state.json").write_text("{}")
    assert is_stale_temporary(aside)
    assert clean_stale_temporaries(tmp_path) == [aside] and not aside.exists()


def test_a_live_processs_deleting_folder_is_kept_even_when_an_earlier_process_wrote_the_checkpoint(tmp_path):
    """A resumed run prunes the checkpoints its killed predecessor wrote: the folder it renames aside keeps
    their modification time, older than the live pruner. It is the live process's all the same."""
    started = process_started_at(os.getpid())
    assert started is not None
    checkpoints = tmp_path / "checkpoint"
    written = checkpoints / "step-000000004"
    written.mkdir(parents=True)
    os.utime(written, (started - 3600, started - 3600))  # written by the killed run, before this process
    aside = checkpoints / f".step-000000004.deleting-{os.getpid()}"
    os.rename(written, aside)  # as trainlab.engine.checkpoint.remove does
    assert aside.stat().st_mtime < started - 1
    assert not is_stale_temporary(aside)
    assert clean_stale_temporaries(tmp_path) == [] and aside.is_dir()


# --- a kill before the first record is renamed into place ----------------------------------------------------


def test_resume_of_a_folder_killed_before_its_first_record_was_in_place_says_to_rerun_train(config, tmp_path,
                                                                                            capsys):
    run = tmp_path / "run"
    _train_killed_at(config, run, "os", "replace", ".labels.json.")
    names = sorted(p.name for p in run.iterdir())
    assert len(names) == 2 and names[0].startswith(".labels.json.") and names[1] == LOCK  # nothing else yet
    assert main(["resume", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {run} is not a trainlab run folder (no run.json); a 'trainlab train' into it "
                     "stopped before training started: rerun that same command"]
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0  # which works


def _folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    for name in names:
        (folder / name).write_text("")
    return folder


@pytest.mark.parametrize("names", [
    (LOCK, ".labels.json.b3sh1q8l.tmp"),
    (LOCK, ".config.yaml.x7_k2abc.tmp", ".model.json.q1w2e3r4.tmp"),
    (LOCK, "labels.json"),  # one record in place: as before
])
def test_trainlabs_own_leftovers_are_a_train_stopped_before_run_json(tmp_path, names):
    assert stopped_before_run_json(_folder(tmp_path, *names))


@pytest.mark.parametrize("names", [
    (LOCK,),  # a bare lock: nothing says trainlab made it
    (".labels.json.b3sh1q8l.tmp",),  # no lock: trainlab writes none of these without it
    (LOCK, ".notes.txt.b3sh1q8l.tmp"),  # a temporary of a file that is none of trainlab's records
    (LOCK, ".labels.json.b3sh1q8l.tmp", "mine.csv"),  # a user's file among them
    (LOCK, ".labels.json.tmp"),  # not mkstemp's name
])
def test_other_folders_are_not(tmp_path, names):
    assert not stopped_before_run_json(_folder(tmp_path, *names))


def test_resume_of_a_users_folder_gives_no_rerun_hint(tmp_path, capsys):
    folder = _folder(tmp_path, LOCK, ".labels.json.b3sh1q8l.tmp", "mine.csv")
    assert main(["resume", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {folder} is not a trainlab run folder (no run.json)"


def test_a_temporary_that_is_a_folder_is_not_trainlabs(tmp_path):
    folder = _folder(tmp_path, LOCK)
    (folder / ".labels.json.b3sh1q8l.tmp").mkdir()
    assert not stopped_before_run_json(folder)
