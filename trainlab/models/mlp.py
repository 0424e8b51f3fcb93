"""``linear`` and ``mlp``: fully connected models over flattened inputs."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.models import MODELS, dropout_rate

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "silu": nn.SiLU, "identity": nn.Identity,
}


class ClassLogSoftmax(nn.LogSoftmax):
    """log_softmax over the class dimension (dim 1 of the (N, K) outputs): log-probabilities for ``nll``."""

    def __init__(self) -> None:
        super().__init__(dim=1)


# what a model's last layer may end with: the hidden activations (sigmoid for bce_prob, identity ...) and
# log_softmax, which only makes sense on the outputs (it normalises over the classes, for nll)
OUTPUT_ACTIVATIONS: dict[str, type[nn.Module]] = {**ACTIVATIONS, "log_softmax": ClassLogSoftmax}


def make_activation(name: str, choices: dict[str, type[nn.Module]] = ACTIVATIONS,
                    key: str = "activation") -> nn.Module:
    """The activation ``name`` of ``choices``; a ConfigError naming the config ``key`` and the valid names."""
    from trainlab.registry import did_you_mean

    if name not in choices:
        raise ConfigError(
            f"unknown model.{key} {short_repr(name)}{did_you_mean(str(name), list(choices))} "
            f"(valid: {', '.join(choices)})"
        )
    return choices[name]()


def make_output_activation(name: str, output_dim: int) -> nn.Module:
    """``model.output_activation``: any hidden activation, or log_softmax over the ``output_dim`` classes
    (refused on one output, where it is 0 whatever the input: one logit takes bce, or sigmoid with bce_prob)."""
    activation = make_activation(name, OUTPUT_ACTIVATIONS, "output_activation")
    if isinstance(activation, nn.LogSoftmax) and output_dim == 1:
        raise ConfigError("model.output_activation log_softmax over 1 output is 0 for every input; it is for one "
                          "output per class (loss nll); one logit takes loss bce, or sigmoid with bce_prob")
    return activation


def _with_output(model: nn.Module, output_dim: int, output_activation: str | None) -> nn.Module:
    """Append e.g. a sigmoid for losses on probabilities (bce_prob) or log_softmax for log-probabilities
    (nll); logits (cross_entropy, bce) need none."""
    if output_activation is None:
        return model
    return nn.Sequential(model, make_output_activation(output_activation, output_dim))


@MODELS.register("linear")
def linear(input_shape: tuple[int, ...], output_dim: int, output_activation: str | None = None) -> nn.Module:
    """y = W x + b on the flattened input (linear or logistic regression, softmax regression).

    ``output_activation: sigmoid`` gives the textbook logistic regression p = sigmoid(W x + b) (for
    bce_prob), ``log_softmax`` the log-probabilities log softmax(W x + b) that nll takes.
    """
    in_features = math.prod(input_shape)
    if len(input_shape) == 1:
        return _with_output(nn.Linear(in_features, output_dim), output_dim, output_activation)
    return _with_output(nn.Sequential(nn.Flatten(), nn.Linear(in_features, output_dim)), output_dim,
                        output_activation)


def _mlp_values(hidden: Any, dropout: Any) -> float:
    """Refuse what :func:`mlp` refuses from ``hidden`` and ``dropout`` alone (its ``check_values``); the
    dropout rate as a float."""
    dropout = dropout_rate("mlp", dropout)
    if not isinstance(hidden, list | tuple) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hidden):
        raise ConfigError(f"model 'mlp': hidden must be a list of layer sizes, e.g. [128, 64]; got {hidden!r}")
    if any(int(h) < 1 for h in hidden):
        raise ConfigError(f"model 'mlp': hidden sizes must be whole numbers >= 1, e.g. [128, 64]; "
                          f"got hidden={list(hidden)}")
    if dropout > 0 and not hidden:  # it would train exactly as dropout 0 (linear refuses the option outright)
        raise ConfigError(f"model 'mlp': dropout acts after each hidden layer, and hidden=[] has none, so "
                          f"dropout={short_repr(dropout)} would do nothing; give a hidden layer (hidden: [64]) or "
                          "drop dropout (dropout: 0)")
    return dropout


@MODELS.register("mlp")
def mlp(input_shape: tuple[int, ...], output_dim: int, hidden: list[int] = (128, 64),
        activation: str = "relu", dropout: float = 0.0, output_activation: str | None = None) -> nn.Module:
    """Flatten -> [Linear -> activation -> Dropout] per hidden size -> Linear [-> output_activation].

    ``dropout`` acts after the hidden layers only: with ``hidden: []`` (a linear model) a rate above 0 is a
    ConfigError rather than a model that trains as without it.

    ``output_activation``: none for logits; sigmoid (bce_prob), log_softmax (nll) or another activation."""
    dropout = _mlp_values(hidden, dropout)
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    width = math.prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, int(size)), _activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, output_dim))
    if output_activation is not None:
        layers.append(make_output_activation(output_activation, output_dim))
    return nn.Sequential(*layers)


mlp.check_values = lambda options: _mlp_values(options["hidden"], options["dropout"])  # type: ignore[attr-defined]

_activation = make_activation
