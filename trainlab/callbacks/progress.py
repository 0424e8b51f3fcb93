"""A progress bar on a TTY (rich), silent otherwise. Reads the loss at most every 0.2 s."""

from __future__ import annotations

import sys
import time
from typing import Any

from trainlab.callbacks.base import Callback


def wants_progress(mode: str) -> bool:
    return mode == "on" or (mode == "auto" and sys.stderr.isatty())


class ProgressBar(Callback):
    """One bar per epoch (or one bar over epochs when epochs are a single step, e.g. full batch)."""

    order = 95
    name = "progress"

    def __init__(self, monitor: str = "val_loss", refresh_s: float = 0.2):
        self.monitor, self.refresh_s = monitor, refresh_s
        self._progress = None
        self._task = None
        self._last = 0.0

    def on_train_start(self, trainer) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.per_epoch = trainer.steps_per_epoch >= 10
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self._progress.start()
        if not self.per_epoch:
            total = trainer.settings.epochs or trainer.total_steps
            self._task = self._progress.add_task("train", total=total, completed=trainer.state.epoch, info="")

    def on_epoch_start(self, trainer) -> None:
        if self.per_epoch and self._progress is not None:
            epochs = trainer.settings.epochs or "?"
            self._task = self._progress.add_task(f"epoch {trainer.state.epoch + 1}/{epochs}",
                                                 total=trainer.steps_per_epoch, info="")

    def on_step_end(self, trainer, loss) -> None:
        if not self.per_epoch or self._progress is None:
            return
        now = time.monotonic()
        if now - self._last >= self.refresh_s:
            self._last = now
            self._progress.update(self._task, completed=-(-trainer.state.batch_in_epoch // trainer.settings.grad_accum_steps),
                                  info=f"loss {float(loss):.4f}")

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        info = f"loss {record['train_loss']:.4f}"
        if self.monitor in record and self.monitor != "train_loss":
            info += f"  {self.monitor} {record[self.monitor]:.4f}"
        if self.per_epoch:
            self._progress.update(self._task, completed=trainer.steps_per_epoch, info=info)
        else:
            self._progress.update(self._task, completed=trainer.state.epoch, info=info)

    def on_train_end(self, trainer) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
