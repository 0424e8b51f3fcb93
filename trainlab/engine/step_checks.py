"""Checks of a Step against the contract (:class:`trainlab.engine.step.Step`): the Trainer runs them when it is
built and on its first step, so that a Step of the user's that lacks a method or returns the wrong thing is one
line naming it, not an AttributeError inside the loop."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch

from trainlab.engine.step import StepOutput
from trainlab.errors import ConfigError

STEP_METHODS = ("train_step", "set_mode", "predict", "lr", "set_lr_factor", "weights", "load_weights",
                "state_dict", "load_state_dict")  # parameters_changed is optional (TrainerView.parameters_changed)


def check_step(step: Any) -> None:
    """A ConfigError naming what ``step`` lacks of the :class:`Step` contract (its methods, ``model`` and
    ``device``), said when the Trainer is built, not as an AttributeError an epoch later."""
    missing = [name for name in (*STEP_METHODS, "model", "device") if not hasattr(step, name)]
    if missing:
        raise ConfigError(f"step {type(step).__name__} lacks {', '.join(missing)} of the Step contract "
                          "(trainlab.engine.step.Step; docs/engine.md)")


def check_step_output(step: Any, output: Any) -> None:
    """A ConfigError naming what is wrong with what ``step.train_step`` returned, checked on a fit's first step:
    a :class:`StepOutput` whose ``losses`` map ``"loss"`` (and any other names) to detached one-element tensors
    (a tensor that requires grad keeps its step's graph in the epoch's sums), and ``samples`` > 0."""
    name = f"{type(step).__name__}.train_step"
    expected = "expected StepOutput(losses={'loss': loss.detach(), ...}, samples=rows)"
    if not isinstance(output, StepOutput):
        raise ConfigError(f"{name} returned a {type(output).__name__}; {expected}")
    if not isinstance(output.losses, Mapping) or "loss" not in output.losses:
        keys = list(output.losses) if isinstance(output.losses, Mapping) else type(output.losses).__name__
        raise ConfigError(f"{name} returned losses without 'loss' ({keys}); {expected}")
    for key, value in output.losses.items():
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ConfigError(f"{name} returned losses['{key}'] as {type(value).__name__}"
                              f"{'' if not isinstance(value, torch.Tensor) else f' of shape {tuple(value.shape)}'}: "
                              "each loss is a one-element tensor (the step's mean)")
        if value.requires_grad:
            raise ConfigError(f"{name} returned losses['{key}'] that requires grad: return loss.detach() (the "
                              "epoch's sums would keep every step's graph)")
    if isinstance(output.samples, bool) or not isinstance(output.samples, numbers.Integral) or output.samples < 1:
        raise ConfigError(f"{name} returned samples={output.samples!r}; the step's row count, an integer > 0")
