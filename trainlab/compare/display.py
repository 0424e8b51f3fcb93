"""What ``trainlab compare`` shows while it runs: the tally (counts, ETA, leader) and its displays.

:class:`PlainDisplay` prints one line per finished run (logs, pipes); :class:`LiveDisplay` keeps a
rich Live panel on a TTY with the tally and the last few finished runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.compare.run_actions import RunPlan


@dataclass
class Tally:
    """What the display shows: counts, timing and each arm's finished metric values (first task), and each
    arm's failed runs: a failed run, or a finished one whose metric is not a finite number, which the
    leaderboard counts as failed too (trainlab.compare.leaderboard.counted_runs)."""

    task: str
    total: int
    metric: str
    direction: str
    read_metric: Callable[[dict[str, Any], str], float | None]
    done: int = 0
    failed: int = 0
    not_run: int = 0  # runs the machine stopped (trainlab.compare.machine_failure): done, but not as failures
    running: int = 0
    started: float = field(default_factory=time.perf_counter)
    run_seconds: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def record(self, plan: RunPlan, summary: dict[str, Any] | None) -> None:
        """A run done: its metric's value, or (no summary: it failed; no finite value) a failure of its arm."""
        if plan.task != self.task:
            return
        value = self.read_metric(summary, self.metric) if summary else None
        if value is None:
            self.failures[plan.strategy] = self.failures.get(plan.strategy, 0) + 1
        else:
            self.values.setdefault(plan.strategy, []).append(value)

    @property
    def left(self) -> int:
        return self.total - self.done - self.running

    def eta_s(self, jobs: int) -> float | None:
        if not self.run_seconds:
            return None
        per_run = sum(self.run_seconds) / len(self.run_seconds)
        return per_run * math.ceil((self.left + self.running / 2) / jobs)

    def leader(self) -> str:
        """The best mean so far among the arms without a failed run, as the leaderboard ranks arms with
        failures below those without; ``(n=2, 1 failed)`` where every arm has failures."""
        if not self.values:
            return "-"
        sign = -1.0 if self.direction == "max" else 1.0
        means = {name: sum(v) / len(v) for name, v in self.values.items()}
        best = min(means, key=lambda name: (self.failures.get(name, 0) > 0, sign * means[name]))
        failed = self.failures.get(best, 0)
        return (f"{best} {self.metric}={means[best]:.4g} (n={len(self.values[best])}"
                f"{f', {failed} failed' if failed else ''})")

    def line(self, jobs: int) -> str:
        eta = self.eta_s(jobs)
        eta_text = f"{eta:.0f} s" if eta is not None else "?"
        counts = [f"{self.failed} failed" if self.failed else "", f"{self.not_run} not run" if self.not_run else ""]
        failed = f" ({', '.join(c for c in counts if c)})" if any(counts) else ""
        return (f"done {self.done}{failed}, running {self.running}, left {self.left}, ETA {eta_text}, "
                f"leader {self.leader()}")


def outcome_text(tally: Tally, outcome: dict[str, Any]) -> str:
    """One run's outcome for the display: its metric when finished, else its status and reason."""
    if outcome["status"] == "finished":
        value = tally.read_metric(outcome.get("summary") or {}, tally.metric)
        return f"{tally.metric}={value:.4g}" if value is not None else \
            f"finished, but {tally.metric} is not a finite number: counted as failed"
    return f"{outcome['status']}: {outcome.get('reason', '')}"


def time_text(outcome: dict[str, Any]) -> str:
    """"0.6 s", or for a finished run "0.6 s, 0.04 s of it training": the run's whole time (reading data,
    building, evaluating, saving) beside its ``train_time_s``, the leaderboard's "train s", which a user
    trial took for the same figure. A resumed run's ``train_time_s`` counts its earlier training too, which this
    invocation's time does not ("2.5 s, 6.0 s of it training" read as a part larger than its whole)."""
    whole = f"{outcome.get('seconds', 0):.1f} s"
    training = (outcome.get("summary") or {}).get("train_time_s")
    if outcome["status"] != "finished" or not isinstance(training, int | float) or isinstance(training, bool):
        return whole
    shown = f"{training:.2g}" if training < 1 else f"{training:.1f}"
    if training > outcome.get("seconds", 0):  # resumed: train_time_s counts the earlier invocations' training too
        return f"{whole} here, resumed: {shown} s of training in all"
    return f"{whole}, {shown} s of it training"


class PlainDisplay:
    """One line per finished run (for logs and pipes)."""

    def __init__(self, tally: Tally, jobs: int):
        self.tally, self.jobs = tally, jobs

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def note(self, text: str) -> None:
        print(text, flush=True)

    def finished(self, plan: RunPlan, outcome: dict[str, Any]) -> None:
        t = self.tally
        what = outcome_text(t, outcome)
        print(f"[{t.done}/{t.total}] {plan.label}: {what} ({time_text(outcome)}) | {t.line(self.jobs)}",
              flush=True)

    def refresh(self) -> None:
        pass


class QuietDisplay(PlainDisplay):
    """No line per run (``compare(quiet=True)``); the notes (runs resumed or skipped, a worker's death) stay."""

    def finished(self, plan: RunPlan, outcome: dict[str, Any]) -> None:
        pass


class LiveDisplay(PlainDisplay):
    """A rich Live panel: counts, ETA, leader, and the last few finished runs."""

    def __init__(self, tally: Tally, jobs: int):
        super().__init__(tally, jobs)
        from trainlab.console import output_console

        self.console = output_console(stderr=False)
        self.recent: list[Any] = []  # rich Text lines: names and reasons are shown as written, never as markup
        self.live = None

    def _render(self):
        from rich.console import Group
        from rich.text import Text

        lines = [Text(f"compare: {self.tally.line(self.jobs)}", style="bold"), *self.recent[-5:]]
        return Group(*lines)

    def __enter__(self) -> LiveDisplay:
        from rich.live import Live

        self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def finished(self, plan: RunPlan, outcome: dict[str, Any]) -> None:
        from rich.text import Text

        what = outcome_text(self.tally, outcome)
        line = Text(f"  {plan.label}: {what} ({time_text(outcome)})")
        if outcome["status"] != "finished":  # the status word in red
            start = len(f"  {plan.label}: ")
            line.stylize("red", start, start + len(outcome["status"]))
        self.recent.append(line)
        self.refresh()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
