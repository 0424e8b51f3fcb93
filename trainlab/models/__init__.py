"""Model registry. A model factory is ``factory(input_shape, output_dim, **kwargs) -> nn.Module``.

``input_shape`` excludes the batch dimension; ``output_dim`` is what the loss
needs (1 for regression with one target or a binary logit, K for K-class logits).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.registry import Registry

MODELS: Registry = Registry("model")


MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights (16 GB with Adam's moments and the gradients)
UNBOUNDED = frozenset({"hf_pretrained"})  # its size is the checkpoint's, read from a file the user chose


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """``MODELS.build(spec, input_shape, output_dim)``; a built-in model is first built on the meta device
    (no memory) and refused with a ConfigError when it would hold more than :data:`MAX_PARAMETERS`
    parameters: each size option is bounded alone (``config_fields.MAX_MODEL_SIZE``), but two hidden
    layers of 100,000 would make a 40 GB model that fails late, or is killed for memory without a word.
    Only specs that :func:`_may_be_large` are counted: the first meta build of a conv net or a
    transformer costs ~3 s (torch loads its meta kernels). A factory that returns anything but an
    ``nn.Module`` is a ConfigError naming it and what it returned."""
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)

    name = str(spec.get("name", "")).lower()  # the registry's own lookup ignores case
    if name in MODELS.names() and name not in UNBOUNDED and _may_be_large(spec, input_shape):
        with torch.device("meta"):
            total = sum(p.numel() for p in MODELS.build(spec, input_shape, output_dim).parameters())
        if total > MAX_PARAMETERS:
            raise ConfigError(f"model '{name}' would have {total:,} parameters ({total * 4 / 1e9:,.0f} GB as "
                              f"float32); trainlab builds at most {MAX_PARAMETERS:,}: check the model's size "
                              f"options ({', '.join(f'{k}={v}' for k, v in spec.items() if k != 'name') or 'none set'})")
    model = MODELS.build(spec, input_shape, output_dim)
    if not isinstance(model, nn.Module):  # a user's module:attr factory: the config names the wrong thing
        shown = repr(model) if len(repr(model)) <= 60 else f"{repr(model)[:57]}..."
        raise ConfigError(f"model factory '{spec.get('name')}' returned {type(model).__name__} ({shown}), not a "
                          "torch.nn.Module: model.name must name a factory(input_shape, output_dim, **options) "
                          "that returns the model")
    return model


LARGE_OPTION = 2048  # a size option (a width, a channel count) from which the total is counted
LARGE_INPUT = 1 << 20  # input elements per row from which the total is counted
LARGE_FIRST_LAYER = 100_000_000  # input elements x the largest option: a dense first layer's weights


def _may_be_large(spec: dict[str, Any], input_shape: tuple[int, ...]) -> bool:
    """Whether to count a built-in model of ``spec`` before building it: some integer option (nested in
    lists too) other than ``vocab_size`` of at least :data:`LARGE_OPTION`, rows of at least
    :data:`LARGE_INPUT` elements, or rows whose elements times the largest option reach
    :data:`LARGE_FIRST_LAYER` (an MLP of width 2,047 on 600,000 inputs: 1.2e9 weights in its first
    layer). A screen for sizes typed with extra digits, not a proof. ``vocab_size`` (set from the
    data's tokenizer) is left out: the embedding is vocab x ``d_model``, and counting costs a text
    model ~3 s (the meta build loads torch's meta kernels)."""
    stack: list[Any] = [value for key, value in spec.items() if key != "vocab_size"]
    largest = 1
    while stack:
        value = stack.pop()
        if isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            largest = max(largest, value)
    inputs = math.prod(input_shape)
    return largest >= LARGE_OPTION or inputs >= LARGE_INPUT or inputs * largest >= LARGE_FIRST_LAYER


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
