"""Textbook forms of optimizers where PyTorch's form differs.

Ordered from simple to complex: heavy-ball momentum with the learning rate
inside the velocity, Zeiler's Adadelta without a learning rate, and Adam with
bias correction as an option. Each is a pure update function (the math) and a
thin ``torch.optim.Optimizer`` that collects parameters and state.

``weight_decay`` here is coupled L2 as in ``torch.optim`` (``g <- g + wd * theta``)
and only acts on groups whose ``weight_decay`` is > 0 (trainlab's ``no_decay``
group has 0).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from trainlab.optim import OPTIMIZERS
from trainlab.optim.core import (
    check_betas,
    check_lr,
    check_non_negative,
    count_steps,
    evaluate_closure,
    params_with_grads,
    require,
    state_tensors,
)


def _with_l2(grad: Tensor, param: Tensor, weight_decay: float) -> Tensor:
    return grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad


# --- momentum (textbook) --------------------------------------------------------------------------


def momentum_textbook_step(params: list[Tensor], grads: list[Tensor], velocities: list[Tensor], *,
                           lr: float, momentum: float, weight_decay: float) -> None:
    """v <- momentum * v + lr * g;  theta <- theta - v  (in place)."""
    for param, grad, velocity in zip(params, grads, velocities, strict=True):
        grad = _with_l2(grad, param, weight_decay)
        velocity.mul_(momentum).add_(grad, alpha=lr)
        param.sub_(velocity)


class MomentumTextbook(torch.optim.Optimizer):
    r"""Heavy-ball momentum with the learning rate inside the velocity (Polyak 1964; Sutskever et al. 2013).

    .. code-block:: text

        v_t     = gamma * v_{t-1} + eta_t * grad L(theta_{t-1})
        theta_t = theta_{t-1} - v_t

    PyTorch's SGD keeps ``b_t = gamma b_{t-1} + g_t`` and steps ``theta -= eta_t b_t``:
    identical while ``eta`` is constant, but when a schedule changes ``eta`` PyTorch
    rescales the whole accumulated velocity at once, whereas here past steps keep
    the learning rate they were taken with.

    Args:
        params: parameters or parameter groups.
        lr: eta, the learning rate (default 0.01).
        momentum: gamma in [0, 1) (default 0.9).
        weight_decay: coupled L2 coefficient added to the gradient (default 0).

    State per parameter: ``velocity`` (v).
    """

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
        check_lr(lr)
        require(0.0 <= momentum < 1.0, f"`momentum` must be in [0, 1). Received: momentum={momentum}")
        check_non_negative("weight_decay", weight_decay)
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            momentum_textbook_step(params, grads, state_tensors(self, params, "velocity"), lr=group["lr"],
                                   momentum=group["momentum"], weight_decay=group["weight_decay"])
        return loss


# --- Adadelta (Zeiler 2012) -----------------------------------------------------------------------


def adadelta_zeiler_step(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor],
                         delta_avgs: list[Tensor], *, rho: float, eps: float, weight_decay: float) -> None:
    """Zeiler (2012) Algorithm 1, one step, in place; no learning rate."""
    for param, grad, square_avg, delta_avg in zip(params, grads, square_avgs, delta_avgs, strict=True):
        grad = _with_l2(grad, param, weight_decay)
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)  # E[g^2]_t
        # delta = -(RMS[delta]_{t-1} / RMS[g]_t) * g
        delta = delta_avg.add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(grad).neg_()
        delta_avg.mul_(rho).addcmul_(delta, delta, value=1 - rho)  # E[delta^2]_t
        param.add_(delta)


class AdadeltaZeiler(torch.optim.Optimizer):
    r"""Adadelta exactly as in Zeiler (2012), "ADADELTA: An Adaptive Learning Rate Method", Algorithm 1.

    .. code-block:: text

        E[g^2]_t      = rho * E[g^2]_{t-1} + (1 - rho) * g_t^2
        delta_t       = -(RMS[delta]_{t-1} / RMS[g]_t) * g_t,   RMS[y]_t = sqrt(E[y^2]_t + eps)
        E[delta^2]_t  = rho * E[delta^2]_{t-1} + (1 - rho) * delta_t^2
        theta_{t+1}   = theta_t + delta_t

    The update is "unit-correcting" and has no learning rate. PyTorch's
    ``Adadelta`` multiplies ``delta_t`` by ``lr`` (``lr=1`` is this rule).
    The factory requires ``lr=1.0`` so that a config can never believe an LR
    is in effect; ``param_groups[i]["lr"]`` exists for the schedule adapter but a
    schedule has no effect on this optimizer.

    Args:
        params: parameters or parameter groups.
        rho: decay of both running averages (default 0.95, the paper's value).
        eps: the RMS constant (default 1e-6, the paper's value).
        weight_decay: coupled L2 coefficient added to the gradient (default 0).

    State per parameter: ``square_avg`` (E[g^2]), ``delta_avg`` (E[delta^2]).
    """

    def __init__(self, params: Any, rho: float = 0.95, eps: float = 1e-6, weight_decay: float = 0.0):
        require(0.0 <= rho < 1.0, f"`rho` must be in [0, 1). Received: rho={rho}")
        require(eps > 0.0, f"`eps` must be > 0. Received: eps={eps}")
        check_non_negative("weight_decay", weight_decay)
        super().__init__(params, {"lr": 1.0, "rho": rho, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            adadelta_zeiler_step(params, grads, state_tensors(self, params, "square_avg"),
                                 state_tensors(self, params, "delta_avg"), rho=group["rho"], eps=group["eps"],
                                 weight_decay=group["weight_decay"])
        return loss


# --- Adam (Kingma & Ba 2015) ----------------------------------------------------------------------


def adam_textbook_step(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                       exp_avg_sqs: list[Tensor], steps: list[int], *, lr: float, beta1: float, beta2: float,
                       eps: float, weight_decay: float, bias_correction: bool) -> None:
    """Kingma & Ba (2015) Algorithm 1, in place; ``steps[i]`` is parameter i's t (counted from 1)."""
    for param, grad, exp_avg, exp_avg_sq, step in zip(params, grads, exp_avgs, exp_avg_sqs, steps, strict=True):
        grad = _with_l2(grad, param, weight_decay)
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction1 = 1 - beta1**step if bias_correction else 1.0
        correction2_sqrt = math.sqrt(1 - beta2**step) if bias_correction else 1.0
        # theta -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / c1 and sqrt(v_hat) = sqrt(v) / sqrt(c2)
        denom = exp_avg_sq.sqrt().div_(correction2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr / correction1)


class AdamTextbook(torch.optim.Optimizer):
    r"""Adam as in Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Algorithm 1.

    .. code-block:: text

        m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
        v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
        if bias_correction:  m_hat = m_t / (1 - beta1^t);  v_hat = v_t / (1 - beta2^t)
        else:                m_hat = m_t;                  v_hat = v_t
        theta_t = theta_{t-1} - lr * m_hat / (sqrt(v_hat) + eps)

    With ``bias_correction=True`` this is the same rule as ``torch.optim.Adam``;
    ``False`` shows why the correction exists: with m_0 = v_0 = 0 the first step is
    ``lr * (1 - beta1) / sqrt(1 - beta2)`` per coordinate, ~3.2x ``lr`` for the defaults.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) (default 1e-8).
        weight_decay: coupled L2 coefficient added to the gradient (default 0).
        bias_correction: divide the moments by (1 - beta^t) (default True).

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, bias_correction: bool = True):
        check_lr(lr)
        betas = check_betas(betas)
        require(eps >= 0.0, f"`eps` must be >= 0. Received: eps={eps}")
        check_non_negative("weight_decay", weight_decay)
        require(isinstance(bias_correction, bool),
                f"`bias_correction` must be true or false. Received: bias_correction={bias_correction!r}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "bias_correction": bias_correction})

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            beta1, beta2 = group["betas"]
            adam_textbook_step(params, grads, state_tensors(self, params, "exp_avg"),
                               state_tensors(self, params, "exp_avg_sq"), count_steps(self, params), lr=group["lr"], beta1=beta1,
                               beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                               bias_correction=group["bias_correction"])
        return loss


# --- registry -------------------------------------------------------------------------------------


@OPTIMIZERS.register("momentum_textbook")
def momentum_textbook(groups, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> MomentumTextbook:
    """v <- momentum v + lr g; theta <- theta - v (LR inside the velocity)."""
    return MomentumTextbook(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


@OPTIMIZERS.register("adadelta_zeiler")
def adadelta_zeiler(groups, lr: float = 1.0, rho: float = 0.95, eps: float = 1e-6,
                    weight_decay: float = 0.0) -> AdadeltaZeiler:
    """Zeiler's Adadelta: delta = -(RMS[delta]_{t-1} / RMS[g]_t) g, no learning rate (lr must be 1.0)."""
    require(lr == 1.0, f"adadelta_zeiler has no learning rate (Zeiler 2012); set `lr` to 1.0, or use 'adadelta' "
                       f"whose lr multiplies the step. Received: lr={lr}")
    return AdadeltaZeiler(groups, rho=rho, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adam_textbook")
def adam_textbook(groups, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                  weight_decay: float = 0.0, bias_correction: bool = True) -> AdamTextbook:
    """Kingma & Ba Algorithm 1, with or without bias correction."""
    return AdamTextbook(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction)
