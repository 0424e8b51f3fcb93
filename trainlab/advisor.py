"""Loss advisor: recommend a loss (and metrics to watch) from the training targets alone.

``advise(y, task=None) -> Advice`` looks only at ``y``; ``format_advice(advice)``
renders it for a terminal. The rules, in order of the task:

- regression: ``mse``, unless the target has heavy tails or gross outliers, judged by
  robust z-scores z = (y - median) / (1.4826 MAD) (Iglewicz & Hoaglin's modified
  z-score): more than 1% of values with |z| > 3.5 (a Gaussian has 0.05%), or excess
  kurtosis above 4 (Laplace has 3). Then ``huber`` with delta = 1.345 * sigma, where
  sigma = 1.4826 MAD (1.345 is Huber's 95%-efficiency constant); ``adaptive`` is offered
  as the alternative that learns the tail shape.
- binary: ``bce`` on logits; when the minority class is under 20% of the targets,
  ``pos_weight = n_neg / n_pos`` so both classes carry equal total weight, and f1 /
  recall / precision replace accuracy as the metrics to watch.
- multi-class: ``cross_entropy``; with class weights n / (K n_k) (inverse frequency,
  mean 1) when the largest class outnumbers the smallest more than 3 to 1, and
  ``focal`` (gamma = 2, the same weights as alpha) beyond 20 to 1.
- multi-label (2-D 0/1 targets): ``bce`` per label, with a per-label pos_weight list
  when any label is rarer than 20%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trainlab.errors import ConfigError, DataError

TASKS = ("regression", "binary", "multiclass", "multilabel")
MINORITY_FRACTION = 0.2  # below this share the minority class gets pos_weight / class weights
CLASS_WEIGHT_RATIO = 3.0  # largest / smallest class count above which cross_entropy gets class weights
FOCAL_RATIO = 20.0  # ... and above which focal loss is advised
OUTLIER_Z = 3.5  # |robust z| beyond this is an outlier (Iglewicz & Hoaglin 1993)
OUTLIER_FRACTION = 0.01  # 20x the Gaussian rate of |z| > 3.5
EXCESS_KURTOSIS = 4.0  # heavier tails than Laplace (3)
MAD_TO_SIGMA = 1.4826  # sigma = 1.4826 MAD for Gaussian data
HUBER_K = 1.345  # delta = 1.345 sigma: 95% efficiency at the Gaussian


@dataclass
class Advice:
    """A recommended loss spec with the reasons, the metrics to watch and the numbers behind it."""

    loss: dict[str, Any]
    task: str
    reasons: list[str]
    metrics: list[str]
    evidence: dict[str, Any]
    alternatives: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round(value: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (JSON-friendly floats)."""
    value = float(value)
    if value == 0 or not np.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def infer_task(y: np.ndarray) -> str:
    """2-D 0/1 -> multilabel; integer/bool 1-D -> binary (values in {0, 1}) or multiclass; else regression.

    A float 1-D target holding exactly the values 0 and 1 is also taken as binary.
    """
    if y.ndim == 2 and y.shape[1] > 1:
        return "multilabel" if np.isin(y, (0, 1)).all() else "regression"
    flat = y.reshape(len(y)) if y.ndim == 2 else y
    if np.issubdtype(flat.dtype, np.integer) or np.issubdtype(flat.dtype, np.bool_):
        return "binary" if np.isin(flat, (0, 1)).all() else "multiclass"
    if flat.size and np.isin(flat, (0.0, 1.0)).all() and len(np.unique(flat)) == 2:
        return "binary"
    return "regression"


def robust_stats(column: np.ndarray) -> dict[str, float]:
    """median, MAD, sigma = 1.4826 MAD, fraction with |robust z| > 3.5, max |z|, excess kurtosis, skewness."""
    median = float(np.median(column))
    mad = float(np.median(np.abs(column - median)))
    sigma = MAD_TO_SIGMA * mad
    if sigma == 0:  # more than half the values are identical: fall back to the mean absolute deviation
        sigma = 1.2533 * float(np.mean(np.abs(column - median)))  # sqrt(pi/2): Gaussian mean-abs -> sigma
    z = (column - median) / sigma if sigma > 0 else np.zeros_like(column)
    centred = column - column.mean()
    variance = float(np.mean(centred**2))
    kurtosis = float(np.mean(centred**4) / variance**2 - 3.0) if variance > 0 else 0.0
    skewness = float(np.mean(centred**3) / variance**1.5) if variance > 0 else 0.0
    return {
        "median": median, "mad": mad, "robust_sigma": sigma,
        "outlier_fraction": float(np.mean(np.abs(z) > OUTLIER_Z)), "max_abs_robust_z": float(np.abs(z).max()),
        "excess_kurtosis": kurtosis, "skewness": skewness, "std": float(np.sqrt(variance)),
    }


def _advise_regression(y: np.ndarray) -> Advice:
    columns = y.reshape(len(y), -1)
    stats = [robust_stats(columns[:, j]) for j in range(columns.shape[1])]
    evidence: dict[str, Any] = {"n": len(y), "target_dim": columns.shape[1]}
    keys = ("median", "mad", "robust_sigma", "outlier_fraction", "max_abs_robust_z", "excess_kurtosis",
            "skewness", "std")
    for key in keys:
        values = [_round(s[key]) for s in stats]
        evidence[key] = values[0] if len(values) == 1 else values
    worst_outliers = max(s["outlier_fraction"] for s in stats)
    worst_kurtosis = max(s["excess_kurtosis"] for s in stats)
    if all(s["std"] == 0 for s in stats):
        return Advice({"name": "mse"}, "regression", ["the target is constant: any loss fits it; mse"],
                      ["mae", "mse", "r2"], evidence)
    heavy = worst_outliers > OUTLIER_FRACTION or worst_kurtosis > EXCESS_KURTOSIS
    if not heavy:
        reasons = [
            f"continuous target without heavy tails: {worst_outliers:.1%} of values have |robust z| > "
            f"{OUTLIER_Z} (threshold {OUTLIER_FRACTION:.0%}) and excess kurtosis is {worst_kurtosis:.2f} "
            f"(threshold {EXCESS_KURTOSIS:g})",
            "mse is the Gaussian maximum-likelihood loss and fits the conditional mean",
        ]
        alternatives = [{"name": "huber", "delta": _round(HUBER_K * max(s["robust_sigma"] for s in stats), 3)}]
        return Advice({"name": "mse"}, "regression", reasons, ["mse", "mae", "r2"], evidence, alternatives)
    sigma = max(s["robust_sigma"] for s in stats)
    delta = _round(HUBER_K * sigma, 3)
    reasons = []
    if worst_outliers > OUTLIER_FRACTION:
        reasons.append(
            f"{worst_outliers:.1%} of targets have |robust z| > {OUTLIER_Z} (a Gaussian has 0.05%; "
            f"robust z = (y - median) / (1.4826 MAD), median {evidence['median']}, MAD {evidence['mad']})"
        )
    if worst_kurtosis > EXCESS_KURTOSIS:
        reasons.append(f"excess kurtosis {worst_kurtosis:.1f} > {EXCESS_KURTOSIS:g}: heavier tails than Laplace")
    reasons += [
        "squared error lets these few targets dominate the gradient; huber is quadratic for residuals "
        "below delta and linear beyond, so outliers pull with bounded force",
        f"delta = {HUBER_K} x robust sigma ({_round(sigma)}) = {delta}; the target's spread bounds the "
        "residual scale from above, so lower delta if the model explains most of the variance",
        "watch mae: outliers inflate mse on held-out data whatever the model does",
    ]
    alternatives = [{"name": "adaptive", "learn_alpha": True, "learn_scale": True, "scale": _round(sigma, 3)},
                    {"name": "log_cosh"}]
    return Advice({"name": "huber", "delta": delta}, "regression", reasons, ["mae", "r2", "mse"], evidence,
                  alternatives)


def _labels(y: np.ndarray, task: str) -> np.ndarray:
    labels = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if labels.ndim != 1:
        raise DataError(f"{task} targets must be one label per sample; got shape {y.shape}")
    if not np.all(np.mod(labels, 1) == 0) or labels.min() < 0:
        raise DataError(f"{task} targets must be non-negative integer class labels; got values like "
                        f"{labels[(np.mod(labels, 1) != 0) | (labels < 0)][0]:g}")
    return labels.astype(np.int64)


def _advise_binary(y: np.ndarray) -> Advice:
    labels = _labels(y, "binary")
    if labels.max() > 1:
        raise DataError(f"binary targets must be 0 or 1; got a label {int(labels.max())} (use task='multiclass')")
    n = len(labels)
    n_pos = int(labels.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"binary targets hold only class {int(labels[0])} ({n} samples): a classifier needs both")
    minority = min(n_pos, n_neg) / n
    minority_class = 1 if n_pos <= n_neg else 0
    evidence = {"n": n, "n_pos": n_pos, "n_neg": n_neg, "positive_fraction": _round(n_pos / n),
                "minority_class": minority_class, "minority_fraction": _round(minority)}
    if minority >= MINORITY_FRACTION:
        reasons = [f"binary target, classes balanced enough ({minority:.1%} minority >= "
                   f"{MINORITY_FRACTION:.0%}): plain bce on logits"]
        return Advice({"name": "bce"}, "binary", reasons, ["accuracy", "f1"], evidence)
    pos_weight = _round(n_neg / n_pos, 4)
    evidence["pos_weight"] = pos_weight
    reasons = [
        f"class {minority_class} is only {minority:.1%} of {n} targets ({min(n_pos, n_neg)} samples)",
        f"pos_weight = n_neg / n_pos = {n_neg} / {n_pos} = {pos_weight} gives both classes equal total "
        "weight in bce, so the rare class is not ignored",
        f"accuracy is misleading: always predicting class {1 - minority_class} scores {1 - minority:.1%}; "
        "watch f1 and recall",
    ]
    alternatives = [{"name": "focal", "gamma": 2.0, "alpha": _round(n_neg / n, 3)}]
    return Advice({"name": "bce", "pos_weight": pos_weight}, "binary", reasons, ["f1", "recall", "precision"],
                  evidence, alternatives)


def _advise_multiclass(y: np.ndarray) -> Advice:
    labels = _labels(y, "multiclass")
    counts = np.bincount(labels)
    num_classes = len(counts)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min())
    n = len(labels)
    evidence: dict[str, Any] = {"n": n, "num_classes": num_classes, "class_counts": counts.tolist(),
                                "imbalance_ratio": _round(ratio), "min_class_fraction": _round(present.min() / n)}
    absent = np.flatnonzero(counts == 0).tolist()
    notes = [f"classes {absent} never occur in the targets (they get weight 1)"] if absent else []
    if ratio <= CLASS_WEIGHT_RATIO:
        reasons = [f"{num_classes} classes, largest/smallest count ratio {ratio:.2f} <= {CLASS_WEIGHT_RATIO:g}: "
                   "plain cross_entropy", *notes]
        return Advice({"name": "cross_entropy"}, "multiclass", reasons, ["accuracy", "f1_macro"], evidence)
    weights = np.where(counts > 0, n / (num_classes * np.maximum(counts, 1)), 1.0)
    class_weights = [_round(w, 4) for w in weights]
    evidence["class_weights"] = class_weights
    common = [
        f"{num_classes} classes, the largest outnumbers the smallest {ratio:.1f} to 1 "
        f"(smallest class {present.min() / n:.1%} of {n})",
        "class weights n / (K n_k) (inverse frequency, mean 1) give every class equal total weight",
        "accuracy hides the rare classes; watch macro f1 and per-class recall",
        *notes,
    ]
    if ratio <= FOCAL_RATIO:
        return Advice({"name": "cross_entropy", "class_weights": class_weights}, "multiclass", common,
                      ["f1_macro", "recall_per_class", "accuracy"], evidence,
                      [{"name": "focal", "gamma": 2.0, "alpha": class_weights}])
    reasons = common + [f"imbalance beyond {FOCAL_RATIO:g} to 1: focal loss (gamma = 2) also down-weights the "
                        "many easy examples of the large classes (Lin et al. 2017)"]
    return Advice({"name": "focal", "gamma": 2.0, "alpha": class_weights}, "multiclass", reasons,
                  ["f1_macro", "recall_per_class", "accuracy"], evidence,
                  [{"name": "cross_entropy", "class_weights": class_weights}])


def _advise_multilabel(y: np.ndarray) -> Advice:
    if y.ndim != 2 or not np.isin(y, (0, 1)).all():
        raise DataError(f"multilabel targets must be a 2-D array of 0/1; got shape {y.shape}")
    n, num_labels = y.shape
    positives = y.sum(0).astype(np.int64)
    fractions = positives / n
    evidence = {"n": n, "num_labels": num_labels, "positives_per_label": positives.tolist(),
                "positive_fraction": [_round(f) for f in fractions]}
    never = np.flatnonzero(positives == 0).tolist()
    reasons = [f"{num_labels} independent 0/1 labels per sample: bce on one logit per label"]
    if never:
        reasons.append(f"labels {never} are never positive in the targets")
    rare = (fractions < MINORITY_FRACTION) & (positives > 0)
    if not rare.any():
        return Advice({"name": "bce"}, "multilabel", reasons, ["f1", "precision", "recall"], evidence)
    pos_weight = [_round((n - p) / p, 4) if p > 0 else 1.0 for p in positives]
    evidence["pos_weight"] = pos_weight
    reasons.append(f"{int(rare.sum())} of {num_labels} labels are positive in under {MINORITY_FRACTION:.0%} of "
                   "samples: per-label pos_weight = n_neg / n_pos")
    return Advice({"name": "bce", "pos_weight": pos_weight}, "multilabel", reasons, ["f1", "recall", "precision"],
                  evidence)


_ADVISORS = {"regression": _advise_regression, "binary": _advise_binary, "multiclass": _advise_multiclass,
             "multilabel": _advise_multilabel}


def advise(y: np.ndarray, task: str | None = None) -> Advice:
    """Recommend a loss for training targets ``y`` (rows are samples).

    Args:
        y: the training targets: (N,) labels or values, (N, d) values, or (N, L) 0/1 labels.
        task: "regression", "binary", "multiclass" or "multilabel"; inferred from ``y`` when None
            (integer labels are classes, floats are regression, 2-D 0/1 is multi-label).

    Returns:
        :class:`Advice` whose ``loss`` is a spec for :func:`trainlab.losses.build_loss`.

    Raises:
        ConfigError: unknown ``task``. DataError: empty or non-finite targets, labels that do not fit the task.
    """
    if task is not None and task not in TASKS:
        raise ConfigError(f"advise task must be one of {', '.join(TASKS)} or None; got {task!r}")
    y = np.asarray(y)
    if y.size == 0 or len(y) == 0:
        raise DataError("cannot advise a loss for empty targets")
    if y.ndim > 2:
        raise DataError(f"targets must be 1-D or 2-D (samples first); got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_):
        raise DataError(f"targets must be numeric; got dtype {y.dtype}")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if not np.all(np.isfinite(y)):
        raise DataError(f"targets contain {int(np.size(y) - np.isfinite(y).sum())} NaN/Inf values; "
                        "drop or impute them first")
    inferred = task is None
    task = infer_task(y) if inferred else task
    advice = _ADVISORS[task](y)
    advice.evidence["task_inferred"] = inferred
    return advice


def format_advice(advice: Advice) -> str:
    """A short report: the loss spec, why, the metrics to watch, alternatives and the evidence."""
    def spec(loss: dict[str, Any]) -> str:
        options = ", ".join(f"{k}={v}" for k, v in loss.items() if k != "name")
        return loss["name"] + (f" ({options})" if options else "")

    how = "inferred from the targets" if advice.evidence.get("task_inferred") else "given"
    lines = [f"task:    {advice.task} ({how})", f"loss:    {spec(advice.loss)}", "why:"]
    lines += [f"  - {reason}" for reason in advice.reasons]
    lines.append(f"watch:   {', '.join(advice.metrics)}")
    if advice.alternatives:
        lines.append(f"also try: {'; '.join(spec(a) for a in advice.alternatives)}")
    shown = {k: v for k, v in advice.evidence.items() if k != "task_inferred"}
    lines.append("evidence: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return "\n".join(lines)
