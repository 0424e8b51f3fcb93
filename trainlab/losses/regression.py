"""Regression losses on continuous targets (pred and target of the same shape)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainlab.losses import LOSSES
from trainlab.losses.base import Loss, reduce


@LOSSES.register("mse")
class MSELoss(Loss):
    """Mean squared error: mean((pred - target)^2)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        return reduce((pred - target).square(), self.reduction, weight)


@LOSSES.register("mae")
class MAELoss(Loss):
    """Mean absolute error (L1): mean(|pred - target|)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        return reduce((pred - target).abs(), self.reduction, weight)


@LOSSES.register("huber")
class HuberLoss(Loss):
    """Huber: 0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta), r = pred - target."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"huber delta must be > 0; got {delta}")
        self.delta = float(delta)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        return reduce(F.huber_loss(pred, target, reduction="none", delta=self.delta), self.reduction, weight)
