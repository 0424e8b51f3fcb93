"""The statistics behind ``trainlab compare``: pure functions of lists of numbers.

Each function names its method; each is tested against scipy.stats (or statsmodels)
recomputed independently in tests/test_compare.py and tests/test_compare_degenerate.py. Conventions:

* ``values`` are one number per seed; ``None`` and non-finite values are the caller's
  business (the leaderboard passes only finished runs).
* "higher is better" throughout: for a metric whose direction is ``min`` the caller
  passes ``better=False`` (or negates the values), never a hidden name rule.
* Degenerate inputs give defined answers, never NaN: identical samples have p = 1.
* A difference that does not vary over the seeds has no spread for a t test to measure (its t is
  infinite, its p 0: certainty no data gives): it gets the exact (distribution-free) test's p instead,
  ``2 ** (1 - n)`` for n non-zero paired differences (the sign test), ``2 / C(n + m, n)`` for two
  constant unpaired samples (the exact Mann-Whitney test). Two seeds a test row apart are not "worse"
  (p = 0.5); a difference that varies keeps its t test's p.
* "Equal" means equal within ``TIE`` relative to the values' scale (:func:`tolerance`), so
  float round-off is no effect, whatever the metric's units (an MSE of 1e-13 as much as 1e3).

References: Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"
(IQM, stratified bootstrap, probability of improvement); Holm 1979; Dolan & Moré 2002
and the AlgoPerf benchmark (Dahl et al. 2023) for performance profiles.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# relative: two values closer than TIE x the larger magnitude of the two are round-off. The metrics are float32
# computations (float32's epsilon is 1.2e-7: a seed-independent run's test loss summed in another order moves by
# an ulp or more, 0.32209351658821106 against 0.32209354639053345), so a tie is within a few float32 ulps of the
# values compared; the float64 arithmetic of the statistics (0.8 - 0.7 != 0.9 - 0.8) is far inside that
TIE = 5e-7
# From this many paired seeds the signed-rank test (exact, no normality assumption) replaces paired t. A
# convention, not a limit of the test: its smallest p, 2 ** (1 - n), is 0.002 at 10 pairs and survives Holm
# over up to 25 strategies, so giving up normality costs little there (at 9 pairs, 0.0039: up to 12).
WILCOXON_MIN_PAIRS = 10


def _array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def tolerance(*samples: np.ndarray) -> float:
    """The largest difference between values of ``samples`` that is float round-off: ``TIE`` times
    the largest magnitude among them (0 when every value is 0, so only exact equality ties there). For
    the values of one sample (are they one value?); two samples are compared pair by pair
    (:func:`pair_tolerance`), so that one seed's outlier (a loss of 2e5) does not make the other seeds'
    differences round-off.

    Relative, not absolute: metrics come in their data's units (an MSE of 1e-13 or of 1e6), and
    round-off scales with the values (a few float32 ulps, about 1.2e-7 x |value| each).
    """
    scale = max((float(np.max(np.abs(x))) for x in samples if np.size(x)), default=0.0)
    return TIE * scale


def pair_tolerance(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """The round-off of ``a - b``, elementwise (broadcast): ``TIE`` times the larger of ``|a|`` and ``|b|``."""
    return TIE * np.maximum(np.abs(a), np.abs(b))


def tied(a: float, b: float) -> bool:
    """``a`` and ``b`` are equal within :func:`pair_tolerance` (round-off, not a difference)."""
    return abs(a - b) <= float(pair_tolerance(a, b))


# --------------------------------------------------------------------------- one sample

def tied_value(values: Sequence[float]) -> float | None:
    """The one value every one of ``values`` is, within :func:`tolerance` (round-off), else None (and for no
    values): the lower middle of the sorted values, one of them, whatever their order. Its statistics are
    that value exactly, with no spread: a seed-independent run's mean summed in float arithmetic is off in
    its last bit (0.8412256267409471 for three 0.841225626740947) and its std round-off (1.4e-16)."""
    x = np.sort(_array(values))
    if x.size == 0 or float(x[-1] - x[0]) > tolerance(x):
        return None
    return float(x[(x.size - 1) // 2])


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, sample std (ddof=1; None for n < 2), median, min and max. Values all equal within
    :func:`tolerance` (:func:`tied_value` ``v``) have mean and median ``v`` exactly and std 0."""
    x = _array(values)
    if x.size == 0:
        return {"n": 0, "mean": None, "std": None, "median": None, "min": None, "max": None}
    tied_to = tied_value(x)
    if tied_to is None:
        mean, std, median = float(x.mean()), float(x.std(ddof=1)), float(np.median(x))
    else:
        mean, std, median = tied_to, 0.0, tied_to
    return {"n": int(x.size), "mean": mean, "std": std if x.size > 1 else None, "median": median,
            "min": float(x.min()), "max": float(x.max())}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean: ``mean ± t_{(1+c)/2, n-1} * s / sqrt(n)``.

    None for n < 2 (no spread to estimate); ``(v, v)`` when every value is ``v`` within :func:`tolerance`
    (:func:`tied_value`), not ``v`` ± a round-off half-width.
    """
    x = _array(values)
    if x.size < 2:
        return None
    tied_to = tied_value(x)
    if tied_to is not None:
        return tied_to, tied_to
    mean, sem = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(stats.t.ppf((1 + confidence) / 2, df=x.size - 1)) * sem
    return mean - half, mean + half


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50 % (``scipy.stats.trim_mean(x, 0.25)``, as rliable); values
    all equal within :func:`tolerance` give that value exactly (:func:`tied_value`), as the mean does."""
    tied_to = tied_value(values)
    return float(stats.trim_mean(_array(values), 0.25)) if tied_to is None else tied_to


def bootstrap_interval(values: Sequence[float], statistic: str = "iqm", confidence: float = CONFIDENCE,
                       n_resamples: int = 2000, seed: int = 0) -> tuple[tuple[float, float] | None, str]:
    """Bootstrap CI of the mean or the IQM with ``scipy.stats.bootstrap``; returns (interval, method).

    BCa (bias-corrected and accelerated) first; where BCa is undefined (its
    acceleration needs spread in the jackknife, so few or tied values give NaN) the
    percentile interval is used instead. The method actually used is returned as
    ``"bootstrap-bca"`` or ``"bootstrap-percentile"``. Fixed ``seed``: the same runs give
    the same interval. None for n < 2; ``(v, v)`` when every value is ``v`` within :func:`tolerance`
    (:func:`tied_value`): the percentile interval (every resample's statistic is ``v``; BCa's acceleration
    is 0/0 there).
    """
    x = _array(values)
    if x.size < 2:
        return None, "bootstrap-bca"
    tied_to = tied_value(x)
    if tied_to is not None:
        return (tied_to, tied_to), "bootstrap-percentile"
    function = {"iqm": lambda s, axis: stats.trim_mean(s, 0.25, axis=axis),
                "mean": lambda s, axis: np.mean(s, axis=axis)}[statistic]
    for method in ("BCa", "percentile"):
        # scipy warns when BCa degenerates; the percentile fallback below handles that case
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap((x,), function, confidence_level=confidence, n_resamples=n_resamples,
                                     method=method, rng=np.random.default_rng(seed), vectorized=True)
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return (low, high), f"bootstrap-{method.lower()}"
    return None, "bootstrap-percentile"


# --------------------------------------------------------------------------- two samples

@dataclass(frozen=True)
class TestResult:
    """A test's name, its two-sided p and the side the data lie on: ``sign`` is +1 when x is
    larger than y by the test's own measure (the mean difference for the t tests, the signed-rank
    sum for Wilcoxon), -1 when smaller, 0 when neither (then p = 1)."""

    test: str  # "paired-t" | "wilcoxon" | "welch", or the exact test that stood in: "sign" | "mann-whitney"
    p: float
    sign: int = 0


def _sign(value: float) -> int:
    return 1 if value > 0 else -1 if value < 0 else 0


def sign_flip_floor(n_nonzero: int) -> float:
    """``2 ** (1 - n)``: the smallest two-sided p of any exact sign-flip test of n non-zero paired
    differences (sign test, exact signed-rank, Fisher's permutation test): each of the 2 ** n sign
    patterns is equally likely under the null, and the most extreme one and its mirror image are 2 of them.
    It is the exact sign test's p (``scipy.stats.binomtest(n, n)``) when every difference has one sign."""
    return float(2.0 ** (1 - n_nonzero))


def rank_sum_floor(n: int, m: int) -> float:
    """``2 / C(n + m, n)``: the smallest two-sided p of an exact two-sample permutation test of n and m
    values, the exact Mann-Whitney p of two completely separated samples (the observed split and its
    mirror image among the C(n + m, n) equally likely ones)."""
    return min(1.0, 2.0 / math.comb(n + m, n))


def signed_rank_test(differences: np.ndarray) -> tuple[float, float]:
    """Exact two-sided Wilcoxon signed-rank test of non-zero ``differences``, ties included; returns
    (p, W+ - W-).

    Ranks of ``|d|`` with ties given their mean rank; under the null each sign is + or - with
    probability 1/2 independently, so ``W+`` is distributed as the sum of a fair-coin subset of those
    ranks. That distribution is built exactly (doubled mean ranks are integers; one convolution per
    difference, so any n), and p = ``min(1, 2 min(P(W+ >= w), P(W+ <= w)))``. It equals
    ``scipy.stats.permutation_test`` of W+ over all 2 ** n sign flips, and ``scipy.stats.wilcoxon(method=
    "exact")`` where no ranks tie; scipy's own default uses its normal approximation for more than 13
    differences with ties, and accuracies on one split tie often.
    """
    ranks2 = np.rint(2 * stats.rankdata(np.abs(differences))).astype(int)  # mean ranks are k/2
    observed = int(ranks2[differences > 0].sum())
    distribution = np.zeros(int(ranks2.sum()) + 1)
    distribution[0] = 1.0
    for rank in ranks2:  # W+ gains this rank or not, each with probability 1/2
        shifted = np.zeros_like(distribution)
        shifted[rank:] = distribution[:-rank]
        distribution = 0.5 * (distribution + shifted)
    upper, lower = float(distribution[observed:].sum()), float(distribution[:observed + 1].sum())
    return min(1.0, 2.0 * min(upper, lower)), float(2 * observed - ranks2.sum()) / 2


def paired_test(x: Sequence[float], y: Sequence[float]) -> TestResult | None:
    """Two-sided test of a zero mean (median) difference over paired seeds.

    Rule: paired t (``scipy.stats.ttest_rel``) for 2 <= n < ``WILCOXON_MIN_PAIRS`` pairs, the exact
    Wilcoxon signed-rank test (:func:`signed_rank_test`) from there. None for n < 2.

    Differences within :func:`pair_tolerance` of 0 are 0 (round-off); the signed-rank test drops them, so
    its n is the number of non-zero differences, which can be below ``WILCOXON_MIN_PAIRS``.
    All differences 0 -> p = 1.

    A difference that is the same non-zero number on every seed gets :func:`sign_flip_floor` of the
    non-zero differences, the exact sign test's p (``scipy.stats.binomtest(n, n)``), not the t test's
    limit p = 0: a constant difference has no spread to test, which happens whenever the seed barely
    changes a model and the metric moves in steps (accuracy: one test row). A difference that varies
    keeps the t test's p (its normality assumption; with under 10 pairs nothing better is testable).
    """
    a, b = _array(x), _array(y)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths; got {a.size} and {b.size}")
    n = a.size
    if n < 2:
        return None
    tie = pair_tolerance(a, b)
    difference = a - b
    difference[np.abs(difference) <= tie] = 0.0
    name = "wilcoxon" if n >= WILCOXON_MIN_PAIRS else "paired-t"
    nonzero = difference[difference != 0.0]
    if nonzero.size == 0:
        return TestResult(name, 1.0, 0)
    floor = sign_flip_floor(nonzero.size)
    if name == "wilcoxon":  # exact, so never below the floor: one-signed differences get exactly it
        p, signed = signed_rank_test(nonzero)
        return TestResult(name, p, _sign(signed))
    # the same non-zero number on every seed (each pair within its own round-off of the first): t = infinity
    if nonzero.size == n and bool(np.all(np.abs(difference - difference[0]) <= np.maximum(tie, tie[0]))):
        return TestResult("sign", floor, _sign(float(difference[0])))  # named as the test whose p it is
    return TestResult(name, float(stats.ttest_1samp(difference, 0.0).pvalue), _sign(float(difference.mean())))


def welch_test(x: Sequence[float], y: Sequence[float]) -> TestResult | None:
    """Welch's unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``), two-sided.

    None unless each sample has >= 2 values. Both samples constant (each within its :func:`tolerance`): p = 1
    when equal, else :func:`rank_sum_floor`, the exact Mann-Whitney p of two separated samples, as
    :func:`paired_test` gives a constant difference the sign test's (Welch's own limit as both spreads
    vanish is p = 0): 2 / C(4, 2) = 1/3 for two seeds each.
    """
    a, b = _array(x), _array(y)
    if a.size < 2 or b.size < 2:
        return None
    difference = float(a.mean() - b.mean())
    if np.ptp(a) <= tolerance(a) and np.ptp(b) <= tolerance(b):
        if tied(float(a.mean()), float(b.mean())):
            return TestResult("welch", 1.0, 0)
        return TestResult("mann-whitney", rank_sum_floor(a.size, b.size), _sign(difference))
    return TestResult("welch", float(stats.ttest_ind(a, b, equal_var=False).pvalue), _sign(difference))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family-wise error), None entries passed through.

    Sort the m p-values ascending, ``p_(i) * (m - i + 1)`` (i from 1), take the running
    maximum so the order is kept, cap at 1. Equals statsmodels' ``multipletests(method="holm")``.
    """
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(present)):
        running = max(running, min(1.0, p * (m - rank)))
        adjusted[index] = running
    return adjusted


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float | None:
    """P(X > Y) + P(X = Y) / 2 over all pairs: the Mann-Whitney U of x over n*m (rliable).

    Higher values are better; negate both samples for a metric to minimise. Values within
    :func:`pair_tolerance` of each other are a tie (round-off is no win), as in the tests and the ranking.
    None when either sample is empty.
    """
    a, b = _array(x), _array(y)
    if a.size == 0 or b.size == 0:
        return None
    difference = a[:, None] - b[None, :]
    tie = pair_tolerance(a[:, None], b[None, :])
    greater = (difference > tie).sum()
    ties = (np.abs(difference) <= tie).sum()
    return float((greater + 0.5 * ties) / (a.size * b.size))


# --------------------------------------------------------------------------- curves and times

def median_time(times: Sequence[float | None]) -> float | None:
    """Median with a miss (None) counted as infinite time (AlgoPerf); None if the median is infinite."""
    if not times:
        return None
    x = np.array([math.inf if t is None else float(t) for t in times])
    middle = float(np.median(x))  # numpy orders inf last: a majority of misses gives inf
    return None if math.isinf(middle) else middle


def curve_mean(epochs: Sequence[float], values: Sequence[float]) -> float | None:
    """Area under a curve by the trapezoid rule divided by its span: the curve's mean height.

    Dividing by the span makes runs of different lengths comparable. One point: its value.
    """
    x, y = _array(epochs), _array(values)
    if x.size == 0:
        return None
    if x.size == 1 or x[-1] == x[0]:
        return float(y[0])
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return area / float(x[-1] - x[0])


def performance_profile(times: dict[str, list[float | None]], tau_max: float = 4.0,
                        points: int = 25) -> dict[str, object]:
    """Dolan-Moré performance profile in AlgoPerf's form.

    ``times[s][p]`` is strategy s's time on task p (None: target not reached = infinite).
    Ratio ``r[s,p] = t[s,p] / min_s t[s,p]`` (infinite where s missed or no strategy reached
    the target on p); ``rho_s(tau)`` = fraction of tasks with ``r[s,p] <= tau``, for tau on
    a log grid from 1 to ``tau_max``. Also the geometric mean of each strategy's ratios
    (None where any ratio is infinite).
    """
    names = list(times)
    table = np.array([[math.inf if t is None else float(t) for t in times[s]] for s in names], dtype=float)
    best = table.min(axis=0) if table.size else np.array([])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(np.isfinite(best)[None, :] & np.isfinite(table), table / best[None, :], math.inf)
    taus = np.exp(np.linspace(0.0, math.log(tau_max), points))
    tasks = max(table.shape[1], 1) if table.ndim == 2 else 1
    profile = {s: [float((ratios[i] <= tau).sum() / tasks) for tau in taus] for i, s in enumerate(names)}
    geomean = {}
    for i, s in enumerate(names):
        row = ratios[i]
        geomean[s] = float(np.exp(np.log(row).mean())) if row.size and np.all(np.isfinite(row)) else None
    return {"taus": [float(t) for t in taus], "rho": profile, "geomean_ratio": geomean,
            "ratios": {s: [None if math.isinf(r) else float(r) for r in ratios[i]] for i, s in enumerate(names)}}
