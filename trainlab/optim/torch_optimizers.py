"""Optimizers backed by ``torch.optim``, registered with trainlab's parameter groups.

Adam and AdamW use the fused kernel where torch has one for the parameters'
device (on this 2-core CPU it is ~2.5x the for-loop step).

The adaptive methods default to torch's ``lr`` (Adam 1e-3, NAdam 2e-3, RMSprop 1e-2, ...), as
``torch.optim`` and Keras do; the SGD family has no default, its step size being the problem's.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab.optim import OPTIMIZERS


def _fused_ok(groups: list[dict[str, Any]]) -> bool:
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


@OPTIMIZERS.register("sgd")
def sgd(groups, lr: float, momentum: float = 0.0, nesterov: bool = False, dampening: float = 0.0,
        weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """theta <- theta - lr * g (torch.optim.SGD; with momentum b <- mu b + g, theta <- theta - lr b)."""
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, dampening=dampening,
                           weight_decay=weight_decay)


@OPTIMIZERS.register("momentum")
def momentum(groups, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD with heavy-ball momentum (PyTorch form): b <- mu b + g; theta <- theta - lr b."""
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


@OPTIMIZERS.register("nesterov")
def nesterov(groups, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum: b <- mu b + g; theta <- theta - lr (g + mu b)."""
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(groups, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
            centered: bool = False, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """v <- alpha v + (1 - alpha) g^2; theta <- theta - lr g / (sqrt(v) + eps)."""
    return torch.optim.RMSprop(groups, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
                               weight_decay=weight_decay)


@OPTIMIZERS.register("adagrad")
def adagrad(groups, lr: float = 1e-2, lr_decay: float = 0.0, eps: float = 1e-10, initial_accumulator_value: float = 0.0,
            weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """s <- s + g^2; theta <- theta - lr g / (sqrt(s) + eps)."""
    return torch.optim.Adagrad(groups, lr=lr, lr_decay=lr_decay, eps=eps,
                               initial_accumulator_value=initial_accumulator_value, weight_decay=weight_decay)


@OPTIMIZERS.register("adadelta")
def adadelta(groups, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
             weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """PyTorch's Adadelta (with an lr multiplier; lr=1 is Zeiler's rule)."""
    return torch.optim.Adadelta(groups, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adam")
def adam(groups, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0, amsgrad: bool = False, fused: bool | None = None) -> torch.optim.Optimizer:
    """m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; theta <- theta - lr m_hat / (sqrt(v_hat) + eps)."""
    fused = _fused_ok(groups) if fused is None else fused
    return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                            amsgrad=amsgrad, fused=fused or None)


@OPTIMIZERS.register("adamw")
def adamw(groups, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.01, amsgrad: bool = False, fused: bool | None = None) -> torch.optim.Optimizer:
    """Adam with decoupled weight decay: theta <- theta - lr (m_hat / (sqrt(v_hat) + eps) + wd theta)."""
    fused = _fused_ok(groups) if fused is None else fused
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             amsgrad=amsgrad, fused=fused or None)


@OPTIMIZERS.register("nadam")
def nadam(groups, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.0, momentum_decay: float = 4e-3,
          decoupled_weight_decay: bool = False) -> torch.optim.Optimizer:
    """Adam with Nesterov momentum (Dozat 2016): the step uses mu_{t+1} m_hat + (1 - mu_t) g_hat."""
    return torch.optim.NAdam(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay)


@OPTIMIZERS.register("radam")
def radam(groups, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> torch.optim.Optimizer:
    """Rectified Adam (Liu et al. 2020): SGD-with-momentum steps until the variance of v_hat is tractable."""
    return torch.optim.RAdam(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             decoupled_weight_decay=decoupled_weight_decay)


@OPTIMIZERS.register("adamax")
def adamax(groups, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
           weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam with the infinity norm: u <- max(beta2 u, |g| + eps); theta <- theta - lr/(1-beta1^t) m / u."""
    return torch.optim.Adamax(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adafactor")
def adafactor(groups, lr: float = 1e-2, beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3),
              d: float = 1.0, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adafactor (Shazeer & Stern 2018; torch form): factored second moments (row and column means of g^2)
    for matrices, beta2_t = 1 - t^beta2_decay, update clipped to RMS d, lr relative to max(eps2, RMS(theta)).
    ``weight_decay`` is decoupled: theta <- theta (1 - lr wd)."""
    return torch.optim.Adafactor(groups, lr=lr, beta2_decay=beta2_decay, eps=tuple(eps), d=d,
                                 weight_decay=weight_decay)


@OPTIMIZERS.register("lbfgs")
def lbfgs(groups, lr: float = 1.0, max_iter: int = 20, history_size: int = 100, tolerance_grad: float = 1e-7,
          tolerance_change: float = 1e-9, line_search_fn: str | None = "strong_wolfe") -> torch.optim.Optimizer:
    """L-BFGS (Nocedal 1980), full batch: ``step(closure)`` runs up to ``max_iter`` quasi-Newton iterations.

    ``torch.optim.LBFGS`` takes one parameter group, so the groups are merged into
    one; it has no weight decay, so the ``no_decay`` split does not matter. The
    default line search is strong Wolfe (torch's default is none, a fixed step
    ``lr``), which is what makes L-BFGS reliable on full-batch problems.
    """
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(f"`line_search_fn` must be 'strong_wolfe' or null. Received: line_search_fn={line_search_fn!r}")
    for option, value in (("max_iter", max_iter), ("history_size", history_size)):
        if value < 1:  # torch takes 0 and fails in its first step (pop from an empty history)
            raise ValueError(f"`{option}` must be >= 1. Received: {option}={value}")
    params = [p for group in groups for p in group["params"]]
    return torch.optim.LBFGS(params, lr=lr, max_iter=max_iter, history_size=history_size,
                             tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                             line_search_fn=line_search_fn)
