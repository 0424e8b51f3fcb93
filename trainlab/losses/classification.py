"""Classification losses on logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainlab.losses import LOSSES
from trainlab.losses.base import Loss, reduce


@LOSSES.register("bce")
class BCEWithLogits(Loss):
    """Binary cross-entropy from logits z: -[p y log s(z) + (1 - y) log(1 - s(z))], p = pos_weight.

    Computed as ``F.binary_cross_entropy_with_logits`` (log-sum-exp form: stable for |z| large).
    """

    target_kind = "binary"

    def __init__(self, pos_weight: float | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        if pos_weight is not None and not pos_weight > 0:
            raise ValueError(f"bce pos_weight must be > 0; got {pos_weight}")
        self.register_buffer("pos_weight", None if pos_weight is None else torch.tensor(float(pos_weight)))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        pred = pred.reshape(len(pred))
        values = F.binary_cross_entropy_with_logits(
            pred, target.to(pred.dtype), reduction="none", pos_weight=self.pos_weight
        )
        return reduce(values, self.reduction, weight)


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Softmax cross-entropy: -log softmax(z)[y], with class weights, label smoothing, ignore_index."""

    target_kind = "class_index"

    def __init__(self, class_weights: list[float] | None = None, label_smoothing: float = 0.0,
                 ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.register_buffer(
            "class_weights", None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if weight is None:
            return F.cross_entropy(pred, target, weight=self.class_weights, ignore_index=self.ignore_index,
                                   label_smoothing=self.label_smoothing, reduction=self.reduction)
        values = F.cross_entropy(pred, target, weight=self.class_weights, ignore_index=self.ignore_index,
                                 label_smoothing=self.label_smoothing, reduction="none")
        return reduce(values, self.reduction, weight)
