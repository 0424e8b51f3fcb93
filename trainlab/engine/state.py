"""The loop's resumable counters, the flags callbacks use to steer it, and the epoch's loss sums."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch


@dataclass
class TrainState:
    """Everything about progress that is not a tensor; saved as JSON in every checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    samples_seen: int = 0
    train_time_s: float = 0.0  # wall time inside fit(), summed over resumes
    lr_scale: float = 1.0  # multiplied by lr_factor at each divergence rollback
    rollbacks: int = 0
    skipped_batches: list[list[int]] = field(default_factory=list)  # [epoch, batch] pairs never replayed
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    step_records: list[dict[str, Any]] = field(default_factory=list)  # log_every_n_steps / eval_every_n_steps
    events: list[dict[str, Any]] = field(default_factory=list)  # divergence, checkpoint failures, ...
    stop_reason: str | None = None
    stopped_early: bool = False
    finished: bool = False
    # the step just taken owes a mid-epoch validation (eval_every_n_steps) that runs after its step-end
    # hooks: a checkpoint written by those hooks carries it, and a run resumed from it validates first
    validation_due: bool = False
    # the open epoch's latest mid-epoch validation, {"step": n, "metrics": evaluate()'s dict}: a partial epoch
    # closed at that same step (a stop or the step limit there) takes its val_* from it instead of validating
    # the same weights again; checkpointed, so a run resumed after that validation does the same (absent in
    # checkpoints written before it existed: None, and such a resume validates again)
    mid_epoch_val: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in state.items():
            if key in known:
                setattr(self, key, value)


@dataclass
class Control:
    """Flags a callback sets to ask the loop for something (HF ``TrainerControl``).

    The stop request is the run's own decision (a callback's ``stop``: early stopping, a tuner's
    pruning, a user's callback) and is resumable (``state_dict``): a run that decided to stop and was
    killed or interrupted before it ended stops on resume too, with the same reason. A signal is not
    such a decision: it sets ``interrupted_by`` alone, which ends this process's loop but is not saved,
    so a stop decided at the signal's step (or at that epoch's validation) survives the interruption.
    ``rollback_to`` and ``interrupted_by`` belong to this process only.
    """

    should_stop: bool = False
    stop_reason: str | None = None
    rollback_to: Any = None  # a Snapshot the loop restores at the next safe point
    interrupted_by: int | None = None  # signal number; the run stops after a checkpoint, unfinished

    def stop(self, reason: str) -> None:
        self.should_stop = True
        self.stop_reason = self.stop_reason or reason

    def state_dict(self) -> dict[str, Any]:
        return {"should_stop": self.should_stop, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.should_stop, self.stop_reason = bool(state["should_stop"]), state["stop_reason"]


class EpochSum:
    """Float64 weighted sum of an epoch's step losses, sum_i w_i * loss_i, and of their weights sum_i w_i,
    with no tensor kernel per step.

    w_i is the step's row count, or, for a loss whose mean divides by something else (a class-weighted
    cross-entropy: the summed class weights of the step's labels), that divisor as a tensor, so that
    :meth:`mean` is the epoch's loss as one batch of all its rows would give it (sum_i S_i / sum_i d_i; a
    ``reduction: sum`` loss is reported per row, S_i / n_i, so its mean is sum_i S_i / sum_i n_i).
    Each step's (detached, scalar) loss and weight are kept and folded into the float64 totals every
    ``fold_every`` steps. Fold points depend only on how many steps were added since :meth:`reset`, and the
    pending values are checkpointed, so a resumed run sums in exactly the same order as one that never
    stopped.
    """

    fold_every: int = 256

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.weight = torch.zeros((), dtype=torch.float64, device=device)
        self.values: list[torch.Tensor] = []
        self.sizes: list[int | torch.Tensor] = []

    def add(self, value: torch.Tensor, size: int | torch.Tensor) -> None:
        self.values.append(value)
        self.sizes.append(size)
        if len(self.values) >= self.fold_every:
            total, weight = self._pending()
            self.total += total
            self.weight += weight
            self.values, self.sizes = [], []

    def _weights(self) -> torch.Tensor:
        device = self.total.device
        if all(isinstance(size, int) for size in self.sizes):  # row counts: one host-to-device copy
            return torch.tensor(self.sizes, dtype=torch.float64, device=device)
        return torch.stack([size.to(device, torch.float64) if isinstance(size, torch.Tensor)
                            else torch.tensor(float(size), dtype=torch.float64, device=device) for size in self.sizes])

    def _pending(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.values:
            zero = torch.zeros((), dtype=torch.float64, device=self.total.device)
            return zero, zero
        values, weights = torch.stack(self.values).to(torch.float64), self._weights()
        return (values * weights).sum(), weights.sum()

    def reset(self) -> None:
        self.total.zero_()
        self.weight.zero_()
        self.values, self.sizes = [], []

    def value(self) -> float:
        """The weighted sum so far (does not fold: reading never changes the summation order)."""
        return float(self.total + self._pending()[0])

    def mean(self) -> float:
        """sum_i w_i * loss_i / sum_i w_i over the steps so far (0 before any step)."""
        total, weight = self._pending()
        weight = self.weight + weight
        return float((self.total + total) / weight) if float(weight) > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        pending = torch.stack(self.values) if self.values else self.total.new_zeros(0)  # in the losses' dtype
        weights = self._weights() if self.sizes else self.total.new_zeros(0)
        return {"total": self.total.clone(), "weight": self.weight.clone(), "pending": pending,
                "pending_weights": weights}

    def load_state_dict(self, state: dict[str, Any], rows_so_far: int | None = None) -> None:
        """``rows_so_far``: the epoch's rows so far, for a checkpoint written before weights were kept (its
        "sizes" were row counts and its folded weight the rows less the pending ones)."""
        self.total.copy_(state["total"])
        pending = state.get("pending")
        self.values = [] if pending is None else list(pending.to(self.total.device).clone().unbind())
        if "pending_weights" in state:
            weights = state["pending_weights"].to(self.total.device, torch.float64)
            self.sizes = list(weights.clone().unbind())
            self.weight.copy_(state["weight"])
        else:
            self.sizes = [int(n) for n in state["sizes"]]
            self.weight.fill_(float((rows_so_far or 0) - sum(self.sizes)))
