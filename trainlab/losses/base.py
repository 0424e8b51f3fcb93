"""The loss contract every registered loss follows.

A loss is an ``nn.Module`` whose ``forward(pred, target)`` returns a scalar
(``reduction='mean'``, the default), and which declares what it expects:

- ``target_kind``: ``"continuous"`` (regression; pred and target same shape),
  ``"binary"`` (one logit or probability per sample; target in {0, 1}), or
  ``"class_index"`` (K logits per sample; integer target in [0, K)).
- ``output_dim(task, num_classes, target_dim)``: how many outputs the model needs.
- ``check(pred, target)``: raises ``DataError`` with a one-line message before
  training starts when shapes or labels do not fit.
- ``predict(output)``: turns model output into predictions for the metrics.

Losses may own parameters (e.g. a learned scale); the engine gives them to the optimizer.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from trainlab.errors import DataError

TargetKind = Literal["continuous", "binary", "class_index"]
Reduction = Literal["mean", "sum", "none"]


def reduce(values: torch.Tensor, reduction: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Apply optional per-sample ``weight`` then mean/sum/none (weighted mean divides by sum of weights)."""
    if weight is not None:
        weight = weight.reshape(weight.shape + (1,) * (values.ndim - weight.ndim))
        values = values * weight
        if reduction == "mean":
            return values.sum() / (weight.expand_as(values).sum())
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    return reduction


class Loss(nn.Module):
    """Base class: subclasses set ``target_kind`` and implement ``forward``."""

    target_kind: ClassVar[TargetKind] = "continuous"

    def __init__(self, reduction: Reduction = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    def output_dim(self, task: str, num_classes: int | None, target_dim: int) -> int:
        if self.target_kind == "class_index":
            if task == "regression":
                raise DataError(
                    f"{self.name} is a classification loss but the data is a regression task "
                    "with continuous targets; use a regression loss such as mse or huber"
                )
            return int(num_classes or 2)
        if self.target_kind == "binary":
            if task != "binary":
                raise DataError(
                    f"{self.name} expects binary targets in {{0, 1}} but the data is a {task} task"
                    + (f" with {num_classes} classes; use cross_entropy" if num_classes else "")
                )
            return 1
        if task != "regression":
            raise DataError(
                f"{self.name} is a regression loss but the data is a {task} classification task"
                f" ({num_classes} classes); use "
                + ("bce or cross_entropy" if task == "binary" else "cross_entropy")
            )
        return target_dim

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if self.target_kind == "class_index":
            if target.is_floating_point():
                raise DataError(
                    f"{self.name} expects integer class labels in [0, {pred.shape[-1]}); got float targets"
                )
            if target.numel() and (target.min() < 0 or target.max() >= pred.shape[-1]):
                raise DataError(
                    f"{self.name} expects integer class labels in [0, {pred.shape[-1]}); "
                    f"got labels in [{int(target.min())}, {int(target.max())}]"
                )
        elif self.target_kind == "binary":
            if pred.reshape(len(pred), -1).shape[1] != 1:
                raise DataError(f"{self.name}: expects one output per sample; got shape {tuple(pred.shape)}")
            if target.numel() and not torch.all((target == 0) | (target == 1)):
                raise DataError(f"{self.name} expects binary targets in {{0, 1}}")
        elif pred.shape != target.shape:
            raise DataError(
                f"{self.name}: prediction shape {tuple(pred.shape)} does not match target shape "
                f"{tuple(target.shape)}"
            )

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        if self.target_kind == "class_index":
            return output.argmax(dim=-1)
        if self.target_kind == "binary":
            return (output.reshape(len(output)) > 0).long()
        return output
