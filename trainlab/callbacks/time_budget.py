"""A time budget during the run: the schedule squeezed onto the steps that fit, re-planned as the machine's
speed changes (the calibration before the run is trainlab.time_budget).

The strategy's schedule is built over the config's whole length ``L`` (``epochs``/``max_steps``: the
virtual steps) and a :class:`ScheduleWarp` maps the run's real steps onto it piecewise linearly:
with the last re-plan at real step ``t0`` (virtual position ``u0``) ending the run at real step ``E``,

    virtual(t) = u0 + (t - t0) * (L - u0) / (E - t0)          for t0 <= t < E

so the schedule reaches its end (a linear decay: 0) at the run's last step ``E``, and moving ``E``
never makes the LR jump (``virtual`` is continuous at ``t0``). A re-plan that finds the budget already spent
(the machine slowed down since the last one) ends the run at once, at ``t0``: the LR then stops short of
the schedule's end (``virtual(t0) < L``). Before any re-plan ``t0 = u0 = 0`` and
``E`` is the calibration's estimate; with ``E = L`` the warp is the identity.

:class:`BudgetPlanner` re-plans every ``every`` steps: the pace ``p`` of the steps since the
``PACE_WINDOWS``-th last re-plan (seconds a step, checkpoints included, the validations' own time left out:
a few windows, so that one disturbed window does not swing the plan), the training time left ``r = budget
- elapsed``, and the largest ``E <= L`` with ``(E - t) p + n(E) v <= r``: ``v`` a validation's price
(the median of the last three passes' seconds, the calibration's before three were measured), ``n(E)`` the
validations still to come if the run ends at ``E`` (:func:`validations_within` of ``E`` less
:func:`validations_made` by ``t``: each epoch end crossed, and the closing one; an end a few steps past an
epoch's end pays for a second validation, or moves back to that end). So a machine that slows down mid-run
shortens the
run, one that speeds up lengthens it (never beyond ``L``), and the run ends within the budget up to
the change of pace over its last windows. A change of the end by at most one step or 1% of the steps
left is not acted on (jitter in the measured pace). A run that reaches its planned end stops there, even
when a re-plan at that step would find time for more: its warped schedule is at its end (``virtual = L``,
a decay's 0), and steps added then would only train at that. A re-plan before the end still lengthens
the run: the schedule's remainder (``u0`` up to ``L``) is spread over the added steps. A schedule that is
not warped (one that follows a metric) does not end with the run, which may lengthen there. The
planner's state (``E``, ``t0``, ``u0``, the windows' starts) is checkpointed: a resumed run continues
the plan, then re-plans on the machine it runs on (budgeted runs are not bit-identical across a resume: their length depends on timings). A resume from a
checkpoint does not time its step again: the checkpoint holds the plan and the first run's calibration
record (a run with no checkpoint that verifies starts afresh and is timed as a new run).
After a divergence rollback the restored plan is applied again before the next step.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView

REASON = "time budget"
WHOLE_LENGTH = "the config's whole length fit in the time budget"  # the stop reason when it did
PACE_WINDOWS = 3  # the pace is measured over the last this many re-plan windows
RECENT_VALIDATIONS = 3  # a validation's planned price: the median of the last this many passes


def validations_within(steps: int, steps_per_epoch: int, every_n_steps: int | None) -> int:
    """Validation passes a run of ``steps`` optimizer steps makes: ``ceil(steps / steps_per_epoch)`` epoch
    records (a last partial epoch validates when the step limit ends it) plus the ``eval_every_n_steps``
    passes that fall inside an epoch, ``floor(steps / every) - floor(steps / lcm(steps_per_epoch, every))``
    (one due on an epoch's last step is that epoch's own pass). A run ending mid-epoch on such a pass
    reuses it for its partial-epoch record: counted twice there (errs long by one)."""
    return -(-steps // steps_per_epoch) + _mid_epoch_passes(steps, steps_per_epoch, every_n_steps)


def _mid_epoch_passes(steps: int, steps_per_epoch: int, every_n_steps: int | None) -> int:
    """The ``eval_every_n_steps`` passes at steps ``1..steps`` that are no epoch's last step."""
    if not every_n_steps:
        return 0
    both = math.lcm(steps_per_epoch, every_n_steps)
    return steps // every_n_steps - steps // both


def most_that_fit(cap: int, cost: Callable[[int], float], left: float) -> int:
    """The largest ``n`` in ``[0, cap]`` with ``cost(n) <= left``, for a ``cost`` that never falls as ``n``
    grows: a bisection (0 where not even ``cost(0)`` fits)."""
    low, high = 0, cap
    while low < high:
        middle = (low + high + 1) // 2
        if cost(middle) <= left:
            low = middle
        else:
            high = middle - 1
    return low


def validations_made(step: int, steps_per_epoch: int, every_n_steps: int | None) -> int:
    """The validation passes made before step ``step``'s end: the epoch ends and mid-epoch passes of steps
    ``1..step - 1`` (step ``step``'s own pass, when due, follows its ``on_step_end``)."""
    return (step - 1) // steps_per_epoch + _mid_epoch_passes(step - 1, steps_per_epoch, every_n_steps) if step else 0


class ScheduleWarp:
    """``schedule(virtual(step))``: a ``step -> factor`` schedule built over ``length`` steps, laid over the
    run's real steps ``[0, end)`` (module docstring)."""

    def __init__(self, schedule: Any, length: int, end: int):
        self.schedule, self.length = schedule, length
        self.t0, self.u0, self.end = 0, 0.0, end

    def virtual(self, step: int) -> float:
        """The virtual step of real ``step``: ``u0 + (step - t0) (length - u0) / (end - t0)``, at most ``length``,
        and exactly ``length`` from ``end`` on (the formula can round to just below it there)."""
        if step >= self.end or self.end <= self.t0:
            return float(self.length)
        return min(float(self.length), self.u0 + (step - self.t0) * (self.length - self.u0) / (self.end - self.t0))

    def __call__(self, step: int) -> float:
        return self.schedule(int(self.virtual(step)))

    def replan(self, step: int, end: int) -> None:
        """From real ``step`` on, the rest of the schedule spreads over the steps up to ``end``."""
        self.u0, self.t0, self.end = self.virtual(step), step, end

    def state_dict(self) -> dict[str, Any]:
        return {"t0": self.t0, "u0": self.u0, "end": self.end}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t0, self.u0, self.end = int(state["t0"]), float(state["u0"]), int(state["end"])


class BudgetPlanner(Callback):
    """Ends the run when ``train_budget_s`` seconds of training are spent, re-planning every ``every`` steps
    (module docstring). ``warp`` is the LR adapter's :class:`ScheduleWarp`; ``end`` the planned last step."""

    order = 5  # before the LR adapter (10): a re-plan at step end is in effect for the next step's LR
    name = "time_budget"

    def __init__(self, train_budget_s: float, length: int, end: int, every: int, warp: ScheduleWarp | None,
                 record: dict[str, Any] | None = None):
        self.train_budget_s, self.length, self.every, self.warp = train_budget_s, length, max(1, every), warp
        self.end = end
        # (step, elapsed, seconds validating so far) at the last PACE_WINDOWS re-plans
        self.points: list[tuple[int, float, float]] = []
        self.replans: list[dict[str, float]] = []  # each re-plan that moved the end: step, elapsed, pace, end
        self.record = record if record is not None else {}  # summary.json's notes.time_budget
        self.record["replans"] = self.replans
        self._restored = False  # a checkpoint or rollback was loaded: the trainer's end is set again
        self.validating_s = 0.0  # the seconds the run's validations took (the step's pace leaves them out)
        self.recent_validations: list[float] = []  # the last RECENT_VALIDATIONS passes' seconds
        self._validation_started: float | None = None

    def on_train_start(self, view: TrainerView) -> None:
        self._end_at(view, self.end)
        self._restored = False
        if not self.points:
            self.points = [(view.state.step, view.elapsed_s, self.validating_s)]

    def on_before_validation(self, view: TrainerView) -> None:
        self._validation_started = view.elapsed_s

    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self._validation_started is not None:
            seconds = max(0.0, view.elapsed_s - self._validation_started)
            self.validating_s += seconds
            self.recent_validations = [*self.recent_validations, seconds][-RECENT_VALIDATIONS:]
            self._validation_started = None

    def validation_price(self) -> float:
        """The seconds a validation pass is planned at: the median of the last :data:`RECENT_VALIDATIONS` passes
        once that many were measured (one slow pass, a first one that warms caches or compiles, does not set
        the price of all the rest), the calibration's measurement before that (0 without one)."""
        if len(self.recent_validations) >= RECENT_VALIDATIONS:
            return statistics.median(self.recent_validations)
        return float(self.record.get("validation_s") or 0.0)

    def on_step_start(self, view: TrainerView) -> None:
        if self._restored:  # a rollback brought back an earlier plan: the trainer ends where it says
            self._end_at(view, self.end)
            self._restored = False

    def on_step_end(self, view: TrainerView, loss: Any) -> None:
        step = view.state.step
        if step - self.points[-1][0] < self.every:
            return
        if self.warp is not None and step >= self.warp.end:  # virtual(step) is the schedule's length from end on
            # the schedule has run to its end (``step`` is the planned end): a re-plan now would pin the
            # warp there and every added step would train at the schedule's last value (0 for a decay)
            return
        elapsed = view.elapsed_s
        start_step, start_elapsed, start_validating = self.points[0]
        pace = max(0.0, elapsed - start_elapsed - (self.validating_s - start_validating)) / (step - start_step)
        self.points = [*self.points, (step, elapsed, self.validating_s)][-PACE_WINDOWS:]
        end = step + self._steps_paid(step, self.train_budget_s - elapsed, pace)
        # a change of a step or 1% of the steps left is jitter in the pace: re-planning on it would only
        # put kinks in the schedule (it costs at most that many steps' time)
        if abs(end - self.end) > max(1, round(0.01 * (self.end - step))):
            if self.warp is not None:
                self.warp.replan(step, end)
            self._end_at(view, end)
            self.replans.append({"step": step, "elapsed_s": round(elapsed, 3), "pace_s": pace, "end": end})

    def _steps_paid(self, step: int, left: float, pace: float) -> int:
        """The most steps ``n <= L - step`` whose cost ``n pace + n(step + n) v`` (the validations still to come
        if the run ends at ``step + n``: :func:`validations_within` less :func:`validations_made`) fits ``left``
        seconds: a bisection, as the cost grows with ``n``. ``v`` is :meth:`validation_price`; a record without
        the epoch's steps (a planner built by hand) counts no validation.
        A budget of 1e308 s over steps that took no measurable time pays for the whole length."""
        cap = max(self.length - step, 0)
        per_epoch, every = self.record.get("steps_per_epoch"), self.record.get("eval_every_n_steps")
        validation_s = self.validation_price()
        made = validations_made(step, per_epoch, every) if per_epoch else 0

        def cost(n: int) -> float:
            to_come = validations_within(step + n, per_epoch, every) - made if per_epoch else 0
            return n * pace + to_come * validation_s

        if left <= 0:
            return 0
        return most_that_fit(cap, cost, left + 1e-9)  # 5 steps of 1.6 s fit 8 s (float: 8.000000000000002)

    def _end_at(self, view: TrainerView, end: int) -> None:
        """The run ends at step ``end``; the summary's stop reason is the budget's, or the config's own
        length when the budget fits all of it."""
        self.end = end
        view.end_at_step(end, REASON if end < self.length else WHOLE_LENGTH)

    def state_dict(self) -> dict[str, Any]:
        calibration = {k: v for k, v in self.record.items() if k != "replans"}
        return {"train_budget_s": self.train_budget_s, "end": self.end, "record": calibration, "every": self.every,
                "points": [list(point) for point in self.points], "replans": [dict(r) for r in self.replans],
                "validating_s": self.validating_s, "recent_validations": list(self.recent_validations),
                "warp": self.warp.state_dict() if self.warp is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train_budget_s, self.end = float(state["train_budget_s"]), int(state["end"])
        # a resume plans on its length (no calibration): the first run's re-plan interval, not length // 25
        self.every = int(state.get("every") or self.every)
        self.validating_s = float(state.get("validating_s") or 0.0)
        self.recent_validations = [float(seconds) for seconds in state.get("recent_validations") or []]
        # a checkpoint written before the validations were timed holds (step, elapsed): none left out of its pace
        self.points = [(int(point[0]), float(point[1]), float(point[2]) if len(point) > 2 else self.validating_s)
                       for point in state.get("points") or []]
        self.replans = list(state.get("replans") or [])
        self.record.update(state.get("record") or {})  # the first run's calibration, not a resume's
        self.record["replans"] = self.replans
        self._restored = True
        if self.warp is not None and state.get("warp"):
            self.warp.load_state_dict(state["warp"])
