"""The advisor's word on regression targets far from unit scale: the reason that says to standardise them
(the same test as the warning a run gives, :func:`trainlab.run_checks.warn_if_raw_scale_targets`), the targets
as ``data.standardize_target`` makes them, and the advised losses' numbers (huber's delta, adaptive's scale)
for those standardised targets beside the raw ones: a delta in the raw units makes huber plain mse on the
z-scores the loss would then see (:func:`trainlab.advisor.advise`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trainlab.advisor import Advice


def off_scale_note(y: np.ndarray) -> str | None:
    """The reason that says to standardise targets far from unit scale (the test, and the fix, of the warning
    a run gives: :func:`trainlab.run_checks.warn_if_raw_scale_targets`), or None where they are not."""
    import torch

    from trainlab.run_checks import CONFIG_FIXES, targets_off_unit_scale

    off = targets_off_unit_scale(torch.as_tensor(y, dtype=torch.float64))
    if off is None:
        return None
    size, column = off
    values = y.reshape(len(y), -1)[:, column].astype(np.float64)
    which = f" (target column {column + 1} of {y.shape[1]})" if y.ndim == 2 and y.shape[1] > 1 else ""  # from 1
    moves = ("moves them too slowly with Adam-like optimizers (steps of about lr whatever the gradient) and makes "
             "SGD diverge (its gradients grow with the targets)" if size == "large" else "moves them too far")
    return (f"the targets are far from unit scale{which}: mean {values.mean():.4g}, std {values.std():.4g} "
            f"({size}); a learning rate fit for unit-scale outputs {moves}: {CONFIG_FIXES.raw_targets}")


def standardised(y: np.ndarray) -> np.ndarray:
    """``y`` as ``data.standardize_target`` makes it: per column (y - mean) / scale, with the column statistics
    of :func:`trainlab.data.preprocessing.column_stats` (a constant column, by scikit-learn's bound, scale 1)."""
    from trainlab.data.preprocessing import column_stats

    values = y.astype(np.float64)
    mean, scale, _ = column_stats(values.reshape(len(values), -1))
    return ((values.reshape(len(values), -1) - mean) / scale).reshape(values.shape)


def _loss_numbers(advice: Advice) -> dict[str, float]:
    """The numbers in target units among the advised losses: huber's delta, adaptive's scale (first of each)."""
    found: dict[str, float] = {}
    for spec in [advice.loss, *(alternative.loss for alternative in advice.alternatives)]:
        if spec.get("name") == "huber" and "delta" in spec:
            found.setdefault("huber's delta", spec["delta"])
        if spec.get("name") == "adaptive" and "scale" in spec:
            found.setdefault("adaptive's scale", spec["scale"])
    return found


def standardised_numbers(raw: Advice, scaled: Advice) -> str:
    """For the off-scale note: the advised losses' numbers once the targets are standardised (the loss then sees
    z-scores, where a delta in the raw units makes huber plain mse), beside the raw ones; "" when none.
    ``raw`` is the advice on the targets as they are, ``scaled`` the advice on :func:`standardised` targets."""
    raw_numbers, numbers = _loss_numbers(raw), _loss_numbers(scaled)
    said = [f"{name} {numbers[name]:.4g} (here {value:.4g})" for name, value in raw_numbers.items() if name in numbers]
    if not said:
        return ""
    return (f"; standardised, the loss sees z-scores, so {' and '.join(said)}, as trainlab advise says with "
            "--set data.standardize_target=true")
