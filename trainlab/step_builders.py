"""The optimizer and the training step of a config's strategy.

:func:`optimizer_spec_for` places ``regularization.weight_decay`` in the optimizer spec;
:func:`build_optimizer_for` builds the optimizer over the model's (and loss's) trainable
parameters with fine-tuning's groups or ``optimizer.groups`` routing; :func:`build_step` wraps it
with the objective (loss + L1/L2 penalties) into a :class:`StandardStep` run as
:func:`step_options` says (precision, clipping, layout, compile); :func:`resolve_auto_lr` runs the LR
range test for ``lr: auto``; :func:`averaged_step_for` adds ``strategy.weight_averaging``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch

from trainlab.config import Config
from trainlab.engine.batching import BatchPlan, TensorBatches
from trainlab.engine.objective import Objective
from trainlab.engine.step import StandardStep, Step, StepOptions
from trainlab.engine.weight_averaging import AveragedStep, AveragingRule
from trainlab.errors import ConfigError, TrainingError
from trainlab.finetune import backbone_frozen_for_now, freeze_backbone, layerwise_param_groups
from trainlab.losses.base import Loss
from trainlab.lr_finder import (
    AUTO_SWEEP_STEPS,
    NoDescentError,
    check_lr_searchable,
    longer_sweep_steps,
    range_test_step,
    suggest_lr,
    warmup_steps,
)
from trainlab.models import model_name
from trainlab.notices import held_back
from trainlab.optim import build_optimizer, param_groups
from trainlab.optim.routing import build_routed_optimizer
from trainlab.optim.weight_decay import place_weight_decay
from trainlab.plan_warnings import warn_if_nothing_penalised, warn_if_stale
from trainlab.preflight import check_averaging_fits, check_finetune_param_groups


def optimizer_spec_for(config: Config) -> dict[str, Any]:
    """The optimizer spec with ``regularization.weight_decay`` placed in it (see optim.weight_decay)."""
    spec = place_weight_decay(config.strategy.optimizer.spec(), config.strategy.regularization.weight_decay)
    if spec["name"] == "lbfgs" or spec.get("requires_closure"):
        if config.runtime.precision == "fp16":
            raise ConfigError("optimizer 'lbfgs' cannot run with runtime.precision: fp16 (the loss scaler "
                              "cannot skip a closure's steps); use fp32 or bf16")
    return spec


def build_optimizer_for(config: Config, model: torch.nn.Module, loss: Loss, spec: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer over the model's (and loss's) trainable parameters, with fine-tuning's groups.

    Its parameters are exactly those trainable (``requires_grad``) when it is built, before the run's
    first step: with ``finetune.unfreeze_after_epochs`` the backbone the UnfreezeSchedule freezes and later
    unfreezes is among them (and, should it be frozen by fine-tuning already, it is added all the same:
    :func:`~trainlab.finetune.layerwise_param_groups`' ``include_frozen``); a parameter the user froze
    never is, with or without fine-tuning."""
    finetune = config.strategy.finetune
    check_finetune_param_groups(config)  # with optimizer.groups, or without optimizer.lr: refused
    if config.strategy.optimizer.groups:
        return build_routed_optimizer_for(config, model, loss, spec)
    if finetune is not None and (finetune.layerwise_lr_decay or finetune.unfreeze_after_epochs):
        groups = layerwise_param_groups(model, float(spec["lr"]), finetune.layerwise_lr_decay or 1.0,
                                        include_frozen=finetune.unfreeze_after_epochs is not None)
        extra = [p for p in loss.parameters() if p.requires_grad]
        if extra:
            groups.append({"params": extra, "group": "no_decay", "weight_decay": 0.0})
    else:
        if finetune is not None and finetune.freeze:
            freeze_backbone(model)
        groups = param_groups(model, loss.parameters())
    return build_optimizer(spec, groups)


def build_routed_optimizer_for(config: Config, model: torch.nn.Module, loss: Loss,
                               spec: dict[str, Any]) -> torch.optim.Optimizer:
    """``strategy.optimizer.groups``: each group's parameters with their own optimizer and lr (optim.routing)."""
    finetune = config.strategy.finetune
    check_finetune_param_groups(config)  # layerwise_lr_decay / unfreeze_after_epochs: refused
    if finetune is not None and finetune.freeze:
        freeze_backbone(model)
    groups = [group.model_dump() for group in config.strategy.optimizer.groups or []]
    return build_routed_optimizer(model, spec, groups, loss.parameters(),
                                  config.strategy.regularization.weight_decay)


def step_options(config: Config, precision: str) -> StepOptions:
    strategy = config.strategy
    return StepOptions(precision=precision, clip_grad_norm=strategy.clip_grad_norm,
                       clip_grad_value=strategy.clip_grad_value, channels_last=config.runtime.channels_last,
                       grad_norm_every=config.output.log_every_n_steps, compile=config.runtime.compile)


def build_step(config: Config, model: torch.nn.Module, loss: Loss, spec: dict[str, Any], device: torch.device,
               precision: str, options: StepOptions | None = None) -> StandardStep:
    """The objective and a fresh optimizer around ``model``, run as ``options`` (default: :func:`step_options`)."""
    if not any(p.requires_grad for p in model.parameters()):
        frozen = "all its parameters are frozen (requires_grad False)" if any(True for _ in model.parameters()) \
            else "it has no parameters"
        raise ConfigError(f"model '{model_name(model)}' has nothing to train: {frozen}")
    regularization = config.strategy.regularization
    objective = Objective(loss, regularization.l1, regularization.l2)
    optimizer = build_optimizer_for(config, model, loss, spec)
    # after the optimizer, which freezes a fine-tune's backbone (finetune.freeze): a frozen weight is not penalised
    warn_if_nothing_penalised(regularization.l1, regularization.l2, model)
    return StandardStep(model, optimizer, objective, options or step_options(config, precision), device)


def averaged_step_for(config: Config, step: StandardStep, plan: BatchPlan, total_steps: int,
                      notes: dict[str, Any]) -> Step:
    """``strategy.weight_averaging``: the step wrapped so that evaluation and saving see the averaged weights."""
    averaging = config.strategy.weight_averaging
    if averaging is None:
        return step
    check_averaging_fits(config, step.optimizer)  # schedule-free evaluates an average of its own: refused
    rule = AveragingRule(averaging.kind, averaging.decay, averaging.every_n_steps,
                         start_step=first_step_after(averaging.start_epochs * plan.steps_per_epoch),
                         decay_power=averaging.decay_power, warmup=averaging.warmup, total_steps=max(total_steps, 1))
    notes["weight_averaging"] = {**averaging.model_dump(), "evaluated": "averaged weights"}
    warn_if_stale(rule, total_steps, averaging.kind, averaging.decay)
    return AveragedStep(step, rule, plan.micro_batches)


def first_step_after(steps: float) -> int:
    """The whole step s with ``t > s`` exactly when ``t > steps`` (docs/weight_averaging.md: averaging is due from
    the first step t past ``start_epochs x steps_per_epoch``): floor, of the product rounded to 9 decimals so
    that 0.29 x 100 = 28.999999999999996 counts as the 29 it stands for. round() started 0.5 x 3 steps a step
    late (at step 3, not 2), as every product it rounded up."""
    return math.floor(round(steps, 9))


@contextlib.contextmanager
def first_epoch_freezing(config: Config, model: torch.nn.Module) -> Iterator[None]:
    """The model's backbone frozen as the run's first epochs train it, for an LR range test (``lr: auto``,
    ``trainlab lr-find``), then given back as it was. With ``finetune.freeze`` the first step trains only
    the head, but only ``freeze`` alone freezes the backbone when the optimizer is built: with
    ``unfreeze_after_epochs`` or ``layerwise_lr_decay`` the UnfreezeSchedule callback freezes it at the
    first step, after the search, which would otherwise sweep the whole model for an lr the head trains at
    (a full-model sweep of MiniLM suggested 1.7e-4 where the head alone takes 2.6e-2). Afterwards only
    what this froze is trainable again (:func:`~trainlab.finetune.backbone_frozen_for_now`): a backbone
    the optimizer build froze stays frozen."""
    finetune = config.strategy.finetune
    if finetune is None or not finetune.freeze:
        yield
        return
    with backbone_frozen_for_now(model):
        yield


def resolve_auto_lr(config: Config, model: torch.nn.Module, loss: Loss, spec: dict[str, Any],
                    batches: TensorBatches, plan: BatchPlan, device: torch.device, precision: str) -> float:
    """``lr: auto``: the LR range test on a throw-away step of the same strategy; model and loss untouched.
    It trains what the first step trains: with ``finetune.freeze`` only the head, also when
    the backbone is frozen only from the first step on (:func:`first_epoch_freezing`), so the lr found
    is the head's (which the backbone's layers share after unfreezing, times ``layerwise_lr_decay``^k).

    The sweep has :data:`~trainlab.lr_finder.AUTO_SWEEP_STEPS` (100) steps; when they show no descent within
    their noise (:class:`~trainlab.lr_finder.NoDescentError`), it is run once more over
    :func:`~trainlab.lr_finder.longer_sweep_steps` (the same LRs, more losses for the trend test) before
    the TrainingError, which then names ``trainlab lr-find CONFIG --steps N`` and a fixed lr as the ways on.
    An optimizer whose lr is fixed (``adadelta_zeiler``) is refused first
    (:func:`~trainlab.lr_finder.check_lr_searchable`): ConfigError.
    """
    check_lr_searchable(spec)
    eager = dataclasses.replace(step_options(config, precision), compile=False)  # 100 steps: not worth compiling
    sweeps = [AUTO_SWEEP_STEPS, longer_sweep_steps(AUTO_SWEEP_STEPS, plan.steps_per_epoch)]
    if sweeps[1] == sweeps[0]:
        sweeps.pop()
    with first_epoch_freezing(config, model):
        with held_back():  # the run's own step is built next, from the same config and model: it warns once
            probe = build_step(config, model, loss, {**spec, "lr": 1e-7}, device, precision, eager)
        for steps in sweeps:
            lrs, losses = range_test_step(probe, batches.forever(plan), start_lr=1e-7, end_lr=10.0,
                                          num_steps=steps, reference_lr=1e-7)  # lrs of strategy.optimizer.lr
            try:  # of the planned sweep, also if it stopped early
                return suggest_lr(lrs, losses, skip_start=warmup_steps(steps))  # names 3x steps if none
            except NoDescentError as exc:
                failure = exc
    swept = " and then ".join(str(steps) for steps in sweeps)
    raise TrainingError(f"lr: auto found no lr after sweeping {swept} steps: {failure}; with lr: auto, a "
                        "fixed strategy.optimizer.lr is the way out") from None
