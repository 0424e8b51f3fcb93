"""Loss advisor: recommend a loss (and metrics to watch) from the training data, with a reason for each.

``advise(y, task, extras=None, x=None) -> Advice``: the task comes from the data
(:func:`trainlab.data.infer_task` decides it, in one place); ``extras`` are the dataset's
facts (``extras["target_kind"] == "count"`` marks count targets); ``x`` are the training
features, used for the heavy-tail check where that is cheap. ``format_advice(advice)``
renders it for a terminal. Every recommendation (the loss, each alternative, the metrics
to watch) carries its reason. The rules, per task:

- regression:

  - counts (``target_kind == "count"`` while the targets are whole numbers >= 0 with at least 3
    distinct values, not z-scores of ``data.standardize_target``; or one column of whole numbers >= 0
    that include 0, with at least 3 distinct values; :func:`counts_as_given`): ``poisson_nll`` with
    ``log_input`` (the model outputs log lambda, so the rate is positive; predictions are exp(output)).
  - otherwise ``mse``, unless the *residuals* have heavy tails or gross outliers. The
    residuals are those of a least-squares fit of y on [1, x] when ``x`` is given and has
    at most 512 features and at least twice as many rows as columns (else the targets'
    spread around their median stands in, and the advice says so). Heavy tails: robust
    z-scores z = (r - median) / (1.4826 MAD) (Iglewicz & Hoaglin's modified z-score) with
    more than 1% of values beyond |z| > 3.5 (a Gaussian has 0.05%), or excess kurtosis
    above 4 (Laplace has 3). Then ``huber`` with delta = 1.345 * sigma, sigma = 1.4826 MAD
    of the residuals (1.345 is Huber's 95%-efficiency constant); ``adaptive`` (learns the
    tail shape) and ``log_cosh`` are offered as alternatives. Several targets whose robust sigmas differ
    more than 3x get a note with either loss: mse, and huber with one delta, are dominated by the widest
    target; ``data.standardize_target: true`` puts each in units of its own sd.

- binary: ``bce`` on logits; when the minority class is under 20% of the targets,
  ``pos_weight = n_neg / n_pos`` so both classes carry equal total weight (this raises the
  minority class's recall over plain bce), and f1 / recall / precision / average precision
  replace accuracy. The alternative is ``focal`` as Lin et al. (2017) tuned it: gamma = 2
  with alpha = 0.25 on the rare class (``alpha`` weights label 1, so alpha = 0.75 when
  label 0 is the rare one). That setting targets ranking quality (the paper's AP); it does
  not raise the rare class's recall at the 0.5 threshold (measured in
  tests/test_losses_demo.py: recall 0.16-0.21 against bce's 0.31 and pos_weight's 0.86).
- multi-class: ``cross_entropy``; with class weights n / (K n_k) (inverse frequency,
  mean 1 over the training rows) when the largest class outnumbers the smallest more than 3 to 1, with ``focal``
  (gamma = 2, the same weights as its per-class alpha) as the alternative. Measured with
  ``trainlab compare`` (5 seeds, MLP [32], Adam 0.01, 30 epochs) on scikit-learn's
  ``make_classification(4000, n_features=10, n_informative=6, n_classes=4,
  n_clusters_per_class=1, weights=[0.85, 0.1, 0.035, 0.015], random_state=5)``, 47 to 1: the
  weights raise balanced accuracy (0.813 vs plain 0.797) and lower macro f1 (0.692 vs 0.860:
  rare-class precision falls); focal did no better than either (0.791, 0.652), so it is not
  advised first at any imbalance.
- multi-label ((N, L) 0/1 targets): ``bce`` with one logit per label, with a per-label
  ``pos_weight = n_neg / n_pos`` list when any label is positive in under 20% of samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trainlab.data.dataset import numbered_from_one
from trainlab.data.positive_class import RARE_SHARE, binary_names, choose_positive
from trainlab.errors import ConfigError, DataError
from trainlab.target_scale_advice import off_scale_note, standardised, standardised_numbers

TASKS = ("regression", "binary", "multiclass", "multilabel")
MINORITY_FRACTION = RARE_SHARE  # below this share (0.2) the minority class gets pos_weight / class weights
CLASS_WEIGHT_RATIO = 3.0  # largest / smallest class count above which cross_entropy gets class weights
FOCAL_GAMMA, FOCAL_RARE_ALPHA = 2.0, 0.25  # Lin et al. 2017, Table 1a: the best pair on COCO
OUTLIER_Z = 3.5  # |robust z| beyond this is an outlier (Iglewicz & Hoaglin 1993)
OUTLIER_FRACTION = 0.01  # 20x the Gaussian rate of |z| > 3.5
EXCESS_KURTOSIS = 4.0  # heavier tails than Laplace (3)
MAD_TO_SIGMA = 1.4826  # sigma = 1.4826 MAD for Gaussian data
EXACT_FIT = 1e-9  # residuals below this fraction of the targets' spread are a linear fit's rounding error
HUBER_K = 1.345  # delta = 1.345 sigma: 95% efficiency at the Gaussian
SCALE_SPREAD = 3.0  # several targets whose robust sigmas differ more than this share no one delta
MIN_COUNT_VALUES = 3  # whole numbers >= 0 with at least this many distinct values read as counts
MAX_FIT_FEATURES = 512  # the least-squares residual check runs up to this many features ...
MAX_FIT_ROWS = 20_000  # ... on at most this many rows (a seeded subsample beyond)
Z_SCORED_TOLERANCE = 0.01  # columns with |mean| and |sd - 1| below this are z-scored already (standardize_target)


@dataclass
class Alternative:
    """Another loss worth trying, and why."""

    loss: dict[str, Any]
    reason: str


@dataclass
class Advice:
    """A recommended loss spec with the reasons, the metrics to watch and the numbers behind it."""

    loss: dict[str, Any]
    task: str
    reasons: list[str]
    metrics: list[str]
    evidence: dict[str, Any]
    alternatives: list[Alternative] = field(default_factory=list)
    metrics_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round(value: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (JSON-friendly floats)."""
    value = float(value)
    if value == 0 or not np.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


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


# --------------------------------------------------------------------------- regression


def least_squares_residuals(y: np.ndarray, x: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """Residuals of the least-squares fit of y on [1, x] (rows = samples), or None with why not.

    Cheap by construction: at most ``MAX_FIT_FEATURES`` features and ``MAX_FIT_ROWS`` rows
    (a seeded subsample), and at least twice as many rows as coefficients, so the fit does not
    interpolate the targets.
    """
    if x is None:
        return None, "no features given"
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        return None, f"features of shape {x.shape} are not a numeric table"
    if x.shape[1] > MAX_FIT_FEATURES:
        return None, f"{x.shape[1]} features (the check fits up to {MAX_FIT_FEATURES})"
    if len(x) != len(y):
        raise DataError(f"advise: {len(x)} feature rows but {len(y)} targets")
    rows = np.arange(len(y))
    if len(rows) > MAX_FIT_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(y), MAX_FIT_ROWS, replace=False))
    if len(rows) < 2 * (x.shape[1] + 1):
        return None, f"{len(rows)} rows are too few to fit {x.shape[1] + 1} coefficients"
    design = np.column_stack([np.ones(len(rows)), x[rows].astype(np.float64)])
    targets = y[rows].reshape(len(rows), -1).astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return targets - design @ coefficients, f"least-squares fit of y on {x.shape[1]} features"


def _is_count(y: np.ndarray) -> bool:
    """One column of whole numbers >= 0 that include 0, with at least 3 distinct values.

    The fallback when the data did not mark the target (``extras["target_kind"]``): requiring
    a 0 keeps whole-number measurements such as scikit-learn's diabetes target (25..346) as values.
    """
    flat = y.reshape(len(y), -1)
    return flat.shape[1] == 1 and bool(flat.min() == 0) and bool(np.all(np.mod(flat, 1) == 0)) \
        and len(np.unique(flat)) >= MIN_COUNT_VALUES


def counts_as_given(y: np.ndarray, extras: dict[str, Any] | None) -> bool:
    """Whether ``y``, the targets as the loss sees them, get ``poisson_nll``: the one rule of
    ``trainlab advise`` and ``loss: auto`` (both call :func:`advise`, which asks only this).

    Counts the data marks (``extras["target_kind"] == "count"``) while they are still whole numbers >= 0
    with at least :data:`MIN_COUNT_VALUES` distinct values (docs/data.md: counts have many values; a single
    value, as in a constant target, is no count of anything), or unmarked targets that look like counts
    (:func:`_is_count`). Under ``data.standardize_target`` the marked counts are z-scores, (y - mean) / sd:
    mean 0, negative values, which a count loss refuses.
    """
    y = np.asarray(y)
    if (extras or {}).get("target_kind") == "count":
        return _whole_and_non_negative(y) and len(np.unique(y)) >= MIN_COUNT_VALUES
    return _is_count(y)


def _whole_and_non_negative(y: np.ndarray) -> bool:
    """Every value of ``y`` is a whole number >= 0."""
    return bool(y.min() >= 0) and bool(np.all(np.mod(y, 1) == 0))


def _no_longer_counts(y: np.ndarray) -> str:
    """Why marked counts that are z-scores (not :func:`counts_as_given`) get no poisson_nll."""
    values = y.reshape(-1).astype(np.float64)
    return (f"the data marks the target as counts, but the targets the loss sees are not whole numbers >= 0 (from "
            f"{values.min():.3g} to {values.max():.3g}, mean {round(values.mean(), 2) + 0.0:g}: z-scores, as "
            "data.standardize_target makes them): poisson_nll needs the counts themselves; set "
            "data.standardize_target: false to train poisson_nll on them")


def _advise_count(y: np.ndarray, marked: bool) -> Advice:
    counts = y.reshape(-1).astype(np.float64)
    mean, variance = float(counts.mean()), float(counts.var())
    evidence = {"n": len(counts), "target_kind": "count", "mean": _round(mean), "variance": _round(variance),
                "dispersion": _round(variance / mean) if mean > 0 else 0.0, "max": _round(counts.max()),
                "distinct_values": int(len(np.unique(counts)))}
    source = ("the data marks the target as counts" if marked else
              f"the targets are whole numbers from 0 with {evidence['distinct_values']} distinct values")
    reasons = [
        f"{source}: counts of events, not classes and not Gaussian values",
        "poisson_nll is the count's maximum-likelihood loss; with log_input the model outputs log lambda, "
        "so the predicted rate exp(output) is always positive and the variance grows with the mean, as for counts",
    ]
    if mean > 0 and variance / mean > 2:  # of the targets alone: rates that vary with the features spread them too
        reasons.append(f"the targets' variance is {variance / mean:.1f}x their mean: rates that vary with the "
                       "features spread the counts as much (Poisson given the features still fits); if the counts "
                       "are overdispersed given the features, the fitted mean stays consistent but the "
                       "likelihood understates the spread")
    alternatives = [Alternative({"name": "mse"}, "if the counts are large and roughly symmetric, squared error "
                                "on the counts fits the same mean without the log link")]
    return Advice({"name": "poisson_nll", "log_input": True}, "regression", reasons, ["mae", "mse", "r2"],
                  evidence, alternatives, "mae and mse are reported on exp(output), in counts")


def _advise_without_tails(columns: np.ndarray, residuals: np.ndarray | None, source: str,
                          evidence: dict[str, Any]) -> Advice | None:
    """mse where there are no tails to weigh: a constant target, or one a linear fit leaves only
    rounding error of (``residuals``: the fit's, None without one), whose "tails" say nothing of
    the data's noise. None otherwise."""
    if all(float(np.std(columns[:, j])) == 0 for j in range(columns.shape[1])):
        return Advice({"name": "mse"}, "regression", ["the target is constant: any loss fits it; mse"],
                      ["mae", "mse", "r2"], evidence, metrics_reason="mse and mae in target units; r2 against the mean")
    if residuals is not None and float(np.abs(residuals).max()) <= EXACT_FIT * float(np.abs(columns - columns.mean(0)).max()):
        return Advice({"name": "mse"}, "regression",
                      [f"the {source} leaves residuals below {EXACT_FIT:g} of the targets' spread: a noise-free "
                       "linear relation, with no tails to be robust to; mse"],
                      ["mse", "mae", "r2"], evidence,
                      metrics_reason="mse is what the loss minimises; mae and r2 read in target units and against the mean")
    return None


def _z_scored(columns: np.ndarray) -> bool:
    """Every column has mean 0 and sd 1 (within :data:`Z_SCORED_TOLERANCE`): in units of its own sd
    already, as ``data.standardize_target`` makes the targets the loss sees."""
    return bool(np.all(np.abs(columns.mean(0)) < Z_SCORED_TOLERANCE)
                and np.all(np.abs(columns.std(0) - 1.0) < Z_SCORED_TOLERANCE))


def _scale_spread_note(columns: np.ndarray, sigmas: list[float], loss: str) -> str | None:
    """For several targets whose robust sigmas (1.4826 MAD of their residuals) differ more than
    :data:`SCALE_SPREAD` x, whatever ``loss`` ("mse" or "huber") is advised: why mse, and huber with one
    delta (set by the widest), are dominated by the widest target (an error of one robust sigma costs
    ratio^2 times as much there as on the narrowest) and what to do; None otherwise. Targets in their own
    units: ``data.standardize_target`` puts each in units of its own sd. Targets z-scored already
    (:func:`_z_scored`): their robust sigmas still differ, as the features explain some columns better
    than others, or as outliers inflate an sd and not a MAD, and trainlab scales no column by its MAD:
    ``adaptive`` with ``num_dims`` (a scale learned per column), and for huber a delta from the
    narrowest column (robust on every column, nearer mae on the wide ones)."""
    if len(sigmas) < 2 or min(sigmas) <= 0 or max(sigmas) / min(sigmas) <= SCALE_SPREAD:
        return None
    ratio = max(sigmas) / min(sigmas)
    spread = (f"the {len(sigmas)} targets' robust sigmas differ up to {ratio:.1f}x "
              f"({', '.join(str(_round(s)) for s in sigmas)}): mse, and huber with one delta, are dominated by the "
              f"widest target (an error of one robust sigma costs {ratio**2:.3g}x as much there as on the "
              "narrowest)" + ("; one delta, set by the widest, is nearly mse on the narrow ones" if loss == "huber"
                             else ""))
    if not _z_scored(columns):
        return (f"{spread}; with data.standardize_target: true each target is in units of its own std, so the "
                "targets weigh alike" + (" and a delta from those units suits them all" if loss == "huber" else ""))
    if loss != "huber":
        return (f"{spread}, although each target is z-scored already (mean 0, sd 1, as data.standardize_target "
                "makes them): in those units the features explain some targets far better than others, and mse "
                "weighs each target's residuals as they are; for a scale learned per target use adaptive with "
                f"learn_scale: true and num_dims: {len(sigmas)}")
    narrowest = _round(HUBER_K * min(sigmas), 3)
    return (f"{spread}, although each target is z-scored already (mean 0, sd 1, as data.standardize_target makes "
            "them): outliers inflate a column's sd but not its robust sigma, so the sds leave the robust scales "
            "apart, and no per-column robust scaling is available; use adaptive with num_dims: "
            f"{len(sigmas)} (below: a scale learned per column), or delta = {HUBER_K} x the narrowest robust sigma "
            f"= {narrowest} (robust on every column, nearer mae on the wide ones)")


def _advise_regression(y: np.ndarray, x: np.ndarray | None) -> Advice:
    """mse or huber for continuous targets (module docstring), from the tails of the least-squares
    residuals (the targets' spread around their median without usable features); several targets whose
    robust sigmas differ more than :data:`SCALE_SPREAD` x get :func:`_scale_spread_note` either way."""
    columns = y.reshape(len(y), -1).astype(np.float64)
    residuals, source = least_squares_residuals(columns, x)
    from_fit = residuals is not None
    if not from_fit:
        residuals = columns
    stats = [robust_stats(residuals[:, j]) for j in range(residuals.shape[1])]
    evidence: dict[str, Any] = {"n": len(y), "target_dim": columns.shape[1],
                                "tails_measured_on": "residuals" if from_fit else "targets", "residual_source": source}
    keys = ("median", "mad", "robust_sigma", "outlier_fraction", "max_abs_robust_z", "excess_kurtosis",
            "skewness", "std")
    for key in keys:
        values = [_round(s[key]) for s in stats]
        evidence[key] = values[0] if len(values) == 1 else values
    what = (f"residuals of a {source}" if from_fit else f"targets around their median ({source}: "
            "pass the features to measure the residuals instead)")
    untailed = _advise_without_tails(columns, residuals if from_fit else None, source, evidence)
    if untailed is not None:
        return untailed
    worst_outliers = max(s["outlier_fraction"] for s in stats)
    worst_kurtosis = max(s["excess_kurtosis"] for s in stats)
    sigmas = [s["robust_sigma"] for s in stats]
    delta = _round(HUBER_K * max(sigmas), 3)
    if worst_outliers <= OUTLIER_FRACTION and worst_kurtosis <= EXCESS_KURTOSIS:
        reasons = [
            f"continuous target without heavy tails in the {what}: {worst_outliers:.1%} of values have "
            f"|robust z| > {OUTLIER_Z} (threshold {OUTLIER_FRACTION:.0%}) and excess kurtosis is "
            f"{worst_kurtosis:.2f} (threshold {EXCESS_KURTOSIS:g})",
            "mse is the Gaussian maximum-likelihood loss and fits the conditional mean",
        ]
        spread_note = _scale_spread_note(columns, sigmas, "mse")
        alternatives = [Alternative({"name": "huber", "delta": delta},
                                    f"if outliers appear later: quadratic below delta = {HUBER_K} x robust sigma, "
                                    "linear beyond")]
        return Advice({"name": "mse"}, "regression", reasons + ([spread_note] if spread_note else []),
                      ["mse", "mae", "r2"], evidence, alternatives,
                      "mse is what the loss minimises; mae and r2 read in target units and against the mean")
    reasons = []
    if worst_outliers > OUTLIER_FRACTION:
        reasons.append(
            f"{worst_outliers:.1%} of the {what} have |robust z| > {OUTLIER_Z} (a Gaussian has 0.05%; "
            f"robust z = (r - median) / (1.4826 MAD), MAD {evidence['mad']})"
        )
    if worst_kurtosis > EXCESS_KURTOSIS:
        reasons.append(f"excess kurtosis {worst_kurtosis:.1f} > {EXCESS_KURTOSIS:g} in the {what}: heavier tails "
                       "than Laplace")
    return _advise_huber(columns, sigmas, reasons, from_fit, evidence)


def _advise_huber(columns: np.ndarray, sigmas: list[float], reasons: list[str], from_fit: bool,
                  evidence: dict[str, Any]) -> Advice:
    """huber with delta = 1.345 x the widest robust sigma, after ``reasons`` (the heavy tails found);
    ``adaptive`` (per column with ``num_dims`` where :func:`_scale_spread_note` speaks) and ``log_cosh``
    as the alternatives."""
    sigma = max(sigmas)
    delta = _round(HUBER_K * sigma, 3)
    reasons = [
        *reasons,
        "squared error lets these few points dominate the gradient; huber is quadratic for residuals "
        "below delta and linear beyond, so outliers pull with bounded force",
        f"delta = {HUBER_K} x robust sigma ({_round(sigma)}) = {delta}"
        + ("" if from_fit else "; the targets' spread bounds the residual scale from above, so lower delta "
           "if the model explains most of the variance"),
    ]
    spread_note = _scale_spread_note(columns, sigmas, "huber")
    if spread_note:
        reasons.append(spread_note)
    adaptive: dict[str, Any] = {"name": "adaptive", "learn_alpha": True, "learn_scale": True,
                                "scale": _round(sigma, 3)}
    if spread_note:  # one learned scale and tail per column (AdaptiveLoss num_dims)
        adaptive["num_dims"] = columns.shape[1]
    alternatives = [
        Alternative(adaptive, "Barron's adaptive loss learns how heavy the tails are instead of fixing delta"
                    + (", with a scale of its own per target column" if spread_note else "")),
        Alternative({"name": "log_cosh"}, "a smooth huber-like loss with no threshold to choose (assumes "
                    "residuals of order 1)"),
    ]
    return Advice({"name": "huber", "delta": delta}, "regression", reasons, ["mae", "r2", "mse"], evidence,
                  alternatives, "outliers inflate mse on held-out data whatever the model does: watch mae")


# --------------------------------------------------------------------------- classification


def _labels(y: np.ndarray, task: str) -> np.ndarray:
    labels = y.reshape(len(y)) if y.ndim == 2 and y.shape[1] == 1 else y
    if labels.ndim != 1:
        raise DataError(f"{task} targets must be one label per sample; got shape {y.shape}")
    if not np.all(np.mod(labels, 1) == 0) or labels.min() < 0:
        raise DataError(f"{task} targets must be non-negative integer class labels; got values like "
                        f"{labels[(np.mod(labels, 1) != 0) | (labels < 0)][0]:g}")
    return labels.astype(np.int64)


def _class_label(index: int, class_names: list[str] | None) -> str:
    """``class 0`` or, with names, ``class 0 ('fraud')``."""
    named = class_names is not None and index < len(class_names)
    return f"class {index}" + (f" ({class_names[index]!r})" if named else "")


def _advise_binary(y: np.ndarray, class_names: list[str] | None = None) -> Advice:
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
                   f"{MINORITY_FRACTION:.0%}): plain bce on logits, the Bernoulli maximum-likelihood loss"]
        return Advice({"name": "bce"}, "binary", reasons, ["accuracy", "f1", "roc_auc"], evidence,
                      metrics_reason="with balanced classes accuracy is meaningful; roc_auc ranks "
                      "independently of the 0.5 threshold")
    pos_weight = _round(n_neg / n_pos, 4)
    evidence["pos_weight"] = pos_weight
    alpha = FOCAL_RARE_ALPHA if minority_class == 1 else 1.0 - FOCAL_RARE_ALPHA
    reasons = [
        f"{_class_label(minority_class, class_names)} is only {minority:.1%} of {n} targets ({min(n_pos, n_neg)} "
        "samples)",
        f"pos_weight = n_neg / n_pos = {n_neg} / {n_pos} = {pos_weight} gives both classes equal total "
        "weight in bce, so the rare class is not ignored: its recall rises over plain bce's",
    ]
    alternatives = [Alternative(
        {"name": "focal", "gamma": FOCAL_GAMMA, "alpha": alpha},
        f"focal loss as Lin et al. (2017) tuned it: gamma = {FOCAL_GAMMA:g} with alpha = {FOCAL_RARE_ALPHA} on "
        f"the rare class (alpha weights label 1, so alpha = {alpha}); gamma down-weights the many easy "
        "examples, which can sharpen the ranking (watch average_precision), but it does not move the 0.5 "
        "decision threshold toward the rare class as pos_weight does: choose a threshold on held-out rows "
        "('trainlab predict RUN rows.csv --proba', then --threshold P)")]
    misleading = f"accuracy is misleading: always predicting class {1 - minority_class} scores {1 - minority:.1%}"
    if minority_class == 1:
        metrics = ["f1", "recall", "precision", "average_precision"]
        metrics_reason = f"{misleading}; f1, recall and precision of class 1 and average precision show the rare class"
    else:  # precision, recall, f1 and average_precision are of class 1: here the majority
        metrics = ["f1_macro", "balanced_accuracy", "recall_per_class", "f1_per_class"]
        metrics_reason = (f"{misleading}; the rare class is {_class_label(0, class_names)}, but f1, recall, "
                          f"precision and average_precision are of {_class_label(1, class_names)}, the majority: "
                          "macro f1, balanced accuracy and the per-class recall and f1 (class 0 first) show the "
                          f"rare class (or {choose_positive(binary_names(class_names)[0])} to make the rare class 1)")
    return Advice({"name": "bce", "pos_weight": pos_weight}, "binary", reasons, metrics, evidence, alternatives,
                  metrics_reason)


def _advise_multiclass(y: np.ndarray, num_classes: int = 0) -> Advice:
    """``num_classes``: the classes the data names (its class names), some maybe with no training row; else the
    largest label + 1."""
    labels = _labels(y, "multiclass")
    counts = np.bincount(labels, minlength=num_classes)
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
                   "plain cross_entropy, the categorical maximum-likelihood loss", *notes]
        return Advice({"name": "cross_entropy"}, "multiclass", reasons, ["accuracy", "f1_macro"], evidence,
                      metrics_reason="classes are balanced enough for accuracy; macro f1 weighs every class alike")
    # n / (K n_k) over the K classes with rows: their mean over the training rows is 1; a class with none gets 1
    weights = np.where(counts > 0, n / (len(present) * np.maximum(counts, 1)), 1.0)
    class_weights = [_round(w, 4) for w in weights]
    evidence["class_weights"] = class_weights
    common = [
        f"{num_classes} classes, the largest outnumbers the smallest {ratio:.1f} to 1 "
        f"(smallest class {present.min() / n:.1%} of {n})",
        "class weights n / (K n_k) (inverse frequency; their mean over the training rows is 1) give every class "
        "equal total weight",
        *notes,
    ]
    metrics = ["balanced_accuracy", "f1_macro", "recall_per_class", "accuracy"]
    metrics_reason = ("accuracy hides the rare classes; balanced accuracy and per-class recall show them; "
                      "the weights trade the rare classes' precision for their recall, so macro f1 can fall "
                      "below plain cross_entropy's (4 classes at 47 to 1, 5 seeds: balanced accuracy 0.813 vs "
                      "0.797, macro f1 0.692 vs 0.860): drop the weights if precision matters more")
    focal = {"name": "focal", "gamma": FOCAL_GAMMA, "alpha": class_weights}
    return Advice({"name": "cross_entropy", "class_weights": class_weights}, "multiclass", common, metrics,
                  evidence, [Alternative(focal, "focal loss (gamma = 2) also down-weights the many easy examples; "
                                         "its alpha here is a per-class weight (the paper's alpha is binary); on 4 "
                                         "classes at 47 to 1 it did no better (balanced accuracy 0.791, macro f1 "
                                         "0.652 over 5 seeds): compare it on your data")], metrics_reason)


def _advise_multilabel(y: np.ndarray, label_names: list[str] | None = None) -> Advice:
    if y.ndim != 2 or not np.isin(y, (0, 1)).all():
        raise DataError(f"multilabel targets must be a 2-D array of 0/1; got shape {y.shape}")
    n, num_labels = y.shape
    positives = y.sum(0).astype(np.int64)
    fractions = positives / n
    evidence = {"n": n, "num_labels": num_labels, "positives_per_label": positives.tolist(),
                "positive_fraction": [_round(f) for f in fractions]}
    never = np.flatnonzero(positives == 0).tolist()
    reasons = [f"{num_labels} independent 0/1 labels per sample: bce on one logit per label (a sigmoid each, "
               "not a softmax over labels)"]
    if never:
        named = [label_names[i] if label_names and i < len(label_names) else i for i in never]
        reasons.append(f"labels {named} are never positive in the targets (pos_weight 1)")
    metrics = ["f1_macro", "f1_micro", "hamming_accuracy", "subset_accuracy"]
    metrics_reason = ("macro f1 weighs every label alike, micro f1 every decision; hamming accuracy counts right "
                      "(sample, label) decisions, subset accuracy whole samples")
    rare = (fractions < MINORITY_FRACTION) & (positives > 0)
    if not rare.any():
        return Advice({"name": "bce"}, "multilabel", reasons, metrics, evidence, metrics_reason=metrics_reason)
    pos_weight = [_round((n - p) / p, 4) if p > 0 else 1.0 for p in positives]
    evidence["pos_weight"] = pos_weight
    reasons.append(f"{int(rare.sum())} of {num_labels} labels are positive in under {MINORITY_FRACTION:.0%} of "
                   "samples: per-label pos_weight = n_neg / n_pos gives each label's classes equal total weight")
    alternatives = [Alternative({"name": "focal", "gamma": FOCAL_GAMMA, "alpha": FOCAL_RARE_ALPHA},
                                "focal loss per label as Lin et al. (2017) tuned it (gamma = 2, alpha = 0.25 on "
                                "the positive, usually rare, label value)")]
    return Advice({"name": "bce", "pos_weight": pos_weight}, "multilabel", reasons, metrics, evidence,
                  alternatives, metrics_reason)


# --------------------------------------------------------------------------- entry points


def advise(y: np.ndarray, task: str, extras: dict[str, Any] | None = None, x: np.ndarray | None = None,
           class_names: list[str] | None = None, num_classes: int | None = None) -> Advice:
    """Recommend a loss for training targets ``y`` (rows are samples) of a known task.

    Args:
        y: the training targets: (N,) labels or values, (N, d) values, or (N, L) 0/1 labels.
        task: "regression", "binary", "multiclass" or "multilabel" (``Dataset.task``).
        extras: the dataset's facts (``Dataset.extras``); ``target_kind: count`` marks counts.
        x: the training features (``Dataset.train.x``); a numeric (N, d) table lets the regression
            rule measure tails on least-squares residuals instead of the targets' spread.
        class_names: the classes' names (``Dataset.class_names``), to name them in the advice.
        num_classes: the task's classes (``Dataset.num_classes``), some maybe with no training row (the model
            outputs one score each, so a multiclass loss takes one weight each); default: the class names', else
            the largest label + 1.

    Returns:
        :class:`Advice` whose ``loss`` is a spec for :func:`trainlab.losses.build_loss`.

    Raises:
        ConfigError: unknown ``task``. DataError: empty or non-finite targets, labels that do not fit the task.
    """
    if task not in TASKS:
        raise ConfigError(f"advise task must be one of {', '.join(TASKS)}; got {task!r}")
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
    marked_count = (extras or {}).get("target_kind") == "count"
    if task == "regression":
        if counts_as_given(y, extras):
            return _advise_count(y, marked_count)
        advice = _advise_regression(y, x)
        if marked_count and not _whole_and_non_negative(y):  # z-scores of counts (too few values: no note)
            advice.reasons.insert(0, _no_longer_counts(y))
        if scale_note := off_scale_note(y):  # and the loss's numbers for the targets it says to standardise
            advice.reasons.append(scale_note + standardised_numbers(advice, _advise_regression(standardised(y), x)))
        column = y.reshape(len(y), -1)
        if column.shape[1] == 1 and numbered_from_one(column[:, 0]):
            k = int(column.max())
            advice.alternatives.insert(0, Alternative({"name": "cross_entropy"}, (
                f"the targets are the whole numbers 1..{k}: if they are class labels, set data.task: multiclass "
                f"(read as {k} classes named 1..{k}) and use cross_entropy")))
        return advice
    if task == "binary":
        return _advise_binary(y, class_names)
    if task == "multiclass":
        advice = _advise_multiclass(y, num_classes or (len(class_names) if class_names else 0))
        numbered = class_names is None or class_names == [str(k) for k in range(len(class_names))]
        if numbered and y.ndim == 1 and _falls_off_like_counts(np.bincount(_labels(y, "multiclass")), len(y)):
            k = int(y.max())
            advice.alternatives.insert(0, Alternative({"name": "poisson_nll"}, (
                f"the labels 0..{k} fall off as counts of events do (the largest the rarest): if they are counts, "
                "set data.task: regression and use poisson_nll, which predicts a rate")))
        return advice
    return _advise_multilabel(y, class_names)


def _falls_off_like_counts(counts: np.ndarray, rows: int) -> bool:
    """Whether class counts of labels 0..K-1 (K >= 6) fall off like those of event counts: never rising after
    the commonest label, the last one below ``1 / (5 K)`` of the rows (the share classes in use keep,
    :func:`~trainlab.data.dataset.infer_task`). Poisson(1.5)'s 0..7 do; balanced classes, ratings whose top
    grade is common, and a few classes numbered by their frequency (a normal class 0 and three rarer) do not."""
    k = len(counts)
    tail = counts[int(np.argmax(counts)):]
    return k >= 6 and bool(np.all(np.diff(tail) <= 0)) and len(tail) >= 3 and bool(counts[-1] < rows / (5 * k))


def format_advice(advice: Advice, task_source: str = "from the data") -> str:
    """A short report: the loss spec and why, the metrics to watch and why, alternatives and the evidence.

    ``task_source`` says where the task came from: "from the data", or "set by data.task" when the config set it.
    """
    def spec(loss: dict[str, Any]) -> str:
        options = ", ".join(f"{k}={v}" for k, v in loss.items() if k != "name")
        return loss["name"] + (f" ({options})" if options else "")

    lines = [f"task:    {advice.task} ({task_source})", f"loss:    {spec(advice.loss)}", "why:"]
    lines += [f"  - {reason}" for reason in advice.reasons]
    lines.append(f"watch:   {', '.join(advice.metrics)}")
    if advice.metrics_reason:
        lines.append(f"  - {advice.metrics_reason}")
    for alternative in advice.alternatives:
        lines.append(f"also try: {spec(alternative.loss)}")
        lines.append(f"  - {alternative.reason}")
    lines.append("evidence: " + ", ".join(f"{k}={v}" for k, v in advice.evidence.items()))
    return "\n".join(lines)
