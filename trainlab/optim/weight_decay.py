"""Where ``strategy.regularization.weight_decay`` lives: the optimizer's own decoupled decay.

Decoupled weight decay (Loshchilov & Hutter 2019) shrinks the weights apart from
the gradient step: ``w <- w - lr * wd * w`` (each optimizer scales it its own way:
schedule-free AdamW decays at y with its own step size, Prodigy by lr * d). It has
one home: the optimizer's param groups, where the ``no_decay`` group (biases,
normalisation weights) has ``weight_decay = 0``. So
``regularization.weight_decay: wd`` becomes the optimizer's ``weight_decay: wd``
when the optimizer's decay is decoupled, and is refused with one line otherwise
(Adam's, RMSprop's or momentum SGD's ``weight_decay`` is an L2 term added to the
gradient, a different method; L-BFGS has no weight decay at all), or when the
optimizer's own ``weight_decay`` is also set (that would apply it twice).
Unset (null), the optimizer keeps its own default (adamw's 0.01); ``0`` sets a
decoupled optimizer's ``weight_decay`` to 0 unless the optimizer sets one itself
(then that one stays: the 0 places nothing). Run folders written while 0.0 was the
default, meaning unset, are read as unset (:func:`trainlab.config.load_config`).

The optimizer's name and its options' names and types are checked first, with the
registry's own one-line messages, so a refusal is only ever about where the decay
goes, and its advice names only options the optimizer has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError

if TYPE_CHECKING:
    from trainlab.registry import Registry

# optimizer -> extra options that make its weight_decay decoupled
DECOUPLED: dict[str, dict[str, Any]] = {
    "adamw": {},
    "adafactor": {},
    "lamb": {},
    "lion": {},
    "muon": {},
    "muon_conv": {},
    "prodigy": {},
    "schedule_free_adamw": {},
    "nadam": {"decoupled_weight_decay": True},
    "radam": {"decoupled_weight_decay": True},
}
# an optimizer whose decay is not decoupled -> the nearest ones whose decay is (default: adamw)
DECOUPLED_ALTERNATIVE = {"adam": "adamw", "sgd": "sgd (momentum 0, nesterov false)",
                         "momentum": "adamw or lion", "nesterov": "adamw or lion"}


def _plain_sgd(name: str, spec: dict[str, Any]) -> bool:
    # without momentum, w <- w - lr (g + wd w) is exactly the decoupled rule
    return name == "sgd" and not _is_set(spec.get("momentum")) and not spec.get("nesterov")


def _shown(value: Any) -> str:
    """A weight decay as the message shows it: ``0.01``, or the repr of a value that is no number."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return short_repr(value)


def _yaml(value: Any) -> str:
    """An option's value as a config writes it (``false``, not ``False``)."""
    return str(value).lower() if isinstance(value, bool) else short_repr(value)


def _is_set(value: Any) -> bool:
    """Whether an optimizer's own ``weight_decay`` decays anything (``0``, ``"0"`` and null do not)."""
    try:
        return float(value) != 0.0
    except (TypeError, ValueError):
        return value is not None


def _check_spec(name: str, options: dict[str, Any]) -> Registry:
    """The optimizer registry, after the one-line ConfigError :meth:`Registry.build` gives for an unknown
    optimizer ``name`` (did-you-mean), an option its factory does not take, or a value of the wrong type.

    ``lr`` is left to the config (it may still be ``auto``, resolved by the LR range test)."""
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)
    from trainlab.optim import OPTIMIZERS

    OPTIMIZERS.get(name)
    OPTIMIZERS.check_options(name, options, skip=1)  # factory(param_groups, lr, **options)
    OPTIMIZERS.check_types(name, {k: v for k, v in options.items() if k != "lr"})
    return OPTIMIZERS


def _no_decay(spec: dict[str, Any]) -> dict[str, Any]:
    """``regularization.weight_decay: 0``: a decoupled optimizer's unset ``weight_decay`` set to 0 (its own
    default, such as adamw's 0.01, would decay otherwise); a ``weight_decay`` the spec sets itself is kept (the
    0 places nothing beside it, as before run folders wrote this 0 for every run), and any other optimizer's
    spec is returned as it is (its ``weight_decay``, if any, is an L2 term: another method)."""
    name = spec["name"].lower()
    if (name in DECOUPLED or _plain_sgd(name, spec)) and spec.get("weight_decay") is None:
        return {**spec, "weight_decay": 0.0}
    return spec


def place_weight_decay(spec: dict[str, Any], weight_decay: float | None,
                       section: str = "strategy.optimizer") -> dict[str, Any]:
    """The optimizer spec with ``regularization.weight_decay`` placed in it, or ConfigError.

    Args:
        spec: ``{"name": ..., **options}`` of one optimizer.
        weight_decay: ``strategy.regularization.weight_decay``: None (not set) returns ``spec`` as it is;
            0 turns a decoupled optimizer's default decay off (adamw's 0.01) unless ``spec`` sets its own.
        section: the config key holding ``spec``'s options, named in the refusal's advice
            (``strategy.optimizer.groups[0]`` for a routed group).

    Raises:
        ConfigError: an unknown optimizer, option or option type (the registry's messages); the optimizer's
            own ``weight_decay`` set too; or an optimizer whose decay is not decoupled. The refusal's advice
            names only options ``spec``'s optimizer has.
    """
    if weight_decay is None:
        return spec
    name = spec["name"]
    options = {k: v for k, v in spec.items() if k != "name"}
    optimizers = _check_spec(name, options)
    if not weight_decay:
        return _no_decay(spec)
    key = name.lower()
    if key in DECOUPLED or _plain_sgd(key, spec):
        if _is_set(spec.get("weight_decay")):
            raise ConfigError(
                f"weight decay is set twice: strategy.regularization.weight_decay={_shown(weight_decay)} and "
                f"{section}.weight_decay={_shown(spec['weight_decay'])} ('{name}'); keep one of them")
        turned_off = [option for option, value in DECOUPLED.get(key, {}).items()
                      if option in spec and spec[option] != value]
        if turned_off:  # nadam's decoupled_weight_decay: false, set by the user, is not overridden silently
            option = turned_off[0]
            raise ConfigError(
                f"strategy.regularization.weight_decay (decoupled) needs {section}.{option}: "
                f"{_yaml(DECOUPLED[key][option])} in optimizer '{name}', which is set to "
                f"{_yaml(spec[option])}; leave {section}.{option} out, or use {section}.weight_decay "
                f"(with {option} as set) instead")
        return {**spec, **DECOUPLED.get(key, {}), "weight_decay": weight_decay}
    alternative = DECOUPLED_ALTERNATIVE.get(key, "adamw")
    decoupled = (f"use an optimizer with decoupled decay ({alternative}; valid: "
                 f"{', '.join(sorted(DECOUPLED))}, sgd without momentum)")
    if optimizers.takes_option(name, "weight_decay", skip=1):  # factory(param_groups, lr, **options)
        own = (f"or drop it and keep {section}.weight_decay={_shown(spec['weight_decay'])}, the L2 form of "
               f"'{name}' itself" if _is_set(spec.get("weight_decay")) else
               f"or {section}.weight_decay for the L2 form of '{name}' itself")
        raise ConfigError(
            f"strategy.regularization.weight_decay (decoupled) has no home in optimizer '{name}', whose "
            f"weight_decay is an L2 term in the gradient; {decoupled}, {own}, or strategy.regularization.l2")
    raise ConfigError(
        f"strategy.regularization.weight_decay (decoupled) has no home in optimizer '{name}', which has no "
        f"weight_decay option; {decoupled}, or strategy.regularization.l2 (an L2 term in the loss)")
