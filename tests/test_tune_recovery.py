"""trainlab tune after a worker was killed: a trial whose run had ended is recorded as the run ended, not
failed as stale (trainlab.tune.recovery); a trial claimed under another hostname is judged by its lease
(trainlab.tune.leases) instead of being waited for until --timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import trainlab.tune.storage as storage_module
import trainlab.tune.study as study_module
from tests.forked_runs import fork_call, wait
from tests.test_tune import BASE, read_trials, settings
from trainlab.errors import TrainingError
from trainlab.tune import TuneSettings, tune
from trainlab.tune.claims import claim_trial, fail_dead_workers, release_claim
from trainlab.tune.leases import LEASES
from trainlab.tune.objective import PruningCallback, TrialFailed, final_value
from trainlab.tune.storage import FileLock, open_storage
from trainlab.tune.study import open_study, prepare

CPU = {**BASE, "runtime": {**BASE["runtime"], "device": "cpu"}}  # a forked child cannot use CUDA its parent has
SPACE = {"strategy.optimizer.lr": {"choices": [0.01, 0.03]}}  # the base config's 0.01 is trial 0
# restore_best: the value a trial reports is the restored model's, not the last epoch's nor the best epoch record's
RESTORING = {**CPU, "strategy": {**CPU["strategy"], "epochs": 3,
                                 "early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best": True}}}
DIVERGING = {**CPU, "data": {"source": "diabetes"}, "metrics": ["mse"],
             "strategy": {**CPU["strategy"], "loss": "mse", "optimizer": {"name": "sgd", "lr": 1.0e6}}}
DIVERGING_SPACE = {"strategy.optimizer.lr": {"choices": [1.0e6, 2.0e6]}}


def _kill_self(*args, **kwargs) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_tell(kill: Callable[[object, object], bool]) -> Callable[[], None]:
    """A kill point: the worker dies in Optuna's tell, before it records the trial, when ``kill(values, state)``."""
    def install() -> None:
        real = optuna.Study.tell

        def tell(self, trial, values=None, state=None, skip_if_finished=False):
            if kill(values, state):
                _kill_self()
            return real(self, trial, values, state, skip_if_finished)

        optuna.Study.tell = tell
    return install


def _kill_once_its_run_finished() -> None:
    """The worker dies inside its run's end, once run.json says finished (as it deletes checkpoints): the
    earliest moment a run is over, before anything of the tuner's runs after it."""
    import trainlab.engine.checkpoint as checkpoint

    checkpoint.prune_after_finish = _kill_self


def _always_prune() -> None:
    optuna.trial.Trial.should_prune = lambda self: True  # pruned at its first epoch, whatever the pruner


def _kill_at_diverged_record() -> None:
    real = study_module._fail
    study_module._fail = lambda study, trial, kind, reason: (_kill_self() if kind == "diverged"
                                                             else real(study, trial, kind, reason))


def _tune(tune_settings: TuneSettings) -> dict | str:
    """tune()'s best.json, or the error it ends with (a study without a complete trial, or exhausted)."""
    try:
        return tune(tune_settings)
    except TrainingError as exc:
        return type(exc).__name__


def _forked_tune(tune_settings: TuneSettings, install: Callable[[], None], log: Path) -> int:
    """``tune(tune_settings)`` in a forked child, after ``install()`` there (its kill point); its exit code."""

    def call() -> int:
        install()
        _tune(tune_settings)
        return 0

    return wait(fork_call(call, log), timeout=120)


def _rows(out: Path) -> list[dict[str, str]]:
    """trials.csv without what differs between two studies of the same trials (timing, folders, the end of a
    fail reason)."""
    return [{k: v for k, v in row.items() if k not in ("duration_s", "run_dir", "fail_reason")} | {
        "fail_reason_start": row["fail_reason"].split(" ")[0]} for row in read_trials(out)]


def _study(tune_settings: TuneSettings) -> optuna.Study:
    return optuna.load_study(study_name=tune_settings.name, storage=open_storage(tune_settings))


CASES = {  # outcome: (base config, space, metric, direction, what the live worker reports, its kill point)
    "complete": (CPU, SPACE, "val_accuracy", "maximize", None, _kill_at_tell(lambda values, state: values is not None)),
    "complete, minimized and restored": (RESTORING, SPACE, "val_loss", "minimize", None,
                                         _kill_at_tell(lambda values, state: values is not None)),
    "pruned": (CPU, SPACE, "val_accuracy", "maximize", _always_prune, _kill_once_its_run_finished),
    "diverged": (DIVERGING, DIVERGING_SPACE, "val_mse", "minimize", None, _kill_at_diverged_record),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_worker_killed_after_its_run_ended_has_its_trial_recorded_as_the_run_ended(tmp_path, case):
    """The worker is SIGKILLed after its run ended, before it reported the trial to Optuna. Before, the next tune
    failed the trial as stale (its value lost) and ran another in its place; now it records the trial as
    the live worker would have: the same state, value, pruned epoch and fail kind as an uninterrupted study
    of the same trials (the reference), read back from the run's records and the trial's pruning decision."""
    base, space, metric, direction, before, kill_point = CASES[case]
    options = {"base": base, "space": space, "metric": metric, "direction": direction, "pruner": "none"}
    real_should_prune = optuna.trial.Trial.should_prune
    try:
        if before is not None:
            before()  # in this process: the reference, and every child forked from it
        reference = _tune(settings(tmp_path / "reference", 1, **options))  # also imports what the children need
        killed = settings(tmp_path / "killed", 1, **options)
        code = _forked_tune(killed, lambda: (before and before(), kill_point()), tmp_path / "child.log")
    finally:
        optuna.trial.Trial.should_prune = real_should_prune
    assert code == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    assert [t.state for t in _study(killed).trials] == [TrialState.RUNNING]  # what the kill left
    recovered = _tune(killed)
    assert _rows(killed.out) == _rows(tmp_path / "reference" / "out")
    trial = _study(killed).trials[0]
    assert "read from its run folder: worker pid" in trial.user_attrs["recovered"]
    if isinstance(reference, dict):  # a complete trial: best.json, best.yaml and the report see its value
        summary = json.loads((killed.out / "trials" / "0" / "summary.json").read_text())
        assert recovered["trial"] == 0 and recovered["value"] == reference["value"] == summary["val"][metric[4:]]
        assert (killed.out / "best.yaml").read_text() == (tmp_path / "reference" / "out" / "best.yaml").read_text()
        assert f"Best trial 0: {metric} = {reference['value']:.6g}" in (killed.out / "report.html").read_text()
    else:
        assert recovered == reference  # no complete trial (pruned), or the study exhausted (diverged)
    if case == "diverged":
        live_reason = _study(settings(tmp_path / "reference", 1, **options)).trials[0].user_attrs["fail_reason"]
        assert live_reason.startswith(trial.user_attrs["fail_reason"]) and trial.user_attrs["fail_reason"]


def test_the_refit_after_a_recovered_trial_compares_its_config(tmp_path):
    """--refit-seeds reads the best trial's values: the recovered trial's, as it is the only one."""
    killed = settings(tmp_path, 1, base=CPU, space=SPACE, pruner="none")
    tune(settings(tmp_path / "warm", 1, base=CPU, space=SPACE, pruner="none"))  # the imports, before the fork
    code = _forked_tune(killed, _kill_at_tell(lambda values, state: values is not None), tmp_path / "child.log")
    assert code == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    best = tune(TuneSettings(**{**killed.__dict__, "refit_seeds": 1}))
    assert best["trial"] == 0 and [r["state"] for r in read_trials(killed.out)] == ["COMPLETE"]
    # the recovered trial 0 ran the base config's values: the refit trains the base alone (docs/tune.md)
    assert best["refit"]["best_is_base"] and {row["strategy"] for row in best["refit"]["rows"]} == {"base"}


# --------------------------------------------------------------------------- what is not recovered

def _claimed_and_left(tmp_path: Path, metric: str = "val_accuracy") -> tuple[optuna.Study, TuneSettings, FileLock,
                                                                            optuna.Trial, Path]:
    """A trial claimed by this process, its run folder named, and left (as a killed worker leaves it: its
    claim released, the trial RUNNING); the folder is for the caller to fill."""
    study = optuna.create_study(direction="maximize")
    tune_settings, lock = settings(tmp_path, 3, metric=metric), FileLock(tmp_path / ".tune.lock")
    trial = claim_trial(study, tune_settings, lock)
    folder = tune_settings.out / "trials" / str(trial.number)
    folder.mkdir(parents=True)
    trial.set_user_attr("run_dir", str(folder))
    release_claim(trial)
    return study, tune_settings, lock, trial, folder


FINISHED = {"status": "finished", "val": {"accuracy": 0.75, "loss": 0.5}, "test": {"accuracy": 0.5}}


@pytest.mark.parametrize("left", ["no records", "running", "interrupted", "damaged summary", "metric missing",
                                  "another folder"])
def test_a_dead_workers_trial_whose_run_did_not_end_is_failed_as_stale(tmp_path, left):
    study, tune_settings, lock, trial, folder = _claimed_and_left(tmp_path)
    status = {"running": "running", "interrupted": "interrupted"}.get(left, "finished")
    if left != "no records":
        (folder / "run.json").write_text(json.dumps({"status": status}))
    summary = {"metric missing": {**FINISHED, "val": {"loss": 0.5}}}.get(left, FINISHED)
    (folder / "summary.json").write_text("{" if left == "damaged summary" else json.dumps(summary))
    if left == "another folder":  # an RDB worker of another --out: its trials/<n> is not this one
        elsewhere = tmp_path / "elsewhere" / "trials" / str(trial.number)
        elsewhere.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(elsewhere))
    assert fail_dead_workers(study, tune_settings) == [trial.number]
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.FAIL and frozen.user_attrs["fail_kind"] == "stale"
    assert "recovered" not in frozen.user_attrs


def test_a_dead_workers_finished_trial_is_recovered_from_its_records_alone(tmp_path):
    """No training: the records a finished run leaves, and the value the metric names in them."""
    study, tune_settings, lock, trial, folder = _claimed_and_left(tmp_path, metric="val_loss")
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "summary.json").write_text(json.dumps(FINISHED))
    assert fail_dead_workers(study) == [trial.number]  # without settings: failed as before, nothing read
    assert study.trials[trial.number].state == TrialState.FAIL
    study, tune_settings, lock, trial, folder = _claimed_and_left(tmp_path / "again", metric="val_loss")
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "summary.json").write_text(json.dumps(FINISHED))
    assert claim_trial(study, tune_settings, lock).number == trial.number + 1
    assert (study.trials[trial.number].state, study.trials[trial.number].value) == (TrialState.COMPLETE, 0.5)


def test_a_dead_workers_finished_trial_with_a_null_metric_is_recovered_as_failed_as_its_worker_fails_it(tmp_path):
    """A finished run whose metric is null (r2 of a one-row validation split): the live worker fails the trial
    (error, the metric named), so the recovery does too; it was failed as stale, which does not count
    towards --trials and queues the base config again, where the live worker's TypeError counted."""
    study, tune_settings, lock, trial, folder = _claimed_and_left(tmp_path)
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "summary.json").write_text(json.dumps({**FINISHED, "val": {"accuracy": None}}))
    assert claim_trial(study, tune_settings, lock).number == trial.number + 1
    frozen = study.trials[trial.number]
    assert (frozen.state, frozen.user_attrs["fail_kind"]) == (TrialState.FAIL, "error")
    assert frozen.user_attrs["fail_reason"].startswith("--metric val_accuracy is null in the run's summary")


@pytest.mark.parametrize("value", [None, float("nan"), float("inf")])
def test_a_trials_metric_that_is_no_finite_number_fails_the_trial_naming_the_metric(value):
    """final_value: float(None) raised TypeError, reported as the trial's failure "TypeError: float() argument
    must be ..."; a NaN would have gone to study.tell (Optuna fails it with no fail_kind: never counted)."""
    with pytest.raises(TrialFailed) as failed:
        final_value({"val": {"r2": value}}, "val_r2")
    assert failed.value.kind == "error"
    assert str(failed.value).startswith(f"--metric val_r2 is {'null' if value is None else value} in the run's")


def test_a_dead_workers_trial_whose_run_failed_is_recovered_as_failed_with_its_recorded_error(tmp_path):
    """A run whose training raised records ``"status": "failed"`` and its ``error`` (trainlab.experiment); it was
    read as a run that did not end, and its trial failed as stale (a rerun of it would fail the same way, yet a
    stale failure queues the base config again and does not count as the trial's own)."""
    error = "the schedule (strategy.schedule) raised KeyError: 'late boom' at step 6 (at my_code.py:12); a ..."
    study, tune_settings, lock, trial, folder = _claimed_and_left(tmp_path)
    (folder / "run.json").write_text(json.dumps({"status": "failed", "error": error}))
    assert claim_trial(study, tune_settings, lock).number == trial.number + 1
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.FAIL
    assert (frozen.user_attrs["fail_kind"], frozen.user_attrs["fail_reason"]) == ("error", error)
    assert "read from its run folder" in frozen.user_attrs["recovered"]


def _rdb(tmp_path: Path) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1)


def test_an_rdb_trial_whose_heartbeats_stopped_after_its_run_finished_is_recovered_not_retried(tmp_path):
    """RDB storages: Optuna's heartbeat check would fail the trial (and a retry callback run it again); its
    run folder, in this worker's --out, says it finished, so it is recorded COMPLETE first."""
    study = optuna.create_study(direction="maximize", storage=_rdb(tmp_path))
    tune_settings, lock = settings(tmp_path, 3), FileLock(tmp_path / ".tune.lock")
    trial = claim_trial(study, tune_settings, lock)  # its first heartbeat, and no more: its worker died
    folder = tune_settings.out / "trials" / str(trial.number)
    folder.mkdir(parents=True)
    trial.set_user_attr("run_dir", str(folder))
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "summary.json").write_text(json.dumps(FINISHED))
    release_claim(trial)
    assert not (tune_settings.out / LEASES).exists()  # heartbeats judge RDB workers, not leases
    time.sleep(2.5)
    assert fail_dead_workers(study, tune_settings) == [trial.number]
    assert (study.trials[trial.number].state, study.trials[trial.number].value) == (TrialState.COMPLETE, 0.75)


# --------------------------------------------------------------------------- another hostname

def _elsewhere(study: optuna.Study, token: str | None) -> optuna.trial.Trial:
    """A RUNNING trial as a worker under another hostname claimed it (a container since re-created)."""
    trial = study.ask()
    attrs = {"host": "old-container", "pid_start": 1, "pid": 4242} | ({"claim": token} if token else {})
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


HOLD = "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print(1, flush=True); time.sleep(60)"


def test_another_hosts_trial_is_failed_once_its_lease_is_free_and_waited_for_while_it_is_held(tmp_path):
    """Before, a trial of another hostname was waited for whatever its state: a container re-created under a
    new hostname on the same --out waited for its predecessor's trial until --timeout. Its worker's lease (an
    flock in DIR, dropped by the kernel when its holder dies) says whether it lives."""
    study = optuna.create_study(direction="maximize")
    tune_settings, lock = settings(tmp_path, 3), FileLock(tmp_path / ".tune.lock")
    held_token, free_token = uuid.uuid4().hex, uuid.uuid4().hex
    leases = tune_settings.out / LEASES
    leases.mkdir(parents=True)
    (leases / free_token).write_text("old-container 4242\n")  # its holder is gone
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(leases / held_token)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"1"  # a live worker (on the other host) holds it
        live, dead, unknown = _elsewhere(study, held_token), _elsewhere(study, free_token), _elsewhere(study, None)
        claimed = claim_trial(study, tune_settings, lock)
        states = {t.number: t.state for t in study.trials}
        assert states[live.number] == TrialState.RUNNING  # never failed while its worker lives
        assert states[unknown.number] == TrialState.RUNNING  # claimed before leases: waited for, as before
        assert states[dead.number] == TrialState.FAIL
        reason = study.trials[dead.number].user_attrs["fail_reason"]
        assert reason == "worker pid 4242 on old-container died while the trial ran (its lease is free)"
        assert not (leases / free_token).exists()  # its claim is over: its lease file goes
        assert (leases / held_token).exists() and (leases / claimed.user_attrs["claim"]).exists()
    finally:
        holder.kill()
        holder.wait()
    assert fail_dead_workers(study, tune_settings) == [live.number]  # its holder gone now
    assert study.trials[live.number].state == TrialState.FAIL


def test_a_trial_of_this_hostname_whose_pid_is_gone_but_whose_lease_is_held_is_kept(tmp_path):
    """Two containers sharing a hostname but not a pid namespace: the pid a live worker recorded is no process
    here. Its held lease says it lives; a free one (or none) leaves the pid rule to decide."""
    study = optuna.create_study(direction="maximize")
    tune_settings = settings(tmp_path, 3)
    held_token = uuid.uuid4().hex
    leases = tune_settings.out / LEASES
    leases.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(leases / held_token)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"1"
        live = _elsewhere(study, held_token)
        live.set_user_attr("host", socket.gethostname())  # this hostname, a pid no process has here
        dead = _elsewhere(study, None)
        dead.set_user_attr("host", socket.gethostname())
        assert fail_dead_workers(study, tune_settings) == [dead.number]
        assert study.trials[live.number].state == TrialState.RUNNING
    finally:
        holder.kill()
        holder.wait()
    assert fail_dead_workers(study, tune_settings) == [live.number]


def test_the_run_folder_a_trial_names_is_relative_to_the_study_folder(tmp_path, monkeypatch):
    """A relative --out was recorded as given (a worker started in another directory could not find a dead
    worker's finished run), then as an absolute path (a moved or copied study folder read the runs of the
    old place): now as trials/<n>, read inside the --out in use, wherever the worker started."""
    monkeypatch.chdir(tmp_path)
    tune_settings = settings(Path("rel"), 1, base=CPU, space=SPACE, pruner="none")
    assert not tune_settings.out.is_absolute()
    tune(tune_settings)
    assert _study(tune_settings).trials[0].user_attrs["run_dir"] == "trials/0"
    assert read_trials(tune_settings.out)[0]["run_dir"] == str(tmp_path / tune_settings.out / "trials" / "0")


def _renamed(host: str) -> None:
    socket.gethostname = lambda: host


def test_tune_under_a_new_hostname_does_not_wait_for_the_old_hosts_killed_trial(tmp_path):
    """A tune SIGKILLed mid-run under hostname old-container, rerun on the same --out under this host's name:
    the killed trial is failed as stale at once (its lease is free) and the study ends; before, the rerun
    waited for it until --timeout and ended without a complete trial."""
    tune_settings = settings(tmp_path, 1, base=CPU, space=SPACE, pruner="none", timeout_s=60.0)
    tune(settings(tmp_path / "warm", 1, base=CPU, space=SPACE, pruner="none"))  # the imports, before the fork

    def killed_mid_run() -> None:
        _renamed("old-container")
        PruningCallback.on_validation_end = _kill_self  # at its first epoch's end: the run is under way

    code = _forked_tune(tune_settings, killed_mid_run, tmp_path / "child.log")
    assert code == -signal.SIGKILL, (tmp_path / "child.log").read_text()
    left = _study(tune_settings).trials[0]
    assert left.state == TrialState.RUNNING and left.user_attrs["host"] == "old-container"
    assert json.loads((tune_settings.out / "trials" / "0" / "run.json").read_text())["status"] == "running"
    started = time.time()
    best = tune(tune_settings)
    # waiting for the killed trial lasts the whole --timeout (60 s); the one trial of its own takes seconds, but
    # several times that on a busy 2-core CI machine: 30 s left too little margin
    assert time.time() - started < 50
    rows = read_trials(tune_settings.out)
    assert [r["state"] for r in rows] == ["FAIL", "COMPLETE"] and best["trial"] == 1
    assert rows[0]["fail_reason"].startswith(f"worker pid {left.user_attrs['pid']} on old-container died")
    assert float(rows[1]["strategy.optimizer.lr"]) == 0.01  # the base config, run again in its place
    assert not (tune_settings.out / LEASES).exists()  # every claim is over


def test_a_live_worker_under_another_hostname_keeps_its_trial(tmp_path):
    """A worker on another host (here: a process whose hostname says so) claims a trial through the real
    claim, lease and all, and runs it: this host's claims leave it RUNNING until that worker is killed."""
    tune_settings = settings(tmp_path, 2, base=CPU, space=SPACE)
    prepare(tune_settings)
    marker = tmp_path / "claimed"
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            _renamed("other-machine")
            storage_module._STORAGES.clear()  # its own journal reader: a forked one would write as this process's
            study = open_study(tune_settings, open_storage(tune_settings))
            claim_trial(study, tune_settings, FileLock(tune_settings.out / ".tune.lock"))
            marker.write_text("1")
            time.sleep(60)
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        study = _study(tune_settings)
        mine = claim_trial(study, tune_settings, FileLock(tune_settings.out / ".tune.lock"))
        other = next(t for t in study.trials if t.number != mine.number)
        assert other.user_attrs["host"] == "other-machine" and other.state == TrialState.RUNNING
        assert fail_dead_workers(study, tune_settings) == []
    finally:
        os.kill(pid, signal.SIGKILL)
        wait(pid)
    assert fail_dead_workers(study, tune_settings) == [other.number]
    assert study.trials[other.number].user_attrs["fail_kind"] == "stale"
    release_claim(mine)


def test_a_process_forked_by_a_worker_does_not_keep_its_lease_once_the_worker_is_killed(tmp_path):
    """A worker's forked children (its DataLoader's workers) share its open files, and an flock lasts while
    any of them is open: a child outliving its killed worker would keep the trial's lease held, and a trial
    of another host waited for. A forked child closes its copies of the leases at once."""
    tune_settings = settings(tmp_path, 2, base=CPU, space=SPACE)
    prepare(tune_settings)
    marker, grandchild_pid, started = tmp_path / "claimed", tmp_path / "grandchild", tmp_path / "started"
    pid = os.fork()
    if pid == 0:
        try:
            _renamed("other-machine")
            storage_module._STORAGES.clear()
            study = open_study(tune_settings, open_storage(tune_settings))
            claim_trial(study, tune_settings, FileLock(tune_settings.out / ".tune.lock"))
            child = os.fork()
            if child == 0:  # the worker's child: lives on after the worker is killed
                started.write_text("1")  # its fork hooks ran (they close the leases): a loaded machine may
                time.sleep(60)  # schedule it only after the worker is killed, the lease still open then
                os._exit(0)
            deadline = time.monotonic() + 30
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            grandchild_pid.write_text(str(child))
            marker.write_text("1")
            time.sleep(60)
        finally:
            os._exit(70)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        grandchild = int(grandchild_pid.read_text())
        study = _study(tune_settings)
        assert fail_dead_workers(study, tune_settings) == []  # the worker lives
    finally:
        os.kill(pid, signal.SIGKILL)
        wait(pid)
    try:
        os.kill(grandchild, 0)  # still alive, its worker gone
        assert fail_dead_workers(study, tune_settings) == [0]
        assert study.trials[0].user_attrs["host"] == "other-machine"
    finally:
        os.kill(grandchild, signal.SIGKILL)


def test_a_worker_whose_trial_another_recorded_meanwhile_goes_on(tmp_path):
    """Cut off from the shared storage for a while (an NFS lock lease lost, stale RDB heartbeats), a live worker
    can find its trial recorded by another from its run folder: its own outcome is skipped, not a crash (exit 4)."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    study.tell(trial.number, 0.5)  # recovered by another worker
    study_module._run_trial(settings(tmp_path, 2), study, lambda t: 0.7, trial)
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 0.5)]


def test_a_pruning_decision_of_a_trial_that_did_not_end_pruned_is_not_in_trials_csv():
    """The pruner's decision is stored with the trial when made; a worker killed before its run ended leaves
    it on a trial recorded FAIL (stale), which trials.csv must not show as pruned at that epoch."""
    from trainlab.tune.results import trial_rows

    study = optuna.create_study(direction="maximize")
    for state in (TrialState.PRUNED, TrialState.FAIL):
        trial = study.ask()
        trial.set_user_attr("pruned_at_epoch", 2)
        study.tell(trial, state=state)
    assert [row["pruned_at_epoch"] for row in trial_rows(study, [])] == [2, None]


@pytest.mark.parametrize("attrs, state, expected", [
    ({"ended_by_a_later_worker": True, "fail_kind": "stale", "fail_reason": "worker pid 1 on h died while the "
      "trial ran"}, TrialState.FAIL, None),
    # its own worker gave it up on an error (a full disk): its end time is its own
    ({"fail_kind": "stale", "fail_reason": "its worker failed while it recorded its outcome"}, TrialState.FAIL, 95.25),
    ({"recovered": "read from its run folder: worker pid 1 on h died before reporting the trial"},
     TrialState.COMPLETE, None),
    ({"fail_kind": "error", "fail_reason": "boom"}, TrialState.FAIL, 95.25),
    ({}, TrialState.COMPLETE, 95.25),
])
def test_a_trial_a_later_worker_ended_has_no_duration_its_own_worker_timed_has_its_own(attrs, state, expected):
    """User trial: a SIGKILLed trial's duration_s was the time until the next tune ran (Optuna dates its end
    to when the later worker failed it): 4.6 s for a trial that ran about 1.5 s, hours for a rerun next morning."""
    from datetime import datetime, timedelta

    from optuna.trial import FrozenTrial

    from trainlab.tune.results import duration_s

    start = datetime(2026, 12, 7, 2, 0, 0)
    trial = FrozenTrial(number=0, state=state, value=0.5 if state == TrialState.COMPLETE else None,
                        datetime_start=start, datetime_complete=start + timedelta(seconds=95.25), params={},
                        distributions={}, user_attrs=attrs, system_attrs={}, intermediate_values={}, trial_id=0)
    assert duration_s(trial) == expected
