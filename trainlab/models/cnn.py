"""``cnn1d`` and ``cnn2d``: small convolutional nets (conv -> norm -> act -> pool blocks, then a head)."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.models import MODELS
from trainlab.models.mlp import make_activation


def _conv_stack(dims: int, input_shape: tuple[int, ...], output_dim: int, channels: list[int], kernel: int,
                pool: int, batch_norm: bool, activation: str, dropout: float, hidden: int | None) -> nn.Module:
    if not isinstance(channels, list | tuple) or not all(isinstance(c, int) and c > 0 for c in channels):
        raise ConfigError(f"model.channels must be a list of positive channel counts, e.g. [32, 64]; got {channels!r}")
    if len(input_shape) != dims + 1:
        layout = "(channels, length)" if dims == 1 else "(channels, height, width)"
        raise ConfigError(
            f"cnn{dims}d expects inputs shaped {layout}; got {tuple(input_shape)}"
            + (" (set data.channels_first: true)" if dims == 1 and len(input_shape) == 1 else "")
        )
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    pooling = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
    layers: list[nn.Module] = []
    width = input_shape[0]
    for size in channels:
        layers.append(conv(width, size, kernel, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(norm(size))
        layers.append(make_activation(activation))
        if pool > 1:
            layers.append(pooling(pool))
        width = size
    features = nn.Sequential(*layers)
    with torch.no_grad():  # the flatten size, measured instead of hand-computed
        flat = features(torch.zeros(1, *input_shape)).numel()
    head: list[nn.Module] = [nn.Flatten()]
    if dropout > 0:
        head.append(nn.Dropout(dropout))
    if hidden:
        head += [nn.Linear(flat, hidden), make_activation(activation), nn.Linear(hidden, output_dim)]
    else:
        head.append(nn.Linear(flat, output_dim))
    return nn.Sequential(features, nn.Sequential(*head))


@MODELS.register("cnn1d")
def cnn1d(input_shape: tuple[int, ...], output_dim: int, channels: list[int] = (32, 32, 32), kernel: int = 5,
          pool: int = 2, batch_norm: bool = False, activation: str = "relu", dropout: float = 0.0,
          hidden: int | None = None) -> nn.Module:
    """Conv1d blocks over (C, L) signals, then a linear head."""
    return _conv_stack(1, input_shape, output_dim, channels, kernel, pool, batch_norm, activation,
                       dropout, hidden)


@MODELS.register("cnn2d")
def cnn2d(input_shape: tuple[int, ...], output_dim: int, channels: list[int] = (32, 64), kernel: int = 3,
          pool: int = 2, batch_norm: bool = False, activation: str = "relu", dropout: float = 0.0,
          hidden: int | None = None) -> nn.Module:
    """Conv2d blocks over (C, H, W) images, then a linear head."""
    return _conv_stack(2, input_shape, output_dim, channels, kernel, pool, batch_norm, activation,
                       dropout, hidden)
