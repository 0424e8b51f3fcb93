"""Prodigy: learning-rate-free Adam (Mishchenko & Defazio 2023)."""

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


def _prodigy_loop(params: list[Tensor], grads: list[Tensor], initials: list[Tensor], exp_avgs: list[Tensor],
                  exp_avg_sqs: list[Tensor], sums: list[Tensor], *, lr: float, d: float, beta1: float, beta2: float,
                  beta3: float, eps: float, weight_decay: float) -> tuple[Tensor, Tensor]:
    dot = params[0].new_zeros(())
    s_norm = params[0].new_zeros(())
    for param, grad, initial, exp_avg, exp_avg_sq, s in zip(params, grads, initials, exp_avgs, exp_avg_sqs, sums,
                                                            strict=True):
        dot += torch.sum(grad * (initial - param))  # <g_k, x_0 - x_k>, before x moves
        exp_avg.mul_(beta1).add_(grad, alpha=d * (1 - beta1))
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=d * d * (1 - beta2))
        s.mul_(beta3).add_(grad, alpha=lr * d * d * (1 - beta3))
        s_norm += s.abs().sum()
        if weight_decay != 0:
            param.mul_(1 - lr * d * weight_decay)
        param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(d * eps), value=-lr * d)
    return dot, s_norm


def _prodigy_foreach(params: list[Tensor], grads: list[Tensor], initials: list[Tensor], exp_avgs: list[Tensor],
                     exp_avg_sqs: list[Tensor], sums: list[Tensor], *, lr: float, d: float, beta1: float,
                     beta2: float, beta3: float, eps: float, weight_decay: float) -> tuple[Tensor, Tensor]:
    dots, s_norms = [], []
    for bucket in cache_buckets(params):
        p, g, x0, m, v, s = (params[bucket], grads[bucket], initials[bucket], exp_avgs[bucket],
                             exp_avg_sqs[bucket], sums[bucket])
        products = torch._foreach_sub(x0, p)
        torch._foreach_mul_(products, g)
        dots += [product.sum() for product in products]  # torch has no foreach sum
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, g, alpha=d * (1 - beta1))
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=d * d * (1 - beta2))
        torch._foreach_mul_(s, beta3)
        torch._foreach_add_(s, g, alpha=lr * d * d * (1 - beta3))
        s_norms += torch._foreach_norm(s, 1)
        if weight_decay != 0:
            torch._foreach_mul_(p, 1 - lr * d * weight_decay)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, d * eps)
        torch._foreach_addcdiv_(p, m, denom, value=-lr * d)
    return torch.stack(dots).sum(), torch.stack(s_norms).sum()


def prodigy_step(params: list[Tensor], grads: list[Tensor], initials: list[Tensor], exp_avgs: list[Tensor],
                 exp_avg_sqs: list[Tensor], sums: list[Tensor], *, lr: float, d: float, beta1: float, beta2: float,
                 beta3: float, eps: float, weight_decay: float, foreach: bool) -> tuple[Tensor, Tensor]:
    """Moments, s and x for one group, in place, with the current d (see :class:`Prodigy`).

    Returns this group's ``<g, x0 - x>`` (taken before x moves) and ``sum ||s||_1``;
    the caller turns them into d_{k+1}.
    """
    update = _prodigy_foreach if foreach else _prodigy_loop
    return update(params, grads, initials, exp_avgs, exp_avg_sqs, sums, lr=lr, d=d, beta1=beta1, beta2=beta2,
                  beta3=beta3, eps=eps, weight_decay=weight_decay)


class Prodigy(torch.optim.Optimizer):
    r"""Prodigy, Adam version (Mishchenko & Defazio 2023, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", Algorithm 3), with decoupled weight decay.

    ``lr`` (gamma) is a multiplier of the estimated step size d and defaults to 1.

    .. code-block:: text

        r_0 = 0, s_0 = 0, m_0 = 0, v_0 = 0, d_0 = 1e-6, beta3 = sqrt(beta2)
        for k = 0, 1, ...:
            g_k     = grad f(x_k)
            m_{k+1} = beta1 m_k + (1 - beta1) d_k g_k
            v_{k+1} = beta2 v_k + (1 - beta2) d_k^2 g_k^2
            r_{k+1} = beta3 r_k + (1 - beta3) gamma d_k^2 <g_k, x_0 - x_k>
            s_{k+1} = beta3 s_k + (1 - beta3) gamma d_k^2 g_k
            d_{k+1} = max(d_k, d_coef * r_{k+1} / ||s_{k+1}||_1)
            x_{k+1} = x_k - gamma d_k wd x_k - gamma d_k m_{k+1} / (sqrt(v_{k+1}) + d_k eps)

    d, r and the sums run over all parameters of all groups (one global d). Each
    group's own ``lr`` is its gamma (a schedule writes it). The authors' code uses
    ``d_{k+1}`` instead of ``d_k`` in ``d eps`` (a negligible difference) and skips the
    (1 - beta3) factors, which cancel in r / ||s||_1.

    Args:
        params: parameters or parameter groups.
        lr: gamma (default 1.0).
        betas: (beta1, beta2) (default (0.9, 0.999)).
        beta3: decay of r and s (default None: sqrt(beta2)).
        eps: added to sqrt(v) / d (default 1e-8).
        weight_decay: decoupled wd, only on groups with ``weight_decay > 0`` (default 0).
        d0: initial estimate of the distance to the solution (default 1e-6).
        d_coef: multiplier of the d estimate (default 1.0).
        foreach: use the ``torch._foreach_*`` path (default True); False is the per-tensor loop.

    State per group: ``d`` and ``d_numerator`` (r), identical in every group.
    Per parameter: ``initial`` (x_0), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``s``.
    """

    def __init__(self, params: Any, lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 beta3: float | None = None, eps: float = 1e-8, weight_decay: float = 0.0, d0: float = 1e-6,
                 d_coef: float = 1.0, foreach: bool = True):
        check_lr(lr)
        betas = check_betas(betas)
        beta3 = math.sqrt(betas[1]) if beta3 is None else float(beta3)
        require(0.0 <= beta3 < 1.0, f"`beta3` must be in [0, 1). Received: beta3={beta3}")
        require(eps >= 0.0, f"`eps` must be >= 0. Received: eps={eps}")
        check_non_negative("weight_decay", weight_decay)
        require(d0 > 0.0, f"`d0` must be > 0. Received: d0={d0}")
        require(d_coef > 0.0, f"`d_coef` must be > 0. Received: d_coef={d_coef}")
        super().__init__(params, {"lr": lr, "betas": betas, "beta3": beta3, "eps": eps, "weight_decay": weight_decay,
                                  "d0": d0, "d_coef": d_coef, "foreach": foreach, "d": d0, "d_numerator": 0.0})

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        first = self.param_groups[0]
        d, beta3 = first["d"], first["beta3"]
        dots, s_norms = [], []
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            if not params:
                continue
            beta1, beta2 = group["betas"]
            group_dot, group_s_norm = prodigy_step(
                params, grads, state_tensors(self, params, "initial", copy_of), state_tensors(self, params, "exp_avg"),
                state_tensors(self, params, "exp_avg_sq"), state_tensors(self, params, "s"), lr=group["lr"], d=d,
                beta1=beta1, beta2=beta2, beta3=beta3, eps=group["eps"], weight_decay=group["weight_decay"],
                foreach=group["foreach"])
            # r's increment from this group; float64 so groups of different dtypes can be summed
            dots.append(group_dot.double() * ((1 - beta3) * group["lr"] * d * d))
            s_norms.append(group_s_norm.double())
        if not dots:
            return loss
        dot, s_norm = torch.stack([torch.stack(dots).sum(), torch.stack(s_norms).sum()]).tolist()  # one sync
        d_numerator = beta3 * first["d_numerator"] + dot
        if s_norm > 0:
            d = max(d, first["d_coef"] * d_numerator / s_norm)
        for group in self.param_groups:  # one global d, kept in every group so each group is self-describing
            group["d"], group["d_numerator"] = d, d_numerator
        return loss


@OPTIMIZERS.register("prodigy")
def prodigy(groups, lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999), beta3: float | None = None,
            eps: float = 1e-8, weight_decay: float = 0.0, d0: float = 1e-6, d_coef: float = 1.0,
            foreach: bool = True) -> Prodigy:
    """Adam whose step size d is estimated online from <g, x0 - x> / ||s||_1; lr multiplies d (default 1)."""
    return Prodigy(groups, lr=lr, betas=tuple(betas), beta3=beta3, eps=eps, weight_decay=weight_decay, d0=d0,
                   d_coef=d_coef, foreach=foreach)
