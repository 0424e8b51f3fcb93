"""Loss registry. Every loss follows :mod:`trainlab.losses.base`; build one by name or spec.

Modules: ``regression`` (mse, mae, huber, smooth_l1, log_cosh, quantile), ``adaptive``
(Barron's general/adaptive loss), ``classification`` (bce, bce_prob, hinge, squared_hinge,
cross_entropy, nll, focal, multiclass_hinge), ``distribution`` (kl_div, poisson_nll,
gaussian_nll), ``similarity`` (cosine_similarity, cosine_embedding, contrastive, triplet,
nt_xent), ``composite`` (multitask; ``gradient_penalty`` for WGAN-GP) and ``penalties``
(``penalty(model, l1, l2)``, not a registered loss).
"""

from __future__ import annotations

from typing import Any

from trainlab.errors import ConfigError
from trainlab.losses.base import Loss
from trainlab.registry import Registry

LOSSES: Registry = Registry("loss")


def build_loss(spec: str | dict[str, Any]) -> Loss:
    import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)

    loss = LOSSES.build(spec)
    name = spec if isinstance(spec, str) else spec["name"]
    if not isinstance(loss, Loss):  # e.g. `module:attr` naming torch.nn.MSELoss or a plain function's result
        raise ConfigError(f"loss '{name}' built a {type(loss).__name__}, not a trainlab.losses.base.Loss: a custom "
                          "loss subclasses Loss (target_kind, forward(pred, target)); see docs/extending.md")
    loss.registered_name = name
    return loss


__all__ = ["LOSSES", "Loss", "build_loss"]
