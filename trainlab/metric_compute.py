"""Computing named metrics on one split: the inputs checked, then each metric of :mod:`trainlab.metrics` read.

``compute`` takes tensors, NumPy arrays or lists of numbers; inputs no metric reads right (different row
counts, multi-label targets not (N, L) of 0/1, class indices outside [0, K), a task the metric lacks) are
one ConfigError or DataError before any metric runs. Without ``task`` the task is read from
``num_classes`` and the target's shape (the original three-argument call).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, DataError, passes_user_code
from trainlab.exception_origin import failure_text
from trainlab.metrics import SINGLE_LABEL, TASKS, Metric, MetricInputs, get_metric, refuse_task_mismatch
from trainlab.registry import did_you_mean

# what a user's metric must be (docs/extending.md), said when one fails
USER_METRIC_CONTRACT = ("a metric 'module:function' is called as function(predictions, target, num_classes) "
                        "and returns one float (higher is better)")


def _task_from_call(target: torch.Tensor, num_classes: int | None) -> str:
    """The task of a call without ``task`` (the old signature): no classes -> regression,
    2-D targets with classes -> multilabel, 2 classes -> binary, else multiclass."""
    if num_classes is None:
        return "regression"
    if target.ndim == 2 and target.shape[1] > 1:
        return "multilabel"
    return "binary" if num_classes == 2 else "multiclass"


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` (a tensor, a NumPy array, nested lists of numbers) as a CPU tensor, detached; else one DataError."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        array = np.asarray(None)
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)) or array.ndim == 0:
        raise DataError(f"{what} must be a tensor or array of numbers, one row per sample; got "
                        f"{type(value).__name__} ({short_repr(value)})")
    return torch.as_tensor(array)


def _checked_task(task: Any, target: torch.Tensor, num_classes: int | None) -> str:
    """``task`` as given (one of :data:`TASKS`), or read from the call (:func:`_task_from_call`) for None."""
    if task is None:
        return _task_from_call(target, num_classes)
    if task not in TASKS:
        hint = did_you_mean(task, list(TASKS)) if isinstance(task, str) else ""
        classes = " (class labels: 'binary' or 'multiclass')" if not hint and task == "classification" else ""
        raise ConfigError(f"task must be one of {', '.join(TASKS)}; got {short_repr(task)}{hint or classes}")
    return task


def _first_bad(values: torch.Tensor, bad: torch.Tensor) -> str:
    return f"{float(values.double()[bad][0]):g}"  # (float64: exact for every int32 label and float32 value)


def _check_rows(predictions: torch.Tensor, target: torch.Tensor, task: str, num_classes: int | None,
                probabilities: torch.Tensor | None) -> None:
    """One DataError for inputs no metric reads right: different row counts, regression values of another
    size, multi-label targets that are not (N, L) of 0/1 shaped as the predictions, or single-label classes
    that are not whole numbers in [0, K)."""
    if len(predictions) != len(target) or (probabilities is not None and len(probabilities) != len(target)):
        also = "" if probabilities is None else f" and {len(probabilities)} rows of probabilities"
        raise DataError(f"{len(predictions)} predictions{also} but {len(target)} targets; give one of each per sample")
    if task == "regression" and predictions.numel() != target.numel():
        raise DataError(f"regression predictions shaped {tuple(predictions.shape)} do not match targets shaped "
                        f"{tuple(target.shape)}")
    if task == "multilabel":
        if target.ndim != 2 or predictions.shape != target.shape:
            raise DataError(f"a multilabel task takes (N, L) 0/1 targets and predictions, one column per label; got "
                            f"targets {tuple(target.shape)} and predictions {tuple(predictions.shape)} (one class "
                            "per row is task='binary' or 'multiclass')")
        if bool((bad := (target.double() != 0) & (target.double() != 1)).any()):
            raise DataError(f"a multilabel task's targets are 0/1 per label; got {_first_bad(target, bad)}")
    if task in SINGLE_LABEL:
        classes = f"0..{num_classes - 1}" if num_classes else "0, 1, ..."
        for what, values in (("targets", target.double()), ("predictions", predictions.double())):
            bad = (values != values.round()) | (values < 0) | (values >= (num_classes or float("inf")))
            if bool(bad.any()):
                raise DataError(f"{task} {what} are class indices {classes}; got {_first_bad(values, bad)} (pass "
                                "loss.predict(output) as predictions, and probabilities= for the scores)")


def compute(names: list[str], predictions: Any, target: Any, num_classes: int | None,
            task: str | None = None, probabilities: Any = None) -> dict[str, Any]:
    """Every metric in ``names`` on one split.

    Args:
        names: metric names (see the module docstring).
        predictions: ``loss.predict(output)``: a tensor, or a NumPy array (read as a tensor).
        target: the split's targets, likewise.
        num_classes: K (2 for binary, L for multi-label), None for regression.
        task: "regression", "binary", "multiclass" or "multilabel"; when None it is read from
            ``num_classes`` and the target's shape (the original three-argument call).
        probabilities: ``loss.probabilities(output)``; required by roc_auc, average_precision,
            log_loss and top_<k>_accuracy.

    Raises:
        ConfigError: an unknown task or metric, or a metric the task does not have (mse on a multiclass task).
        DataError: inputs that are not numbers, different row counts, multi-label targets not (N, L) of 0/1,
            class indices outside [0, num_classes), a score-based metric without probabilities.
    """
    if not names:
        return {}
    predictions, target = _as_tensor(predictions, "predictions"), _as_tensor(target, "target")
    if probabilities is not None:
        probabilities = _as_tensor(probabilities, "probabilities")
    task = _checked_task(task, target, num_classes)
    metrics = {name: get_metric(name) for name in names}  # an unknown name: ConfigError with did-you-mean
    for name, metric in metrics.items():
        refuse_task_mismatch(name, metric, task)
    _check_rows(predictions, target, task, num_classes, probabilities)
    if task == "regression":  # (N,) against (N, 1) would broadcast to (N, N) in mse
        predictions = predictions.reshape(target.shape)
    return metric_values(names, MetricInputs(predictions, target, task, num_classes, probabilities))


def metric_values(names: list[str], inputs: MetricInputs) -> dict[str, Any]:
    """Each metric in ``names`` read from ``inputs`` as they are: no input checks (:func:`compute` makes them; a
    run's evaluator, whose metrics the config validated and whose inputs its loss made, calls this per split).

    Raises:
        DataError: a score-based metric without probabilities.
        ConfigError: a user's ``module:function`` metric that raises (:func:`_user_metric_value`) or returns
            anything but a number.
    """
    result = {}
    for name in names:
        metric = get_metric(name)
        if metric.needs_probabilities and inputs.probabilities is None:
            raise DataError(f"metric '{name}' needs the model's class probabilities; pass "
                            "probabilities=loss.probabilities(output) (the loss must give them)")
        result[name] = _user_metric_value(name, metric, inputs) if ":" in name else metric.fn(inputs)
    return result


def _user_metric_value(name: str, metric: Metric, inputs: MetricInputs) -> Any:
    """``metric.fn(inputs)`` of the user's metric ``name``; an exception it raises (its code is broken, not
    the data) is one ConfigError naming the metric, the exception and where the user's code raised it
    (:func:`trainlab.exception_origin.raised_at`). trainlab's own errors, and the machine's (OSError, MemoryError),
    pass as raised."""
    try:
        return metric.fn(inputs)
    except Exception as exc:
        if passes_user_code(exc):  # trainlab's own, the machine's (a full disk, memory running out)
            raise
        raise ConfigError(f"metric '{name}' raised {failure_text(exc)}; "
                          f"{USER_METRIC_CONTRACT}") from exc
