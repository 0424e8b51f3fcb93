"""Run folders' lifecycle: train a config into one, resume one, evaluate one.

:func:`train` builds everything first (so a bad config, bad data or bad callbacks leave no
file behind), then creates the run folder, adds the folder's callbacks
(checkpoints, metrics records, signals, progress) and the user's, and runs.
:func:`resume` adds the same callbacks, then restores the newest checkpoint that verifies into all of
them (each gets the state its namesake saved) and continues;
:func:`evaluate_run` reloads ``model.safetensors`` and ``loss.safetensors``. Each run happens inside
:func:`trainlab.builders.run_scope`, so runs can follow one another in one process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from trainlab import __version__
from trainlab.arguments import flag
from trainlab.atomic import write_json
from trainlab.builders import Built, build, run_scope, with_data_paths_resolved
from trainlab.callbacks.base import (
    Callback,
    CallbackError,
    CallbackList,
    Event,
    callback_name,
    is_builtin,
    user_callbacks,
)
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.loggers import check_loggers, logger_callbacks
from trainlab.callbacks.metrics_recorder import MetricsRecorder
from trainlab.callbacks.progress import ProgressBar, ProgressLog, progress_kind
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.code_policy import (
    config_folder_trusted,
    resume_command_words,
    run_code_policy,
    run_command_words,
    trusted_code_folders,
    trusting_own_run,
)
from trainlab.config import Config, as_config, dump_yaml, load_config
from trainlab.config_fields import counted, path_argument
from trainlab.config_identity import RUN_IDENTITY, change_from_stored, run_identity_hash
from trainlab.data.fingerprint import data_changes, data_fingerprint, named_files
from trainlab.data.paths import DATA_DIR_ENV, PATH_KEYS
from trainlab.engine import checkpoint
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.state import TrainState
from trainlab.errors import (
    DISK_FULL_OR_READ_ONLY,
    ConfigError,
    DataError,
    Interrupted,
    TrainingError,
    TrainlabError,
    WriteError,
    cannot,
)
from trainlab.exception_origin import exception_line, first_line
from trainlab.inference import model_record, refuse_gone_checkpoint, run_config_path
from trainlab.model_file import (
    DIGEST_KEY,
    LOSS_DIGEST_KEY,
    LOSS_FILE,
    MODEL_FILE,
    loss_state,
    write_loss_state,
    write_model,
)
from trainlab.notices import note, warn
from trainlab.out_of_memory import is_out_of_memory
from trainlab.records import read_record_object, read_record_text, safe_summary
from trainlab.run_checks import divergence_advice
from trainlab.run_folder import RunDir, default_dir
from trainlab.run_records import (
    DIGESTS_KEY,
    LABELS_RECORD,
    MODEL_RECORD,
    labels_record,
    load_trained_config,
    record_digests,
)
from trainlab.run_summary import summarize
from trainlab.run_weights import load_trained_state, read_trained_state
from trainlab.shell_command import command_line, quoted_command
from trainlab.time_budget import plan_line

FINAL_WRITE_PATIENCE_S = 300.0  # how long the end of a run waits for disk space to come back


class StoppedWaiting(Exception):
    """A signal ended :func:`retrying`'s wait for disk space: ``signum`` (SIGINT/SIGTERM), ``what`` was not written."""

    def __init__(self, signum: int, what: str):
        super().__init__(f"{signal.Signals(signum).name} received while waiting for disk space to write {what}")
        self.signum, self.what = signum, what


def retrying(write: Callable[[], None], what: str, patience_s: float = FINAL_WRITE_PATIENCE_S,
             pause_s: float = 2.0, interrupted: Callable[[], int | None] = lambda: None,
             where: Path | None = None) -> None:
    """Run ``write`` until it succeeds; a full disk or quota (ENOSPC, EDQUOT) warns once and retries for
    ``patience_s`` (any other OSError is raised at once). The warning names ``where``, the run folder written
    (the runs of a comparison wait side by side: each says which it is).

    ``interrupted()`` is the SIGINT/SIGTERM received so far (None: none); after a failed attempt with one
    received the wait ends at once: :class:`StoppedWaiting` (a stop the user asked for is not held up
    for minutes by a full disk).

    Every write is atomic, so a failed attempt leaves the previous files intact.
    """
    deadline = time.monotonic() + patience_s
    warned = False
    while True:
        try:
            write()
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or time.monotonic() >= deadline:
                raise
            signum = interrupted()
            if signum is not None:
                raise StoppedWaiting(signum, what) from None
            if not warned:
                into = f" in {where}" if where is not None else ""
                warn(f"cannot write {what}{into} ({exc.strerror or exc}); retrying for up to "
                     f"{patience_s:.0f} s: free some space and the run completes")
                warned = True
            time.sleep(pause_s)


def _run_callbacks(built: Built, run: RunDir, quiet: bool) -> tuple[CheckpointSaver, SignalStop, list[Callback]]:
    """The run folder's callbacks for ``run``; making them writes nothing (each writes once training starts)."""
    out = built.config.output
    ckpt = out.checkpoint
    saver = CheckpointSaver(run.checkpoints, ckpt.every_n_steps, ckpt.every_n_epochs, ckpt.every_seconds,
                            ckpt.keep_last, info={"config_hash": built.config.hash(), "trainlab": __version__},
                            monitor=built.monitor, mode=built.mode, run_folder=run.final_path)
    signals = SignalStop()
    callbacks: list[Callback] = [saver, MetricsRecorder(run), signals, *logger_callbacks(built.config, run.path)]
    kind = None if quiet else progress_kind(out.progress)
    if kind == "bar":
        callbacks.append(ProgressBar(built.monitor))
    elif kind == "log":
        callbacks.append(ProgressLog(built.monitor, out.log_every_seconds))
    return saver, signals, callbacks


def _check_callbacks(built: Built, target: Path, quiet: bool, user: list[Callback]) -> None:
    """Refuse (ConfigError) ``user`` callbacks that are not Callback instances or whose names clash, with
    one another or with the run's own, before any file is written: the run folder's callbacks are made
    for ``target`` only to be checked beside them (making one writes nothing)."""
    stand_ins = _run_callbacks(built, RunDir(target), quiet)[2]
    CallbackList([*built.trainer.callbacks.callbacks, *stand_ins, *user])


def attach_run_folder_callbacks(built: Built, run: RunDir, quiet: bool,
                                user: list[Callback]) -> tuple[CheckpointSaver, SignalStop]:
    """Add the run folder's callbacks and ``user``'s to the trainer, before a checkpoint is restored into
    it: every callback, the checkpoint saver's ``best`` and the user's included, gets its saved state back
    (by name; one without saved state starts afresh), as a divergence rollback restores the same set."""
    saver, signals, run_callbacks = _run_callbacks(built, run, quiet)
    built.trainer.add_callbacks([*run_callbacks, *user])
    return saver, signals


def _run(built: Built, run: RunDir, quiet: bool, saver: CheckpointSaver, signals: SignalStop) -> dict[str, Any]:
    # where a resumed run continues from until it saves a checkpoint of its own: a path, so not in the saver's
    # state (the run folder may have moved since, or be a staged overwrite)
    saver.last_saved = built.notes.pop("resumed_from", None)
    with signals.installed():  # until every file is written: a signal while finishing lets the run complete
        try:
            return _train_and_write(built, run, saver, signals, quiet)
        except KeyboardInterrupt:  # a repeated signal (SignalStop): stopped at once
            names = [signal.Signals(signum).name for signum in signals.signals[-2:]] or ["SIGINT"]
            why = (f"{names[-1]} received twice" if len(set(names)) == 1 and len(names) == 2
                   else " then ".join(names) + " received")
            signum = signals.signals[-1] if signals.signals else signal.SIGINT
            raise _stopped(built, run, saver, f"{why}: stopped at once", signum) from None
        except StoppedWaiting as stop:
            raise _stopped(built, run, saver, f"{stop}: stopped", stop.signum) from None
        finally:
            if run.restored:  # the folder was deleted while the run trained (the next checkpoint made it again)
                warn(f"{run.final_path} lost {', '.join(run.restored)} while the run trained (deleted?); "
                     "trainlab wrote them again from the run's own copy")


def _stopped(built: Built, run: RunDir, saver: CheckpointSaver, why: str, signum: int,
             checkpointed: bool = False) -> Interrupted:
    """Record a run stopped by a signal (``why``: "SIGINT received twice: stopped at once"; unless it had
    finished) and say where resuming starts; the error exits 128 + ``signum``. ``checkpointed``: the stop
    was to write a checkpoint at this step (a first signal), said as such when it was written.

    A staged ``--overwrite`` is swapped into place only when it has something to keep
    (:meth:`RunDir.has_something_to_keep`: a step checkpoint; ``best/`` alone is none); otherwise it is
    discarded here, and the message says that the old run is untouched, which it then is."""
    step = built.trainer.state.step
    stopped = f"{why} at step {step}"
    if run.staged and not run.has_something_to_keep():
        run.discard_staging()
        return Interrupted(f"{stopped}, before the first checkpoint; the run in {run.final_path.resolve()} is "
                           "untouched (train with --overwrite again to replace it)", signum)
    with contextlib.suppress(OSError, ValueError):
        if run.info().get("status") != "finished":
            run.write_info(status="interrupted")
    run.commit_overwrite()  # staged: it has a checkpoint to resume from
    resume = _resume_hint(run.final_path.resolve(), built.trainer.callbacks.callbacks)
    if checkpointed and saver.last_saved and Path(saver.last_saved).name == checkpoint.folder_name(step):
        return Interrupted(f"{stopped} after writing a checkpoint; continue with: {resume}", signum)
    start = f"its last checkpoint ({saver.last_saved})" if saver.last_saved else "the start (no checkpoint yet)"
    return Interrupted(f"{stopped}; resuming continues from {start}: {resume}", signum)


def _resume_hint(path: Path, callbacks: list[Callback]) -> str:
    """How to continue the run in ``path``: ``trainlab resume PATH`` (``trainlab --allow-code resume PATH``
    for a run whose config names ``module:attr`` code, the user's own modules included: a run folder's config
    imports none without the opt-in; :func:`~trainlab.code_policy.resume_command_words`); for a run given
    callbacks of the user's (``callbacks``: the trainer's, trainlab's own among them), the Python call that
    gives them back, as the CLI cannot: ``trainlab.experiment.resume('PATH', callbacks=[...])``, inside
    ``with trainlab.code_policy.code_policy(allow=True):`` (Python's opt-in) where the run needs it."""
    words = resume_command_words(str(path))
    command = command_line(*words)
    users = [callback_name(cb) for cb in callbacks if not is_builtin(cb)]
    if not users:
        return command
    call = f"trainlab.experiment.resume({str(path)!r}, callbacks=[...])"
    if "--allow-code" in words:
        call = f"with trainlab.code_policy.code_policy(allow=True): {call}"
    return (f"{call} in Python, with the same callbacks ({', '.join(users)}), which get their saved state back "
            f"({command} would run without them)")


def _diverged(built: Built, run: RunDir, saver: CheckpointSaver, signals: SignalStop,
              exc: TrainingError) -> TrainingError:
    """A run that diverged (``exc``): its metrics so far, summary and run.json (``diverged``) written, an
    overwrite committed once a checkpoint holds something of it; the error to raise names the last good
    checkpoint and the advice for the data."""
    state = built.trainer.state
    retrying(lambda: run.write_metrics(state.history, state.events, state.step_records),
             "metrics.jsonl", interrupted=lambda: signals.received, where=run.final_path)
    if saver.last_saved:  # an overwrite keeps the new run only once it has something to keep
        run.commit_overwrite()
    summary = {"name": built.config.name, "status": "diverged", "steps": state.step, "events": state.events,
               "reason": str(exc)}
    run.write_summary(safe_summary(summary))
    run.write_info(status="diverged")
    where = f"; last good checkpoint: {saver.last_saved}" if saver.last_saved else "; no checkpoint was written yet"
    advice = divergence_advice(built.data, built.config.data.standardize_target)
    return TrainingError(f"{exc}{where}; {advice}")


def _train_and_write(built: Built, run: RunDir, saver: CheckpointSaver, signals: SignalStop,
                     quiet: bool) -> dict[str, Any]:
    trainer = built.trainer
    ended_badly: CallbackError | None = None  # a user's on_train_end that failed once training had finished
    try:
        trainer.fit()
    except (Interrupted, StoppedWaiting):
        raise
    except OSError:  # the machine's, and may pass (a full disk, a dropped mount): run.json stays "running",
        raise  # which resume continues and compare resumes; "failed" made compare skip the run
    except TrainingError as exc:
        raise _diverged(built, run, saver, signals, exc) from None
    except Exception as exc:  # the user's code failing mid-run (a schedule, a metric, a callback), or a bug
        if is_out_of_memory(exc):  # the machine's as a full disk is (a MemoryError, torch's allocator): "running"
            raise
        if not (isinstance(exc, CallbackError) and exc.event == Event.TRAIN_END and trainer.state.finished):
            _record_failure(trainer.state, run, exc)
            raise
        ended_badly = exc  # the built-in on_train_end hooks ran (fire_to_all): the run's results are written next
    if trainer.control.interrupted_by is not None:
        signum = trainer.control.interrupted_by
        raise _stopped(built, run, saver, f"{signal.Signals(signum).name} received: stopped", signum,
                       checkpointed=True)
    summary = summarize(built)
    weights = {k: v.contiguous() for k, v in built.model.state_dict().items()}
    # the loss's learned state as the summary's evaluation used it: eval must recompute the same loss
    loss_tensors = loss_state(built.loss)

    def write_results() -> None:
        if not run.path.is_dir():  # deleted while the run trained, and no checkpoint made it again
            raise WriteError(f"run folder {run.path} was removed while the run trained; its results were not "
                             "written: train again")
        run.restore_records()  # deleted with the folder, which a checkpoint made again: before their digests
        run.write_metrics(trainer.state.history, trainer.state.events, trainer.state.step_records)
        digest = write_model(run.path / MODEL_FILE, weights,
                             # one metadata key: safetensors writes several in hash-map order, not byte-stable
                             metadata={"trainlab": json.dumps({"format": "model", "config_hash": built.config.hash()})})
        digests = {DIGEST_KEY: digest}
        if loss_tensors:
            digests[LOSS_DIGEST_KEY] = write_loss_state(run.path / LOSS_FILE, loss_tensors, built.loss.name,
                                                        built.config.hash())
        else:  # one left by an attempt killed while finishing, with another loss, must not speak for this one
            (run.path / LOSS_FILE).unlink(missing_ok=True)
        run.write_summary(summary)
        run.write_info(status="finished", **digests, **{DIGESTS_KEY: record_digests(run.path)})

    retrying(write_results, "the run's results", interrupted=lambda: signals.received, where=run.final_path)
    signals.result_written()  # run.json says finished: no signal stops it now (the CLI defers them to its exit)
    keep = built.config.output.checkpoint.keep_after_finish
    kept = checkpoint.prune_after_finish(run.checkpoints, keep)
    if not quiet:
        note(f"checkpoints kept ({keep}): {', '.join(p.name for p in kept) or 'none'}")
    run.commit_overwrite()
    if signals.received is not None and not signals.handed_over:  # everything is written (the CLI says it itself)
        warn(f"{signal.Signals(signals.received).name} received while finishing; the run is complete")
    if ended_badly is not None:
        raise CallbackError(f"{ended_badly}, after the run had finished: its results were written to "
                            f"{run.final_path} (run.json says finished)", ended_badly.callback,
                            ended_badly.event) from ended_badly.__cause__
    return summary


def _record_failure(state: TrainState, run: RunDir, exc: Exception) -> None:
    """Record a run that training failed with ``exc`` (not a divergence, not a signal, not the machine's
    OSError or memory running out, :func:`~trainlab.out_of_memory.is_out_of_memory`): metrics.jsonl so far
    (``state``'s records), and run.json's ``"status": "failed"`` with ``error``, the CLI's one line
    (``error:`` left out), so that it no longer reads as running. Best effort, at once: the failure may be
    the disk's own, and it is what the user is told, not a failed write of its record. Resuming continues
    from the last checkpoint (or starts over if none), as for an interrupted run."""
    line = first_line(exc) if isinstance(exc, TrainlabError) else exception_line(exc)
    with contextlib.suppress(OSError, ValueError):
        run.write_metrics(state.history, state.events, state.step_records)
    with contextlib.suppress(OSError, ValueError):
        run.write_info(status="failed", error=line)


def train(config: Config | str | Path | dict[str, Any], out: str | Path | None = None, overwrite: bool = False,
          quiet: bool = False, resume_if_exists: bool = False,
          callbacks: Callback | Iterable[Callback] | None = ()) -> tuple[dict[str, Any], Path]:
    """Train ``config`` (a :class:`Config`, a YAML path, or a config dict) into a new run folder; returns
    (summary, run folder).

    ``callbacks`` are user :class:`trainlab.Callback` instances (a list, or one), run beside the built-in
    ones; bad ones are refused before any file is written. A config given as a path, or read from one by
    :func:`~trainlab.config.load_config` (overrides included), runs the ``module:attr`` code of its folder
    and of the working directory, as ``trainlab train PATH`` does (docs/security.md); one built in Python
    (a dict, :func:`~trainlab.config.validate`), that of the working directory. With ``resume_if_exists``, a run already in the folder is continued
    (:func:`resume`) under the same policy when its config.yaml names no code that ``config`` does not.
    """
    user = user_callbacks(callbacks)
    # each a bool: "false" or "no" is a true string, and overwrite would replace the run
    overwrite, quiet, resume_if_exists = (flag(f"train's {name}", value) for name, value in (
        ("overwrite", overwrite), ("quiet", quiet), ("resume_if_exists", resume_if_exists)))
    if out is not None:  # ~ expanded as the CLI's --out and output.dir are: Python passes no shell
        out = path_argument(out, "train's out")
    with config_folder_trusted(_config_folder(config)):
        config = as_config(config)
        target = Path(out or config.output.dir or default_dir(config.name))
        if resume_if_exists and (target / "run.json").exists():
            with trusting_own_run(target, config.to_dict()):
                return resume(target, quiet=quiet, callbacks=user, config=config)
        return _train(config, target, overwrite, quiet, user)


def _config_folder(config: Config | str | Path | dict[str, Any]) -> Path | None:
    """The folder whose ``module:attr`` code ``config`` runs as the user's besides the working directory: a
    path's folder, or the one a Config was read from (:attr:`Config.source_folder`); None for a dict or a
    Config built in Python."""
    if isinstance(config, str | os.PathLike):
        return Path(config).parent
    return config.source_folder if isinstance(config, Config) else None


def _train(config: Config, target: Path, overwrite: bool, quiet: bool, user: list[Callback]) -> tuple[dict[str, Any], Path]:
    requested_hash, identity = config.hash(), run_identity_hash(config)
    data_dir = os.environ.get(DATA_DIR_ENV)
    config = with_data_paths_resolved(config, data_dir)
    fingerprint = data_fingerprint(config.data.model_dump())  # before reading: what the run reads, or newer
    with run_scope(config):
        built = build(config, quiet=quiet, time_budget="calibrate")  # every bad input fails here, before any file
        if quiet and built.precision_warning:  # a warning: shown under --quiet too
            warn(built.precision_warning)
        built.notes["requested_hash"] = requested_hash
        check_loggers(list(config.output.loggers))  # a missing package is refused before any folder exists
        _check_callbacks(built, target, quiet, user)  # so are bad callbacks
        protect = [value for key in PATH_KEYS if isinstance(value := config.data.model_dump().get(key), str)]
        records = creation_records(built)  # an earlier attempt that left exactly these is reused (RunDir.create)
        try:
            run = RunDir.create(target, overwrite=overwrite, protect=protect, records=records)
        except OSError as exc:
            raise _before_training(exc) from None
        try:
            try:
                write_data_records(run, built, records)  # what create compared an earlier attempt's files with
                run.write_config(records["config.yaml"])  # before run.json: a folder with run.json can resume
                run.write_info(status="running", config_hash=requested_hash, **{RUN_IDENTITY: identity},
                               resolved_config_hash=built.config.hash(),
                               data_fingerprint=fingerprint, code_folders=trusted_code_folders(),
                               data_dir=str(Path(data_dir).absolute()) if data_dir else None, created=time.time(),
                               **{AUTO_NOTES_KEY: auto_notes(built)})
            except OSError as exc:
                raise _before_training(exc) from None
            run.records = records  # what a folder deleted while the run trains gets back (RunDir.restore_records)
            saver, signals = attach_run_folder_callbacks(built, run, quiet, user)
            return _run(built, run, quiet, saver, signals), run.final_path
        finally:
            run.close()


# The summary notes that only the build of the config as given makes: config.yaml holds what lr: auto and
# loss: auto resolved to, so a resume, built from it, runs no range test and asks no advisor. run.json keeps
# them (AUTO_NOTES_KEY) from the run's creation, and a resume puts them back (restore_auto_notes).
AUTO_NOTES = ("loss_advice", "lr_auto", "lr_auto_s")
AUTO_NOTES_KEY = "auto_notes"


def auto_notes(built: Built) -> dict[str, Any]:
    """The :data:`AUTO_NOTES` of ``built``'s notes ({} for a config without ``lr: auto`` / ``loss: auto``)."""
    return {key: built.notes[key] for key in AUTO_NOTES if key in built.notes}


def restore_auto_notes(built: Built, info: Mapping[str, Any]) -> None:
    """Put run.json's :data:`AUTO_NOTES_KEY` (``info``) back into the notes of ``built``, a resume's build,
    first, where the run's own build made them (before gd_mode, device, ...), so the resumed run's
    summary notes are the uninterrupted run's, ``lr_auto_s`` the original range test's seconds. A run
    folder written before run.json kept them (or a run.json edited since) gives nothing back."""
    stored = info.get(AUTO_NOTES_KEY)
    if not isinstance(stored, Mapping):
        return
    restored = {key: stored[key] for key in AUTO_NOTES if key in stored}
    merged = {**restored, **built.notes}
    built.notes.clear()  # in place: the notes dict is the one the build handed around
    built.notes.update(merged)


def _before_training(exc: OSError) -> OSError | WriteError:
    """A new run's records could not be written (before run.json: no training, no checkpoint yet). A full or
    read-only disk: a WriteError whose advice is to rerun the same command, which reuses what was written
    (:meth:`RunDir.create`); ``resume`` needs run.json. Any other OSError as it is."""
    if exc.errno not in DISK_FULL_OR_READ_ONLY:
        return exc
    return WriteError(f"{cannot(exc)}; training had not started: rerun the same "
                      "command once the disk is writable")


def creation_records(built: Built) -> dict[str, Any]:
    """What a new run writes before run.json, by file name: config.yaml (text), and the records of
    :func:`write_data_records` as JSON values: ``labels.json`` (class names in index order, classification),
    ``preprocessing.json`` (what predict re-applies, when there is any) and ``model.json``
    (:func:`trainlab.inference.model_record`)."""
    data = built.data
    records: dict[str, Any] = {"config.yaml": dump_yaml(built.config)}
    if data.class_names is not None:
        records[LABELS_RECORD] = labels_record(data.task, data.class_names)
    if data.preprocessing:
        records["preprocessing.json"] = data.preprocessing
    records[MODEL_RECORD] = model_record(built)
    return records


def write_data_records(run: RunDir, built: Built, records: dict[str, Any] | None = None) -> None:
    """The JSON records of :func:`creation_records` (``records``, when the caller has them already):
    labels.json, preprocessing.json, model.json."""
    for name, record in (records if records is not None else creation_records(built)).items():
        if name != "config.yaml":
            write_json(run.path / name, record)


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


def _load_latest(built: Built, run: RunDir, quiet: bool, found: FoundCheckpoint | None) -> None:
    """Restore ``found`` (:func:`trainlab.engine.checkpoint.latest`, which warns of each checkpoint it skips)
    into ``built``; None: the run starts from step 0."""
    path = run.path
    if found is None:  # the work done so far is lost: said even with --quiet
        warn(f"no valid checkpoint in {run.checkpoints}; starting {path} from step 0")
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
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        first = " ".join(lines[:2])[:300]
        raise DataError(f"checkpoint {folder} does not match the model or optimizer built from "
                        f"{path / 'config.yaml'} ({type(exc).__name__}: {first}); "
                        f"{_regrouped_hint(str(exc))}start a new run instead") from None
    built.notes["resumed_from"] = str(folder)
    if not quiet:
        state = built.trainer.state
        into = f" and {counted(state.batch_in_epoch, 'batch', 'batches')} into the next" if state.batch_in_epoch else ""
        note(f"resuming {path} from {folder.name} (step {state.step}: {counted(state.epoch, 'epoch')} done{into})")


def resume(path: str | Path, quiet: bool = False, callbacks: Callback | Iterable[Callback] | None = (),
           config: Config | None = None) -> tuple[dict[str, Any], Path]:
    """Continue a run from its newest checkpoint that verifies.

    ``callbacks`` (a list, or one, as for :func:`train`) get back the state their namesakes saved in that
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


def _resume(path: str | Path, quiet: bool, user: list[Callback],
            config: Config | None) -> tuple[dict[str, Any], Path]:
    path = Path(path)
    try:
        run = RunDir.open_existing(path)
    except WriteError:  # the lock cannot be written: a finished run asks for no writing (a read-only mount)
        info = read_record_object(path / "run.json")
        if info is None or info.get("status") != "finished":
            raise
        _check_resumable(path, info, load_config(path / "config.yaml", follow_links=False), config)
        return _nothing_to_resume(path), path
    if run.adopted_from is not None:
        note(f"note: continuing the 'train --overwrite' of {path} that was killed before it could replace the "
              f"run there (it was in {run.adopted_from.name}); the replaced run is deleted, as the overwrite asked")
    try:
        stored = load_config(path / "config.yaml", follow_links=False)
        _check_resumable(path, run.info(), stored, config)
        if run.info().get("status") == "finished":  # an idempotent resume: nothing to do, nothing written
            return _nothing_to_resume(path), path
        _warn_if_data_changed(path, run.info(), stored, "since the run started", "resuming with them")
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
            _load_latest(built, run, quiet, found)
            # as the resumed training reads its data: a damaged record is remade
            run.records = {**creation_records(built), "config.yaml": read_record_text(path / "config.yaml")}
            write_data_records(run, built, run.records)
            run.write_metrics(built.trainer.state.history, built.trainer.state.events,
                              built.trainer.state.step_records)
            # a failed run's error is over once it resumes (run.json's fields are merged, not replaced)
            run.write_info(status="running", **({"error": None} if "error" in run.info() else {}))
            return _run(built, run, quiet, saver, signals), path
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


def _warn_if_data_changed(path: Path, info: dict[str, Any], config: Config, since: str, then: str) -> None:
    """One warning line when the files ``config``'s data names are not those the run recorded in
    run.json (``data_fingerprint``); results change, so it is never quiet."""
    changed = data_changes(info, config.data.model_dump())  # only the inputs that changed
    if changed:
        warn(f"the data files of {path} changed {since} ({changed}); {then}")


def _refuse_moved_data(path: Path, config: Config) -> None:
    """Refuse a run whose data files (``data.path``/``train``/``val``/``test``) are no longer where its
    config.yaml says: training recorded them as absolute paths, which ``--data-dir`` does not move, and
    the config is fixed by its hash, so the one way to evaluate it is to put the data back there."""
    data = config.data.model_dump()
    for key, file in named_files(data).items():
        if key != "tokenizer_path" and file.is_absolute() and not file.exists():  # tokenizer_path: maybe a package
            raise DataError(f"the data of run {path} is gone from where it was trained: data.{key} {file} does not "
                            "exist (an absolute path in the run's config.yaml, which --data-dir does not change); "
                            "put the data back there to evaluate the run")


def evaluate_run(path: str | Path, split: str = "test", checkpoint: str | None = None) -> dict[str, Any]:
    """Reload a finished run's ``model.safetensors`` (and ``loss.safetensors``, the learned state of its
    loss) and recompute its metrics on ``split``. ``checkpoint`` (``eval --checkpoint``: ``best``, ``last``, a
    ``step-*`` folder) evaluates the weights of that checkpoint of the run instead, those the run's own
    evaluation at that step used (:func:`trainlab.run_weights.checkpoint_state`)."""
    path = path_argument(path, "evaluate_run's path")
    with run_code_policy(path):
        return _evaluate_run(path, split, checkpoint)


def _evaluate_run(path: str | Path, split: str, checkpoint: str | None = None) -> dict[str, Any]:
    path = Path(path)
    config_path = run_config_path(path)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be one of train, val, test; got '{split}'")
    trained = read_trained_state(path, checkpoint)
    config = load_trained_config(path, config_path)
    try:
        info = json.loads(read_record_text(path / "run.json"))
    except (OSError, ValueError, RecursionError):
        info = {}
    refuse_gone_checkpoint(path, config)  # what predict says of it (trainlab.inference), before the data's
    _refuse_moved_data(path, config)  # before the "changed" warning: missing files are the news, not a change
    _warn_if_data_changed(path, info if isinstance(info, dict) else {}, config, "since it was trained",
                          f"evaluating on them as they are now (the {split} split may hold other rows)")
    with run_scope(config):
        built = build(config, quiet=True, training=False)
        # the model's weights and the loss's learned state (a learned variance, alpha ...)
        load_trained_state(built.model, built.loss, trained, path, config_path, config_path, warn=warn)
        return built.evaluator.evaluate(getattr(built.data, split))
