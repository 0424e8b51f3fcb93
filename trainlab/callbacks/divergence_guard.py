"""Divergence guard: a non-finite or spiking loss -> stop (exit 4) or roll back and lower the LR.

A loss is a *spike* when it is larger than the threshold

    T = median + spike_factor * spread,   spread = max(1.4826 * MAD, |reference| / 4)

over the last ``window`` good losses, where MAD is their median absolute
deviation (1.4826 * MAD estimates a standard deviation robustly) and
``reference`` the median of the first half-window of the run (the loss's
starting level). The rule scales with the loss's own spread, so a converged run
whose batch losses vary from 1e-4 to 2 is healthy, and the floor keeps a
near-constant loss from flagging every slightly harder batch: with the default
``spike_factor`` 50 nothing below median + 12.5 x |starting loss| is a spike.

Negative losses (a Gaussian NLL, a log-likelihood objective, some contrastive losses). The rule
measures a loss by its excess over the window's level, so that a loss steady at -0.5 is as healthy
as one steady at 0.5: the floor uses ``|reference|`` (``reference / 4`` would be below 0 and the
spread the MAD alone), and where the rule below takes a multiple of a threshold (LONE_SPIKE x T,
SAME_LEVEL x T) it takes it above the base ``b = min(median, 0)``: ``b + factor x (T - b)``. For a
window whose median is >= 0 that is ``factor x T``, the rule as it was written for positive losses
(which decides as it did); for a negative median it is ``median + factor x (T - median)``, the
multiple of the threshold's excess over the median (``factor x T`` would be below ``T`` itself, and
every spike would count at once).

The start, before the reference exists (its half-window of judged losses, 25 steps by default). With
no window to judge by, a loss that explodes in the first steps would otherwise be accepted and become
the reference itself. One loss cannot tell an explosion from a batch the data makes: with
unstandardised zero-inflated targets (97% of y = 0, the rest ~40), a batch of 32 without a non-zero
target (38% of them) has a loss of 0.01-0.3, one holding a few 30-250, a thousand times more, and a
bar taken from the first loss alone stopped 13 of 40 seeds of such a run. So the start, like the rule
below, counts runs of losses, not lone ones. Let the start level ``m`` be the first finite judged loss
(the starting loss), raised to the largest loss of each run that was cleared (below). A judged loss
above

    B = m + LONE_SPIKE ** 2 * spike_factor * max(|m|, START_FLOOR) / 4

(1251 x m for m >= 0.01 at the default ``spike_factor`` 50) is held: neither accepted nor counted yet.
A run of held losses counts, as a spike that counts does (stop; or roll back to a snapshot a window
before the run's first step, the one taken when training started if there is no such later one), when

* it is START_RUN (3) judged losses long, or
* it is 2 long and the second is above the far bar ``m + LONE_SPIKE ** 3 * spike_factor * max(|m|,
  START_FLOOR) / 4`` (12,501 x m; as below, a loss LONE_SPIKE times further above the bar counts
  sooner, but never alone): an optimizer blow-up (iris, Adam at lr 1e3: 1.1, then 2e11, 1.9e12, 8e11,
  ...; at lr 10: 1.1, 2e5, 2e6) counts at its second loss, step 3;

a NaN/Inf counts at once. A loss at or below B clears the run: the held losses were the data's own
(they show the loss's scale, and ``m`` rises to the largest of them) and are accepted, in order, before
it. So a loss above B joins the reference only when a loss after it came back below B: an explosion,
which keeps going, never does. A loss that climbs 3x a step passes B at 3000 x m and counts two steps
later. ``m`` rises only with a cleared run, not with every accepted loss: a climb of 3x (even 100x) a
step stays below the bar of the loss before it, and would carry the bar up with it until the exploded
loss became the reference. The price: data whose batches legitimately pass B three times in a row (or
twice, the second far above it) before one comes back is stopped: on the zero-inflated data above
(simulated batches of 32, 0.5-10% non-zero targets ~40 +- 5, all-zero batches at 0.01-0.3) 0.3-1.8% of
runs (3-17% with the bar from the first loss alone; 0 of the 40 real seeds, 13 before); of the runs
whose first batch is all-zero, 0.3-5.5% at 0.5-3% non-zero targets, and 30% at 10% (3% of its runs
start so), where every later batch is ~1000 x the first: as an optimizer blow-up looks, which no rule on
the losses alone can tell from it. Targets ten times larger (~400: a non-zero batch 10^4-10^5 x an
all-zero one) pass the far bar, and 3-23% of such runs still stop (37-83% before): standardise them.

B is the threshold of a window holding ``m`` alone (median ``m``, spread ``m / 4``) with its spread
term taken LONE_SPIKE ** 2 = 100 times: the immediate bar of the rule below (LONE_SPIKE x T), and a
further LONE_SPIKE because the spikes the data makes (S below, which lifts that bar on data whose
batches spike: with 1% of the targets 50 std(y) off, 4% of the batches of 32 pass 10 x T) are not
known yet; 17 of 32 rows would have to be such outliers to pass B. Warm-ups (2-3 x) and a fine-tune's
early rise (0.01 to 0.05) stay far below it. START_FLOOR (0.01) stands in for ``|m|`` nearer 0: at a
near-zero loss the first batch says little about the loss's scale (a few misclassified rows are the
whole batch loss: two at loss 20 in a batch of 32 make 1.25), so such a start (a negative one near 0
too: Gaussian NLL) holds only a loss above m + 12.5: above the chance-level cross-entropy (ln C) of
any classifier with fewer than 268,000 classes, and 12.5 x the MSE of predicting the mean of
standardized targets. Using ``|m|`` keeps B above ``m`` for negative losses (a cleared loss is above
B, so it always raises the bar). B grows with ``spike_factor``, so a factor raised for outlier-heavy
data raises it too. With small batches (below) the judged losses are the groups' medians (``m``
starts at the first group's), an open group counts once more than half of its steps are above the bar
its median would count at (B with two held, the far bar with one), and no snapshot is
taken while a run is held or the open group holds a step above B (a climb may already have begun).

Which spikes count (the contract). Divergence persists or grows; a hard mini-batch does not, but it
can be frequent: with 1% of the targets 50 std(y) off, 27% of the batches of 32 hold one such row,
whose squared error alone makes the batch's loss ~78 x the clean starting loss (past the threshold),
4% hold two (past 10 x it), and two such batches in a row come every ~13 steps, while the model
converges. So a spike is judged against the spikes the run has already shown. Let ``q`` be the rate
of spikes under the current threshold T among the last ``SPIKE_MEMORY`` (1000) judged losses (fewer at
the start of a run), one of them not counted: the spikes of finished runs (the newest
``SPIKES_KEPT``, 128), those still above T and seen under a threshold at most ``SAME_LEVEL`` (10) x T,
plus the window's good losses above T (accepted while T was higher: the reference's half-window, the
outlier batches of a window whose median was theirs); and ``S`` their median. A NaN/Inf loss counts
at once, and a spike counts when

* it is above ``LONE_SPIKE`` (10) x max(T, S) (10 x T when there is no S; taken above the base ``b``
  for a negative median, see above): far above the loss's level and above the spikes this data makes, or
* it ends a run of ``n`` consecutive spikes, ``n`` the fewest >= 2 with ``q ** n <= RUN_CHANCE``
  (1e-6): 2 while at most one spike was seen (q = 0: the rule before outlier data was considered),
  3 at q = 0.01, 6 at 0.1, 11 at 0.275, 20 at 0.5, 49 at 0.75.

Any other spike joins the current run: left out of the window, remembered once a good loss ends the
run. Statistics: batches draw their rows at random, so each is a spike independently of the one
before, with probability ~q, and a given loss ends a run of ``n`` spikes with probability ``q ** n <=
1e-6``: about one false stop in a million judged losses at any outlier rate (the estimate of q is
within +-0.03 at q = 0.1). Not counting the first spike keeps two spikes in a row after one lone spike
a divergence (a loss that starts to diverge often spikes once first), and the price is the start of a
run on data whose batches spike at 5-15%: until two spikes are seen a pair still counts, which stops
~2-6% of such runs in their first ~50 judged losses (all of them before this rule). Divergence is
still caught: a loss that keeps growing reaches 10 x max(T, S), one that jumps to a new level above T
and stays counts after ``n`` steps (2 where the loss never spiked), and the spikes of the current run
join the memory only when it ends, so a diverging loss never raises its own bar. A run that counts
rolls back to a snapshot at least ``window`` steps before its first spike.

Small batches. A judged loss covers at least ``ROWS_JUDGED`` rows, so that one row cannot look like
divergence: one row's loss is heavy-tailed (at batch size 1 an outlier target's squared error is
hundreds of times the median row loss, above ``LONE_SPIKE`` x the threshold, though nothing
diverges). A step of ``r < ROWS_JUDGED`` rows (``rows_per_step``: batch size x accumulation) is
judged in disjoint groups of ``g = ceil(ROWS_JUDGED / r)`` consecutive steps, each by the *median* of
its step losses, and the rule above runs on these medians as it runs on step losses for large
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
from collections import deque
from typing import Any

import torch

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.config_fields import counted
from trainlab.engine.snapshot import Snapshot
from trainlab.errors import TrainingError

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD * this estimates sigma for normal data
LONE_SPIKE = 10.0  # a spike above this x max(threshold, spike level) counts at once; below, only in a run
# the chance a run of spikes that counts may have where batches spike at random: runs as long as the
# observed spike rate q makes q ** n <= this, about one false stop in a million judged losses
RUN_CHANCE = 1e-6
# judged losses the spike rate is measured over: a rate of 10% is measured to within +-0.03 (binomial),
# and a spike a few hundred steps ago still says that the data makes them
SPIKE_MEMORY = 1000
SPIKES_KEPT = 128  # the newest spikes remembered: a fixed bound on the work per spike judged
# a remembered spike speaks for the present while the threshold it passed is at most this x the current
# one: the threshold barely moves while a run converges (its floor, 12.5 x the starting loss by default),
# and falls by more after the loss's level fell (a divergence the window absorbed, then a recovery)
SAME_LEVEL = 10.0
# the fewest rows a judged loss covers: one row's loss (an outlier target, a mislabelled image) is
# heavy-tailed; 32, the smallest common mini-batch, is in the range of batch sizes (16-128) that the
# rule's defaults (spike_factor 50, LONE_SPIKE 10) were set on
ROWS_JUDGED = 32
# the start (module docstring): before the reference exists a judged loss above the start bar
# m + LONE_SPIKE ** 2 * spike_factor * max(|m|, START_FLOOR) / 4 is held, m the start level; a start level
# nearer 0 than this is taken as this far from 0 (at a near-zero loss a few rows make a batch's loss)
START_FLOOR = 0.01
# a run of this many held losses counts (two count when the second is above the far bar, LONE_SPIKE x further):
# one loss cannot tell a blow-up from a batch of outlier rows, and an explosion keeps going
START_RUN = 3


def steps_per_judged_loss(rows_per_step: int | None) -> int:
    """``ceil(ROWS_JUDGED / rows_per_step)`` steps a judged loss covers (1: each step alone; None, unknown: 1)."""
    if rows_per_step is None or rows_per_step >= ROWS_JUDGED:
        return 1
    return -(-ROWS_JUDGED // max(rows_per_step, 1))


def spikes_in_a_row(rate: float) -> int:
    """The run of consecutive spikes that counts when a fraction ``rate`` of the recent judged losses were
    spikes: the fewest n >= 2 with rate ** n <= RUN_CHANCE (2 at rate 0; at most SPIKE_MEMORY)."""
    if rate <= 0.0:
        return 2
    if rate >= 1.0:
        return SPIKE_MEMORY
    # the tolerance keeps 1e-3 ** 2, 1.0000000000000002e-06 in floating point, at n = 2
    return min(SPIKE_MEMORY, max(2, math.ceil(math.log(RUN_CHANCE) / math.log(rate) - 1e-9)))


def start_bar(level: float, spike_factor: float, times: float = LONE_SPIKE ** 2) -> float:
    """``level + times * spike_factor * max(|level|, START_FLOOR) / 4``, ``level`` the start level m (the
    starting loss, raised by cleared runs): before the reference exists a judged loss above it (``times``
    LONE_SPIKE ** 2, the start bar B) is held, and two held in a row count when the second is above it
    with ``times`` LONE_SPIKE ** 3 (the far bar; module docstring)."""
    return level + times * spike_factor * max(abs(level), START_FLOOR) / 4


def spike_threshold(recent: list[float], reference: float, spike_factor: float) -> float:
    """median + spike_factor * max(1.4826 * MAD, |reference| / 4) of ``recent``: ``|reference|``, so that a
    negative starting level (a Gaussian NLL's) sets the floor a positive one of the same size does."""
    median = statistics.median(recent)
    mad = statistics.median(abs(v - median) for v in recent)
    return median + spike_factor * max(MAD_TO_SIGMA * mad, abs(reference) / 4)


def scaled_above_base(value: float, factor: float, median: float) -> float:
    """``b + factor * (value - b)``, ``b = min(median, 0)``: ``factor * value`` for a window whose median is
    >= 0 (the rule as written for positive losses), else the median plus ``factor`` x the excess of
    ``value`` over it (``factor * value`` would be below a negative ``value``). ``value`` is a threshold
    or a spike level, ``median`` the window's median it was computed with (module docstring)."""
    base = min(median, 0.0)
    return base + factor * (value - base)


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
        self.recent: deque[float] = deque(maxlen=window)
        self.reference: float | None = None
        # the start level m: the first finite judged loss, raised to the largest of each cleared run of held
        # losses; the start bar is taken from it until the reference exists
        self.start: float | None = None
        # the run of judged losses held above the start bar (not accepted, not counted yet), and its first step
        self._start_run: list[float] = []
        self._start_run_first: int | None = None
        self._threshold: float | None = None
        self._median: float | None = None  # the window's median the cached threshold was computed with
        self._judged = 0  # losses judged against the threshold; it is recomputed every 10th
        # the current run of spikes, not counted yet: [judged index, value, threshold] each, and its first step
        self._run: list[list[float]] = []
        self._run_first: int | None = None
        # the newest spikes of finished runs among the last SPIKE_MEMORY judged losses: [judged index, value,
        # the threshold it passed] each
        self._spikes: deque[list[float]] = deque(maxlen=SPIKES_KEPT)
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
                                 "start": self.start,
                                 "start_run": {"losses": list(self._start_run), "first": self._start_run_first},
                                 "judged": self._judged, "threshold": self._threshold,
                                 "median": self._median,
                                 "run": {"spikes": [list(v) for v in self._run], "first": self._run_first},
                                 "spikes": [list(v) for v in self._spikes]}
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
        # a checkpoint of the rule before the start bar: its first good loss is the starting loss
        self.start = state.get("start", self.recent[0] if self.recent else None)
        start_run = state.get("start_run") or {}  # a checkpoint from before runs were held: none held
        self._start_run = [float(v) for v in start_run.get("losses", [])]
        first = start_run.get("first")
        self._start_run_first = None if first is None else int(first)
        # the cached threshold is state: a resumed run judges with the same one as the uninterrupted run
        self._judged, self._threshold = int(state.get("judged", 0)), state.get("threshold")
        self._median = state.get("median")  # a checkpoint from before it was kept: the window's median now
        if self._median is None and self._threshold is not None and self.recent:
            self._median = statistics.median(self.recent)
        run = state.get("run")
        if run is not None:
            self._run = [[int(i), float(v), float(t)] for i, v, t in run["spikes"]]
            self._run_first = None if run.get("first") is None else int(run["first"])
        else:  # a checkpoint of the rule before runs: "spiked", one lone spike above the threshold it saved
            spiked = bool(state.get("spiked", False)) and self._threshold is not None
            self._run = [[self._judged, self._threshold, self._threshold]] if spiked else []
            self._run_first = None
        self._spikes = deque(([int(i), float(v), float(t)] for i, v, t in state.get("spikes", [])),
                             maxlen=SPIKES_KEPT)
        group = state.get("group") or {}
        self._group = [float(v) for v in group.get("losses", [])]
        self._group_first, peak = int(group.get("first", 0)), group.get("peak")
        self._group_peak = [float(peak[0]), int(peak[1]), int(peak[2]), int(peak[3])] if peak else None
        self._pending = []
        self._last_taken = None
        stored = state.get("snapshots")  # a rollback restores a state without them: keep the current
        if isinstance(stored, list) and all(isinstance(s.get("tree"), str) for s in stored):
            self.snapshots = [Snapshot(json.loads(s["tree"]), dict(s["tensors"])) for s in stored]

    # ------------------------------------------------------------------ decisions

    def problem(self, value: float, refresh: bool = True) -> str | None:
        """Why ``value`` (a judged loss) is bad given the recent good losses, or None (updates the cached
        threshold at every 10th judged loss; ``refresh`` False: groups keep theirs up to date themselves).
        Before the reference exists, the start rule: above :func:`start_bar` of the start level (a spike
        :meth:`_hold` holds; whether its run counts is decided there)."""
        if not math.isfinite(value):
            return "non-finite loss"
        if self.reference is None:
            if self.start is None:
                self.start = value
                return None
            return self._start_problem(value)
        if self._threshold is None or (refresh and self._judged % 10 == 0):  # two medians of the window: not every step
            self._refresh_threshold()
        self._judged += 1
        if value > self._threshold:
            return f"loss spike (> {self._threshold:.4g} = median + {self.spike_factor:g} x spread of recent losses)"
        return None

    def _start_problem(self, value: float) -> str | None:
        """Why ``value``, a finite judged loss before the reference exists, is a spike: above the start bar."""
        assert self.start is not None
        bar = start_bar(self.start, self.spike_factor)
        if value > bar:
            return (f"loss spike (> {bar:.4g} = start level {self.start:.4g} + {LONE_SPIKE ** 2:g} x "
                    f"{self.spike_factor:g} x max(|start level|, {START_FLOOR:g}) / 4)")
        return None

    def _start_bar_to_count(self) -> float | None:
        """The bar the next judged loss counts above before the reference exists (module docstring): the
        start bar B where it would make a run of START_RUN held losses, the far bar where it would be the
        second; None where it would be the first (one loss alone never counts)."""
        assert self.start is not None
        run = len(self._start_run) + 1
        if run >= START_RUN:
            return start_bar(self.start, self.spike_factor)
        return start_bar(self.start, self.spike_factor, LONE_SPIKE ** 3) if run == 2 else None

    def _start_rule(self, run: int, first: int) -> str:
        """The bar the ``run``-th held loss in a row (the run from step ``first``) counts above, as the error
        line spells it out: B at START_RUN losses, the far bar at two."""
        assert self.start is not None
        times = LONE_SPIKE ** 2 if run >= START_RUN else LONE_SPIKE ** 3
        return (f"start level {self.start:.4g} + {times:g} x {self.spike_factor:g} x max(|start level|, "
                f"{START_FLOOR:g}) / 4, judged loss {run} of a run above the start bar "
                f"{start_bar(self.start, self.spike_factor):.4g} from step {first}, before the window's "
                "reference exists; the start level is the first loss, or the largest of such a run that a "
                "later loss came back below")

    def _hold(self, value: float, first: int) -> tuple[str | None, int]:
        """Before the reference exists, a finite judged loss above the start bar (``first``, its first step)
        joins the held run, neither accepted nor counted: why the run counts now, or None; and the run's
        first step (module docstring)."""
        bar = self._start_bar_to_count()
        if not self._start_run:
            self._start_run_first = first
        self._start_run.append(value)
        since = self._run_start(first)
        if bar is None or value <= bar:
            return None, since
        return f"loss spike (> {bar:.4g} = {self._start_rule(len(self._start_run), since)})", since

    def _clear_start_run(self) -> None:
        """A judged loss at or below the start bar clears the held run: its losses were the data's, accepted
        in order before it, and the start level rises to the largest of them (module docstring)."""
        if not self._start_run:
            return
        run, self._start_run, self._start_run_first = self._start_run, [], None
        assert self.start is not None
        self.start = max(self.start, *run)
        for value in run:
            self._accept(value)

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
            self._refresh_threshold()
        if max(run) > self._threshold:
            return 0
        self._end_run()
        self._judged += len(run)
        self.recent.extend(run)
        return len(run)

    def _refresh_threshold(self) -> None:
        """Recompute the cached threshold from the window, and keep the window's median it used."""
        assert self.reference is not None
        recent = list(self.recent)
        self._median = statistics.median(recent)
        self._threshold = spike_threshold(recent, self.reference, self.spike_factor)

    def _accept(self, value: float) -> None:
        self.recent.append(value)
        if self.reference is None and len(self.recent) >= self._reference_after:
            self.reference = statistics.median(self.recent)

    # ------------------------------------------------------------------ runs of spikes

    def _run_start(self, first: int) -> int:
        """The first step of the open run of spikes (or of held losses, before the reference exists), or
        ``first`` (the judged loss's own) when none is open."""
        if self._start_run_first is not None:
            return self._start_run_first
        return first if self._run_first is None else self._run_first

    def _end_run(self) -> None:
        """A good loss ends the current run of spikes: they join the memory, uncounted."""
        if self._run:
            self._spikes.extend(self._run)
            self._run, self._run_first = [], None

    def _spike_memory(self) -> tuple[float, float | None, int]:
        """(q, S, span) (module docstring): the spikes under the current threshold T among the last ``span``
        judged losses (SPIKE_MEMORY, fewer at the start of a run, or since the oldest kept spike when
        SPIKES_KEPT are kept) are the remembered spikes above T that passed a threshold at most SAME_LEVEL x
        T, and the window's good losses above T (accepted while the threshold was higher: the reference's
        own losses, the outlier batches of a window whose median was theirs); q is their rate, the first of
        them not counted, and S their median (None without any). O(window + SPIKES_KEPT), paid per spike."""
        assert self._threshold is not None and self._median is not None
        oldest = self._judged - SPIKE_MEMORY  # the index just before the memory
        while self._spikes and self._spikes[0][0] <= oldest:
            self._spikes.popleft()
        span = min(SPIKE_MEMORY, self._judged + self._reference_after)
        if len(self._spikes) == SPIKES_KEPT:  # older spikes were dropped: the memory starts at the oldest kept
            span = min(span, self._judged - int(self._spikes[0][0]) + 1)
        threshold, high = self._threshold, scaled_above_base(self._threshold, SAME_LEVEL, self._median)
        spikes = [v for v in self.recent if v > threshold]
        spikes += [v for _, v, passed in self._spikes if v > threshold and passed <= high]
        if not spikes:
            return 0.0, None, span
        return (len(spikes) - 1) / span, statistics.median(spikes), span

    def _counts_now(self) -> tuple[float, int, bool]:
        """(bar, n, above spikes): a spike above ``bar`` counts at once (LONE_SPIKE x the threshold, or x
        the spike level S when that is larger: ``above spikes``; either taken above the base of
        :func:`scaled_above_base`); one ending a run of ``n`` spikes counts."""
        assert self._threshold is not None and self._median is not None
        rate, level, _ = self._spike_memory()
        above_spikes = level is not None and level > self._threshold
        bar = scaled_above_base(level if above_spikes else self._threshold, LONE_SPIKE, self._median)
        return bar, spikes_in_a_row(rate), above_spikes

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
        if (self._check(view) and on_snapshot_step and not self._run and not self._start_run
                and not self._group_past_start_bar()):
            self._take_snapshot(view)

    def _group_past_start_bar(self) -> bool:
        """Before the reference exists, the open group of small steps holds a step loss above the start
        bar."""
        if self.reference is not None or self.start is None or not self._group:
            return False
        return max(self._group) > start_bar(self.start, self.spike_factor)

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
            problem, since = self._judge(values[i], step)
            if problem is not None:
                self._handle(view, problem, values[i], step, epoch, batch, since=since)
                return False
            i += 1
        return True

    def _judge(self, value: float, first: int) -> tuple[str | None, int]:
        """Judge one loss (a step's, or a group's median, whose first step is ``first``): why it counts as
        bad, or None (a spike that does not count yet joins the current run, left out of the window; a good
        loss ends the run and is accepted into the window), and the first step of what counted (its run's)."""
        grouped = self.group > 1
        problem = self.problem(value, refresh=not grouped)
        if problem is None:
            self._clear_start_run()
            self._end_run()
            self._accept(value)
            if grouped and self.reference is not None:
                # the next group's threshold, now: an open group is judged against the one it will meet
                self._refresh_threshold()
            return None, first
        if not math.isfinite(value):  # at once
            return problem, self._run_start(first)
        if self.reference is None:  # past the start bar: held, counted in a run
            return self._hold(value, first)
        bar, needed, _ = self._counts_now()
        run = len(self._run) + 1
        if value <= bar and run < needed:  # a hard batch as this data makes them: remembered, not counted
            if not self._run:
                self._run_first = first
            self._run.append([self._judged, value, self._threshold])
            return None, first
        since = self._run_start(first)
        if value > bar:
            return problem, since
        if needed > 2:  # the rule on data that spikes: say why this run counts and a shorter one did not
            rate, _, span = self._spike_memory()
            problem = f"{problem[:-1]}; {run} in a row where {100 * rate:.3g}% of the last {span} were spikes)"
        return problem, since

    def _check_groups(self, view: TrainerView, pending: list[tuple[int, int, int, torch.Tensor]],
                      values: list[float]) -> bool:
        """:meth:`_check` for steps of fewer than ROWS_JUDGED rows: step losses gathered into groups of
        ``self.group`` steps, each group's median judged; a non-finite step loss, or an open group sure to
        count, counts at once (module docstring)."""
        for (step, epoch, batch, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                first = self._group_first if self._group else step
                since = self._run_start(first)
                self._handle(view, "non-finite loss", value, step, epoch, batch, since=since)
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
            since = self._run_start(first)
            if complete:
                value = statistics.median(losses)
                problem, since = self._judge(value, first)
                if problem is None:
                    continue
                problem = (problem.replace("loss spike (", f"loss spike (median of steps {first}-{step} ", 1)
                           .replace("recent losses", f"recent {self.group}-step medians"))
            else:
                value = sorted(losses, reverse=True)[self.group // 2]  # the least the group's median can be
                bar, rule = self._sure_group_bar(since)
                problem = (f"loss spike ({self.group // 2 + 1} of the {len(losses)} steps {first}-{step} of a "
                           f"{self.group}-step group above {bar:.4g} = {rule}: its median will be too)")
            self._handle(view, problem, value, peak_step, peak_epoch, peak_batch, since=since)
            return False
        return True

    def _sure_group_bar(self, since: int) -> tuple[float, str]:
        """The bar an open group is sure to be above (:meth:`_sure_spike` held), and its rule as the error
        line spells it out; ``since``: the first step of the run it would end."""
        if self.reference is None:
            bar = self._start_bar_to_count()
            assert bar is not None
            return bar, self._start_rule(len(self._start_run) + 1, since)
        bar, ends_run, above_spikes = self._bar()
        if ends_run:
            return bar, f"median + {self.spike_factor:g} x spread of recent {self.group}-step medians"
        return bar, self._at_once_rule(above_spikes)

    def _at_once_rule(self, above_spikes: bool) -> str:
        """The bar at which a complete group's median counts at once, as the error line spells it out:
        LONE_SPIKE x max(threshold, spike level), taken above the median when that is negative."""
        assert self._median is not None
        spread = f"{self.spike_factor:g} x spread of recent {self.group}-step medians"
        if self._median >= 0:
            level = "the median of recent spikes" if above_spikes else f"(median + {spread})"
            return f"{LONE_SPIKE:g} x {level}"
        if above_spikes:
            return f"median + {LONE_SPIKE:g} x (the median of recent spikes - median)"
        return f"median + {LONE_SPIKE:g} x {spread}"

    def _sure_spike(self, value: float) -> bool:
        """The open group's median will count at once whatever its other steps bring: more than half of
        its ``group`` step losses are above the bar (the newest, ``value``, among them)."""
        if self.reference is None:  # the start rule: the median counts only as part of a held run
            bar = None if self.start is None else self._start_bar_to_count()
            return bar is not None and value > bar and sum(v > bar for v in self._group) > self.group // 2
        if self._threshold is None or value <= self._threshold:
            return False  # below the threshold: below any bar (the bar's rates are not worth computing)
        bar, _, _ = self._bar()
        return value > bar and sum(v > bar for v in self._group) > self.group // 2

    def _bar(self) -> tuple[float, bool, bool]:
        """What a complete group's median must exceed to count at once: the threshold itself when the group
        would end a run long enough to count (``ends run``), else LONE_SPIKE x max(threshold, spike level),
        taken above the base of :func:`scaled_above_base` (``above spikes``: the spike level is the larger);
        (bar, ends run, above spikes). After the reference exists (before it: :meth:`_start_bar_to_count`)."""
        assert self._threshold is not None
        bar, needed, above_spikes = self._counts_now()
        if len(self._run) + 1 >= needed:
            return self._threshold, True, False
        return bar, False, above_spikes

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
