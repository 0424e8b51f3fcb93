"""Progress you can see: a rich bar on a TTY, a plain log line every N seconds elsewhere.

Both show samples/s, the ETA, the train loss and the monitored metric. The loss is
read (one device sync) only when something is displayed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView


def progress_kind(mode: str, is_tty: bool | None = None) -> str | None:
    """'bar' on a TTY, 'log' elsewhere (nohup, CI, notebooks), None when switched off."""
    if mode == "off":
        return None
    if mode == "on":
        return "bar"
    tty = sys.stderr.isatty() if is_tty is None else is_tty
    return "bar" if tty else "log"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Rate:
    """Samples/s and ETA from the steps and samples done in this process."""

    def __init__(self):
        self.start_time: float | None = None
        self.start_step = 0
        self.start_samples = 0

    def begin(self, view: TrainerView) -> None:
        self.start_time = time.monotonic()
        self.start_step, self.start_samples = view.state.step, view.state.samples_seen

    def figures(self, view: TrainerView) -> tuple[float | None, float | None]:
        if self.start_time is None:
            return None, None
        elapsed = time.monotonic() - self.start_time
        steps = view.state.step - self.start_step
        if elapsed <= 0 or steps <= 0:
            return None, None
        rate = (view.state.samples_seen - self.start_samples) / elapsed
        left = max(view.total_steps - view.state.step, 0)
        return rate, left * elapsed / steps


class ProgressLog(Callback):
    """A line on stderr at most every ``every_seconds`` (and at each epoch end, if that long has passed)."""

    order = 95
    name = "progress"

    def __init__(self, monitor: str = "val_loss", every_seconds: float = 30.0,
                 write: Callable[[str], None] | None = None):
        self.monitor, self.every_seconds = monitor, every_seconds
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self._rate = _Rate()
        self._last = 0.0
        self._metric: str = ""

    def on_train_start(self, view: TrainerView) -> None:
        self._rate.begin(view)
        self._last = time.monotonic()

    def on_step_end(self, view: TrainerView, loss) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_seconds:
            self._last = now
            self.write(self.line(view, float(loss)))

    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self.monitor in record and self.monitor != "train_loss":
            self._metric = f"  {self.monitor} {record[self.monitor]:.4g}"
        now = time.monotonic()
        if now - self._last >= self.every_seconds:
            self._last = now
            self.write(self.line(view, record.get("train_loss"), epoch_ended=True))

    def line(self, view: TrainerView, loss: float | None, epoch_ended: bool = False) -> str:
        """``epoch_ended``: at an epoch's end ``state.epoch`` already counts it, so it is the one shown."""
        state = view.state
        rate, eta = self._rate.figures(view)
        epochs = f"/{view.epochs}" if view.epochs else ""
        shown = state.epoch if epoch_ended else state.epoch + 1
        parts = [f"epoch {shown}{epochs}", f"step {state.step}/{view.total_steps}"]
        parts.append(f"{rate:.1f} samples/s" if rate is not None else "- samples/s")
        parts.append(f"ETA {format_eta(eta)}")
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        return "progress: " + "  ".join(parts) + self._metric


class ProgressBar(Callback):
    """A rich bar over the run's steps, with samples/s, ETA, train loss and the monitored metric."""

    order = 95
    name = "progress"

    def __init__(self, monitor: str = "val_loss", refresh_s: float = 0.2):
        self.monitor, self.refresh_s = monitor, refresh_s
        self._progress = None
        self._task = None
        self._last = 0.0
        self._rate = _Rate()
        self._metric = ""

    def on_train_start(self, view: TrainerView) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._rate.begin(view)
        from trainlab.console import output_console

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), transient=False,
                                  console=output_console(stderr=True))  # as the log lines: stdout is the results'
        self._progress.start()
        self._task = self._progress.add_task("train", total=view.total_steps, completed=view.state.step, info="")

    def _update(self, view: TrainerView, loss: float | None, epoch_ended: bool = False) -> None:
        """``epoch_ended``: at an epoch's end ``state.epoch`` already counts it, so it is the one shown."""
        rate, eta = self._rate.figures(view)
        info = f"{rate:.0f} samples/s  ETA {format_eta(eta)}" if rate is not None else ""
        if loss is not None:
            info += f"  loss {loss:.4f}"
        epochs = f"/{view.epochs}" if view.epochs else ""
        self._progress.update(self._task, total=view.total_steps, completed=view.state.step, info=info + self._metric,
                              description=f"epoch {view.state.epoch + (not epoch_ended)}{epochs}")

    def on_step_end(self, view: TrainerView, loss) -> None:
        now = time.monotonic()
        if self._progress is not None and now - self._last >= self.refresh_s:
            self._last = now
            self._update(view, float(loss))

    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        if self.monitor in record and self.monitor != "train_loss":
            self._metric = f"  {self.monitor} {record[self.monitor]:.4f}"
        self._update(view, record.get("train_loss"), epoch_ended=True)

    def on_train_end(self, view: TrainerView) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
