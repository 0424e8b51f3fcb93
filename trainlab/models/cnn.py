"""``cnn1d`` and ``cnn2d``: small convolutional nets (conv -> norm -> act -> pool blocks, then a head)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, DataError
from trainlab.models import MODELS, dropout_rate, positive_size
from trainlab.models.mlp import make_activation


def _pooled(size: int, kernel: int, pool: int) -> int:
    """One block's output size along one axis: conv (padding kernel // 2) then max-pool ``pool``; 0: too small."""
    size += 2 * (kernel // 2) - kernel + 1  # odd kernels keep the size, even ones add one
    return size // pool if pool > 1 else size


def _smallest_input(stages: int, kernel: int, pool: int) -> int:
    """The smallest size along one axis that ``stages`` blocks pool down to at least 1 (worked backwards)."""
    needed = 1
    for _ in range(stages):
        needed = max(1, pool * needed - (2 * (kernel // 2) - kernel + 1))
    return needed


def _check_pooling_fits(dims: int, sizes: tuple[int, ...], stages: int, kernel: int, pool: int) -> None:
    """Refuse, at build time, inputs that the pooling stages would shrink below one pixel (or step).

    Without this, torch fails at the first batch: "Output size is too small", or with BatchNorm "Expected
    more than 1 value per channel when training".
    """
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (kernel, pool)) or kernel < 1 or pool <= 1:
        return  # no pooling, or options torch itself refuses
    sizes = tuple(int(s) for s in sizes)
    fitting, current = 0, sizes
    while fitting < stages:
        current = tuple(_pooled(s, kernel, pool) for s in current)
        if min(current) < 1:
            break
        fitting += 1
    if fitting == stages:
        return
    smallest = _smallest_input(stages, kernel, pool)
    fewer = (f"at most {fitting} model.channels entries" if fitting else
             "model.pool: 1 (no pooling)")
    if dims == 2:
        shown = "x".join(str(s) for s in sizes)
        raise ConfigError(
            f"model 'cnn2d': images of {shown} are too small for {stages} pooling stages of {pool} "
            f"(need >= {smallest}x{smallest}); use {fewer}, larger images, or resize them "
            f"(data.size: [{smallest}, {smallest}] for an image_folder)")
    raise ConfigError(
        f"model 'cnn1d': inputs of length {sizes[0]} are too small for {stages} pooling stages of {pool} "
        f"(need length >= {smallest}); use {fewer}, longer inputs, or a smaller model.pool")


def _layout_hint(dims: int, input_shape: tuple[int, ...]) -> str:
    """How to give a ``cnn{dims}d`` inputs of one channel when ``input_shape`` lacks the channel axis
    (``"; ..."``), else nothing. Only the mnist1d source has channels_first; the model does not know the
    source, so a 1-D row names both ways."""
    if dims == 1 and len(input_shape) == 1:
        return ("; for mnist1d set data.channels_first: true; other rows of features suit model: mlp, or an npz "
                "source with x saved shaped (N, 1, length)")
    if dims == 2 and len(input_shape) == 2:
        height, width = input_shape
        return f"; for images of one channel save x shaped (N, 1, {height}, {width}), e.g. x[:, None]"
    if dims == 2 and len(input_shape) == 1:
        return "; rows of features suit model: mlp, or save x shaped (N, channels, height, width)"
    return ""


def _conv_values(model: str, channels: Any, kernel: Any, pool: Any, hidden: Any,
                 dropout: Any) -> tuple[int, int, int | None, float]:
    """Refuse what ``cnn1d``/``cnn2d`` refuse from their options alone, whatever the input (their
    ``check_values``); ``(kernel, pool, hidden, dropout)`` as the layers take them."""
    if not isinstance(channels, list | tuple) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
        raise ConfigError(f"model '{model}': channels must be a list of positive channel counts, e.g. [32, 64]; "
                          f"got channels={short_repr(channels)}")
    # 0 or a negative pool / hidden used to mean "off" (the code tested pool > 1 and hidden for truth), a
    # negative dropout too: refused, so a typo is not a different model; pool 1 and hidden null are "off"
    return (positive_size(model, "kernel", kernel), positive_size(model, "pool", pool, note="1: no pooling"),
            positive_size(model, "hidden", hidden, allow_none=True, note="null: no hidden layer"),
            dropout_rate(model, dropout))


def _conv_stack(dims: int, input_shape: tuple[int, ...], output_dim: int, channels: list[int], kernel: int,
                pool: int, batch_norm: bool, activation: str, dropout: float, hidden: int | None) -> nn.Module:
    model = f"cnn{dims}d"
    kernel, pool, hidden, dropout = _conv_values(model, channels, kernel, pool, hidden, dropout)
    if len(input_shape) != dims + 1:
        layout = "(channels, length)" if dims == 1 else "(channels, height, width)"
        # the data's shape, not the model's options: exit 3, as a config that does not fit its data (README)
        raise DataError(f"model '{model}' expects inputs shaped {layout}; got {tuple(input_shape)}"
                        f"{_layout_hint(dims, tuple(input_shape))}")
    _check_pooling_fits(dims, input_shape[1:], len(channels), kernel, pool)
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
    # the flatten size, measured instead of hand-computed; in eval mode, where BatchNorm takes a batch of one
    features.eval()
    with torch.no_grad():
        flat = features(torch.zeros(1, *input_shape)).numel()
    features.train()
    head: list[nn.Module] = [nn.Flatten()]
    if dropout > 0:
        head.append(nn.Dropout(dropout))
    if hidden is not None:
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


def _conv_check(model: str) -> Callable[[dict[str, Any]], object]:
    return lambda options: _conv_values(model, options["channels"], options["kernel"], options["pool"],
                                        options["hidden"], options["dropout"])


cnn1d.check_values = _conv_check("cnn1d")  # type: ignore[attr-defined]
cnn2d.check_values = _conv_check("cnn2d")  # type: ignore[attr-defined]
