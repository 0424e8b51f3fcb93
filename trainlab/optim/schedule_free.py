"""Schedule-Free AdamW (Defazio et al. 2024), with its train/eval weight switch."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from trainlab.optim import OPTIMIZERS
from trainlab.optim.core import (
    cache_buckets,
    check_betas,
    check_lr,
    check_non_negative,
    copy_of,
    evaluate_closure,
    params_with_grads,
    require,
    state_tensors,
)


def _schedule_free_loop(ys: list[Tensor], grads: list[Tensor], zs: list[Tensor], exp_avg_sqs: list[Tensor], *,
                        step_size: float, average_weight: float, beta1: float, beta2: float, eps: float,
                        weight_decay: float) -> None:
    for y, grad, z, exp_avg_sq in zip(ys, grads, zs, exp_avg_sqs, strict=True):
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        update = grad.div(exp_avg_sq.sqrt().add_(eps))  # g / (sqrt(v) + eps)
        if weight_decay != 0:
            update.add_(y, alpha=weight_decay)  # decay evaluated at y
        y.lerp_(z, average_weight)
        y.add_(update, alpha=step_size * (beta1 * (1 - average_weight) - 1))
        z.add_(update, alpha=-step_size)


def _schedule_free_foreach(ys: list[Tensor], grads: list[Tensor], zs: list[Tensor], exp_avg_sqs: list[Tensor], *,
                           step_size: float, average_weight: float, beta1: float, beta2: float, eps: float,
                           weight_decay: float) -> None:
    for bucket in cache_buckets(ys):
        y, g, z, v = ys[bucket], grads[bucket], zs[bucket], exp_avg_sqs[bucket]
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, eps)
        update = torch._foreach_div(g, denom)
        if weight_decay != 0:
            torch._foreach_add_(update, y, alpha=weight_decay)
        torch._foreach_lerp_(y, z, average_weight)
        torch._foreach_add_(y, update, alpha=step_size * (beta1 * (1 - average_weight) - 1))
        torch._foreach_add_(z, update, alpha=-step_size)


def schedule_free_adamw_step(ys: list[Tensor], grads: list[Tensor], zs: list[Tensor], exp_avg_sqs: list[Tensor], *,
                             step_size: float, average_weight: float, beta1: float, beta2: float, eps: float,
                             weight_decay: float, foreach: bool) -> None:
    """One step in y-space, in place (see :class:`ScheduleFreeAdamW`).

    ``step_size`` is gamma_t (LR with warmup and bias correction folded in) and
    ``average_weight`` is c_{t+1}. Because y = (1 - beta1) z + beta1 x, x need not be
    stored: x_{t+1} = (1 - c) x_t + c z_{t+1} becomes
    y_{t+1} = (1 - c) y_t + c z_t - gamma_t (1 - beta1 (1 - c)) u_t with u_t the z-step direction.
    """
    update = _schedule_free_foreach if foreach else _schedule_free_loop
    update(ys, grads, zs, exp_avg_sqs, step_size=step_size, average_weight=average_weight, beta1=beta1,
           beta2=beta2, eps=eps, weight_decay=weight_decay)


class ScheduleFreeAdamW(torch.optim.Optimizer):
    r"""Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled", Algorithm 1).

    .. code-block:: text

        z_1 = x_1;  v_0 = 0
        for t = 1, 2, ...:
            y_t     = (1 - beta1) z_t + beta1 x_t              # gradients are taken at y
            g_t     = grad f(y_t)
            v_t     = beta2 v_{t-1} + (1 - beta2) g_t^2
            gamma_t = lr_t * sqrt(1 - beta2^t) * min(1, t / warmup_steps)
            z_{t+1} = z_t - gamma_t g_t / (sqrt(v_t) + eps) - gamma_t wd y_t
            c_{t+1} = gamma_t^2 / sum_{i<=t} gamma_i^2
            x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}      # evaluate and save x

    No LR schedule is needed: x is a weighted average of the z iterates. The
    authors' code uses ``lr_max^2`` (the largest gamma so far) as the averaging
    weight and puts eps inside the bias correction; both agree with the paper
    when the LR never decreases and eps is small.

    **Train/eval switch.** During training the model's parameters hold y (where
    gradients are taken); for validation and checkpoints they must hold x. Call
    :meth:`eval` before evaluating or saving and :meth:`train` before the next
    training step (``step`` raises in eval mode). The mode is stored per group as
    ``train_mode`` and is part of ``state_dict``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 0.0025, the authors' default).
        betas: (beta1, beta2); beta1 in (0, 1) is the interpolation weight (default (0.9, 0.999)).
        eps: added to sqrt(v) (default 1e-8).
        weight_decay: wd, only on groups with ``weight_decay > 0`` (default 0).
        warmup_steps: linear warmup of gamma_t over this many steps (default 0: none).
        foreach: use the ``torch._foreach_*`` path (default True); False is the per-tensor loop.

    State per group: ``step`` (t), ``weight_sum`` (sum of gamma_i^2), ``train_mode``.
    Per parameter: ``z``, ``exp_avg_sq`` (v).
    """

    def __init__(self, params: Any, lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, warmup_steps: int = 0, foreach: bool = True):
        check_lr(lr)
        betas = check_betas(betas)
        # x is recovered from y and z as (y - (1 - beta1) z) / beta1, so beta1 = 0 cannot switch to eval
        require(betas[0] > 0.0, f"`betas[0]` must be in (0, 1) for schedule-free. Received: betas={betas}")
        require(eps >= 0.0, f"`eps` must be >= 0. Received: eps={eps}")
        check_non_negative("weight_decay", weight_decay)
        require(isinstance(warmup_steps, int) and warmup_steps >= 0,
                f"`warmup_steps` must be an integer >= 0. Received: warmup_steps={warmup_steps!r}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "warmup_steps": warmup_steps, "foreach": foreach, "step": 0,
                                  "weight_sum": 0.0, "train_mode": True})

    def _switch(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == to_train:
                continue
            beta1 = group["betas"][0]
            # eval: x = (y - (1 - beta1) z) / beta1 = lerp(y, z, 1 - 1/beta1); train: y = lerp(x, z, 1 - beta1)
            weight = 1 - beta1 if to_train else 1 - 1 / beta1
            with torch.no_grad():
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.lerp_(self.state[p]["z"], weight)
            group["train_mode"] = to_train

    def train(self) -> None:
        """Put y in the parameters (before training steps)."""
        self._switch(True)

    def eval(self) -> None:
        """Put x, the averaged weights, in the parameters (before validation or saving)."""
        self._switch(False)

    @torch.no_grad()
    def step(self, closure=None):
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError("ScheduleFreeAdamW.step() called in eval mode; call optimizer.train() first")
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            if not params:
                continue
            group["step"] += 1
            t = group["step"]
            beta1, beta2 = group["betas"]
            warmup = min(1.0, t / group["warmup_steps"]) if group["warmup_steps"] > 0 else 1.0
            step_size = group["lr"] * math.sqrt(1 - beta2**t) * warmup
            group["weight_sum"] += step_size**2
            average_weight = step_size**2 / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
            schedule_free_adamw_step(params, grads, state_tensors(self, params, "z", copy_of),
                                     state_tensors(self, params, "exp_avg_sq"), step_size=step_size,
                                     average_weight=average_weight, beta1=beta1, beta2=beta2, eps=group["eps"],
                                     weight_decay=group["weight_decay"], foreach=group["foreach"])
        return loss


@OPTIMIZERS.register("schedule_free_adamw")
def schedule_free_adamw(groups, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                        weight_decay: float = 0.0, warmup_steps: int = 0, foreach: bool = True) -> ScheduleFreeAdamW:
    """AdamW steps on z, gradients at y = lerp(x, z, 1 - beta1), x = running average of z; needs train()/eval()."""
    return ScheduleFreeAdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             warmup_steps=warmup_steps, foreach=foreach)
