"""Global max pooling of a feature map over its spatial positions, (N, C, H, W) -> (N, C, 1, 1).

:class:`GlobalMaxPool` runs ``nn.AdaptiveMaxPool2d(1)``'s kernel, so a run computes the numbers of the
module it stands for. PyTorch has no deterministic CUDA backward for that pool: under
``torch.use_deterministic_algorithms(True)`` (``runtime.deterministic: true``) its backward raises on a GPU.
There, and only there, the pool is :meth:`GlobalMaxPool.reduce`, ``amax`` over (H, W), whose backward is
deterministic: the same forward values; where several positions tie for a channel's maximum, ``amax``
shares the gradient among them, where the max-pool gives it to one. (The average pool needs no such
stand-in: ``adaptive_avg_pool2d`` to 1x1 is a mean, whose backward is deterministic.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GlobalMaxPool(nn.Module):
    """The largest value of each channel over all spatial positions; no parameters or buffers."""

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """The reduction with a deterministic backward: ``amax`` over the last two axes."""
        return x.amax((-2, -1), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return self.reduce(x)
        return F.adaptive_max_pool2d(x, 1)
