"""Resuming a run folder: :func:`resume` adds the callbacks :func:`trainlab.experiment.train` adds (checkpoints,
metrics records, signals, progress, and the user's), then restores the newest checkpoint that verifies into all
of them (each gets the state its namesake saved) and continues. A run that already finished is returned as it
is. It happens inside :func:`trainlab.builders.run_scope`, so runs can follow one another in one process.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainlab.builders import Built, build, run_scope
from trainlab.callbacks.base import Callback, user_callbacks
from trainlab.code_policy import resume_command_words, run_code_policy, run_command_words
from trainlab.config import Config, load_config
from trainlab.config_fields import counted, path_argument
from trainlab.config_identity import change_from_stored
from trainlab.data.fingerprint import data_changes
from trainlab.engine import checkpoint
from trainlab.engine.optimizer_state import OptimizerStateMismatch
from trainlab.engine.snapshot import Snapshot
from trainlab.errors import ConfigError, DataError, RunDirError, WriteError
from trainlab.experiment import (
    attach_run_folder_callbacks,
    creation_records,
    restore_auto_notes,
    run_training,
    write_data_records,
)
from trainlab.inference import fit_weights_advice
from trainlab.notices import note, warn
from trainlab.out_of_memory import is_out_of_memory
from trainlab.records import read_record_object, read_record_text
from trainlab.run_folder import RunDir
from trainlab.run_records import is_fit_records
from trainlab.shell_command import command_line, quoted_command
from trainlab.time_budget import plan_line

FoundCheckpoint = tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any]]  # checkpoint.latest: folder, manifest, tree, tensors


# what a checkpoint of a run started before commit 4b8448d (2026-12-05) may fail with: its optimizer's groups
GROUP_MISMATCHES = ("doesn't match the size of optimizer's group",  # torch.optim.Optimizer.load_state_dict's words
                    "different number of parameter groups")


def _regrouped_hint(error: str) -> str:
    """Why an optimizer's groups may no longer match a checkpoint of the same config: trainlab's rule for
    which parameters are weight-decayed changed (trainlab.optim.decay_split: a norm layer's gains and biases
    of 2+ dimensions no longer are; parameters frozen before a fine-tune are left out of its optimizer), which
    changes the groups' sizes or, where a group is left empty, their number. "" for any other mismatch."""
    if not any(words in error for words in GROUP_MISMATCHES):
        return ""
    return ("if the run was started with a trainlab from before 2026-12-05 (commit 4b8448d), its optimizer "
            "groups were split by the older rule (norm layers' gains and biases of 2+ dimensions were "
            "weight-decayed; parameters frozen before a fine-tune were in the optimizer): finish it with that "
            "trainlab, or ")


def _load_latest(built: Built, run: RunDir, quiet: bool, found: FoundCheckpoint | None,
                 had_checkpoints: bool = True) -> None:
    """Restore ``found`` (:func:`trainlab.engine.checkpoint.latest`, which warns of each checkpoint it skips)
    into ``built``; None: the run starts from step 0, said as "no valid checkpoint" where ``had_checkpoints``
    (each one skipped, with a warning), else as "no checkpoint" (none written: killed before its first)."""
    path = run.path
    if found is None:  # the work done so far is lost: said even with --quiet
        what = "no valid checkpoint" if had_checkpoints else "no checkpoint"
        warn(f"{what} in {run.checkpoints}; starting {path} from step 0")
        return
    folder, manifest, tree, tensors = found
    if manifest.get("config_hash") not in (None, built.config.hash()):  # results change: never quiet
        warn(f"{path / 'config.yaml'} changed since {folder.name} was written "
             f"(config hash {built.config.hash()} != {manifest['config_hash']}); resuming with it")
    try:
        built.trainer.restore(Snapshot(tree, tensors))
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        if is_out_of_memory(exc):  # the machine's while restoring: the checkpoint is fine (the CLI's exit 5)
            raise
        # the optimizer's part failing (StandardStep's load) is said to be the optimizer's, with torch's own error
        reason, part = (exc.reason, "optimizer") if isinstance(exc, OptimizerStateMismatch) else \
            (exc, "model or optimizer")
        lines = [line.strip() for line in str(reason).strip().splitlines() if line.strip()]
        first = " ".join(lines[:2])[:300]
        raise DataError(f"checkpoint {folder} does not match the {part} built from "
                        f"{path / 'config.yaml'} ({type(reason).__name__}: {first}); "
                        f"{_regrouped_hint(str(reason))}start a new run instead") from None
    built.notes["resumed_from"] = str(folder)
    if not quiet:
        state = built.trainer.state
        into = f" and {counted(state.batch_in_epoch, 'batch', 'batches')} into the next" if state.batch_in_epoch else ""
        if state.batch_in_epoch and state.batch_in_epoch >= built.trainer.plan.micro_batches:  # validation to come
            into = f" and all {counted(state.batch_in_epoch, 'batch', 'batches')} of the next, its end to come"
        note(f"resuming {path} from {folder.name} (step {state.step}: {counted(state.epoch, 'epoch')} done{into})")


def resume(path: str | Path, quiet: bool = False, callbacks: Callback | Iterable[Callback] | None = (),
           config: Config | None = None) -> tuple[dict[str, Any], Path]:
    """Continue a run from its newest checkpoint that verifies.

    ``callbacks`` (a list, or one, as for :func:`~trainlab.experiment.train`) get back the state their namesakes saved in that
    checkpoint (``load_state_dict``), as the built-in ones do. ``config`` (from ``train --resume``) must
    be the run's own: a different one is refused. A run that already finished is returned as it is
    (its summary.json; nothing is built, trained or written), with ``notes["nothing_to_resume"]`` holding
    the one line said on stderr, so that resuming is idempotent. The run folder's config.yaml imports no
    ``module:attr`` code without the opt-in (docs/security.md).
    """
    user = user_callbacks(callbacks)
    path = path_argument(path, "resume's path")
    with run_code_policy(path):
        return _resume(path, quiet, user, config)


def _stored_config(path: Path) -> Config:
    """The run folder's config.yaml, what a resume rebuilds the run from; a ConfigError with the way back when
    it is gone (the config the run started with, copied there, is checked against run.json's config hash)."""
    if not (path / "config.yaml").exists():
        raise ConfigError(f"cannot resume {path}: its config.yaml is missing (the run's config, which resume "
                          "rebuilds the run from); copy the config the run was started with there (its --set "
                          f"overrides written in) as {path / 'config.yaml'} (resume checks it against the config "
                          "hash in run.json), or "
                          f"train that config again with {command_line('--out', path, '--overwrite')}, or into "
                          "another --out")
    return load_config(path / "config.yaml", follow_links=False)


def _resume(path: str | Path, quiet: bool, user: list[Callback],
            config: Config | None) -> tuple[dict[str, Any], Path]:
    path = Path(path)
    if is_fit_records(path):  # not "stopped before training started: rerun that same 'trainlab train'"
        raise RunDirError(f"cannot resume {path}: it holds the records of trainlab.fit, whose model is your own "
                          f"module, which no config rebuilds; to train from its weights, {fit_weights_advice(path)}, "
                          "then call trainlab.fit with it: a new run (its epochs, schedule and optimizer state start "
                          "over), with no strategy init (it would replace those weights)")
    try:
        run = RunDir.open_existing(path)
    except WriteError:  # the lock cannot be written: a finished run asks for no writing (a read-only mount)
        info = read_record_object(path / "run.json")
        if info is None or info.get("status") != "finished":
            raise
        _check_resumable(path, info, _stored_config(path), config)
        return _nothing_to_resume(path), path
    if run.adopted_from is not None:
        note(f"note: continuing the new run of {path} (a 'train --overwrite', or a comparison's run of a changed "
              f"config) that was killed before it could replace the run there (it was in {run.adopted_from.name}); "
              "the replaced run is deleted, as the new run asked")
    try:
        stored = _stored_config(path)
        _check_resumable(path, run.info(), stored, config)
        if run.info().get("status") == "finished":  # an idempotent resume: nothing to do, nothing written
            return _nothing_to_resume(path), path
        warn_if_data_changed(path, run.info(), stored, "since the run started", "resuming with them")
        had_checkpoints = bool(checkpoint.step_folders(run.checkpoints))  # before latest sets damaged ones aside
        found = checkpoint.latest(run.checkpoints, set_aside=True)  # a broken one must not outrank new ones
        with run_scope(stored):
            # a checkpoint holds the time budget's plan; a run with none that verifies (killed before its first,
            # or all damaged) starts afresh from step 0, so it is timed as a new run is
            built = build(stored, quiet=True, time_budget="resume" if found is not None else "calibrate")
            if built.precision_warning:
                warn(built.precision_warning)
            if found is None and not quiet and stored.strategy.time_budget_s is not None:
                note(plan_line(built.notes["time_budget"]))  # a new plan: the first run's died with it
            built.notes["requested_hash"] = run.info().get("config_hash", stored.hash())
            restore_auto_notes(built, run.info())  # before write_data_records: model.json reads loss_advice
            # all of them get their saved state back
            saver, signals = attach_run_folder_callbacks(built, run, quiet, user)
            _load_latest(built, run, quiet, found, had_checkpoints)
            # as the resumed training reads its data: a damaged record is remade
            run.records = {**creation_records(built), "config.yaml": read_record_text(path / "config.yaml")}
            write_data_records(run, built, run.records)
            run.write_metrics(built.trainer.state.history, built.trainer.state.events,
                              built.trainer.state.step_records)
            # a failed run's error is over once it resumes (run.json's fields are merged, not replaced)
            run.write_info(status="running", **({"error": None} if "error" in run.info() else {}))
            return run_training(built, run, quiet, saver, signals), path
    finally:
        run.close()


def _check_resumable(path: Path, info: dict[str, Any], stored: Config, config: Config | None) -> None:
    """Refuse to resume ``path`` when ``config`` (``train --resume``'s) is another config than the run's, or
    when its config.yaml (``stored``) was changed since the run started (its hash is not run.json's
    ``resolved_config_hash``): the rest of the run would train with other settings under the recorded ones,
    and ``eval`` refuses such a run (:func:`trainlab.run_records.load_trained_config`). A run older than
    that record is not checked."""
    if config is not None and config.hash() not in (stored.hash(), info.get("config_hash")):
        # named in what the hash covers: a thread count changes it (and the float sums), not the outcome's identity
        change = (change_from_stored(path, config, Config.results_dict)
                  or f"config hash {info.get('config_hash')} != {config.hash()}")
        if info.get("status") == "finished":  # resuming it does nothing: a finished run is not trained further
            raise ConfigError(f"--resume: {path} holds a finished run of another config ({change}), which resume "
                              "does not train further; to train with the new settings, use another --out, or "
                              "--overwrite to replace the stored run (kept until the new one finishes)")
        raise ConfigError(f"--resume: {path} holds a run of another config ({change}); use another --out, "
                          f"or {quoted_command(*resume_command_words(path))} to continue the stored one")
    recorded = info.get("resolved_config_hash")
    if isinstance(recorded, str) and stored.hash() != recorded:
        raise ConfigError(f"{path / 'config.yaml'} was changed since the run started (its config hash "
                          f"{stored.hash()} is not the {recorded} recorded in {path / 'run.json'}): resuming would "
                          "train the rest with other settings; restore the file, or train a new run with the new "
                          "settings (trainlab train CONFIG --out ANOTHER_DIR)")


def _nothing_to_resume(path: Path) -> dict[str, Any]:
    """The summary of the finished run at ``path``, as summary.json holds it, with ``notes["nothing_to_resume"]``
    set to the line said on stderr (even when quiet: it is the call's whole result), e.g. "run runs/x already
    finished (test accuracy 0.93); nothing to resume". A summary.json that cannot be read is a DataError."""
    summary = read_record_object(path / "summary.json")
    if summary is None:
        raise DataError(f"run {path} already finished, but its {path / 'summary.json'} cannot be read (missing or "
                        f"damaged); evaluate the run with {quoted_command(*run_command_words('eval', path))}, or start a "
                        "new run")
    test = summary.get("test") if isinstance(summary.get("test"), dict) else {}
    key = "accuracy" if "accuracy" in test else next((k for k in test if k != "loss"), "loss")
    value = test.get(key)
    shown = f"test {key} {value:.6g}" if isinstance(value, int | float) else "no test metrics"
    line = f"run {path} already finished ({shown}); nothing to resume"
    note(line)
    notes = summary.get("notes") if isinstance(summary.get("notes"), dict) else {}
    summary["notes"] = {**notes, "nothing_to_resume": line}
    return summary


def warn_if_data_changed(path: Path, info: dict[str, Any], config: Config, since: str, then: str) -> None:
    """One warning line when the files ``config``'s data names are not those the run recorded in
    run.json (``data_fingerprint``); results change, so it is never quiet."""
    changed = data_changes(info, config.data.model_dump())  # only the inputs that changed
    if changed:
        warn(f"the data files of {path} changed {since} ({changed}); {then}")
