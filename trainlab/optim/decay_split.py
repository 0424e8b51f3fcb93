"""Which parameters are *weights*: the one rule for weight decay, the L1/L2 penalties and weight fills.

Decoupled weight decay (the optimizer's ``decay`` param groups), the L1/L2 penalties
(:mod:`trainlab.losses.penalties`), the layer-wise groups of fine-tuning and the ``decay`` part of a routed
group all act on the same parameters, the model's **weights**: a parameter is one when

* it has ``ndim >= 2`` (Linear / Conv kernels, embeddings; nanoGPT's ``p.dim() >= 2``),
* it is not a parameter of a normalisation layer (:func:`is_norm_layer`: torch's BatchNorm, InstanceNorm,
  LayerNorm, GroupNorm, RMSNorm, LocalResponseNorm and their subclasses, and custom modules whose class name
  ends in "Norm" or "Normalization", case folded, e.g. T5LayerNorm, LlamaRMSNorm, MyBatchNorm2d; not
  NormedLinear or Normalizer, whose 2-D weights are weights): ``nn.LayerNorm([C, H, W])``'s gain and shift are 3-D, and
  shrinking a gain towards 0 only biases the fit (Hugging Face's Trainer leaves out its ``ALL_LAYERNORM_LAYERS``
  the same way),
* and its name on its module is no bias: ``bias``, or a ``_``-separated name with a ``bias`` part
  (``bias_k``/``bias_v`` of ``nn.MultiheadAttention``, shaped (1, 1, E); ``relative_position_bias_table``).

A parameter registered on the model itself (``self.weight = nn.Parameter(...)`` in the user's model) is
judged by its shape and name alone: the model's own class name says nothing about a norm layer (unless the
model *is* one of torch's). One registered on several modules (tied) is a weight only if it is one on each.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

import torch
from torch import nn

#: torch's normalisation layers (``_NormBase``: BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm1d/2d/3d, lazy ones)
TORCH_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm, nn.LocalResponseNorm)
#: a custom normalisation layer's class name: ends in "Norm" (with a "1d/2d/3d" after it) or "Normalization"
NORM_CLASS_NAME = re.compile(r"norm(?:[123]d)?$|normali[sz]ation$", re.IGNORECASE)


def is_norm_layer(module: nn.Module) -> bool:
    """True for torch's normalisation layers (:data:`TORCH_NORM_LAYERS`) and custom ones by class name
    (:data:`NORM_CLASS_NAME`: T5LayerNorm, LlamaRMSNorm, FusedLayerNorm2d, LayerNormalization; not a cosine
    head's NormedLinear or a Normalizer)."""
    return isinstance(module, TORCH_NORM_LAYERS) or NORM_CLASS_NAME.search(type(module).__name__) is not None


def is_bias_name(attribute: str) -> bool:
    """True for a parameter named as a bias on its module: ``bias``, ``bias_k``, ``in_proj_bias``,
    ``relative_position_bias_table`` (a ``bias`` part between underscores), not ``unbiased_scale``."""
    return "bias" in attribute.lower().split("_")


def is_weight(parameter: torch.Tensor, owner: nn.Module | None, attribute: str) -> bool:
    """The rule of this module for one parameter: ``ndim >= 2``, not named a bias (:func:`is_bias_name`) and,
    when ``owner`` is given (None: registered on the model itself, see below), not owned by a norm layer."""
    return parameter.ndim >= 2 and not is_bias_name(attribute) and (owner is None or not is_norm_layer(owner))


def weight_ids(model: nn.Module) -> set[int]:
    """The ``id`` of every parameter of ``model`` that is a weight (:func:`is_weight`), trainable or not.

    A parameter on the model itself is judged without its owner (its class is the user's model), unless the
    model is one of :data:`TORCH_NORM_LAYERS`.
    """
    verdict: dict[int, bool] = {}
    for module_name, module in model.named_modules():
        owner = module if module_name or isinstance(module, TORCH_NORM_LAYERS) else None
        for attribute, parameter in module.named_parameters(recurse=False):
            verdict[id(parameter)] = verdict.get(id(parameter), True) and is_weight(parameter, owner, attribute)
    return {key for key, weight in verdict.items() if weight}


def weights(model: nn.Module) -> list[nn.Parameter]:
    """The trainable weights of ``model`` (:func:`weight_ids`, ``requires_grad``), in ``parameters()`` order."""
    ids = weight_ids(model)
    return [p for p in model.parameters() if p.requires_grad and id(p) in ids]


def split_by_decay(params: Iterable[nn.Parameter], weight_id_set: Collection[int],
                   no_decay_extra: Iterable[nn.Parameter] = ()) -> list[dict[str, Any]]:
    """``decay`` (the weights among ``params``: ``id`` in ``weight_id_set``, from :func:`weight_ids`; the
    optimizer's weight decay) and ``no_decay`` (the rest: biases, norm gains and shifts, scalars;
    ``weight_decay`` 0) param groups, in ``params`` order.

    ``no_decay_extra`` (e.g. a loss's learned parameters) joins the no-decay group whatever its shape.
    Empty groups are left out.
    """
    params = list(params)
    decay = [p for p in params if id(p) in weight_id_set]
    no_decay = [p for p in params if id(p) not in weight_id_set] + list(no_decay_extra)
    groups = [{"params": decay, "group": "decay"}, {"params": no_decay, "group": "no_decay", "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


__all__ = ["TORCH_NORM_LAYERS", "is_bias_name", "is_norm_layer", "is_weight", "split_by_decay", "weight_ids",
           "weights"]
