"""Muon for 2-D weight matrices, AdamW for every other parameter, as one optimizer.

Muon (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/) orthogonalises
the momentum of a weight matrix with a Newton-Schulz iteration; its authors
apply it to the hidden 2-D weights only and train everything else (biases,
norm gains, scalars) with AdamW. :class:`MuonWithAdamW` owns a
``torch.optim.Muon`` and a ``torch.optim.AdamW`` and presents them as ONE
``torch.optim.Optimizer``: one ``param_groups`` list (each group tagged
``"optimizer": "muon" | "adamw"``, each with its live ``"lr"``), one ``state``,
one ``state_dict``.

Choices, and why:

* **Conv kernels (ndim 4) go to AdamW.** Muon orthogonalises a matrix; a conv
  kernel is one only after choosing a flattening (airbench flattens
  ``(out, in*kh*kw)``). ``torch.optim.Muon`` accepts 2-D tensors only, so 4-D
  kernels, like every non-2-D tensor, are AdamW's. Embedding and output-head
  matrices are 2-D and do go to Muon; put them in a group of their own with a
  small lr if that matters for a model.
* **One lr serves both by default.** ``adjust_lr_fn="match_rms_adamw"``
  (Liu et al. 2025, "Muon is Scalable for LLM Training") scales Muon's update to
  AdamW's RMS (``0.2 * sqrt(max(A, B))``), so the config's single lr and
  weight decay fit both. For Keller Jordan's setup pass
  ``adjust_lr_fn="original", lr=0.02, adamw_lr=3e-4``; then the groups hold
  different base lrs and a schedule must scale each group's own base lr.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab.optim import OPTIMIZERS
from trainlab.optim.core import evaluate_closure, require


def _as_groups(params: Any) -> list[dict[str, Any]]:
    items = list(params)
    if items and not isinstance(items[0], dict):
        return [{"params": items}]
    return [dict(group) for group in items]


class MuonWithAdamW(torch.optim.Optimizer):
    r"""Muon on the 2-D parameters, AdamW on the rest, behaving as one optimizer.

    Muon step for a weight matrix W (``torch.optim.Muon``):

    .. code-block:: text

        B_t = mu B_{t-1} + g_t;   U_t = g_t + mu B_t (nesterov) or B_t
        O_t = NewtonSchulz5(U_t)                 # ~ U V^T of U_t = U S V^T
        W_t = W_{t-1} (1 - lr wd) - lr * scale(A, B) * O_t

    every other parameter takes an AdamW step with ``adamw_lr``. Each input group
    is split into a Muon part and an AdamW part that keep the group's other keys
    (so ``no_decay``'s ``weight_decay=0`` holds for both).

    Args:
        params: parameters or parameter groups.
        lr: Muon's lr, and AdamW's when ``adamw_lr`` is None (default 1e-3).
        momentum: Muon momentum mu (default 0.95).
        nesterov: Nesterov momentum for Muon (default True).
        ns_steps: Newton-Schulz iterations (default 5).
        weight_decay: decoupled decay for both parts (default 0.1, torch Muon's and Moonshot's).
        adjust_lr_fn: ``"match_rms_adamw"`` (default) or ``"original"`` (sqrt(max(1, A/B))).
        adamw_lr: AdamW's lr (default None: ``lr``).
        adamw_betas: AdamW betas (default (0.9, 0.95), as in the Muon authors' code).
        adamw_eps: AdamW eps (default 1e-8).
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, weight_decay: float = 0.1, adjust_lr_fn: str = "match_rms_adamw",
                 adamw_lr: float | None = None, adamw_betas: tuple[float, float] = (0.9, 0.95),
                 adamw_eps: float = 1e-8):
        require(adjust_lr_fn in ("original", "match_rms_adamw"),
                f"`adjust_lr_fn` must be 'original' or 'match_rms_adamw'. Received: adjust_lr_fn={adjust_lr_fn!r}")
        matrix_groups, other_groups = [], []
        for group in _as_groups(params):
            tensors = list(group.pop("params"))
            matrices = [p for p in tensors if p.ndim == 2]
            others = [p for p in tensors if p.ndim != 2]
            if matrices:
                matrix_groups.append({**group, "params": matrices, "optimizer": "muon"})
            if others:
                other_groups.append({"lr": adamw_lr if adamw_lr is not None else lr, **group, "params": others,
                                     "optimizer": "adamw"})
        require(bool(matrix_groups or other_groups), "MuonWithAdamW got no parameters")
        self.muon = torch.optim.Muon(matrix_groups, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                     nesterov=nesterov, ns_steps=ns_steps,
                                     adjust_lr_fn=adjust_lr_fn) if matrix_groups else None
        fused = all(p.device.type in ("cpu", "cuda") for g in other_groups for p in g["params"])
        self.adamw = torch.optim.AdamW(other_groups, lr=adamw_lr if adamw_lr is not None else lr,
                                       betas=tuple(adamw_betas), eps=adamw_eps, weight_decay=weight_decay,
                                       fused=fused or None) if other_groups else None
        # the same group dicts, in Muon-then-AdamW order: writing group["lr"] here reaches the inner optimizer
        groups = (self.muon.param_groups if self.muon else []) + (self.adamw.param_groups if self.adamw else [])
        super().__init__(groups, {})
        self._link()

    def _link(self) -> None:
        """Point the inner optimizers at this optimizer's groups and (shared) state."""
        for inner, name in ((self.muon, "muon"), (self.adamw, "adamw")):
            if inner is not None:
                inner.param_groups = [g for g in self.param_groups if g["optimizer"] == name]
                inner.state = self.state  # parameters are disjoint, so one state dict serves both

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # replaces self.param_groups and self.state
        self._link()

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)  # once, for both parts
        for inner in (self.muon, self.adamw):
            if inner is not None:
                inner.step()
        return loss


@OPTIMIZERS.register("muon")
def muon(groups, lr: float, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
         weight_decay: float = 0.1, adjust_lr_fn: str = "match_rms_adamw", adamw_lr: float | None = None,
         adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8) -> MuonWithAdamW:
    """Muon (orthogonalised momentum) on 2-D weights, AdamW on biases, norms and conv kernels."""
    return MuonWithAdamW(groups, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                         weight_decay=weight_decay, adjust_lr_fn=adjust_lr_fn, adamw_lr=adamw_lr,
                         adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps)
