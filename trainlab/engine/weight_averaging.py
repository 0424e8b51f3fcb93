"""Weight averaging: an EMA or lookahead copy of the weights that evaluation and the saved model use.

Two kinds, one rule for when and how strongly to average (:class:`AveragingRule`):

- ``ema`` (Polyak/EMA averaging, timm ``ModelEmaV2/V3``): the shadow weights follow the
  trained ones and never feed back into training::

      every n steps:   shadow <- d_k * shadow + (1 - d_k) * theta

- ``lookahead`` (Zhang et al. 2019, in airbench94's form): the same update, then the
  trained ("fast") weights restart from the averaged ("slow") ones; at the end of each
  epoch the fast weights are reset to the slow ones once more (airbench's ``decay=1.0``
  update)::

      every n steps:   slow <- d_k * slow + (1 - d_k) * fast;   fast <- slow
      epoch's end:     fast <- slow

  This is Lookahead's ``slow <- slow + alpha (fast - slow)`` with ``alpha = 1 - d_k``.

The per-update decay ``d_k`` of the k-th averaging update (k = 0, 1, ...), taken after
optimizer step t of T::

    1) d = decay ** n                          # decay is per optimizer step: n does not change the horizon
    2) d = d * (t / T) ** decay_power          # airbench's schedule (power 3): average strongly at the end
    3) d = min(d, (1 + k) / (10 + k))          # with warmup: TensorFlow ExponentialMovingAverage(num_updates)

Averaging begins at the first step t with ``t % n == 0`` and ``t > start_step``: the shadow
starts as a copy of the weights there (airbench's ``LookaheadState(net)``), and every
later due step averages. Every floating-point entry of the model's ``state_dict`` is
averaged, BatchNorm running statistics included (airbench, timm); integer buffers
(``num_batches_tracked``) are not, evaluation uses the live ones. Before averaging
begins, evaluation uses the raw weights.

:class:`AveragedStep` wraps any :class:`~trainlab.engine.step.Step`: it averages after
each ``train_step``, and ``set_mode(training=False)`` -- the switch the Trainer and the
Evaluator make before every validation, test evaluation and save, the seam schedule-free
optimizers use for their averaged weights -- swaps the averaged weights into the model,
keeping the raw ones aside until ``set_mode(training=True)``. So validation, early
stopping's kept weights, the summary's metrics and ``model.safetensors`` all see the
averaged weights, while training continues from the raw ones. The shadow, the update
count and (when captured in eval mode) the raw weights go into every checkpoint under
``"weight_averaging"`` of the step's state: a resumed run continues bit-identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from trainlab.engine.state import TrainState
from trainlab.engine.step import Batch, Step, StepOutput, loss_weights_of, routed_lrs
from trainlab.registry import value_hint

KINDS = ("ema", "lookahead")


@dataclass(frozen=True)
class AveragingRule:
    """When to average and with which decay (the formulas are in the module docstring).

    Args:
        kind: ``ema`` (shadow only) or ``lookahead`` (the fast weights restart from the average).
        decay: per optimizer step, in (0, 1); one update every ``every_n_steps`` uses ``decay ** n``.
        every_n_steps: optimizer steps between averaging updates (airbench: 5).
        start_step: averaging begins at the first due step after this one (airbench: 3 epochs).
        decay_power: airbench's schedule, ``d * (t / total_steps) ** decay_power``; 0 keeps d constant.
        warmup: cap the k-th update's decay at ``(1 + k) / (10 + k)``.
        total_steps: T, the run's planned optimizer steps (``decay_power`` only).
    """

    kind: Literal["ema", "lookahead"]
    decay: float
    every_n_steps: int = 1
    start_step: int = 0
    decay_power: float = 0.0
    warmup: bool = False
    total_steps: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}{value_hint(self.kind, KINDS)}")
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"decay must be in (0, 1); got decay={self.decay}")
        if self.every_n_steps < 1 or self.start_step < 0 or self.decay_power < 0 or self.total_steps < 1:
            raise ValueError(f"every_n_steps >= 1, start_step >= 0, decay_power >= 0 and total_steps >= 1; "
                             f"got {self}")

    def due(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based, just taken) is an averaging step."""
        return step > self.start_step and step % self.every_n_steps == 0

    def decay_at(self, step: int, updates: int) -> float:
        """``d_k`` for the update after optimizer step ``step``, ``updates`` (k) averaging updates done before."""
        decay = self.decay ** self.every_n_steps
        if self.decay_power:
            decay *= min(step / self.total_steps, 1.0) ** self.decay_power
        if self.warmup:
            decay = min(decay, (1 + updates) / (10 + updates))
        return decay


def averaging_updates(rule: AveragingRule, total_steps: int) -> int:
    """How many due steps a run of ``total_steps`` optimizer steps has (the first copies the weights)."""
    return max(0, total_steps // rule.every_n_steps - rule.start_step // rule.every_n_steps)


def start_share(rule: AveragingRule, total_steps: int, stop_below: float = 0.0) -> float:
    """The weight the averaged model still gives the weights it started from (the copy at the first due
    step) after ``total_steps`` optimizer steps: the product of the later updates' ``d_k`` (1.0 with one
    due step or none). 0.999 over 24 steps: 0.999 ** 23 ~ 0.98. The product stops once below
    ``stop_below`` (what a warning needs to know)."""
    share, updates, copied = 1.0, 0, False
    for step in range(rule.start_step + 1, total_steps + 1):
        if not rule.due(step):
            continue
        if not copied:
            copied = True
            continue
        share *= rule.decay_at(step, updates)
        updates += 1
        if share < stop_below:
            break
    return share


@torch.no_grad()
def ema_update(shadow: list[torch.Tensor], live: list[torch.Tensor], decay: float) -> None:
    """In place: ``shadow <- decay * shadow + (1 - decay) * live`` (``lerp``, as airbench)."""
    for average, current in zip(shadow, live, strict=True):
        average.lerp_(current, 1.0 - decay)


@torch.no_grad()
def lookahead_update(slow: list[torch.Tensor], fast: list[torch.Tensor], decay: float) -> None:
    """In place: ``slow <- slow + (1 - decay) * (fast - slow)``, then ``fast <- slow``."""
    ema_update(slow, fast, decay)
    for average, current in zip(slow, fast, strict=True):
        current.copy_(average)


def averaged_entries(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's floating-point state (parameters and float buffers), sharing storage with it."""
    return {name: value for name, value in model.state_dict().items() if value.is_floating_point()}


@torch.no_grad()
def _copy_into(targets: dict[str, torch.Tensor], sources: dict[str, torch.Tensor]) -> None:
    for name, target in targets.items():
        target.copy_(sources[name])


class AveragedStep:
    """A Step whose eval mode shows averaged weights (see the module docstring); the rest is the inner step's.

    ``micro_batches`` is the epoch's length in micro-batches (lookahead's end-of-epoch reset).
    """

    def __init__(self, step: Step, rule: AveragingRule, micro_batches: int):
        if step.model is None:
            raise ValueError("weight averaging needs a step with one model (step.model is None)")
        self.inner, self.rule, self.micro_batches = step, rule, micro_batches
        self.model: nn.Module = step.model
        self.device = step.device
        self.shadow: dict[str, torch.Tensor] | None = None  # None until averaging begins
        self.updates = 0  # averaging updates after the shadow's first copy (k)
        self._raw: dict[str, torch.Tensor] | None = None  # the raw weights while the averaged ones are in
        self._training: bool | None = None

    # ------------------------------------------------------------------ training

    def train_step(self, batches: list[Batch], state: TrainState) -> StepOutput:
        output = self.inner.train_step(batches, state)
        step = state.step + 1  # the loop counts the step after it returns
        if self.rule.due(step):
            self._average(step)
        if self.rule.kind == "lookahead" and self.shadow is not None and self._last_of_epoch(state):
            _copy_into(averaged_entries(self.model), self.shadow)  # airbench: fast <- slow at each epoch's end
        return output

    def _last_of_epoch(self, state: TrainState) -> bool:
        """This step is the epoch's last one taken: its micro-batches end the epoch, or every later one of
        the epoch is skipped after a rollback (``state.skipped_batches``), so the loop calls no later step."""
        if state.batch_in_epoch == self.micro_batches:
            return True
        skipped = {batch for epoch, batch in state.skipped_batches if epoch == state.epoch}
        return bool(skipped) and all(batch in skipped for batch in range(state.batch_in_epoch, self.micro_batches))

    def _average(self, step: int) -> None:
        live = averaged_entries(self.model)
        if self.shadow is None:
            self.shadow = {name: value.detach().clone() for name, value in live.items()}
            return
        names = list(self.shadow)
        update = lookahead_update if self.rule.kind == "lookahead" else ema_update
        update([self.shadow[n] for n in names], [live[n] for n in names], self.rule.decay_at(step, self.updates))
        self.updates += 1

    # ------------------------------------------------------------------ modes: raw or averaged weights

    def set_mode(self, training: bool) -> None:
        if training is not self._training:
            if training:
                self._swap_out()
            else:
                self._swap_in()
            self._training = training
        self.inner.set_mode(training)

    def _swap_in(self) -> None:
        if self.shadow is None or self._raw is not None:
            return
        live = averaged_entries(self.model)
        self._raw = {name: value.detach().clone() for name, value in live.items()}
        _copy_into(live, self.shadow)

    def _swap_out(self) -> None:
        if self._raw is None:
            return
        _copy_into(averaged_entries(self.model), self._raw)
        self._raw = None

    def averaged_weights(self) -> dict[str, torch.Tensor] | None:
        """A copy of the shadow weights (None before averaging begins)."""
        return None if self.shadow is None else {k: v.clone() for k, v in self.shadow.items()}

    def raw_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the trained weights, whichever mode the model is in."""
        source = self._raw if self._raw is not None else averaged_entries(self.model)
        return {k: v.detach().clone() for k, v in source.items()}

    # ------------------------------------------------------------------ the inner step's contract

    @property
    def last_grad_norm(self) -> torch.Tensor | None:
        return getattr(self.inner, "last_grad_norm", None)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.predict(x)

    def lr(self) -> float:
        return self.inner.lr()

    def route_lrs(self) -> dict[str, float]:
        return routed_lrs(self.inner)

    def set_lr_factor(self, factor: float, routes: Mapping[str, float | None] | None = None) -> None:
        if routes is None:  # an inner Step written to the one-argument contract keeps working
            self.inner.set_lr_factor(factor)
        else:
            self.inner.set_lr_factor(factor, routes)

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's weights as they are now: the averaged ones in eval mode (what early stopping keeps)."""
        return self.inner.weights()

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load ``weights`` into the model; in eval mode with the averaged weights in, they become the averaged
        weights too (early stopping's restore_best), so the model and the shadow a checkpoint holds agree."""
        self.inner.load_weights(weights)
        if self._raw is not None and self.shadow is not None:
            _copy_into(self.shadow, averaged_entries(self.model))

    def loss_weights(self) -> dict[str, torch.Tensor]:
        """The loss's state (not averaged: it goes with the weights as it is)."""
        return loss_weights_of(self.inner)

    def load_loss_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.inner.load_loss_weights(weights)

    def parameters_changed(self) -> None:
        self.inner.parameters_changed()

    def state_dict(self) -> dict[str, Any]:
        """The inner step's state plus ``weight_averaging`` (shadow, update count, raw weights, mode, and the
        rule's T: a time-budgeted run plans T when it starts, and its resume, which plans nothing, keeps it)."""
        state = self.inner.state_dict()
        state["weight_averaging"] = {"shadow": self.shadow, "updates": self.updates, "raw": self._raw,
                                     "training": self._training, "total_steps": self.rule.total_steps}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        inner = dict(state)
        averaging = inner.pop("weight_averaging")
        self.inner.load_state_dict(inner)
        # a snapshot may be restored again (rollbacks): copy, never alias its tensors
        self.shadow = _copied(averaging["shadow"], self.device)
        self._raw = _copied(averaging["raw"], self.device)
        self.updates = int(averaging["updates"])
        self._training = averaging["training"]
        if "total_steps" in averaging:  # absent from checkpoints written before it was stored
            self.rule = replace(self.rule, total_steps=int(averaging["total_steps"]))


def _copied(tensors: dict[str, torch.Tensor] | None, device: torch.device) -> dict[str, torch.Tensor] | None:
    if tensors is None:
        return None
    return {name: value.detach().to(device, copy=True) for name, value in tensors.items()}
