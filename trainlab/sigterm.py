"""SIGTERM handled as Ctrl-C, and both deferred once a command's result is written.

SIGTERM is the polite stop that ``kill``, systemd, Docker and job schedulers send. Inside
:func:`sigterm_as_ctrl_c` (and :func:`command_signals`) it raises :class:`KeyboardInterrupt` where the
process is, so whatever cleans up after a Ctrl-C (a run's checkpoint, a comparison's workers, the
CLI's ``error: interrupted`` line) runs for it too; the signal number is appended to ``received`` so
the caller can exit 128 + 15 rather than Ctrl-C's 130. A run's own handler
(:class:`~trainlab.callbacks.signal_stop.SignalStop`) takes over while it trains and gives this one
back after. Outside the main thread, where Python cannot handle signals, nothing changes.

:func:`command_signals` is the CLI's: once the command's result is on disk (:func:`result_written`,
which a run calls as soon as its run.json says ``finished`` when that run is the command's result:
``train``, ``resume``; a comparison once every run has finished, before its leaderboard and report
(:func:`runs_complete`); or the CLI once the command returned), SIGINT and SIGTERM no longer stop
anything: each is recorded, the first is reported as ``warning: <SIGNAL> received while finishing;
<what> is complete`` and the process exits as the command decided (0). With ``outlive`` (the
``trainlab`` process itself) that deferral stays installed after the block, through the interpreter's
teardown, so a late signal can neither kill the finished process by its default action nor raise a
KeyboardInterrupt inside a finaliser (torch's ``_del_library``: an ``Exception ignored`` traceback).
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class SignalInterrupt(KeyboardInterrupt):
    """The KeyboardInterrupt raised for a signal handled as Ctrl-C, naming it (``signum``): whoever records
    what it cut short (a tune trial) can say which signal it was."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def sigterm_as_ctrl_c(received: list[int]) -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise SignalInterrupt(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CommandSignals:
    """The handler :func:`command_signals` installs for SIGINT (unless ignored) and SIGTERM.

    Before :meth:`result_written`: append the number to ``received`` and raise :class:`SignalInterrupt`.
    After: append it and report the first one (:meth:`report`); nothing is raised. ``command``: the CLI
    command it guards (:func:`runs_complete` completes only its own).
    """

    # precomputed: the handler may run during the interpreter's teardown, when module globals are gone
    _names = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}

    def __init__(self, received: list[int], run_is_result: bool = False, command: str | None = None):
        self.received = received
        self.run_is_result = run_is_result  # train, resume: a finished run is the result (not one of compare's)
        self.command = command
        self.complete = False
        self.reported = False
        self.what = "the run"
        self._write = os.write

    def handler(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if not self.complete:
            raise SignalInterrupt(signum)
        self.report(signum)

    def result_written(self, what: str = "the run") -> None:
        """The command's result is on disk: from now on a signal is deferred, not raised."""
        if not self.complete:
            self.complete, self.what = True, what

    def report(self, signum: int) -> None:
        """Say once, on stderr, that ``signum`` came after the result was written (safe in a handler and at
        teardown: one ``os.write``, no module lookups)."""
        if self.reported:
            return
        self.reported = True
        line = f"warning: {self._names.get(signum, signum)} received while finishing; {self.what} is complete\n"
        try:
            self._write(2, line.encode())
        except BaseException:  # stderr closed, or the interpreter far into its teardown: the exit code stands
            pass


def _ignore(sigs: list[int]) -> None:
    for sig in sigs:
        signal.signal(sig, signal.SIG_IGN)


_active: list[CommandSignals] = []  # the CLI's handler while its command runs (at most one)


@contextmanager
def command_signals(received: list[int], outlive: bool = False, run_is_result: bool = False,
                    command: str | None = None) -> Iterator[CommandSignals]:
    """SIGTERM (and SIGINT, unless ignored: nohup, ``cmd &``) as Ctrl-C until the result is written,
    deferred after (the module docstring). ``run_is_result``: a run's :func:`result_written` completes
    the command (train, resume; not a comparison's runs, after which more follow). ``command``: the CLI
    command's name, for :func:`runs_complete`. ``outlive``: leave the handlers installed on exit, for a
    process that ends with the block; otherwise the previous handlers come back."""
    guard = CommandSignals(received, run_is_result, command)
    sigs = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None):  # None: set outside Python (embedding)
        sigs.append(signal.SIGINT)
    previous: dict[int, Any] = {}
    try:
        for sig in sigs:
            previous[sig] = signal.signal(sig, guard.handler)
    except ValueError:  # not the main thread: signals cannot be handled here
        previous = {}
    if outlive and previous:
        # The interpreter's teardown resets Python-handled signals to their default action (death) before it
        # finalises modules; an ignored one stays ignored. Registered before the command imports torch, this
        # runs after the atexit work of everything imported later: the signals are reported until then, and
        # dropped by the kernel from there on.
        atexit.register(_ignore, list(previous))
    _active.append(guard)
    try:
        yield guard
    finally:
        _active.remove(guard)
        if outlive and previous:  # the exit code is decided: a later signal cannot change it
            if not guard.complete:  # an error or an interruption has said what happened: nothing to add
                guard.complete = guard.reported = True
        else:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def result_written(pending: int | None = None, what: str = "the run") -> bool:
    """A run's results are on disk: tell the CLI's :func:`command_signals`, when that run is its command's
    result; ``pending``, a signal received while finishing, is reported now. False otherwise (Python
    callers of train/resume, a comparison's runs): the caller reports ``pending`` itself."""
    if not _active or not _active[-1].run_is_result:
        return False
    guard = _active[-1]
    guard.result_written(what)
    if pending is not None:
        guard.report(pending)
    return True


def outcome_decided() -> None:
    """The command's exit is decided and on its way out (an interrupt being reported as its one line): tell
    the CLI's :func:`command_signals` that a later signal is only recorded, neither raised (a
    KeyboardInterrupt raised while that exception unwinds would replace it: ``error: interrupted`` instead
    of the line that says what was cut short) nor reported. Nothing outside the CLI (Python callers)."""
    if _active:
        _active[-1].complete = _active[-1].reported = True


def runs_complete(what: str, command: str) -> None:
    """The runs of ``command`` are all on disk and only the results drawn from them are left to write (a
    comparison's leaderboard and report): tell the CLI's :func:`command_signals` when it guards that
    command, so that a signal from now on is reported (``<what> is complete``) and the writing goes on,
    as after a run's :func:`result_written`. Nothing for another command (tune's refit runs a comparison
    inside ``tune``) or outside the CLI (Python callers)."""
    if _active and _active[-1].command == command:
        _active[-1].result_written(what)
