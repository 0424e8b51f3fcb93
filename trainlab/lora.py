"""LoRA adapters (Hu et al. 2021) through peft: ``strategy.finetune.lora: {rank, alpha, dropout, target_modules}``.

Each targeted layer W becomes W x + (alpha / rank) B A x with A (rank x in) and B (out x rank), B = 0 at
the start, so the wrapped model first computes the same function; only the adapters and the model's head
train (the head from :func:`trainlab.finetune.split_backbone_head`). Targets are matched as peft matches
them: a module whose full name equals the target or ends in ``.target``. :func:`apply_lora` checks the
options, the targets and the rank against the model before peft wraps it; :func:`merge_lora` folds the
adapters back into the user's own layers when ``trainlab.fit`` ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from trainlab.errors import ConfigError
from trainlab.finetune import split_backbone_head
from trainlab.registry import did_you_mean


def check_lora_options(rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                       target_modules: Sequence[str] | None = None) -> None:
    """ConfigError naming the first ``strategy.finetune.lora`` option out of range (no model needed)."""
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
    check_lora_options(rank, alpha, dropout, target_modules)
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
