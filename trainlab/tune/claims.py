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
``stale``. Its worker is known gone at once when it ran on this host (its pid names no live process);
on storages without heartbeats (the file journal) a claim holds a lease on its trial
(:mod:`trainlab.tune.leases`) until its worker is done with it, which says whether a worker on another
host lives; on RDB storages a trial of another host is failed once its heartbeats stopped for the grace
period, with a reason, and retried (a WAITING copy of its parameters, none of its claim's attributes).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import socket
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from trainlab.errors import DISK_FULL_OR_READ_ONLY, TrainingError, cannot
from trainlab.run_lock import process_start, same_process
from trainlab.tune.leases import Lease, holder_gone, leases_folder, sweep
from trainlab.tune.objective import (
    ATTR_FAIL_KIND,
    ATTR_FAIL_REASON,
    ATTR_HOST,
    ATTR_PID,
    ATTR_PID_SPACE,
    ATTR_PID_START,
)
from trainlab.tune.recovery import recover
from trainlab.tune.storage import FileLock, PostgresLock, claim_lock

if TYPE_CHECKING:
    from trainlab.tune.study import TuneSettings

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # WAITING trials are claimed, not counted
OBJECTIVE_FAILURES = ("diverged", "error")
ATTR_BASE = "base_config"  # trial user attr: this trial runs the base config's own values
ATTR_CLAIM = "claim"  # trial user attr: a token drawn afresh for each claim
ATTR_ENDED_LATER = "ended_by_a_later_worker"  # trial user attr: failed by another worker after its own died
RETRY_KEEPS = (ATTR_BASE,)  # the user attrs a heartbeat retry keeps of its trial: it runs the base config too
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


def pid_space() -> str | None:
    """Where this process's pids are looked up: the kernel's boot id and this process's PID namespace (from
    ``/proc``); None where unreadable. Workers under one hostname (containers sharing the host's network, or
    machines named alike) judge each other's pids by :func:`~trainlab.run_lock.same_process` only when this is
    the same: a pid of another namespace names no process here, or another one."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot} {namespace}"


def heartbeat_grace_s(study: optuna.Study) -> float:
    """RDB storages: how long a trial may go without a heartbeat before it is stale (the storage's grace
    period; Optuna's default, twice the heartbeat interval, when it has none)."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # an RDBStorage in Optuna's _CachedStorage
    return getattr(backend, "grace_period", None) or 2 * storage.get_heartbeat_interval()


def fail_dead_workers(study: optuna.Study, settings: TuneSettings | None = None) -> list[int]:
    """Record the RUNNING trials whose worker is gone; returns their numbers (heartbeat failures aside).

    Call with the claim lock held: a live worker records its trial's pid (after its host, its start,
    its lease or, with heartbeats, a first heartbeat) before releasing the lock, so a RUNNING trial
    without a pid was left by a worker that died claiming it (RDB storages: once it is older than the
    heartbeat grace period, as the workers of an RDB other than PostgreSQL share the lock only when they
    share DIR). A trial with a pid: :func:`worker_gone` says whether its worker is gone, at once where its
    pid can be looked up here (the journal; RDB storages: a trial claimed on this host, in this
    :func:`pid_space`). The others of an RDB storage are judged by their heartbeats
    (:func:`fail_stopped_heartbeats`), wherever their worker was killed.

    With ``settings`` (``claim_trial`` passes its own), a gone worker's trial whose run had ended is
    recorded as the run says (:func:`trainlab.tune.recovery.recover`), its heartbeat-stale ones too, and
    the others fail as ``stale``; the lease files of claims that are over are removed.
    """
    storage = study._storage
    heartbeats = keeps_heartbeats(study)
    trials_dir = None if settings is None else settings.out / "trials"
    leases = None if settings is None or heartbeats else leases_folder(settings.out)
    grace = timedelta(seconds=heartbeat_grace_s(study)) if heartbeats else None

    def recovered(trial: optuna.trial.FrozenTrial, note: str) -> bool:
        return settings is not None and recover(study, trial, trials_dir, settings.metric, note)

    ended = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = worker_gone(trial, grace, leases)
        if reason is None:
            continue
        pid, trial_host = trial.user_attrs.get(ATTR_PID), trial.user_attrs.get(ATTR_HOST)
        if pid is not None and recovered(trial, f"worker pid {pid} on {trial_host} died before reporting the trial"):
            ended.append(trial.number)
        elif _fail_left(storage, trial._trial_id, "stale", reason, later=True):
            ended.append(trial.number)
    if heartbeats:  # after the pid checks: a trial whose worker is known gone is failed for that, not retried
        ended += fail_stopped_heartbeats(study, recovered)
    if leases is not None:
        _sweep_leases(study, leases)
    return ended


def worker_gone(trial: optuna.trial.FrozenTrial, grace: timedelta | None, leases: Path | None) -> str | None:
    """Why RUNNING ``trial``'s worker is gone (its ``fail_reason``), or None while it may live or its
    heartbeats are to tell. ``grace``: the heartbeat grace period of an RDB storage (None: no heartbeats);
    ``leases``: the study's lease folder (storages without heartbeats).

    - no pid: its worker died while claiming it (with heartbeats: once the trial is older than ``grace``);
    - another host, no heartbeats: gone once no one holds its lease (:mod:`trainlab.tune.leases`; a trial
      claimed before leases, or whose lease is held, is waited for);
    - another host, or another :func:`pid_space` (or none recorded), with heartbeats: its heartbeats tell;
    - this host: gone when its pid names no live process started when it was recorded
      (:func:`~trainlab.run_lock.same_process`), or names this process while it does not run the trial
      (:func:`release_claim` was called for it, or its claim token is none this process drew: the pid of a
      killed worker, reused), unless its lease is held (no heartbeats: a live worker in another PID namespace
      under the same hostname).
    """
    pid, trial_host = trial.user_attrs.get(ATTR_PID), trial.user_attrs.get(ATTR_HOST)
    token = trial.user_attrs.get(ATTR_CLAIM)
    held = isinstance(token, str) and token in _HELD  # this process runs it
    if pid is None:
        if grace is not None and datetime.now() - (trial.datetime_start or datetime.now()) < grace:
            return None  # a claim may be under way: an RDB's workers need not share the claim lock (MySQL, SQLite)
        return "its worker died while claiming it"  # before its run began: nothing to recover
    here = trial_host in (None, socket.gethostname())
    space = pid_space()
    if grace is not None and not (here and space is not None and trial.user_attrs.get(ATTR_PID_SPACE) == space):
        return None  # its pid cannot be looked up here: its heartbeats tell (fail_stopped_heartbeats)
    if not here:
        if held or leases is None or holder_gone(leases, token) is not True:
            return None  # a live worker of another host (its lease held), or one whose liveness is unknown
        return f"worker pid {pid} on {trial_host} died while the trial ran (its lease is free)"
    if same_process(int(pid), trial.user_attrs.get(ATTR_PID_START)) and (int(pid) != os.getpid() or held):
        return None  # a live worker (this process: only for the trials it runs now)
    if not held and leases is not None and holder_gone(leases, token) is False:
        return None  # its lease is held: a live worker in another pid namespace under the same hostname
    return f"worker pid {pid} on {trial_host} died while the trial ran"


def fail_stopped_heartbeats(study: optuna.Study,
                            recovered: Callable[[optuna.trial.FrozenTrial, str], bool]) -> list[int]:
    """RDB storages: Optuna's heartbeat check (``optuna.storages.fail_stale_trials``) with reasons. Each
    RUNNING trial without a heartbeat for the grace period is recorded as its ended run says
    (``recovered(trial, note)``), else failed as ``stale`` with a ``fail_reason`` naming its worker, then
    handed to the storage's stale-trial callback (Optuna's ``RetryHeartbeatStaleTrialCallback`` queues a
    WAITING copy with its parameters) as :func:`retry_source` has it. Returns the recovered trials' numbers."""
    storage = study._storage
    grace_s = heartbeat_grace_s(study)
    failed = []
    ended = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        trial = storage.get_trial(trial_id)
        pid, trial_host = trial.user_attrs.get(ATTR_PID), trial.user_attrs.get(ATTR_HOST)
        if recovered(trial, f"its worker on {trial_host} stopped its heartbeats"):
            ended.append(trial.number)
        elif _fail_left(storage, trial_id, "stale", f"its worker on {trial_host} (pid {pid}) stopped its heartbeats "
                                                    f"for {grace_s:g} s: killed, or cut off from the database",
                        later=True):
            failed.append(trial_id)
    retry = storage.get_heartbeat_stale_trial_callback()
    for trial_id in failed if retry is not None else []:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry(study, retry_source(storage.get_trial(trial_id)))
    return ended


def retry_source(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """A copy of failed ``trial`` for a retry callback, which copies its user attributes into the retry:
    only those the retry shares (:data:`RETRY_KEEPS`). Its claim, worker, run folder, pruning decision and
    failure were its own: a retry carrying them would show the failure in trials.csv, be read back as pruned,
    and, claimed, name a dead worker until its claim records its own."""
    source = copy.deepcopy(trial)
    source.user_attrs = {key: value for key, value in trial.user_attrs.items() if key in RETRY_KEEPS}
    return source


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


def _fail_left(storage: optuna.storages.BaseStorage, trial_id: int, kind: str, reason: str,
               later: bool = False) -> bool:
    """Record a RUNNING trial that no worker runs as FAIL (``kind``, ``reason``); False when it had finished.
    ``later``: another worker does it, after the trial's own died (:data:`ATTR_ENDED_LATER`: Optuna then
    dates its end to now, not to when it stopped running)."""
    if storage.get_trial(trial_id).state != TrialState.RUNNING:
        return False
    try:
        if later:
            storage.set_trial_user_attr(trial_id, ATTR_ENDED_LATER, True)
        storage.set_trial_user_attr(trial_id, ATTR_FAIL_KIND, kind)
        storage.set_trial_user_attr(trial_id, ATTR_FAIL_REASON, reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it meanwhile
        return False
    return True


def abandon(study: optuna.Study, trial_id: int, exc: BaseException, doing: str) -> None:
    """Fail a trial still RUNNING whose worker gives it up, ``exc`` having cut short what the worker was
    ``doing`` ("claimed it", "recorded its outcome"): ``interrupted`` for a signal (a rerun queues the base
    config again, if it was its trial), ``stale`` for an error (as a dead worker's), said as the CLI says it:
    an ``OSError`` as ``cannot write (<file>): No space left on device`` (:func:`trainlab.errors.cannot`, not
    its ``[Errno 28]`` repr), another as ``(<type>: <first line>)``. A trial already finished is left as it
    is. An error in doing so is swallowed: ``exc``, which goes on, says more."""
    if isinstance(exc, OSError):
        what = cannot(exc, "write" if exc.errno in DISK_FULL_OR_READ_ONLY else "read or write")
        kind, reason = "stale", f"its worker failed while it {doing} ({what}); {RERUN}"
    elif isinstance(exc, Exception):
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
    claim a trial, a WAITING one first, while COMPLETE + PRUNED + RUNNING trials number fewer than the total
    and the trials that failed on their own plus the RUNNING ones fewer than ``--trials`` too (the study
    stops at as many failures as ``--trials``; a second ``--jobs`` worker claiming while the sixth of 6 was
    failing ran a seventh). None: nothing to claim now (the caller waits for the RUNNING trials).

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
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if running and len(failures) + running >= settings.trials:
                return None  # were the running trials to fail, that is the limit: a trial claimed now runs past it
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
    in ``leases``, storages without heartbeats), host, start, :func:`pid_space`, first heartbeat (storages
    that keep them) and pid, the pid last: a trial that has one has the rest, whenever its worker is killed."""
    with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(); we beat ourselves
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask()
    _HELD[token] = None
    if leases is not None:
        _HELD[token] = Lease.take(leases, token)
    trial.set_user_attr(ATTR_CLAIM, token)
    trial.set_user_attr(ATTR_HOST, socket.gethostname())
    trial.set_user_attr(ATTR_PID_START, process_start(os.getpid()))
    trial.set_user_attr(ATTR_PID_SPACE, pid_space())
    if keeps_heartbeats(study):
        study._storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr(ATTR_PID, os.getpid())
    return trial

