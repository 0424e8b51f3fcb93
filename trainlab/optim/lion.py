"""Lion: EvoLved Sign Momentum (Chen et al. 2023)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainlab.optim import OPTIMIZERS
from trainlab.optim.core import (
    cache_buckets,
    check_betas,
    check_lr,
    check_non_negative,
    evaluate_closure,
    params_with_grads,
    state_tensors,
)


def _lion_loop(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], *, lr: float, beta1: float,
               beta2: float, weight_decay: float) -> None:
    for param, grad, exp_avg in zip(params, grads, exp_avgs, strict=True):
        if weight_decay != 0:
            param.mul_(1 - lr * weight_decay)
        update = exp_avg.lerp(grad, 1 - beta1).sign_()  # c_t = beta1 m + (1 - beta1) g
        param.add_(update, alpha=-lr)
        exp_avg.lerp_(grad, 1 - beta2)


def _lion_foreach(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], *, lr: float, beta1: float,
                  beta2: float, weight_decay: float) -> None:
    for bucket in cache_buckets(params):
        p, g, m = params[bucket], grads[bucket], exp_avgs[bucket]
        if weight_decay != 0:
            torch._foreach_mul_(p, 1 - lr * weight_decay)
        update = torch._foreach_lerp(m, g, 1 - beta1)
        torch._foreach_sign_(update)
        torch._foreach_add_(p, update, alpha=-lr)
        torch._foreach_lerp_(m, g, 1 - beta2)


def lion_step(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], *, lr: float, beta1: float,
              beta2: float, weight_decay: float, foreach: bool) -> None:
    """One Lion step in place (see :class:`Lion`); ``foreach`` picks the multi-tensor path."""
    step = _lion_foreach if foreach else _lion_loop
    step(params, grads, exp_avgs, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)


class Lion(torch.optim.Optimizer):
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).

    .. code-block:: text

        c_t     = beta1 * m_{t-1} + (1 - beta1) * g_t
        theta_t = theta_{t-1} - lr * (sign(c_t) + wd * theta_{t-1})
        m_t     = beta2 * m_{t-1} + (1 - beta2) * g_t

    Every coordinate moves by exactly ``lr`` (plus decay), so the paper uses an lr
    3-10x smaller than AdamW's and a weight decay 3-10x larger.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-4).
        betas: (beta1, beta2) (default (0.9, 0.99), the paper's).
        weight_decay: decoupled decay wd, only on groups with ``weight_decay > 0`` (default 0).
        foreach: use the ``torch._foreach_*`` path (default True); False is the per-tensor loop.

    State per parameter: ``exp_avg`` (m).
    """

    def __init__(self, params: Any, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, foreach: bool = True):
        check_lr(lr)
        betas = check_betas(betas)
        check_non_negative("weight_decay", weight_decay)
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "foreach": foreach})

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            beta1, beta2 = group["betas"]
            lion_step(params, grads, state_tensors(self, params, "exp_avg"), lr=group["lr"], beta1=beta1,
                      beta2=beta2, weight_decay=group["weight_decay"], foreach=group["foreach"])
        return loss


@OPTIMIZERS.register("lion")
def lion(groups, lr: float, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
         foreach: bool = True) -> Lion:
    """theta <- theta - lr (sign(beta1 m + (1 - beta1) g) + wd theta); m <- beta2 m + (1 - beta2) g."""
    return Lion(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay, foreach=foreach)
