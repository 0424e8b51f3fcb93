"""Model registry. A model factory is ``factory(input_shape, output_dim, **kwargs) -> nn.Module``.

``input_shape`` excludes the batch dimension; ``output_dim`` is what the loss
needs (1 for regression with one target or a binary logit, K for K-class logits).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from trainlab.registry import Registry

MODELS: Registry = Registry("model")


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)

    model = MODELS.build(spec, input_shape, output_dim)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model factory '{spec.get('name')}' returned {type(model).__name__}, not nn.Module")
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
