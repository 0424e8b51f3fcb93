"""Weight initializers, applied per layer type with biases zeroed.

An initializer factory is ``factory(**kwargs) -> fn(weight_tensor)`` that fills a
weight in place. :func:`initialize` applies it to every Linear / Conv / Embedding
weight and sets their biases to 0; normalisation layers keep weight 1, bias 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainlab.registry import Registry

Initializer = Callable[[torch.Tensor], Any]
INITIALIZERS: Registry = Registry("initializer")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


@INITIALIZERS.register("zeros")
def zeros() -> Initializer:
    """w = 0 (a hidden layer initialised so cannot break symmetry: every unit learns the same)."""
    return nn.init.zeros_


@INITIALIZERS.register("constant")
def constant(value: float = 0.01) -> Initializer:
    """w = value."""
    return lambda w: nn.init.constant_(w, value)


@INITIALIZERS.register("normal")
def normal(mean: float = 0.0, std: float = 0.01) -> Initializer:
    """w ~ N(mean, std^2)."""
    return lambda w: nn.init.normal_(w, mean, std)


@INITIALIZERS.register("uniform")
def uniform(low: float = -0.05, high: float = 0.05) -> Initializer:
    """w ~ U(low, high)."""
    return lambda w: nn.init.uniform_(w, low, high)


@INITIALIZERS.register("xavier_uniform")
def xavier_uniform(gain: float = 1.0) -> Initializer:
    """Glorot: w ~ U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))."""
    return lambda w: nn.init.xavier_uniform_(w, gain)


@INITIALIZERS.register("xavier_normal")
def xavier_normal(gain: float = 1.0) -> Initializer:
    """Glorot: w ~ N(0, gain^2 2 / (fan_in + fan_out))."""
    return lambda w: nn.init.xavier_normal_(w, gain)


@INITIALIZERS.register("kaiming_uniform")
def kaiming_uniform(nonlinearity: str = "relu", mode: str = "fan_in") -> Initializer:
    """He: w ~ U(-b, b), b = sqrt(6 / fan_in) for ReLU."""
    return lambda w: nn.init.kaiming_uniform_(w, mode=mode, nonlinearity=nonlinearity)


@INITIALIZERS.register("kaiming_normal")
def kaiming_normal(nonlinearity: str = "relu", mode: str = "fan_in") -> Initializer:
    """He: w ~ N(0, 2 / fan_in) for ReLU."""
    return lambda w: nn.init.kaiming_normal_(w, mode=mode, nonlinearity=nonlinearity)


@INITIALIZERS.register("orthogonal")
def orthogonal(gain: float = 1.0) -> Initializer:
    """w = gain Q, Q from the QR decomposition of a Gaussian matrix (Saxe et al. 2014)."""
    return lambda w: nn.init.orthogonal_(w, gain)


@torch.no_grad()
def initialize(model: nn.Module, spec: str | dict[str, Any]) -> None:
    fill = INITIALIZERS.build(spec)
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            fill(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
