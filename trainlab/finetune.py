"""Transfer-learning helpers: freeze the backbone, unfreeze later, layer-wise learning rates, LoRA.

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
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from torch import nn

from trainlab.errors import ConfigError
from trainlab.optim.decay_split import weight_ids
from trainlab.registry import did_you_mean

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
        _check_lora(**lora)


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


# ---------------------------------------------------------------------------
# LoRA (peft)
# ---------------------------------------------------------------------------


def _check_lora(rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                target_modules: Sequence[str] | None = None) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"lora.rank must be an integer >= 1; got {rank!r}")
    if not float(alpha) > 0:
        raise ConfigError(f"lora.alpha must be > 0; got {alpha}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"lora.dropout must be in [0, 1); got {dropout}")
    if target_modules is not None and (isinstance(target_modules, str) or not all(isinstance(t, str) for t in target_modules)
                                       or not target_modules):
        raise ConfigError(f"lora.target_modules must be a non-empty list of module names; got {target_modules!r}")


_LORA_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _named_by(name: str, target: str) -> bool:
    """peft's rule for a ``target_modules`` entry: the module's full name equals it or ends in ``.target``."""
    return name == target or name.endswith(f".{target}")


def _full_rank(module: nn.Module) -> int:
    """The largest rank an update of ``module``'s weight can have: min(inputs, outputs), a conv's inputs
    being in_channels / groups x its kernel's size (peft's A is a conv of the same kernel)."""
    if isinstance(module, nn.Linear):
        return min(module.in_features, module.out_features)
    inputs = module.weight.shape[1] * math.prod(module.weight.shape[2:])
    return min(inputs, module.out_channels)


def _check_rank_fits(model: nn.Module, targets: Sequence[str], rank: int) -> None:
    """ConfigError when ``rank`` exceeds every targeted layer's full rank (:func:`_full_rank`): B A of rank r
    holds r (in + out) numbers per layer, so lora.rank: 100000 built gigabytes of adapters (it hung) that
    can express nothing rank min(in, out) does not. Targets are matched as peft matches them (the full
    name, or a name ending in ``.target``); when none is, peft's own error names them."""
    layers = {name: module for name, module in model.named_modules() if isinstance(module, _LORA_LAYER_TYPES)
              and any(_named_by(name, target) for target in targets)}
    if not layers:
        return
    widest = max(layers, key=lambda name: _full_rank(layers[name]))
    full = _full_rank(layers[widest])
    if rank > full:
        shape = "x".join(str(d) for d in layers[widest].weight.shape)
        raise ConfigError(f"strategy.finetune.lora.rank={rank} exceeds the model's hidden size: the widest adapted "
                          f"layer '{widest}' (weight {shape}) has full rank {full}; use lora.rank <= {full} "
                          "(a rank of 4-64 is usual)")


def _target_endings(model: nn.Module) -> list[str]:
    """What ``target_modules`` can name: the last part of each adaptable backbone layer's name (peft matches
    name endings), sorted."""
    return sorted({name.rsplit(".", 1)[-1] for name in default_lora_targets(model)})


def _check_targets_exist(model: nn.Module, targets: Sequence[str]) -> None:
    """ConfigError for the first target that names no module at all (peft's rule: a module's full name equals
    it or ends in ``.target``), with the closest adaptable layer ending (:func:`trainlab.registry.did_you_mean`).
    peft refuses a list only when no target matched, so a typo beside a valid name (``[query, valeu]``)
    would adapt fewer layers without a word."""
    names = [name for name, _ in model.named_modules() if name]
    for target in targets:
        if not any(_named_by(name, target) for name in names):
            endings = _target_endings(model)
            raise ConfigError(f"strategy.finetune.lora.target_modules: '{target}' matched no supported layer (no module "
                              f"is named so or ends in '.{target}'); the backbone's Linear/Conv layers end in: "
                              f"{', '.join(endings[:20])}{did_you_mean(str(target), endings)}")


def _types_named(model: nn.Module, targets: Sequence[str]) -> dict[str, list[str]]:
    """The class names of the modules each of ``targets`` names (:func:`_named_by`), for those that name no
    Linear/Conv layer (a container such as BERT's ``attention``); for every target where each names one."""
    named = {target: [module for name, module in model.named_modules() if _named_by(name, target)]
             for target in targets}
    odd = {target: modules for target, modules in named.items()
           if not any(isinstance(module, _LORA_LAYER_TYPES) for module in modules)} or named
    return {target: sorted({type(module).__name__ for module in modules}) for target, modules in odd.items()}


def default_lora_targets(model: nn.Module) -> list[str]:
    """Every Linear/Conv1d/Conv2d of the backbone (QLoRA's all-linear-layers practice).

    Projections inside ``nn.MultiheadAttention`` are skipped: it reads ``out_proj.weight``
    directly, so an adapter there would have no effect.
    """
    _, head_params = split_backbone_head(model)
    head_ids = {id(p) for p in head_params}
    inside_attention = {id(m) for a in model.modules() if isinstance(a, nn.MultiheadAttention) for m in a.modules()}
    return [name for name, module in model.named_modules()
            if isinstance(module, _LORA_LAYER_TYPES) and id(module) not in inside_attention
            and not any(id(p) in head_ids for p in module.parameters())]


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               target_modules: Sequence[str] | None = None) -> nn.Module:
    """Wrap ``model`` with LoRA adapters (Hu et al. 2021) via peft; only adapters and head train.

    Each targeted layer W becomes W x + (alpha / rank) B A x with A (rank x in) and B (out x rank),
    B = 0 at the start, so the wrapped model initially computes the same function. Module names
    follow peft: a name matches a module whose full name equals it or ends with ``.name``
    (``["query", "value"]`` for BERT's attention as in the LoRA paper). ``None`` targets every
    backbone Linear/Conv (:func:`default_lora_targets`). Returns the ``peft.PeftModel``; its
    ``head`` attribute still reaches the model's head.
    """
    _check_lora(rank, alpha, dropout, target_modules)
    try:
        import peft
    except ImportError as exc:
        raise ConfigError("strategy.finetune.lora needs the 'lora' extra: pip install 'trainlab[lora]'") from exc
    targets = list(target_modules) if target_modules is not None else default_lora_targets(model)
    if not targets:
        raise ConfigError("lora: the backbone has no Linear/Conv layers to adapt; set lora.target_modules")
    _check_targets_exist(model, targets)
    _check_rank_fits(model, targets, rank)
    _, head_params = split_backbone_head(model)
    config = peft.LoraConfig(r=rank, lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=targets,
                             bias="none")
    types = _types_named(model, targets)  # read before peft wraps the layers in place
    endings = _target_endings(model)
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:  # its text holds the module's repr, many lines long: the modules' types instead
        named = "; ".join(f"'{target}' names {', '.join(kinds)}" for target, kinds in types.items())
        raise ConfigError(f"strategy.finetune.lora.target_modules={targets}: peft cannot adapt every module they "
                          f"name ({named}); the backbone's Linear/Conv layers end in: {', '.join(endings[:20])}") from exc
    for parameter in head_params:  # peft freezes everything that is not an adapter; the new head must train
        parameter.requires_grad_(True)
    return wrapped


def merge_lora(wrapped: nn.Module, base: nn.Module, trainable: dict[int, bool]) -> nn.Module:
    """``base`` (the module :func:`apply_lora` wrapped as ``wrapped``) with the adapters merged into its own
    layers, W <- W + (alpha / rank) B A (peft's ``merge_and_unload``): the same function in eval mode, its own
    layer types and ``state_dict`` keys again, and each parameter's ``requires_grad`` as ``trainable`` (by
    ``id``, taken before the wrap) recorded it, where peft froze everything but the adapters. For
    :func:`trainlab.fit`, whose module is the user's: a plain ``fit`` of it later trains all of it, and its
    saved weights load into a fresh instance of the user's class."""
    wrapped.merge_and_unload()  # in place: peft gives back the model it wrapped, ``base``
    for parameter in base.parameters():
        parameter.requires_grad_(trainable.get(id(parameter), True))
    return base


def trainable_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """The parameters an optimizer should hold after freezing or LoRA."""
    return (p for p in model.parameters() if p.requires_grad)
