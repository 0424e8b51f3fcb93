"""What to try after a run diverged: the line a diverged run's error ends in (``trainlab train``, ``trainlab.fit``).

In the words of the data's origin (:class:`~trainlab.run_checks.InputFixes`: a config's keys, or what to do
before ``trainlab.fit``): a lower lr or clipping, and the likely cause in the data where there is one.
"""

from __future__ import annotations

from typing import Any

from trainlab.config_fields import shown_name
from trainlab.data import Dataset
from trainlab.data.preprocessing import output_features
from trainlab.run_checks import feature_off_unit_scale, input_fixes, targets_off_unit_scale

# a run whose first step's loss was not finite: computed before any update, so no learning rate made it
FIRST_STEP_DIVERGED = ("that loss came before any weight had moved, so no learning rate made it: the model's first "
                       "outputs or the loss did (an initialisation, inputs or targets too large for float32, a "
                       "division by 0 or a log of 0 in a loss or model of your own): check them on one batch of the "
                       "data")


def diverged_at_first_step(events: list[dict[str, Any]]) -> bool:
    """Whether the run's divergence (the last of its ``events``) was a non-finite loss at step 1: the loss of the
    weights as built, before any update."""
    last = next((event for event in reversed(events) if event.get("event") == "divergence"), None)
    return last is not None and last.get("step") == 1 and last.get("problem") == "non-finite loss"


def divergence_advice(data: Dataset, standardized_target: bool, clip_grad_norm: float | None = None,
                      auto_lr: float | None = None, first_step: bool = False) -> str:
    """What to try after a run on ``data`` diverged: what to change in the run, then the likely cause in the data
    where there is one: regression targets trained as they are and far from unit scale
    (:func:`~trainlab.run_checks.targets_off_unit_scale`), else tabular features far from it
    (:func:`~trainlab.run_checks.feature_off_unit_scale`), which make the loss's curvature, and so the largest
    stable lr, large.

    What to change, the first that applies: ``first_step`` (the loss that was not finite was the first step's,
    before any update: :data:`FIRST_STEP_DIVERGED`, no lr; a user's loss NaN on finite outputs was told to try
    one); ``auto_lr`` (``lr: auto`` chose it: a lower lr set by hand, not the range test that chose it again,
    which sent the user in a circle); a lower lr or a clipping norm smaller than the run's ``clip_grad_norm``;
    else a lower lr or clipping."""
    fixes = input_fixes(data)
    if first_step:
        diverged = FIRST_STEP_DIVERGED
    elif auto_lr is not None:
        clipping = (f"a strategy.clip_grad_norm smaller than the run's {clip_grad_norm:g}" if clip_grad_norm is not None
                    else "gradient clipping (strategy.clip_grad_norm)")
        diverged = (f"lr: auto chose {auto_lr:.4g} (an LR range test) and the run diverged at it: set the lr "
                    f"yourself, lower (e.g. {auto_lr / 10:.2g}), or try {clipping}")
    elif clip_grad_norm is not None:
        diverged = fixes.diverged_clipped.format(clip=f"{clip_grad_norm:g}")
    else:
        diverged = fixes.diverged
    if data.task == "regression" and not standardized_target and targets_off_unit_scale(data.train.y) is not None:
        return f"{diverged}; for the targets: {fixes.raw_targets}"
    feature = feature_off_unit_scale(data.train.x)
    if feature is not None:
        column, mean, std = feature
        names = output_features(data.preprocessing or {}) or []  # one-hot columns after the numeric ones
        named = f"column {shown_name(names[column])}" if column < len(names) else f"column {column}, counting from 0"
        return (f"{diverged}; the features are far from unit scale ({named}: mean {mean:.4g}, "
                f"std {std:.4g}): {fixes.raw_features}")
    return diverged
