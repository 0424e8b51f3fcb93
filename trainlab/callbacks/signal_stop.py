"""SIGINT/SIGTERM: finish the current step, checkpoint, and exit 128 + signal number."""

from __future__ import annotations

import signal
from contextlib import contextmanager

from trainlab.callbacks.base import Callback


class SignalStop(Callback):
    """Turns a pending SIGINT/SIGTERM into ``control.interrupted_by`` at the next step end."""

    order = 5
    name = "signals"

    def __init__(self):
        self.received: int | None = None

    def handler(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def on_step_end(self, trainer, loss) -> None:
        if self.received is not None:
            trainer.control.interrupted_by = self.received
            trainer.control.stop(f"interrupted by {signal.Signals(self.received).name}")

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
