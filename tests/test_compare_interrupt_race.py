"""A comparison stopped (Ctrl-C, SIGTERM) while one of its runs finishes starts no further run.

The signal lands in the finishing run's own handler (trainlab.callbacks.signal_stop), which lets the run
complete: it used to be said only as that run's ``warning: SIGTERM received while finishing; the run is
complete`` (SIGTERM: the one a pool's parent passes on after the user's Ctrl-C), and the comparison, which
never heard of it, started the next run (in the worker, or in-process with --jobs 1) and trained it whole
before the interrupt line.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from ctypes import c_int
from multiprocessing import RawArray, RawValue
from pathlib import Path

import pytest

import trainlab.experiment as experiment
from tests.child_env import skip_where_compare_spawns
from tests.compare_configs import iris_base
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.compare import compare, pool, runner
from trainlab.compare.absorbed_signals import signals_during
from trainlab.compare.strategies import parse_strategies
from trainlab.errors import Interrupted
from trainlab.notices import warn

BASE = iris_base(epochs=2)
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def _status(folder: Path) -> str | None:
    info = folder / "run.json"
    return json.loads(info.read_text())["status"] if info.exists() else None


def _signal_while_finishing(monkeypatch, signum: int, target: int) -> None:
    """The first run to finish sends ``signum`` to process ``target`` as its final evaluation starts
    (trainlab.experiment.summarize runs inside the run's own signal handler), once."""
    real, sent = experiment.summarize, []

    def summarize(built):
        if not sent:
            sent.append(signum)
            os.kill(target, signum)
            time.sleep(0.1)  # the handler runs here: the run's own, which lets it complete
        return real(built)

    monkeypatch.setattr(experiment, "summarize", summarize)


# --------------------------------------------------------------------------- --jobs 1: in this process


@SIGNALS
def test_a_signal_as_a_run_finishes_starts_no_further_run_in_process(signum, tmp_path: Path, monkeypatch, capfd):
    _signal_while_finishing(monkeypatch, signum, os.getpid())
    strategies = parse_strategies({"strategies": {"a": None, "b": None}})
    out = tmp_path / "cmp"
    with pytest.raises(Interrupted) as caught:
        compare({"iris": BASE}, strategies, out, seeds=1, jobs=1, live=False, quiet=True)
    assert not (out / "runs/iris/b").exists()  # not started after the signal
    assert _status(out / "runs/iris/a/seed-0") == "finished"
    assert caught.value.exit_code == 128 + signum
    assert str(caught.value) == ("interrupted: 1 run was finishing and completed; run the same command again to "
                                 "finish the comparison")
    err = capfd.readouterr().err
    assert "received while finishing" not in err and "Traceback" not in err, err  # the interrupt line says it


def test_a_signal_as_the_last_run_finishes_completes_the_comparison_with_one_warning(tmp_path: Path, monkeypatch,
                                                                                      capfd):
    """Every run done: nothing is left to stop, so the leaderboard is written (exit 0, as for a signal once the
    runs are complete), with one warning in the comparison's words, not the run's."""
    _signal_while_finishing(monkeypatch, signal.SIGINT, os.getpid())
    out = tmp_path / "cmp"
    board = compare({"iris": BASE}, parse_strategies({"strategies": {"a": None}}), out, seeds=1, jobs=1,
                    live=False, quiet=True)
    assert board["tasks"]["iris"]["strategies"][0]["runs"] == 1 and (out / "leaderboard.json").exists()
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: SIGINT received while finishing; the comparison's runs are complete"]


# --------------------------------------------------------------------------- --jobs 2: the pool's workers


def test_a_ctrl_c_as_the_workers_runs_finish_starts_no_queued_run(tmp_path: Path, monkeypatch, capfd):
    """Both workers' first runs are finishing when the parent is stopped; the parent's SIGTERM lands in their
    runs' own handlers. Each worker had a second run queued: neither may start it."""
    skip_where_compare_spawns("this test's monkeypatched experiment.summarize")
    real, parent = experiment.summarize, os.getpid()
    marks = tmp_path / "marks"
    marks.mkdir()

    def summarize(built):
        if os.getpid() != parent:
            (marks / f"finishing-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while len(list(marks.glob("finishing-*"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)  # both first runs in their final evaluation
            try:
                os.close(os.open(marks / "signalled", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                os.kill(parent, signal.SIGTERM)  # as a Ctrl-C reaches the parent (the workers ignore SIGINT)
            except FileExistsError:
                pass
            # still finishing when the parent's SIGTERM comes: wait until the run's own handler (a SignalStop's,
            # installed for the whole run) has taken it, not a fixed time a busy machine may overrun
            run_signals = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
            assert isinstance(run_signals, SignalStop), signal.getsignal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            while signal.SIGTERM not in run_signals.signals and time.monotonic() < deadline:
                time.sleep(0.02)
        return real(built)

    monkeypatch.setattr(experiment, "summarize", summarize)
    strategies = parse_strategies({"strategies": {"a": None, "b": None}})
    out = tmp_path / "cmp"
    with pytest.raises(Interrupted) as caught:
        compare({"iris": BASE}, strategies, out, seeds=2, jobs=2, live=False, quiet=True)
    assert not list(out.glob("runs/iris/*/seed-1")), "a queued run started after the signal"
    assert [_status(out / f"runs/iris/{s}/seed-0") for s in "ab"] == ["finished", "finished"]
    assert caught.value.exit_code == 128 + signal.SIGTERM
    assert str(caught.value) == ("interrupted: 2 runs were finishing and completed; run the same command again "
                                 "to finish the comparison")
    err = capfd.readouterr().err
    assert "received while finishing" not in err and "Traceback" not in err, err


def test_a_worker_takes_no_queued_run_once_the_pool_is_stopped(monkeypatch):
    """The pool's stop value, set by the parent before its SIGTERMs: a worker that never saw the SIGTERM (it went
    to its finishing run's handler, or the worker was stopped, SIGSTOP, and takes it late) starts nothing."""
    def must_not_run(*args):
        raise AssertionError("a run started after the comparison was stopped")

    monkeypatch.setattr(runner, "execute", must_not_run)
    monkeypatch.setattr(pool, "_run_slots", (RawArray("q", 1), RawArray("d", 1)))
    monkeypatch.setattr(pool, "_pool_stop", RawValue(c_int, signal.SIGINT), raising=False)
    outcome = pool._execute_in_slot(0, "iris", "a", 0, dict(BASE), "/nonexistent", "new")
    assert outcome["status"] == "interrupted" and outcome["signum"] == signal.SIGINT


# --------------------------------------------------------------------------- what execute sees of a run's signal


def test_signals_during_sees_a_signal_another_handler_took_and_holds_back_the_run_s_warning(caplog):
    taken: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: taken.append(signum))  # the run's handler
    logger = logging.getLogger("trainlab")
    logger.addHandler(caplog.handler)
    try:
        with signals_during() as seen:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            warn("SIGTERM received while finishing; the run is complete")
            warn("validation split is empty")
        assert taken == [signal.SIGTERM] and seen == [signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)  # after the block: not seen
        time.sleep(0.05)
        assert seen == [signal.SIGTERM]
        assert signal.set_wakeup_fd(-1) == -1  # the previous wakeup fd (none) came back
    finally:
        signal.signal(signal.SIGTERM, previous)
        logger.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records] == ["validation split is empty"]
