"""Loss registry. Every loss follows :mod:`trainlab.losses.base`; build one by name or spec.

Modules: ``regression`` (mse, mae, huber, smooth_l1, log_cosh, quantile), ``adaptive``
(Barron's general/adaptive loss), ``classification`` (bce, bce_prob, hinge, squared_hinge,
cross_entropy, nll, focal, multiclass_hinge), ``distribution`` (kl_div, poisson_nll,
gaussian_nll), ``similarity`` (cosine_similarity, cosine_embedding, contrastive, triplet,
nt_xent), ``composite`` (multitask; ``gradient_penalty`` for WGAN-GP) and ``penalties``
(``penalty(model, l1, l2)``, not a registered loss).
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.losses.base import Loss, TargetKind
from trainlab.registry import Registry, closest_choice

LOSSES: Registry = Registry("loss")


WRAP = ("wrap it in a trainlab.losses.base.Loss subclass that sets target_kind and defines forward(pred, target, "
        "weight=None); see docs/extending.md")


TARGET_NAMES = frozenset({"target", "targets", "y", "y_true", "label", "labels", "true", "truth"})


def _plain_function(factory: Any, options: dict[str, Any]) -> bool:
    """Whether a loss reference names a loss *function* ``f(pred, target)`` rather than a factory of a Loss:
    a function (not a class) with two or more positional parameters that no config key sets, one of them
    named as targets are (:data:`TARGET_NAMES`): a factory ``make(alpha, beta)`` missing its options is told
    which options it needs, as any component is."""
    if inspect.isclass(factory) or not callable(factory):
        return False
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    unset = [p for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty
             and p.name not in options]
    return len(unset) >= 2 and any(p.name in TARGET_NAMES for p in unset)


def _declares_target_kind(loss: Loss) -> bool:
    """Whether ``loss``'s class (or a base class below :class:`Loss`) sets ``target_kind``: the base class's
    value is a placeholder, and a loss that inherits it would silently count as a regression loss."""
    return any("target_kind" in vars(cls) for cls in type(loss).__mro__ if cls is not Loss)


def registered_loss(name: str) -> Any:
    """The factory registered as loss ``name`` (built-ins registered first; its ``target_kind`` is a class
    attribute), or None for ``auto``, ``module:attr`` code and unknown names: no user code is imported."""
    import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)

    return LOSSES.get(name) if ":" not in name and name in LOSSES else None


def build_loss(spec: str | dict[str, Any]) -> Loss:
    """The loss ``spec`` names (a registered name, a ``module:attr`` reference or a ``{"name": ..., **options}``).

    A ``module:attr`` must be a Loss subclass or a factory returning a Loss instance that sets ``target_kind``;
    a plain loss function ``f(pred, target)``, a ``torch.nn`` loss, or a Loss subclass without ``target_kind``
    is one ConfigError saying what to write instead (docs/extending.md, "A loss").
    """
    import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)

    name = spec if isinstance(spec, str) else spec["name"]
    if isinstance(name, str) and ":" in name:
        options = {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}
        if _plain_function(LOSSES.get(name), options):
            raise ConfigError(f"loss '{name}' is a plain function, not a Loss: {WRAP}")
    loss = LOSSES.build(spec)
    if not isinstance(loss, Loss):  # e.g. `module:attr` naming torch.nn.MSELoss or a plain function's result
        raise ConfigError(f"loss '{name}' built a {type(loss).__name__}, not a trainlab.losses.base.Loss: a custom "
                          "loss subclasses Loss (target_kind, forward(pred, target)); see docs/extending.md")
    kinds, declared = get_args(TargetKind), _declares_target_kind(loss)
    if not declared or loss.target_kind not in kinds:
        close = closest_choice(str(loss.target_kind), list(kinds))
        said = ("does not set target_kind" if not declared else
                f"sets target_kind {short_repr(loss.target_kind)}, which is no target kind"
                + (f" (did you mean '{close}'?)" if close else ""))
        raise ConfigError(f"loss '{name}' ({type(loss).__name__}) {said}: set the class attribute "
                          f"to one of {', '.join(repr(kind) for kind in kinds)} (\"continuous\" for "
                          "regression, \"class_index\" for K logits and int labels, \"binary\" for one logit per row; "
                          "trainlab/losses/base.py); see docs/extending.md")
    loss.registered_name = name
    return loss


__all__ = ["LOSSES", "Loss", "build_loss"]
