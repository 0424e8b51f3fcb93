"""A trial whose worker died after its run ended, before reporting it: its outcome read back from the run.

A trial's run folder ``DIR/trials/<number>`` is complete once its ``run.json`` says how the run ended;
the worker then reports the outcome to Optuna. A worker killed in between (SIGKILL, out of memory, a
reboot) left the trial RUNNING although its run is over. Where the claim would fail such a trial as
``stale`` (:func:`trainlab.tune.claims.fail_dead_workers`), it is recorded as the objective would have
reported it (:mod:`trainlab.tune.objective`), and nothing the run computed is lost:

- ``finished``, with the pruner's decision stored with the trial (``pruned_at_epoch``): PRUNED
  (Optuna keeps the last reported epoch's value, as for a live worker's pruned trial);
- ``finished`` otherwise: COMPLETE with :func:`~trainlab.tune.objective.final_value` of its
  ``summary.json``, the objective's own reading (the final validation metric, after any ``restore_best``),
  or, where that metric is null (undefined for the final model), FAIL with ``fail_kind`` error, as the
  objective fails it;
- ``diverged``: FAIL with ``fail_kind`` diverged and the summary's reason;
- ``failed`` (its training raised: the user's code, a bug; :func:`trainlab.experiment._record_failure`):
  FAIL with ``fail_kind`` error and run.json's ``error`` line, as the objective fails a run that raised.

Anything else (no run folder, a run still ``running`` or ``interrupted``, a damaged ``summary.json``, a
summary without the metric) is no outcome: the trial is failed as stale, as before. Each trial
recovered carries the user attribute ``recovered`` saying so.

The run folder is read in the reading worker's own ``--out``, or, for a trial claimed on this host, where
the trial recorded it ran (:func:`outcome_folder`): an RDB study's workers on one machine, each with its
own ``--out``, record each other's trials.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainlab.errors import TrainlabError
from trainlab.records import finished_summary_damage, read_record_object
from trainlab.tune.objective import (
    ATTR_FAIL_KIND,
    ATTR_FAIL_REASON,
    ATTR_HOST,
    ATTR_PRUNED_AT,
    TrialFailed,
    final_value,
)
from trainlab.tune.run_dirs import names_folder, own_part, where_it_ran
from trainlab.tune.storage import STUDY_MARKER

ATTR_RECOVERED = "recovered"  # trial user attr: its outcome was read back from its run folder


@dataclass(frozen=True)
class RunOutcome:
    """What a trial's ended run says the objective reports: a state, with COMPLETE's value or FAIL's kind
    (``fail_kind``: diverged or error) and reason."""

    state: TrialState
    value: float | None = None
    reason: str | None = None
    kind: str | None = None


def outcome_folder(trial: FrozenTrial, trials_dir: Path, study_name: str) -> Path | None:
    """The run folder to read ``trial``'s outcome from; None when no folder is known to be its.

    1. ``trials_dir/<number>`` (this ``--out``) when the trial names it (``run_dir``, recorded as its run
       began: :func:`trainlab.tune.run_dirs.names_folder`) and it exists;
    2. else, for a trial claimed on this host, the folder where it recorded it ran
       (:func:`trainlab.tune.run_dirs.where_it_ran`: a worker of another ``--out`` on this machine), when
       that folder exists, ends in the trial's own ``trials/<number>`` and its study folder is this study's
       (``.tune.study`` names ``study_name``). A path recorded on another host may name another folder here.
    """
    own = trials_dir / str(trial.number)
    if names_folder(trial.user_attrs, trial.number, own) and own.is_dir():
        return own
    if trial.user_attrs.get(ATTR_HOST) != socket.gethostname():
        return None
    ran = where_it_ran(trial.user_attrs)
    if ran is None or not ran.is_dir() or not own_part(ran, trial.number):
        return None
    try:
        owner = (ran.parent.parent / STUDY_MARKER).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return ran if owner == study_name else None


def run_outcome(trial: FrozenTrial, folder: Path, metric: str) -> RunOutcome | None:
    """The outcome of ``trial`` read from its run folder ``folder`` (:func:`outcome_folder`); None when its
    run did not end (or its records cannot say how)."""
    info = read_record_object(folder / "run.json") or {}
    if info.get("status") == "finished":
        if finished_summary_damage(folder / "summary.json") is not None:
            return None
        if ATTR_PRUNED_AT in trial.user_attrs:
            return RunOutcome(TrialState.PRUNED)
        summary = read_record_object(folder / "summary.json") or {}
        try:
            value = final_value(summary, metric)
        except TrialFailed as exc:  # the metric null (non-finite): the trial failed, as its worker says
            return RunOutcome(TrialState.FAIL, reason=str(exc), kind=exc.kind)
        except (TrainlabError, TypeError, ValueError):  # the metric missing (an older summary): no value
            return None
        return RunOutcome(TrialState.COMPLETE, value=value)
    if info.get("status") == "diverged":
        summary = read_record_object(folder / "summary.json") or {}
        reason = summary.get("reason")
        return RunOutcome(TrialState.FAIL, reason=str(reason) if reason else "the run diverged", kind="diverged")
    if info.get("status") == "failed":
        error = info.get("error")
        return RunOutcome(TrialState.FAIL, reason=str(error) if error else "the run failed", kind="error")
    return None


def recover(study: optuna.Study, trial: FrozenTrial, trials_dir: Path, metric: str, note: str) -> bool:
    """Record RUNNING ``trial`` (its worker gone: ``note`` says how) as its ended run says
    (:func:`run_outcome` of its :func:`outcome_folder`, looked for in ``trials_dir`` first); False when no
    run folder says how it ended or another worker recorded the trial first."""
    folder = outcome_folder(trial, trials_dir, study.study_name)
    outcome = None if folder is None else run_outcome(trial, folder, metric)
    if outcome is None:
        return False
    storage, trial_id = study._storage, trial._trial_id
    try:
        if storage.get_trial(trial_id).state != TrialState.RUNNING:
            return False
        storage.set_trial_user_attr(trial_id, ATTR_RECOVERED, f"read from its run folder: {note}")
        if outcome.state == TrialState.FAIL:
            storage.set_trial_user_attr(trial_id, ATTR_FAIL_KIND, outcome.kind or "error")
            storage.set_trial_user_attr(trial_id, ATTR_FAIL_REASON, (outcome.reason or "")[:500])
        # Optuna's tell, as the live worker's: a PRUNED trial takes its last reported value
        study.tell(trial.number, outcome.value, state=outcome.state)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError):  # finished meanwhile by another worker
        return False
    return True
