"""A step budget: enough epochs for at least ``min_steps`` optimizer steps, whatever the dataset's size.

A recipe written as "2 epochs" trains 675 steps on 10,800 SST-2 sentences but 90 steps on 1,440
long reviews, where it underfits. ``strategy.min_steps`` states the budget the recipe needs, and
the epochs follow from the data::

    epochs = max(strategy.epochs, ceil(min_steps / steps_per_epoch))

so a large dataset keeps its ``epochs`` (they already give at least ``min_steps`` steps), and a small
one gets more passes. ``strategy.max_steps`` still ends the run, also below ``min_steps`` (a quick
try of a recipe with ``--set strategy.max_steps=6`` stays quick). The rule is a pure function of the
config and the training set's size, so a resumed run computes the same epochs (nothing to save).
"""

from __future__ import annotations

from trainlab.errors import ConfigError


def epochs_for_step_budget(epochs: int | None, min_steps: int | None, steps_per_epoch: int) -> int | None:
    """``max(epochs, ceil(min_steps / steps_per_epoch))``; ``epochs`` unchanged when ``min_steps`` is None.

    Raises:
        ConfigError: ``min_steps`` without ``epochs`` (a max_steps-only run has a fixed length).
    """
    if min_steps is None:
        return epochs
    if epochs is None:
        raise ConfigError(f"strategy.min_steps={min_steps} stretches strategy.epochs on small datasets; set "
                          f"strategy.epochs too (with max_steps alone the run already has a fixed length)")
    if steps_per_epoch < 1:
        raise ConfigError(f"epochs_for_step_budget: steps_per_epoch must be >= 1; got {steps_per_epoch}")
    return max(epochs, -(-min_steps // steps_per_epoch))
