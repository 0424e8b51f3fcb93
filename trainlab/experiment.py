"""Training a config into a new run folder, and the run folder's machinery that resuming one shares.

:func:`train` builds everything first (so a bad config, bad data or bad callbacks leave no
file behind), then creates the run folder, adds the folder's callbacks
(checkpoints, metrics records, signals, progress) and the user's, and runs. Resuming
(:func:`trainlab.run_resume.resume`) adds the same callbacks (:func:`attach_run_folder_callbacks`) and runs
the same way (:func:`run_training`). Each run happens inside
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
    Event,
    callback_name,
    is_builtin,
    user_callbacks,
)
from trainlab.callbacks.callback_list import CallbackList
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.loggers import check_loggers, logger_callbacks
from trainlab.callbacks.metrics_recorder import MetricsRecorder
from trainlab.callbacks.progress import ProgressBar, ProgressLog, progress_kind
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.code_policy import (
    config_folder_trusted,
    resume_command_words,
    trusted_code_folders,
    trusting_own_run,
)
from trainlab.config import Config, as_config, dump_yaml
from trainlab.config_fields import path_argument
from trainlab.config_identity import RUN_IDENTITY, run_identity_hash
from trainlab.data.fingerprint import data_fingerprint
from trainlab.data.paths import DATA_DIR_ENV, PATH_KEYS
from trainlab.divergence_advice import diverged_at_first_step, divergence_advice
from trainlab.engine import checkpoint
from trainlab.engine.state import TrainState
from trainlab.errors import (
    DISK_FULL_OR_READ_ONLY,
    ConfigError,
    Interrupted,
    TrainingError,
    TrainlabError,
    WriteError,
    cannot,
)
from trainlab.exception_origin import failure_text, first_line
from trainlab.inference import model_record
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
from trainlab.preflight import check_components
from trainlab.records import safe_summary
from trainlab.run_folder import RunDir, default_dir
from trainlab.run_records import (
    DIGESTS_KEY,
    LABELS_RECORD,
    MODEL_RECORD,
    labels_record,
    record_digests,
)
from trainlab.run_summary import summarize, warn_if_non_finite
from trainlab.shell_command import command_line
from trainlab.sigterm import outcome_decided

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


def run_training(built: Built, run: RunDir, quiet: bool, saver: CheckpointSaver,
                 signals: SignalStop) -> dict[str, Any]:
    """Train ``built`` into ``run`` (its callbacks attached: :func:`attach_run_folder_callbacks`) and write its
    results; returns the summary. A signal or a divergence is recorded in ``run`` and raised as
    :class:`~trainlab.errors.Interrupted` or :class:`~trainlab.errors.TrainingError`; a failure of the user's
    code is recorded (:func:`_record_failure`) and raised as it is; the machine's (an OSError, memory running
    out) is raised with run.json left ``running``, for a resume to continue."""
    # where a resumed run continues from until it saves a checkpoint of its own: a path, so not in the saver's
    # state (the run folder may have moved since, or be a staged overwrite)
    saver.last_saved = built.notes.pop("resumed_from", None)
    with signals.installed():  # until every file is written: a signal while finishing lets the run complete
        try:
            return _train_and_write(built, run, saver, signals, quiet)
        except KeyboardInterrupt:  # a repeated signal (SignalStop): stopped at once
            names = [signal.Signals(signum).name for signum in signals.signals[-2:]]
            why = ("KeyboardInterrupt raised (no signal received)" if not names  # a callback's, the user's code
                   else f"{names[-1]} received twice" if len(set(names)) == 1 and len(names) == 2
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
    discarded here, and the message says that the old run is untouched, which it then is.

    From here the command's outcome is this interrupt (:func:`~trainlab.sigterm.outcome_decided`): a signal
    after the run's own handler is gone, while the Interrupted unwinds to the CLI, is only recorded; raised,
    it replaced the line that says where to resume with a bare ``error: interrupted`` (a user trial's double
    Ctrl-C, once in 16)."""
    outcome_decided()
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
    last = _newest_checkpoint(run, saver, step)
    if checkpointed and last and Path(last).name == checkpoint.folder_name(step):
        return Interrupted(f"{stopped} after writing a checkpoint; continue with: {resume}", signum)
    start = f"its last checkpoint ({last})" if last else "the start (no checkpoint yet)"
    return Interrupted(f"{stopped}; resuming continues from {start}: {resume}", signum)


def _newest_checkpoint(run: RunDir, saver: CheckpointSaver, step: int) -> str | None:
    """The checkpoint a resume of ``run`` starts from: the run's newest step folder up to ``step`` (the step it
    stopped at), else the saver's last. The saver notes a checkpoint once it is written, and a signal can land
    after its rename into place (complete: each is renamed whole) and before that: the message named step 25
    with step 28 written (a user trial's double Ctrl-C). A folder beyond ``step`` is no checkpoint of this run's:
    one a resume skipped as unreadable, which the next resume skips again."""
    written = [folder for folder in checkpoint.step_folders(run.checkpoints) if checkpoint.folder_step(folder) <= step]
    return str(written[0]) if written else saver.last_saved


def _resume_hint(path: Path, callbacks: list[Callback]) -> str:
    """How to continue the run in ``path``: ``trainlab resume PATH`` (``trainlab --allow-code resume PATH``
    for a run whose config names ``module:attr`` code, the user's own modules included: a run folder's config
    imports none without the opt-in; :func:`~trainlab.code_policy.resume_command_words`); for a run given
    callbacks of the user's (``callbacks``: the trainer's, trainlab's own among them), the Python call that
    gives them back, as the CLI cannot: ``trainlab.run_resume.resume('PATH', callbacks=[...])``, inside
    ``with trainlab.code_policy.code_policy(allow=True):`` (Python's opt-in) where the run needs it."""
    words = resume_command_words(str(path))
    command = command_line(*words)
    users = [callback_name(cb) for cb in callbacks if not is_builtin(cb)]
    if not users:
        return command
    call = f"trainlab.run_resume.resume({str(path)!r}, callbacks=[...])"
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
    advice = divergence_advice(built.data, built.config.data.standardize_target, built.config.strategy.clip_grad_norm,
                               built.notes.get("lr_auto"), diverged_at_first_step(state.events))
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
        note(f"note: checkpoints kept ({keep}): {', '.join(p.name for p in kept) or 'none'}")
    run.commit_overwrite()
    warn_if_non_finite(summary)
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
    the disk's own, and it is what the user is told, not a failed write of its record: a failure of the user's
    code (a loss's or model's forward) with the place that raised it, ``RuntimeError: boom (at my_loss.py:16)``.
    Resuming continues from the last checkpoint (or starts over if none), as for an interrupted run."""
    line = first_line(exc) if isinstance(exc, TrainlabError) else failure_text(exc)
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
    (a dict, :func:`~trainlab.config.validate`), that of the working directory. With ``resume_if_exists``, a
    run already in the folder is continued (:func:`~trainlab.run_resume.resume`) under the same policy when its
    config.yaml names no code that ``config`` does not; ``overwrite`` with it is refused (ConfigError), as
    contradicting it. Given neither ``out`` nor ``output.dir``, the run goes into a new folder of its own,
    :func:`~trainlab.run_folder.default_dir` (``-2``, ``-3``, ... appended to a name another run took:
    :meth:`~trainlab.run_folder.RunDir.create_at_free_name`), which ``overwrite`` and ``resume_if_exists``
    do not apply to.
    """
    user = user_callbacks(callbacks)
    # each a bool: "false" or "no" is a true string, and overwrite would replace the run
    overwrite, quiet, resume_if_exists = (flag(f"train's {name}", value) for name, value in (
        ("overwrite", overwrite), ("quiet", quiet), ("resume_if_exists", resume_if_exists)))
    if overwrite and resume_if_exists:
        raise ConfigError(OVERWRITE_WITH_RESUME)
    if out is not None:  # ~ expanded as the CLI's --out and output.dir are: Python passes no shell
        out = path_argument(out, "train's out")
    with config_folder_trusted(_config_folder(config)):
        config = as_config(config)
        named = out or config.output.dir  # None: a new folder of trainlab's choosing, never an existing one
        target = Path(named or default_dir(config.name))
        if named and resume_if_exists and (target / "run.json").exists():
            from trainlab.run_resume import resume  # here: trainlab.run_resume imports this module

            with trusting_own_run(target, config.to_dict()):
                return resume(target, quiet=quiet, callbacks=user, config=config)
        return _train(config, target, overwrite, quiet, user, free_name=not named)


OVERWRITE_WITH_RESUME = ("overwrite=True and resume_if_exists=True contradict each other: overwrite replaces "
                         "the run in the folder with a new one, resume_if_exists continues it; pass one of them")


def _config_folder(config: Config | str | Path | dict[str, Any]) -> Path | None:
    """The folder whose ``module:attr`` code ``config`` runs as the user's besides the working directory: a
    path's folder, or the one a Config was read from (:attr:`Config.source_folder`); None for a dict or a
    Config built in Python."""
    if isinstance(config, str | os.PathLike):
        return Path(config).parent
    return config.source_folder if isinstance(config, Config) else None


def _train(config: Config, target: Path, overwrite: bool, quiet: bool, user: list[Callback],
           free_name: bool = False) -> tuple[dict[str, Any], Path]:
    """:func:`train` into ``target`` (:meth:`RunDir.create`), or with ``free_name`` into the first free one of
    ``target``, ``target-2``, ... (:meth:`RunDir.create_at_free_name`: trainlab chose the name)."""
    requested_hash, identity = config.hash(), run_identity_hash(config)
    data_dir = os.environ.get(DATA_DIR_ENV)
    config = with_data_paths_resolved(config, data_dir)
    fingerprint = data_fingerprint(config.data.model_dump())  # before reading: what the run reads, or newer
    with run_scope(config):
        check_components(config, before_data=True)  # a misspelt optimizer or model option: said before the data
        built = build(config, quiet=quiet, time_budget="calibrate")  # every bad input fails here, before any file
        if quiet and built.precision_warning:  # a warning: shown under --quiet too
            warn(built.precision_warning)
        built.notes["requested_hash"] = requested_hash
        check_loggers(list(config.output.loggers))  # a missing package is refused before any folder exists
        _check_callbacks(built, target, quiet, user)  # so are bad callbacks
        protect = [value for key in PATH_KEYS if isinstance(value := config.data.model_dump().get(key), str)]
        records = creation_records(built)  # an earlier attempt that left exactly these is reused (RunDir.create)
        try:
            run = (RunDir.create_at_free_name(target) if free_name else
                   RunDir.create(target, overwrite=overwrite, protect=protect, records=records))
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
            return run_training(built, run, quiet, saver, signals), run.final_path
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


MOVED = {"resume": "trainlab.run_resume", "evaluate_run": "trainlab.run_evaluation"}  # before 2026-12-06


def __getattr__(name: str) -> Any:
    """``trainlab.experiment.resume`` / ``evaluate_run``, as the README named them before they moved to their own
    modules: the moved function, with a DeprecationWarning naming where it lives now (imported on use: the
    modules import this one)."""
    if name not in MOVED:
        raise AttributeError(f"module 'trainlab.experiment' has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"trainlab.experiment.{name} moved to {MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(MOVED[name]), name)
