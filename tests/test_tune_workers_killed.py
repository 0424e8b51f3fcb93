"""A ``--jobs`` worker killed outright (SIGKILL, the out-of-memory killer) while another ends the study.

The other worker finished the study and every result was written, then "error: tune workers exited with
codes [0, -9]; see the lines above", exit 4, no summary, and no line above said anything. Now: one warning
naming the killed worker and its trial (recorded as failed), and the study ends as the other worker ended
it. Forked processes stand in for the spawned workers: the pool only starts, waits for and reads them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket

import pytest
from optuna.trial import TrialState

from tests.test_tune import settings
from trainlab.errors import TrainingError
from trainlab.tune.claims import claim_trial
from trainlab.tune.storage import claim_lock
from trainlab.tune.study import TuneSettings, prepare, study_for
from trainlab.tune.workers import StopFlag, _run_pool


def _claims_a_trial_then_is_killed(tune_settings: TuneSettings) -> None:
    claim_trial(study_for(tune_settings), tune_settings, claim_lock(tune_settings))
    os.kill(os.getpid(), signal.SIGKILL)


def _killed_between_trials(tune_settings: TuneSettings) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _ends_the_study(tune_settings: TuneSettings) -> None:
    """A worker that found the total claimed and nothing running: exit 0."""


def _pool(tune_settings: TuneSettings, *targets) -> list[multiprocessing.Process]:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=target, args=(tune_settings,)) for target in targets]
    _run_pool(tune_settings, workers, StopFlag(context))
    return workers


def test_a_killed_worker_is_one_warning_naming_its_trial_when_another_ends_the_study(tmp_path, capsys):
    tune_settings = settings(tmp_path, 2, jobs=2)
    prepare(tune_settings)
    capsys.readouterr()
    killed, _ = _pool(tune_settings, _claims_a_trial_then_is_killed, _ends_the_study)  # no error raised
    trial = study_for(tune_settings).trials[0]
    reason = f"worker pid {killed.pid} on {socket.gethostname()} died while the trial ran"
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == reason
    from trainlab.tune.results import duration_s

    assert trial.user_attrs["ended_by_a_later_worker"] is True and duration_s(trial) is None  # not its own end
    assert capsys.readouterr().err == (f"warning: tune worker pid {killed.pid} was killed (SIGKILL) while it ran "
                                       f"trial 0: the trial is recorded as FAIL ({reason}) and does not count; the "
                                       "other workers went on\n")


def test_a_worker_killed_between_trials_is_said_so(tmp_path, capsys):
    tune_settings = settings(tmp_path, 2, jobs=2)
    prepare(tune_settings)
    capsys.readouterr()
    killed, _ = _pool(tune_settings, _killed_between_trials, _ends_the_study)
    assert capsys.readouterr().err == (f"warning: tune worker pid {killed.pid} was killed (SIGKILL) between "
                                       "trials; the other workers went on\n")


def test_every_worker_killed_is_an_error_saying_how_to_continue(tmp_path, capsys):
    tune_settings = settings(tmp_path, 2, jobs=2)
    prepare(tune_settings)
    with pytest.raises(TrainingError, match=r"every tune worker was killed \(exit codes \[-9, -9\]\), so the "
                                            r"study stopped short of its total; rerun the same trainlab tune "
                                            r"command to continue the study to 2 trials"):
        _pool(tune_settings, _claims_a_trial_then_is_killed, _killed_between_trials)
    assert study_for(tune_settings).trials[0].state == TrialState.FAIL  # not left RUNNING in the results
    assert capsys.readouterr().err.count("warning: tune worker pid") == 2


def _interrupts_the_tune_once_a_sibling_died(tune_settings: TuneSettings) -> None:
    """Ctrl-C after the other worker was SIGKILLed: the tune process is signalled, this worker waits for the
    SIGINT it passes on."""
    import time

    for _ in range(400):  # the sibling claims trial 0, then kills itself at once
        if study_for(tune_settings).get_trials(deepcopy=False):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(os.getppid(), signal.SIGINT)
    for _ in range(1200):  # a worker ends its trial once the tune process sets the stop flag (a minute at most)
        if _STOP is not None and _STOP.is_set():
            return
        time.sleep(0.05)


_STOP: StopFlag | None = None  # the pool's stop flag, inherited by the forked workers


def test_a_worker_killed_before_an_interrupt_is_still_said(tmp_path, capsys):
    """The warning naming the killed worker came only when the study ended on its own; a Ctrl-C after the
    kill said the interrupt alone."""
    from trainlab.errors import Interrupted

    tune_settings = settings(tmp_path, 2, jobs=2)
    prepare(tune_settings)
    capsys.readouterr()
    context = multiprocessing.get_context("fork")
    global _STOP
    _STOP = StopFlag(context)
    workers = [context.Process(target=target, args=(tune_settings,))
               for target in (_claims_a_trial_then_is_killed, _interrupts_the_tune_once_a_sibling_died)]
    with pytest.raises(Interrupted, match="SIGINT received"):
        _run_pool(tune_settings, workers, _STOP)
    assert workers[0].exitcode == -signal.SIGKILL
    assert (f"warning: tune worker pid {workers[0].pid} was killed (SIGKILL) while it ran trial 0: the trial is "
            "recorded as FAIL") in capsys.readouterr().err
