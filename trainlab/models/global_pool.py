"""Global pooling of a feature map over its spatial positions, (N, C, H, W) -> (N, C, 1, 1).

``GlobalPool("max")`` runs ``nn.AdaptiveMaxPool2d(1)``'s kernel and ``GlobalPool("avg")``
``nn.AdaptiveAvgPool2d(1)``'s, so a run computes the numbers of the modules it stands for. PyTorch has no
deterministic CUDA backward for those two: under ``torch.use_deterministic_algorithms(True)``
(``runtime.deterministic: true``) their backward raises on a GPU. There, and only there, the pool is the
reduction :meth:`GlobalPool.reduce`, ``amax`` or ``mean`` over (H, W), whose backward is deterministic.
Its forward values are the pool's (a mean's may differ in the last bit: another summation order); where
several positions tie for a channel's maximum, ``amax`` shares the gradient among them, where the max-pool
gives it to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("max", "avg")


class GlobalPool(nn.Module):
    """``kind`` ``max`` or ``avg`` over all spatial positions; no parameters or buffers."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self.kind = kind

    def extra_repr(self) -> str:
        return repr(self.kind)

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """The reduction with a deterministic backward: ``amax`` / ``mean`` over the last two axes."""
        return x.amax((-2, -1), keepdim=True) if self.kind == "max" else x.mean((-2, -1), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return self.reduce(x)
        return F.adaptive_max_pool2d(x, 1) if self.kind == "max" else F.adaptive_avg_pool2d(x, 1)
