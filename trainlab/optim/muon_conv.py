"""Muon for every parameter with ``ndim >= 2``, conv kernels included (airbench's form).

``torch.optim.Muon`` (behind the registry's ``muon``) takes 2-D matrices only.
airbench94_muon (Jordan 2024, github.com/KellerJordan/cifar10-airbench) applies
Muon to the 4-D conv filters of a CNN by flattening each kernel to the matrix
``(out_channels, in_channels * kh * kw)``, and adds two things of its own: the
weight is renormalised to a fixed Frobenius norm before every update, and the
Newton-Schulz iteration is run 3 times instead of 5. ``muon_conv`` is that
optimizer, registered on its own (it is not a variant of ``muon``, which also
trains the non-matrix parameters with AdamW): it updates only tensors with
``ndim >= 2`` and refuses the rest; route biases, norms and the head to another
optimizer with ``strategy.optimizer.groups`` (see docs/param_groups.md).

The Newton-Schulz iteration runs in bfloat16 where the hardware has fast bf16
(CUDA, CPUs with avx512_bf16/amx_bf16) and in float32 elsewhere
(``ns_dtype: auto``); bf16 only loses precision where it is not also faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from trainlab.optim import OPTIMIZERS
from trainlab.optim.core import check_lr, check_non_negative, evaluate_closure, params_with_grads, require

#: quintic Newton-Schulz coefficients (a, b, c), chosen by Jordan to maximise the slope at zero
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def ns_compute_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype the iteration runs in: ``auto`` is bf16 on CUDA and on CPUs with native bf16, else fp32."""
    if name != "auto":
        return NS_DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16
    from trainlab.runtime import cpu_has_native_bf16  # cached /proc/cpuinfo read

    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32


def newton_schulz5(matrix: Tensor, steps: int, dtype: torch.dtype = torch.float32, eps: float = 1e-7) -> Tensor:
    r"""An approximate orthogonalisation ``~ U V^T`` of ``matrix = U S V^T`` (2-D), in ``matrix``'s dtype.

    .. code-block:: text

        X = G / (||G||_F + eps)               # singular values <= 1
        X = X^T  if rows > cols               # same result (p(X X^T) X = X p(X^T X)); X X^T is the smaller Gram matrix
        repeat steps:  A = X X^T;  X = a X + (b A + c A A) X
        X = X^T  if it was transposed

    with (a, b, c) = :data:`NS_COEFFICIENTS`. The quintic drives every singular
    value into roughly [0.7, 1.2] rather than exactly 1, which trains as well.
    """
    a, b, c = NS_COEFFICIENTS
    x = matrix.to(dtype)
    x = x / (x.norm() + eps)
    tall = matrix.size(0) > matrix.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = x.T
    return x.to(matrix.dtype)


def muon_conv_step(params: Sequence[Tensor], grads: Sequence[Tensor], momentum_buffers: Sequence[Tensor], *,
                   lr: float, momentum: float, nesterov: bool, ns_steps: int, normalize_weights: bool,
                   weight_decay: float, ns_dtype: str) -> None:
    """One Muon step, in place, for each (parameter, gradient, momentum buffer); see :class:`MuonConv`."""
    for p, g, buffer in zip(params, grads, momentum_buffers, strict=True):
        buffer.mul_(momentum).add_(g)
        direction = g.add(buffer, alpha=momentum) if nesterov else buffer
        if normalize_weights:
            p.mul_(p.shape[0] ** 0.5 / p.norm())
        if weight_decay:
            p.mul_(1.0 - lr * weight_decay)
        dtype = ns_compute_dtype(ns_dtype, p.device)
        update = newton_schulz5(direction.reshape(len(direction), -1), ns_steps, dtype)
        p.add_(update.view(p.shape), alpha=-lr)


class MuonConv(torch.optim.Optimizer):
    r"""Muon on matrices and conv kernels (airbench94_muon's optimizer).

    For a parameter W of shape (out, ...) with gradient g_t:

    .. code-block:: text

        B_t = mu B_{t-1} + g_t                          (B_0 = 0)
        U_t = g_t + mu B_t   (nesterov)   or   B_t
        W  <- W * sqrt(out) / ||W||_F                   (normalize_weights)
        W  <- W (1 - lr wd)                             (weight_decay, decoupled)
        W  <- W - lr * reshape(NewtonSchulz5(reshape(U_t, (out, -1)), ns_steps), shape(W))

    :func:`newton_schulz5` gives the orthogonalised update. With
    ``normalize_weights`` every filter bank keeps Frobenius norm sqrt(out) (an
    orthogonal (out, k) matrix with out <= k has exactly that norm), so the
    update's relative size is lr / sqrt(out)-ish throughout training and no
    weight decay is needed; airbench uses no decay.

    Args:
        params: parameters or parameter groups; every tensor must have ``ndim >= 2``.
        lr: the step size (airbench 0.24).
        momentum: mu (default 0.6, airbench's).
        nesterov: use the Nesterov direction (default True).
        ns_steps: Newton-Schulz iterations (default 3, airbench's; Muon's usual is 5).
        normalize_weights: renormalise W before each update (default True, airbench's).
        weight_decay: decoupled decay (default 0).
        ns_dtype: ``auto`` (bf16 on CUDA and on CPUs with native bf16, else fp32), ``bfloat16``,
            ``float32`` or ``float64``.
    """

    def __init__(self, params: Any, lr: float, momentum: float = 0.6, nesterov: bool = True, ns_steps: int = 3,
                 normalize_weights: bool = True, weight_decay: float = 0.0, ns_dtype: str = "auto"):
        check_lr(lr)
        require(0.0 <= momentum < 1.0, f"`momentum` must be in [0, 1). Received: momentum={momentum}")
        require(isinstance(ns_steps, int) and ns_steps >= 1, f"`ns_steps` must be an int >= 1. Received: ns_steps={ns_steps}")
        check_non_negative("weight_decay", weight_decay)
        require(ns_dtype in NS_DTYPES,
                f"`ns_dtype` must be one of {', '.join(NS_DTYPES)}. Received: ns_dtype={ns_dtype!r}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=bool(nesterov), ns_steps=ns_steps,
                        normalize_weights=bool(normalize_weights), weight_decay=weight_decay, ns_dtype=ns_dtype)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                require(p.ndim >= 2, f"muon_conv updates tensors with ndim >= 2 only; got a parameter of shape "
                                     f"{tuple(p.shape)}: route it to another optimizer with strategy.optimizer.groups")

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            buffers = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                buffers.append(state["momentum_buffer"])
            muon_conv_step(params, grads, buffers, lr=group["lr"], momentum=group["momentum"],
                           nesterov=group["nesterov"], ns_steps=group["ns_steps"],
                           normalize_weights=group["normalize_weights"], weight_decay=group["weight_decay"],
                           ns_dtype=group["ns_dtype"])
        return loss


@OPTIMIZERS.register("muon_conv")
def muon_conv(groups, lr: float, momentum: float = 0.6, nesterov: bool = True, ns_steps: int = 3,
              normalize_weights: bool = True, weight_decay: float = 0.0, ns_dtype: str = "auto") -> MuonConv:
    """Muon on every >= 2-D tensor, kernels flattened to (out, in*kh*kw) (airbench94_muon)."""
    return MuonConv(groups, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                    normalize_weights=normalize_weights, weight_decay=weight_decay, ns_dtype=ns_dtype)
