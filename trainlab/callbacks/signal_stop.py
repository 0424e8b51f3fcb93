"""SIGINT/SIGTERM: finish the current step, checkpoint, and exit 128 + signal number."""

from __future__ import annotations

import signal
from contextlib import contextmanager

from trainlab import sigterm
from trainlab.callbacks.base import Callback, TrainerView


class SignalStop(Callback):
    """Turns a pending SIGINT/SIGTERM into ``control.interrupted_by`` at the next step end.

    It does not call ``control.stop``: that is the run's own decision, saved in the checkpoint and
    named in the summary, and a stop decided at the same step (or at that epoch's validation) must
    survive the interruption so the resumed run ends there too. The loop ends on ``interrupted_by``.

    A second signal (SIGINT or SIGTERM, whichever came first) raises KeyboardInterrupt: stop now.
    ``signals`` lists every one received, in order; ``received`` is the first.

    A signal that arrives after the last step (during the final evaluation or the saving) is kept in
    ``received``; the caller reports it once the run's files are written. Once they are
    (:meth:`result_written`) no signal stops the run any more: under the CLI
    (:func:`trainlab.sigterm.command_signals`) they are handed to it, which reports the first and
    keeps deferring them until the process has exited (``handed_over``); otherwise the first is kept in
    ``received`` for the caller to report.
    """

    order = 5
    name = "signals"

    def __init__(self):
        self.received: int | None = None
        self.signals: list[int] = []
        self.done = False
        self.handed_over = False

    def handler(self, signum, frame) -> None:
        self.signals.append(signum)
        if self.done:
            if not self.handed_over or not sigterm.result_written(signum):
                self.received = self.received if self.received is not None else signum
            return
        if self.received is not None:
            raise KeyboardInterrupt  # a repeated signal, of either kind: stop now
        self.received = signum

    def result_written(self) -> None:
        """The run's results are on disk (run.json says finished): signals from now on are deferred; a
        pending one is handed to the CLI, which reports it (``handed_over``; else the caller reports it)."""
        self.done = True
        self.handed_over = sigterm.result_written(self.received)

    def on_step_end(self, view: TrainerView, loss) -> None:
        if self.received is not None:
            view.control.interrupted_by = self.received

    @contextmanager
    def installed(self):
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for sig in previous:
                signal.signal(sig, self.handler)
        except ValueError:  # not the main thread: leave handlers alone
            previous = {}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
