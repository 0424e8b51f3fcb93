"""Parameter penalties the engine adds to the loss: coef_l1 * sum |w| + coef_l2 * sum w^2.

Only weights are penalised, the parameters weight decay acts on
(:func:`trainlab.optim.decay_split.weight_ids`: ``ndim >= 2`` Linear / Conv kernels and
embeddings; not biases, and not a normalisation layer's gain or shift, whatever its shape:
``nn.LayerNorm([C, H, W])``'s are 3-D), as nanoGPT's ``configure_optimizers`` does for weight
decay: shrinking a bias or a LayerNorm gain towards 0 does not reduce capacity, it only biases the fit.

Both penalties are one ``torch._foreach_norm`` call over the weight list (one fused
kernel per dtype/device group on GPU, no copies), so calling ``penalty`` every step is
cheap. Gradients: d/dw sum |w| = sign(w) (0 at w = 0), d/dw sum w^2 = 2 w.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from trainlab.optim.decay_split import weights


def penalised_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The trainable weights a penalty applies to (:func:`trainlab.optim.decay_split.weights`)."""
    return weights(model)


def _norms(params: Iterable[torch.Tensor], order: int) -> torch.Tensor | None:
    params = list(params)
    if not params:
        return None
    return torch.stack(torch._foreach_norm(params, order))


def l1_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """sum over tensors of sum |w| (0 for no tensors)."""
    norms = _norms(params, 1)
    return torch.zeros(()) if norms is None else norms.sum()


def l2_penalty(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """sum over tensors of sum w^2 (squared L2 norms; 0 for no tensors).

    The norm's gradient is defined as 0 at w = 0 by PyTorch, so all-zero weights are fine.
    """
    norms = _norms(params, 2)
    return torch.zeros(()) if norms is None else norms.square().sum()


def penalty(model: nn.Module, l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """l1 * sum |w| + l2 * sum w^2 over :func:`penalised_parameters` (a 0-d tensor; 0 when both are 0)."""
    if l1 < 0 or l2 < 0:
        raise ValueError(f"penalty coefficients must be >= 0; got l1={l1}, l2={l2}")
    params = penalised_parameters(model) if (l1 or l2) else []
    if not params:
        first = next(model.parameters(), None)
        return torch.zeros((), device=None if first is None else first.device)
    total = l1 * l1_penalty(params) if l1 else 0.0
    if l2:
        total = total + l2 * l2_penalty(params)
    return total
