"""One Optuna trial = one ordinary trainlab run folder, ``DIR/trials/<number>/``.

The trial's config is the base config with the sampled values set (``--set``
semantics). A :class:`PruningCallback` feeds the validation metric of every
epoch to ``trial.report(value, step=epoch)`` and, when the pruner says so,
asks the loop to stop; the run then finishes normally (its folder is complete
and loadable) and the trial is reported PRUNED at that epoch.

Outcomes: the objective returns the run's final validation metric (the model
``best.yaml`` reproduces, after any ``restore_best``; :func:`final_value`); raises
``optuna.TrialPruned`` for a pruned run; raises :class:`TrialFailed` for a run
that diverged (:class:`TrainingError`) or was refused (any other
:class:`TrainlabError` but a :class:`WriteError`: a full or read-only disk is the
study's to stop at, not this trial's failure), with the reason stored as the trial's ``fail_reason``.
The pruner's decision is stored with the trial (``pruned_at_epoch``) when it is
made, so the outcome of a finished run can be read back from its records and the
trial when its worker dies before reporting it (:mod:`trainlab.tune.recovery`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from trainlab.callbacks import Callback
from trainlab.config import Config, validate
from trainlab.errors import ConfigError, Interrupted, TrainingError, TrainlabError, WriteError
from trainlab.records import is_finite_number
from trainlab.tune.run_dirs import run_dir_attrs
from trainlab.tune.space import SearchSpace, apply_values

# user attributes a trial carries (trials.csv columns, stale-trial detection; its run folder: trainlab.tune.run_dirs)
ATTR_PID = "pid"
ATTR_PID_START = "pid_start"  # the worker's start time (run_lock.process_start): a reused pid is no live worker
ATTR_PID_SPACE = "pid_space"  # the boot and PID namespace the pid is of (claims.pid_space): where it can be looked up
ATTR_HOST = "host"
ATTR_PRUNED_AT = "pruned_at_epoch"
ATTR_FAIL_KIND = "fail_kind"  # diverged | error | stale | interrupted (a signal, a full or read-only disk)
ATTR_FAIL_REASON = "fail_reason"


class MetricNotFound(ConfigError):
    """The tuned metric is not in the epoch records: the same for every trial, so it ends the study."""


class TrialFailed(Exception):
    """A trial's run diverged or errored; ``kind`` is diverged or error."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


class PruningCallback(Callback):
    """Reports ``record[metric]`` of each epoch record at step ``int(record["epoch"])`` and stops the loop when
    the pruner says so; the run then ends normally, and :meth:`check_pruned` after ``train`` raises
    ``optuna.TrialPruned`` for it (in your own objective as in trainlab's).

    Mid-epoch validations (``eval_every_n_steps``) are not reported: trials are compared at the epochs every
    trial passes whatever its batch size, and an Optuna step takes one value (a second report at an epoch's
    step was dropped with a warning). A partial last epoch's record counts its epoch (``epoch`` k+1); one that
    ends at a mid-epoch validation's step reuses that validation without a second ``on_validation_end``, and
    is reported at its ``on_epoch_end`` (the run ends there: no pruning decision). Nor is the pruner asked at
    the validation after the run's last step, or after early stopping ended it (:func:`_ending`)."""

    name = "tune_pruning"
    order = 90  # after early stopping and the recorders: the epoch is complete when it reports

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None

    def check_pruned(self) -> None:
        """Raise ``optuna.TrialPruned`` when the pruner stopped the run; call it right after ``train`` returns.

        A pruned run ends normally (its folder is complete), so an objective that returned its value would
        have Optuna record the trial COMPLETE; this is what Optuna's own integrations ask for
        (``PyTorchLightningPruningCallback.check_pruned``)."""
        if self.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {self.pruned_at}")

    def on_train_start(self, view: Any) -> None:
        self.pruned_at = None
        self._reported: int | None = None  # the last epoch reported

    def on_validation_end(self, view: Any, record: dict[str, Any]) -> None:
        if record.get("scope") == "step":
            return
        epoch = self._report(record)
        if self.pruned_at is None and not _ending(view) and _should_prune(self.trial):
            self.pruned_at = epoch
            # stored now, not once the run ends: a worker killed before reporting the trial leaves the
            # decision with it, and a rerun reads the run's outcome back as PRUNED (trainlab.tune.recovery)
            self.trial.set_user_attr(ATTR_PRUNED_AT, epoch)
            view.control.stop(f"pruned by the tuner at epoch {epoch}")

    def on_epoch_end(self, view: Any, record: dict[str, Any]) -> None:
        if int(record["epoch"]) != self._reported:  # its record reused a mid-epoch validation
            self._report(record)

    def _report(self, record: dict[str, Any]) -> int:
        if self.metric not in record:
            available = sorted(k for k in record if k.startswith("val_") or k == "train_loss")
            raise MetricNotFound(f"--metric '{self.metric}' is not in the epoch records "
                                 f"(available: {', '.join(available)})")
        epoch = self._reported = int(record["epoch"])
        self.trial.report(float(record[self.metric]), step=epoch)
        return epoch


def _ending(view: Any) -> bool:
    """Whether the run ends after this validation anyway: its last step is done, or a callback before this one
    (early stopping) stopped it. No pruning decision there: pruning saves no training, and would record a
    finished run as PRUNED, its value left out of the complete trials (Optuna's own integrations ask the pruner
    at the last epoch too; HyperbandPruner then pruned trials that had run every epoch)."""
    return bool(view.control.should_stop) or view.state.step >= view.total_steps


def _should_prune(trial: optuna.Trial) -> bool:
    """``trial.should_prune()``, without the warning Optuna's WilcoxonPruner gives at each epoch of a trial
    that has run more epochs than the best trial ("finds steps existing in the current trial but does not
    exist in the best trial"): trials whose epoch counts differ (a searched ``strategy.epochs``, early
    stopping) are compared at the epochs both ran, as intended, so it says nothing to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="WilcoxonPruner finds steps existing", category=UserWarning)
        return trial.should_prune()


def trial_config(base_raw: dict[str, Any], values: dict[str, Any], name: str) -> Config:
    """The base config with ``values`` set and ``name`` as the run name, validated."""
    raw = apply_values(base_raw, values)
    raw["name"] = name
    return validate(raw)


def final_value(summary: dict[str, Any], metric: str) -> float:
    """The value a trial reports: its run's final validation metric, ``val_accuracy`` ->
    ``summary["val"]["accuracy"]`` (``val_loss`` -> ``summary["val"]["loss"]``), of the model the run
    ends with (after any ``restore_best``), whatever the metric's direction."""
    name = metric.removeprefix("val_")
    if name not in summary["val"]:
        raise MetricNotFound(f"--metric '{metric}' is not among the validation metrics "
                             f"(available: {', '.join('val_' + k for k in summary['val'])})")
    value = summary["val"][name]
    if not is_finite_number(value):
        # a finished run whose metric is undefined (null: r2 of one validation row, a NaN loss): a failed trial
        # with that reason, as Optuna fails a NaN objective, not float(None)'s TypeError
        raise TrialFailed("error", f"--metric {metric} is {value if value is not None else 'null'} in the run's "
                                   "summary: undefined for this trial's final model (a validation split too "
                                   "small or of one class for it, or outputs that are not finite)")
    return float(value)


class Objective:
    """``objective(trial) -> float``: sample, train into ``trials_dir/<number>``, return the metric. The trial
    records its run folder as ``trials/<number>``, relative to the study folder (``trials_dir``'s parent)."""

    def __init__(self, base_raw: dict[str, Any], space: SearchSpace, metric: str, trials_dir: Path):
        self.base_raw = base_raw
        self.space = space
        self.metric = metric
        self.trials_dir = trials_dir

    def __call__(self, trial: optuna.Trial) -> float:
        from trainlab.experiment import train  # torch and the engine load in the worker, not at import
        from trainlab.run_summary import outcome_told_by_caller

        values = self.space.sample(trial)
        base_name = str(self.base_raw.get("name", "run"))
        out = self.trials_dir / str(trial.number)
        # relative to the study folder: a study folder moved or copied reads its own runs (trainlab.tune.run_dirs)
        for key, value in run_dir_attrs(trial.number, self.trials_dir).items():
            trial.set_user_attr(key, value)
        pruning = PruningCallback(trial, self.metric)
        try:
            config = trial_config(self.base_raw, values, f"{base_name}-trial{trial.number}")
            # its null metric fails the trial, naming it (final_value); its outcome is the study's to rank
            with outcome_told_by_caller():
                summary, _ = train(config, out=out, quiet=True, callbacks=[pruning])
        except (MetricNotFound, Interrupted, WriteError):  # the study's to handle: not this trial's own failure
            raise
        except TrainingError as exc:
            raise TrialFailed("diverged", str(exc)) from None
        except TrainlabError as exc:
            raise TrialFailed("error", f"{type(exc).__name__}: {exc}") from None
        pruning.check_pruned()  # its pruned_at_epoch is stored already
        return final_value(summary, self.metric)
