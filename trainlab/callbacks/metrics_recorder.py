"""Writes metrics.jsonl from the loop's records, appending what is new; a failed write (disk full) warns and is
retried later."""

from __future__ import annotations

import time
from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.notices import warn


class MetricsRecorder(Callback):
    """Writes ``metrics.jsonl`` at most every ``min_interval_s`` at an epoch's end, before every
    checkpoint is written, and at the end.

    The write before each checkpoint (``on_before_save``, once the guards ordered before it cleared the
    state) keeps the file from falling behind the newest checkpoint: a run killed (SIGKILL) between two
    throttled writes still has every record up to that checkpoint, the one ``resume`` continues from (and
    whose history the resumed run rewrites the file from).

    A write appends the records added since the last one (:meth:`RunDir.write_metrics` with the extent it
    returned last: each line whole, in one write, fsynced), so its cost does not grow with the run; the file
    is rewritten whole and atomically from the run's lists where appending cannot give what they hold (the
    first write of a process, a rollback or resume that restored other lists, a change to a list's last
    written record, a record that sorts before the file's last line; a change to an earlier written record
    reaches the file at the run's end, whose write is whole) and after any failed write, so one write that succeeds
    after failed ones records everything: a temporary disk-full loses no record. The first failure of a
    run of them is one warning (:func:`trainlab.notices.warn`). A checkpoint with no record added since the
    last write writes nothing (the append is empty): with ``every_n_steps: 1`` and ``log_every_n_steps: 1``,
    rewriting the whole file before every checkpoint and ``best/`` save grew quadratic in the run's length
    (133 ms a step at 10,000 records).
    """

    order = 80
    name = "recorder"

    def __init__(self, run_dir, min_interval_s: float = 2.0):
        self.run_dir, self.min_interval_s = run_dir, min_interval_s
        self._last = 0.0
        self.failed = False
        self._file: Any = None  # what write_metrics says the file holds; None: rewrite it whole

    def flush(self, view: TrainerView, whole: bool = False) -> bool:
        """Write what is new (``whole``: the whole file, atomically); False when the write failed."""
        state, written, self._file = view.state, None if whole else self._file, None  # a failure: rewrite next
        try:
            self._file = self.run_dir.write_metrics(state.history, state.events, state.step_records, written)
        except OSError as exc:
            if not self.failed:  # the file's path (atomic writes name it): the runs of a comparison warn side by side
                warn(f"{exc.filename or 'metrics.jsonl'} not written: {exc.strerror or exc}; training continues and "
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
        if view.control.rollback_to is not None:  # a rollback asked for instead: no checkpoint, the steps are undone
            return
        self.flush(view)  # appends what is new (nothing, often), or rewrites after a failure

    def on_train_end(self, view: TrainerView) -> None:
        self.flush(view, whole=True)  # a change to a record before a list's last written one is in it too

