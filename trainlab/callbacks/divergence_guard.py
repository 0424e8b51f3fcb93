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

Small batches. A judged loss covers at least ``ROWS_JUDGED`` rows, so that one row cannot look like
divergence: one row's loss is heavy-tailed (at batch size 1 an outlier target's squared error is
hundreds of times the median row loss, above ``LONE_SPIKE`` x the threshold, though nothing
diverges). A step of ``r < ROWS_JUDGED`` rows (``rows_per_step``: batch size x accumulation) is
judged in disjoint groups of ``g = ceil(ROWS_JUDGED / r)`` consecutive steps, each by the *median* of
its step losses, and the rule above runs on these medians as it runs on step losses for large
batches (``window`` medians in the window, the reference the median of the first half-window of
steps' medians (at least 5), the lone-spike rule counting groups; the threshold is recomputed after
each good group). The median, not the mean: fewer than half of a group's steps, whatever their
losses, cannot move it past the threshold, while a mean over 32 rows still moves by 1/32 of one
outlier's loss (2500 / 32 = 78 x a converged row loss of 1, past the threshold's floor of 12.5 x
the starting loss, and 3% outlier rows put two such groups in a row often). Divergence moves every
row's loss, so it moves the median. It is not held back by a group: a NaN/Inf step loss counts at
once, at its own step, and an open group counts as soon as ``g // 2 + 1`` of its step losses are
above the bar at which a complete group counts at once (``LONE_SPIKE`` x the threshold; the
threshold itself right after a lone spike): its median is then sure to be above it, so a loss that
keeps growing counts ``g // 2 + 1`` steps (rows, at batch size 1) after passing that bar. A group
that counts names the step and batch of its largest step loss (the batch a rollback skips) and
rolls back to a snapshot at least ``window`` steps before the group's first step. The open group
(its step losses, first step and largest loss) is guard state, saved in checkpoints and snapshots:
a resumed run completes it as the uninterrupted run does.

Losses are read every ``check_every`` steps (one device sync, not one per step),
at every ``window``-th step, and before any checkpoint is written
(``on_before_save``, which also checks that the weights are finite): a checkpoint
never holds a state the guard has not cleared (with small batches: an open group's steps are cleared
of non-finite losses and of a sure spike; the group is judged once complete). Policy ``stop`` raises a
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
# the fewest rows a judged loss covers: one row's loss (an outlier target, a mislabelled image) is
# heavy-tailed; 32, the smallest common mini-batch, is in the range of batch sizes (16-128) that the
# rule's defaults (spike_factor 50, LONE_SPIKE 10) were set on
ROWS_JUDGED = 32


def steps_per_judged_loss(rows_per_step: int | None) -> int:
    """``ceil(ROWS_JUDGED / rows_per_step)`` steps a judged loss covers (1: each step alone; None, unknown: 1)."""
    if rows_per_step is None or rows_per_step >= ROWS_JUDGED:
        return 1
    return -(-ROWS_JUDGED // max(rows_per_step, 1))


def spike_threshold(recent: list[float], reference: float, spike_factor: float) -> float:
    """median + spike_factor * max(1.4826 * MAD, reference / 4) of ``recent``."""
    median = statistics.median(recent)
    mad = statistics.median(abs(v - median) for v in recent)
    return median + spike_factor * max(MAD_TO_SIGMA * mad, reference / 4)


class DivergenceGuard(Callback):
    order = 20
    name = "divergence"

    def __init__(self, policy: str, spike_factor: float, window: int, lr_factor: float, max_rollbacks: int,
                 check_every: int = 10, rows_per_step: int | None = None):
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
        # small batches (module docstring): the steps a judged loss is the median of, and the open group
        self.rows_per_step, self.group = rows_per_step, steps_per_judged_loss(rows_per_step)
        self._group: list[float] = []  # the open group's step losses
        self._group_first = 0  # its first step
        self._group_peak: list[Any] | None = None  # [loss, step, epoch, batch] of its largest step loss
        # the reference: the median of the first half-window of steps' judged losses, at least 5 of them
        self._reference_after = max(5, -(-(window // 2) // self.group))

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"recent": list(self.recent), "reference": self.reference,
                                 "judged": self._judged, "threshold": self._threshold, "spiked": self._spiked}
        if self.group > 1:  # the open group: a resumed run completes it as the uninterrupted run does
            state["group"] = {"losses": list(self._group), "first": self._group_first, "peak": self._group_peak}
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
        group = state.get("group") or {}
        self._group = [float(v) for v in group.get("losses", [])]
        self._group_first, peak = int(group.get("first", 0)), group.get("peak")
        self._group_peak = [float(peak[0]), int(peak[1]), int(peak[2]), int(peak[3])] if peak else None
        self._pending = []
        stored = state.get("snapshots")  # a rollback restores a state without them: keep the current
        if isinstance(stored, list) and all(isinstance(s.get("tree"), str) for s in stored):
            self.snapshots = [Snapshot(json.loads(s["tree"]), dict(s["tensors"])) for s in stored]

    # ------------------------------------------------------------------ decisions

    def problem(self, value: float, refresh: bool = True) -> str | None:
        """Why ``value`` (a judged loss) is bad given the recent good losses, or None (updates the cached
        threshold at every 10th judged loss; ``refresh`` False: groups keep theirs up to date themselves)."""
        if not math.isfinite(value):
            return "non-finite loss"
        if self.reference is None:
            return None
        if self._threshold is None or (refresh and self._judged % 10 == 0):  # two medians of the window: not every step
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
        if self.reference is None and len(self.recent) >= self._reference_after:
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
        if self.group > 1:
            return self._check_groups(view, pending, values)
        i = 0
        while i < len(values):
            good = self._good_run(values, i)
            if good:
                i += good
                continue
            step, epoch, batch, _ = pending[i]
            problem = self._judge(values[i])
            if problem is not None:
                self._handle(view, problem, values[i], step, epoch, batch)
                return False
            i += 1
        return True

    def _judge(self, value: float) -> str | None:
        """Judge one loss (a step's, or a group's median): why it counts as bad, or None (a lone spike is
        remembered and left out of the window, a good loss accepted into it)."""
        grouped = self.group > 1
        problem = self.problem(value, refresh=not grouped)
        if problem is not None and self._lone_spike(value):
            self._spiked = True  # one hard batch, left out of the window; counted if the next is one too
            return None
        if problem is None:
            self._spiked = False
            self._accept(value)
            if grouped and self.reference is not None:
                # the next group's threshold, now: an open group is judged against the one it will meet
                self._threshold = spike_threshold(list(self.recent), self.reference, self.spike_factor)
        return problem

    def _check_groups(self, view: TrainerView, pending: list[tuple[int, int, int, torch.Tensor]],
                      values: list[float]) -> bool:
        """:meth:`_check` for steps of fewer than ROWS_JUDGED rows: step losses gathered into groups of
        ``self.group`` steps, each group's median judged; a non-finite step loss, or an open group sure to
        count, counts at once (module docstring)."""
        for (step, epoch, batch, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                first = self._group_first if self._group else step
                self._handle(view, "non-finite loss", value, step, epoch, batch, since=first)
                return False
            if not self._group:
                self._group_first, self._group_peak = step, None
            self._group.append(value)
            if self._group_peak is None or value > self._group_peak[0]:
                self._group_peak = [value, step, epoch, batch]
            complete = len(self._group) == self.group
            sure = not complete and self._sure_spike(value)
            if not complete and not sure:
                continue
            losses, first, (_, peak_step, peak_epoch, peak_batch) = self._group, self._group_first, self._group_peak
            self._group, self._group_peak = [], None
            if complete:
                value = statistics.median(losses)
                problem = self._judge(value)
                if problem is None:
                    continue
                problem = (problem.replace("loss spike (", f"loss spike (median of steps {first}-{step} ", 1)
                           .replace("recent losses", f"recent {self.group}-step medians"))
            else:
                value = sorted(losses, reverse=True)[self.group // 2]  # the least the group's median can be
                rule = f"median + {self.spike_factor:g} x spread of recent {self.group}-step medians"
                problem = (f"loss spike ({self.group // 2 + 1} of the {len(losses)} steps {first}-{step} of a "
                           f"{self.group}-step group above {self._bar():.4g} = "
                           f"{rule if self._spiked else f'{LONE_SPIKE:g} x ({rule})'}: its median will be too)")
            self._handle(view, problem, value, peak_step, peak_epoch, peak_batch, since=first)
            return False
        return True

    def _sure_spike(self, value: float) -> bool:
        """The open group's median will count at once whatever its other steps bring: more than half of
        its ``group`` step losses are above the bar (the newest, ``value``, among them)."""
        if self.reference is None or self._threshold is None:
            return False
        bar = self._bar()
        return value > bar and sum(v > bar for v in self._group) > self.group // 2

    def _bar(self) -> float:
        """What a complete group's median must exceed to count at once: LONE_SPIKE x the threshold, or the
        threshold itself right after a lone spike."""
        assert self._threshold is not None
        return self._threshold if self._spiked else LONE_SPIKE * self._threshold

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

    def _handle(self, view: TrainerView, problem: str, value: float, step: int, epoch: int, batch: int,
                since: int | None = None) -> None:
        """Stop, or roll back to a snapshot at least ``window`` steps before ``since`` (the first step the
        bad loss covers; default ``step``) skipping the batch of ``step``."""
        state = view.state
        event = {"event": "divergence", "step": step, "epoch": epoch + 1, "batch": batch,
                 "value": value if math.isfinite(value) else str(value), "problem": problem, "policy": self.policy}
        if self.policy == "rollback" and state.rollbacks < self.max_rollbacks and self.snapshots:
            target = self.rollback_target(step if since is None else since)
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
        raise TrainingError(f"training diverged{limit} at step {step}: {problem} ({shown}){self._advice(problem)}")

    def _advice(self, problem: str) -> str:
        """For a spike with steps of fewer than ROWS_JUDGED rows: what outlier rows do there, and the remedies
        besides the lower learning rate that the caller suggests."""
        if self.rows_per_step is None or self.rows_per_step >= ROWS_JUDGED or not problem.startswith("loss spike"):
            return ""
        rows = f"{self.rows_per_step} row{'s' if self.rows_per_step > 1 else ''}"
        return (f"; with {rows} a step, a few outlier rows (outlying targets, mislabelled rows) weigh much in "
                "the judged loss: if the data has such rows, try a robust loss (strategy.loss: huber), a larger "
                "strategy.batch_size or a higher strategy.divergence.spike_factor")
