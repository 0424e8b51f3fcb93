"""Evaluation metrics on a model's decisions, its class probabilities, and the targets.

A metric reads :class:`MetricInputs`: ``predictions`` (``loss.predict(output)``: class
indices (N,), 0/1 decisions (N,) or per label (N, L), or values), the ``target``, the
``task``, ``num_classes`` (K; 2 for binary; L for multi-label; None for regression) and,
for the score-based metrics, ``probabilities`` (``loss.probabilities(output)``: P(class 1)
(N,) for binary, softmax (N, K) for multi-class, a sigmoid per label (N, L) for multi-label).
Every metric declares the tasks it applies to, its direction, whether it is one number
(``is_scalar``: a list-valued metric cannot be monitored) and whether it needs probabilities.

Classification (binary, multiclass, multilabel):
  ``accuracy``: the fraction of samples whose prediction is entirely right. For multi-label
  data this is the *subset* accuracy (every label of a sample right, scikit-learn's
  ``accuracy_score``); ``subset_accuracy`` names it explicitly and ``hamming_accuracy``
  (= 1 - Hamming loss) is the fraction of right (sample, label) decisions.
  ``precision``, ``recall``, ``f1``: binary: of the positive class 1; multi-class and
  multi-label: the macro average. ``*_macro``: the unweighted mean over classes (multi-class:
  the classes present in the targets or the predictions; multi-label: every label), as
  scikit-learn's ``average="macro"``. ``*_micro``: from the summed counts (for single-label
  data it equals accuracy). ``*_weighted``: the per-class values weighted by each class's support (its
  rows in the targets; multi-label: its positives), as scikit-learn's ``average="weighted"``; 0 without
  support. ``*_per_class``: one value per class (per label for
  multi-label). 0 where a ratio is 0/0 (scikit-learn's ``zero_division=0``).
  ``confusion_matrix``: rows = true class, columns = predicted; multi-label: one
  [[tn, fp], [fn, tp]] per label (scikit-learn's ``multilabel_confusion_matrix``).
  ``roc_auc``, ``average_precision``: binary, macro one-vs-rest over classes (multi-class) or
  labels (multi-label); classes whose targets are all one value have none and are left out
  of the mean (NaN if none is left). ``log_loss``: mean negative log-likelihood of the true
  class (multi-label: of each label) with probabilities clipped to [eps, 1 - eps], eps the
  probabilities' dtype epsilon, as scikit-learn. ``balanced_accuracy`` (mean recall over the
  classes present in the targets) and ``matthews_corrcoef`` (Gorodkin's K-class form):
  binary and multi-class. ``top_<k>_accuracy`` (any k >= 1, e.g. ``top_5_accuracy``): the true
  class is among the k most probable; multi-class. Equally probable classes are taken in a fixed
  order: the predicted class first (so ``top_1_accuracy`` equals ``accuracy``), then the lower
  class index (argmax's rule; scikit-learn's ``top_k_accuracy_score`` takes the higher index first,
  so the two differ only on ties).
  The score-based metrics (roc_auc, average_precision, log_loss, top_<k>_accuracy) are NaN when a
  probability is NaN or infinite (a diverged model): no number of a broken model passes for a
  score. scikit-learn raises there; a run records NaN as null and goes on.
Regression: ``mse``, ``mae``, ``r2`` (1 - SS_res / SS_tot, averaged uniformly over outputs; a
constant target column scores 1 if predicted exactly, else 0, as scikit-learn; NaN for fewer than
2 rows, where R² is not defined, as scikit-learn).

Entry point: ``compute(names, predictions, target, num_classes, task=..., probabilities=...)``, which checks
its inputs first (trainlab/metric_compute.py).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.name_aliases import METRIC_NAMES, trainlab_name
from trainlab.registry import Registry, did_you_mean
from trainlab.user_code import import_reference

TASKS = ("regression", "binary", "multiclass", "multilabel")
SINGLE_LABEL = frozenset({"binary", "multiclass"})
CLASSIFICATION = frozenset({"binary", "multiclass", "multilabel"})
REGRESSION = frozenset({"regression"})
DEFAULTS = {
    "regression": ["mse", "mae", "r2"],
    "binary": ["accuracy", "precision", "recall", "f1"],
    "multiclass": ["accuracy", "precision", "recall", "f1"],
    "multilabel": ["subset_accuracy", "hamming_accuracy", "precision_macro", "recall_macro", "f1_macro",
                   "f1_micro"],
}
CLASSIFICATION_DEFAULT = DEFAULTS["binary"]
REGRESSION_DEFAULT = DEFAULTS["regression"]
TOP_K = re.compile(r"top_(\d+)_accuracy")


@dataclass(frozen=True)
class MetricInputs:
    """Everything a metric may read; tensors are on the CPU."""

    predictions: torch.Tensor
    target: torch.Tensor
    task: str
    num_classes: int | None
    probabilities: torch.Tensor | None = None


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(inputs) -> float | list``, the tasks it fits and its direction."""

    name: str
    fn: Callable[[MetricInputs], Any]
    tasks: frozenset[str]
    higher_is_better: bool
    scalar: bool = True
    needs_probabilities: bool = False


METRICS: Registry = Registry("metric")


def _metric(name: str, tasks: frozenset[str], higher_is_better: bool = True, scalar: bool = True,
            needs_probabilities: bool = False) -> Callable[[Callable[[MetricInputs], Any]], Callable]:
    def add(fn: Callable[[MetricInputs], Any]) -> Callable[[MetricInputs], Any]:
        METRICS.register(name)(Metric(name, fn, tasks, higher_is_better, scalar, needs_probabilities))
        return fn

    return add


# --------------------------------------------------------------------------- counts


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """K x K counts, rows = true class, columns = predicted class."""
    index = target.long().reshape(-1) * num_classes + pred.long().reshape(-1)
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _counts(inputs: MetricInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class (per label for multi-label): true positives, predicted positives, actual positives."""
    if inputs.task == "multilabel":
        pred, target = _label_matrix(inputs.predictions), _label_matrix(inputs.target)
        return (pred & target).sum(0).double(), pred.sum(0).double(), target.sum(0).double()
    matrix = confusion(inputs.predictions, inputs.target, _num_classes(inputs)).double()
    return matrix.diagonal(), matrix.sum(0), matrix.sum(1)


def _num_classes(inputs: MetricInputs) -> int:
    if inputs.num_classes is not None:
        return int(inputs.num_classes)
    return int(max(inputs.target.max(), inputs.predictions.max())) + 1 if inputs.target.numel() else 1


def _label_matrix(values: torch.Tensor) -> torch.Tensor:
    """(N, L) bool from 0/1 values (float or int); a one-label multi-label task may come as (N,)."""
    return values.reshape(len(values), -1) > 0.5


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 0 where the denominator is 0 (zero_division=0)."""
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))


def _per_class(inputs: MetricInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """precision, recall, f1 per class (or label)."""
    true_pos, predicted, actual = _counts(inputs)
    precision, recall = _ratio(true_pos, predicted), _ratio(true_pos, actual)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def _macro_mean(values: torch.Tensor, inputs: MetricInputs) -> float:
    if inputs.task == "multilabel":  # every label, as scikit-learn's average="macro" on indicator targets
        return float(values.mean()) if values.numel() else 0.0
    # single-label: scikit-learn averages over the classes present in the targets or the predictions
    present = torch.zeros(len(values), dtype=torch.bool)
    present[inputs.target.long().reshape(-1)] = True
    present[inputs.predictions.long().reshape(-1)] = True
    return float(values[present].mean()) if present.any() else 0.0


def _micro(index: int) -> Callable[[MetricInputs], float]:
    def fn(inputs: MetricInputs) -> float:
        true_pos, predicted, actual = (c.sum() for c in _counts(inputs))
        precision, recall = _ratio(true_pos, predicted), _ratio(true_pos, actual)
        return float((precision, recall, _ratio(2 * precision * recall, precision + recall))[index])

    return fn


def _summary(index: int) -> Callable[[MetricInputs], float]:
    def fn(inputs: MetricInputs) -> float:
        values = _per_class(inputs)[index]
        if inputs.task == "binary" and len(values) == 2:
            return float(values[1])
        return _macro_mean(values, inputs)

    return fn


def _macro(index: int) -> Callable[[MetricInputs], float]:
    return lambda inputs: _macro_mean(_per_class(inputs)[index], inputs)


def _weighted(index: int) -> Callable[[MetricInputs], float]:
    """sum_c n_c v_c / sum_c n_c: the per-class values v_c weighted by their support n_c (the rows of class c,
    or the positives of label c), scikit-learn's ``average="weighted"``; 0 without any support."""

    def fn(inputs: MetricInputs) -> float:
        values, support = _per_class(inputs)[index], _counts(inputs)[2]
        return float((values * support).sum() / support.sum()) if support.sum() > 0 else 0.0

    return fn


def _listed(index: int) -> Callable[[MetricInputs], list[float]]:
    return lambda inputs: _per_class(inputs)[index].tolist()


# --------------------------------------------------------------------------- decisions


@_metric("accuracy", CLASSIFICATION)
def accuracy(inputs: MetricInputs) -> float:
    """Single-label: fraction right. Multi-label: subset accuracy (all of a sample's labels right)."""
    if inputs.task == "multilabel":
        return subset_accuracy(inputs)
    return float((inputs.predictions.reshape(-1) == inputs.target.reshape(-1)).double().mean())


@_metric("subset_accuracy", frozenset({"multilabel"}))
def subset_accuracy(inputs: MetricInputs) -> float:
    pred, target = _label_matrix(inputs.predictions), _label_matrix(inputs.target)
    return float((pred == target).all(dim=1).double().mean())


@_metric("hamming_accuracy", frozenset({"multilabel"}))
def hamming_accuracy(inputs: MetricInputs) -> float:
    """1 - Hamming loss: the fraction of (sample, label) decisions that are right."""
    pred, target = _label_matrix(inputs.predictions), _label_matrix(inputs.target)
    return float((pred == target).double().mean())


for _index, _name in enumerate(("precision", "recall", "f1")):
    _metric(_name, CLASSIFICATION)(_summary(_index))
    _metric(f"{_name}_macro", CLASSIFICATION)(_macro(_index))
    _metric(f"{_name}_micro", CLASSIFICATION)(_micro(_index))
    _metric(f"{_name}_weighted", CLASSIFICATION)(_weighted(_index))
    _metric(f"{_name}_per_class", CLASSIFICATION, scalar=False)(_listed(_index))


@_metric("confusion_matrix", CLASSIFICATION, scalar=False)
def confusion_matrix(inputs: MetricInputs) -> list:
    if inputs.task == "multilabel":
        pred, target = _label_matrix(inputs.predictions), _label_matrix(inputs.target)
        tp, fp = (pred & target).sum(0), (pred & ~target).sum(0)
        fn, tn = (~pred & target).sum(0), (~pred & ~target).sum(0)
        return torch.stack([torch.stack([tn, fp], 1), torch.stack([fn, tp], 1)], 1).tolist()
    return confusion(inputs.predictions, inputs.target, _num_classes(inputs)).tolist()


@_metric("balanced_accuracy", SINGLE_LABEL)
def balanced_accuracy(inputs: MetricInputs) -> float:
    """Mean recall over the classes that occur in the targets."""
    true_pos, _, actual = _counts(inputs)
    present = actual > 0
    return float((true_pos[present] / actual[present]).mean()) if present.any() else 0.0


@_metric("matthews_corrcoef", SINGLE_LABEL)
def matthews_corrcoef(inputs: MetricInputs) -> float:
    """(c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)), c = correct, s = samples, t/p = true/predicted class
    counts (Gorodkin 2004; binary: the usual MCC); 0 when a factor under the root is 0."""
    matrix = confusion(inputs.predictions, inputs.target, _num_classes(inputs)).double()
    correct, samples = matrix.trace(), matrix.sum()
    actual, predicted = matrix.sum(1), matrix.sum(0)
    denominator = (samples**2 - predicted @ predicted) * (samples**2 - actual @ actual)
    return float((correct * samples - actual @ predicted) / denominator.sqrt()) if denominator > 0 else 0.0


# --------------------------------------------------------------------------- scores


def _finite_probabilities(inputs: MetricInputs) -> bool:
    """False when a probability is NaN or infinite: the score-based metrics are then NaN."""
    return bool(torch.isfinite(inputs.probabilities).all())


def _score_columns(inputs: MetricInputs) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positives) as (N, C) arrays, one column per binary problem: the positive class
    (binary), each class one-vs-rest (multi-class) or each label (multi-label)."""
    probabilities = inputs.probabilities.double().numpy()
    target = inputs.target.numpy()
    if inputs.task == "binary":
        if probabilities.ndim == 2:  # (N, 2) softmax or (N, 1)
            probabilities = probabilities[:, -1]
        return probabilities.reshape(-1, 1), (target.reshape(-1) == 1).reshape(-1, 1)
    if inputs.task == "multiclass":
        classes = np.arange(probabilities.shape[1])
        return probabilities, target.reshape(-1, 1) == classes[None, :]
    return probabilities.reshape(len(probabilities), -1), target.reshape(len(target), -1) > 0.5


def _threshold_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives when predicting positive for score >= each distinct score,
    from the highest down (tied scores enter together, as in scikit-learn's ``_binary_clf_curve``)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_pos = np.cumsum(positive)[last_of_tie]
    return true_pos.astype(np.float64), (last_of_tie + 1 - true_pos).astype(np.float64)


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (fpr, tpr) from (0, 0), by the trapezoid rule."""
    true_pos, false_pos = _threshold_counts(scores, positive)
    tpr, fpr = np.r_[0.0, true_pos / true_pos[-1]], np.r_[0.0, false_pos / false_pos[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _binary_average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over the distinct thresholds (no interpolation)."""
    true_pos, false_pos = _threshold_counts(scores, positive)
    precision, recall = true_pos / (true_pos + false_pos), true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _macro_over_columns(inputs: MetricInputs, binary: Callable[[np.ndarray, np.ndarray], float],
                        needs_negatives: bool) -> float:
    if not _finite_probabilities(inputs):
        return float("nan")  # sorting NaN scores would give a plausible-looking but meaningless curve
    scores, positives = _score_columns(inputs)
    values = []
    for column in range(scores.shape[1]):
        n_pos = positives[:, column].sum()
        if n_pos == 0 or (needs_negatives and n_pos == len(positives)):
            continue  # undefined for this class: left out of the mean
        values.append(binary(scores[:, column], positives[:, column]))
    return float(np.mean(values)) if values else float("nan")


@_metric("roc_auc", CLASSIFICATION, needs_probabilities=True)
def roc_auc(inputs: MetricInputs) -> float:
    """Binary ROC AUC; macro one-vs-rest over classes (multi-class) or labels (multi-label)."""
    return _macro_over_columns(inputs, _binary_auc, needs_negatives=True)


@_metric("average_precision", CLASSIFICATION, needs_probabilities=True)
def average_precision(inputs: MetricInputs) -> float:
    """Binary average precision; macro one-vs-rest over classes (multi-class) or labels (multi-label)."""
    return _macro_over_columns(inputs, _binary_average_precision, needs_negatives=False)


@_metric("log_loss", CLASSIFICATION, higher_is_better=False, needs_probabilities=True)
def log_loss(inputs: MetricInputs) -> float:
    """-mean log P(true class), P clipped to [eps, 1 - eps]; multi-label: mean over samples and labels."""
    if not _finite_probabilities(inputs):
        return float("nan")  # clipping would turn an infinite probability into 1 - eps
    eps = float(torch.finfo(inputs.probabilities.dtype).eps)
    scores, positives = _score_columns(inputs)
    scores = np.clip(scores, eps, 1 - eps)
    if inputs.task == "multiclass":
        return float(-np.mean(np.log(scores[positives])))
    return float(-np.mean(np.where(positives, np.log(scores), np.log1p(-scores))))


def _top_k_accuracy(k: int) -> Callable[[MetricInputs], float]:
    def fn(inputs: MetricInputs) -> float:
        """The true class's place among the classes by probability is below k. Among equally probable
        classes the predicted one comes first, then the lower index (torch.topk's choice in a tie
        is arbitrary: top_1 would differ from accuracy on tied rows)."""
        if not _finite_probabilities(inputs):
            return float("nan")
        probabilities = inputs.probabilities
        target = inputs.target.long().reshape(-1, 1)
        predicted = inputs.predictions.long().reshape(-1, 1)
        classes = torch.arange(probabilities.shape[1]).reshape(1, -1)
        true_probability = probabilities.gather(1, target)
        above = (probabilities > true_probability).sum(1)
        tied = (probabilities == true_probability) & (classes != target)
        ahead_in_tie = tied & (predicted != target) & ((classes == predicted) | (classes < target))
        place = above + ahead_in_tie.sum(1)
        return float((place < k).double().mean())

    return fn


# --------------------------------------------------------------------------- regression


@_metric("mse", REGRESSION, higher_is_better=False)
def mse(inputs: MetricInputs) -> float:
    return float((inputs.predictions.double() - inputs.target.double()).square().mean())


@_metric("mae", REGRESSION, higher_is_better=False)
def mae(inputs: MetricInputs) -> float:
    return float((inputs.predictions.double() - inputs.target.double()).abs().mean())


@_metric("r2", REGRESSION)
def r2(inputs: MetricInputs) -> float:
    if len(inputs.target) < 2:
        return float("nan")  # one row has no variance to explain (scikit-learn: nan, "not well-defined")
    pred = inputs.predictions.double().reshape(len(inputs.predictions), -1)
    target = inputs.target.double().reshape(len(inputs.target), -1)
    residual = (target - pred).square().sum(0)
    total = (target - target.mean(0)).square().sum(0)
    # scikit-learn: constant target -> 1.0 if perfect else 0.0
    scores = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300),
                         torch.where(residual == 0, torch.ones_like(total), torch.zeros_like(total)))
    return float(scores.mean())


# --------------------------------------------------------------------------- lookup and validation


def _user_metric(name: str, user: Callable[..., Any]) -> Callable[[MetricInputs], float]:
    """``user(predictions, target, num_classes)`` as a Metric's ``fn``: its value as a Python float, as the
    built-in metrics give (a NumPy or 0-d tensor number too); anything else (text, a list, None) is one
    ConfigError naming the metric and the value's type, not a string or array in the summary."""

    def fn(inputs: MetricInputs) -> float:
        value = user(inputs.predictions, inputs.target, inputs.num_classes)
        dtype = getattr(value, "dtype", None)  # a 0-d array or tensor of bools is a bool, as True is
        number = (isinstance(value, numbers.Real) or getattr(value, "ndim", None) == 0) \
            and not isinstance(value, (bool, np.bool_, str, bytes)) and dtype not in (np.bool_, torch.bool)
        if not number:
            raise ConfigError(f"metric '{name}' returned {type(value).__name__} ({short_repr(value)}), not a "
                              "number: a metric function(predictions, target, num_classes) returns one float "
                              "(higher is better)")
        try:
            return float(value)
        except (TypeError, ValueError) as exc:  # a 0-d array of objects, a complex tensor
            raise ConfigError(f"metric '{name}' returned {type(value).__name__} ({short_repr(value)}), not a "
                              f"real number: {exc}") from exc

    return fn


def get_metric(name: str, task: str | None = None) -> Metric:
    """The metric called ``name``: a registered one, ``top_<k>_accuracy``, or a user ``module:function``
    taking (predictions, target, num_classes) and returning a float (higher is better, any task).

    An unknown name is one ConfigError: :func:`unknown_metric_hint`'s did-you-mean among the metrics of
    ``task`` (None: of any task) and those metrics listed."""
    match = TOP_K.fullmatch(name.lower())  # metric names ignore letter case, as the registry's lookup does
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ConfigError(f"metric '{name}': k must be >= 1 (e.g. top_5_accuracy)")
        return Metric(name, _top_k_accuracy(k), frozenset({"multiclass"}), True, True, True)
    if ":" in name:
        return Metric(name, _user_metric(name, import_reference(name, "metric")), frozenset(TASKS), True)
    if name.lower() not in METRICS:
        listed = f"metrics of a {task} task: {', '.join(metrics_for_task(task))}" if task in TASKS else \
            f"valid: {', '.join(METRICS.names())}, top_<k>_accuracy"
        raise ConfigError(f"unknown metric '{name}'{unknown_metric_hint(name, task)} ({listed})")
    return METRICS.get(name)


def unknown_metric_hint(name: str, task: str | None = None) -> str:
    """The did-you-mean for the unknown metric ``name``: only a metric that ``task`` has (None: any task), so
    that the name offered is never refused in turn (``subset_accuracy`` for Keras's
    ``sparse_categorical_accuracy`` on a multiclass task). Another framework's name is pointed to trainlab's
    (:data:`~trainlab.name_aliases.METRIC_NAMES`: ``sparse_categorical_accuracy``: 'accuracy', ``AUC``:
    'roc_auc'); when that metric is not of ``task`` (``binary_accuracy`` on a regression task), the line says
    so instead of offering a lookalike."""
    tasks = [task] if task in TASKS else list(TASKS)
    choices = [known for known in METRICS.names() if set(tasks) & METRICS.get(known).tasks]
    choices += ["top_5_accuracy"] if "multiclass" in tasks else []
    equivalent = trainlab_name(name, METRIC_NAMES)
    if equivalent is None or equivalent in choices:
        return did_you_mean(name.lower(), choices, METRIC_NAMES)
    fits = ", ".join(t for t in TASKS if t in get_metric(equivalent).tasks)
    return f"; trainlab's name for it is '{equivalent}', a metric of {fits} tasks, not of this {task} task"


def is_built_in(name: str) -> bool:
    """A registered metric's name or ``top_<k>_accuracy`` (not ``loss``, not a user ``module:function``)."""
    return name in METRICS or bool(TOP_K.fullmatch(name.lower()))


def canonical_metric_name(name: str) -> str:
    """The name ``name`` is registered under: metric names ignore letter case (``F1`` is ``f1``,
    ``Top_5_Accuracy`` is ``top_5_accuracy``), as :func:`get_metric`'s lookup does. ``loss``, a user
    ``module:function`` (a Python name, whose case counts) and an unknown name are returned as given."""
    return name.lower() if is_built_in(name) else name


def refuse_listed_twice(names: list[str]) -> None:
    """One ConfigError for a metric listed twice, letter case aside (``[F1, f1]``: the same metric, computed and
    recorded twice), naming both spellings and the registered name."""
    seen: dict[str, str] = {}
    for name in names:
        canonical = canonical_metric_name(name)
        if canonical in seen:
            spelled = f"'{name}'" if seen[canonical] == name else f"as '{seen[canonical]}' and '{name}': metric " \
                "names ignore letter case"
            raise ConfigError(f"metrics lists the metric '{canonical}' twice ({spelled}); list it once, "
                              f"as '{canonical}'")
        seen[canonical] = name


def unprefixed(name: str) -> str:
    """``val_f1`` -> ``f1``, ``val_mylosses:my_metric`` -> ``mylosses:my_metric``: a record key back to
    the metric's name (a name that is no record key is returned as it is).

    The one parser of a record key's split: the ``module:attr`` of a user metric follows the prefix, so
    ``val_mylosses:my_metric`` is ``mylosses:my_metric`` on the val split, never a module ``val_mylosses``.
    """
    for prefix in ("val_", "test_", "train_"):
        rest = name[len(prefix):]
        if name.startswith(prefix) and (rest == "loss" or is_built_in(rest) or is_user_metric(rest)):
            return rest
    return name


def is_user_metric(name: str) -> bool:
    """A ``module:function`` metric, or a record key of one (``val_mod:fn``): by its contract (:func:`get_metric`)
    one number, higher is better, so its direction and shape are known without importing it."""
    return ":" in name


def is_scalar(name: str) -> bool:
    """False for list-valued metrics (``*_per_class``, ``confusion_matrix``): they cannot be monitored.

    Accepts a record key too (``val_f1_per_class``, ``val_mylosses:my_metric``); ``loss`` and a user
    ``module:function`` metric are scalars.
    """
    name = unprefixed(name)
    return name == "loss" or is_user_metric(name) or get_metric(name).scalar


def higher_is_better(name: str) -> bool:
    """The direction of a metric or record key (``loss``, ``log_loss`` and errors are minimised; a user
    ``module:function`` metric is maximised)."""
    name = unprefixed(name)
    return name != "loss" and (is_user_metric(name) or get_metric(name).higher_is_better)


def monitor_mode(name: str) -> str:
    """``"max"`` or ``"min"``: the direction of a monitored record key when a config leaves ``mode`` unset
    (early stopping, ``reduce_on_plateau``): ``max`` for ``val_accuracy``, ``min`` for losses and errors.
    An unknown name is ``min`` here; the run refuses it, with a did-you-mean, once it knows its records."""
    try:
        return "max" if higher_is_better(name) else "min"
    except ConfigError:
        return "min"


def gives_predictions(loss: Any) -> bool:
    """False for a loss (instance or class) that trains embeddings (``target_kind == "embedding"``:
    triplet, nt_xent): its outputs predict no target, so no metric but the loss applies."""
    return getattr(loss, "target_kind", None) != "embedding"


def default_metrics(task: str, loss: Any = None) -> list[str]:
    """The metrics a run of ``task`` reports when the config lists none (none but the loss for a loss
    that gives no predictions, see :func:`gives_predictions`)."""
    return list(DEFAULTS.get(task, CLASSIFICATION_DEFAULT)) if gives_predictions(loss) else []


def metrics_for_task(task: str) -> list[str]:
    """Every built-in metric that applies to ``task``: the registered ones (by name), then
    ``top_<k>_accuracy`` for a multi-class task."""
    names = [name for name in METRICS.names() if task in METRICS.get(name).tasks]
    return names + (["top_<k>_accuracy"] if task == "multiclass" else [])


def refuse_task_mismatch(name: str, metric: Metric, task: str) -> None:
    """One ConfigError for a metric that ``task`` has none of (mse on a multiclass task), naming every metric of
    that task (:func:`metrics_for_task`)."""
    if task not in metric.tasks:
        fits = ", ".join(t for t in TASKS if t in metric.tasks)
        raise ConfigError(f"metric '{name}' applies to {fits} tasks but the data is a {task} task "
                          f"(metrics of a {task} task: {', '.join(metrics_for_task(task))})")


def validate_metrics(names: list[str], task: str, loss: Any = None) -> list[str]:
    """Check every name exists, fits the task and (given the loss) has the probabilities it needs.

    'loss' is always reported and may be listed. ``loss`` is the built loss, or its name or spec (built here,
    as a config's ``strategy.loss``): a metric that needs class probabilities (roc_auc, average_precision,
    log_loss, top_k) is refused when ``loss.has_probabilities`` is False (hinge, regression losses), and a
    metric listed twice, letter case aside (:func:`refuse_listed_twice`). Raises ConfigError (one line).
    """
    if isinstance(loss, (str, dict)):  # a name was read as "no loss given": roc_auc with 'hinge' passed
        from trainlab.losses import build_loss

        loss = build_loss(loss)
    refuse_listed_twice(names)
    checked = []
    for name in names:
        if name == "loss":
            continue
        metric = get_metric(name, task)  # unknown name -> ConfigError with a did-you-mean of the task's
        if loss is not None and not gives_predictions(loss):
            raise ConfigError(f"metric '{name}' needs predictions, which loss '{loss.name}' does not give (it trains "
                              "embeddings: its runs report the loss only); leave metrics out or set metrics: [loss]")
        refuse_task_mismatch(name, metric, task)
        if metric.needs_probabilities and loss is not None and not getattr(loss, "has_probabilities", True):
            raise ConfigError(
                f"metric '{name}' needs the model's class probabilities, which loss '{loss.name}' does not give "
                "(use bce, cross_entropy or focal, or drop the metric)"
            )
        checked.append(name)
    return checked


def top_k_warning(names: list[str], task: str, num_classes: int | None) -> str | None:
    """The warning for a ``top_<k>_accuracy`` with k >= the K classes: every label is among the top k, so
    it is 1 whatever the model (scikit-learn's ``top_k_accuracy_score`` warns the same); None otherwise."""
    if task != "multiclass" or not num_classes:
        return None
    for name in names:
        match = TOP_K.fullmatch(name)
        if match and int(match.group(1)) >= num_classes:
            return (f"metric '{name}' covers all {num_classes} classes: it is 1 whatever the model; use k "
                    f"below {num_classes} (e.g. top_{max(1, num_classes // 2)}_accuracy)")
    return None


def compute(names: list[str], predictions: Any, target: Any, num_classes: int | None,
            task: str | None = None, probabilities: Any = None) -> dict[str, Any]:
    """Every metric in ``names`` on one split, its inputs checked: :func:`trainlab.metric_compute.compute`."""
    from trainlab.metric_compute import compute as checked_compute

    return checked_compute(names, predictions, target, num_classes, task, probabilities)


MAXIMIZE = {name for name in METRICS.names() if METRICS.get(name).higher_is_better}
