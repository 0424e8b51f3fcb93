"""Regression losses on continuous targets (pred and target of the same shape, r = pred - target).

Ordered from the plain quadratic to the robust ones; Barron's adaptive loss is in
:mod:`trainlab.losses.adaptive`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainlab.losses import LOSSES
from trainlab.losses.base import Loss, reduce


@LOSSES.register("mse")
class MSELoss(Loss):
    """Mean squared error: r^2."""

    target_kind = "continuous"

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if weight is None and self.reduction != "none":  # one fused kernel: the common case, kept lean
            return F.mse_loss(pred, target, reduction=self.reduction)
        return reduce((pred - target).square(), self.reduction, weight)


@LOSSES.register("mae")
class MAELoss(Loss):
    """Mean absolute error (L1): |r|."""

    target_kind = "continuous"

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if weight is None and self.reduction != "none":
            return F.l1_loss(pred, target, reduction=self.reduction)
        return reduce((pred - target).abs(), self.reduction, weight)


@LOSSES.register("huber")
class HuberLoss(Loss):
    """Huber: 0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta).

    Quadratic near 0, linear (slope ``delta``) beyond ``delta``: outliers pull with
    bounded force. ``delta`` is in the units of the targets the loss sees: under
    ``data.standardize_target`` those are z-scored, so d target units is delta = d / sd
    (sd: the training targets'). Pick it near the noise scale of those targets (the
    advisor uses 1.345 * MAD-sigma, the 95%-efficiency constant); at or above every
    |target - mean| the loss is plain 0.5 r^2 throughout, which a run warns of
    (:mod:`trainlab.losses.quadratic_zone`).
    """

    target_kind = "continuous"

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"huber delta must be > 0; got {delta}")
        self.delta = float(delta)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if weight is None and self.reduction != "none":
            return F.huber_loss(pred, target, reduction=self.reduction, delta=self.delta)
        return reduce(F.huber_loss(pred, target, reduction="none", delta=self.delta), self.reduction, weight)


@LOSSES.register("smooth_l1")
class SmoothL1Loss(Loss):
    """Smooth L1: 0.5 r^2 / beta if |r| < beta else |r| - 0.5 beta (= huber(delta=beta) / beta).

    ``beta = 0`` is exactly L1 (Fast R-CNN's box loss uses beta = 1). ``beta`` is in the units of
    the targets the loss sees, as huber's ``delta`` is (z-scored under ``data.standardize_target``:
    d target units is d / sd); at or above every |target - mean| the loss is 0.5 r^2 / beta throughout.
    """

    target_kind = "continuous"

    def __init__(self, beta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not beta >= 0:
            raise ValueError(f"smooth_l1 beta must be >= 0; got {beta}")
        self.beta = float(beta)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if weight is None and self.reduction != "none":
            return F.smooth_l1_loss(pred, target, reduction=self.reduction, beta=self.beta)
        return reduce(F.smooth_l1_loss(pred, target, reduction="none", beta=self.beta), self.reduction, weight)


@LOSSES.register("log_cosh")
class LogCoshLoss(Loss):
    """Log-cosh: log(cosh(r)), about r^2 / 2 near 0 and |r| - log 2 far out.

    Two forms, each exact (to a few ulps) where it is used:
    - |r| <= 1: log1p(2 sinh(r / 2)^2), from cosh r = 1 + 2 sinh(r / 2)^2. No cancellation:
      at r = 1e-4 it gives 5e-9 in float32 where |r| + softplus(-2|r|) - log 2 gives 0.
    - |r| > 1: |r| + softplus(-2|r|) - log 2, which never forms cosh (overflow beyond
      |r| ~ 89 in float32); the result is >= 0.43 there, so subtracting log 2 loses nothing.
    The gradient is tanh(r) in both.
    """

    target_kind = "continuous"

    SWITCH = 1.0  # |r| at which the two forms meet

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        distance = (pred - target).abs()
        near = distance.clamp(max=self.SWITCH)  # clamped so sinh never overflows in the unused branch
        small = torch.log1p(2.0 * torch.sinh(0.5 * near).square())
        large = distance + F.softplus(-2.0 * distance) - math.log(2.0)
        values = torch.where(distance <= self.SWITCH, small, large)
        return reduce(values, self.reduction, weight)


@LOSSES.register("quantile")
class QuantileLoss(Loss):
    """Pinball loss for the tau-quantile: max(tau u, (tau - 1) u), u = target - pred.

    Its minimiser is the tau-quantile of the target distribution (tau = 0.5 gives
    half the absolute error, i.e. the median).
    """

    target_kind = "continuous"

    def __init__(self, tau: float = 0.5, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 < tau < 1.0:
            raise ValueError(f"quantile tau must be in (0, 1); got {tau}")
        self.tau = float(tau)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        under = target - pred
        values = torch.maximum(self.tau * under, (self.tau - 1.0) * under)
        return reduce(values, self.reduction, weight)
