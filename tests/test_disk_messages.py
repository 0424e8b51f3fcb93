"""What tune, predict, plot and the CLI say when the disk is full: the file that could not be written, and
one piece of advice that fits the command. No root or mounts: a full disk is an ``OSError(ENOSPC)`` raised
where the write happens (as ``write()`` raises it: naming no file), or ``/dev/full`` as standard output."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import trainlab.cli
from tests.test_tune import BASE, read_trials, settings, write
from trainlab.cli import main
from trainlab.errors import EXIT_SYSTEM, WriteError
from trainlab.tune import tune
from trainlab.tune.claims import RERUN
from trainlab.tune.leases import Lease
from trainlab.tune.study import write_failure_text

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
TOKEN = "0123456789abcdef0123456789abcdef"


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, NO_SPACE)  # as write() on a descriptor raises it: no file named


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------- 6a: the lease file, the advice

def test_a_lease_that_cannot_be_written_names_its_file(tmp_path, monkeypatch):
    """``os.write`` on the lease's descriptor names no file: the CLI said `cannot write: No space left on device`."""
    monkeypatch.setattr(os, "write", _no_space)
    with pytest.raises(OSError) as raised:
        Lease.take(tmp_path / "leases", TOKEN)
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / "leases" / TOKEN)
    assert Lease.take(tmp_path / "leases", TOKEN).path == tmp_path / "leases" / TOKEN  # its descriptor was let go


def test_tune_on_a_full_disk_names_the_lease_and_says_to_rerun_the_same_command(tmp_path, monkeypatch, capsys):
    """`trainlab tune` with no space left: the first write that fails is the trial's lease (a write on a
    descriptor). The line named no file and said "resume", which is no tune command."""
    base, space = write(tmp_path)
    out = tmp_path / "out"
    real_write = os.write

    def lease_write(descriptor: int, data) -> int:  # only the lease files' writes meet the full disk
        if "/.tune.leases/" in os.readlink(f"/proc/self/fd/{descriptor}"):
            _no_space()
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", lease_write)
    code = main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(out), "--quiet"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == EXIT_SYSTEM
    lease = re.escape(str(out / ".tune.leases")) + "/[0-9a-f]{32}"
    assert re.fullmatch(rf"error: cannot write \({lease}\): {NO_SPACE}; rerun the same command once the disk is "
                        "writable", line), line


def test_a_jobs_worker_whose_lease_cannot_be_written_says_one_line_and_exits_5(tmp_path, monkeypatch, capsys):
    """A `tune --jobs` worker's OSError outside a trial (its claim's lease) was a traceback and exit 1, which
    the tune process called a worker failure (exit 4) instead of the disk's (exit 5). The worker's entry point
    is called here, in this process: its start-up (threads, death signal) left out, its signal handlers put back."""
    import threading

    import trainlab.tune.workers as workers
    from trainlab.tune.study import prepare

    tune_settings = settings(tmp_path, 2, pruner="none")
    prepare(tune_settings)  # the study, as the tune process makes it before starting workers
    monkeypatch.setattr(workers, "start_worker", lambda *args, **kwargs: None)
    monkeypatch.setattr(Lease, "take", classmethod(lambda cls, folder, token: _no_space_at(folder / token)))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exited:
            workers._worker_main(tune_settings, None, threading.Event())
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert exited.value.code == EXIT_SYSTEM
    line = _one_error_line(capsys.readouterr().err)
    lease = re.escape(str(tune_settings.out / ".tune.leases")) + "/[0-9a-f]{32}"
    assert re.fullmatch(rf"error: cannot write \({lease}\): {NO_SPACE}", line), line


def _no_space_at(path: Path):
    raise OSError(errno.ENOSPC, NO_SPACE, str(path))


def _argv(command: str, tmp_path: Path) -> list[str]:
    config = str(tmp_path / "base.yaml")
    return {
        "train": ["train", config],
        "train --out": ["train", config, "--out", str(tmp_path / "run")],
        "train --overwrite": ["train", config, "--out", str(tmp_path / "run"), "--overwrite"],
        "resume": ["resume", str(tmp_path / "run")],
        "compare": ["compare", config, "--strategies", str(tmp_path / "s.yaml")],
        "tune": ["tune", config, "--space", str(tmp_path / "space.yaml"), "--trials", "2"],
        "report": ["report", str(tmp_path / "run")],
    }[command]


@pytest.mark.parametrize("command, advice", [
    ("train", "; finished checkpoints are intact, resume once the disk is writable"),
    ("train --out", "; finished checkpoints are intact: once the disk is writable, trainlab resume {run}"),
    # the staged run is no run folder yet: `resume --out` would find the old one
    ("train --overwrite", "; finished checkpoints are intact, resume once the disk is writable"),
    ("resume", "; finished checkpoints are intact: once the disk is writable, trainlab resume {run}"),
    ("compare", "; rerun the same command once the disk is writable"),
    ("tune", "; rerun the same command once the disk is writable"),
    ("report", ""),
])
def test_a_full_disk_gets_the_advice_of_its_command(tmp_path, monkeypatch, capsys, command, advice):
    """train and resume continue a run by `trainlab resume`; compare and tune by running the same command
    again (every command said "resume once the disk is writable"); other commands have nothing to continue."""
    name = command.split()[0]

    def full(args):
        raise OSError(errno.ENOSPC, NO_SPACE, "/x/file")

    monkeypatch.setitem(trainlab.cli.COMMANDS, name, full)
    assert main(_argv(command, tmp_path)) == EXIT_SYSTEM
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"error: cannot write (/x/file): {NO_SPACE}" + advice.format(run=tmp_path / "run")


# --------------------------------------------------------------------------- 6b: a trial's failed write said once

def test_a_trial_whose_run_lock_cannot_be_written_says_the_file_and_one_advice(tmp_path, monkeypatch):
    """The run lock's pid write fails (a real run: RunDir.create, whose WriteError adds "training had not
    started: rerun the same command"). The fail_reason and the error line said "cannot write (cannot write
    (FILE): ...; training had not started: rerun the same command ...)"."""
    monkeypatch.setattr(os, "pwrite", _no_space)  # only the run lock writes with pwrite
    tune_settings = settings(tmp_path, 2, pruner="none")
    with pytest.raises(WriteError) as raised:
        tune(tune_settings)
    lock = tune_settings.out / "trials" / "0" / ".lock"
    assert str(raised.value) == (f"trial 0 stopped: cannot write ({lock}): {NO_SPACE}; it is recorded as failed "
                                 "(interrupted) and does not count: once the disk is writable, rerun the same "
                                 "trainlab tune command to continue the study to 2 trials")
    rows = read_trials(tune_settings.out)
    assert [row["fail_reason"] for row in rows] == [f"cannot write ({lock}): {NO_SPACE}: interrupted; {RERUN}"]


@pytest.mark.parametrize("failure, said", [
    (OSError(errno.ENOSPC, NO_SPACE, "/o/trials/3/model.safetensors"),
     f"cannot write (/o/trials/3/model.safetensors): {NO_SPACE}"),
    (OSError(errno.ENOSPC, NO_SPACE), f"cannot write: {NO_SPACE}"),
    (WriteError(f"cannot write (/o/trials/3/.lock): {NO_SPACE}; training had not started: rerun the same command "
                "once the disk is writable"), f"cannot write (/o/trials/3/.lock): {NO_SPACE}"),
    (WriteError(f"cannot create run folder /o/trials/3: {NO_SPACE}"), f"cannot create run folder /o/trials/3: {NO_SPACE}"),
])
def test_write_failure_text_is_what_was_not_written_without_the_runs_advice(failure, said):
    assert write_failure_text(failure) == said


# --------------------------------------------------------------------------- 6c: predict's standard output; plot

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    base, _ = write(folder, {**BASE, "strategy": {**BASE["strategy"], "epochs": 1}})
    assert main(["train", str(base), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


def test_predict_to_a_full_standard_output_says_it_is_standard_output(finished_run, tmp_path, monkeypatch, capsys):
    """`trainlab predict RUN x.npz > FILE` on a full disk said only `cannot write: No space left on device`."""
    features = tmp_path / "x.npz"
    np.savez(features, x=np.random.default_rng(0).random((20, 4)).astype(np.float32))
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC, as a file on a full disk
        monkeypatch.setattr(sys, "stdout", full)
        code = main(["predict", str(finished_run), str(features), "--proba"])
        monkeypatch.undo()
    assert code == EXIT_SYSTEM
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"error: cannot write the predictions to standard output: {NO_SPACE}"


@pytest.mark.parametrize("damage, said", [("truncated", "empty"), ("removed", "missing")])
def test_plot_of_a_finished_run_without_its_metrics_is_a_data_error(finished_run, tmp_path, capsys, damage, said):
    """A finished run (run.json finished, summary.json) whose metrics.jsonl is empty or gone has lost its
    records: it said "the run recorded no epoch yet" with exit 2, as for a run still in its first epoch."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert json.loads((run / "run.json").read_text())["status"] == "finished" and (run / "summary.json").is_file()
    metrics = run / "metrics.jsonl"
    if damage == "truncated":  # `truncate -s 0 RUN/metrics.jsonl`
        metrics.write_text("")
    else:
        metrics.unlink()
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert line == (f"error: nothing to plot: {metrics} is {said} though the run finished (run.json, summary.json): "
                    "its epoch records are lost; summary.json still holds the final metrics")
    assert not (tmp_path / "c.png").exists()
