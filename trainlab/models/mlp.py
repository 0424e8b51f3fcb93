"""``linear`` and ``mlp``: fully connected models over flattened inputs."""

from __future__ import annotations

import math

from torch import nn

from trainlab.errors import ConfigError
from trainlab.models import MODELS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "silu": nn.SiLU, "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    from trainlab.registry import did_you_mean

    if name not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation '{name}'{did_you_mean(name, list(ACTIVATIONS))} "
            f"(valid: {', '.join(ACTIVATIONS)})"
        )
    return ACTIVATIONS[name]()


def _with_output(model: nn.Module, output_activation: str | None) -> nn.Module:
    """Append e.g. a sigmoid for losses on probabilities (bce_prob); logits need none."""
    if output_activation is None:
        return model
    return nn.Sequential(model, make_activation(output_activation))


@MODELS.register("linear")
def linear(input_shape: tuple[int, ...], output_dim: int, output_activation: str | None = None) -> nn.Module:
    """y = W x + b on the flattened input (linear or logistic regression, softmax regression).

    ``output_activation: sigmoid`` gives the textbook logistic regression p = sigmoid(W x + b).
    """
    in_features = math.prod(input_shape)
    if len(input_shape) == 1:
        return _with_output(nn.Linear(in_features, output_dim), output_activation)
    return _with_output(nn.Sequential(nn.Flatten(), nn.Linear(in_features, output_dim)), output_activation)


@MODELS.register("mlp")
def mlp(input_shape: tuple[int, ...], output_dim: int, hidden: list[int] = (128, 64),
        activation: str = "relu", dropout: float = 0.0, output_activation: str | None = None) -> nn.Module:
    """Flatten -> [Linear -> activation -> Dropout] per hidden size -> Linear."""
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1); got {dropout}")
    if not isinstance(hidden, list | tuple) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hidden):
        raise ConfigError(f"model 'mlp': hidden must be a list of layer sizes, e.g. [128, 64]; got {hidden!r}")
    if any(int(h) < 1 for h in hidden):
        raise ConfigError(f"model.hidden sizes must be positive; got {list(hidden)}")
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    width = math.prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, int(size)), _activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, output_dim))
    if output_activation is not None:
        layers.append(make_activation(output_activation))
    return nn.Sequential(*layers)


_activation = make_activation
