"""trainlab tune's claims cut short: a Ctrl-C while a trial is being claimed, a trial left RUNNING by this
very process, an RDB trial whose worker died before its first heartbeat."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import trainlab.tune.claims as claims
from tests.test_tune import read_trials, settings
from trainlab.tune import TuneSettings, tune
from trainlab.tune.claims import claim_trial, fail_dead_workers
from trainlab.tune.storage import FileLock


def _study(tmp_path: Path, trials: int, storage: optuna.storages.BaseStorage | None = None) -> tuple[optuna.Study, TuneSettings, FileLock]:
    study = optuna.create_study(direction="maximize", storage=storage)
    return study, settings(tmp_path, trials), FileLock(tmp_path / ".tune.lock")


def _others(study: optuna.Study) -> tuple[int, int]:
    """A finished trial and a trial a live worker on another host runs: what an interrupted claim must leave as is."""
    done = study.ask()
    study.tell(done, 0.5)
    elsewhere = study.ask()
    for key, value in (("host", "other-machine"), ("pid_start", 1), ("pid", 4242)):
        elsewhere.set_user_attr(key, value)
    return done.number, elsewhere.number


def _interrupt_once(monkeypatch, owner, name: str) -> None:
    """``owner.name`` raises KeyboardInterrupt (a Ctrl-C landing there) on its first call, after doing its work."""
    real = getattr(owner, name)
    calls = []

    def interrupted(*args, **kwargs):
        result = real(*args, **kwargs)
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(owner, name, interrupted)


@pytest.mark.parametrize("where", ["recording its start", "releasing the lock", "sampling it", "popping the base"])
def test_a_ctrl_c_while_a_trial_is_claimed_leaves_it_failed_as_interrupted_not_running(tmp_path, monkeypatch,
                                                                                      where):
    study, tune_settings, lock = _study(tmp_path, 4)
    base = {"strategy.optimizer.lr": 0.01} if where == "popping the base" else None
    if base is not None:  # the base config's trial was interrupted: the claim queues it again and pops it
        first = claim_trial(study, tune_settings, lock, base)
        first.set_user_attr("fail_kind", "interrupted")
        study.tell(first, state=TrialState.FAIL)
    done, elsewhere = _others(study)
    if where == "recording its start":
        _interrupt_once(monkeypatch, claims, "process_start")  # after the trial is asked, before its pid is set
    elif where == "releasing the lock":
        _interrupt_once(monkeypatch, FileLock, "release")  # the claim is complete, pid and all
    else:  # inside Optuna's ask(): the trial exists in the storage, the claim has no handle on it yet
        real_build, built = claims.build_sampler, []

        def build(seed, number):
            sampler = real_build(seed, number)
            if not built:  # the first claim's: in Trial(), after the trial exists
                _interrupt_once(monkeypatch, sampler, "before_trial")
            built.append(sampler)
            return sampler

        monkeypatch.setattr(claims, "build_sampler", build)
    with pytest.raises(KeyboardInterrupt):
        claim_trial(study, tune_settings, lock, base)
    trials = study.get_trials()
    assert trials[done].state == TrialState.COMPLETE and trials[done].value == 0.5
    assert trials[elsewhere].state == TrialState.RUNNING  # a live worker's: untouched
    cut = [t for t in trials if t.number not in (done, elsewhere) and t.number >= done]
    assert len(cut) == 1 and cut[0].state == TrialState.FAIL, [(t.number, t.state) for t in trials]
    assert cut[0].user_attrs["fail_kind"] == "interrupted"
    assert bool(cut[0].user_attrs.get("base_config")) == (where == "popping the base")
    assert lock.acquire()  # the lock is free again
    lock.release()
    again = claim_trial(study, tune_settings, lock, base)  # the next claim: the base config again, if it was its
    assert again is not None and bool(again.user_attrs.get("base_config")) == (where == "popping the base")
    assert study.get_trials()[elsewhere].state == TrialState.RUNNING


def test_a_trial_this_process_claimed_and_no_longer_runs_is_failed_as_dead(tmp_path):
    """A trial left RUNNING by this very process (a Ctrl-C in the tell that records its result, and tune run
    again in the same Python session): it is no trial this process runs, so the next claim fails it; before,
    the claim token alone kept it 'alive' and a study at its total waited for it without end."""
    study, tune_settings, lock = _study(tmp_path, 1)
    left = claim_trial(study, tune_settings, lock)
    assert fail_dead_workers(study) == []  # claimed and running here: alive
    claims.release_claim(left)  # what run_trials does once the trial is over, however it ended
    again = claim_trial(study, tune_settings, lock)
    assert study.get_trials()[left.number].state == TrialState.FAIL
    assert study.get_trials()[left.number].user_attrs["fail_kind"] == "stale"
    assert again is not None and again.number == left.number + 1


class _ReleaseInterrupted(FileLock):
    """The claim lock, where a Ctrl-C lands just as the first claim releases it: the claim itself was complete
    (``claimed`` is set when a claim records its worker's start)."""

    claimed: list[bool] = []
    interrupted: list[bool] = []

    def release(self) -> None:
        super().release()
        if self.claimed and not self.interrupted:
            self.interrupted.append(True)
            raise KeyboardInterrupt


def _states(out: Path) -> list[tuple[str, str]]:
    """(state, the fail reason's first word) of each row of trials.csv."""
    return [(row["state"], row["fail_reason"].split(" ")[0]) for row in read_trials(out)]


def test_tune_cut_short_in_its_claim_records_no_running_trial_and_a_rerun_in_the_same_session_finishes(
        tmp_path, monkeypatch):
    """Before, the trial stayed RUNNING (trials.csv said so), naming this live process with a claim token it
    drew: tune run again from the same Python session (a notebook) counted it and waited for it until --timeout."""
    import trainlab.tune.study as study_module

    tune_settings = settings(tmp_path, 1, timeout_s=60.0)
    monkeypatch.setattr(_ReleaseInterrupted, "interrupted", [])
    monkeypatch.setattr(_ReleaseInterrupted, "claimed", [])
    real_start = claims.process_start
    monkeypatch.setattr(claims, "process_start", lambda pid: _ReleaseInterrupted.claimed.append(True) or real_start(pid))
    monkeypatch.setattr(study_module, "claim_lock", lambda s: _ReleaseInterrupted(s.out / ".tune.lock"))
    with pytest.raises(KeyboardInterrupt):
        tune(tune_settings)
    assert _states(tune_settings.out) == [("FAIL", "interrupted")]
    started = time.time()
    best = tune(tune_settings)  # the same process: its claim token is no longer held
    assert time.time() - started < 50
    assert best["trial"] == 1 and _states(tune_settings.out) == [("FAIL", "interrupted"), ("COMPLETE", "")]


def test_a_ctrl_c_in_the_tell_recording_a_trial_fails_it_and_a_rerun_in_the_same_session_finishes(
        tmp_path, monkeypatch):
    """The run finished, and a Ctrl-C lands in the tell that records its value: the trial is failed as
    interrupted (its run folder stays complete); before, it stayed RUNNING and a rerun from the same Python
    session waited for it until --timeout."""
    tune_settings = settings(tmp_path, 1, timeout_s=60.0)
    real_tell, told = optuna.Study.tell, []

    def tell(self, trial, values=None, state=None, skip_if_finished=False):
        if values is not None and not told:
            told.append(values)
            raise KeyboardInterrupt
        return real_tell(self, trial, values, state, skip_if_finished)

    monkeypatch.setattr(optuna.Study, "tell", tell)
    with pytest.raises(KeyboardInterrupt):
        tune(tune_settings)
    assert _states(tune_settings.out) == [("FAIL", "interrupted")] and told
    assert json.loads((tune_settings.out / "trials" / "0" / "run.json").read_text())["status"] == "finished"
    started = time.time()
    best = tune(tune_settings)
    assert time.time() - started < 50
    assert best["trial"] == 1 and _states(tune_settings.out) == [("FAIL", "interrupted"), ("COMPLETE", "")]


def _rdb(tmp_path: Path, interval: int = 20, grace: int = 60) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=interval,
                                          grace_period=grace)


def test_an_rdb_trial_whose_worker_died_claiming_it_is_failed_not_waited_for(tmp_path):
    """RDB storages: Optuna's heartbeat check passes over a RUNNING trial that never recorded a heartbeat, so
    one left by a worker killed while claiming it (no pid yet) stayed RUNNING for good: every later worker of
    a study at its total waited for it without end. A pid-less trial older than the heartbeat grace period
    is a dead claim's (younger, it may be a live claim of a worker that does not share the lock)."""
    study, tune_settings, lock = _study(tmp_path, 3, storage=_rdb(tmp_path, interval=1, grace=2))
    with warnings.catch_warnings():  # "heartbeats are meant for optimize()"
        warnings.simplefilter("ignore", UserWarning)
        left = study.ask()  # as a worker killed inside its claim left it: RUNNING, no pid, no heartbeat
    claimed = claim_trial(study, tune_settings, lock)
    assert study.get_trials()[left.number].state == TrialState.RUNNING  # just made: maybe a claim under way
    assert claimed is not None and claimed.number == left.number + 1
    time.sleep(2.5)
    assert left.number in fail_dead_workers(study)
    left_now = study.get_trials()[left.number]
    assert left_now.state == TrialState.FAIL and left_now.user_attrs["fail_kind"] == "stale"
    assert "died while claiming it" in left_now.user_attrs["fail_reason"]


def test_an_rdb_claim_records_a_first_heartbeat_so_a_worker_killed_right_after_it_is_failed(tmp_path):
    """The heartbeat thread starts after the claim; a worker killed in between left a trial with its pid but
    no heartbeat, which Optuna's check never fails. The claim records the first heartbeat itself."""
    study, tune_settings, lock = _study(tmp_path, 2, storage=_rdb(tmp_path, interval=1, grace=1))
    claimed = claim_trial(study, tune_settings, lock)  # and no heartbeat thread: its worker died at once
    time.sleep(2.5)
    fail_dead_workers(study)
    assert study.get_trials()[claimed.number].state == TrialState.FAIL


def test_a_ctrl_c_during_a_trial_leaves_no_lease_file(tmp_path, monkeypatch):
    """docs/tune.md: DIR/.tune.leases holds one lock file per running claim, removed as claims end. The claim
    of a trial cut short by a Ctrl-C was released, but its file was removed only by the next claim, which an
    interrupted study does not make: .tune.leases/<token> stayed behind."""
    import signal

    import trainlab.experiment
    from trainlab.errors import Interrupted
    from trainlab.tune.leases import LEASES

    def interrupted(*args, **kwargs):
        assert len(list((tmp_path / "out" / LEASES).iterdir())) == 1  # the claim's lease, while its run runs
        raise Interrupted("SIGINT received", signal.SIGINT)

    monkeypatch.setattr(trainlab.experiment, "train", interrupted)
    tune_settings = settings(tmp_path, 3)
    with pytest.raises(Interrupted, match="SIGINT received during trial 0, which is recorded as failed"):
        tune(tune_settings)
    assert not (tune_settings.out / LEASES).exists()
    assert [row["state"] for row in read_trials(tune_settings.out)] == ["FAIL"]
