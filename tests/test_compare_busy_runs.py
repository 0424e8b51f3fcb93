"""A comparison's run whose folder another process holds (``trainlab resume`` of it) is not run, not failed.

It was recorded as failed, ``RunDirError: run folder ... is in use by process N ...``, with the config hash:
every later comparison then skipped it as a failure for good ("1 of 1 runs already done in their folders:
skipped"), although the folder held a run to resume from its checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from tests.compare_configs import iris_base
from trainlab.cli import main
from trainlab.compare.run_actions import ERROR_FILE
from trainlab.engine.loop import Trainer
from trainlab.run_lock import RunLock

BASE = iris_base(epochs=3)


@pytest.fixture
def interrupted(tmp_path: Path, monkeypatch, capsys) -> tuple[list[str], Path]:
    """(compare's arguments, its one run's folder) after a SIGTERM at the first epoch's end: run.json
    ``interrupted``, with a checkpoint to resume from."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump({"strategies": {"a": None}}))
    args = ["compare", str(tmp_path / "base.yaml"), "--strategies", str(tmp_path / "strategies.yaml"),
            "--seeds", "1", "--jobs", "1", "--out", str(tmp_path / "cmp")]
    real = Trainer.end_epoch

    def end_epoch(self):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(Trainer, "end_epoch", end_epoch)
    assert main(args) == 128 + signal.SIGTERM
    monkeypatch.undo()
    capsys.readouterr()
    run = tmp_path / "cmp/runs/base/a/seed-0"
    assert _status(run) == "interrupted" and any((run / "checkpoint").glob("step-*"))
    return args, run


def _status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


def _entry(run: Path) -> dict:
    return json.loads((run.parents[3] / "leaderboard.json").read_text())["tasks"]["base"]["strategies"][0]


def test_a_run_folder_in_use_is_not_run_and_the_next_comparison_resumes_it(interrupted, capsys):
    args, run = interrupted
    other = RunLock(run)  # as `trainlab resume` of the run holds it (flock: this process's other open file)
    other.acquire()
    try:
        code = main(args)
    finally:
        other.release()
    out, err = capsys.readouterr()
    lock = run / ".lock"
    reason = f"busy: process {os.getpid()} holds its folder (lock {lock})"
    assert code == 2, (out, err)
    assert err == (f"error: 1 run of 1 not run: another process held its folder (base/a/seed-0: {reason}); "
                   f"{run.parents[3] / 'leaderboard.json'} lists it under 'not_run', left out of the statistics: "
                   "rerun the same command once that process has ended to resume it\n")
    assert f"base/a/seed-0: not run: {reason}" in out and f"not run: a seed 0: {reason}" in out
    assert "RunDirError" not in out and "RunDirError" not in (run.parents[3] / "leaderboard.json").read_text()
    entry = _entry(run)
    assert (entry["runs"], entry["failed"], entry["not_run"]) == (0, 0, [{"seed": 0, "reason": reason}])
    assert not (run / ERROR_FILE).exists() and _status(run) == "interrupted"  # nothing recorded: not its failure

    assert main(args) == 0  # that process has ended: resumed from its checkpoint
    out = capsys.readouterr().out
    assert "resuming base/a/seed-0 (status interrupted)" in out and "already done" not in out
    assert _status(run) == "finished" and _entry(run)["runs"] == 1


def test_an_earlier_version_s_failure_record_of_a_folder_in_use_is_no_failure(interrupted, capsys):
    args, run = interrupted
    info = json.loads((run / "run.json").read_text())
    lock = run / ".lock"
    (run / ERROR_FILE).write_text(json.dumps({
        "reason": f"RunDirError: run folder {run} is in use by process 17714 (lock {lock}); wait for it to finish "
                  "or choose another --out",
        "config_hash": info["config_hash"], "data_fingerprint": info["data_fingerprint"]}))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "resuming base/a/seed-0 (status interrupted)" in out and "skipped" not in out
    assert _status(run) == "finished" and not (run / ERROR_FILE).exists()


def test_a_failure_record_beside_a_run_finished_since_is_removed_and_the_run_counted_finished(interrupted,
                                                                                             capsys):
    """The run failed in an earlier comparison, then `trainlab resume` finished it: finished, not failed."""
    args, run = interrupted
    assert main(["resume", str(run), "--quiet"]) == 0
    info = json.loads((run / "run.json").read_text())
    (run / ERROR_FILE).write_text(json.dumps({"reason": "ValueError: the user's schedule raised",
                                              "config_hash": info["config_hash"],
                                              "data_fingerprint": info["data_fingerprint"]}))
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 of 1 runs already done in their folders: skipped" in out and "failed" not in out
    assert not (run / ERROR_FILE).exists()
    entry = _entry(run)
    assert (entry["runs"], entry["failed"]) == (1, 0)


def test_runs_skipped_as_failed_are_not_said_to_be_done(interrupted, capsys):
    args, run = interrupted
    info = json.loads((run / "run.json").read_text())
    (run / ERROR_FILE).write_text(json.dumps({"reason": "ValueError: the user's schedule raised",
                                              "config_hash": info["config_hash"],
                                              "data_fingerprint": info["data_fingerprint"]}))
    assert main(args) == 4  # no run finished
    out = capsys.readouterr().out
    assert "already done" not in out
    assert ("1 run of 1 failed in an earlier invocation: skipped, reported as failed (delete a run's folder to "
            "train it again)") in out
