"""Transfer-learning helpers: freeze the backbone, unfreeze later, layer-wise learning rates (LoRA adapters:
:mod:`trainlab.lora`).

The config section is ``strategy.finetune``::

    freeze: bool                      # train only the head at first
    unfreeze_after_epochs: int|None   # then, from this epoch on (0-based), train everything
    layerwise_lr_decay: float|None    # lr of a layer = base_lr * decay^(its distance below the head)
    lora: {rank, alpha, dropout, target_modules} | None

Backbone and head (:func:`split_backbone_head`): a model that has a ``head`` attribute (every
trainlab zoo model that suits fine-tuning: ``resnet``, ``airbench``, ``cifar_tutorial_cnn``,
``transformer_encoder``, ``hf_pretrained``) uses it, and everything else is the backbone. A model
with only ``backbone`` gets everything else as its head. Otherwise the last child module that
has parameters is the head (the final ``nn.Linear`` of an ``mlp``, the classifier block of a
``cnn2d``); a model without children is all head.

Freezing only sets ``requires_grad``; BatchNorm layers in a frozen backbone still update their
running statistics in train mode unless :func:`frozen_norms_to_eval` is called after
``model.train()``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from torch import nn

from trainlab.errors import ConfigError
from trainlab.optim.decay_split import weight_ids

_FROZEN_ATTR = "_trainlab_frozen_by_finetune"  # names of the parameters freeze_backbone froze


# ---------------------------------------------------------------------------
# Backbone / head split, counting
# ---------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside a peft ``PeftModel`` (``base_model.model``), else the model."""
    peft = sys.modules.get("peft")  # a PeftModel exists only if peft was imported
    if peft is not None and isinstance(model, peft.PeftModel):
        return model.base_model.model
    return model


def _head_module(model: nn.Module) -> nn.Module | None:
    """The head as a module, or None when only ``backbone`` is declared."""
    model = _unwrap(model)
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return head
    if isinstance(getattr(model, "backbone", None), nn.Module):
        return None
    with_params = [child for child in model.children() if any(True for _ in child.parameters())]
    return with_params[-1] if with_params else model


def split_backbone_head(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters, head parameters), in ``model.parameters()`` order; see the module docstring."""
    head = _head_module(model)
    if head is None:
        backbone_ids = {id(p) for p in _unwrap(model).backbone.parameters()}
        head_ids = {id(p) for p in model.parameters()} - backbone_ids
    else:
        head_ids = {id(p) for p in head.parameters()}
    backbone_params = [p for p in model.parameters() if id(p) not in head_ids]
    head_params = [p for p in model.parameters() if id(p) in head_ids]
    return backbone_params, head_params


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """{"trainable": elements with requires_grad, "total": all elements}, each shared tensor once."""
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad), "total": sum(p.numel() for p in params)}


# ---------------------------------------------------------------------------
# Freezing
# ---------------------------------------------------------------------------


def freeze_backbone(model: nn.Module) -> int:
    """Set ``requires_grad=False`` on every trainable backbone parameter; returns how many were frozen.

    The frozen parameters are remembered so that :func:`unfreeze_all` restores exactly them:
    parameters a model keeps frozen by design (airbench's BatchNorm scales, a whitened stem)
    stay frozen.
    """
    backbone_params, _ = split_backbone_head(model)
    to_freeze = {id(p) for p in backbone_params if p.requires_grad}
    frozen: set[str] = set(getattr(model, _FROZEN_ATTR, ()))
    for name, parameter in model.named_parameters():
        if id(parameter) in to_freeze:
            parameter.requires_grad_(False)
            frozen.add(name)
    object.__setattr__(model, _FROZEN_ATTR, frozen)  # a plain attribute, not a module or buffer
    return len(to_freeze)


def unfreeze_all(model: nn.Module) -> int:
    """Make trainable again every parameter :func:`freeze_backbone` froze; returns how many."""
    frozen = getattr(model, _FROZEN_ATTR, set())
    count = 0
    for name, parameter in model.named_parameters():
        if name in frozen:
            parameter.requires_grad_(True)
            count += 1
    model.__dict__.pop(_FROZEN_ATTR, None)  # no longer frozen by fine-tuning (frozen_by_finetune: False)
    return count


def finetune_frozen_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters :func:`freeze_backbone` froze and :func:`unfreeze_all` would make trainable again, in
    ``model.named_parameters()`` order; none when its freezing is not in effect (:func:`frozen_by_finetune`)."""
    frozen = getattr(model, _FROZEN_ATTR, set())
    return [parameter for name, parameter in model.named_parameters() if name in frozen]


def frozen_by_finetune(model: nn.Module) -> bool:
    """Whether :func:`freeze_backbone`'s freezing is in effect on ``model``: it was applied and neither
    :func:`unfreeze_all` nor the end of :func:`backbone_frozen_for_now` has undone it since. True also when
    it found nothing left to freeze (a backbone a model keeps frozen by design); False for parameters
    frozen any other way (LoRA, a model's own fixed layers)."""
    return hasattr(model, _FROZEN_ATTR)


@contextlib.contextmanager
def backbone_frozen_for_now(model: nn.Module) -> Iterator[int]:
    """Within the block the backbone is frozen as :func:`freeze_backbone` freezes it (yields how many
    parameters that froze); afterwards exactly those are trainable again and the model's freezing mark is
    what it was. Parameters frozen before the block (by an earlier ``freeze_backbone``, or by design) stay
    frozen, which :func:`unfreeze_all` would not leave them."""
    marked_before = getattr(model, _FROZEN_ATTR, None)  # freeze_backbone sets a new set: this one stays as it is
    backbone_params, _ = split_backbone_head(model)
    newly_frozen = [p for p in backbone_params if p.requires_grad]
    count = freeze_backbone(model)
    try:
        yield count
    finally:
        for parameter in newly_frozen:
            parameter.requires_grad_(True)
        if marked_before is None:
            model.__dict__.pop(_FROZEN_ATTR, None)
        else:
            object.__setattr__(model, _FROZEN_ATTR, marked_before)


def backbone_frozen_at(epoch: int, freeze: bool, unfreeze_after_epochs: int | None) -> bool:
    """Whether the backbone is frozen during ``epoch`` (0-based): frozen for epochs < unfreeze_after_epochs."""
    if not freeze:
        return False
    return unfreeze_after_epochs is None or epoch < unfreeze_after_epochs


def apply_epoch_freezing(model: nn.Module, epoch: int, freeze: bool, unfreeze_after_epochs: int | None) -> bool:
    """Freeze or unfreeze for ``epoch`` (idempotent; call at every epoch start, also after a resume).

    Returns True when the backbone is frozen for this epoch. The optimizer must already hold
    the frozen parameters (``layerwise_param_groups(..., include_frozen=True)``) for unfreezing
    to have an effect; torch optimizers skip parameters whose ``grad`` is None.
    """
    frozen = backbone_frozen_at(epoch, freeze, unfreeze_after_epochs)
    if frozen:
        freeze_backbone(model)
    else:
        unfreeze_all(model)
    return frozen


def frozen_norms_to_eval(model: nn.Module) -> int:
    """Put batch-norm layers whose parameters are all frozen in eval mode (running stats fixed).

    Call after each ``model.train()``; returns the number of layers switched.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
                count += 1
    return count


def check_finetune_section(finetune: Any) -> dict[str, Any] | None:
    """:func:`check_finetune_options` on a config's ``strategy.finetune`` section (the run's check as it
    prepares the model, and the preflight's); returns its LoRA options as a dict (None without)."""
    lora = finetune.lora.model_dump() if finetune.lora else None
    check_finetune_options(finetune.freeze, finetune.unfreeze_after_epochs, finetune.layerwise_lr_decay, lora)
    return lora


def check_finetune_options(freeze: bool = False, unfreeze_after_epochs: int | None = None,
                           layerwise_lr_decay: float | None = None, lora: dict[str, Any] | None = None) -> None:
    """Validate a ``strategy.finetune`` section; raises ConfigError naming the bad key."""
    if unfreeze_after_epochs is not None:
        if not freeze:
            raise ConfigError(f"strategy.finetune.unfreeze_after_epochs={unfreeze_after_epochs} needs freeze: true")
        if isinstance(unfreeze_after_epochs, bool) or not isinstance(unfreeze_after_epochs, int) or unfreeze_after_epochs < 1:
            raise ConfigError(f"strategy.finetune.unfreeze_after_epochs must be an integer >= 1; got {unfreeze_after_epochs!r}")
    if layerwise_lr_decay is not None and not 0.0 < float(layerwise_lr_decay) <= 1.0:
        raise ConfigError(f"strategy.finetune.layerwise_lr_decay must be in (0, 1]; got {layerwise_lr_decay}")
    if lora is not None:
        if freeze or unfreeze_after_epochs is not None:
            raise ConfigError("strategy.finetune.lora already freezes everything but the adapters and the head; "
                              "remove freeze / unfreeze_after_epochs")
        unknown = set(lora) - {"rank", "alpha", "dropout", "target_modules"}
        if unknown:
            raise ConfigError(f"unknown strategy.finetune.lora key(s) {sorted(unknown)} (valid: rank, alpha, dropout, target_modules)")
        from trainlab.lora import check_lora_options  # lora builds on this module's backbone/head split

        check_lora_options(**lora)


# ---------------------------------------------------------------------------
# Layer-wise learning rates
# ---------------------------------------------------------------------------


def _is_layer_list(module: nn.Module) -> bool:
    """A ModuleList, or a Sequential of two or more modules of one type (repeated blocks)."""
    if isinstance(module, nn.ModuleList):
        return True
    kinds = {type(child) for child in module.children()}
    return isinstance(module, nn.Sequential) and len(module) >= 2 and len(kinds) == 1


def _holds_layer_list(module: nn.Module) -> bool:
    """A parameter-less wrapper around a list of repeated blocks (BertModel -> BertEncoder -> layer)."""
    if any(True for _ in module.parameters(recurse=False)) or isinstance(module, nn.Sequential):
        return False
    return any(_is_layer_list(child) or _holds_layer_list(child) for child in module.children())


def _layer_units(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The module's layers in forward order.

    Sequential/ModuleList containers and wrappers around a list of repeated blocks are opened;
    any other module (a residual block, a transformer layer, an embedding module) is one layer.
    """
    if not isinstance(module, (nn.Sequential, nn.ModuleList)) and not _holds_layer_list(module):
        return [(prefix, module)]
    units: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        units += _layer_units(child, f"{prefix}.{name}" if prefix else name)
    return units


def model_layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, parameters) per layer, lowest first, head last.

    The backbone is cut into layers by opening containers: for a BERT-like ``backbone``
    (embeddings, encoder.layer[i], pooler) that gives embeddings, encoder.layer.0, ...,
    encoder.layer.N; for ``resnet`` the stem and every residual block; for ``transformer_encoder`` the
    embeddings, each encoder layer, the final norm. Every parameter lands in exactly one layer;
    ones outside any listed module (direct parameters) form a layer just below the head.

    Modules a model names in ``unused_modules`` (``hf_pretrained``: BERT's pooler, whose output its mean
    or [CLS] pooling never reads) are no layer of the path to the head: they come first, lowest, as
    ``unused``, so the top encoder layer is the one just below the head (lr x decay, not decay^2).
    """
    model = _unwrap(model)
    head = _head_module(model)
    _, head_params = split_backbone_head(model)
    head_ids = {id(p) for p in head_params}
    unused = [p for name in getattr(model, "unused_modules", ()) for p in model.get_submodule(name).parameters()
              if id(p) not in head_ids]
    root = getattr(model, "backbone", None)
    if isinstance(root, nn.Module):
        units = _layer_units(root, "backbone")
    else:
        units = [(name, child) for name, child in model.named_children() if child is not head]
        units = [unit for name, child in units for unit in _layer_units(child, name)]
    layers: list[tuple[str, list[nn.Parameter]]] = [("unused", unused)] if unused else []
    seen = head_ids | {id(p) for p in unused}
    for name, unit in units:
        params = [p for p in unit.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            layers.append((name, params))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        layers.append(("other", rest))
    if head_params:
        layers.append(("head", head_params))
    return layers


def layerwise_param_groups(model: nn.Module, base_lr: float, decay: float,
                           include_frozen: bool = False) -> list[dict[str, Any]]:
    """Discriminative learning rates: the head at base_lr, each layer below at decay times the one above.

    lr(layer) = base_lr * decay^k, k = 0 for the head, 1 for the layer just below, ... (ULMFiT,
    Howard & Ruder 2018; layer-wise lr decay for BERT, Sun et al. 2019 / Clark et al. 2020).
    Each layer gives a ``decay`` group (its weights: ndim >= 2, not a bias, not a norm layer's,
    :func:`trainlab.optim.decay_split.weight_ids`) and a ``no_decay`` group (biases, norm gains and shifts;
    ``weight_decay`` 0.0), as :func:`trainlab.optim.param_groups` does. Every group
    carries ``layer`` (its name) and ``lr_scale`` (decay^k): an LR schedule must multiply each
    group's own base lr, not overwrite it. The groups hold the trainable parameters (``requires_grad``);
    ``include_frozen`` also adds those :func:`freeze_backbone` froze and :func:`unfreeze_all` makes trainable
    again (gradual unfreezing needs them in the optimizer from the start). A parameter frozen any other way
    (by the user before training, by a model's design, by LoRA) is never added: nothing unfreezes it, and an
    optimizer holding it would carry it in its state and ``param_groups`` for nothing.
    """
    if not 0.0 < float(decay) <= 1.0:
        raise ConfigError(f"layerwise_lr_decay must be in (0, 1]; got {decay}")
    if float(base_lr) <= 0.0:
        raise ConfigError(f"layerwise_param_groups: base_lr must be > 0; got {base_lr}")
    layers = model_layers(model)
    weight_id_set = weight_ids(model)
    unfrozen_later = {id(p) for p in finetune_frozen_parameters(model)} if include_frozen else set()
    groups: list[dict[str, Any]] = []
    for depth, (name, params) in enumerate(reversed(layers)):
        scale = float(decay) ** depth
        kept = [p for p in params if p.requires_grad or id(p) in unfrozen_later]
        decay_params = [p for p in kept if id(p) in weight_id_set]
        no_decay_params = [p for p in kept if id(p) not in weight_id_set]
        if decay_params:
            groups.append({"params": decay_params, "lr": base_lr * scale, "lr_scale": scale,
                           "layer": name, "group": "decay"})
        if no_decay_params:
            groups.append({"params": no_decay_params, "lr": base_lr * scale, "lr_scale": scale,
                           "layer": name, "group": "no_decay", "weight_decay": 0.0})
    groups.reverse()  # lowest layer first, as in the model
    return groups


def trainable_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """The parameters an optimizer should hold after freezing or LoRA."""
    return (p for p in model.parameters() if p.requires_grad)


_MOVED_TO_LORA = frozenset({"apply_lora", "merge_lora", "default_lora_targets"})


def __getattr__(name: str) -> object:
    """``from trainlab.finetune import apply_lora`` (and ``merge_lora``, ``default_lora_targets``), as scripts
    wrote it before LoRA got its own module (:mod:`trainlab.lora`; a message of trainlab's once said to write
    it so): read from there on first use, as that module imports this one."""
    if name in _MOVED_TO_LORA:
        import trainlab.lora

        return getattr(trainlab.lora, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
