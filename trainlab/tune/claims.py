"""Claiming trials: which trial a worker runs next, under the study's claim lock.

``--trials N`` is the study's total. A worker claims a trial only while
``COMPLETE + PRUNED + RUNNING < N``, taking a WAITING trial (the queued base config, a
heartbeat retry) before sampling a new one, so any number of workers and restarts end
with exactly N finished-or-pruned trials. Failed trials do not count; the study stops
after N trials fail on their own (diverged, errored). Trial ``k`` is sampled by a TPE
sampler seeded with ``(seed, k)`` (:func:`trial_seed`), whichever worker samples it.

A claim cut short (a Ctrl-C, an error) leaves no RUNNING trial that no one runs: the trial it made is
failed at once (``interrupted``; ``stale`` for an error), and a trial this process claimed counts as
running here only until :func:`release_claim` (its worker is done with it, however it ended).

A RUNNING trial whose worker is gone (:func:`fail_dead_workers`) is recorded as its run folder says when
the run had ended (:mod:`trainlab.tune.recovery`: the worker died before reporting it), else failed as
``stale``. On storages without heartbeats (the file journal) a claim holds a lease on its trial
(:mod:`trainlab.tune.leases`) until its worker is done with it, which says whether a worker on another
host lives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from trainlab.errors import TrainingError
from trainlab.run_lock import process_start, same_process
from trainlab.tune.leases import Lease, holder_gone, leases_folder, sweep
from trainlab.tune.objective import ATTR_FAIL_KIND, ATTR_FAIL_REASON, ATTR_HOST, ATTR_PID, ATTR_PID_START
from trainlab.tune.recovery import recover
from trainlab.tune.storage import FileLock, PostgresLock, claim_lock

if TYPE_CHECKING:
    from trainlab.tune.study import TuneSettings

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # WAITING trials are claimed, not counted
OBJECTIVE_FAILURES = ("diverged", "error")
ATTR_BASE = "base_config"  # trial user attr: this trial runs the base config's own values
ATTR_CLAIM = "claim"  # trial user attr: a token drawn afresh for each claim
RERUN = "a rerun of trainlab tune runs another trial in its place (the base config again if this was its trial)"
RERUN_NOTE = f"interrupted; {RERUN}"  # the fail_reason of a trial cut short by a signal, after the signal's name
# the claim tokens of the trials this process runs now (a storage's id can be reused), with their leases
_HELD: dict[str, Lease | None] = {}


def trial_seed(seed: int, number: int) -> int:
    """Seed of trial ``number``'s sampler: fixed by (seed, number), whichever worker samples it."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def build_sampler(seed: int, number: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=trial_seed(seed, number))


def keeps_heartbeats(study: optuna.Study) -> bool:
    """Whether the study's storage keeps heartbeats (RDB storages, as :mod:`trainlab.tune.storage` opens them)."""
    return getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None


def fail_dead_workers(study: optuna.Study, settings: TuneSettings | None = None) -> list[int]:
    """Record the RUNNING trials whose worker is gone; returns their numbers (heartbeat failures aside).

    Call with the claim lock held: a live worker records its trial's pid (after its host, its start,
    its lease or, with heartbeats, a first heartbeat) before releasing the lock, so a RUNNING trial
    without a pid was left by a worker that died claiming it (RDB storages: once it is older than the
    heartbeat grace period, as the workers of an RDB other than PostgreSQL share the lock only when they
    share DIR). RDB storages: Optuna's heartbeat check (and its retry callback) for the trials with a
    pid, each of which has a heartbeat, wherever its worker is killed. Storages without heartbeats (the
    journal): a trial whose worker, on this host, has no live process, or whose recorded pid is this
    process's own while this process does not run it (:func:`release_claim` was called for it, or its
    claim token is none this process drew: the pid of a killed worker, reused); a trial of another host
    (whose pid cannot be looked up here) whose lease no one holds (:mod:`trainlab.tune.leases`; a trial
    claimed before leases, or whose lease is held, is waited for).

    With ``settings`` (``claim_trial`` passes its own), a gone worker's trial whose run had ended is
    recorded as the run says (:func:`trainlab.tune.recovery.recover`), its heartbeat-stale ones too, and
    the others fail as ``stale``; the lease files of claims that are over are removed.
    """
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    heartbeats = interval is not None
    trials_dir = None if settings is None else settings.out / "trials"
    leases = None if settings is None or heartbeats else leases_folder(settings.out)
    ended = []

    def recovered(trial: optuna.trial.FrozenTrial, note: str) -> bool:
        return settings is not None and recover(study, trial, trials_dir, settings.metric, note)

    if heartbeats:
        stale = getattr(storage, "_get_stale_trial_ids", lambda study_id: [])(study._study_id)
        for trial_id in stale:  # before Optuna's check fails them: the runs that ended are recorded as they ended
            trial = storage.get_trial(trial_id)
            if recovered(trial, f"its worker on {trial.user_attrs.get(ATTR_HOST)} stopped its heartbeats"):
                ended.append(trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        backend = getattr(storage, "_backend", storage)  # an RDBStorage in Optuna's _CachedStorage
        grace = timedelta(seconds=getattr(backend, "grace_period", None) or 2 * interval)  # Optuna's default
    host, me = socket.gethostname(), os.getpid()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid, trial_host = trial.user_attrs.get(ATTR_PID), trial.user_attrs.get(ATTR_HOST)
        token = trial.user_attrs.get(ATTR_CLAIM)
        held = isinstance(token, str) and token in _HELD  # this process runs it
        if pid is None:
            if heartbeats and datetime.now() - (trial.datetime_start or datetime.now()) < grace:
                continue  # a claim may be under way: an RDB's workers need not share the claim lock (MySQL, SQLite)
            reason = "its worker died while claiming it"  # before its run began: nothing to recover
        elif heartbeats:
            continue  # its heartbeats tell whether its worker lives (the check above)
        elif trial_host not in (None, host):
            if held or leases is None or holder_gone(leases, token) is not True:
                continue  # a live worker of another host (its lease held), or one whose liveness is unknown
            reason = f"worker pid {pid} on {trial_host} died while the trial ran (its lease is free)"
        elif (same_process(int(pid), trial.user_attrs.get(ATTR_PID_START))
              and (int(pid) != me or held)):
            continue  # a live worker (this process: only for the trials it runs now)
        elif not held and leases is not None and holder_gone(leases, token) is False:
            continue  # its lease is held: a live worker in another pid namespace under the same hostname
        else:
            reason = f"worker pid {pid} on {trial_host} died while the trial ran"
        if pid is not None and recovered(trial, f"worker pid {pid} on {trial_host} died before reporting the trial"):
            ended.append(trial.number)
        elif _fail_left(storage, trial._trial_id, "stale", reason):
            ended.append(trial.number)
    if leases is not None:
        _sweep_leases(study, leases)
    return ended


def _sweep_leases(study: optuna.Study, leases: Path) -> None:
    """Remove the lease files in ``leases`` of claims that are over: those of no RUNNING trial and none this
    process holds (:func:`trainlab.tune.leases.sweep`). Call with the claim lock held."""
    running = {t.user_attrs.get(ATTR_CLAIM) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    sweep(leases, {t for t in running if isinstance(t, str)} | set(_HELD))


def remove_ended_leases(study: optuna.Study, settings: TuneSettings) -> None:
    """What each claim does first, done when the study's workers stop without a further claim (an interrupt,
    an error): remove the lease files of the claims that are over, under the claim lock (a claim takes its
    lease under it), so that ``DIR/.tune.leases`` keeps the leases of running trials only."""
    leases = leases_folder(settings.out)
    if keeps_heartbeats(study) or not leases.is_dir():
        return
    with claim_lock(settings).held():
        _sweep_leases(study, leases)


def _fail_left(storage: optuna.storages.BaseStorage, trial_id: int, kind: str, reason: str) -> bool:
    """Record a RUNNING trial that no worker runs as FAIL (``kind``, ``reason``); False when it had finished."""
    if storage.get_trial(trial_id).state != TrialState.RUNNING:
        return False
    try:
        storage.set_trial_user_attr(trial_id, ATTR_FAIL_KIND, kind)
        storage.set_trial_user_attr(trial_id, ATTR_FAIL_REASON, reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it meanwhile
        return False
    return True


def abandon(study: optuna.Study, trial_id: int, exc: BaseException, doing: str) -> None:
    """Fail a trial still RUNNING whose worker gives it up, ``exc`` having cut short what the worker was
    ``doing`` ("claimed it", "recorded its outcome"): ``interrupted`` for a signal (a rerun queues the base
    config again, if it was its trial), ``stale`` for an error (as a dead worker's). A trial already
    finished is left as it is. An error in doing so is swallowed: ``exc``, which goes on, says more."""
    if isinstance(exc, Exception):
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        kind, reason = "stale", f"its worker failed while it {doing} ({type(exc).__name__}: {first}); {RERUN}"
    else:
        kind, reason = "interrupted", f"interrupted while its worker {doing}; {RERUN}"
    with contextlib.suppress(Exception):
        _fail_left(study._storage, trial_id, kind, reason)


def release_claim(trial: optuna.Trial) -> None:
    """This process no longer runs ``trial`` (its result is recorded, or recording it was cut short): from
    now on a RUNNING ``trial`` naming this process is a dead worker's to :func:`fail_dead_workers`, and its
    lease is free."""
    _drop(trial.user_attrs.get(ATTR_CLAIM))


def _drop(token: str | None) -> None:
    """Forget the claim ``token`` and release its lease."""
    lease = _HELD.pop(token, None) if isinstance(token, str) else None
    if lease is not None:
        lease.release()


def _forget_claims_in_child() -> None:
    """In a process forked from a worker (a DataLoader's workers, say): it runs none of the worker's trials,
    and its copies of their leases' descriptors are closed, so that it does not keep a lease held (an
    ``flock`` lasts while any descriptor of it is open) once the worker that claimed the trial is gone.
    The worker's own descriptors, and so its leases, are untouched."""
    for lease in _HELD.values():
        if lease is not None:
            with contextlib.suppress(OSError):
                lease.release()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_claims_in_child)


def objective_failures(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that failed on their own (diverged, errored): a rerun would fail them again."""
    return [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(ATTR_FAIL_KIND) in OBJECTIVE_FAILURES]


class StudyExhausted(TrainingError):
    """As many trials failed as ``--trials`` asked for: the space or the base config is broken."""


def queue_base(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], base: dict[str, Any] | None) -> None:
    """Queue the base config's values (``base``, Optuna's form; None: not a point of the space) as a
    WAITING trial when the study has no trial yet, or when every trial of it failed without failing on
    its own: interrupted (a signal), or its worker died (at most once: a base config whose worker dies
    twice, say killed for memory, is not tried again). The best trial is then at least as good as the base."""
    if base is None:
        return
    runs = [t for t in trials if t.user_attrs.get(ATTR_BASE)]
    if trials and not runs:
        return  # an older study that began without the base trial
    if any(t.state != TrialState.FAIL or t.user_attrs.get(ATTR_FAIL_KIND) in (*OBJECTIVE_FAILURES, "config")
           for t in runs):
        return  # waiting, running, finished, or failed for a reason a rerun would repeat
    if sum(t.user_attrs.get(ATTR_FAIL_KIND) != "interrupted" for t in runs) >= 2:
        return  # its worker died twice
    study.enqueue_trial(base, user_attrs={ATTR_BASE: True})


def claim_trial(study: optuna.Study, settings: TuneSettings, lock: FileLock | PostgresLock,
                base: dict[str, Any] | None = None) -> optuna.Trial | None:
    """Under the lock: fail dead workers' trials, (re)queue the base config (:func:`queue_base`), and
    claim a trial, a WAITING one first, while COMPLETE + PRUNED + RUNNING trials number fewer than the total.

    A claim cut short once it asked for its trial (a Ctrl-C in Optuna's ``ask``, in recording the
    trial's owner or in releasing the lock; an error) fails that trial before the exception goes on:
    no RUNNING trial is left that no worker will finish. Inside ``ask`` the trial may exist without
    this claim holding it; only claims make RUNNING trials, one at a time under the lock, so the
    RUNNING trials that were not RUNNING before this claim's ``ask`` (and carry no other claim's
    token) are the one it made.
    """
    token = uuid.uuid4().hex
    claimed: optuna.Trial | None = None
    try:
        with lock.held():
            fail_dead_workers(study, settings)
            trials = study.get_trials(deepcopy=False)
            if sum(t.state in COUNTED for t in trials) >= settings.trials:
                return None
            failures = objective_failures(trials)
            if len(failures) >= settings.trials:
                last = failures[-1]
                raise StudyExhausted(f"{len(failures)} trials failed (as many as --trials); the last, trial "
                                     f"{last.number}: {last.user_attrs.get(ATTR_FAIL_REASON)}")
            queue_base(study, trials, base)
            trials = study.get_trials(deepcopy=False)
            waiting = [t.number for t in trials if t.state == TrialState.WAITING]
            study.sampler = build_sampler(settings.seed, min(waiting, default=len(trials)))  # the trial ask() returns
            running_before = {t._trial_id for t in trials if t.state == TrialState.RUNNING}
            try:
                claimed = _ask(study, token, None if keeps_heartbeats(study) else leases_folder(settings.out))
            except BaseException as exc:
                _drop(token)
                with contextlib.suppress(Exception):  # the exception that cut the claim short says more
                    made = [t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                            if t._trial_id not in running_before  # under the lock: the one this claim made
                            and t.user_attrs.get(ATTR_CLAIM) in (None, token)]
                    for trial_id in made:
                        abandon(study, trial_id, exc, "claimed it")
                raise
        return claimed
    except BaseException as exc:
        if claimed is not None:  # cut short in releasing the lock: the claim was complete, its trial is known
            _drop(token)
            abandon(study, claimed._trial_id, exc, "claimed it")
        raise


def _ask(study: optuna.Study, token: str, leases: Path | None) -> optuna.Trial:
    """Optuna's ``ask``, then the trial's owner: its claim ``token`` (held by this process, with its lease
    in ``leases``, storages without heartbeats), host, start, first heartbeat (storages that keep them)
    and pid, the pid last: a trial that has one has the rest, whenever its worker is killed."""
    with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(); we beat ourselves
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask()
    _HELD[token] = None
    if leases is not None:
        _HELD[token] = Lease.take(leases, token)
    trial.set_user_attr(ATTR_CLAIM, token)
    trial.set_user_attr(ATTR_HOST, socket.gethostname())
    trial.set_user_attr(ATTR_PID_START, process_start(os.getpid()))
    if keeps_heartbeats(study):
        study._storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr(ATTR_PID, os.getpid())
    return trial

