"""The LR range test: sweep the LR exponentially over a few steps and suggest one.

Train for ``num_steps`` steps while the LR grows from ``start_lr`` to ``end_lr``
(:func:`lr_sweep`), record the loss of each step, and stop once the loss
diverges. :func:`suggest_lr` then picks the LR where the smoothed loss falls
fastest per unit of log LR, at most a tenth of the LR where the raw loss
starts to rise (the smoothed loss lags it). The model and optimizer are restored exactly
afterwards, so the test leaves no trace on the run that follows.

The suggestion's ceiling (:func:`suggest_lr`: at most lr_rise / 10), measured on 130
sweeps of 100 steps (digits, iris, wine, breast_cancer, diabetes standardised; MLP [64]; SGD momentum
0.9, SGD, Adam; batch 8, 32, full; seeds 0-2), each suggestion trained (cosine, 5/10/150 epochs at
batch 8/32/full) beside a constant-lr grid 1e-4..3 in half-decades; "too high/low": diverged or val
loss > 3x the grid's best + 0.3, above/below its best lr; "lr / best": median ratio to the grid's best
lr; "margin < 3": a blown-up lr lies within 3x above the suggestion; lr_min: the centred mean's minimum::

    rule                            too high (diverged)  too low  lr / best  within 3x  margin < 3
    steepest of the EMA (before)         17 (9)             0       0.74        55          27
    steepest of the centred mean          2 (0)            10       0.14        39          11
    min(before, lr_min / 3)               2 (0)             0       0.35        56           7
    min(before, lr_min / 5)               0                 0       0.24        46           5
    min(before, lr_min / 10)              0                 7       0.13        36           1
    min(before, lr_rise / 5)              1 (0)             0       0.35        60           6
    min(before, lr_rise / 10) (this)      0                 2       0.18        40           1

The 17 were 15 digits sweeps (every optimizer at batch 8; momentum and SGD at 32) and SGD at batch 8
on breast_cancer and wine. Too low are iris (105 rows: 20 to 70 steps a run, too few at those lrs),
as the divisor 10 trades some speed in short runs for a margin of >= 2x to the nearest lr that blew
up (/5: 1.2x on digits with momentum at batch 8, seed 1). There, over 40 epochs, the suggestions (0.012
to 0.018) train; 0.0955 to 0.167 diverged.

References: Smith, "Cyclical Learning Rates for Training Neural Networks", 2017;
fastai ``lr_find`` (smoothed loss with bias correction, stop at 4x the minimum).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.engine.state import TrainState
from trainlab.errors import ConfigError, DataError, TrainingError
from trainlab.finetune import frozen_by_finetune, frozen_norms_to_eval, split_backbone_head
from trainlab.optim import build_optimizer, default_lr, requires_closure, set_train_mode

DIVERGENCE_FACTOR = 4.0  # the sweep is over once the smoothed loss exceeds 4x its minimum (fastai)
WINDOW_DECADES = 3  # candidates lie at most this many decades of LR below the smoothed loss's minimum
TREND_P = 0.01  # a descent: the losses before the minimum fall (Kendall's tau, one-sided) at this p ...
NEAR_MIN, SHIFT_P = 10, 0.001  # ... or the 10 losses ending at it lie below the skipped first ones (Mann-Whitney)
# the shortest sweep whose warm-up (a tenth: warmup_steps) has the 3 points the noise test (_check_descent) needs
# as its baseline; shorter sweeps suggested their end LR (3 steps: lr 10) or one that diverged (5 steps: 0.1)
MIN_SWEEP_STEPS = 30
MAX_LR_FIND_STEPS = 100_000  # trainlab lr-find --steps: one training step each, more is a typo, not a sweep
# a sweep that shows no descent within its noise is worth one of this many times its steps: the same LR span
# in 3x the points gives the trend test 3x the losses (make_classification 92/8 with bce pos_weight 10.7: 100
# steps showed no descent at trend p = 0.025, 150 to 400 steps suggested 0.04 to 0.22)
LONGER_SWEEP_FACTOR = 3
AUTO_SWEEP_STEPS = 100  # lr: auto's first sweep (trainlab.step_builders.resolve_auto_lr), as lr-find's default
LONGEST_SWEEP_EPOCHS = 20  # ... and at most this many passes over the training rows (few rows: mostly repeats)
# the suggestion is at most a tenth of the LR where the raw loss starts to rise (as fastai's lr_min / 10): the EMA's
# steepest fall lags past it (the module docstring has the evidence). That LR is read on a centred mean of the raw losses
# (half-width 1/20 of the sweep): the last one from its minimum on within 20% of its fall above that minimum
SAFETY_FACTOR = 10
CENTRED_WINDOW_DIVISOR = 20
RISE_TOLERANCE = 0.2


class NoDescentError(TrainingError):
    """The range test's losses show no descent a test can tell from their noise (:func:`_check_descent`):
    a longer sweep may show one (``lr: auto`` runs one, ``trainlab lr-find --steps`` takes one)."""


def longer_sweep_steps(steps: int, steps_per_epoch: int) -> int:
    """The steps of a second sweep after one of ``steps`` showed no descent within its noise (``lr: auto``
    runs it): :data:`LONGER_SWEEP_FACTOR` x ``steps``, capped by what the data allows, at most
    :data:`LONGEST_SWEEP_EPOCHS` passes over the training rows (``steps_per_epoch`` steps each); ``steps``
    itself (no second sweep) where that cap leaves no more.

    >>> longer_sweep_steps(100, 15), longer_sweep_steps(100, 8), longer_sweep_steps(100, 2)
    (300, 160, 100)
    """
    return max(steps, min(LONGER_SWEEP_FACTOR * steps, LONGEST_SWEEP_EPOCHS * steps_per_epoch))


def check_lr_searchable(spec: dict[str, Any]) -> None:
    """ConfigError unless optimizer ``spec`` (``{"name": ..., **kwargs}``) accepts lrs other than its own
    default, as the range test's sweep from 1e-7 to 10 sets them: ``adadelta_zeiler`` has no learning rate
    (Zeiler 2012) and its factory refuses every lr but 1.0, so ``lr: auto`` would fail mid-build with the
    sweep's start lr named as the user's. Tested by building the optimizer over one throw-away weight at its
    default lr (which must build) and at a tenth of it (the sweep's kind of value)."""
    default = default_lr(spec["name"])
    if default is None or default <= 0:
        return
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2, 2))], "group": "decay"}]
    try:
        build_optimizer({**spec, "lr": default}, groups)
    except Exception:  # noqa: BLE001  (refused for another reason: the run's own build names it)
        return
    try:
        build_optimizer({**spec, "lr": default / 10}, groups)
    except (ValueError, TypeError, ConfigError) as exc:
        why = str(exc).strip().splitlines()[0].split(" Received:")[0].rstrip(". ")
        why = why.removeprefix(f"optimizer '{spec['name']}': ")  # the registry's prefix: named below
        raise ConfigError(f"strategy.optimizer.lr: auto cannot be used with optimizer '{spec['name']}': the LR range "
                          f"test sweeps the lr from 1e-7 to 10, and this optimizer takes no lr but {default:g} "
                          f"({why}); remove lr: auto (lr {default:g} is its default)") from None


def warmup_steps(num_steps: int) -> int:
    """The sweep's first ``num_steps // 10`` steps: no minimum, no divergence, no candidate (fastai drops as many)."""
    return num_steps // 10


def lr_sweep(start_lr: float, end_lr: float, num_steps: int) -> list[float]:
    """lr_i = start * (end / start) ** (i / (n - 1)) for i in [0, n): evenly spaced in log LR, both ends included.

    >>> [f"{lr:.0e}" for lr in lr_sweep(1e-4, 1e-1, 4)]
    ['1e-04', '1e-03', '1e-02', '1e-01']
    """
    if not (isinstance(start_lr, numbers.Real) and isinstance(end_lr, numbers.Real)
            and 0 < start_lr < end_lr and math.isfinite(end_lr)):
        raise ValueError(f"need 0 < start_lr < end_lr (finite); got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if not (isinstance(num_steps, numbers.Integral) and num_steps >= 2):
        raise ValueError(f"num_steps must be an integer >= 2; got {num_steps!r}")
    # in log space: end / start overflows to inf for 1e-300..1e300, both ends finite
    low, span = math.log(start_lr), math.log(end_lr) - math.log(start_lr)
    lrs = [math.exp(low + span * i / (num_steps - 1)) for i in range(num_steps)]
    lrs[0], lrs[-1] = float(start_lr), float(end_lr)  # exact end points despite rounding in exp
    return [float(lr) for lr in lrs]


class SmoothedLoss:
    """Exponential moving average with bias correction: s_i = a_i / (1 - beta^(i+1)), a_i = beta a_{i-1} + (1 - beta) l_i.

    ``update`` returns s_i; ``diverged`` is true once a loss is non-finite or, for i > ``warmup``,
    s_i > 4 min_{warmup <= j < i} s_j. The first ``warmup`` values average over so few batches that one
    lucky batch (a loss of 0.1 among losses near 1) would set a minimum that ordinary noise then
    "exceeds" 4x: they neither set the minimum nor count as divergence.
    """

    def __init__(self, smoothing: float = 0.98, warmup: int = 0):
        if not (isinstance(smoothing, numbers.Real) and 0 <= smoothing < 1):
            raise ValueError(f"smoothing must be in [0, 1); got {smoothing!r}")
        if not (isinstance(warmup, numbers.Integral) and warmup >= 0):
            raise ValueError(f"warmup must be an integer >= 0; got {warmup!r}")
        self.beta = float(smoothing)
        self.warmup = int(warmup)
        self.average = 0.0
        self.count = 0
        self.minimum = math.inf
        self.diverged = False

    def update(self, loss: float) -> float:
        if not math.isfinite(loss):
            self.diverged = True
            return math.nan
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta**self.count)
        if self.count > self.warmup:
            if smoothed > DIVERGENCE_FACTOR * self.minimum:
                self.diverged = True
            self.minimum = min(self.minimum, smoothed)
        return smoothed


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], smoothing: float = 0.98, *,
               skip_start: int | None = None, num_steps: int | None = None,
               auto_retry_steps: int | None = None) -> float:
    """The LR of steepest descent of the smoothed loss, argmin_i d s / d log(lr) at lr_i, but at most a
    tenth of the LR where the raw loss starts to rise: min(lr_steep, lr_rise / :data:`SAFETY_FACTOR`).

    The loss is smoothed as :class:`SmoothedLoss` with ``warmup = skip_start``; points from the first
    divergence on (a non-finite loss, or a smoothed loss above 4x its running minimum) are not
    considered. The first ``skip_start`` points (default a tenth, as fastai's ``lr_find`` drops
    ``num_it // 10``) average over so few batches that batch-to-batch noise looks like descent: they
    are never candidates (pass :func:`warmup_steps` of the sweep's planned length when it stopped
    early). The minimum of the smoothed loss is taken after them, at ``lr_min``, and the candidates
    are the points from ``max(skip_start, first lr >= lr_min / 10^3)`` up to the one before it: the
    loss of step i is taken before lr_i's update, so lr_min is the LR after which the loss rose (or the
    sweep's last LR, whose effect it never saw); past the minimum the
    sweep is in its unstable range (a recovery from a spike is not descent), and further below it a
    noisy sweep's wiggles out-steepen the descent (Friedman-1 MLPs at batch 2 to 32: a window of four
    decades picked 1e-5 to 2e-5 from noise, three decades 1e-3 to 4e-2). The price: a descent more
    than three decades below the minimum (a long plateau between) is not found. The gradient is
    ``numpy.gradient`` over log LR (central differences inside, one-sided at the ends). Losses are
    assumed >= 0, as the 4x rule needs.

    The ceiling (:func:`_rise_ceiling`, independent of ``smoothing``): the EMA (beta 0.98) lags the raw
    loss by tens of steps, several decades of a 100-step sweep, so its steepest fall can come where the raw
    loss has already bottomed out (digits, MLP [64], SGD momentum 0.9, batch 8: raw loss 2.07 -> 0.61
    between lr 0.015 and 0.138 while the EMA went 2.29 -> 2.07; suggested 0.095 to 0.17, which diverge).
    ``lr_rise`` is read without lag, on a centred mean of the raw losses (:func:`centred_mean`); the
    suggestion is the largest swept LR at most ``lr_rise / 10`` where the steepest point lies above it (as
    fastai's ``lr_min / 10``); the module docstring gives the evidence for that rule.

    Raises:
        ValueError: ``lrs`` and ``losses`` differ in length, or ``lrs`` is not positive and increasing.
        TrainingError: ``skip_start`` < 3 (a sweep shorter than :data:`MIN_SWEEP_STEPS`: the noise test
            has no baseline), fewer than ``skip_start + 3`` points before the loss diverged, or the smoothed
            loss never fell below its value at the first candidate (start lower, end higher, or take
            more steps). NoDescentError (a TrainingError): the losses show no descent a test can tell from
            noise (:func:`_check_descent`); its message names ``trainlab lr-find CONFIG --steps N``: N =
            ``auto_retry_steps`` where given (the longer sweep lr: auto runs on this data,
            :func:`longer_sweep_steps`), else :data:`LONGER_SWEEP_FACTOR` x ``num_steps`` (the planned
            length; default the longer of ``len(lrs)`` and 10 x ``skip_start``), at most :data:`MAX_LR_FIND_STEPS`.
    """
    lr_values, loss_values, skip = _sweep_arrays(lrs, losses, skip_start)
    smoothed = smoothed_until_divergence(loss_values, smoothing, skip)
    if skip < 3:
        raise TrainingError(f"an LR range test of {len(lr_values)} steps skips {skip} warm-up step(s), fewer than "
                            f"the 3 its noise test compares the descent against: sweep at least {MIN_SWEEP_STEPS} "
                            "steps (trainlab lr-find --steps)")
    if len(smoothed) - skip < 3:
        raise TrainingError(f"the LR range test has {len(smoothed)} usable step(s) before it diverged or ended "
                            f"(at lr {lr_values[len(smoothed) - 1] if smoothed else lr_values[0]:.3g}); "
                            f"need {skip + 3} ({skip} skipped + 3): start the sweep lower or take more steps "
                            "(trainlab lr-find --start-lr, --steps), or set the lr yourself")
    kept = lr_values[:len(smoothed)]
    lowest = skip + int(np.argmin(smoothed[skip:]))
    if lowest == skip:
        raise TrainingError(f"the smoothed loss never fell during the LR range test: it was lowest at its first "
                            f"counted step (lr {kept[skip]:.3g}); start the sweep lower, end it higher or take more steps "
                            "(trainlab lr-find --start-lr, --end-lr, --steps), or set the lr yourself")
    # the planned sweep: a diverged one stopped short of it, and its warm-up is a tenth of it
    planned = max(len(lr_values), 10 * skip) if num_steps is None else num_steps
    longer = (f"{auto_retry_steps}, the longer sweep lr: auto runs on this data" if auto_retry_steps
              else f"{min(LONGER_SWEEP_FACTOR * planned, MAX_LR_FIND_STEPS)}")
    # a sweep cut short by the divergence rule (a loss non-finite or past 4x its minimum) rose, whatever the test
    diverged = len(smoothed) < len(loss_values) or (num_steps is not None and len(loss_values) < num_steps)
    _check_descent(loss_values, smoothed, skip, lowest, kept, longer, diverged)
    first = max(skip, int(np.searchsorted(kept, kept[lowest] / 10.0**WINDOW_DECADES)))
    slope = np.gradient(np.asarray(smoothed), np.log(kept))
    # lr_lowest's own update is judged only by the next loss, which rose (or never came: the sweep's end):
    # candidates stop before it (first < lowest, as lowest > skip and the window reaches below lr_lowest)
    steepest = first + int(np.argmin(slope[first:lowest]))
    return float(kept[min(steepest, _rise_ceiling(loss_values[:len(kept)], kept, skip, planned))])


def _sweep_arrays(lrs: Sequence[float], losses: Sequence[float], skip_start: int | None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """(lrs, losses, skip) of :func:`suggest_lr` as float64 arrays and the warm-up to skip (default a tenth);
    ValueError for arrays of different lengths, LRs not positive and increasing, a bad ``skip_start``."""
    lr_values = np.asarray(lrs, dtype=np.float64)
    loss_values = np.asarray(losses, dtype=np.float64)
    if lr_values.ndim != 1 or lr_values.shape != loss_values.shape:
        raise ValueError(f"lrs and losses must be 1-D of equal length; got {lr_values.shape} and {loss_values.shape}")
    if np.any(lr_values <= 0) or np.any(np.diff(lr_values) <= 0):
        raise ValueError("lrs must be positive and strictly increasing (an exponential sweep)")
    skip = warmup_steps(len(lr_values)) if skip_start is None else skip_start
    if not (isinstance(skip, numbers.Integral) and skip >= 0):
        raise ValueError(f"skip_start must be an integer >= 0 or None; got {skip_start!r}")
    return lr_values, loss_values, skip


def centred_mean(values: np.ndarray, half_width: int) -> np.ndarray:
    """Zero-lag smoothing: m_i = mean(values[max(0, i - h) : i + h + 1]), the window cut at the ends.

    >>> centred_mean(np.array([4.0, 0.0, 2.0, 6.0]), 1).tolist()
    [2.0, 2.0, 2.6666666666666665, 4.0]
    """
    sums = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(len(values))
    low, high = np.maximum(index - half_width, 0), np.minimum(index + half_width + 1, len(values))
    return (sums[high] - sums[low]) / (high - low)


def _rise_ceiling(losses: np.ndarray, lrs: np.ndarray, skip: int, planned: int) -> int:
    """The index of the largest of ``lrs`` at most lr_rise / :data:`SAFETY_FACTOR`; a TrainingError when none
    is (the loss rose within a decade of the sweep's start: start it lower). It may lie in the ``skip`` first.

    lr_rise is where the loss starts to rise, read without lag: on the :func:`centred_mean` m of the kept
    raw ``losses`` (half-width ``planned`` // :data:`CENTRED_WINDOW_DIVISOR`, at least 2 steps), the last
    LR from m's minimum after the ``skip`` first on before m first exceeds min + :data:`RISE_TOLERANCE` x
    (m[skip] - min). A loss that levels off at its floor (small sets, plain SGD) rises only well after the
    LR that reached it, which its minimum would mark (too low for 5-epoch runs: 2 of the 130 sweeps of
    the module docstring's evidence, 7 with the minimum); one that bottoms out sharply (digits with momentum)
    rises at its minimum.
    """
    centred = centred_mean(losses, max(2, planned // CENTRED_WINDOW_DIVISOR))
    lowest = skip + int(np.argmin(centred[skip:]))
    limit = centred[lowest] + RISE_TOLERANCE * (centred[skip] - centred[lowest])
    above = np.nonzero(centred[lowest:] > limit)[0]
    rise = lowest + (int(above[0]) - 1 if len(above) else len(centred) - 1 - lowest)
    ceiling = lrs[rise] / SAFETY_FACTOR * (1 + 1e-9)  # a swept lr exactly a decade down counts as below
    index = int(np.searchsorted(lrs, ceiling, side="right")) - 1
    if index < 0:
        raise TrainingError(f"the loss of the LR range test started to rise at lr {lrs[rise]:.3g}, less than "
                            f"{SAFETY_FACTOR}x the sweep's first lr {lrs[0]:.3g}, and the suggestion is at most a tenth of "
                            "that: start the sweep lower (trainlab lr-find --start-lr), or set the lr yourself")
    return index


def _check_descent(losses: np.ndarray, smoothed: list[float], skip: int, lowest: int, lrs: np.ndarray,
                   longer_steps: str, diverged: bool = False) -> None:
    """NoDescentError unless the raw losses up to the smoothed minimum show a descent a test can tell
    from batch-to-batch noise: a falling trend over the candidates (Kendall's tau, one-sided p <
    :data:`TREND_P`), or the :data:`NEAR_MIN` losses ending at the minimum below the ``skip`` first
    ones (Mann-Whitney U, one-sided p < :data:`SHIFT_P`; a late descent after a long plateau). A minimum
    fewer than 3 steps after the ``skip`` (>= 3) first ones is too close to test: also no descent, said as a
    loss rising from the start (start the sweep lower) where the losses after the ``skip`` rise (Kendall's tau,
    one-sided p < :data:`TREND_P`, or a non-finite one, or the sweep stopped as ``diverged``: 19 steps of a
    wine MLP at lr 1 to 1000 were too few for the test), else as a flat loss (no lr changes it). The
    message proposes a sweep of ``longer_steps`` (the number, maybe with a word on it): more losses over the
    same LRs, for the same tests.

    The smoothed minimum of pure noise always lies somewhat below its start: labels unrelated to the
    inputs (flat at 0.69) and unstandardised 1e6 targets gave "suggested" lrs of 1e-6 from it. On
    simulated flat sweeps (5% noise, 346 of 400 with a minimum past the start) either test passed 3%
    of the time; the descents in tests/test_lr_finder.py (batch-of-2 noise of 60%) pass with p <= 0.003.
    """
    from scipy import stats

    if lowest - skip < 3:
        after = losses[skip:]
        rising = diverged or not np.isfinite(after).all() or (len(after) >= 3 and stats.kendalltau(
            np.arange(len(after)), after, alternative="greater").pvalue < TREND_P)
        if not rising:  # neither falls nor rises over the sweep: starting lower cannot help
            end = len(smoothed) - 1
            raise NoDescentError(f"the loss stays flat through the LR range test (the smoothed loss went from "
                                 f"{smoothed[skip]:.4g} at lr {lrs[skip]:.3g} to {smoothed[end]:.4g} at lr "
                                 f"{lrs[end]:.3g}, neither falling nor rising beyond its batch-to-batch noise): no lr "
                                 "changes it, so none to suggest; check that the targets are learnable (and "
                                 "standardised, for regression: data.standardize_target), sweep more steps "
                                 f"(trainlab lr-find CONFIG --steps {longer_steps}), or set the lr yourself")
        raise NoDescentError(f"the smoothed loss of the LR range test was lowest {lowest - skip} step(s) after its "
                             f"warm-up (at lr {lrs[lowest]:.3g}), too few to tell a descent from noise: start the "
                             f"sweep lower (trainlab lr-find CONFIG --start-lr) or take more steps (trainlab "
                             f"lr-find CONFIG --steps {longer_steps}), or set the lr yourself")
    candidates = losses[skip:lowest + 1]
    trend = stats.kendalltau(np.arange(len(candidates)), candidates, alternative="less").pvalue
    near = losses[max(skip, lowest + 1 - NEAR_MIN):lowest + 1]
    shift = stats.mannwhitneyu(losses[:skip], near, alternative="greater").pvalue
    if not (trend < TREND_P or shift < SHIFT_P):
        raise NoDescentError(f"the loss shows no descent during the LR range test (the smoothed loss went from "
                             f"{smoothed[skip]:.4g} at lr {lrs[skip]:.3g} to {smoothed[lowest]:.4g} at lr "
                             f"{lrs[lowest]:.3g}, within its batch-to-batch noise: trend p = {trend:.2g}): no lr to "
                             "suggest; check that the targets are learnable (and standardised, for regression), "
                             f"sweep more steps (trainlab lr-find CONFIG --steps {longer_steps}), or set the lr "
                             "yourself")


def smoothed_until_divergence(losses: Sequence[float], smoothing: float = 0.98, warmup: int = 0) -> list[float]:
    """The :class:`SmoothedLoss` values of ``losses`` up to (not including) the first divergence."""
    tracker, smoothed = SmoothedLoss(smoothing, warmup), []
    for loss in losses:
        value = tracker.update(float(loss))
        if tracker.diverged:
            break
        smoothed.append(value)
    return smoothed


def _train_modes(model: nn.Module) -> None:
    """After ``model.train()``: the modes the run's first steps train in. While ``strategy.finetune.freeze``
    keeps the backbone frozen (:func:`~trainlab.finetune.freeze_backbone`, applied by the caller as the
    run's first epoch has it), the run's UnfreezeSchedule callback puts the batch norms whose parameters
    are all frozen in eval mode (:func:`~trainlab.finetune.frozen_norms_to_eval`); a sweep in train mode
    moved their running statistics, and so tested another model than the one the run trains. Without
    that freezing (no finetune, LoRA, layers a model freezes itself) the run keeps every layer in train
    mode, and so does the sweep."""
    if not frozen_by_finetune(model):
        return
    backbone, _ = split_backbone_head(model)
    if backbone and not any(p.requires_grad for p in backbone):
        frozen_norms_to_eval(model)


def _batches_forever(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Iterate ``batches`` again each time it is exhausted (a DataLoader reshuffles; a list repeats)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:  # an empty iterable, or a one-shot generator that is used up
            return


def run_lr_range_test(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      optimizer: torch.optim.Optimizer, batches_iterable: Iterable[tuple[torch.Tensor, torch.Tensor]],
                      start_lr: float = 1e-7, end_lr: float = 10, num_steps: int = 100,
                      smoothing: float = 0.98) -> tuple[list[float], list[float]]:
    """Train ``num_steps`` steps at the LRs of :func:`lr_sweep`; return the (lrs, losses) it got through.

    Step i sets every param group's LR to ``lr_i`` times the group's ratio to the first group of a positive
    LR (so layer-wise LRs keep their proportions, and a group at LR 0 stays there: :func:`lr_ratios`), then does forward, ``loss_fn(model(x), y)``, backward and an
    optimizer step, with the model in train mode (the batch norms of a backbone that ``finetune.freeze``
    froze in eval mode, :func:`_train_modes`). The loss of step i is recorded (before its update, as in
    fastai). The sweep stops early once the smoothed loss diverges: a non-finite loss (recorded, as
    ``nan``/``inf``) or above 4x its minimum. ``batches_iterable`` yields ``(x, y)`` and is iterated
    again when it runs out. Afterwards the model's parameters, buffers, gradients and train/eval modes, the
    values of what the optimizer trains outside the model, the optimizer's state and param groups, and the
    torch RNG state are restored to what they were,
    also when the sweep raises.

    Raises:
        DataError: ``batches_iterable`` yields no batch.
    """
    lrs = lr_sweep(start_lr, end_lr, num_steps)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if not parameters:
        raise ValueError("the optimizer has no parameters")
    device = parameters[0].device
    group_ratios = lr_ratios([float(group["lr"]) for group in optimizer.param_groups])
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    # every tensor backward can touch: the optimizer's and the model's (frozen or not in the optimizer)
    touched = list({id(p): p for p in [*parameters, *model.parameters()]}.values())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in touched]
    # what the optimizer trains outside the model (a loss's learnable temperature): not in its state_dict
    in_model = {id(p) for p in model.parameters()}
    outside = [(p, p.detach().clone()) for p in parameters if id(p) not in in_model]
    saved_modes = [module.training for module in model.modules()]
    rng_devices = [device] if device.type == "cuda" else []
    def set_lr(lr: float) -> None:
        for group, ratio in zip(optimizer.param_groups, group_ratios, strict=True):
            group["lr"] = lr * ratio

    try:
        with torch.random.fork_rng(devices=rng_devices):  # dropout etc. must not shift the run's RNG
            model.train()
            _train_modes(model)
            set_train_mode(optimizer, True)
            return _sweep(lrs, _batches_forever(batches_iterable), set_lr,
                          lambda batch: _train_step(model, loss_fn, optimizer, batch, device), smoothing,
                          _batch_norm_stopper(model, device))
    finally:
        _restore(model, optimizer, touched, saved_model, saved_optimizer, saved_grads, saved_modes)
        with torch.no_grad():
            for parameter, value in outside:
                parameter.copy_(value)


def lr_ratios(lrs: list[float]) -> list[float]:
    """Each param group's LR as a multiple of the first positive one (the sweep's LR times it is the group's):
    a group at LR 0 (frozen by its LR) stays at 0, and the others keep their proportions. All at 0: 1 each."""
    reference = next((lr for lr in lrs if lr > 0), None)
    return [1.0] * len(lrs) if reference is None else [lr / reference for lr in lrs]


def _batch_norm_stopper(model: nn.Module, device: torch.device) -> Callable[[tuple[Any, Any]], bool]:
    """``stops(batch)``: whether ``batch`` is one row that a BatchNorm of ``model`` in train mode cannot
    normalise (:func:`trainlab.run_checks.one_row_stops_batch_norm`, probed on the first such batch). The
    run never trains on it (its remainder check refuses a run that would); the sweep, which runs on past
    the run's end (``max_steps`` may stop it first), skips it."""
    from trainlab.run_checks import one_row_stops_batch_norm

    verdict: list[bool] = []

    def stops(batch: tuple[Any, Any]) -> bool:
        x = batch[0]
        if not isinstance(x, torch.Tensor) or len(x) != 1:
            return False
        if not verdict:
            verdict.append(one_row_stops_batch_norm(model, x.to(device), training_only=True))
        return verdict[0]

    return stops


def _sweep(lrs: list[float], batches: Iterator[tuple[torch.Tensor, torch.Tensor]], set_lr: Callable[[float], None],
           train_one: Callable[[tuple[torch.Tensor, torch.Tensor]], float], smoothing: float,
           stops: Callable[[tuple[Any, Any]], bool] = lambda batch: False) -> tuple[list[float], list[float]]:
    """Step i: ``set_lr(lr_i)``, one ``train_one(batch)``, record its loss; stop once the smoothed loss
    diverges (:class:`SmoothedLoss` with the warm-up :func:`suggest_lr` skips: :func:`warmup_steps`).
    A batch the model cannot train on (``stops``: an epoch's last batch of 1 row under BatchNorm) is
    skipped for the next; two in a row are a DataError (every batch is one row)."""
    tracker, used, losses = SmoothedLoss(smoothing, warmup=warmup_steps(len(lrs))), [], []
    for lr in lrs:
        batch = next(batches, None)
        if batch is not None and stops(batch):
            batch = next(batches, None)
            if batch is not None and stops(batch):
                raise DataError("the LR range test's batches hold 1 row each, which the model's BatchNorm cannot "
                                "normalise in training (one value per channel); use a batch size of 2 or more")
        if batch is None:
            if not losses:
                raise DataError("the LR range test got no batches to train on")
            break
        set_lr(lr)
        loss = train_one(batch)
        used.append(lr)
        losses.append(loss)
        tracker.update(loss)
        if tracker.diverged:
            break
    return used, losses


def _train_step(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
                device: torch.device) -> float:
    x, y = batch
    x, y = x.to(device), y.to(device)
    if requires_closure(optimizer):  # L-BFGS evaluates the loss itself, maybe several times
        recorded: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            if not recorded:
                recorded.append(loss.detach())
            loss.backward()
            return loss

        optimizer.step(closure)
        return float(recorded[0])
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value  # no update from a non-finite loss: the sweep ends here anyway
    loss.backward()
    optimizer.step()
    return value


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor],
             saved_model: dict[str, Any], saved_optimizer: dict[str, Any],
             saved_grads: list[torch.Tensor | None], saved_modes: list[bool]) -> None:
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    for parameter, grad in zip(parameters, saved_grads, strict=True):
        parameter.grad = grad
    _restore_modes(model, saved_modes)


def _restore_modes(model: torch.nn.Module, modes: list[bool]) -> None:
    """Give every module of ``model`` back its train/eval mode of ``modes`` (``[m.training for m in model.modules()]``)."""
    for module, training in zip(model.modules(), modes, strict=True):
        module.training = training


# --------------------------------------------------------------------------- a run's own step

def range_test_step(step: Any, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], start_lr: float = 1e-7,
                    end_lr: float = 10.0, num_steps: int = 100, smoothing: float = 0.98,
                    reference_lr: float | None = None) -> tuple[list[float], list[float]]:
    """The range test through a run's own :class:`~trainlab.engine.step.Step`: its objective (with
    penalties), autocast and loss scaling, clipping and optimizer, on the engine's batches.

    Step i sets the LR factor so that ``reference_lr``, the ``strategy.optimizer.lr`` the step was built
    with, becomes ``lr_i`` (every param group keeps its ratio to it), runs one ``step.train_step``, and
    records its loss: ``lrs`` are values of ``strategy.optimizer.lr``, the head's with
    ``finetune.layerwise_lr_decay``, whose lowest layer is the first param group at lr x decay^K. Left
    out, the LR the records show stands for it (:func:`trainlab.engine.step.recorded_group`: the head's). The modules train
    in the run's modes: ``step.set_mode(training=True)``, then the batch norms of a backbone that
    ``finetune.freeze`` froze in eval mode (:func:`_train_modes`), as the run's first steps have them.
    The step's whole state (weights, optimizer, scaler, loss), every module's train/eval mode and the
    RNGs are restored afterwards, also when it raises.
    """
    lrs = lr_sweep(start_lr, end_lr, num_steps)
    base = step.lr() if reference_lr is None else reference_lr
    saved = copy.deepcopy(step.state_dict())
    model = getattr(step, "model", None)  # None: a step of several models (the Step contract)
    saved_modes = [module.training for module in model.modules()] if model is not None else []
    device = getattr(step, "device", torch.device("cpu"))
    state = TrainState()

    def train_one(batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        loss = float(step.train_step([batch], state).loss)
        state.step += 1
        return loss

    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            step.set_mode(training=True)
            if model is not None:
                _train_modes(model)
            stops = _batch_norm_stopper(model, device) if model is not None else (lambda batch: False)
            return _sweep(lrs, batches, lambda lr: step.set_lr_factor(lr / base), train_one, smoothing, stops=stops)
    finally:
        step.load_state_dict(saved)
        step.set_lr_factor(1.0)
        if model is not None:
            _restore_modes(model, saved_modes)
