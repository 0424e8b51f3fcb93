"""The Optuna study behind ``trainlab tune``: storage, pruner, one worker's trials, resume (``--jobs``:
:mod:`trainlab.tune.workers`).

Storage: by default Optuna's file journal ``DIR/study.journal`` (``JournalStorage``
over ``JournalFileBackend``), which several processes on one machine (``--jobs``,
or several ``trainlab tune`` on the same ``--out``) append to safely. Any Optuna
RDB URL works unchanged; ``postgresql://`` is read as ``postgresql+psycopg://``
(psycopg 3, the ``trainlab[postgres]`` extra) and is the way to tune from several
machines, with heartbeats: a killed worker's trial is failed and retried.

``--trials N`` is the study's total; which trial a worker runs next, under the
claim lock (a file lock in DIR; a PostgreSQL advisory lock for ``postgresql``
storages), is :mod:`trainlab.tune.claims`. A study records what it was made with
(the space, the base config, the metric) and refuses another; one ``--out`` holds
one study's run folders (:mod:`trainlab.tune.identity`).

Reproducibility: trial ``k`` is sampled by a TPE sampler seeded with ``(seed, k)``,
so the same seed and one worker give the same trials, also across a restart.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from trainlab import arguments
from trainlab.compare.metric_keys import stand_in
from trainlab.config import read_yaml, validate
from trainlab.config_fields import counted
from trainlab.config_overrides import apply_overrides
from trainlab.data.counting import count_splits
from trainlab.errors import DISK_FULL_OR_READ_ONLY, ConfigError, Interrupted, WriteError, cannot
from trainlab.folder_owner import refuse_foreign, refuse_overwrite
from trainlab.metric_hints import unrecorded_hint
from trainlab.metrics import is_user_metric
from trainlab.notices import held_back
from trainlab.records import check_validation_key, validation_keys
from trainlab.tune import arguments as tune_arguments
from trainlab.tune.arguments import named
from trainlab.tune.base_point import base_values
from trainlab.tune.claims import RERUN_NOTE, abandon, claim_trial, release_claim
from trainlab.tune.identity import (
    check_made_with,
    claim_folder,
    folder_removed_on_refusal,
    made_with,
    new_study_advice,
    refuse_another_metric,
    refuse_held_folder,
)
from trainlab.tune.objective import (
    ATTR_FAIL_KIND,
    ATTR_FAIL_REASON,
    ATTR_HOST,
    ATTR_PID,
    MetricNotFound,
    Objective,
    TrialFailed,
)
from trainlab.tune.results import RESULT_FILES
from trainlab.tune.space import (
    SearchSpace,
    check_space,
    load_space,
)
from trainlab.tune.space_review import refuse_idle_keys, refuse_positive_class_choice, refuse_repeated_choices
from trainlab.tune.storage import (
    JOURNAL_NAME,
    STUDY_MARKER,
    JournalWriteError,
    claim_lock,
    is_duplicate,
    open_storage,
)
from trainlab.tune.storage_messages import (
    driver_line,
    is_connection_failure,
    storage_failed,
    storage_failures_said,
)

DEFAULT_METRIC = "val_accuracy"  # --metric's default (the CLI's too)
STUDY_RECORDS = (JOURNAL_NAME, STUDY_MARKER)  # what makes --out an earlier study's folder (with --storage, the marker)
# RESULT_FILES (trainlab.tune.results): what a study writes in --out beside its records and its trials/ and
# refit/ folders; an --out of no study that holds one is the user's, and refused (prepare)
PRUNERS = ["median", "hyperband", "wilcoxon", "none"]
# Optuna's pruner names a user of it types: its SuccessiveHalvingPruner is what hyperband runs brackets of,
# NopPruner prunes nothing
OPTUNA_PRUNERS = {"successive_halving": "hyperband", "successivehalving": "hyperband", "sha": "hyperband",
                  "nop": "none", "noppruner": "none", "medianpruner": "median", "hyperbandpruner": "hyperband",
                  "wilcoxonpruner": "wilcoxon"}
WAIT_FOR_RUNNING_S = 1.0  # poll period of a worker waiting for the last running trials


def default_direction(metric: str) -> str:
    """Errors and losses are minimised; every other validation metric (accuracy, f1, r2 ...) maximised, and a
    user metric (``val_<module>:<attr>``) whatever its name: higher is better (docs/extending.md), as early
    stopping takes it."""
    lower_is_better = ("loss", "mse", "mae", "rmse", "mape", "error")
    name = metric.removeprefix("val_")
    if is_user_metric(name):
        return "maximize"
    return "minimize" if name in lower_is_better or metric.endswith("_loss") else "maximize"


@dataclass(frozen=True)
class TuneSettings:
    """Everything one ``trainlab tune`` invocation needs (picklable: it travels to worker processes).

    The defaults are ``trainlab tune``'s, resolved on construction: ``out`` None is
    ``tunes/<base file stem>`` (a stem that cannot be a folder name, ``..`` say, is refused:
    :func:`~trainlab.tune.arguments.out_folder`); ``direction`` None is :func:`default_direction` of
    ``metric`` (minimize for losses and errors, else maximize), and ``max``/``min`` (compare's words) are
    ``maximize``/``minimize``.
    So ``settings.out`` is always a Path and ``settings.direction`` Optuna's word.

    Every argument is checked on construction (:mod:`trainlab.tune.arguments`): a wrong type or value is one
    ConfigError naming the argument (the flag, inside the CLI command) and what is valid. Paths may be
    strings; ``overrides`` one ``KEY=VALUE`` string or a list of them."""

    base: Path
    space: Path
    trials: int
    out: Path | None = None  # a Path once constructed
    metric: str = DEFAULT_METRIC
    direction: str | None = None  # maximize or minimize once constructed
    jobs: int = 1
    storage: str | None = None
    study_name: str | None = None
    pruner: str = "median"
    timeout_s: float | None = None
    seed: int = 0
    refit_seeds: int = 0
    quiet: bool = False
    overrides: tuple[str, ...] = ()  # --set KEY=VALUE on the base config, as in train and compare

    def __post_init__(self) -> None:
        resolved = {
            "base": tune_arguments.path("base", self.base),
            "space": tune_arguments.path("space", self.space),
            "trials": arguments.whole(named("trials"), self.trials, least=1),
            "out": tune_arguments.optional_path("out", self.out),
            "metric": arguments.text(named("metric"), self.metric, "'val_accuracy'"),
            "jobs": arguments.whole(named("jobs"), self.jobs, least=1, below=arguments.MAX_JOBS + 1),
            "storage": arguments.text(named("storage"), self.storage, "'postgresql://user:pw@host/db'",
                                      none_means="Optuna's journal file in out"),
            "study_name": arguments.text(named("study_name"), self.study_name, "'mnist1d'",
                                         none_means="trainlab-<base file stem>"),
            "pruner": arguments.choice(named("pruner"), self.pruner, PRUNERS, OPTUNA_PRUNERS),
            "timeout_s": arguments.seconds(named("timeout_s"), self.timeout_s, "no time limit"),
            "seed": arguments.whole(named("seed"), self.seed, least=0, below=tune_arguments.SEED_LIMIT),
            "refit_seeds": arguments.whole(named("refit_seeds"), self.refit_seeds, least=0,
                                           below=arguments.MAX_SEEDS + 1),
            "quiet": arguments.flag(named("quiet"), self.quiet),
            "overrides": arguments.overrides(named("overrides"), self.overrides),
        }
        # as the CLI's --out: tunes/<base file stem>, refused where the stem cannot be a folder name
        resolved["out"] = tune_arguments.out_folder(resolved["base"], resolved["out"], resolved["refit_seeds"])
        # as the CLI's --direction: a loss is minimised, accuracy maximised
        resolved["direction"] = tune_arguments.direction(self.direction, resolved["metric"],
                                                    default_direction(resolved["metric"]))
        for key, value in resolved.items():
            object.__setattr__(self, key, value)
        self.check()

    def base_config(self) -> dict[str, Any]:
        """The base config file's mapping with the ``overrides`` applied: what every trial starts from."""
        return apply_overrides(read_yaml(self.base), list(self.overrides))

    @property
    def name(self) -> str:
        return self.study_name or f"trainlab-{self.base.stem}"

    def check(self) -> None:
        """The values' own rules, beyond their types (which construction checked)."""
        if not (self.metric.startswith("val_") and len(self.metric) > 4):
            name = self.metric.removeprefix("test_").removeprefix("train_").removeprefix("val_")
            guess = f"; did you mean 'val_{name}'?" if name not in ("", "val", "test", "train") else ""
            raise ConfigError(f"{named('metric')} must name a validation metric such as val_accuracy "
                              f"or val_loss; got '{self.metric}'{guess}")


@contextlib.contextmanager
def optuna_verbosity(level: int = optuna.logging.WARNING) -> Iterator[None]:
    """Optuna's log level ``level`` inside, the caller's again after (a library leaves the level of the
    Python session it runs in as it found it). WARNING: trainlab says itself what each trial did, so
    Optuna's per-trial INFO lines ("Trial 3 finished with value ...") are off, and so is its RDB storage's
    "Caught an error from sqlalchemy ... Falling back" warning, a traceback's worth of SQL printed before a
    lost database's one ``error:`` line (:func:`~trainlab.tune.storage_messages.storage_failed`)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(level)
    handlers = logging.getLogger("optuna").handlers
    for handler in handlers:
        handler.addFilter(_no_sqlalchemy_fallback)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(_no_sqlalchemy_fallback)
        optuna.logging.set_verbosity(previous)


def _no_sqlalchemy_fallback(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Caught an error from sqlalchemy")


# --------------------------------------------------------------------------- storage

def open_study(settings: TuneSettings, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Load the study, or create it; workers racing to create it retry instead of crashing. An existing study is
    loaded, not created with ``load_if_exists``: that appends a creation to a journal storage even when the
    study then refuses this command (another --direction or --metric), so a refused command changed the file."""
    try:
        study = optuna.load_study(study_name=settings.name, storage=storage, pruner=build_pruner(settings.pruner))
    except KeyError:  # Optuna's "no such study": this command creates it
        _refuse_orphan_trials(settings)
        study = _create_study(settings, storage)
    refuse_another_metric(study, settings)  # the metric decides the direction unless --direction is given
    if study.direction.name.lower() != settings.direction:
        raise ConfigError(f"study '{settings.name}' exists and is to {study.direction.name.lower()}; "
                          f"--direction {settings.direction} needs a new study: {new_study_advice(settings)}")
    return study


def _refuse_orphan_trials(settings: TuneSettings) -> None:
    """Refuse to create the study where ``out`` already holds trial run folders (``trials/<n>``): a study its
    storage no longer has (a journal emptied or lost, another --storage or --study-name). A new study numbers
    its trials from 0 again, and each one whose folder is taken failed ("output folder ... already exists"),
    10 of 12 trials in a user trial, over the old study's results."""
    folder = settings.out / "trials"
    taken = sorted((p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=int) \
        if folder.is_dir() else []
    if taken:
        raise ConfigError(f"{settings.out} holds the run folders of {counted(len(taken), 'trial')} ({folder}/{taken[0]}"
                          f"{'...' if len(taken) > 1 else ''}) of a "
                          f"study its storage does not have (study '{settings.name}'; an emptied or lost journal, "
                          "another --storage or --study-name?): restore that storage, or tune into another --out")


def _create_study(settings: TuneSettings, storage: optuna.storages.BaseStorage) -> optuna.Study:
    attempt = 0
    while True:
        try:
            return optuna.create_study(storage=storage, study_name=settings.name, direction=settings.direction,
                                       pruner=build_pruner(settings.pruner), load_if_exists=True)
        except Exception as exc:  # IntegrityError / DuplicatedStudyError: another worker created it first
            attempt += 1
            if attempt == 10 or not is_duplicate(exc):
                raise
            time.sleep(0.1 * attempt)


# --------------------------------------------------------------------------- pruner

def build_pruner(name: str) -> optuna.pruners.BasePruner:
    """median: stop a trial whose metric is worse than the median of earlier trials at the same epoch
    (after 5 trials); hyperband: successive halving over epochs; wilcoxon: a signed-rank test
    against the best trial; none: never prune."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    if name == "wilcoxon":
        with warnings.catch_warnings():  # chosen on purpose: Optuna's "experimental" warning says nothing to users
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    return optuna.pruners.NopPruner()


# --------------------------------------------------------------------------- one worker

@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """RDB storages: record the trial's heartbeat every ``HEARTBEAT_INTERVAL_S`` while it runs."""
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; the grace period absorbs it
                storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def continue_advice(settings: TuneSettings) -> str:
    return f"rerun the same trainlab tune command to continue the study to {settings.trials} trials"


def _fail(study: optuna.Study, trial: optuna.Trial, kind: str, reason: str) -> None:
    trial.set_user_attr(ATTR_FAIL_KIND, kind)
    trial.set_user_attr(ATTR_FAIL_REASON, reason[:500])
    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


# a trial's OSError that every later trial would meet too: the disk full, over quota or read-only, or the
# study's folder not writable for permission's sake (exit 5 elsewhere too: errors.WRITE_ERRNOS)
STUDY_STOPPING_ERRNOS = DISK_FULL_OR_READ_ONLY | {errno.EACCES, errno.EPERM}


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says a file could not be written for the disk's or the folder's sake, not the trial's:
    a :class:`WriteError`, or an ``OSError`` whose errno is in :data:`STUDY_STOPPING_ERRNOS` (full, over
    quota, read-only, too large for the file system, permission denied). Such a failure would fail every
    later trial the same way, so it stops the study (exit 5) instead of counting as the trial's own."""
    return isinstance(exc, WriteError) or (isinstance(exc, OSError) and exc.errno in STUDY_STOPPING_ERRNOS)


def write_failure_text(exc: BaseException) -> str:
    """What a write failure (:func:`is_write_failure`) could not write, without advice: the study says its
    own. An ``OSError``: ``cannot write (/out/trials/3/checkpoints/last.safetensors): No space left on
    device`` (:func:`trainlab.errors.cannot`). A :class:`WriteError`'s line says that already and may add
    the run's advice after the first ``"; "`` (``...; training had not started: rerun the same command
    ...``), which is cut: a trial is not rerun by its own command."""
    if isinstance(exc, OSError):
        return cannot(exc)
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line.split("; ", 1)[0][:300]


def _log(settings: TuneSettings, message: str) -> None:
    if not settings.quiet:
        print(message, file=sys.stderr, flush=True)


def run_trials(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any], deadline: float | None,
               stopped: Callable[[], bool] | None = None) -> None:
    """One worker: claim, run and record trials until the total is reached, the deadline passes, or
    ``stopped()`` (the tune process was interrupted) says so before the next claim."""
    with optuna_verbosity(), storage_failures_said(settings.storage):  # a --jobs worker's, too
        _run_trials(settings, space, base_raw, deadline, stopped)


def _run_trials(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any], deadline: float | None,
                stopped: Callable[[], bool] | None) -> None:
    storage = open_storage(settings)
    study = open_study(settings, storage)
    lock = claim_lock(settings)
    objective = Objective(base_raw, space, settings.metric, settings.out / "trials")
    base = base_values(space, base_raw)
    waited_for: list[int] = []
    settled = False  # the last claim found nothing to claim and no trial running
    while deadline is None or time.time() < deadline:
        if stopped is not None and stopped():
            return
        trial = claim_trial(study, settings, lock, base)
        if trial is None:
            # the total is claimed, or the running trials could bring the failures to --trials; a running
            # trial may still fail and free a slot, or complete and free a claim, so a worker leaves only when
            # none runs (and every worker then writes complete results)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                if settled:
                    return
                settled = True  # one may have ended between the claim and this look: claim once more
                continue
            settled = False
            if [t.number for t in running] != waited_for:
                waited_for = [t.number for t in running]
                _log(settings, "no trial to claim for now; waiting for " + ", ".join(
                    f"trial {t.number} (pid {t.user_attrs.get(ATTR_PID)} on {t.user_attrs.get(ATTR_HOST)})"
                    for t in running))
            time.sleep(WAIT_FOR_RUNNING_S)
            continue
        settled = False
        try:
            _run_trial(settings, study, objective, trial)
        except BaseException as exc:  # its outcome left unrecorded (a Ctrl-C in the tell that records it)
            abandon(study, trial._trial_id, exc, "recorded its outcome")
            raise
        finally:  # done with it: from now on, a RUNNING trial naming this process is a dead worker's
            release_claim(trial)


def _run_trial(settings: TuneSettings, study: optuna.Study, objective: Objective, trial: optuna.Trial) -> None:
    """Run one claimed trial and record its outcome: COMPLETE with its value, PRUNED, or FAIL with its
    kind and reason. A trial failure is logged and the study goes on; a metric the runs lack (the study
    cannot go on) and an interrupt are recorded, then raised. A file the trial cannot write (a full or
    read-only disk, permission denied: :func:`is_write_failure`) is no failure of the trial, and every
    further trial would meet it too: the trial is recorded as FAIL (interrupted), which does not count against ``--trials``,
    and a :class:`WriteError` (exit 5) stops the study, to be continued by the same command. So does the
    --storage database's connection lost or refused (:func:`~trainlab.tune.storage_messages.storage_failed`, exit 5):
    the trial is recorded as FAIL (interrupted) where the database takes it still, else by the rerun."""
    try:
        with heartbeat(study, trial):
            value = objective(trial)
    except optuna.TrialPruned as exc:
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        _log(settings, f"trial {trial.number}: {exc}")
    except TrialFailed as exc:
        _fail(study, trial, exc.kind, str(exc))
        _log(settings, f"trial {trial.number}: failed ({exc.kind}): {exc}")
    except MetricNotFound as exc:
        _fail(study, trial, "config", str(exc))
        raise
    except Interrupted as exc:
        signal_name = f"{signal.Signals(exc.exit_code - 128).name} received"  # not the run's "trainlab resume" advice
        _fail(study, trial, "interrupted", f"{signal_name}: {RERUN_NOTE}")
        raise Interrupted(f"{signal_name} during trial {trial.number}, which is recorded as "
                          f"failed; {continue_advice(settings)}", exc.exit_code - 128) from None
    except KeyboardInterrupt as exc:  # before the run's own handler was up (its data loading, say)
        signum = getattr(exc, "signum", signal.SIGINT)  # a SignalInterrupt names its own
        signal_name = f"{signal.Signals(signum).name} received"
        _fail(study, trial, "interrupted", f"{signal_name}: {RERUN_NOTE}")
        # said as a signal inside the run is (a bare "error: interrupted" told neither of the trial nor the rerun)
        raise Interrupted(f"{signal_name} during trial {trial.number} (outside its run), which is recorded as failed; "
                          f"{continue_advice(settings)}", signum) from None
    except Exception as exc:  # a bug or a torch failure (e.g. out of memory): this trial fails, not the study
        if settings.storage is not None and is_connection_failure(exc):  # the database's fault, not the trial's
            with contextlib.suppress(Exception):  # recorded if the database is back already; else a rerun does
                _fail(study, trial, "interrupted", f"lost the --storage database ({driver_line(exc)}): {RERUN_NOTE}")
            raise storage_failed(settings.storage, exc, f" during trial {trial.number}") from exc
        if is_write_failure(exc):  # the disk's fault: every further trial would fail the same way
            cause = write_failure_text(exc)  # "cannot write (FILE): No space left on device"
            _fail(study, trial, "interrupted", f"{cause}: {RERUN_NOTE}")
            if isinstance(exc, JournalWriteError):  # its line names the journal and says how to go on
                raise
            raise WriteError(f"trial {trial.number} stopped: {cause}; it is recorded as failed "
                             f"(interrupted) and does not count: once the disk is writable, "
                             f"{continue_advice(settings)}") from None
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        _fail(study, trial, "error", f"{type(exc).__name__}: {first}")
        _log(settings, f"trial {trial.number}: failed: {type(exc).__name__}: {first}")
    else:
        # skip_if_finished: another worker may have recorded it already, from its run folder, while this
        # one was cut off from the shared storage (an NFS lock lease lost, stale RDB heartbeats)
        study.tell(trial, value, skip_if_finished=True)
        _log(settings, f"trial {trial.number}: {settings.metric}={value:.6g}")


def check_metric(settings: TuneSettings, base_raw: dict[str, Any]) -> None:
    """A --metric that the base config's epoch records lack is refused now, by the rule ``train --target``
    applies (:func:`trainlab.records.check_validation_key`; ``compare`` applies it per run): ``val_loss``
    and ``val_`` + each metric of ``metrics`` that is one number (not ``confusion_matrix``).

    The default (``val_accuracy``, given by no one) missing is worded as compare words its own: the line
    says it is only --metric's default and names the recorded key to pass instead (:func:`stand_in`)."""
    config = validate(copy.deepcopy(base_raw))
    try:
        check_validation_key(config, settings.metric, "--metric", str(settings.base))
    except ConfigError:
        if settings.metric != DEFAULT_METRIC:
            raise
        with held_back():  # read ahead of the run's loading, which says the data's warnings itself
            if count_splits(config.data).val == 0:  # no validation split: that refusal says what to do
                raise
            keys = validation_keys(config)
        if settings.metric in keys:
            raise
        guess = unrecorded_hint(settings.metric, keys, config.strategy.loss.name)
        instead = stand_in(DEFAULT_METRIC, keys)  # val_r2 for a regression's default val_accuracy
        if instead and "did you mean" not in guess:
            guess += f"; did you mean '{instead}'?"
        raise ConfigError(f"--metric '{settings.metric}' is not recorded by {settings.base}{guess} (its validation "
                          f"metrics: {', '.join(keys)}); {DEFAULT_METRIC} is --metric's default: pass --metric "
                          "with one of these") from None


def prepare(settings: TuneSettings) -> tuple[SearchSpace, dict[str, Any]]:
    """Everything that can be refused before a trial: settings, base config, space (the config's checks,
    then keys that change no score and choices that repeat each other: :mod:`trainlab.tune.space_review`),
    storage, an --out holding another command's results or, of no study, files named as its results (the
    user's own, which the study would replace), another study, a study made with another metric, space or base
    config."""
    refuse_foreign(settings.out, "tune", own=STUDY_RECORDS)
    refuse_overwrite(settings.out, "tune", own=STUDY_RECORDS, writes=RESULT_FILES, argument=named("out"))
    base_raw = settings.base_config()
    check_metric(settings, base_raw)
    space = load_space(settings.space)
    refuse_idle_keys(space)
    refuse_positive_class_choice(space, settings.metric)
    check_space(space, base_raw)
    refuse_repeated_choices(space, base_raw)
    # not Optuna's "A new study created ..." line; a refusal leaves no --out behind that it created
    with optuna_verbosity(), folder_removed_on_refusal(settings.out):
        storage = open_storage(settings)
        refuse_held_folder(settings, storage)  # before the study is created in the storage
        study = open_study(settings, storage)
        with claim_lock(settings).held():
            check_made_with(study, settings, space, made_with(settings, space, base_raw))
        claim_folder(settings, storage)  # the folder's study record, once the study is accepted
    return space, base_raw


def study_for(settings: TuneSettings) -> optuna.Study:
    return optuna.load_study(study_name=settings.name, storage=open_storage(settings))
