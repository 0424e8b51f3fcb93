"""Divergence guard: a non-finite or spiking loss -> stop (exit 4) or roll back and lower the LR.

A loss is *bad* when it is NaN/Inf, or a spike: larger than

    median + spike_factor * spread,   spread = max(1.4826 * MAD, reference / 4)

over the last ``window`` good losses, where MAD is their median absolute
deviation (1.4826 * MAD estimates a standard deviation robustly) and
``reference`` the median of the first half-window of the run (the loss's
starting level). The rule scales with the loss's own spread, so a converged run
whose batch losses vary from 1e-4 to 2 is healthy, and the floor keeps a
near-constant loss from flagging every slightly harder batch: with the default
``spike_factor`` 50 nothing below median + 12.5 x the starting loss is a spike.
A spike up to ``LONE_SPIKE`` x the threshold must recur in the next loss to count: one hard
mini-batch (a classifier's batch of 16 holding two confidently wrong rows reaches 13 x its
starting loss) is noise, while divergence persists; a larger spike counts at once.

Losses are read every ``check_every`` steps (one device sync, not one per step),
at every ``window``-th step, and before any checkpoint is written
(``on_before_save``, which also checks that the weights are finite): a checkpoint
never holds a state the guard has not cleared. Policy ``stop`` raises a
TrainingError naming the step and the value. Policy ``rollback`` restores the
snapshot taken at a cleared ``window``-th step at least ``window`` steps before the bad one (the
guard keeps the last two: a loss that climbs for a while before it counts as a spike has often
damaged the newest one; :meth:`TrainerView.snapshot`),
multiplies the LR by ``lr_factor``, skips the offending batch and continues;
after ``max_rollbacks`` it stops. The snapshots are saved with the guard's state,
so a resumed run rolls back exactly as the uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import deque
from typing import Any

import torch

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.engine.snapshot import Snapshot
from trainlab.errors import TrainingError

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD * this estimates sigma for normal data
LONE_SPIKE = 10.0  # a spike below this x the threshold counts only when the next loss is one too


def spike_threshold(recent: list[float], reference: float, spike_factor: float) -> float:
    """median + spike_factor * max(1.4826 * MAD, reference / 4) of ``recent``."""
    median = statistics.median(recent)
    mad = statistics.median(abs(v - median) for v in recent)
    return median + spike_factor * max(MAD_TO_SIGMA * mad, reference / 4)


class DivergenceGuard(Callback):
    order = 20
    name = "divergence"

    def __init__(self, policy: str, spike_factor: float, window: int, lr_factor: float, max_rollbacks: int,
                 check_every: int = 10):
        if policy not in ("stop", "rollback"):
            raise ValueError(f"policy must be 'stop' or 'rollback'; got {policy!r}")
        self.policy, self.spike_factor, self.window = policy, spike_factor, window
        self.lr_factor, self.max_rollbacks, self.check_every = lr_factor, max_rollbacks, check_every
        self.recent: deque[float] = deque(maxlen=window)
        self.reference: float | None = None
        self._threshold: float | None = None
        self._judged = 0  # losses judged against the threshold; it is recomputed every 10th
        self._spiked = False  # the last judged loss was a lone spike, not yet counted
        self._pending: list[tuple[int, int, int, torch.Tensor]] = []
        self.snapshots: list[Snapshot] = []  # the last two, oldest first
        self._capturing = False

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"recent": list(self.recent), "reference": self.reference,
                                 "judged": self._judged, "threshold": self._threshold, "spiked": self._spiked}
        if self.snapshots and not self._capturing:  # a snapshot never holds itself
            # each tree as a JSON string: its {"__tensor__": key} markers name the snapshot's own tensors,
            # which a checkpoint's loader would otherwise resolve against the checkpoint's (same keys)
            state["snapshots"] = [{"tree": json.dumps(s.tree), "tensors": s.tensors} for s in self.snapshots]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = deque(state["recent"], maxlen=self.window)
        self.reference = state.get("reference")
        # the cached threshold is state: a resumed run judges with the same one as the uninterrupted run
        self._judged, self._threshold = int(state.get("judged", 0)), state.get("threshold")
        self._spiked = bool(state.get("spiked", False))
        self._pending = []
        stored = state.get("snapshots")  # a rollback restores a state without them: keep the current
        if isinstance(stored, list) and all(isinstance(s.get("tree"), str) for s in stored):
            self.snapshots = [Snapshot(json.loads(s["tree"]), dict(s["tensors"])) for s in stored]

    # ------------------------------------------------------------------ decisions

    def problem(self, value: float) -> str | None:
        """Why ``value`` is bad given the recent good losses, or None (updates the cached threshold)."""
        if not math.isfinite(value):
            return "non-finite loss"
        if self.reference is None:
            return None
        if self._threshold is None or self._judged % 10 == 0:  # two medians of the window: not every step
            self._threshold = spike_threshold(list(self.recent), self.reference, self.spike_factor)
        self._judged += 1
        if value > self._threshold:
            return f"loss spike (> {self._threshold:.4g} = median + {self.spike_factor:g} x spread of recent losses)"
        return None

    def _good_run(self, values: list[float], start: int) -> int:
        """How many values from ``start`` on are good under one threshold, judged at once (0: judge one).

        Judging value by value recomputes the threshold at every 10th judged value; the values up to
        the next recompute point all meet the same threshold (and accepting them in order is
        ``recent.extend``). If all of them are finite and the largest is <= it, they are accepted
        here in one go; otherwise 0, and the caller judges ``values[start]`` alone, which recomputes
        the same threshold: outcome and saved state are those of the value-by-value rule.
        """
        if self.reference is None:
            return 0
        run = values[start:start + 10 - self._judged % 10]
        if not all(map(math.isfinite, run)):
            return 0
        if self._threshold is None or self._judged % 10 == 0:
            self._threshold = spike_threshold(list(self.recent), self.reference, self.spike_factor)
        if max(run) > self._threshold:
            return 0
        self._judged += len(run)
        self.recent.extend(run)
        self._spiked = False
        return len(run)

    def _accept(self, value: float) -> None:
        self.recent.append(value)
        if self.reference is None and len(self.recent) >= max(5, self.window // 2):
            self.reference = statistics.median(self.recent)

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, view: TrainerView) -> None:
        if self.policy == "rollback" and not self.snapshots:
            self._take_snapshot(view)

    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None:
        state = view.state
        # the batch that produced this loss: the last micro-batch index of the step
        self._pending.append((state.step, state.epoch, state.batch_in_epoch - 1, loss))
        on_snapshot_step = self.policy == "rollback" and state.step % self.window == 0
        if len(self._pending) < self.check_every and not on_snapshot_step:
            return
        if self._check(view) and on_snapshot_step:
            self._take_snapshot(view)

    def on_before_save(self, view: TrainerView) -> None:
        if not self._check(view):
            return
        weights = view.weights()
        if weights and not all(bool(torch.isfinite(w).all()) for w in weights.values() if w.is_floating_point()):
            state = view.state
            self._handle(view, "non-finite weights", math.nan, state.step, state.epoch, state.batch_in_epoch - 1)

    def _check(self, view: TrainerView) -> bool:
        """Check every pending loss; True when all were good."""
        if not self._pending:
            return True
        pending, self._pending = self._pending, []
        values = torch.stack([p[3].float() for p in pending]).tolist()
        i = 0
        while i < len(values):
            good = self._good_run(values, i)
            if good:
                i += good
                continue
            step, epoch, batch, _ = pending[i]
            problem = self.problem(values[i])
            if problem is not None and self._lone_spike(values[i]):
                self._spiked = True  # one hard batch, left out of the window; counted if the next is one too
                i += 1
                continue
            if problem is not None:
                self._handle(view, problem, values[i], step, epoch, batch)
                return False
            self._spiked = False
            self._accept(values[i])
            i += 1
        return True

    def _lone_spike(self, value: float) -> bool:
        """A finite spike below LONE_SPIKE x the threshold right after a good loss: not counted yet."""
        return (math.isfinite(value) and not self._spiked and self._threshold is not None
                and value <= LONE_SPIKE * self._threshold)

    @property
    def snapshot(self) -> Snapshot | None:
        """The newest snapshot."""
        return self.snapshots[-1] if self.snapshots else None

    def rollback_target(self, bad_step: int) -> Snapshot:
        """The newest snapshot at least ``window`` steps before ``bad_step``, else the oldest kept."""
        early = [s for s in self.snapshots if s.step <= bad_step - self.window]
        return early[-1] if early else self.snapshots[0]

    def _take_snapshot(self, view: TrainerView) -> None:
        self._capturing = True
        try:
            self.snapshots = [*self.snapshots, view.snapshot()][-2:]
        finally:
            self._capturing = False

    def _handle(self, view: TrainerView, problem: str, value: float, step: int, epoch: int, batch: int) -> None:
        state = view.state
        event = {"event": "divergence", "step": step, "epoch": epoch + 1, "batch": batch,
                 "value": value if math.isfinite(value) else str(value), "problem": problem, "policy": self.policy}
        if self.policy == "rollback" and state.rollbacks < self.max_rollbacks and self.snapshots:
            target = self.rollback_target(step)
            self.snapshots = [s for s in self.snapshots if s.step <= target.step]  # later ones are off-course
            lr_scale = state.lr_scale * self.lr_factor
            event.update(action="rollback", restored_step=target.step, lr_scale=lr_scale)
            # the restored state inherits the rollback bookkeeping, so the replay skips this batch
            view.control.rollback_to = target.with_train_state(
                rollbacks=state.rollbacks + 1, lr_scale=lr_scale,
                skipped_batches=[*state.skipped_batches, [epoch, batch]], events=[*state.events, event])
            self._pending = []
            return
        event["action"] = "stop"
        state.events.append(event)
        limit = " after the maximum number of rollbacks" if self.policy == "rollback" else ""
        shown = f"{value:.6g}" if math.isfinite(value) else str(value)
        raise TrainingError(f"training diverged{limit} at step {step}: {problem} ({shown})")
