"""Divergence guard: non-finite or spiking loss -> stop (exit 4) or roll back and lower the LR.

A loss is *bad* when it is NaN/Inf, or larger than ``spike_factor`` times the
median of the last ``window`` good losses (the loss-spike recovery used in
large-model training). The median is floored at 1% of the first window's median,
so a run that has fit its training data almost perfectly does not flag every
slightly harder batch. Policy ``stop`` ends training with a TrainingError
naming the step, the value and the last good checkpoint. Policy ``rollback``
restores the last good in-memory snapshot, multiplies the LR by ``lr_factor``,
marks the offending batch to be skipped, and continues; after ``max_rollbacks``
it stops. Every event goes to ``state.events`` (and so to metrics.jsonl and the summary).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

import torch

from trainlab.callbacks.base import Callback
from trainlab.errors import TrainingError


class DivergenceGuard(Callback):
    order = 20
    name = "divergence"

    def __init__(self, policy: str = "stop", spike_factor: float = 20.0, window: int = 50,
                 lr_factor: float = 0.5, max_rollbacks: int = 3, check_every: int = 1,
                 last_checkpoint=lambda: None):
        self.policy, self.spike_factor, self.window = policy, spike_factor, window
        self.lr_factor, self.max_rollbacks, self.check_every = lr_factor, max_rollbacks, check_every
        self.last_checkpoint = last_checkpoint  # () -> str | None, for the stop message
        self.recent: deque[float] = deque(maxlen=window)
        self._pending: list[tuple[int, int, int, torch.Tensor]] = []
        self._median: float | None = None
        self.reference: float | None = None  # median of the first full window
        self.snapshot = None
        self._snapshot_step = -1

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "reference": self.reference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"], maxlen=self.window)
        self.reference = state.get("reference")
        self._median = None

    def on_train_start(self, trainer) -> None:
        self._take_snapshot(trainer)

    def _take_snapshot(self, trainer) -> None:
        if self.policy == "rollback":
            self.snapshot = trainer.capture(clone=True)
            self._snapshot_step = trainer.state.step

    def _bad(self, value: float) -> str | None:
        if not math.isfinite(value):
            return "non-finite loss"
        if len(self.recent) >= max(5, self.window // 2):
            if self._median is None or len(self.recent) % 10 == 0:
                self._median = statistics.median(self.recent)
                if self.reference is None and len(self.recent) == self.window:
                    self.reference = self._median
            level = max(self._median, 0.01 * (self.reference or 0.0))
            if level > 0 and value > self.spike_factor * level:
                return f"loss spike (> {self.spike_factor:g} x running median {level:.4g})"
        return None

    def on_step_end(self, trainer, loss: torch.Tensor) -> None:
        state = trainer.state
        # the batch that produced this loss: the last micro-batch index of the step
        self._pending.append((state.step, state.epoch, state.batch_in_epoch - 1, loss))
        if len(self._pending) < self.check_every:
            return
        pending, self._pending = self._pending, []
        values = [float(loss)] if len(pending) == 1 else torch.stack([p[3] for p in pending]).tolist()
        for (step, epoch, batch, _), value in zip(pending, values, strict=True):
            problem = self._bad(value)
            if problem is None:
                self.recent.append(value)
                continue
            self._handle(trainer, problem, value, step, epoch, batch)
            return
        if self.policy == "rollback" and state.step - self._snapshot_step >= self.window:
            self._take_snapshot(trainer)

    def _handle(self, trainer, problem: str, value: float, step: int, epoch: int, batch: int) -> None:
        state = trainer.state
        event = {"event": "divergence", "step": step, "epoch": epoch + 1, "batch": batch, "value": value,
                 "problem": problem, "policy": self.policy}
        if self.policy == "rollback" and state.rollbacks < self.max_rollbacks and self.snapshot is not None:
            restored_step = self._snapshot_step
            tree, tensors = self.snapshot
            # the restored state inherits the rollback bookkeeping, so replay skips this batch
            train_state = dict(tree["train_state"])
            train_state["rollbacks"] = state.rollbacks + 1
            train_state["lr_scale"] = state.lr_scale * self.lr_factor
            train_state["skipped_batches"] = [*state.skipped_batches, [epoch, batch]]
            event.update(action="rollback", restored_step=restored_step, lr_scale=train_state["lr_scale"])
            train_state["events"] = [*state.events, event]
            trainer.control.rollback_to = ({**tree, "train_state": train_state}, tensors)
            self.recent.clear()
            self._median = None
            return
        checkpoint = self.last_checkpoint()
        event["action"] = "stop"
        state.events.append(event)
        where = f"; last good checkpoint: {checkpoint}" if checkpoint else "; no checkpoint was written yet"
        limit = " after the maximum number of rollbacks" if self.policy == "rollback" else ""
        raise TrainingError(f"training diverged{limit} at step {step}: {problem} ({value:.6g}){where}")
