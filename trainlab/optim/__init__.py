"""Optimizer registry and parameter groups.

The registry refuses option values no optimizer can use (:func:`check_option_ranges`, Nesterov momentum
without momentum: :func:`check_nesterov`) and says where an option the named optimizer lacks is taken
among its siblings (:func:`sibling_hint`).

An optimizer factory is ``factory(param_groups, lr, **kwargs) -> torch.optim.Optimizer``.
``param_groups`` is the list from :func:`param_groups`: a ``decay`` group (the weights:
``ndim >= 2``, not a bias, not a normalisation layer's, :mod:`trainlab.optim.decay_split`) and a
``no_decay`` group (biases and normalisation gains and shifts, whatever their shape) whose
``weight_decay`` is 0, so an optimizer's own weight decay never touches them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from trainlab.config_fields import FLOAT32_MAX, short_repr
from trainlab.errors import ConfigError
from trainlab.optim.decay_split import split_by_decay, weight_ids
from trainlab.registry import Registry, factory_options
from trainlab.yaml_files import flow_yaml

FACTORY_CONTRACT = ("an optimizer factory is called as factory(param_groups, lr, **options) and returns a "
                    "torch.optim.Optimizer (docs/optimizers.md)")
EPS_OPTIONS = ("eps", "adamw_eps")  # a denominator's offset, wherever an optimizer takes one
# options below 0 that torch's optimizers refuse in their own words ("Invalid lr_decay value: -0.1"), and what
# each is; a negative one has no meaning in any optimizer (a weight decay below 0 grows the weights)
# option -> (what it is, the optimizers it is checked for: () for every one, a user's registered ones too)
NON_NEGATIVE_OPTIONS = {
    "lr": ("a step size", ()), "adamw_lr": ("the step size of the AdamW part", ()),
    "weight_decay": ("a pull of the weights toward 0", ()),
    "lr_decay": ("Adagrad's lr is lr / (1 + (step - 1) x lr_decay)", ("adagrad",)),
    "initial_accumulator_value": ("the starting sum of squared gradients", ("adagrad",)),
    "momentum_decay": ("NAdam's momentum schedule", ("nadam",)),
    "alpha": ("RMSprop's weight of its running average", ("rmsprop",)),
}


def check_option_ranges(name: str, options: dict[str, Any]) -> None:
    """Refuse (ConfigError) option values no optimizer can use; each factory checks its own as well.

    ``momentum`` (SGD's mu, Muon's, schedule-free's beta) and each of ``betas`` are moving-average
    weights in [0, 1): at 1 the average never forgets and beyond it grows without bound (torch checks
    only >= 0). ``dampening`` scales the gradient's share of SGD's buffer by 1 - dampening: [0, 1].
    ``eps`` (``adamw_eps``) offsets a denominator: > 0 (torch accepts 0, then a zero gradient's update is
    0 / 0 = NaN). ``eps`` and ``weight_decay`` at most float32's largest (torch: "value cannot be converted to
    type float without overflow"). The :data:`NON_NEGATIVE_OPTIONS` (``lr``, ``weight_decay``, ``lr_decay``,
    ``alpha``, ...) >= 0, and ``adadelta``'s ``rho`` in [0, 1]: torch refuses the rest in its own words ("Invalid
    weight_decay value: -0.1"), which named no valid range.
    """
    def number(value: Any) -> float | None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None  # a wrong kind: the annotation check names it

    momentum = number(options.get("momentum", 0.0))
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ConfigError(f"optimizer '{name}': momentum must be in [0, 1); got {options['momentum']}")
    dampening = number(options.get("dampening", 0.0))
    if dampening is not None and not 0.0 <= dampening <= 1.0:
        raise ConfigError(f"optimizer '{name}': dampening must be in [0, 1]; got {options['dampening']}")
    for key in EPS_OPTIONS:  # Adam's m / (sqrt(v) + eps), Adagrad's, RMSprop's: at 0 a zero gradient is 0 / 0
        eps = number(options.get(key, 1.0))
        if eps is not None and not 0.0 < eps <= FLOAT32_MAX:
            raise ConfigError(f"optimizer '{name}': {key} must be > 0 (the update divides by it) and at most "
                              f"{FLOAT32_MAX:.4g} (float32's largest); got {options[key]}")
    for key, (meaning, owners) in NON_NEGATIVE_OPTIONS.items():  # torch's "Invalid weight_decay value: -0.1"
        value = number(options.get(key, 0.0))
        if value is not None and value < 0.0 and (not owners or name.lower() in owners):
            raise ConfigError(f"optimizer '{name}': {key} must be >= 0 ({meaning}); got {options[key]}")
    weight_decay = number(options.get("weight_decay", 0.0))
    if weight_decay is not None and not abs(weight_decay) <= FLOAT32_MAX:  # torch's "cannot be converted"
        raise ConfigError(f"optimizer '{name}': weight_decay must be at most {FLOAT32_MAX:.4g} (float32's "
                          f"largest, the type torch's steps hold it in); got {options['weight_decay']}")
    rho = number(options.get("rho", 0.0))  # torch Adadelta's; adadelta_zeiler checks its own, other uses differ
    if name.lower() == "adadelta" and rho is not None and not 0.0 <= rho <= 1.0:  # torch's "Invalid rho value"
        raise ConfigError(f"optimizer '{name}': rho must be in [0, 1] (the weight of the running averages of "
                          f"squared gradients and updates); got {options['rho']}")
    betas = options.get("betas")
    if isinstance(betas, list | tuple):
        for index, beta in enumerate(betas):
            value = number(beta)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"optimizer '{name}': betas[{index}] must be in [0, 1); got {beta} "
                                  f"(betas {list(betas)})")
    check_nesterov(name, options)


def check_nesterov(name: str, options: dict[str, Any]) -> None:
    """Refuse (ConfigError) Nesterov momentum without a momentum buffer, naming the value and the fix.

    Nesterov's step is theta <- theta - lr (g + mu b), b <- mu b + (1 - dampening) g: at mu = 0 it is plain
    SGD, and with dampening it is no longer Nesterov's look-ahead, so torch's SGD refuses both ("Nesterov
    momentum requires a momentum and zero dampening"). Optimizer ``nesterov`` always looks ahead (its
    ``momentum`` must be > 0); ``sgd`` does with ``nesterov: true`` (its ``momentum`` defaults to 0).
    """
    key = name.lower()
    if key not in ("sgd", "nesterov") or (key == "sgd" and options.get("nesterov") is not True):
        return
    momentum, dampening = options.get("momentum", OPTIMIZERS.defaults(key).get("momentum")), options.get("dampening", 0)
    try:
        no_momentum, damped = float(momentum) == 0.0, float(dampening) != 0.0
    except (TypeError, ValueError):
        return  # a wrong kind: the annotation check names it
    if key == "nesterov" and no_momentum:
        raise ConfigError(f"optimizer 'nesterov': momentum must be > 0 (e.g. 0.9, its default): Nesterov momentum "
                          f"looks ahead along the momentum buffer; got momentum {momentum} (for plain gradient "
                          "descent use name: sgd)")
    found = [f"momentum is {momentum}{'' if 'momentum' in options else ' (the default)'}"] if no_momentum else []
    found += [f"dampening is {dampening}"] if damped else []
    if found:
        raise ConfigError(f"optimizer 'sgd': nesterov: true needs momentum > 0 (e.g. 0.9) and dampening 0; "
                          f"{' and '.join(found)}")


def _option_names(name: str) -> set[str]:
    """The options registered optimizer ``name`` takes after its ``param_groups`` (none if unreadable)."""
    return set(factory_options(OPTIMIZERS.get(name), skip=1) or ())


SIBLING_SHARE = 0.5  # |options in common| / |options of either|: adam vs rmsprop's 3 of 9 is no sibling


def sibling_hint(name: str, options: dict[str, Any]) -> str:
    """The optimizer registry's ``hint``: where the first option of ``options`` that optimizer ``name`` does
    not take is taken among its siblings, the registered optimizers whose options share at least
    :data:`SIBLING_SHARE` of their union with its own (momentum and sgd; adam and adam_textbook):
    ``"use name: nesterov, the optimizer of that name, or optimizer 'sgd', which takes it: {name: sgd,
    momentum: 0.9, nesterov: true}"`` (the first part only for an option set to true that names a sibling).
    The example carries ``options`` and the options whose defaults differ between the two (momentum's 0.9
    where sgd's is 0; a ``weight_decay`` only between two optimizers that both decouple it, or neither:
    :data:`~trainlab.optim.weight_decay.DECOUPLED`). ``""`` when no sibling helps (or ``name`` is no
    registered optimizer)."""
    from trainlab.optim.weight_decay import DECOUPLED

    if name not in OPTIMIZERS:
        return ""
    key, own = name.lower(), _option_names(name)
    unknown = next((option for option in options if option not in own), None)
    if unknown is None:
        return ""
    share = {other: len(own & theirs) / len(own | theirs) for other in OPTIMIZERS.names()
             if other != key and (theirs := _option_names(other))}
    siblings = sorted((other for other, part in share.items() if part >= SIBLING_SHARE),
                      key=lambda other: (-share[other], other))
    hints = []
    if unknown in siblings and options[unknown] is True:  # the flag names an optimizer of its own
        hints.append(f"use name: {unknown}, the optimizer of that name")
    takers = [other for other in siblings if set(options) <= _option_names(other)]
    if takers:
        best = takers[0]
        mine, theirs = OPTIMIZERS.defaults(key), OPTIMIZERS.defaults(best)
        same_decay = (key in DECOUPLED) == (best in DECOUPLED)  # else the same number is another method
        carried = {option: value for option, value in mine.items() if option in theirs and option not in options
                   and theirs[option] != value and (option != "weight_decay" or same_decay)}
        example = ", ".join(f"{option}: {flow_yaml(list(value) if isinstance(value, tuple) else value)}" for option, value in {**carried, **options}.items())
        also = f" ({', '.join(takers[1:])} take{'s' if len(takers) == 2 else ''} it too)" if takers[1:] else ""
        takes = f"or optimizer '{best}', which takes it" if hints else f"optimizer '{best}' takes it"
        hints.append(f"{takes}: {{name: {best}, {example}}}{also}")
    return ", ".join(hints)


OPTIMIZERS: Registry = Registry("optimizer", check=check_option_ranges, hint=sibling_hint)


def param_groups(model: nn.Module, extra: Iterable[torch.nn.Parameter] = ()) -> list[dict[str, Any]]:
    """The model's trainable parameters split by :func:`~trainlab.optim.decay_split.split_by_decay`: ``decay``
    holds its weights (:func:`~trainlab.optim.decay_split.weight_ids`: ndim >= 2, not a bias, not a norm
    layer's), ``no_decay`` the rest; trainable ``extra`` (a loss's parameters) joins ``no_decay``."""
    return split_by_decay([p for p in model.parameters() if p.requires_grad], weight_ids(model),
                          [p for p in extra if p.requires_grad])


def default_option(name: str, option: str) -> Any:
    """The default of ``option`` in optimizer ``name``'s factory (sgd's ``momentum`` 0.0); None when it
    has none, takes no such option, or ``name`` is unknown.

    Read from the signature, so no optimizer is built (the first one built in a process is slow).
    """
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)

    try:
        parameter = inspect.signature(OPTIMIZERS.get(name)).parameters.get(option)
    except (TypeError, ValueError, ConfigError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def default_lr(name: str) -> float | None:
    """The factory's own default ``lr`` (prodigy 1.0, lbfgs 1.0, ...); None when it has none or takes no lr."""
    lr = default_option(name, "lr")
    return None if lr is None else float(lr)


def build_optimizer(spec: dict[str, Any], groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Build ``spec`` (``{"name": ..., "lr": ..., **kwargs}``) over ``groups``.

    ``lr`` may be absent or None for optimizers whose factory has a default
    (``prodigy`` 1.0, ``adadelta_zeiler`` 1.0, ``lbfgs`` 1.0). A factory that returns anything but a
    ``torch.optim.Optimizer`` is a ConfigError naming what it returned and :data:`FACTORY_CONTRACT`.
    """
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)

    spec = dict(spec)
    lr = spec.pop("lr", None)
    lr_kwarg = {} if lr is None else {"lr": float(lr)}
    if lr is None and _lr_required(OPTIMIZERS.get(spec["name"])):
        raise ConfigError(f"optimizer '{spec['name']}' has no default learning rate; "
                          "set strategy.optimizer.lr (or lr: auto for the LR range test)")
    optimizer = OPTIMIZERS.build(spec, groups, **lr_kwarg)
    if not isinstance(optimizer, torch.optim.Optimizer):  # a user's module:attr factory returning anything else
        raise ConfigError(f"optimizer factory '{spec['name']}' returned {type(optimizer).__name__} "
                          f"({short_repr(optimizer)}), not a torch.optim.Optimizer; {FACTORY_CONTRACT}")
    if _split_without_purpose(optimizer):
        # no weight decay to keep off biases: one group is cheaper (one fused kernel launch per step)
        merged = [{"params": [p for g in groups for p in g["params"]], "group": "all"}]
        optimizer = OPTIMIZERS.build(spec, merged, **lr_kwarg)
    return optimizer


def _lr_required(factory: Any) -> bool:
    try:
        parameter = inspect.signature(factory).parameters.get("lr")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def _split_without_purpose(optimizer: torch.optim.Optimizer) -> bool:
    kinds = [g.get("group") for g in optimizer.param_groups]
    if sorted(kinds) != ["decay", "no_decay"] or any("layer" in g for g in optimizer.param_groups):
        return False
    decay = next(g for g in optimizer.param_groups if g.get("group") == "decay")
    return not decay.get("weight_decay")


def requires_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Optimizers such as L-BFGS re-evaluate the loss inside ``step(closure)``."""
    return bool(getattr(optimizer, "requires_closure", False)) or isinstance(optimizer, torch.optim.LBFGS)


def keeps_evaluation_weights(optimizer: torch.optim.Optimizer) -> bool:
    """True when ``optimizer`` swaps in weights of its own for evaluation (schedule-free ``eval()``).

    A routed optimizer (``strategy.optimizer.groups``) has ``train``/``eval`` to pass them on; it
    keeps evaluation weights only when one of its inner optimizers does.
    """
    inner = getattr(optimizer, "optimizers", None)
    if isinstance(inner, list | tuple):
        return any(keeps_evaluation_weights(one) for one in inner)
    return callable(getattr(optimizer, "eval", None))


def set_train_mode(optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Call ``optimizer.train()`` or ``optimizer.eval()`` when the optimizer has them (schedule-free).

    Such optimizers keep different weights in the parameters while training (the
    point where gradients are taken) and for evaluation (the averaged weights):
    call with ``training=False`` before validation or saving a checkpoint, and
    with ``training=True`` before the next training step. A no-op otherwise.
    """
    method = getattr(optimizer, "train" if training else "eval", None)
    if callable(method):
        method()


__all__ = ["OPTIMIZERS", "build_optimizer", "default_lr", "param_groups", "split_by_decay", "requires_closure", "set_train_mode"]
