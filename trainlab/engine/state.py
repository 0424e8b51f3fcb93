"""The loop's resumable counters and the flags callbacks use to steer it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


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
    events: list[dict[str, Any]] = field(default_factory=list)  # divergence, checkpoint failures, ...
    stop_reason: str | None = None
    stopped_early: bool = False
    finished: bool = False

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in state.items():
            if key in known:
                setattr(self, key, value)


@dataclass
class Control:
    """Flags a callback sets to ask the loop for something (HF ``TrainerControl``)."""

    should_stop: bool = False
    stop_reason: str | None = None
    rollback_to: Any = None  # a captured snapshot the loop restores at the next safe point
    interrupted_by: int | None = None  # signal number; the run stops after a checkpoint, unfinished

    def stop(self, reason: str) -> None:
        self.should_stop = True
        self.stop_reason = self.stop_reason or reason
