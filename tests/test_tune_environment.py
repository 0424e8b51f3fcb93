"""trainlab tune against its environment: a full or read-only disk (in a trial's run folder, in the study's
journal) and a SIGTERM to the tune process alone. No root or mounts: a full disk is an OSError raised where
the write happens, or a real one of a subprocess whose file size is limited (RLIMIT_FSIZE: a write past the
limit is cut short, then fails with EFBIG, as a write to a full disk is cut short, then fails with ENOSPC)."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

import trainlab.experiment
from tests.test_tune import BASE, _command, _env, read_trials, settings, write
from trainlab.errors import EXIT_SYSTEM, TrainingError, WriteError
from trainlab.tune import tune
from trainlab.tune.storage import open_storage


def _journal_study(out: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage)


# --------------------------------------------------------------------------- a trial's run folder

@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device", "checkpoints/last.safetensors"),
    OSError(errno.EROFS, "Read-only file system", "run.json"),
    WriteError("cannot create run folder trials/0: No space left on device"),
])
def test_a_full_disk_stops_the_study_at_its_first_trial_which_does_not_count(tmp_path, monkeypatch, failure):
    """Each trial's ENOSPC was an ordinary failure: the study used up --trials on them (exit 4), and the same
    command then refused at once. Now the first stops the study (exit 5, saying to rerun once the disk is
    writable), its trial is recorded as interrupted, and the same call, with space, ends with the total."""
    real_train = trainlab.experiment.train

    def disk_full(config, out, **kwargs):
        out.mkdir(parents=True)
        raise failure

    monkeypatch.setattr(trainlab.experiment, "train", disk_full)
    tune_settings = settings(tmp_path, 3, pruner="none")
    with pytest.raises(WriteError) as raised:
        tune(tune_settings)
    assert raised.value.exit_code == EXIT_SYSTEM
    message = str(raised.value)
    assert "trial 0" in message and "once the disk is writable" in message and "\n" not in message
    rows = read_trials(tmp_path / "out")
    assert [row["state"] for row in rows] == ["FAIL"]  # the first trial stopped it
    study = _journal_study(tmp_path / "out")
    assert study.trials[0].user_attrs["fail_kind"] == "interrupted"
    assert rows[0]["fail_reason"].startswith(("cannot write (", "cannot create run folder")), rows[0]["fail_reason"]

    monkeypatch.setattr(trainlab.experiment, "train", real_train)
    best = tune(tune_settings)  # the same call continues once the disk is writable
    rows = read_trials(tmp_path / "out")
    assert [row["state"] for row in rows] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    again = rows[1]  # the base config, queued again: the disk, not the base, failed its first run
    assert (again["strategy.optimizer.name"], float(again["strategy.optimizer.lr"])) == ("adam", 0.01)
    assert best["trial"] in (1, 2, 3)


def test_an_error_that_is_no_write_failure_still_fails_only_its_trial(tmp_path, monkeypatch):
    """The other side of the rule: an OSError that is not the disk's (here a missing file) is the trial's own."""
    def missing(config, out, **kwargs):
        raise OSError(errno.ENOENT, "No such file or directory", "data.csv")

    monkeypatch.setattr(trainlab.experiment, "train", missing)
    with pytest.raises(TrainingError, match="2 trials failed"):
        tune(settings(tmp_path, 2, pruner="none"))
    assert [row["state"] for row in read_trials(tmp_path / "out")] == ["FAIL", "FAIL"]


# --------------------------------------------------------------------------- the study's journal

def _fill_after(limit: int):
    """An ``os.write`` that writes up to ``limit`` bytes of the journal in all, then fails as a full disk."""
    real_write = os.write
    written = [0]

    def write_some(descriptor: int, data) -> int:
        room = limit - written[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        count = real_write(descriptor, bytes(data[:room]))
        written[0] += count
        return count

    return write_some


def test_a_journal_append_cut_off_by_a_full_disk_leaves_the_journal_as_it_was(tmp_path, monkeypatch):
    """The append is cut back to the journal's length before it, and the error names the journal (exit 5)."""
    tune_settings = settings(tmp_path, 2)
    storage = open_storage(tune_settings)
    study = optuna.create_study(storage=storage, study_name="s")
    journal = tmp_path / "out" / "study.journal"
    before = journal.read_bytes()
    monkeypatch.setattr(os, "write", _fill_after(10))  # ten bytes of the record, then no space
    with pytest.raises(WriteError, match=f"cannot write the study's journal {journal}: No space left on device"):
        study.ask()
    monkeypatch.undo()
    assert journal.read_bytes() == before
    trial = study.ask()  # the same process goes on, once there is space
    study.tell(trial, 1.0)
    assert [t.state.name for t in _journal_study(tmp_path / "out").trials] == ["COMPLETE"]


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_whole_record_whose_fsync_fails_stays_for_the_workers_that_read_it(tmp_path, monkeypatch, failure):
    """Every byte of the record was written and only its fsync failed (ENOSPC/EDQUOT at fsync is typical on
    NFS) or was interrupted, while another worker read the whole line. Cutting the record back then shifted
    that worker's byte offsets into the next record: its next read failed (JSONDecodeError). The line stays,
    the error (an OSError) says the record "may not be on disk", and every reader reads every record."""
    from optuna.storages.journal import JournalFileBackend

    from trainlab.tune.storage import JournalWriteError, WholeRecordJournal, journal_lock

    path = tmp_path / "study.journal"
    writer = WholeRecordJournal(str(path), lock_obj=journal_lock(path))
    reader = JournalFileBackend(str(path))  # another worker's backend, with its own byte offsets
    writer.append_logs([{"op": 0}])
    assert list(reader.read_logs(0)) == [{"op": 0}]
    seen = []

    def fsync_fails(descriptor: int) -> None:
        seen.extend(reader.read_logs(1))  # the other worker reads the whole line meanwhile
        raise failure

    monkeypatch.setattr(os, "fsync", fsync_fails)
    expected = JournalWriteError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as raised:
        writer.append_logs([{"op": 1, "n": 1}])
    monkeypatch.undo()
    assert seen == [{"op": 1, "n": 1}]
    writer.append_logs([{"op": 2, "pad": "x" * 5}])
    writer.append_logs([{"op": 3}])
    assert list(reader.read_logs(2)) == [{"op": 2, "pad": "xxxxx"}, {"op": 3}]
    fresh = JournalFileBackend(str(path))  # a worker that opens the study now reads the same records
    assert [log["op"] for log in fresh.read_logs(0)] == [0, 1, 2, 3]
    if isinstance(failure, OSError):
        assert "the record was written but may not be on disk" in str(raised.value)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_a_run_folder_that_cannot_be_written_for_permission_stops_the_study(tmp_path, monkeypatch, code):
    """A trial's run folder that cannot be written for permission's sake (EACCES/EPERM, exit 5 elsewhere:
    errors.WRITE_ERRNOS) fails every later trial the same way: it stops the study as a full disk does, the
    trial recorded as interrupted, instead of using up --trials (exit 4)."""
    def denied(config, out, **kwargs):
        raise PermissionError(code, os.strerror(code), str(out / "run.json"))

    monkeypatch.setattr(trainlab.experiment, "train", denied)
    with pytest.raises(WriteError) as raised:
        tune(settings(tmp_path, 3, pruner="none"))
    assert raised.value.exit_code == EXIT_SYSTEM
    assert f"): {os.strerror(code)}; it is recorded as failed" in str(raised.value) and "trial 0" in str(raised.value)
    assert [row["state"] for row in read_trials(tmp_path / "out")] == ["FAIL"]
    assert _journal_study(tmp_path / "out").trials[0].user_attrs["fail_kind"] == "interrupted"


def _limited(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.slow
def test_a_full_journal_mid_study_stops_it_with_one_line_naming_the_journal_and_the_rerun_continues(tmp_path):
    """`tune` whose journal fills up mid-study (a real cut-off write): Optuna's append left the fragment, the
    next record was glued to it and the same process died with `error: JSONDecodeError` (exit 4); a
    failed append with no file named said `error: cannot write: No space left on device`."""
    base, space = write(tmp_path, {**BASE, "strategy": {**BASE["strategy"], "epochs": 3}})
    out = tmp_path / "out"
    limit = 6000  # bytes per file: the journal reaches it during trial 1 or 2 (a run's checkpoint, refused, warns)
    command = _command(base, space, out, 4, "--pruner", "none")
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(limit))
    journal = out / "study.journal"
    assert done.returncode == EXIT_SYSTEM, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # a run's warnings aside
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: cannot write the study's journal {journal.absolute()}: File too large")
    lines = journal.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") and json.loads(line) for line in lines)  # whole records only
    assert 0 < journal.stat().st_size <= limit

    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "damaged" not in rerun.stderr
    rows = read_trials(out)
    assert sum(row["state"] == "COMPLETE" for row in rows) == 4


# --------------------------------------------------------------------------- SIGTERM to the tune process

@pytest.mark.slow
def test_a_sigterm_to_the_tune_process_alone_with_jobs_records_the_trials_and_says_so_once(tmp_path):
    """`kill PID` of `tune --jobs 2` (SIGTERM to the main process only, as docker stop or a scheduler sends
    it): the process died by the signal's default action (no line, rc -15), its workers with it, and the
    trials stayed RUNNING. Now: exit 143, one `error:` line, every trial FAIL (interrupted), no worker left.
    `kill -INT PID` (SIGINT to the main process only) is passed on to the workers the same way, and a
    terminal's Ctrl-C (SIGINT to the whole group) is one stop too: test_tune_double_interrupt sends both."""
    signum = signal.SIGTERM
    base, space = write(tmp_path, {**BASE, "strategy": {**BASE["strategy"], "epochs": 500}})
    out = tmp_path / "out"
    tune_process = subprocess.Popen(_command(base, space, out, 4, "--jobs", "2", "--pruner", "none"), env=_env(),
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and tune_process.poll() is None and not all(
            (out / "trials" / str(n) / "run.json").exists() for n in (0, 1)):
        time.sleep(0.05)  # until both workers train
    children = Path(f"/proc/{tune_process.pid}/task/{tune_process.pid}/children").read_text().split()
    assert tune_process.poll() is None, tune_process.stderr.read()
    tune_process.send_signal(signum)
    try:
        _, err = tune_process.communicate(timeout=120)
    finally:
        if tune_process.poll() is None:
            os.killpg(tune_process.pid, signal.SIGKILL)
    name = signal.Signals(signum).name
    assert tune_process.returncode == 128 + signum, err
    assert err.startswith(f"error: {name} received") and len(err.strip().splitlines()) == 1, err
    time.sleep(0.5)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
    assert not alive
    trials = _journal_study(out).trials
    assert len(trials) >= 2 and all(t.state.name == "FAIL" for t in trials), [t.state for t in trials]
    assert all(t.user_attrs["fail_kind"] == "interrupted" and name in t.user_attrs["fail_reason"]
               for t in trials)
    assert [row["state"] for row in read_trials(out)] == ["FAIL"] * len(trials)
