"""SIGINT/SIGTERM: finish the current step, checkpoint, and exit 128 + signal number."""

from __future__ import annotations

import signal
from contextlib import contextmanager

from trainlab.callbacks.base import Callback, TrainerView


class SignalStop(Callback):
    """Turns a pending SIGINT/SIGTERM into ``control.interrupted_by`` at the next step end.

    It does not call ``control.stop``: that is the run's own decision, saved in the checkpoint and
    named in the summary, and a stop decided at the same step (or at that epoch's validation) must
    survive the interruption so the resumed run ends there too. The loop ends on ``interrupted_by``.

    A signal that arrives after the last step (during the final evaluation or the saving)
    is kept in ``received``; the caller reports it once the run's files are written.
    """

    order = 5
    name = "signals"

    def __init__(self):
        self.received: int | None = None

    def handler(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

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
