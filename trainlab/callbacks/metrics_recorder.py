"""Writes metrics.jsonl from the loop's history; a failed write (disk full) warns and is retried later."""

from __future__ import annotations

import time
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.notices import warn


class MetricsRecorder(Callback):
    """Rewrites ``metrics.jsonl`` atomically at most every ``min_interval_s`` at an epoch's end, before every
    checkpoint is written, and at the end.

    The write before each checkpoint (``on_before_save``, once the guards ordered before it cleared the
    state) keeps the file from falling behind the newest checkpoint: a run killed (SIGKILL) between two
    throttled writes still has every record up to that checkpoint, the one ``resume`` continues from (and
    whose history the resumed run rewrites the file from).

    The file is written whole from the run's history each time, so one write that succeeds
    after failed ones records everything: a temporary disk-full loses no record. The first failure of a
    run of them is one warning (:func:`trainlab.notices.warn`).
    """

    order = 80
    name = "recorder"

    def __init__(self, run_dir, min_interval_s: float = 2.0):
        self.run_dir, self.min_interval_s = run_dir, min_interval_s
        self._last = 0.0
        self.failed = False

    def flush(self, view: TrainerView) -> bool:
        try:
            self.run_dir.write_metrics(view.state.history, view.state.events, view.state.step_records)
        except OSError as exc:
            if not self.failed:
                warn(f"metrics.jsonl not written: {exc.strerror or exc}; training continues and "
                     "the records are written once there is room")
            self.failed = True
            return False
        self.failed = False
        self._last = time.monotonic()
        return True

    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        if self.failed or time.monotonic() - self._last >= self.min_interval_s:
            self.flush(view)

    def on_before_save(self, view: TrainerView) -> None:
        if view.control.rollback_to is None:  # a rollback asked for instead: no checkpoint, the steps are undone
            self.flush(view)

    def on_train_end(self, view: TrainerView) -> None:
        self.flush(view)
