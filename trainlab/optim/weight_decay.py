"""Where ``strategy.regularization.weight_decay`` lives: the optimizer's own decoupled decay.

Decoupled weight decay (Loshchilov & Hutter 2019) shrinks the weights apart from
the gradient step: ``w <- w - lr * wd * w`` (each optimizer scales it its own way:
schedule-free AdamW decays at y with its own step size, Prodigy by lr * d). It has
one home: the optimizer's param groups, where the ``no_decay`` group (biases,
normalisation weights) has ``weight_decay = 0``. So
``regularization.weight_decay: wd`` becomes the optimizer's ``weight_decay: wd``
when the optimizer's decay is decoupled, and is refused with one line otherwise
(Adam's, RMSprop's or momentum SGD's ``weight_decay`` is an L2 term added to the
gradient, a different method), or when the optimizer's own ``weight_decay`` is
also set (that would apply it twice).
"""

from __future__ import annotations

from typing import Any

from trainlab.errors import ConfigError

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
DECOUPLED_ALTERNATIVE = {"adam": "adamw", "nadam": "nadam", "radam": "radam", "sgd": "sgd (momentum 0)",
                         "momentum": "adamw or lion", "nesterov": "adamw or lion"}


def _plain_sgd(spec: dict[str, Any]) -> bool:
    # without momentum, w <- w - lr (g + wd w) is exactly the decoupled rule
    return spec["name"] == "sgd" and not spec.get("momentum") and not spec.get("nesterov")


def place_weight_decay(spec: dict[str, Any], weight_decay: float) -> dict[str, Any]:
    """The optimizer spec with ``regularization.weight_decay`` placed in it, or ConfigError."""
    if not weight_decay:
        return spec
    name = spec["name"]
    if spec.get("weight_decay"):
        raise ConfigError(
            f"weight decay is set twice: strategy.regularization.weight_decay={weight_decay:g} and "
            f"strategy.optimizer.weight_decay={spec['weight_decay']:g} ('{name}'); keep one of them")
    if name in DECOUPLED:
        return {**spec, **DECOUPLED[name], "weight_decay": weight_decay}
    if _plain_sgd(spec):
        return {**spec, "weight_decay": weight_decay}
    hint = DECOUPLED_ALTERNATIVE.get(name, "adamw")
    raise ConfigError(
        f"strategy.regularization.weight_decay (decoupled) has no home in optimizer '{name}', whose "
        f"weight_decay is an L2 term in the gradient; use an optimizer with decoupled decay ({hint}; valid: "
        f"{', '.join(sorted(DECOUPLED))}, sgd without momentum), or strategy.optimizer.weight_decay for "
        f"the L2 form of '{name}' itself, or strategy.regularization.l2")
