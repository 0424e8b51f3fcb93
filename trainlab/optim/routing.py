"""Per-parameter-group routing: ``strategy.optimizer.groups`` sends parameters to their own optimizer and lr.

A config lists groups, each a selector plus overrides::

    optimizer:
      name: nesterov            # the top-level optimizer: every parameter no group selects
      lr: 0.053
      momentum: 0.85
      groups:
        - {name: filters, select: conv_filters, optimizer: muon_conv, lr: 0.24}
        - {name: head, select: head, lr: 0.67, weight_decay: 0.006}

Rules (each one tested in tests/test_optim_routing.py):

* **Selection.** A group's selector fields (``select`` preset, ``match`` glob,
  ``regex``, ``ndim``, ``ndim_at_least``) must all hold for a parameter; at
  least one is required. Parameters are the model's trainable
  ``named_parameters()`` (``requires_grad`` False ones are left out), each
  parameter once; **the first group that matches a parameter takes it**.
  Parameters no group takes stay with the top-level optimizer and lr, split
  into ``decay``/``no_decay`` as without groups; a loss's learned parameters
  join that ``no_decay`` part. A group that takes nothing is a ConfigError
  naming some parameters.
* **Optimizer and options.** ``optimizer`` defaults to the top-level one; a
  group on the same optimizer inherits the top-level options (momentum,
  betas, ...) and overrides the ones it sets; a group on another optimizer
  starts from that optimizer's defaults. Groups with the same optimizer and
  the same options share one ``torch.optim.Optimizer``.
* **lr.** A group's ``lr`` (default: the top-level lr) is stored in its
  param groups, so it is the base lr the LR schedule scales
  (``lr_g(t) = lr_g * schedule(t)``).
* **Weight decay.** An explicit group ``weight_decay`` applies to every
  parameter of the group, biases included (airbench decays its BN biases).
  Without one, the group is split like the top level: the optimizer's own
  weight decay (the top-level ``weight_decay``, with
  ``regularization.weight_decay`` placed in it, for a group on the top-level
  optimizer; ``regularization.weight_decay`` placed as for the top level for
  a group on another optimizer) acts on its weights (``ndim >= 2``, not a
  bias, not a norm layer's: :mod:`trainlab.optim.decay_split`), and its
  other parameters get 0. ``regularization.weight_decay`` is placed in each
  group's final options (the top level's it inherits and its own), so a group
  that makes its optimizer's decay an L2 term (``momentum`` on ``sgd``) is
  refused as the top level would be.
* **Training horizon.** ``train_epochs: E`` trains the group for its first
  ``ceil(E * steps_per_epoch)`` optimizer steps only, its lr on the strategy's
  schedule built over those steps; after them it is frozen (lr 0,
  ``requires_grad`` False). airbench trains its whitening bias so, for 3 epochs.
  The LR adapter applies it (:class:`trainlab.callbacks.lr_adapter.GroupHorizon`).
* Optimizers that need a closure (``lbfgs``) cannot share a step and are refused.

The optimizers built are presented as ONE optimizer, :class:`RoutedOptimizer`,
so the engine (LR schedule, clipping, checkpoints) is unchanged.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS, default_lr, requires_closure
from trainlab.optim.decay_split import is_norm_layer, split_by_decay, weight_ids
from trainlab.optim.weight_decay import place_weight_decay
from trainlab.registry import did_you_mean

# --------------------------------------------------------------------------- which parameter is which


@dataclass(frozen=True)
class NamedParameter:
    """A trainable parameter with what selectors look at: its name, owning module and attribute."""

    name: str  # as in model.named_parameters(), e.g. "backbone.group1.norm1.bias"
    parameter: nn.Parameter
    owner: nn.Module  # the module the parameter is registered on
    attribute: str  # its name on ``owner`` ("weight", "bias", ...)
    in_head: bool  # one of trainlab.finetune.split_backbone_head's head parameters


#: ``select:`` presets, name -> predicate
PRESETS: dict[str, Callable[[NamedParameter], bool]] = {
    # the kernels of Conv1d/2d/3d (and transposed) layers: what airbench gives Muon
    "conv_filters": lambda p: isinstance(p.owner, nn.modules.conv._ConvNd) and p.attribute == "weight",
    "linear_weights": lambda p: isinstance(p.owner, nn.Linear) and p.attribute == "weight",
    "norm_weights": lambda p: is_norm_layer(p.owner) and p.attribute == "weight",
    "norm_biases": lambda p: is_norm_layer(p.owner) and p.attribute == "bias",
    "biases": lambda p: p.attribute == "bias",
    "head": lambda p: p.in_head,
}


def named_trainable_parameters(model: nn.Module) -> list[NamedParameter]:
    """The model's trainable parameters in ``named_parameters()`` order, each once (shared ones by first name)."""
    from trainlab.finetune import split_backbone_head

    _, head = split_backbone_head(model)
    head_ids = {id(p) for p in head}
    out, seen = [], set()
    for module_name, module in model.named_modules():
        for attribute, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            name = f"{module_name}.{attribute}" if module_name else attribute
            out.append(NamedParameter(name, parameter, module, attribute, id(parameter) in head_ids))
    order = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    return sorted(out, key=lambda p: order.get(p.name, len(order)))


# --------------------------------------------------------------------------- one group of the config

SELECTOR_KEYS = ("select", "match", "regex", "ndim", "ndim_at_least")
RULE_KEYS = ("name", *SELECTOR_KEYS, "optimizer", "lr", "weight_decay", "train_epochs")


@dataclass(frozen=True)
class GroupRule:
    """One entry of ``strategy.optimizer.groups``: selector fields, overrides, and the optimizer's options."""

    label: str
    select: str | None = None
    match: str | None = None
    regex: str | None = None
    ndim: int | None = None
    ndim_at_least: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    train_epochs: float | None = None  # not routing's: the LR adapter applies it (builders.group_horizons)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], index: int) -> GroupRule:
        entry = dict(entry)
        where = f"strategy.optimizer.groups[{index}]"
        known = {key: entry.pop(key) for key in RULE_KEYS if key in entry}
        for key in entry:  # a misspelt group key would otherwise be refused as an option of the optimizer
            close = difflib.get_close_matches(str(key), RULE_KEYS, n=1, cutoff=0.85)
            if close:
                raise ConfigError(f"{where}: unknown key '{key}'; did you mean '{close[0]}'? (a group's own keys: "
                                  f"{', '.join(RULE_KEYS)}; other keys are options of its optimizer)")
        rule = cls(label=known.pop("name", None) or f"group{index}", **known,
                   options=entry)
        if all(getattr(rule, key) is None for key in SELECTOR_KEYS):
            raise ConfigError(f"{where} selects nothing: give one of {', '.join(SELECTOR_KEYS)} "
                              f"(e.g. select: conv_filters, match: 'head.*', ndim_at_least: 2)")
        if rule.select is not None and rule.select not in PRESETS:
            raise ConfigError(f"{where}: unknown select preset {short_repr(rule.select)}"
                              f"{did_you_mean(str(rule.select), list(PRESETS))} (valid: {', '.join(PRESETS)})")
        if rule.regex is not None:
            try:
                re.compile(rule.regex)
            except re.error as exc:
                raise ConfigError(f"{where}: regex {short_repr(rule.regex)} does not compile: {exc}") from None
        return rule

    def selects(self, p: NamedParameter) -> bool:
        """True when every selector field given holds for ``p`` (``match``: fnmatch glob; ``regex``: re.search)."""
        return ((self.select is None or PRESETS[self.select](p))
                and (self.match is None or fnmatch.fnmatchcase(p.name, self.match))
                and (self.regex is None or re.search(self.regex, p.name) is not None)
                and (self.ndim is None or p.parameter.ndim == self.ndim)
                and (self.ndim_at_least is None or p.parameter.ndim >= self.ndim_at_least))

    def describe(self) -> str:
        return ", ".join(f"{key}: {getattr(self, key)!r}" for key in SELECTOR_KEYS if getattr(self, key) is not None)


def assign(parameters: list[NamedParameter], rules: list[GroupRule]) -> tuple[list[list[NamedParameter]], list[NamedParameter]]:
    """(the parameters each rule takes, the rest): the first rule that selects a parameter takes it.

    Raises ConfigError for a rule that takes nothing.
    """
    taken: list[list[NamedParameter]] = [[] for _ in rules]
    rest = []
    for p in parameters:
        index = next((i for i, rule in enumerate(rules) if rule.selects(p)), None)
        (rest if index is None else taken[index]).append(p)
    for i, (rule, params) in enumerate(zip(rules, taken, strict=True)):
        if not params:
            names = [p.name for p in parameters]
            shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
            earlier = " not already taken by an earlier group" if any(rule.selects(p) for p in parameters) else ""
            raise ConfigError(f"strategy.optimizer.groups[{i}] ('{rule.label}': {rule.describe()}) matches no "
                              f"trainable parameter{earlier}; parameters: {shown or 'none'}")
    return taken, rest


# --------------------------------------------------------------------------- the composite optimizer


class RoutedOptimizer(torch.optim.Optimizer):
    """Several optimizers over disjoint parameters, behaving as one ``torch.optim.Optimizer``.

    ``param_groups`` is the concatenation of the inner optimizers' param groups
    (the same dicts: writing ``group["lr"]`` here is what the inner optimizer
    reads); each group carries ``"route"`` (its config label) and ``"inner"``
    (the index of its optimizer). ``state`` is a merged read-only view of the
    inner states. ``step(closure)`` evaluates the closure once and steps every
    inner optimizer; ``state_dict`` is ``{"optimizers": [inner state dicts]}``,
    each loaded by its own optimizer's ``load_state_dict``; ``train()``/``eval()``
    reach the inner optimizers that have them (schedule-free).
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        if not optimizers:
            raise ValueError("RoutedOptimizer needs at least one optimizer")
        self.optimizers = list(optimizers)
        for index, inner in enumerate(self.optimizers):
            for group in inner.param_groups:
                group["inner"] = index
        super().__init__(self._inner_groups(), {})

    def _inner_groups(self) -> list[dict[str, Any]]:
        return [group for inner in self.optimizers for group in inner.param_groups]

    @property
    def state(self) -> dict[torch.Tensor, Any]:  # type: ignore[override]
        merged: dict[torch.Tensor, Any] = {}
        for inner in self.optimizers:
            merged.update(inner.state)
        return merged

    @state.setter
    def state(self, value: Any) -> None:
        # torch.optim.Optimizer.__init__ assigns an empty state; the inner optimizers own theirs
        if value:
            raise AttributeError("RoutedOptimizer.state is a view of its optimizers' states; it cannot be set")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for inner in self.optimizers:
            inner.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [inner.state_dict() for inner in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["optimizers"]
        if len(saved) != len(self.optimizers):
            raise ValueError(f"the state holds {len(saved)} routed optimizers; this one has {len(self.optimizers)}")
        for inner, inner_state in zip(self.optimizers, saved, strict=True):
            inner.load_state_dict(inner_state)
        self.param_groups = self._inner_groups()  # load_state_dict gave the inner optimizers new group dicts

    def train(self) -> None:
        for inner in self.optimizers:
            if callable(getattr(inner, "train", None)):
                inner.train()

    def eval(self) -> None:
        for inner in self.optimizers:
            if callable(getattr(inner, "eval", None)):
                inner.eval()


# --------------------------------------------------------------------------- building


@dataclass
class _Inner:
    spec: dict[str, Any]  # name and constructor options (no lr)
    groups: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def _add_groups(inners: dict[str, _Inner], name: str, options: dict[str, Any], lr: float | None, label: str,
                param_groups: list[dict[str, Any]]) -> None:
    """Add ``param_groups`` (routed as ``label``, at ``lr`` or the optimizer's default) to the optimizer
    ``name`` with ``options``, created in ``inners`` on first use."""
    OPTIMIZERS.get(name)  # unknown name: ConfigError with did-you-mean
    if lr is None:
        lr = default_lr(name)
        if lr is None:
            raise ConfigError(f"optimizer '{name}' (strategy.optimizer.groups '{label}') has no default "
                              "learning rate; set lr in the group or strategy.optimizer.lr")
    key = json.dumps([name.lower(), options], sort_keys=True, default=repr)
    inner = inners.setdefault(key, _Inner({"name": name, **options}))
    inner.groups += [{**g, "lr": float(lr), "route": label} for g in param_groups]
    inner.labels.append(label)


def _rule_optimizer(rule: GroupRule, where: str, top_name: str, top: dict[str, Any],
                    weight_decay: float | None) -> tuple[str, dict[str, Any]]:
    """The optimizer name and options of a group: its own, or the top level's (whose options it inherits).

    When the group sets no ``weight_decay`` of its own, ``regularization.weight_decay`` is placed in the
    group's final options (:func:`~trainlab.optim.weight_decay.place_weight_decay`): the top level's, with the
    decay placed there taken out again, updated by the group's. So a group whose options make its optimizer's
    decay an L2 term in the gradient (``momentum: 0.9`` on the top level's plain ``sgd``) is refused as the
    top level would be, not run with torch's coupled rule."""
    name = rule.optimizer or top_name
    if rule.optimizer is not None and rule.optimizer not in OPTIMIZERS and ":" not in rule.optimizer:
        valid = OPTIMIZERS.names()
        raise ConfigError(f"{where}: unknown optimizer '{rule.optimizer}'"
                          f"{did_you_mean(rule.optimizer.lower(), valid)} (valid: {', '.join(valid)})")
    same = name.lower() == top_name.lower()
    inherited = dict(top) if same else {}
    if rule.weight_decay is not None or weight_decay is None:
        return name, {**inherited, **rule.options}
    if "weight_decay" in inherited and inherited["weight_decay"] == weight_decay:
        del inherited["weight_decay"]  # the top level's placed decay: placed again below, over the final options
    try:
        placed = place_weight_decay({"name": name, **inherited, **rule.options}, weight_decay, section=where)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return name, {k: v for k, v in placed.items() if k != "name"}


def _labels(inner: _Inner) -> str:
    """The groups an inner optimizer serves, as its errors name them: ``'filters', 'head'``."""
    return ", ".join(f"'{label}'" for label in inner.labels)


def _build_inner(inner: _Inner) -> torch.optim.Optimizer:
    """Construct one inner optimizer; refuse one that is not a torch optimizer or needs a closure. Its
    constructor checks the lr it is given, so each other lr its groups train at is given to it too (an
    optimizer with no lr of its own, adadelta_zeiler, took a group's lr 0.5 behind the rest's 1.0)."""
    labels = _labels(inner)
    try:
        built = OPTIMIZERS.build(dict(inner.spec), inner.groups, lr=inner.groups[0]["lr"])
        for lr in list(dict.fromkeys(group["lr"] for group in inner.groups))[1:]:
            OPTIMIZERS.build(dict(inner.spec), [{"params": inner.groups[0]["params"]}], lr=lr)
    except ConfigError as exc:
        raise ConfigError(f"strategy.optimizer.groups {labels}: {exc}") from None
    if not isinstance(built, torch.optim.Optimizer):
        raise ConfigError(f"optimizer '{inner.spec['name']}' (groups {labels}) did not build a "
                          "torch.optim.Optimizer")
    if requires_closure(built):
        raise ConfigError(f"optimizer '{inner.spec['name']}' (groups {labels}) re-evaluates the loss in "
                          "step(closure) and cannot share a step with other groups; use a first-order "
                          "optimizer (e.g. sgd, nesterov, adamw, muon_conv)")
    return built


class _TopLevel(NamedTuple):
    """The top-level optimizer of ``strategy.optimizer``: what the rest and the groups that set none inherit."""

    name: str
    options: dict[str, Any]  # constructor options, without the lr
    lr: Any


def _top_level(spec: dict[str, Any]) -> _TopLevel:
    """The top-level optimizer ``spec`` (``{"name", "lr", **options}``); an ``lr: auto`` or a misspelt option
    refused."""
    top = dict(spec)
    top_name, top_lr = top.pop("name"), top.pop("lr", None)
    if top_lr == "auto":
        raise ConfigError("lr: auto cannot be combined with strategy.optimizer.groups (each group has its own "
                          "base lr); give strategy.optimizer.lr a number")
    try:  # a misspelt top-level option is the top level's, not the groups' that inherit it
        OPTIMIZERS.check_options(top_name, top, skip=1)
    except ConfigError as exc:
        raise ConfigError(f"strategy.optimizer: {exc}") from None
    return _TopLevel(top_name, top, top_lr)


def _add_rule_groups(inners: dict[str, _Inner], rules: list[GroupRule], tensors: list[list[torch.Tensor]],
                     weight_id_set: set[int], top: _TopLevel, weight_decay: float | None) -> None:
    """Add each rule's ``tensors`` to its optimizer in ``inners`` (:func:`_add_groups`): split into decayed
    weights and the rest (``weight_id_set``), or one group at the rule's own ``weight_decay``; at its own lr,
    else the top level's."""
    for i, (rule, params) in enumerate(zip(rules, tensors, strict=True)):
        name, options = _rule_optimizer(rule, f"strategy.optimizer.groups[{i}]", top.name, top.options, weight_decay)
        if rule.weight_decay is not None:
            param_groups = [{"params": params, "group": "explicit", "weight_decay": float(rule.weight_decay)}]
        else:
            param_groups = split_by_decay(params, weight_id_set)
        _add_groups(inners, name, options, rule.lr if rule.lr is not None else top.lr, rule.label, param_groups)


def check_groups(spec: dict[str, Any], groups: Iterable[Mapping[str, Any]], weight_decay: float | None = None) -> None:
    """Raise the ConfigError :func:`build_routed_optimizer` raises from the config alone, with no model: a
    group's keys, selectors, preset and regex, its optimizer's name, options and lrs, each group's built-in
    optimizer built on a 2-D dummy weight (a ``module:attr`` one has its option names checked, not built: it
    may refuse a dummy the parameters it selects are not like). What depends on the model is left to the run:
    a group that takes no parameter, ``muon_conv`` on a bias, and the top level's optimizer over the
    parameters no group takes, when there are any. ``compare`` and ``tune`` call it before any run
    (trainlab.preflight)."""
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)

    rules = [GroupRule.from_mapping(entry, i) for i, entry in enumerate(groups)]
    top = _top_level(spec)
    dummies = [[nn.Parameter(torch.zeros(2, 2))] for _ in rules]
    inners: dict[str, _Inner] = {}
    _add_rule_groups(inners, rules, dummies, {id(p[0]) for p in dummies}, top, weight_decay)
    for inner in inners.values():
        if ":" not in str(inner.spec["name"]):
            _build_inner(inner)
            continue
        options = dict(inner.spec)
        try:
            OPTIMIZERS.check_options(options.pop("name"), options, skip=1)
        except ConfigError as exc:
            raise ConfigError(f"strategy.optimizer.groups {_labels(inner)}: {exc}") from None


def build_routed_optimizer(model: nn.Module, spec: dict[str, Any], groups: Iterable[Mapping[str, Any]],
                           extra: Iterable[nn.Parameter] = (), weight_decay: float | None = None) -> RoutedOptimizer:
    """The optimizer of ``spec`` (top level) and ``groups`` (``strategy.optimizer.groups``) over ``model``.

    Args:
        model: its trainable parameters are routed (see the module docstring).
        spec: the top-level optimizer spec ``{"name", "lr", **options}``, ``regularization.weight_decay``
            already placed in it (:func:`trainlab.optim.weight_decay.place_weight_decay`).
        groups: the config's groups as mappings (``GroupRule.from_mapping`` reads each).
        extra: further trainable parameters (a loss's) for the top level's ``no_decay`` part.
        weight_decay: ``regularization.weight_decay``, placed into groups on another optimizer that set none.

    Raises:
        ConfigError: a group that selects nothing, an unknown preset/optimizer/option, a closure optimizer.
    """
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)

    rules = [GroupRule.from_mapping(entry, i) for i, entry in enumerate(groups)]
    top = _top_level(spec)
    taken, rest = assign(named_trainable_parameters(model), rules)
    inners: dict[str, _Inner] = {}  # one optimizer per (name, options): groups that agree share it
    weight_id_set = weight_ids(model)
    rest_groups = split_by_decay([p.parameter for p in rest], weight_id_set, [p for p in extra if p.requires_grad])
    if rest_groups:
        _add_groups(inners, top.name, top.options, top.lr, "rest", rest_groups)
    _add_rule_groups(inners, rules, [[p.parameter for p in params] for params in taken], weight_id_set, top,
                     weight_decay)
    optimizers = [_build_inner(inner) for inner in inners.values()]
    return RoutedOptimizer(optimizers)


__all__ = ["PRESETS", "GroupRule", "NamedParameter", "RoutedOptimizer", "assign", "build_routed_optimizer",
           "check_groups", "named_trainable_parameters"]
