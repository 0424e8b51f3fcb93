"""Losses built from other losses or from the model: ``multitask`` and the WGAN-GP gradient penalty."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from trainlab.errors import DataError
from trainlab.losses import LOSSES
from trainlab.losses.base import Loss


@LOSSES.register("multitask")
class MultiTaskLoss(Loss):
    """Weighted sum of named losses over named model outputs.

    pred and target are dicts keyed by task name (the model returns a dict of heads,
    the data a dict of targets); ``losses`` maps each name to a loss spec.

    Fixed weights (default 1 each):  total = sum_i w_i L_i.
    ``learn_weights=True`` (Kendall, Gal & Cipolla, CVPR 2018, homoscedastic uncertainty,
    in the common form used by their code):  total = sum_i exp(-s_i) L_i + s_i,
    with one learned log-variance s_i per task (initialised to 0, i.e. weight 1);
    the s_i term stops the weights collapsing to 0. Fixed weights and learned weights
    are exclusive. The sub-losses use this loss's reduction ('mean' or 'sum').
    ``last_components`` holds the detached per-task losses of the latest call, for logging.

    Example spec: ``{"name": "multitask", "losses": {"age": "huber", "sex": {"name": "bce"}},
    "weights": {"age": 1.0, "sex": 0.5}}``.
    """

    target_kind = "multitask"

    def __init__(self, losses: Mapping[str, Any], weights: Mapping[str, float] | None = None,
                 learn_weights: bool = False, reduction: str = "mean"):
        super().__init__(reduction)
        from trainlab.losses import build_loss

        if reduction == "none":
            raise ValueError("multitask reduction must be 'mean' or 'sum' (tasks have different shapes); got 'none'")
        if not isinstance(losses, Mapping) or not losses:
            raise ValueError(f"multitask losses must be a non-empty mapping of task name -> loss spec; got {losses!r}")
        if weights is not None and learn_weights:
            raise ValueError("multitask takes fixed 'weights' or learn_weights=True, not both")
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(losses))
        if unknown:
            raise ValueError(f"multitask weights name unknown task '{unknown[0]}' (tasks: {', '.join(losses)})")
        bad = {k: v for k, v in weights.items() if not float(v) >= 0}
        if bad:
            raise ValueError(f"multitask weights must be >= 0; got {bad}")
        tasks = {}
        for task, spec in losses.items():
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            spec.setdefault("reduction", reduction)
            if spec["reduction"] == "none":
                raise ValueError(f"multitask sub-loss '{task}' must reduce ('mean' or 'sum'); got 'none'")
            tasks[task] = build_loss(spec)
        self.tasks = nn.ModuleDict(tasks)
        self.weights = {task: float(weights.get(task, 1.0)) for task in tasks}
        self.learn_weights = bool(learn_weights)
        if self.learn_weights:
            self.log_vars = nn.ParameterDict({task: nn.Parameter(torch.zeros(())) for task in tasks})
        self.last_components: dict[str, torch.Tensor] = {}

    def output_dim(self, task: str, num_classes: int | None, target_dim: int) -> int:
        raise DataError(
            "multitask needs a model with one output head per task; ask output_dims({task: (task_type, "
            "num_classes, target_dim)}) for the head sizes"
        )

    def output_dims(self, heads: Mapping[str, tuple[str, int | None, int]]) -> dict[str, int]:
        """{name: (task, num_classes, target_dim)} -> {name: outputs that head needs}."""
        missing = sorted(set(self.tasks) - set(heads))
        if missing:
            raise DataError(f"multitask: no data for task '{missing[0]}' (have: {', '.join(heads)})")
        return {name: loss.output_dim(*heads[name]) for name, loss in self.tasks.items()}

    def _keys(self, value: Any, what: str) -> None:
        if not isinstance(value, Mapping):
            raise DataError(f"multitask expects {what} as a dict keyed by task ({', '.join(self.tasks)}); "
                            f"got {type(value).__name__}")
        missing = sorted(set(self.tasks) - set(value))
        if missing:
            raise DataError(f"multitask: {what} has no entry for task '{missing[0]}' (has: {', '.join(value)})")

    def check(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> None:
        self._keys(pred, "pred")
        self._keys(target, "target")
        for name, loss in self.tasks.items():
            loss.check(pred[name], target[name])

    def forward(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                weight: torch.Tensor | None = None) -> torch.Tensor:
        total = None
        components = {}
        for name, loss in self.tasks.items():
            value = loss(pred[name], target[name], weight)
            components[name] = value.detach()
            if self.learn_weights:
                log_var = self.log_vars[name].to(value.dtype)
                term = torch.exp(-log_var) * value + log_var
            else:
                term = self.weights[name] * value
            total = term if total is None else total + term
        self.last_components = components
        return total

    def predict(self, output: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: loss.predict(output[name]) for name, loss in self.tasks.items()}


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     lambda_: float = 10.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al., NeurIPS 2017): lambda * E[(||grad_x D(x_hat)||_2 - 1)^2].

    x_hat = e * real + (1 - e) * fake with e ~ U[0, 1] per sample. real and fake are
    detached (the penalty trains the critic only); the gradient is taken with
    ``create_graph=True`` so the penalty back-propagates into the critic's parameters.
    The norm is sqrt(max(sum g^2, tiny)): exact, and finite to differentiate at g = 0.
    Add the result to the critic loss: ``loss = fake_scores.mean() - real_scores.mean() + gp``.
    """
    if real.shape != fake.shape:
        raise DataError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    if not lambda_ >= 0:
        raise ValueError(f"gradient_penalty lambda_ must be >= 0; got {lambda_}")
    mix = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), generator=generator, dtype=real.dtype,
                     device=real.device)
    interpolated = (mix * real.detach() + (1 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(interpolated)
    (gradient,) = torch.autograd.grad(scores.sum(), interpolated, create_graph=True)
    tiny = torch.finfo(gradient.dtype).tiny
    norms = gradient.flatten(1).square().sum(1).clamp_min(tiny).sqrt()
    return lambda_ * (norms - 1.0).square().mean()
