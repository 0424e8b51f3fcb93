"""Claiming trials: which trial a worker runs next, under the study's claim lock.

``--trials N`` is the study's total. A worker claims a trial only while
``COMPLETE + PRUNED + RUNNING < N``, taking a WAITING trial (the queued base config, a
heartbeat retry) before sampling a new one, so any number of workers and restarts end
with exactly N finished-or-pruned trials. Failed trials do not count; the study stops
after N trials fail on their own (diverged, errored). Trial ``k`` is sampled by a TPE
sampler seeded with ``(seed, k)`` (:func:`trial_seed`), whichever worker samples it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from trainlab.errors import TrainingError
from trainlab.run_lock import process_start, same_process
from trainlab.tune.objective import ATTR_FAIL_KIND, ATTR_FAIL_REASON, ATTR_HOST, ATTR_PID, ATTR_PID_START
from trainlab.tune.storage import FileLock, PostgresLock

if TYPE_CHECKING:
    from trainlab.tune.study import TuneSettings

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # WAITING trials are claimed, not counted
OBJECTIVE_FAILURES = ("diverged", "error")
ATTR_BASE = "base_config"  # trial user attr: this trial runs the base config's own values
ATTR_CLAIM = "claim"  # trial user attr: a token drawn afresh for each claim
_CLAIMED: set[str] = set()  # the claim tokens of the trials this process claimed (a storage's id can be reused)


def trial_seed(seed: int, number: int) -> int:
    """Seed of trial ``number``'s sampler: fixed by (seed, number), whichever worker samples it."""
    digest = hashlib.sha256(f"{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def build_sampler(seed: int, number: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=trial_seed(seed, number))


def fail_dead_workers(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker is gone; returns their numbers.

    RDB storages: Optuna's heartbeat check (and its retry callback). Journal storage
    (no heartbeats): a trial whose worker, on this host, has no live process, or whose
    recorded pid is this process's own while this process did not claim it (the pid of a
    killed worker, reused: the trial's claim token is none this process drew). Call with
    the claim lock held: a live worker sets its pid (after its host and start) before
    releasing the lock, so a RUNNING trial without one was left by a worker that died
    claiming it.
    """
    storage = study._storage
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return []
    host, me = socket.gethostname(), os.getpid()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid, trial_host = trial.user_attrs.get(ATTR_PID), trial.user_attrs.get(ATTR_HOST)
        if pid is not None and trial_host not in (None, host):
            continue  # another machine's worker: its liveness cannot be read here
        if (pid is not None and same_process(int(pid), trial.user_attrs.get(ATTR_PID_START))
                and (int(pid) != me or trial.user_attrs.get(ATTR_CLAIM) in _CLAIMED)):
            continue  # a live worker (this process: only for the trials it claimed)
        storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL_KIND, "stale")
        storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL_REASON,
                                    f"worker pid {pid} on {trial_host} died while the trial ran")
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            failed.append(trial.number)
    return failed


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
    claim a trial, a WAITING one first, while COMPLETE + PRUNED + RUNNING trials number fewer than the total."""
    with lock.held():
        fail_dead_workers(study)
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
        with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(); we beat ourselves
            warnings.simplefilter("ignore", UserWarning)
            trial = study.ask()
        # the pid last: a trial that has one names its host and start too, whenever its worker is killed
        token = uuid.uuid4().hex
        _CLAIMED.add(token)
        trial.set_user_attr(ATTR_CLAIM, token)
        trial.set_user_attr(ATTR_HOST, socket.gethostname())
        trial.set_user_attr(ATTR_PID_START, process_start(os.getpid()))
        trial.set_user_attr(ATTR_PID, os.getpid())
        return trial
