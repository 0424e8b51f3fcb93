"""A comparison under hostile storage: runs the machine stopped (a full or read-only disk, a folder that
cannot be created, memory) are *not run*, never failures of their strategy: listed under ``not_run``, exit 5,
and trained by the next invocation of the same command; a leaderboard or report.html that cannot be written
is one ``error:`` line, exit 5, with the comparison's own advice (rerun the same command).

The disk is made to refuse with monkeypatched writes (in-process runs: ``--jobs 1``), as a 5 MiB tmpfs or a
read-only folder would.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import yaml

import trainlab.experiment
import trainlab.report
from tests.test_compare import BASE
from trainlab.cli import main
from trainlab.compare import runner
from trainlab.compare.machine_failure import is_machine_failure, recorded_machine_failure
from trainlab.compare.run_actions import ERROR_FILE, plan_runs, run_action
from trainlab.compare.strategies import parse_strategies
from trainlab.engine.loop import Trainer
from trainlab.errors import DataError, WriteError

NO_SPACE = "No space left on device"
STRATEGIES = {"strategies": {"adam": None, "sgd": {"strategy.optimizer": {"name": "sgd", "lr": 0.1}}}}


def _folder(tmp_path: Path) -> Path:
    """base.yaml (iris, 3 epochs, a checkpoint every epoch) and s.yaml (adam, sgd) in ``tmp_path``."""
    base = {**BASE, "strategy": {**BASE["strategy"], "epochs": 3},
            "output": {**BASE["output"], "checkpoint": {"every_n_epochs": 1}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(STRATEGIES))
    return tmp_path


def _args(folder: Path, seeds: int = 2) -> list[str]:
    return ["compare", str(folder / "base.yaml"), "--strategies", str(folder / "s.yaml"), "--seeds", str(seeds),
            "--jobs", "1", "--out", str(folder / "out")]


def _entries(folder: Path) -> dict[str, dict]:
    board = json.loads((folder / "out" / "leaderboard.json").read_text())
    return {entry["name"]: entry for entry in board["tasks"]["base"]["strategies"]}


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _no_space(path: Path) -> OSError:
    return OSError(errno.ENOSPC, NO_SPACE, str(path))


# --------------------------------------------------------------------------- defect: a full disk is retried

def test_a_run_a_full_disk_stopped_before_training_is_not_run_then_trained_by_the_same_command(tmp_path, monkeypatch,
                                                                                            capsys):
    """The disk full when sgd seed 1 writes model.json (before run.json): not a failure of sgd (it would rank
    sgd on one seed, "too few seeds"), and never skipped as one: the same command trains it once there is room."""
    folder = _folder(tmp_path)
    real = trainlab.experiment.write_data_records
    stopped = folder / "out" / "runs" / "base" / "sgd" / "seed-1"

    def full_disk(run, built, records=None):
        if run.path == stopped:
            raise _no_space(run.path / "model.json")
        return real(run, built, records)

    monkeypatch.setattr(trainlab.experiment, "write_data_records", full_disk)
    assert main(_args(folder)) == 5
    out, err = capsys.readouterr()
    assert f"base/sgd/seed-1: not run: cannot write ({stopped / 'model.json'}): {NO_SPACE}" in out
    assert _error_line(err) == (
        f"error: 1 run of 4 could not run for the machine's reasons (base/sgd/seed-1: cannot write "
        f"({stopped / 'model.json'}): {NO_SPACE}); {folder / 'out' / 'leaderboard.json'} lists it under 'not_run', "
        "left out of the statistics: rerun the same command once the disk is writable to train it")
    assert "sgd seed 1: cannot write" in out and "n=1, 1 not run" in out  # the table says which seed is missing
    sgd = _entries(folder)["sgd"]
    assert (sgd["runs"], sgd["failed"], sgd["missing"]) == (1, 0, 1)
    assert sgd["not_run"] == [{"seed": 1, "reason": f"cannot write ({stopped / 'model.json'}): {NO_SPACE}"}]
    assert json.loads((stopped / ERROR_FILE).read_text())["machine_failure"] is True

    monkeypatch.setattr(trainlab.experiment, "write_data_records", real)  # the disk has room again
    assert main(_args(folder)) == 0
    out, err = capsys.readouterr()
    assert "3 of 4 runs already done in their folders: skipped" in out
    assert not (stopped / ERROR_FILE).exists()
    assert json.loads((stopped / "run.json").read_text())["status"] == "finished"
    sgd = _entries(folder)["sgd"]
    assert (sgd["runs"], sgd["failed"], sgd["missing"], sgd["not_run"]) == (2, 0, 0, [])


@pytest.mark.parametrize("record_written", [True, False], ids=["error-recorded", "no-room-for-the-error-record"])
def test_a_run_a_full_disk_stopped_mid_training_is_resumed_by_the_same_command(tmp_path, monkeypatch, capsys,
                                                                               record_written):
    """The disk full while adam seed 0 trains (its metrics.jsonl): resumed by the rerun from its checkpoint,
    whether its compare-error.json fitted or not (retrying used to depend on that record not fitting)."""
    folder = _folder(tmp_path)
    stopped = folder / "out" / "runs" / "base" / "adam" / "seed-0"
    real_fit, calls = Trainer.fit, []

    def fit_then_full_disk(self):
        state = real_fit(self)
        calls.append(1)
        if len(calls) == 1:  # the first run of the comparison: base/adam/seed-0
            raise _no_space(stopped / "metrics.jsonl")
        return state

    monkeypatch.setattr(Trainer, "fit", fit_then_full_disk)
    if not record_written:
        real_write = runner.write_json
        monkeypatch.setattr(runner, "write_json", lambda path, value: (
            (_ for _ in ()).throw(_no_space(path)) if path.name == ERROR_FILE else real_write(path, value)))
    assert main(_args(folder)) == 5
    out, err = capsys.readouterr()
    reason = f"cannot write ({stopped / 'metrics.jsonl'}): {NO_SPACE}"
    assert f"base/adam/seed-0: not run: {reason}" in out
    assert "Errno" not in out + err  # the CLI's words, never the OSError's repr
    assert _error_line(err).startswith(f"error: 1 run of 4 could not run for the machine's reasons (base/adam/seed-0: "
                                       f"{reason});")
    assert (stopped / ERROR_FILE).exists() == record_written
    assert json.loads((stopped / "run.json").read_text())["status"] == "running"  # left at its checkpoints
    adam = _entries(folder)["adam"]
    assert (adam["runs"], adam["failed"], adam["missing"]) == (1, 0, 1)
    assert adam["not_run"] == [{"seed": 0, "reason": reason}]

    monkeypatch.undo()
    assert main(_args(folder)) == 0
    out, _ = capsys.readouterr()
    assert "resuming base/adam/seed-0 (status running)" in out
    assert json.loads((stopped / "run.json").read_text())["status"] == "finished"
    adam = _entries(folder)["adam"]
    assert (adam["runs"], adam["failed"], adam["missing"]) == (2, 0, 0)


# --------------------------------------------------------------------------- defect: new runs cannot be created

def test_new_runs_whose_folders_cannot_be_created_are_not_run_and_exit_5(tmp_path, monkeypatch, capsys):
    """A second seed added to a finished comparison whose strategy folders are read-only (permission denied):
    the table headed "2 seeds" showed n=1 with no mark, leaderboard.json "failed": 0, exit 0."""
    folder = _folder(tmp_path)
    assert main(_args(folder, seeds=1)) == 0
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.name == "seed-1":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    capsys.readouterr()
    assert main(_args(folder, seeds=2)) == 5
    out, err = capsys.readouterr()
    new = folder / "out" / "runs" / "base" / "adam" / "seed-1"
    reason = f"cannot create output folder {new}: Permission denied"
    assert f"base/adam/seed-1: not run: {reason}" in out
    assert "2 seeds" in out and out.count("n=1, 1 not run") == 2
    assert _error_line(err) == (
        f"error: 2 runs of 4 could not run for the machine's reasons (base/adam/seed-1: {reason}); "
        f"{folder / 'out' / 'leaderboard.json'} lists them under 'not_run', left out of the statistics: rerun the "
        "same command once the disk is writable to train them")
    for name, entry in _entries(folder).items():
        assert (entry["runs"], entry["failed"], entry["missing"]) == (1, 0, 1)
        assert entry["not_run"] == [{"seed": 1, "reason": reason.replace("/adam/", f"/{name}/")}]


# --------------------------------------------------------------------------- defects: the leaderboard, the report

def test_a_report_the_disk_refuses_is_one_error_line_and_exit_5(tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path)
    cmp = folder / "out"

    def full_disk(paths, out, **options):
        raise _no_space(out)

    monkeypatch.setattr(trainlab.report, "write_report", full_disk)
    assert main(_args(folder, seeds=1)) == 5
    assert _error_line(capsys.readouterr().err) == (
        f"error: cannot write ({cmp / 'report.html'}): {NO_SPACE}; the leaderboard ({cmp / 'leaderboard.json'}) and "
        "the runs are written: rerun the same command once the disk is writable (finished runs are not trained "
        f"again), or write the report elsewhere: trainlab report {cmp} -o FILE")
    assert {e["runs"] for e in _entries(folder).values()} == {1}  # the leaderboard stays written


def test_a_leaderboard_the_disk_refuses_says_to_rerun_the_same_command(tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path)
    cmp = folder / "out"
    import trainlab.compare.outputs as outputs

    def full_disk(board, out):
        raise _no_space(out / "leaderboard.json")

    monkeypatch.setattr(outputs, "write_leaderboard", full_disk)
    assert main(_args(folder, seeds=1)) == 5
    assert _error_line(capsys.readouterr().err) == (
        f"error: cannot write ({cmp / 'leaderboard.json'}): {NO_SPACE}; the runs are written: rerun the same "
        "command once the disk is writable (finished runs are not trained again)")


# --------------------------------------------------------------------------- which failures are the machine's

@pytest.mark.parametrize("exc, machine", [
    (OSError(errno.ENOSPC, NO_SPACE, "m.json"), True),
    (OSError(errno.EROFS, "Read-only file system", "m.json"), True),
    (PermissionError(errno.EACCES, "Permission denied", "runs"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (WriteError("cannot create output folder runs: Permission denied"), True),
    (MemoryError(), True),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "mydata.csv"), False),  # would repeat
    (OSError(errno.ENAMETOOLONG, "File name too long"), False),
    (ValueError("bad schedule"), False),
    (KeyError("boom"), False),
    (DataError("CSV file wine.csv has no target column 'tgt'"), False),
])
def test_only_the_machine_s_failures_are_retried(exc, machine):
    assert is_machine_failure(exc) is machine


@pytest.mark.parametrize("record, machine", [
    ({"reason": "cannot write (m.json): No space left on device", "machine_failure": True}, True),
    ({"reason": "WriteError: cannot write (m.json): No space left on device", "machine_failure": False}, False),
    # written before the flag: by the reason, as compare wrote it then (type name: message)
    ({"reason": "WriteError: cannot write (m.json): No space left on device; training had not started"}, True),
    ({"reason": "OSError: [Errno 28] No space left on device: 'runs/a/metrics.jsonl'"}, True),
    ({"reason": "PermissionError: [Errno 13] Permission denied: 'runs/a'"}, True),
    ({"reason": "MemoryError"}, True),
    ({"reason": "FileNotFoundError: [Errno 2] No such file or directory: 'x.csv'"}, False),
    ({"reason": "KeyError: 'late boom'"}, False),
    ({"reason": "worker died: killed by SIGKILL, perhaps out of memory", "config_hash": None}, False),
])
def test_a_recorded_failure_is_the_machine_s_by_its_flag_or_an_older_record_s_reason(record, machine):
    assert recorded_machine_failure(record) is machine


@pytest.mark.parametrize("reason, machine_failure, action", [
    ("cannot write (model.json): No space left on device", True, "new"),  # trained again
    ("OSError: [Errno 28] No space left on device: 'metrics.jsonl'", None, "new"),  # an older record
    ("ValueError: the user's schedule raised", False, "failed"),  # would fail again: skipped as failed
])
def test_run_action_retries_a_run_the_machine_stopped_and_skips_one_that_would_fail_again(tmp_path, reason,
                                                                                          machine_failure, action):
    [plan] = plan_runs({"base": dict(BASE)}, parse_strategies({"strategies": {"plain": None}}), [0], tmp_path)
    config = plan.config
    record = {"reason": reason, "config_hash": config.hash(), "data_fingerprint": runner.current_data_fingerprint(config)}
    if machine_failure is not None:
        record["machine_failure"] = machine_failure
    plan.path.mkdir(parents=True)
    (plan.path / ERROR_FILE).write_text(json.dumps(record))
    assert run_action(plan)[0] == action
