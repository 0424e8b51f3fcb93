"""``trainlab compare --jobs N`` when a worker process dies (SIGKILL: the out-of-memory killer, a user's kill).

A ProcessPoolExecutor whose worker dies is broken: every unfinished run's future fails and the other workers
are stopped. The comparison must lose only the run the dead worker had (not run, the machine's, when a signal
killed it: exit 5, and the next invocation trains it), carry on with the others in new workers (a stopped run
resuming from its checkpoint), and never hang or loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.child_env import skip_where_compare_spawns, with_repo_first
from tests.compare_configs import iris_base
from trainlab.callbacks.base import Callback
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.compare import compare
from trainlab.compare.strategies import parse_strategies
from trainlab.errors import WriteError

ROOT = Path(__file__).resolve().parents[1]

BASE = iris_base(epochs=3)
KILLED = "worker died: killed by SIGKILL, perhaps out of memory"


def _board(board: dict) -> dict[str, tuple[int, int, list[str]]]:
    """strategy -> (finished runs, failed runs, failure reasons)."""
    return {e["name"]: (e["runs"], e["failed"], [f["reason"] for f in e["failures"]])
            for e in board["tasks"]["iris"]["strategies"]}


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


class _Slow(Callback):
    """Keeps a run in progress long enough for another worker to die meanwhile: once ``dying`` exists (that
    worker is about to SIGKILL itself), until the parent's SIGTERM for the broken pool has reached this run's
    handler, however long a busy machine takes to get there (the run has only ~0.8 s left otherwise)."""

    def __init__(self, dying: Path):
        self.dying = dying

    def on_step_end(self, view, loss) -> None:
        time.sleep(0.05)
        if self.dying.exists():
            run_signals = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
            assert isinstance(run_signals, SignalStop), signal.getsignal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            while signal.SIGTERM not in run_signals.signals and time.monotonic() < deadline:
                time.sleep(0.02)


def test_a_worker_killed_under_its_run_costs_that_run_only(tmp_path: Path, monkeypatch, capsys):
    """doomed/seed-0 SIGKILLs its own worker once a/seed-0 (in the other worker) has checkpointed: only
    doomed/seed-0 is not run (a signal from outside its Python code: the machine's, not its strategy's failure);
    a/seed-0, stopped by the broken pool, resumes in a new worker; the rest run."""
    import trainlab.experiment as experiment
    import trainlab.run_resume as run_resume

    skip_where_compare_spawns("this test's monkeypatched experiment.train")
    real_train, real_resume, parent = experiment.train, run_resume.resume, os.getpid()
    log = tmp_path / "attempts.log"  # every train/resume call of any worker, one line each (O_APPEND)
    out = tmp_path / "cmp"
    dying = tmp_path / "doomed-worker-dying"

    def train(config, out=None, **kwargs):
        folder = Path(out)
        label = f"{folder.parent.name}/{folder.name}"
        with log.open("a") as f:
            f.write(f"train {label}\n")
        if label == "doomed/seed-0" and os.getpid() != parent:
            other = folder.parents[1] / "a" / "seed-0" / "checkpoint"
            deadline = time.monotonic() + 60
            while not any(other.glob("step-*")) and time.monotonic() < deadline:
                time.sleep(0.01)
            dying.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if label == "a/seed-0":
            kwargs["callbacks"] = [_Slow(dying)]
        return real_train(config, out=out, **kwargs)

    def resume(path, **kwargs):
        with log.open("a") as f:
            f.write(f"resume {Path(path).parent.name}/{Path(path).name}\n")
        return real_resume(path, **kwargs)

    monkeypatch.setattr(experiment, "train", train)
    monkeypatch.setattr(run_resume, "resume", resume)
    strategies = parse_strategies({"strategies": {"a": None, "doomed": None}})
    with pytest.raises(WriteError, match="rerun the same command to retry it$"):  # exit 5
        compare({"iris": BASE}, strategies, out, seeds=2, jobs=2, live=False, quiet=True)
    board = json.loads((out / "leaderboard.json").read_text())

    assert _board(board) == {"a": (2, 0, []), "doomed": (1, 0, [])}
    doomed = board["tasks"]["iris"]["strategies"][1]
    assert doomed["missing"] == 1 and doomed["not_run"] == [{"seed": 0, "reason": KILLED}]
    attempts = log.read_text().splitlines()
    assert attempts.count("train doomed/seed-0") == 1  # not run at its first death, never tried again here
    assert attempts.count("train a/seed-0") == 1 and attempts.count("resume a/seed-0") == 1  # not from scratch
    record = json.loads((out / "runs/iris/doomed/seed-0/compare-error.json").read_text())
    assert (record["reason"], record["machine_failure"]) == (KILLED, True)
    assert record["config_hash"] is not None  # a second death of this config in a row is its failure
    printed = capsys.readouterr().out.splitlines()
    assert not any("BrokenProcessPool" in line for line in printed), printed
    died = [line for line in printed if "died" in line]
    assert len(died) == 1, printed  # the death (quiet: no line per run)
    assert died[0].startswith("worker process ") and died[0].endswith(
        " died (killed by SIGKILL, perhaps out of memory) while running iris/doomed/seed-0")
    assert "starting new workers for the 3 unfinished runs (a stopped run resumes from its checkpoint)" in printed

    # the next invocation tries the dead worker's run again (the machine's record), and only it
    monkeypatch.undo()
    others = {p: _mtimes(p) for p in (out / "runs/iris").glob("*/seed-*") if p != out / "runs/iris/doomed/seed-0"}
    again = compare({"iris": BASE}, strategies, out, seeds=2, jobs=2, live=False, quiet=True)
    assert _board(again) == {"a": (2, 0, []), "doomed": (2, 0, [])}
    assert not (out / "runs/iris/doomed/seed-0/compare-error.json").exists()
    assert {p: _mtimes(p) for p in others} == others


_KILL_THE_IDLE_WORKER = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path

    import trainlab.experiment as experiment
    from trainlab.cli import main
    from trainlab.compare import pool

    real_train = experiment.train

    def train(config, out=None, **kwargs):
        folder = Path(out)
        comparison = folder.parents[3]
        (comparison / f"{folder.parent.name}.pid").write_text(str(os.getpid()))
        if folder.parent.name == "slow":  # kill the other worker once it waits for a run that never comes
            fast = folder.parents[1] / "fast" / folder.name / "run.json"
            while not (fast.exists() and json.loads(fast.read_text())["status"] == "finished"):
                time.sleep(0.02)
            # its run is over for the pool too: the parent's run slot holds minus its pid once execute returned
            # (a run.json that says finished comes earlier; killed before, the run is the one it died under)
            fast_pid = int((comparison / "fast.pid").read_text())
            while -fast_pid not in pool._run_slots[0][:]:
                time.sleep(0.02)
            time.sleep(0.5)  # then it waits for the next run, holding the task queue's lock
            os.kill(fast_pid, signal.SIGKILL)
        return real_train(config, out=out, **kwargs)

    experiment.train = train
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_a_worker_killed_between_runs_neither_hangs_the_comparison_nor_fails_a_run(tmp_path: Path):
    """The idle worker holds the task queue's lock while it waits: killed, it left the other worker waiting
    for that lock for ever, deaf to the executor's SIGTERM, and compare hung (even SIGTERM did not end it)."""
    base = tmp_path / "iris.yaml"
    base.write_text(yaml.safe_dump(BASE))
    strategies = tmp_path / "s.yaml"
    strategies.write_text(yaml.safe_dump({"strategies": {"fast": None, "slow": None}}))
    script = tmp_path / "compare_killing_a_worker.py"
    script.write_text(_KILL_THE_IDLE_WORKER)
    out = tmp_path / "cmp"
    out.mkdir()
    command = [sys.executable, str(script), "compare", str(base), "--strategies", str(strategies), "--seeds", "1",
               "--jobs", "2", "--out", str(out)]
    # CUDA hidden: compare then forks its workers, which alone inherit the script's patched experiment.train
    environment = {**os.environ, "PYTHONPATH": with_repo_first(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        printed, _ = process.communicate(timeout=180)  # two runs of a few seconds: far more is a hang
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("compare hung after its idle worker was killed")
    assert process.returncode == 0, printed
    board = json.loads((out / "leaderboard.json").read_text())
    assert _board(board) == {"fast": (1, 0, []), "slow": (1, 0, [])}
    fast_pid = (out / "fast.pid").read_text()
    assert (f"worker process {fast_pid} died (killed by SIGKILL, perhaps out of memory) between runs: "
            "the worker pool broke") in printed.splitlines()
    assert "BrokenProcessPool" not in printed and "Traceback" not in printed


def _die_at_start(*args) -> None:
    os._exit(3)  # a worker that cannot start (its initializer dies): every pool breaks before any run


def test_a_pool_that_breaks_again_and_again_fails_the_runs_instead_of_looping(tmp_path: Path, monkeypatch, capsys):
    from trainlab.compare import pool

    monkeypatch.setattr(pool, "_pin_worker", _die_at_start)
    strategies = parse_strategies({"strategies": {"a": None, "b": None}})
    started = time.monotonic()
    board = compare({"iris": BASE}, strategies, tmp_path / "cmp", seeds=1, jobs=2, live=False, quiet=True)
    assert time.monotonic() - started < 60
    runs = _board(board)
    assert set(runs) == {"a", "b"} and all(r[:2] == (0, 1) for r in runs.values())
    for _, _, (reason,) in runs.values():
        assert reason.startswith("worker died: the worker pool broke 2 times with this run unfinished, the last "
                                 "time: worker process "), reason
        # the worker that died is named; a second, stopped by the parent while it was still starting (the
        # parent's SIGTERM handler, inherited by the fork, raises there: exit 1), may be named after it
        assert " died (exited with code 3)" in reason, reason
    printed = capsys.readouterr().out
    assert printed.count("between runs: the worker pool broke") == 2  # then no third pool


def test_a_run_whose_execute_returned_is_no_suspect_of_a_break():
    """A run that had finished when the pool broke (its result lost) was counted a break: at two such breaks a
    finished run was recorded failed in the leaderboard."""
    from trainlab.compare.pool import suspects

    assert suspects([0, 1, 2, 3], [-11, 12, 0, -13]) == [1]  # in progress
    assert suspects([0, 2, 3], [-11, 12, 0, -13]) == [2]  # none in progress: the runs not yet started
    assert suspects([0, 3], [-11, 12, 0, -13]) == []  # both had returned
