"""`trainlab tune --jobs 2` stopped by a second SIGINT (Ctrl-C pressed twice, `timeout -s INT`, which signals the
process and then its group) while it stops its workers: the second raised a KeyboardInterrupt inside the wait for
the workers, so the tune process printed `error: interrupted` and wrote trials.csv and best.json while the workers
were still recording their trials (RUNNING in the files, FAIL in the journal). Now every later signal is only
recorded: the workers are waited for, the results are written from the study once they have stopped, and the one
line is the SIGINT advice."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tests.child_env import iris_on_file, with_repo_first
from trainlab.errors import Interrupted
from trainlab.sigterm import command_signals
from trainlab.tune.study import TuneSettings
from trainlab.tune.workers import interrupt_once

REPO = Path(__file__).resolve().parents[1]

BASE = {"name": "twice", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                     "epochs": 5000},  # trials that run until they are stopped
        "metrics": ["accuracy"], "runtime": {"num_threads": 1},
        "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
SPACE = {"strategy.optimizer.lr": {"low": 1.0e-4, "high": 0.5, "log": True}}


def _start_two_trials(tmp_path: Path) -> tuple[subprocess.Popen, Path, list[str]]:
    """``trainlab tune --jobs 2`` in its own session (a default SIGINT, as in a terminal), once both workers
    train a trial; with the pids of its children (its workers)."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(iris_on_file(BASE)))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "trainlab.cli", "tune", str(tmp_path / "base.yaml"), "--space",
               str(tmp_path / "space.yaml"), "--trials", "40", "--jobs", "2", "--pruner", "none", "--out", str(out),
               "--quiet"]
    tune = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": with_repo_first(REPO)}, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 120
    trials = out / "trials"
    try:
        while time.time() < deadline and tune.poll() is None and not all((trials / n).is_dir() for n in "01"):
            time.sleep(0.02)
        assert tune.poll() is None, tune.communicate()[1]
        assert all((trials / n).is_dir() for n in "01"), "the workers claimed no two trials in 120 s"
    except BaseException:
        _kill_left_running(tune)
        raise
    time.sleep(0.5)  # into their runs
    return tune, out, Path(f"/proc/{tune.pid}/task/{tune.pid}/children").read_text().split()


def _kill_left_running(tune: subprocess.Popen) -> None:
    """SIGKILL a tune still running (a failed assertion, a communicate that timed out) with its workers: its own
    session of trials that train until stopped would hold the CI machine's cores for hours."""
    if tune.poll() is None:
        os.killpg(tune.pid, signal.SIGKILL)
        tune.communicate()


def _assert_stopped_in_order(tune: subprocess.Popen, err: str, out: Path, children: list[str]) -> None:
    """One SIGINT advice line, exit 130, no worker left, every trial it cut short FAIL (interrupted), and
    results files that say what the journal says."""
    assert tune.returncode == 130, err
    assert err.startswith("error: SIGINT received: any trial it cut short is recorded as failed; rerun the same "
                          "trainlab tune command"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage)
    states = [t.state.name for t in study.trials]
    assert len(states) >= 2 and "RUNNING" not in states, states
    # a SIGINT while a worker records its trial's outcome leaves it "interrupted while its worker recorded..."
    assert all(t.state.name == "FAIL" and t.user_attrs["fail_kind"] == "interrupted"
               and t.user_attrs["fail_reason"].startswith(("SIGINT received", "interrupted while its worker"))
               for t in study.trials), [(t.user_attrs.get("fail_kind"), t.user_attrs.get("fail_reason"))
                                        for t in study.trials]
    time.sleep(0.5)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
    assert not alive, alive
    with open(out / "trials.csv") as handle:
        assert [row["state"] for row in csv.DictReader(handle)] == states
    counts = json.loads((out / "best.json").read_text())["counts"]
    assert counts == {state.name: states.count(state.name) for state in optuna.trial.TrialState}


@pytest.mark.slow
def test_a_second_sigint_while_the_workers_stop_waits_for_them(tmp_path):
    tune, out, children = _start_two_trials(tmp_path)
    try:
        tune.send_signal(signal.SIGINT)
        time.sleep(0.05)  # the tune process is passing it on to the workers, or waiting for them
        tune.send_signal(signal.SIGINT)
        _, err = tune.communicate(timeout=120)
    finally:
        _kill_left_running(tune)
    _assert_stopped_in_order(tune, err, out, children)


@pytest.mark.slow
def test_sigints_until_tune_exits_neither_cut_its_stop_nor_its_results_short(tmp_path):
    """A user who insists: a SIGINT every 20 ms, to the process and to its group (the workers), until it exits."""
    tune, out, children = _start_two_trials(tmp_path)
    deadline = time.time() + 120
    try:
        while tune.poll() is None and time.time() < deadline:
            for send in (tune.send_signal, lambda signum: os.killpg(tune.pid, signum)):
                try:
                    send(signal.SIGINT)
                except ProcessLookupError:  # it exited meanwhile
                    break
            time.sleep(0.02)
        _, err = tune.communicate(timeout=120)
    finally:
        _kill_left_running(tune)
    _assert_stopped_in_order(tune, err, out, children)


def test_a_signal_after_the_stop_left_the_workers_block_cannot_replace_its_line():
    """The CI failure of a user who insists: a SIGINT landed after interrupt_once had restored the CLI's
    handler, while its Interrupted unwound, and the KeyboardInterrupt it raised replaced the SIGINT advice
    by ``error: interrupted``. Once the study is stopped, the CLI's handler only records later signals."""
    received: list[int] = []
    settings = TuneSettings(base="base.yaml", space="space.yaml", trials=3, jobs=2)
    with command_signals(received, command="tune"):
        with pytest.raises(Interrupted, match="^SIGINT received: any trial it cut short is recorded as failed"):
            with interrupt_once(settings):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the handler raises at once
        try:
            os.kill(os.getpid(), signal.SIGINT)  # as the unwinding Interrupted passes the CLI's own blocks
            time.sleep(0.05)
        except KeyboardInterrupt:
            pytest.fail("a signal after the stop raised a KeyboardInterrupt: the CLI would say 'error: interrupted'")
    assert received == [signal.SIGINT]  # the later one, recorded (the first is the tune block's)
