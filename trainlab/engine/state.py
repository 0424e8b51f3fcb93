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
    """Float64 sum of n_i * loss_i over an epoch's batches, with no tensor kernel per step.

    Each batch's (detached, scalar) loss is kept and folded into the float64 total every
    ``fold_every`` batches: ``total += sum_i float64(loss_i) * n_i``. Fold points depend only on
    how many batches were added since :meth:`reset`, and the pending values are checkpointed,
    so a resumed run sums in exactly the same order as one that never stopped.
    """

    fold_every: int = 256

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.values: list[torch.Tensor] = []
        self.sizes: list[int] = []

    def add(self, value: torch.Tensor, size: int) -> None:
        self.values.append(value)
        self.sizes.append(size)
        if len(self.values) >= self.fold_every:
            self.total += self._pending()
            self.values, self.sizes = [], []

    def _pending(self) -> torch.Tensor:
        if not self.values:
            return torch.zeros((), dtype=torch.float64, device=self.total.device)
        values = torch.stack(self.values).to(torch.float64)
        return (values * torch.tensor(self.sizes, dtype=torch.float64, device=values.device)).sum()

    def reset(self) -> None:
        self.total.zero_()
        self.values, self.sizes = [], []

    def value(self) -> float:
        """The sum so far (does not fold: reading never changes the summation order)."""
        return float(self.total + self._pending())

    def state_dict(self) -> dict[str, Any]:
        pending = torch.stack(self.values) if self.values else self.total.new_zeros(0)  # in the losses' dtype
        return {"sizes": list(self.sizes), "total": self.total.clone(), "pending": pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total.copy_(state["total"])
        pending = state.get("pending")
        self.values = [] if pending is None else list(pending.to(self.total.device).clone().unbind())
        self.sizes = [int(n) for n in state["sizes"]]
