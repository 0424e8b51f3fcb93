"""SIGINT/SIGTERM: finish the current step, checkpoint, and exit 128 + signal number."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import ClassVar

from trainlab import sigterm
from trainlab.callbacks.base import Callback, TrainerView


class SignalStop(Callback):
    """Turns a pending SIGINT/SIGTERM into ``control.interrupted_by`` at the next step end.

    It does not call ``control.stop``: that is the run's own decision, saved in the checkpoint and
    named in the summary, and a stop decided at the same step (or at that epoch's validation) must
    survive the interruption so the resumed run ends there too. The loop ends on ``interrupted_by``.

    A second signal (SIGINT or SIGTERM, whichever came first) raises KeyboardInterrupt: stop now
    (unless ``escalates`` is off: a comparison's worker, whose parent decides).
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
    # a repeated signal stops at once; a comparison's pool worker turns this off for its process
    # (trainlab.compare.pool._pin_worker): its parent decides, and a SIGTERM sent to the whole process group
    # (systemd, Slurm) plus the one the parent forwards to each worker is one stop, with its checkpoint
    escalates: ClassVar[bool] = True

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
            if self.escalates:
                raise KeyboardInterrupt  # a repeated signal, of either kind: stop now
            return
        self.received = signum

    def result_written(self) -> None:
        """The run's results are on disk (run.json says finished): signals from now on are deferred; a
        pending one is handed to the CLI, which reports it (``handed_over``; else the caller reports it)."""
        self.done = True
        self.handed_over = sigterm.result_written(self.received)
        if self.handed_over and self.received is not None:
            # one that landed after ``received`` was read for the call above but before ``handed_over`` was
            # set was only recorded (:meth:`handler`); the CLI reports once, so a repeat changes nothing
            sigterm.result_written(self.received)

    def on_step_end(self, view: TrainerView, loss) -> None:
        if self.received is not None:
            view.control.interrupted_by = self.received

    @contextmanager
    def installed(self):
        """Handle SIGTERM, and SIGINT unless it is ignored, until the block ends; the previous handlers come
        back after. An ignored SIGINT stays ignored, as :func:`trainlab.sigterm.command_signals` leaves it:
        ``cmd &``, and a comparison's pool workers (:mod:`trainlab.compare.pool`), where a terminal's
        Ctrl-C reaches the whole process group and the parent answers it with one SIGTERM to each worker:
        taken here too, the Ctrl-C would make that SIGTERM a second signal, which stops at once without
        the signal's checkpoint."""
        sigs = [signal.SIGTERM]
        if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None):  # None: set outside Python
            sigs.append(signal.SIGINT)
        previous = {sig: signal.getsignal(sig) for sig in sigs}
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
