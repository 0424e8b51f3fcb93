"""What a step minimises: the data loss plus the L1/L2 penalties, each reported on its own.

``objective(output, target, model)`` returns :class:`Terms`: ``total`` (what is
back-propagated) and ``parts`` (detachable named values: ``"loss"``, the data
loss alone, and ``"penalty"`` = l1 * sum|w| + l2 * sum w^2 over the weights
(trainlab.optim.decay_split: ndim >= 2, not biases or norm layers' gains),
present only when a coefficient is set). Decoupled weight decay is not here:
it lives in the optimizer's param groups.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.losses.base import Loss
from trainlab.losses.penalties import l1_penalty, l2_penalty, penalised_parameters


def is_one_number(value: object) -> bool:
    """Whether a loss's ``value`` is what backward() takes: a 0-d tensor. Tested every step (an isinstance and an
    attribute read): :class:`Objective` on every path but the plain step's, which calls the loss itself."""
    return isinstance(value, torch.Tensor) and not value.ndim


def backpropagatable(value: object) -> bool:
    """:func:`is_one_number` and attached to a graph (``requires_grad``): what a training step's backward() takes."""
    return isinstance(value, torch.Tensor) and not value.ndim and value.requires_grad  # one call on the hot path


def refuse_unreduced(value: object, loss: Loss, output: object = None) -> None:
    """The ConfigError of a training step whose loss ``value`` backward() cannot take (not
    :func:`backpropagatable`): torch's words ("grad can be implicitly created only for scalar outputs"; for a
    Python float "'float' object has no attribute 'ndim'"; "element 0 of tensors does not require grad")
    named neither the loss nor its contract. A user's loss that returns its per-row values, ``float()`` /
    ``.item()`` of its value, or a tensor made anew from it (``torch.tensor(loss.item())``: no graph to
    back-propagate) meets it at its first step (the config refuses ``reduction: none``); where the model's
    ``output`` carries no graph either, the model is what cut it (a ``.detach()`` or ``torch.no_grad()`` in
    its forward)."""
    name = getattr(loss, "name", type(loss).__name__)
    if not isinstance(value, torch.Tensor):
        raise ConfigError(f"loss '{name}' returned a {type(value).__name__} ({value!r:.40}), not a tensor: its "
                          "forward must return the loss as a 0-d tensor that keeps its graph (no float() or .item() "
                          "of it), so that backward() reaches the model (docs/extending.md)")
    if value.ndim:
        raise ConfigError(f"loss '{name}' returned a tensor of shape {tuple(value.shape)}, not one number: its "
                          "forward must reduce the per-row values to one number, e.g. return reduce(values, "
                          "self.reduction, weight) (trainlab.losses.base.reduce; docs/extending.md)")
    if isinstance(output, torch.Tensor) and not output.requires_grad:
        raise ConfigError("the model's outputs carry no gradient (requires_grad is False) although it has trainable "
                          "parameters: its forward cut the graph (a .detach(), .numpy() or torch.no_grad() in it?), "
                          "so backward() cannot reach its weights")
    raise ConfigError(f"loss '{name}' returned a tensor with no graph back to the model's outputs (requires_grad is "
                      "False: made anew, as torch.tensor(value.item()) does, or .detach()ed): its forward must "
                      "compute the loss from its inputs with torch operations, so that backward() reaches the "
                      "model (docs/extending.md)")


class Terms(NamedTuple):
    total: torch.Tensor
    parts: dict[str, torch.Tensor]


class Objective:
    """A loss wrapped with parameter penalties; the penalised weights are re-read on :meth:`parameters_changed`.

    A plain callable, not an ``nn.Module``: the loss module is the one holding state and parameters.
    """

    def __init__(self, loss: Loss, l1: float = 0.0, l2: float = 0.0):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"penalty coefficients must be >= 0; got l1={l1}, l2={l2}")
        self.loss, self.l1, self.l2 = loss, float(l1), float(l2)
        self._params: list[torch.Tensor] | None = None

    @property
    def penalised(self) -> bool:
        return bool(self.l1 or self.l2)

    def parameters_changed(self, model: nn.Module) -> None:
        self._params = penalised_parameters(model) if self.penalised else []

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        if self._params is None:
            self.parameters_changed(model)
        if not self._params:
            return None
        total = self.l1 * l1_penalty(self._params) if self.l1 else None
        if self.l2:
            l2 = self.l2 * l2_penalty(self._params)
            total = l2 if total is None else total + l2
        return total

    def __call__(self, output: torch.Tensor, target: torch.Tensor, model: nn.Module) -> Terms:
        data_loss = self.loss(output, target)
        if not is_one_number(data_loss):
            refuse_unreduced(data_loss, self.loss, output)
        penalty = self.penalty(model) if self.penalised else None
        terms = (Terms(data_loss, {"loss": data_loss}) if penalty is None
                 else Terms(data_loss + penalty, {"loss": data_loss, "penalty": penalty}))
        # a data loss without a graph: refused, but for a 0 made anew (new_zeros(()) on a batch with nothing to
        # score) beside a penalty, which carries the graph of the total backward() takes
        if not data_loss.requires_grad and torch.is_grad_enabled() and \
                (not terms.total.requires_grad or float(data_loss) != 0.0):
            refuse_unreduced(data_loss, self.loss, output)
        return terms
