"""``trainlab tune --jobs 2`` where its trials fail or its SIGINT is ignored.

* A study whose trials all diverged printed three ``error:`` lines (each worker's, "7 trials failed (as many
  as --trials)" and "6 trials failed", then the pool's "tune workers exited with codes [4, 4]; see the lines
  above") and ran 7 failures for ``--trials 6``: a second worker claimed while the sixth was failing. Now
  no claim runs past the limit, and the workers' errors are said once, by the tune process.
* Started with SIGINT ignored (``nohup``, a script's ``cmd &``), the tune process went on after a SIGINT to
  its process group but its workers stopped on it: trials FAIL (interrupted), exit 4. Now the workers
  ignore it as the tune process does and the study completes.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.child_env import iris_on_file, with_repo_first
from tests.test_tune import BASE, settings
from trainlab.errors import EXIT_SYSTEM, Interrupted, WriteError
from trainlab.notices import shared_once
from trainlab.tune.claims import StudyExhausted, claim_trial
from trainlab.tune.storage import FileLock
from trainlab.tune.worker_errors import relay
from trainlab.tune.workers import StopFlag, _run_pool

REPO = Path(__file__).resolve().parents[1]


def _failed(study: optuna.Study, why: str) -> None:
    trial = study.ask()
    trial.set_user_attr("fail_kind", "diverged")
    trial.set_user_attr("fail_reason", why)
    study.tell(trial, state=TrialState.FAIL)


def test_no_claim_runs_past_as_many_failures_as_trials(tmp_path):
    """Two of 3 failed and one runs (a live worker elsewhere): were it to fail, that is the limit, so no
    trial is claimed until it ends; then its outcome decides between a claim and the study's end."""
    study, tune_settings = optuna.create_study(direction="maximize"), settings(tmp_path, 3)
    lock = FileLock(tmp_path / ".tune.lock")
    _failed(study, "diverged at step 1")
    _failed(study, "diverged at step 2")
    elsewhere = study.ask()
    for key, value in (("host", "other-machine"), ("pid_start", 1), ("pid", 4242)):
        elsewhere.set_user_attr(key, value)
    assert claim_trial(study, tune_settings, lock) is None
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 1  # nothing was asked for

    completed = optuna.create_study(direction="maximize")  # the same, the running trial then completing
    for trial in study.trials[:2]:
        completed.add_trial(trial)
    completed.add_trial(optuna.trial.create_trial(value=0.5, state=TrialState.COMPLETE))
    assert claim_trial(completed, tune_settings, lock) is not None

    elsewhere.set_user_attr("fail_kind", "diverged")  # or failing: as many failures as --trials
    elsewhere.set_user_attr("fail_reason", "diverged at step 3")
    study.tell(elsewhere, state=TrialState.FAIL)
    with pytest.raises(StudyExhausted, match=r"^3 trials failed \(as many as --trials\); the last, trial 2: "
                                             r"diverged at step 3$"):
        claim_trial(study, tune_settings, lock)


def _command(tmp_path: Path, base: dict, space: dict, *extra: str) -> list[str]:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(iris_on_file(base)))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    return [sys.executable, "-m", "trainlab.cli", "tune", str(tmp_path / "base.yaml"), "--space",
            str(tmp_path / "space.yaml"), "--jobs", "2", "--pruner", "none", "--out", str(tmp_path / "out"),
            "--quiet", *extra]


def _states(out: Path) -> list[str]:
    with open(out / "trials.csv") as handle:
        return [row["state"] for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_a_study_whose_trials_all_fail_says_so_once_with_jobs(tmp_path):
    base = {**BASE, "strategy": {**BASE["strategy"], "optimizer": {"name": "sgd", "lr": 1.0e8}, "epochs": 3}}
    space = {"strategy.optimizer.lr": {"low": 1.0e7, "high": 1.0e8, "log": True}}
    tune = subprocess.run(_command(tmp_path, base, space, "--trials", "3"), capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": with_repo_first(REPO)}, timeout=300)
    lines = tune.stderr.strip().splitlines()
    assert tune.returncode == 4, tune.stderr
    assert len(lines) == 1 and lines[0].startswith("error: 3 trials failed (as many as --trials); the last, "
                                                   "trial "), tune.stderr
    assert _states(tmp_path / "out") == ["FAIL"] * 3  # not a fourth, claimed while the third was failing


@pytest.mark.slow
def test_workers_of_a_tune_that_ignores_sigint_ignore_it_too(tmp_path):
    base = {**BASE, "strategy": {**BASE["strategy"], "epochs": 100}}
    space = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}
    tune = subprocess.Popen(_command(tmp_path, base, space, "--trials", "2"), stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": with_repo_first(REPO)}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as `cmd &` starts it
    trials = tmp_path / "out" / "trials"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and tune.poll() is None and not (trials / "0").is_dir():
            time.sleep(0.02)
        assert tune.poll() is None, tune.communicate()[1]
        time.sleep(0.3)  # into its run
        os.killpg(tune.pid, signal.SIGINT)  # the whole group: the tune process and its workers
        err = tune.communicate(timeout=300)[1]
    finally:
        if tune.poll() is None:
            os.killpg(tune.pid, signal.SIGKILL)
            tune.communicate()
    assert tune.returncode == 0 and "error:" not in err, err
    assert _states(tmp_path / "out") == ["COMPLETE"] * 2


def test_a_worker_claims_again_when_the_trial_it_waited_for_ended_before_it_looked(tmp_path, monkeypatch):
    """A claim found nothing to claim (a trial ran), and that trial ended before the worker looked for running
    ones: the worker left, one worker fewer for the rest of the study (the last, none). Now it claims once
    more, and leaves only when a second claim finds nothing either."""
    import trainlab.tune.study as study_module
    from trainlab.tune.study import prepare, run_trials, study_for

    tune_settings = settings(tmp_path, 1)
    space, base_raw = prepare(tune_settings)
    real, calls = study_module.claim_trial, []

    def first_finds_a_running_trial(*args, **kwargs):
        calls.append(1)
        return None if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(study_module, "claim_trial", first_finds_a_running_trial)
    run_trials(tune_settings, space, base_raw, deadline=None)
    assert [t.state for t in study_for(tune_settings).trials] == [TrialState.COMPLETE]
    assert len(calls) == 4  # nothing, the trial, the total reached (none running), and once more to be sure


# --------------------------------------------------------------------------- relayed errors, said in time

def _stops_with(said: str, message: str, code: int) -> None:
    """A spawned worker that relays ``message`` and exits with ``code``."""
    relay(said, message, code)
    sys.exit(code)


def _runs_on(said: str) -> None:
    """A spawned worker still running its trial: it ends on a signal (130), or 1.5 s after another relayed."""
    signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    while not any(name.startswith("error-") for name in os.listdir(said)):
        time.sleep(0.05)
    time.sleep(1.5)


def _when_relayed(said: str, then) -> None:
    def watch() -> None:
        while not any(name.startswith("error-") and not name.endswith(".part") for name in os.listdir(said)):
            time.sleep(0.05)
        then()

    import threading

    threading.Thread(target=watch, daemon=True).start()


@pytest.mark.slow
def test_an_interrupt_after_a_worker_stopped_on_an_error_says_that_error_too(tmp_path):
    """The relayed error of a worker that stopped while another ran on was lost when a Ctrl-C ended the pool
    (the workers no longer print their errors; the pool's folder went with the interrupt)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with shared_once() as said:
        workers = [context.Process(target=_stops_with, args=(said, "the study's storage refused it", 2)),
                   context.Process(target=_runs_on, args=(said,))]
        _when_relayed(said, lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(Interrupted) as raised:
            _run_pool(settings(tmp_path, 3), workers, StopFlag(context), said)
    assert str(raised.value).endswith("; before it, a tune worker had stopped: the study's storage refused it")
    assert raised.value.exit_code == 130


@pytest.mark.slow
def test_a_worker_stopped_by_a_full_disk_is_said_at_once_and_its_line_ends_the_study(tmp_path, capsys):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    why = "cannot write (/out/.tune.leases/x): No space left on device"
    with shared_once() as said:
        workers = [context.Process(target=_stops_with, args=(said, why, EXIT_SYSTEM)),
                   context.Process(target=_runs_on, args=(said,))]
        with pytest.raises(WriteError) as raised:
            _run_pool(settings(tmp_path, 3), workers, StopFlag(context), said)
    pid = workers[0].pid
    assert capsys.readouterr().err == (f"warning: tune worker pid {pid} stopped: {why}; the other workers finish "
                                       "their running trials and claim no further one\n")  # while the other ran on
    assert str(raised.value).startswith(f"{why}; once the disk is writable, rerun the same trainlab tune command")
    assert raised.value.exit_code == EXIT_SYSTEM


_FLAG_HOLDER = """
import os, time, multiprocessing
from multiprocessing import resource_tracker
from trainlab.tune.workers import StopFlag

def child(flag, running, parent):
    running.set()
    while not flag.is_set() and os.getppid() == parent:  # until the holder is killed
        time.sleep(0.05)

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    flag, running = StopFlag(context), StopFlag(context)
    process = context.Process(target=child, args=(flag, running, os.getpid()))
    process.start()
    while not running.is_set():
        time.sleep(0.05)
    resource_tracker.ensure_running()
    print(resource_tracker._resource_tracker._pid, process.pid, flush=True)
    time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sigkilled_tune_leaves_no_leaked_semaphore_warning_on_its_terminal(tmp_path):
    """kill -9 of `tune --jobs 2`: minutes later its terminal showed Python's "resource_tracker: There appear to
    be 5 leaked semaphore objects to clean up at shutdown": the workers' stop was a multiprocessing.Event."""
    script = tmp_path / "holder.py"
    script.write_text(_FLAG_HOLDER)
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": with_repo_first(Path(__file__).resolve().parents[1])}
    with log.open("w") as stderr:
        holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                  env=env)
        tracker, child = map(int, holder.stdout.readline().split())
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 60
    while not (_gone(child) and _gone(tracker)) and time.time() < deadline:
        time.sleep(0.05)
    assert _gone(child) and _gone(tracker)
    assert "leaked" not in log.read_text(), log.read_text()
