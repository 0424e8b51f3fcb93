"""The divergence guard's rule (callbacks/divergence_guard.py): which judged losses count as a divergence.

:class:`SpikeRule` judges one loss at a time (a step's, or a group's median for small batches) and keeps
what the judging needs (the window of good losses, the start level, the open run, the spike memory) as
state the guard saves with checkpoints; it never touches a model or the trainer.

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
data raises it too. With small batches (divergence_guard.py) the judged losses are the groups' medians (``m``
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
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

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
# the start (module docstring): before the reference exists a judged loss above the start bar
# m + LONE_SPIKE ** 2 * spike_factor * max(|m|, START_FLOOR) / 4 is held, m the start level; a start level
# nearer 0 than this is taken as this far from 0 (at a near-zero loss a few rows make a batch's loss)
START_FLOOR = 0.01
# a run of this many held losses counts (two count when the second is above the far bar, LONE_SPIKE x further):
# one loss cannot tell a blow-up from a batch of outlier rows, and an explosion keeps going
START_RUN = 3


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



class SpikeRule:
    """The rule of the module docstring over a sequence of judged losses: :meth:`judge` says whether one counts
    as a divergence (and from which step), :meth:`good_run` accepts a stretch of good ones at once; the state
    (window, reference, start level, held run, open run of spikes, spike memory) round-trips through
    :meth:`state_dict` / :meth:`load_state_dict`, so a resumed run judges as the uninterrupted one.

    ``group``: the steps each judged loss is the median of (1: each step's own loss; divergence_guard.py),
    which the error lines name and which makes the threshold be recomputed after each good loss.
    """

    def __init__(self, spike_factor: float, window: int, group: int = 1):
        self.spike_factor, self.window, self.group = spike_factor, window, group
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
        # the reference: the median of the first half-window of steps' judged losses, at least 5 of them
        self._reference_after = max(5, -(-(window // 2) // group))

    @property
    def run_open(self) -> bool:
        """A run of spikes, or of held losses before the reference exists, is open (not counted, not cleared)."""
        return bool(self._run or self._start_run)

    def past_start_bar(self, losses: list[float]) -> bool:
        """Before the reference exists, one of ``losses`` (the open group's step losses) is above the start bar."""
        if self.reference is not None or self.start is None or not losses:
            return False
        return max(losses) > start_bar(self.start, self.spike_factor)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "reference": self.reference, "start": self.start,
                "start_run": {"losses": list(self._start_run), "first": self._start_run_first},
                "judged": self._judged, "threshold": self._threshold, "median": self._median,
                "run": {"spikes": [list(v) for v in self._run], "first": self._run_first},
                "spikes": [list(v) for v in self._spikes]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The rule's state from :meth:`state_dict`, or from a checkpoint written before a key existed (each
        default below says what such a checkpoint meant)."""
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
        since = self.run_start(first)
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

    def good_run(self, values: list[float], start: int) -> int:
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

    def run_start(self, first: int) -> int:
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

    # ------------------------------------------------------------------ judging

    def judge(self, value: float, first: int) -> tuple[str | None, int]:
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
            return problem, self.run_start(first)
        if self.reference is None:  # past the start bar: held, counted in a run
            return self._hold(value, first)
        bar, needed, _ = self._counts_now()
        run = len(self._run) + 1
        if value <= bar and run < needed:  # a hard batch as this data makes them: remembered, not counted
            if not self._run:
                self._run_first = first
            self._run.append([self._judged, value, self._threshold])
            return None, first
        since = self.run_start(first)
        if value > bar:
            return problem, since
        if needed > 2:  # the rule on data that spikes: say why this run counts and a shorter one did not
            rate, _, span = self._spike_memory()
            problem = f"{problem[:-1]}; {run} in a row where {100 * rate:.3g}% of the last {span} were spikes)"
        return problem, since

    def sure_group_bar(self, since: int) -> tuple[float, str]:
        """The bar an open group is sure to be above (:meth:`sure_spike` held), and its rule as the error
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

    def sure_spike(self, value: float, losses: list[float]) -> bool:
        """An open group's median will count at once whatever its other steps bring: more than half of
        its ``group`` step losses (``losses`` so far, the newest, ``value``, among them) are above the bar."""
        if self.reference is None:  # the start rule: the median counts only as part of a held run
            bar = None if self.start is None else self._start_bar_to_count()
            return bar is not None and value > bar and sum(v > bar for v in losses) > self.group // 2
        if self._threshold is None or value <= self._threshold:
            return False  # below the threshold: below any bar (the bar's rates are not worth computing)
        bar, _, _ = self._bar()
        return value > bar and sum(v > bar for v in losses) > self.group // 2

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
