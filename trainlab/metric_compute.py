"""Computing named metrics on one split: the inputs checked, then each metric of :mod:`trainlab.metrics` read.

``compute`` takes tensors, NumPy arrays or lists of numbers; inputs no metric reads right (different row
counts, multi-label targets not (N, L) of 0/1 or of another L than ``num_classes``, class indices outside
[0, K), probabilities not (N, K) / (N, L), outside [0, 1] or in softmax rows that do not sum to 1, a task the
metric lacks) are one ConfigError or DataError before any metric runs. A ``top_<k>_accuracy`` with k >= K is
computed (it is 1) with a ``warning:``, as a run gives it. Without ``task`` the task is read from
``num_classes`` and the target's shape (the original three-argument call).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, DataError, passes_user_code
from trainlab.exception_origin import failure_text
from trainlab.metrics import (
    SINGLE_LABEL,
    TASKS,
    Metric,
    MetricInputs,
    get_metric,
    refuse_task_mismatch,
    top_k_warning,
)
from trainlab.notices import warn
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
    size, multi-label targets or predictions that are not (N, L) of 0/1 shaped alike, or single-label classes
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
        for what, values in (("targets", target.double()), ("predictions", predictions.double())):
            if bool((bad := (values != 0) & (values != 1)).any()):
                raise DataError(f"a multilabel task's {what} are 0/1 per label; got {_first_bad(values, bad)} (pass "
                                "loss.predict(output) as predictions, and probabilities= for the scores)")
    if task in SINGLE_LABEL:
        classes = f"0..{num_classes - 1}" if num_classes else "0, 1, ..."
        for what, values in (("targets", target.double()), ("predictions", predictions.double())):
            bad = (values != values.round()) | (values < 0) | (values >= (num_classes or float("inf")))
            if bool(bad.any()):
                raise DataError(f"{task} {what} are class indices {classes}; got {_first_bad(values, bad)} (pass "
                                "loss.predict(output) as predictions, and probabilities= for the scores)")


def _check_label_count(target: torch.Tensor, task: str, num_classes: int | None) -> None:
    """One DataError for a multi-label ``num_classes`` that is not the targets' L columns (5 for 3 labels would
    give 2 empty labels to the per-label metrics of a caller who counts them)."""
    if task == "multilabel" and num_classes is not None and int(num_classes) != target.shape[1]:
        raise DataError(f"num_classes={num_classes} but the multilabel targets have {target.shape[1]} label columns; "
                        f"num_classes of a multilabel task is L, one per column: pass {target.shape[1]}")


def sum_tolerance(dtype: torch.dtype) -> float:
    """How far a row of class probabilities may sum from 1: sqrt(eps) of their dtype (scikit-learn's
    ``log_loss`` rule; float32 3.5e-4, float16 0.031), at least 1e-4 (a float32 softmax cast to float64)."""
    return max(float(torch.finfo(dtype).eps) ** 0.5, 1e-4)


def _probability_width(probabilities: torch.Tensor, target: torch.Tensor, task: str,
                       num_classes: int | None) -> str | None:
    """What the probabilities' shape must be when it is not: (N,), (N, 1) or (N, 2) for binary; (N, K) for
    multi-class, K = ``num_classes`` (None: more columns than the largest target); (N, L) for multi-label,
    L the targets' columns. None when it fits."""
    shape = tuple(probabilities.shape)
    if task == "binary":
        return None if len(shape) == 1 or (len(shape) == 2 and shape[1] in (1, 2)) else \
            "(N,) P(class 1), or (N, 2) softmax rows"
    if task == "multilabel":
        width = target.shape[1]
        return None if shape[1:] == (width,) or (width == 1 and len(shape) == 1) else \
            f"(N, {width}), one sigmoid per label column of the targets"
    if num_classes is not None:
        return None if shape[1:] == (int(num_classes),) else f"(N, {num_classes}), one softmax column per class"
    needed = int(target.max()) + 1 if target.numel() else 1
    return None if len(shape) == 2 and shape[1] >= needed else \
        f"(N, K), one softmax column per class, K > {needed - 1} (the largest target)"


def _check_probabilities(probabilities: torch.Tensor, target: torch.Tensor, task: str,
                         num_classes: int | None) -> None:
    """One DataError for probabilities no score-based metric reads right: a shape other than
    :func:`_probability_width`'s, a finite value outside [0, 1] (logits or scores passed as probabilities), or a
    softmax row (multi-class; binary (N, 2)) whose sum is off 1 by more than :func:`sum_tolerance` (scikit-learn's
    ``log_loss`` only warns and scores such rows, ``roc_auc_score`` refuses them). Non-finite values are left to the
    metrics, which are NaN for them (a diverged model's record)."""
    wanted = _probability_width(probabilities, target, task, num_classes)
    if wanted is not None:
        of = f" of {target.shape[1]} labels" if task == "multilabel" else \
            f" of {num_classes} classes" if num_classes is not None else ""
        raise DataError(f"{task} probabilities shaped {tuple(probabilities.shape)} do not fit {len(target)} targets{of}; "
                        f"pass {wanted} (loss.probabilities(output))")
    values = probabilities.double()
    finite = torch.isfinite(values)
    if bool((outside := finite & ((values < 0) | (values > 1))).any()):
        raise DataError(f"probabilities are in [0, 1]; got {_first_bad(values, outside)} (pass "
                        "loss.probabilities(output), not the model's outputs or logits)")
    if values.ndim != 2 or task == "multilabel" or values.shape[1] == 1:
        return
    sums, rows = values.sum(1), finite.all(1)
    off = rows & ((sums - 1).abs() > sum_tolerance(probabilities.dtype))
    if bool(off.any()):
        row = int(off.nonzero()[0, 0])
        raise DataError(f"{task} probabilities are softmax rows, each summing to 1; row {row} sums to "
                        f"{float(sums[row]):g} (pass loss.probabilities(output); a row of scores would rank "
                        "classes but give a wrong log_loss)")


def compute(names: list[str], predictions: Any, target: Any, num_classes: int | None,
            task: str | None = None, probabilities: Any = None) -> dict[str, Any]:
    """Every metric in ``names`` on one split.

    Args:
        names: metric names (see the module docstring).
        predictions: ``loss.predict(output)``: a tensor, or a NumPy array (read as a tensor).
        target: the split's targets, likewise.
        num_classes: K (2 for binary, also when None), L for multi-label, None for regression.
        task: "regression", "binary", "multiclass" or "multilabel"; when None it is read from
            ``num_classes`` and the target's shape (the original three-argument call).
        probabilities: ``loss.probabilities(output)``; required by roc_auc, average_precision,
            log_loss and top_<k>_accuracy.

    Raises:
        ConfigError: an unknown task or metric, or a metric the task does not have (mse on a multiclass task).
        DataError: inputs that are not numbers, different row counts, multi-label targets or predictions not
            (N, L) of 0/1, or of L != num_classes, class indices outside [0, num_classes), probabilities of
            another shape than (N,)/(N, 2) (binary), (N, K) (multiclass) or (N, L) (multilabel), outside [0, 1],
            or in softmax rows whose sum is off 1 by more than :func:`sum_tolerance`, a score-based metric
            without probabilities.
    """
    if not names:
        return {}
    predictions, target = _as_tensor(predictions, "predictions"), _as_tensor(target, "target")
    if probabilities is not None:
        probabilities = _as_tensor(probabilities, "probabilities")
    task = _checked_task(task, target, num_classes)
    if task == "binary" and num_classes is None:  # K is 2 whatever the rows hold: all-0 targets have a class 1
        num_classes = 2
    metrics = {name: get_metric(name, task) for name in names}  # an unknown name: a did-you-mean of the task's
    for name, metric in metrics.items():
        refuse_task_mismatch(name, metric, task)
    _check_rows(predictions, target, task, num_classes, probabilities)
    _check_label_count(target, task, num_classes)
    if probabilities is not None and task != "regression":
        _check_probabilities(probabilities, target, task, num_classes)
    classes = probabilities.shape[1] if task == "multiclass" and probabilities is not None else num_classes
    message = top_k_warning(names, task, classes)
    if message:  # 1 whatever the model, as a run warns (scikit-learn's top_k_accuracy_score warns too)
        warn(message)
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
