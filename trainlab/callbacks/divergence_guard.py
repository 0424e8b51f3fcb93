"""Divergence guard: a non-finite or spiking loss -> stop (exit 4) or roll back and lower the LR.

Which losses count is the rule of callbacks/spike_rule.py (:class:`SpikeRule`: the threshold over a window
of good losses, the start bar before the window's reference exists, runs of spikes judged against the
spikes the data has already shown). This callback decides what it judges and when, and acts.

Small batches. A judged loss covers at least ``ROWS_JUDGED`` rows, so that one row cannot look like
divergence: one row's loss is heavy-tailed (at batch size 1 an outlier target's squared error is
hundreds of times the median row loss, above ``LONE_SPIKE`` (spike_rule.py) x the threshold, though nothing
diverges). A step of ``r < ROWS_JUDGED`` rows (``rows_per_step``: batch size x accumulation) is
judged in disjoint groups of ``g = ceil(ROWS_JUDGED / r)`` consecutive steps, each by the *median* of
its step losses, and the rule (spike_rule.py) runs on these medians as it runs on step losses for large
batches (``window`` medians in the window, the reference the median of the first half-window of
steps' medians (at least 5), the spike memory and runs counting groups; the threshold is recomputed
after each good group). The median, not the mean: fewer than half of a group's steps, whatever their
losses, cannot move it past the threshold, while a mean over 32 rows still moves by 1/32 of one
outlier's loss (2500 / 32 = 78 x a converged row loss of 1, past the threshold's floor of 12.5 x
the starting loss, and 3% outlier rows put two such groups in a row often). Divergence moves every
row's loss, so it moves the median. It is not held back by a group: a NaN/Inf step loss counts at
once, at its own step, and an open group counts as soon as ``g // 2 + 1`` of its step losses are
above the bar at which a complete group counts at once (``LONE_SPIKE`` x max(T, S); T itself when the
group would end a run long enough to count): its median is then sure to be above it, so a loss that
keeps growing counts ``g // 2 + 1`` steps (rows, at batch size 1) after passing that bar. A group
that counts names the step and batch of its largest step loss (the batch a rollback skips) and
rolls back to a snapshot at least ``window`` steps before the first step of its run. The open group
(its step losses, first step and largest loss) is guard state, saved in checkpoints and snapshots:
a resumed run completes it as the uninterrupted run does; so are the current run of spikes and the
spike memory.

Losses are read every ``check_every`` steps (one device sync, not one per step),
at every ``window``-th step, and before any checkpoint is written or validation run
(``on_before_save``, ``on_before_validation``, which also check that the weights are finite): a
checkpoint never holds, and a validation never scores, a state the guard has not cleared (with small
batches: an open group's steps are cleared of non-finite losses and of a sure spike; the group is judged
once complete). Policy ``stop`` raises a
TrainingError naming the step and the value. Policy ``rollback`` restores the
snapshot taken at a cleared ``window``-th step at least ``window`` steps before the bad one (the
guard keeps the last two: a loss that climbs for a while before it counts as a spike has often
damaged the newest one; :meth:`TrainerView.snapshot`),
multiplies the LR by ``lr_factor``, skips the offending batch (with gradient accumulation every
micro-batch of its step) and continues;
after ``max_rollbacks`` it stops. The snapshots are saved with the guard's state,
so a resumed run rolls back exactly as the uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import torch

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.spike_rule import SpikeRule
from trainlab.config_fields import counted
from trainlab.engine.snapshot import Snapshot
from trainlab.errors import TrainingError

# the fewest rows a judged loss covers: one row's loss (an outlier target, a mislabelled image) is
# heavy-tailed; 32, the smallest common mini-batch, is in the range of batch sizes (16-128) that the
# rule's defaults (spike_factor 50, LONE_SPIKE 10) were set on
ROWS_JUDGED = 32


def steps_per_judged_loss(rows_per_step: int | None) -> int:
    """``ceil(ROWS_JUDGED / rows_per_step)`` steps a judged loss covers (1: each step alone; None, unknown: 1)."""
    if rows_per_step is None or rows_per_step >= ROWS_JUDGED:
        return 1
    return -(-ROWS_JUDGED // max(rows_per_step, 1))



class DivergenceGuard(Callback):
    order = 20
    name = "divergence"

    def __init__(self, policy: str, spike_factor: float, window: int, lr_factor: float, max_rollbacks: int,
                 check_every: int = 10, rows_per_step: int | None = None, outlier_loss: str | None = None,
                 micro_batches_per_step: int = 1):
        if policy not in ("stop", "rollback"):
            raise ValueError(f"policy must be 'stop' or 'rollback'; got {policy!r}")
        self.policy, self.spike_factor, self.window = policy, spike_factor, window
        self.lr_factor, self.max_rollbacks, self.check_every = lr_factor, max_rollbacks, check_every
        self.outlier_loss = outlier_loss  # advice for small steps: the loss setting that weighs outliers less
        # grad_accum_steps: a step is this many micro-batches (fewer at an epoch's end), all skipped by a rollback
        self.micro_batches_per_step = micro_batches_per_step
        self._last_taken: tuple[int, int, int] | None = None  # (step, epoch, last micro-batch) of the newest step
        self._pending: list[tuple[int, int, int, torch.Tensor]] = []
        self.snapshots: list[Snapshot] = []  # the last two, oldest first
        self._capturing = False
        # small batches (module docstring): the steps a judged loss is the median of, and the open group
        self.rows_per_step, self.group = rows_per_step, steps_per_judged_loss(rows_per_step)
        self.rule = SpikeRule(spike_factor, window, self.group)
        self._group: list[float] = []  # the open group's step losses
        self._group_first = 0  # its first step
        self._group_peak: list[Any] | None = None  # [loss, step, epoch, batch] of its largest step loss

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        state = self.rule.state_dict()
        if self.group > 1:  # the open group: a resumed run completes it as the uninterrupted run does
            state["group"] = {"losses": list(self._group), "first": self._group_first, "peak": self._group_peak}
        if self.snapshots and not self._capturing:  # a snapshot never holds itself
            # each tree as a JSON string: its {"__tensor__": key} markers name the snapshot's own tensors,
            # which a checkpoint's loader would otherwise resolve against the checkpoint's (same keys)
            state["snapshots"] = [{"tree": json.dumps(s.tree), "tensors": s.tensors} for s in self.snapshots]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)
        group = state.get("group") or {}
        self._group = [float(v) for v in group.get("losses", [])]
        self._group_first, peak = int(group.get("first", 0)), group.get("peak")
        self._group_peak = [float(peak[0]), int(peak[1]), int(peak[2]), int(peak[3])] if peak else None
        self._pending = []
        self._last_taken = None
        stored = state.get("snapshots")  # a rollback restores a state without them: keep the current
        if isinstance(stored, list) and all(isinstance(s.get("tree"), str) for s in stored):
            self.snapshots = [Snapshot(json.loads(s["tree"]), dict(s["tensors"])) for s in stored]

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, view: TrainerView) -> None:
        if self.policy == "rollback" and not self.snapshots:
            self._take_snapshot(view)

    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None:
        state = view.state
        # the step that produced this loss, by its last micro-batch (:meth:`_step_batches` gives them all)
        self._last_taken = (state.step, state.epoch, state.batch_in_epoch - 1)
        self._pending.append((*self._last_taken, loss))
        on_snapshot_step = self.policy == "rollback" and state.step % self.window == 0
        if len(self._pending) < self.check_every and not on_snapshot_step:
            return
        # not while a run of spikes, or of held losses, is open: its weights may already be on the way out,
        # and a rollback must land before the run's first spike (two snapshots are kept); nor, before the
        # reference exists, while the open group holds a step loss past the start bar: a climb has begun
        if (self._check(view) and on_snapshot_step and not self.rule.run_open
                and not self.rule.past_start_bar(self._group)):
            self._take_snapshot(view)

    def on_before_save(self, view: TrainerView) -> None:
        """Clear the pending losses, then check that the weights are finite: a step whose loss was finite can
        still have made them NaN (its gradient was), which the newest step taken (``_last_taken``; at an
        epoch's end its last micro-batch is in the epoch just closed) is blamed for. Nothing when a rollback
        is asked already (by this step's own check): its cause stays the one its event names."""
        if view.control.rollback_to is not None or not self._check(view):
            return
        weights = view.weights()
        if weights and not all(bool(torch.isfinite(w).all()) for w in weights.values() if w.is_floating_point()):
            state = view.state
            step, epoch, batch = self._last_taken or (state.step, state.epoch, state.batch_in_epoch - 1)
            self._handle(view, "non-finite weights", math.nan, step, epoch, batch)

    def on_before_validation(self, view: TrainerView) -> None:
        """As before a checkpoint: a validation never scores a state the guard has not cleared."""
        self.on_before_save(view)

    # ------------------------------------------------------------------ judging

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
            good = self.rule.good_run(values, i)
            if good:
                i += good
                continue
            step, epoch, batch, _ = pending[i]
            problem, since = self.rule.judge(values[i], step)
            if problem is not None:
                self._handle(view, problem, values[i], step, epoch, batch, since=since)
                return False
            i += 1
        return True

    def _check_groups(self, view: TrainerView, pending: list[tuple[int, int, int, torch.Tensor]],
                      values: list[float]) -> bool:
        """:meth:`_check` for steps of fewer than ROWS_JUDGED rows: step losses gathered into groups of
        ``self.group`` steps, each group's median judged; a non-finite step loss, or an open group sure to
        count, counts at once (module docstring)."""
        for (step, epoch, batch, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                first = self._group_first if self._group else step
                since = self.rule.run_start(first)
                self._handle(view, "non-finite loss", value, step, epoch, batch, since=since)
                return False
            if not self._group:
                self._group_first, self._group_peak = step, None
            self._group.append(value)
            if self._group_peak is None or value > self._group_peak[0]:
                self._group_peak = [value, step, epoch, batch]
            complete = len(self._group) == self.group
            sure = not complete and self.rule.sure_spike(value, self._group)
            if not complete and not sure:
                continue
            losses, first, (_, peak_step, peak_epoch, peak_batch) = self._group, self._group_first, self._group_peak
            self._group, self._group_peak = [], None
            since = self.rule.run_start(first)
            if complete:
                value = statistics.median(losses)
                problem, since = self.rule.judge(value, first)
                if problem is None:
                    continue
                problem = (problem.replace("loss spike (", f"loss spike (median of steps {first}-{step} ", 1)
                           .replace("recent losses", f"recent {self.group}-step medians"))
            else:
                value = sorted(losses, reverse=True)[self.group // 2]  # the least the group's median can be
                bar, rule = self.rule.sure_group_bar(since)
                problem = (f"loss spike ({self.group // 2 + 1} of the {len(losses)} steps {first}-{step} of a "
                           f"{self.group}-step group above {bar:.4g} = {rule}: its median will be too)")
            self._handle(view, problem, value, peak_step, peak_epoch, peak_batch, since=since)
            return False
        return True

    # ------------------------------------------------------------------ acting

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
        bad loss covers; default ``step``) skipping the micro-batches of ``step`` (:meth:`_step_batches`)."""
        state = view.state
        batches = self._step_batches(batch)
        event = {"event": "divergence", "step": step, "epoch": epoch + 1, "batch": batch,
                 "value": value if math.isfinite(value) else str(value), "problem": problem, "policy": self.policy}
        if len(batches) > 1:
            event["batches"] = batches
        if self.policy == "rollback" and state.rollbacks < self.max_rollbacks and self.snapshots:
            target = self.rollback_target(step if since is None else since)
            self.snapshots = [s for s in self.snapshots if s.step <= target.step]  # later ones are off-course
            lr_scale = state.lr_scale * self.lr_factor
            event.update(action="rollback", restored_step=target.step, lr_scale=lr_scale)
            # the restored state inherits the rollback bookkeeping, so the replay skips the step's batches
            new = [[epoch, b] for b in batches if [epoch, b] not in state.skipped_batches]
            skipped = [*state.skipped_batches, *new]
            view.control.rollback_to = target.with_train_state(
                rollbacks=state.rollbacks + 1, lr_scale=lr_scale, skipped_batches=skipped,
                events=[*state.events, event])
            self._pending = []
            return
        event["action"] = "stop"
        state.events.append(event)
        limit = " after the maximum number of rollbacks" if self.policy == "rollback" else ""
        shown = f"{value:.6g}" if math.isfinite(value) else str(value)
        raise TrainingError(f"training diverged{limit} at step {step}: {problem} ({shown}){self._advice(problem)}")

    def _step_batches(self, batch: int) -> list[int]:
        """The micro-batches of the step whose last one is ``batch``: with gradient accumulation a step's loss is
        the mean over several, and which of them went bad is not known, so a rollback skips them all (the
        epoch's steps start at multiples of ``micro_batches_per_step``)."""
        first = batch // self.micro_batches_per_step * self.micro_batches_per_step
        return list(range(first, batch + 1))

    def _advice(self, problem: str) -> str:
        """For a spike with steps of fewer than ROWS_JUDGED rows: what outlier rows do there, and the remedies
        besides the lower learning rate that the caller suggests."""
        if self.rows_per_step is None or self.rows_per_step >= ROWS_JUDGED or not problem.startswith("loss spike"):
            return ""
        rows = counted(self.rows_per_step, "row")  # at least 1
        loss = f"{self.outlier_loss}, " if self.outlier_loss else ""
        return (f"; with {rows} a step, a few outlier rows (outlying targets, mislabelled rows) weigh much in "
                f"the judged loss: if the data has such rows, try {loss}a larger strategy.batch_size or a higher "
                "strategy.divergence.spike_factor")
