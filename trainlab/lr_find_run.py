"""``trainlab lr-find`` on a config: build the run the config describes and range-test its own step.

The LR range test itself (the sweep, the suggestion) is :mod:`trainlab.lr_finder`; this module runs it on
a config's whole run (its data, model, loss, optimizer groups and first epoch's freezing; not its weight
averaging, as ``lr: auto`` runs it) and draws the curve (:func:`trainlab.plots.plot_lr_finder`) where asked.
"""

from __future__ import annotations

from trainlab.builders import build, run_scope
from trainlab.config import Config
from trainlab.config_strategy import OptimizerConfig
from trainlab.engine.weight_averaging import AveragedStep
from trainlab.errors import TrainingError
from trainlab.lr_finder import (
    AUTO_SWEEP_STEPS,
    check_lr_searchable,
    longer_sweep_steps,
    range_test_step,
    suggest_lr,
    warmup_steps,
)
from trainlab.optim import default_lr
from trainlab.run_checks import PLACEHOLDER_LR
from trainlab.schedule_plan import base_lr, group_base_lr
from trainlab.step_builders import first_epoch_freezing, optimizer_spec_for


def _plot_lr_finder(lrs: list[float], losses: list[float], suggestion: float | None, path: str, warmup: int) -> None:
    from trainlab.plots import plot_lr_finder  # matplotlib: only when a plot is asked for

    plot_lr_finder(lrs, losses, suggestion, path, warmup=warmup)


def _sweeps_without_lr(optimizer: OptimizerConfig) -> bool:
    """Whether the range test builds the optimizer with a placeholder lr (its ``start_lr``): for ``lr: auto``,
    and for an lr left out that the optimizer has no default of (sgd, lion, lamb, muon, schedule_free_adamw),
    which a training run is refused without. The sweep sets the lr itself, relative to the lr the step was
    built with, so the placeholder changes no point of the curve. An optimizer with a default lr (adam 1e-3;
    adadelta_zeiler 1.0, the only lr it takes) is built with it, as before; groups keep their own lrs."""
    if optimizer.lr == "auto":
        return True
    return optimizer.lr is None and not optimizer.groups and default_lr(optimizer.name) is None


def lr_find_config(config: Config, plot: str | None = None, *, start_lr: float = 1e-7, end_lr: float = 10.0,
                   num_steps: int = 100) -> tuple[float, list[float], list[float]]:
    """``trainlab lr-find``: build the run of ``config`` and range-test its own step; (suggestion, lrs, losses).

    With ``plot``, also writes :func:`trainlab.plots.plot_lr_finder` there, also when no LR can be
    suggested (the TrainingError then names the plot).
    """
    optimizer_config = config.strategy.optimizer
    if optimizer_config.lr == "auto":  # adadelta_zeiler takes lr 1.0 only: said so, not "Received: lr=1e-07"
        check_lr_searchable(optimizer_spec_for(config))
    if _sweeps_without_lr(optimizer_config):  # build with a placeholder: the sweep below sets every lr
        config = config.model_copy(update={"strategy": config.strategy.model_copy(
            update={"optimizer": optimizer_config.model_copy(update={"lr": start_lr})})})
    with run_scope(config):
        placeholder = PLACEHOLDER_LR.set(_sweeps_without_lr(optimizer_config))  # no reach judged by start_lr
        try:
            built = build(config, quiet=True)
        finally:
            PLACEHOLDER_LR.reset(placeholder)
        trainer = built.trainer
        # weight averaging left out, as lr: auto leaves it (step_builders.resolve_auto_lr): lookahead pulls the
        # weights back to their average every few steps, which flattens the curve into no descent or a false one
        step = built.step.inner if isinstance(built.step, AveragedStep) else built.step
        with first_epoch_freezing(config, built.model):  # what the first step trains: a frozen backbone stays so
            step.parameters_changed()
            lrs, losses = range_test_step(step, trainer.batches.forever(trainer.plan), start_lr=start_lr,
                                          end_lr=end_lr, num_steps=num_steps, reference_lr=base_lr(config))
    skip = warmup_steps(num_steps)  # of the planned sweep, also when it stopped early
    # no descent in lr: auto's first sweep: the message names the longer one lr: auto then runs on this data (3x,
    # at most 20 passes over the rows), so that lr-find --steps N reproduces it; else 3x the steps
    longer = longer_sweep_steps(num_steps, trainer.plan.steps_per_epoch)
    retried = num_steps == AUTO_SWEEP_STEPS and longer > num_steps
    try:
        suggestion = suggest_lr(lrs, losses, skip_start=skip, num_steps=num_steps,
                                auto_retry_steps=longer if retried else None)
    except TrainingError as exc:
        if not plot:
            raise
        _plot_lr_finder(lrs, losses, None, plot, skip)  # the curve is what tells why there is no suggestion
        raise TrainingError(f"{exc} (the curve: {plot})") from None
    if plot:
        _plot_lr_finder(lrs, losses, suggestion, plot, skip)
    return suggestion, lrs, losses


def _finetune_phases(config: Config, suggestion: float) -> str:
    """What the suggestion is of a fine-tuning that freezes the backbone for its first epochs
    (``finetune.unfreeze_after_epochs``): the head's lr while frozen, which the sweep measured; once the
    backbone trains, layer k below the head at lr x ``layerwise_lr_decay``^k. "" for any other run."""
    finetune = config.strategy.finetune
    if finetune is None or not finetune.freeze or finetune.unfreeze_after_epochs is None:
        return ""
    epochs = config.strategy.epochs
    if finetune.unfreeze_after_epochs >= epochs and config.strategy.min_steps is None:  # warned of as the run builds
        return f" (the head's lr: the backbone stays frozen through the run's strategy.epochs={epochs})"
    decay = finetune.layerwise_lr_decay
    after = (f"the layer below the head then trains at {suggestion * decay:.3g}, each lower one "
             f"x{decay:g} more (layerwise_lr_decay)" if decay and decay < 1 else "every layer then trains at it")
    return (f" (the head's lr while the backbone is frozen, which the sweep measured; after "
            f"unfreeze_after_epochs={finetune.unfreeze_after_epochs}, {after}: a backbone usually fine-tunes at "
            "a smaller lr than a new head)")


def suggestion_line(config: Config, suggestion: float) -> str:
    """The line ``trainlab lr-find`` prints: ``suggested lr: X``, X a value of ``strategy.optimizer.lr``.

    With ``strategy.optimizer.groups`` the sweep scaled every group's lr with it, each keeping its ratio
    to the top level's base lr (:func:`~trainlab.schedule_plan.base_lr`): the line names each group's lr at
    the suggestion and that ratio, e.g. for lr 0.1 and a group ``head`` at lr 1.0 ``suggested lr: 0.201
    (strategy.optimizer.lr; the sweep scaled every group with it, keeping its ratio: group head 2.01, 10x as
    in the config)``; a group that sets no lr shares the top level's ("the same (it sets no lr)").
    """
    optimizer = config.strategy.optimizer
    if not optimizer.groups:
        return f"suggested lr: {suggestion:.3g}{_finetune_phases(config, suggestion)}"
    top = base_lr(config)  # the sweep's reference: its lrs are values of this lr (lr_find_config)
    parts = []
    for index, group in enumerate(optimizer.groups):
        own, label = group_base_lr(config, index), f"group {group.label(index)}"
        if own is None or top is None:  # no lr to build with: refused before any sweep
            continue
        if group.lr is None and own == top:
            parts.append(f"{label} {suggestion:.3g}, the same (it sets no lr)")
        else:
            parts.append(f"{label} {suggestion * own / top:.3g}, {own / top:.3g}x as in the config")
    return (f"suggested lr: {suggestion:.3g} (strategy.optimizer.lr; the sweep scaled every group with it, "
            f"keeping its ratio: {'; '.join(parts)})")
