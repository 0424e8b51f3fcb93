"""Writes metrics.jsonl from the loop's history (atomically, at most every ``min_interval_s``)."""

from __future__ import annotations

import time
from typing import Any

from trainlab.callbacks.base import Callback


class MetricsRecorder(Callback):
    order = 80
    name = "recorder"

    def __init__(self, run_dir, min_interval_s: float = 2.0):
        self.run_dir, self.min_interval_s = run_dir, min_interval_s
        self._last = 0.0

    def flush(self, trainer) -> None:
        self.run_dir.write_metrics(trainer.state.history, trainer.state.events)
        self._last = time.monotonic()

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if time.monotonic() - self._last >= self.min_interval_s:
            self.flush(trainer)

    def on_train_end(self, trainer) -> None:
        self.flush(trainer)
