"""LAMB: layer-wise adaptive moments (You et al. 2019)."""

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
    count_steps,
    evaluate_closure,
    params_with_grads,
    require,
    state_tensors,
)


def _trust_ratio(weight_norm: Tensor, update_norm: Tensor, lower: float, upper: float | None) -> Tensor:
    """phi(||theta||) / ||u|| with phi = clamp to [lower, upper]; 1 where either side is 0."""
    weight_norm = weight_norm.clamp(min=lower, max=upper)
    return torch.where(weight_norm * update_norm > 0, weight_norm / update_norm, 1.0)


def _moment_scales(steps: list[int], beta1: float, beta2: float, eps: float) -> tuple[list[float], list[float]]:
    """Per tensor (1/k, eps'): r = m_hat / (sqrt(v_hat) + eps) = (1/k) m / (sqrt(v) + eps').

    With c_i = 1 - beta_i^t: k = c1 / sqrt(c2) and eps' = eps sqrt(c2), so the bias
    corrections cost no extra pass over the tensors.
    """
    inverse_scales, offsets = [], []
    for step in steps:
        correction2_sqrt = math.sqrt(1 - beta2**step)
        inverse_scales.append(correction2_sqrt / (1 - beta1**step))
        offsets.append(eps * correction2_sqrt)
    return inverse_scales, offsets


def _lamb_loop(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
               steps: list[int], *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
               norm_bounds: tuple[float, float | None]) -> None:
    inverse_scales, offsets = _moment_scales(steps, beta1, beta2, eps)
    for param, grad, exp_avg, exp_avg_sq, inverse_scale, offset in zip(
            params, grads, exp_avgs, exp_avg_sqs, inverse_scales, offsets, strict=True):
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt().add_(offset)
        if weight_decay != 0:
            update = param.mul(weight_decay).addcdiv_(exp_avg, denom, value=inverse_scale)  # u = r + wd theta
        else:
            update = exp_avg.div(denom).mul_(inverse_scale)
        ratio = _trust_ratio(param.norm(), update.norm(), *norm_bounds)
        param.addcmul_(update, ratio, value=-lr)


def _lamb_foreach(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                  steps: list[int], *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                  norm_bounds: tuple[float, float | None]) -> None:
    inverse_scales, offsets = _moment_scales(steps, beta1, beta2, eps)
    for bucket in cache_buckets(params):
        p, g, m, v = params[bucket], grads[bucket], exp_avgs[bucket], exp_avg_sqs[bucket]
        torch._foreach_lerp_(m, g, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, offsets[bucket])
        if weight_decay != 0:
            update = torch._foreach_mul(p, weight_decay)
            torch._foreach_addcdiv_(update, m, denom, inverse_scales[bucket])
        else:
            update = torch._foreach_div(m, denom)
            torch._foreach_mul_(update, inverse_scales[bucket])
        norms = torch.stack(torch._foreach_norm([*p, *update])).view(2, len(p))  # one stack: ||theta||s then ||u||s
        ratios = _trust_ratio(norms[0], norms[1], *norm_bounds)
        torch._foreach_addcmul_(p, update, ratios.unbind(), value=-lr)  # no host sync: ratios stay tensors


def lamb_step(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
              steps: list[int], *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
              norm_bounds: tuple[float, float | None] = (0.0, None), foreach: bool) -> None:
    """One LAMB step in place; ``steps[i]`` is parameter i's t (from 1). See :class:`Lamb`."""
    update = _lamb_foreach if foreach else _lamb_loop
    update(params, grads, exp_avgs, exp_avg_sqs, steps, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
           weight_decay=weight_decay, norm_bounds=norm_bounds)


class Lamb(torch.optim.Optimizer):
    r"""LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", Alg. 2).

    For each parameter tensor (a "layer") theta:

    .. code-block:: text

        m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
        r_t = (m_t / (1 - beta1^t)) / (sqrt(v_t / (1 - beta2^t)) + eps)
        u_t = r_t + wd * theta_{t-1}
        theta_t = theta_{t-1} - lr * (phi(||theta_{t-1}||) / ||u_t||) * u_t,   phi(z) = clamp(z, lower, upper)

    The trust ratio is taken as 1 when either norm is 0. ``phi`` is the identity
    by default (``norm_bounds=(0, None)``). The decay term is part of ``u_t``
    (decoupled from the moments, as in the paper).

    Note: for a scalar (or 1-element) tensor the step is ``lr * phi(|theta|)`` in the
    direction of ``-sign(u)``, so with the identity phi a scalar never changes sign;
    a lower bound (e.g. ``norm_bounds=(1.0, None)``) lets such tensors cross zero.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2) (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) (default 1e-6, the paper's).
        weight_decay: wd, only on groups with ``weight_decay > 0`` (default 0.01, the paper's BERT value).
        norm_bounds: (lower, upper) of phi, upper None for no bound (default (0.0, None): identity).
        foreach: use the ``torch._foreach_*`` path (default True); False is the per-tensor loop.

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.01, norm_bounds: tuple[float, float | None] = (0.0, None),
                 foreach: bool = True):
        check_lr(lr)
        betas = check_betas(betas)
        require(eps > 0.0, f"`eps` must be > 0. Received: eps={eps}")
        check_non_negative("weight_decay", weight_decay)
        require(len(norm_bounds) == 2 and norm_bounds[0] >= 0
                and (norm_bounds[1] is None or norm_bounds[1] >= norm_bounds[0]),
                f"`norm_bounds` must be (lower >= 0, upper >= lower or None). Received: norm_bounds={norm_bounds}")
        norm_bounds = (float(norm_bounds[0]), None if norm_bounds[1] is None else float(norm_bounds[1]))
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "norm_bounds": norm_bounds, "foreach": foreach})

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            beta1, beta2 = group["betas"]
            lamb_step(params, grads, state_tensors(self, params, "exp_avg"), state_tensors(self, params, "exp_avg_sq"),
                      count_steps(self, params), lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"], norm_bounds=tuple(group["norm_bounds"]),
                      foreach=group["foreach"])
        return loss


@OPTIMIZERS.register("lamb")
def lamb(groups, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
         weight_decay: float = 0.01, norm_bounds: tuple[float, float | None] = (0.0, None),
         foreach: bool = True) -> Lamb:
    """Adam direction plus decay, rescaled per tensor by the trust ratio phi(||theta||) / ||u||."""
    return Lamb(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                norm_bounds=tuple(norm_bounds), foreach=foreach)
