"""Evaluation metrics on predictions (class indices or values) and targets.

Classification: ``accuracy``; ``precision``, ``recall``, ``f1`` (binary: the
positive class 1; multi-class: macro average over classes; 0 where undefined,
as scikit-learn's ``zero_division=0``); ``*_per_class`` lists;
``confusion_matrix`` (rows: true class, columns: predicted). Regression: ``mse``,
``mae``, ``r2`` (1 - SS_res / SS_tot, averaged uniformly over outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainlab.errors import ConfigError
from trainlab.registry import Registry

MetricFn = Callable[[torch.Tensor, torch.Tensor, int | None], Any]
METRICS: Registry = Registry("metric")
CLASSIFICATION_DEFAULT = ["accuracy", "precision", "recall", "f1"]
REGRESSION_DEFAULT = ["mse", "mae", "r2"]
_KIND: dict[str, str] = {}
# metrics where larger is better; everything else (losses, errors) is minimised
MAXIMIZE = {"accuracy", "precision", "recall", "f1", "r2", "precision_macro", "recall_macro", "f1_macro"}


def _metric(name: str, kind: str) -> Callable[[MetricFn], MetricFn]:
    def add(fn: MetricFn) -> MetricFn:
        _KIND[name] = kind
        return METRICS.register(name)(fn)

    return add


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    index = target.long().reshape(-1) * num_classes + pred.long().reshape(-1)
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _per_class(pred, target, num_classes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    matrix = confusion(pred, target, num_classes).double()
    true_pos = matrix.diagonal()
    predicted, actual = matrix.sum(0), matrix.sum(1)
    precision = torch.where(predicted > 0, true_pos / predicted.clamp_min(1), torch.zeros_like(true_pos))
    recall = torch.where(actual > 0, true_pos / actual.clamp_min(1), torch.zeros_like(true_pos))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(denom))
    return precision, recall, f1


def _macro_mean(values: torch.Tensor, pred, target, num_classes) -> float:
    # scikit-learn averages over the labels present in target or prediction
    present = torch.zeros(num_classes, dtype=torch.bool)
    present[target.long().reshape(-1)] = True
    present[pred.long().reshape(-1)] = True
    return float(values[present].mean()) if present.any() else 0.0


def _summary(index: int) -> MetricFn:
    def fn(pred, target, num_classes):
        values = _per_class(pred, target, num_classes)[index]
        return float(values[1]) if num_classes == 2 else _macro_mean(values, pred, target, num_classes)

    return fn


def _macro(index: int) -> MetricFn:
    def fn(pred, target, num_classes):
        return _macro_mean(_per_class(pred, target, num_classes)[index], pred, target, num_classes)

    return fn


def _listed(index: int) -> MetricFn:
    return lambda pred, target, num_classes: _per_class(pred, target, num_classes)[index].tolist()


@_metric("accuracy", "classification")
def accuracy(pred, target, num_classes=None) -> float:
    return float((pred.reshape(-1) == target.reshape(-1)).double().mean())


for _i, _name in enumerate(("precision", "recall", "f1")):
    _metric(_name, "classification")(_summary(_i))
    _metric(f"{_name}_macro", "classification")(_macro(_i))
    _metric(f"{_name}_per_class", "classification")(_listed(_i))


@_metric("confusion_matrix", "classification")
def confusion_matrix(pred, target, num_classes) -> list[list[int]]:
    return confusion(pred, target, num_classes).tolist()


@_metric("mse", "regression")
def mse(pred, target, num_classes=None) -> float:
    return float((pred.double() - target.double()).square().mean())


@_metric("mae", "regression")
def mae(pred, target, num_classes=None) -> float:
    return float((pred.double() - target.double()).abs().mean())


@_metric("r2", "regression")
def r2(pred, target, num_classes=None) -> float:
    pred, target = pred.double().reshape(len(pred), -1), target.double().reshape(len(target), -1)
    residual = (target - pred).square().sum(0)
    total = (target - target.mean(0)).square().sum(0)
    # scikit-learn: constant target -> 1.0 if perfect else 0.0
    scores = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300),
                         torch.where(residual == 0, torch.ones_like(total), torch.zeros_like(total)))
    return float(scores.mean())


def default_metrics(task: str) -> list[str]:
    return list(REGRESSION_DEFAULT if task == "regression" else CLASSIFICATION_DEFAULT)


def validate_metrics(names: list[str], task: str) -> list[str]:
    """Check every name exists and fits the task; 'loss' is always reported and may be listed."""
    wanted = "regression" if task == "regression" else "classification"
    checked = []
    for name in names:
        if name == "loss":
            continue
        METRICS.get(name)  # unknown name -> ConfigError with did-you-mean
        if _KIND[name] != wanted:
            raise ConfigError(
                f"metric '{name}' is a {_KIND[name]} metric but the data is a {task} task "
                f"(use: {', '.join(default_metrics(task))})"
            )
        checked.append(name)
    return checked


def compute(names: list[str], pred: torch.Tensor, target: torch.Tensor, num_classes: int | None) -> dict[str, Any]:
    pred, target = pred.detach().cpu(), target.detach().cpu()
    return {name: METRICS.get(name)(pred, target, num_classes) for name in names}
