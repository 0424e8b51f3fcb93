"""What each planned run of a comparison is, and what its folder holding it calls for.

Layout: ``DIR/runs/<task>/<strategy>/seed-<k>/`` is an ordinary run folder. Before
running, each planned run is classified by what its folder holds (:func:`run_action`):

    new      no run.json                         -> train
    finished status finished, same config + data -> skip (files untouched)
    failed   status diverged, or compare-error.json, or status failed (the run raised),
             same config hash and data           -> skip, reported as failed (delete the folder to retry)
             (a compare-error.json of the machine's failure, trainlab.compare.machine_failure, an earlier
             version's record of a folder in use by another process, trainlab.compare.busy_run, or one beside
             a run.json that says finished is not a failure: the folder is classified by its run.json, as if
             the record were not there; a finished run's is removed: :func:`stale_error_record`)
    changed  the config (in what decides the run's outcome, trainlab.config_identity: not its output
             section or thread count) or the data files differ -> train again from scratch (said so,
             naming the first key that differs), staged beside the old run as ``.seed-<k>.new-<pid>`` until
             it ends (trainlab.run_folder.RunDir.create)
    adopt    changed or partial, but an earlier invocation's run of this very config and data was killed in its
             staging folder after a step checkpoint -> resumed from that checkpoint (trainlab.run_resume.resume
             adopts it)
    partial  running / interrupted, or failed with a config that differs only in its output section or
             thread count, same config                         -> trainlab.run_resume.resume (with its stored config;
             a staging folder beside it that holds another config's or data's run is removed first, or resume
             would adopt it: :func:`~trainlab.compare.runner._drop_staged_runs`; one that holds this run is ``adopt``)
    damaged  run.json unreadable or of an unknown status, or status finished with a summary.json that is
             missing or not a finished run's summary -> the comparison is refused before any run (DataError,
             exit 3) naming the file: a finished run is never trained again, nor its files replaced, unasked

"Same data" is the same ``data_fingerprint`` (trainlab.data.fingerprint: the data files' paths,
sizes and modification times); a failure recorded on other data is tried again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.compare.busy_run import recorded_busy
from trainlab.compare.machine_failure import recorded_machine_failure
from trainlab.compare.strategies import NamedStrategy, apply_strategy
from trainlab.config import Config, validate
from trainlab.config_fields import short_repr
from trainlab.config_identity import RUN_IDENTITY, change_from_stored, run_identity_hash
from trainlab.data.fingerprint import data_changes, data_fingerprint
from trainlab.data.paths import resolve_data_paths
from trainlab.records import finished_summary_damage, read_record_object

ERROR_FILE = "compare-error.json"  # written into a run folder whose run raised (not diverged)


@dataclass(frozen=True)
class RunPlan:
    """One run of the comparison: where it lives and the resolved config it must have."""

    task: str
    strategy: str
    seed: int
    raw: dict[str, Any]
    path: Path

    @property
    def config(self) -> Config:
        return validate(self.raw)

    @property
    def label(self) -> str:
        return f"{self.task}/{self.strategy}/seed-{self.seed}"


def seed_config(raw: dict[str, Any], task: str, strategy: str, seed: int) -> dict[str, Any]:
    """The run's raw config: ``seed`` = k (data order, initial weights; the split too unless
    the config fixes ``data.split_seed``), a name per arm, and no progress bar."""
    raw = dict(raw)
    raw["seed"] = seed
    raw["name"] = f"{task}-{strategy}"
    output = dict(raw.get("output") or {})
    output["progress"] = "off"
    raw["output"] = output
    return raw


def plan_runs(bases: dict[str, dict[str, Any]], strategies: list[NamedStrategy], seeds: list[int],
              out: Path) -> list[RunPlan]:
    """Every task x strategy x seed, seed-major so that early results already pair across arms."""
    plans = []
    for task, base in bases.items():
        configs = {s.name: apply_strategy(base, s.overrides) for s in strategies}
        for seed in seeds:
            for strategy in strategies:
                raw = seed_config(configs[strategy.name], task, strategy.name, seed)
                plans.append(RunPlan(task, strategy.name, seed, raw, out / "runs" / task / strategy.name / f"seed-{seed}"))
    return plans




def current_data_fingerprint(config: Config, memo: dict[str, str | None] | None = None) -> str | None:
    """:func:`~trainlab.data.fingerprint.data_fingerprint` of the files ``config`` names now, its paths
    resolved as a run resolves them (``TRAINLAB_DATA_DIR``, then the cwd). ``memo`` keeps one per
    data section (the runs of a comparison share a few; a CIFAR folder takes ~0.4 s)."""
    data = resolve_data_paths(config.data.model_dump())
    if memo is None:
        return data_fingerprint(data)
    key = json.dumps(data, sort_keys=True, default=str)
    if key not in memo:
        memo[key] = data_fingerprint(data)
    return memo[key]


def run_action(plan: RunPlan, memo: dict[str, str | None] | None = None) -> tuple[str, str]:
    """(action, note): action is new | finished | failed | changed | partial (see module docstring).
    ``memo``: data fingerprints already taken (:func:`current_data_fingerprint`)."""
    memo = {} if memo is None else memo  # recorded_run_change takes the fingerprint again
    config = plan.config
    wanted = config.hash()
    data = current_data_fingerprint(config, memo)
    info_path = plan.path / "run.json"
    info = read_record_object(info_path)
    error = read_record_object(plan.path / ERROR_FILE)
    if error is not None and stale_error_record(error, info):
        error = None  # not the run's outcome: its run.json says where it stopped (or that it finished)
    # the exact config: a failure may come of the output section (a full disk under its checkpoint policy)
    if error is not None and error.get("config_hash") == wanted and error.get("data_fingerprint") == data:
        return "failed", str(error.get("reason"))  # the same config on the same data would fail the same way
    if info is None:
        if not (info_path.exists() or info_path.is_symlink()):
            return "new", ""
        # run.json is written atomically, so a kill never leaves it unreadable: someone damaged it, and whether
        # the run finished cannot be told
        return "damaged", (f"{info_path} cannot be read as a JSON object (damaged, or not a regular file), so "
                           f"whether {plan.label} finished cannot be told; {_RESTORE} {plan.path} to train that "
                           "run again")
    summary_path = plan.path / "summary.json"
    status = info.get("status")
    damage = finished_summary_damage(summary_path) if status == "finished" else None
    recorded = info.get("config_hash")
    if not recorded and not damage:  # runs whose run.json predates its config_hash: the summary's
        recorded = (read_record_object(summary_path) or {}).get("config_hash")
    if damage and recorded is None:  # nothing left says which config the finished run trained
        return "damaged", _damaged_summary(plan, summary_path, damage)
    change = recorded_run_change(plan, config, info, recorded, memo)
    if change:
        return _staged_action(plan, memo, "of the changed config") or ("changed", change)
    if damage:
        return "damaged", _damaged_summary(plan, summary_path, damage)
    if status == "finished":
        return "finished", ""
    if status == "diverged":
        return "failed", "diverged"
    if status == "failed" and (recorded == wanted or _is_with_threads_given(plan, config, recorded)):
        return "failed", _failure_reason(info)
    if status not in (*RESUMABLE, "failed"):
        return "damaged", (f"{info_path} has status {short_repr(status)}, which no run records (one of "
                           f"running, interrupted, finished, diverged, failed); {_RESTORE} {plan.path} to train "
                           "that run again")
    return _staged_action(plan, memo, "newer than its folder's") or ("partial", f"resuming {plan.label} (status {status})")


RESUMABLE = ("running", "interrupted")  # run.json statuses of a run that stopped before its end


def _staged_action(plan: RunPlan, memo: dict[str, str | None], which: str) -> tuple[str, str] | None:
    """``("adopt", note)`` where the newest dead staging folder beside ``plan``'s folder holds ``plan``'s own
    run (:func:`_stranded_run_of`), ``which`` saying what that run is beside the folder's; else None (a
    ``partial`` resume then removes such folders first: :func:`~trainlab.compare.runner._drop_staged_runs`)."""
    status = _stranded_run_of(plan, memo)
    if status is None:
        return None
    if status == "finished":
        return "adopt", f"taking {plan.label}'s finished run {which} from its staging folder"
    return "adopt", f"resuming {plan.label} from the checkpoint of its run {which}"


def _stranded_run_of(plan: RunPlan, memo: dict[str, str | None]) -> str | None:
    """The status of the run in the newest dead staging folder beside ``plan``'s folder
    (:func:`~trainlab.run_staging.stranded_overwrites`: a retraining of a changed config, killed after its first
    step checkpoint, or as it finished) where it is ``plan``'s own run: the same config and data
    (:func:`recorded_run_change` of its run.json is None); else None. ``resume`` of the folder adopts that one
    (:meth:`~trainlab.run_folder.RunDir.open_existing`), so the retraining goes on from its checkpoint instead of
    from step 0 each time the comparison is stopped."""
    from trainlab.run_staging import stranded_overwrites

    stranded = stranded_overwrites(plan.path)
    info = read_record_object(stranded[0] / "run.json") if stranded else None
    status = info.get("status") if isinstance(info, dict) else None
    if status in (*RESUMABLE, "finished") and recorded_run_change(plan, plan.config, info, info.get("config_hash"),
                                                                   memo) is None:
        return status
    return None


def _is_with_threads_given(plan: RunPlan, config: Config, recorded: str | None) -> bool:
    """Whether the run recorded under hash ``recorded`` is ``config`` with the thread count the comparison
    wrote into its config.yaml (:func:`~trainlab.compare.runner.with_threads_given`): the exact config of a failed run, which is
    skipped as failed, not resumed. Read from the run's config.yaml; False where it cannot be read."""
    from trainlab.config import load_config
    from trainlab.errors import TrainlabError

    if config.runtime.num_threads is not None or recorded is None:
        return False
    try:
        threads = load_config(plan.path / "config.yaml", follow_links=False).runtime.num_threads
    except (TrainlabError, OSError, ValueError):
        return False
    if threads is None:
        return False
    given = config.model_copy(update={"runtime": config.runtime.model_copy(update={"num_threads": threads})})
    return given.hash() == recorded


def recorded_run_change(plan: RunPlan, config: Config, info: Mapping[str, Any], recorded_hash: str | None,
                        memo: dict[str, str | None] | None = None) -> str | None:
    """Why the run that ``plan``'s folder records is not ``plan``'s run (``config``: ``plan.config``), as the
    line :func:`run_action` prints before training it again; None when it is ``plan``'s run.

    Not ``plan``'s run: its config hash (``recorded_hash``: ``run.json``'s, or ``summary.json``'s for a run
    recorded before run.json held one) differs from ``config.hash()`` and its ``run_identity`` (``info``, the
    folder's run.json; trainlab.config_identity) from ``config``'s, or its data files changed since
    (``info``'s ``data_fingerprint`` against the files now; a run recorded before fingerprints is matched by
    its config alone). :func:`~trainlab.compare.run_record.load_run` reads no results of such a run as
    ``plan``'s. ``memo``: data fingerprints already taken (:func:`current_data_fingerprint`)."""
    wanted = config.hash()
    if recorded_hash != wanted and info.get(RUN_IDENTITY) != run_identity_hash(config):
        change = change_from_stored(plan.path, config) or f"hash {recorded_hash} -> {wanted}"
        return f"config changed ({change}): running {plan.label} again"
    data = current_data_fingerprint(config, memo)
    # data_changes reads an older fingerprint's form too
    if info.get("data_fingerprint", data) != data and data_changes(info, resolve_data_paths(config.data.model_dump())):
        return f"data files changed since {plan.label} ran: running it again"
    return None


def stale_error_record(error: dict[str, Any], info: dict[str, Any] | None) -> bool:
    """Whether a run folder's ``compare-error.json`` (``error``) does not say how the run ended: the machine
    stopped it (:func:`~trainlab.compare.machine_failure.recorded_machine_failure`), an earlier version
    recorded its folder in use by another process as a failure (:func:`~trainlab.compare.busy_run.recorded_busy`),
    or its ``run.json`` (``info``) says it finished since (``trainlab resume`` finished it, or it had finished
    when what followed its results raised)."""
    finished = isinstance(info, dict) and info.get("status") == "finished"
    return finished or recorded_machine_failure(error) or recorded_busy(error)


def drop_stale_error_record(plan: RunPlan) -> None:
    """Remove a finished run's stale ``compare-error.json`` (:func:`stale_error_record`), best effort: left
    there, it would still be read as the run's failure by an earlier version, and by a reader of the folder."""
    try:
        (plan.path / ERROR_FILE).unlink(missing_ok=True)
    except OSError:
        pass


_RESTORE = "restore the file from a copy, or delete the folder"


def _failure_reason(info: dict[str, Any]) -> str:
    """Why a run whose training raised failed: run.json's ``error`` (``"status": "failed"``, written by
    :func:`trainlab.experiment._record_failure`). Such a run without a compare-error.json for this config
    (trained by ``trainlab train``, or its error record could not be written) is skipped as failed, as one
    with it is: for the exact config hash only, since its failure may have come of the output section (a full
    disk under its checkpoint policy); one that differs only there (or in its thread count) is resumed, as
    ``trainlab resume`` resumes it."""
    return str(info.get("error") or "failed (run.json records no error)")


def _damaged_summary(plan: RunPlan, path: Path, damage: str) -> str:
    return (f"{path} of the finished run {plan.label} {damage}; compare never trains a finished run again "
            f"unasked: {_RESTORE} {plan.path} to train that run again")


# --------------------------------------------------------------------------- one run (in a worker)
