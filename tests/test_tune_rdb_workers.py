"""trainlab tune on an RDB storage (Optuna heartbeats) when a worker dies: a worker on this host is known dead
at once by its pid, as on the journal, not after 60 s without heartbeats; a finished trial of a worker with
its own --out is read back from the run folder it recorded; a heartbeat-stale trial carries a fail_reason,
and Optuna's retry of it none of its claim's attributes.

SQLite URLs show the same logic as PostgreSQL (heartbeats, RDBStorage); the PostgreSQL cases run against
the server .ci/setup-postgres.sh starts, and skip saying why when none can start."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import trainlab.tune.storage as storage_module
from tests.postgres_server import postgres_url
from tests.test_tune import BASE, read_trials, settings
from tests.test_tune_recovery import _forked_tune, _kill_at_tell
from trainlab.tune import TuneSettings, tune
from trainlab.tune.base_point import base_values
from trainlab.tune.claims import claim_trial, fail_dead_workers, release_claim
from trainlab.tune.run_dirs import run_dir_attrs
from trainlab.tune.storage import STUDY_MARKER, claim_lock, open_storage
from trainlab.tune.study import open_study, prepare

CPU = {**BASE, "runtime": {**BASE["runtime"], "device": "cpu"}}  # a forked child cannot use CUDA its parent has
SPACE = {"strategy.optimizer.lr": {"choices": [0.01, 0.03, 0.1]}}  # the base config's 0.01 is trial 0
FINISHED = {"status": "finished", "val": {"accuracy": 0.75, "loss": 0.5}, "test": {"accuracy": 0.5}}


def _storage_url(kind: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else postgres_url()


def _rdb_settings(tmp_path: Path, kind: str, out: str = "out", trials: int = 3, **changes) -> TuneSettings:
    study = changes.pop("study_name", f"test-{uuid.uuid4().hex[:12]}")
    return settings(tmp_path, trials, base=CPU, space=SPACE, out=tmp_path / out, storage=_storage_url(kind, tmp_path),
                    study_name=study, **changes)


def _opened(tune_settings: TuneSettings) -> tuple[optuna.Study, dict]:
    """The study, as a worker opens it (prepare: the storage, the --out's study marker), and the base
    config's values."""
    space, base_raw = prepare(tune_settings)
    return open_study(tune_settings, open_storage(tune_settings)), base_values(space, base_raw)


def _finished_run(folder: Path, study_name: str) -> None:
    """The records a finished run leaves in ``folder`` (``<out>/trials/<n>``), its --out marked as the study's."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "summary.json").write_text(json.dumps(FINISHED))
    (folder.parent.parent / STUDY_MARKER).write_text(study_name + "\n")


# --------------------------------------------------------------------------- a dead worker on this host

@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_dead_rdb_worker_on_this_host_is_failed_at_once_and_the_base_config_queued_first(tmp_path, kind):
    """With heartbeats (20 s, failed after 60 s) a trial whose worker on this host was gone stayed RUNNING for
    60 s, was then failed without a fail_reason, and sampled trials ran before the base config was queued
    again. Its pid says at once that it is gone, as on the journal."""
    tune_settings = _rdb_settings(tmp_path, kind)
    study, base = _opened(tune_settings)
    lock = claim_lock(tune_settings)
    first = claim_trial(study, tune_settings, lock, base)
    assert first.user_attrs.get("base_config") is True
    release_claim(first)  # as a killed worker leaves it: RUNNING, its pid (this process) not running it
    second = claim_trial(study, tune_settings, lock, base)
    left = study.trials[first.number]
    assert left.state == TrialState.FAIL and left.user_attrs["fail_kind"] == "stale"
    assert left.user_attrs["fail_reason"] == f"worker pid {first.user_attrs['pid']} on {socket.gethostname()} died " \
                                             "while the trial ran"
    assert second.user_attrs.get("base_config") is True and second.params == first.params  # the base config again
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING]  # no heartbeat retry besides
    release_claim(second)


def test_a_live_rdb_worker_on_this_host_or_one_in_another_pid_space_is_left_to_its_heartbeats(tmp_path):
    """Workers under one hostname with their own PID namespace (containers on the host's network) cannot look
    up each other's pids: such a trial is judged by its heartbeats, as another host's."""
    tune_settings = _rdb_settings(tmp_path, "sqlite")
    study, base = _opened(tune_settings)
    lock = claim_lock(tune_settings)
    running_here = claim_trial(study, tune_settings, lock, base)
    elsewhere = claim_trial(study, tune_settings, lock, base)
    release_claim(elsewhere)
    elsewhere.set_user_attr("pid_space", "another-boot pid:[4026532999]")
    assert fail_dead_workers(study, tune_settings) == []
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.RUNNING]
    release_claim(running_here)


# --------------------------------------------------------------------------- a finished trial in another --out

def test_a_dead_workers_finished_trial_is_read_from_the_run_folder_it_recorded_in_another_out(tmp_path):
    """Workers with their own --out (docs/tune.md, several machines): recovery looked for the run folder in the
    reading worker's --out only, so the finished trial was failed and its parameters trained again."""
    study = optuna.create_study(direction="minimize")
    ran, reads = settings(tmp_path, 3, metric="val_loss", out=tmp_path / "q2"), \
        settings(tmp_path, 3, metric="val_loss", out=tmp_path / "q1")
    for left_as in ("not this study's folder", "this study's folder"):
        trial = claim_trial(study, ran, claim_lock(ran))
        for key, value in run_dir_attrs(trial.number, ran.out / "trials").items():
            trial.set_user_attr(key, value)
        _finished_run(ran.out / "trials" / str(trial.number),
                      study.study_name if left_as == "this study's folder" else "another-study")
        release_claim(trial)
        assert fail_dead_workers(study, reads) == [trial.number]
        frozen = study.trials[trial.number]
        if left_as == "this study's folder":
            assert (frozen.state, frozen.value) == (TrialState.COMPLETE, 0.5)
            assert "read from its run folder" in frozen.user_attrs["recovered"]
        else:  # a run folder that is not this study's is no outcome of its trial
            assert frozen.state == TrialState.FAIL and "recovered" not in frozen.user_attrs
        (ran.out / STUDY_MARKER).unlink()
    assert not (reads.out / "trials").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_worker_of_its_own_out_killed_before_recording_its_finished_trial_loses_nothing(tmp_path, kind):
    """The user's test: two workers with their own --out on one RDB study; one killed once its trial's run had
    finished, before recording it. The other waited 60 s for the heartbeat, then failed the trial (no
    fail_reason) and trained its parameters again. Now it records the trial from its run folder at once."""
    killed = _rdb_settings(tmp_path, kind, out="q2", trials=2, metric="val_loss", pruner="none")
    other = TuneSettings(**{**killed.__dict__, "out": tmp_path / "q1"})
    code = _forked_tune(killed, _kill_at_tell(lambda values, state: values is not None), tmp_path / "child.log")
    assert code == -9, (tmp_path / "child.log").read_text()
    summary = json.loads((killed.out / "trials" / "0" / "summary.json").read_text())
    started = time.monotonic()
    tune(other)
    assert time.monotonic() - started < 45  # not the 60 s heartbeat grace period
    trials = optuna.load_study(study_name=killed.name, storage=open_storage(other)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]  # no retry of trial 0
    assert trials[0].value == summary["val"]["loss"] and "died before reporting" in trials[0].user_attrs["recovered"]
    assert not (other.out / "trials" / "0").exists()  # its parameters were not trained again here
    assert read_trials(other.out)[0]["run_dir"] == str((killed.out / "trials" / "0").absolute())


# --------------------------------------------------------------------------- heartbeats that stopped

def test_a_heartbeat_stale_trial_has_a_fail_reason_and_its_retry_none_of_its_claims_attributes(tmp_path, monkeypatch):
    """A trial of another host without heartbeats for the grace period was failed with no fail_reason, and
    Optuna's retry copied all its user attributes: its claim, dead worker's pid, run folder and pruning
    decision. Its recorded run folder, on another host, is not read here."""
    monkeypatch.setattr(storage_module, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(storage_module, "HEARTBEAT_GRACE_S", 1)
    tune_settings = _rdb_settings(tmp_path, "sqlite")
    study, base = _opened(tune_settings)
    trial = claim_trial(study, tune_settings, claim_lock(tune_settings), base)
    elsewhere = tmp_path / "machine-b" / "trials" / str(trial.number)
    _finished_run(elsewhere, tune_settings.name)  # the same path here holds a finished run: not this trial's
    attrs = {"host": "machine-b", "pid": 4242, "pruned_at_epoch": 1, **run_dir_attrs(trial.number, elsewhere.parent)}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    release_claim(trial)
    time.sleep(2.5)
    assert fail_dead_workers(study, tune_settings) == []  # heartbeat failures aside
    failed, retry = study.trials
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_kind"] == "stale"
    assert failed.user_attrs["fail_reason"] == ("its worker on machine-b (pid 4242) stopped its heartbeats for 1 s: "
                                                "killed, or cut off from the database")
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == failed.number
    assert retry.params == failed.params and retry.user_attrs == {"base_config": True}
    again = claim_trial(study, tune_settings, claim_lock(tune_settings), base)
    assert again.number == retry.number and again.user_attrs["pid"] != 4242
    release_claim(again)
