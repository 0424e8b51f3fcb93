"""Whether a robust regression loss's threshold leaves it quadratic on every residual, said before training.

Huber's ``delta``, smooth L1's ``beta`` and the adaptive loss's fixed ``scale`` c mark where the loss stops
growing as r^2 (huber: 0.5 r^2 for |r| <= delta, linear beyond). They are in the units of the targets the
loss sees: under ``data.standardize_target`` those are z-scored, y' = (y - mean) / sd, so a threshold of
d target units is d / sd there. The span of the training targets,

    span = max_ij |y'_ij - mean_i y'_ij|      (each target column j against its training mean),

bounds the residuals of a model no better than the mean. A threshold >= span puts every such residual
inside the quadratic zone, and the loss trains as plain (scaled) MSE from start to end: huber 0.5 r^2,
smooth L1 0.5 r^2 / beta, adaptive about r^2 / (2 c^2). A delta of 50 meant in target units (sd 160)
on z-scored targets (span 2.6) is one such case; :func:`warn_if_all_quadratic` says it in one warning.
A config run (:mod:`trainlab.builders`) and :func:`trainlab.fit` call it where the loss meets the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from trainlab.losses.adaptive import AdaptiveLoss
from trainlab.losses.base import Loss
from trainlab.losses.regression import HuberLoss, SmoothL1Loss
from trainlab.notices import warn


def quadratic_threshold(loss: Loss) -> tuple[str, float, str, str] | None:
    """``(option, value, zone, what the loss is inside it)`` for a loss that is (near-)quadratic for
    |r| <= value (``zone`` says which): huber's
    ``delta``, smooth_l1's ``beta``, an adaptive loss's fixed ``scale`` (a learned one fits itself to the
    residuals; a fixed alpha of 2 is L2 at every scale, chosen so). None for any other loss."""
    if isinstance(loss, HuberLoss):
        return "delta", loss.delta, "quadratic", "plain 0.5 x MSE"
    if isinstance(loss, SmoothL1Loss):
        return "beta", loss.beta, "quadratic", "plain MSE x 0.5 / beta"
    if isinstance(loss, AdaptiveLoss) and not loss.learn_scale:
        if not loss.learn_alpha and bool((loss.alpha == 2).all()):
            return None
        return "scale", float(loss.scale.max()), "near-quadratic", "about MSE / (2 scale^2)"
    return None


def target_span(y: torch.Tensor) -> tuple[float, int]:
    """``(span, column)``: the largest |y_ij - mean_i y_ij| of the (N,) or (N, d) targets ``y``, each column
    against its own mean, and the column where it is (float64)."""
    columns = y.double().reshape(len(y), -1)
    deviations = (columns - columns.mean(dim=0)).abs().amax(dim=0)
    column = int(deviations.argmax())
    return float(deviations[column]), column


def all_quadratic_warning(loss: Loss, y: torch.Tensor, target_sd: Sequence[float] | None = None) -> str | None:
    """The warning for ``loss``'s threshold at or above the span of the training targets ``y`` as the loss
    sees them (:func:`target_span`), or None. ``target_sd``: per target column, the sd that z-scored ``y``
    under ``data.standardize_target`` (in target units); None for targets the loss sees as given."""
    threshold = quadratic_threshold(loss)
    if threshold is None or not len(y):
        return None
    option, value, zone, as_mse = threshold
    span, column = target_span(y)
    if not 0 < span <= value:  # constant targets have no residual to speak of
        return None
    name = getattr(loss, "name", type(loss).__name__)
    where = f" (column {column} of {y.reshape(len(y), -1).shape[1]})" if y.ndim > 1 and y.shape[1] > 1 else ""
    if target_sd is None:
        units = f"{span:.4g} target units{where}"
    else:
        sd = float(target_sd[column])
        units = (f"{span:.3g} standard deviations{where}: under data.standardize_target the loss sees z-scored "
                 f"targets, so {option} is in target sds (sd {sd:.4g} target units; {option} {value:g} meant in "
                 f"target units is {option} {value / sd:.3g} here, {value:g} / {sd:.4g})")
    return (f"loss {name}: {option} {value:g} is at least the largest |target - mean| of the training targets, "
            f"{units}; every residual is inside its {zone} zone |r| <= {option}, so it trains as {as_mse} "
            f"from start to end; for a robust loss set {option} below {span:.3g} (near the noise scale: 'trainlab "
            "advise' proposes one), or use loss mse")


def warn_if_all_quadratic(loss: Loss, data: Any, standardized: bool) -> None:
    """Warn (:func:`all_quadratic_warning`) for a regression ``data`` (a :class:`~trainlab.data.Dataset`)
    whose training targets sit inside ``loss``'s quadratic zone; ``standardized``: the config's
    ``data.standardize_target``, whose target sds ``data.preprocessing["target"]["scale"]`` holds."""
    if data.task != "regression":
        return
    fitted = (data.preprocessing or {}).get("target") if standardized else None
    message = all_quadratic_warning(loss, data.train.y, fitted["scale"] if fitted else None)
    if message:
        warn(message)
