"""SIGINT and SIGTERM held back while a process forks its workers.

A worker that ``multiprocessing`` forks runs the parent's Python signal handlers until its initializer
installs its own. A Ctrl-C (the terminal sends it to the whole process group) or the SIGTERM a parent
passes on to its workers, landing in that window, raised the parent's KeyboardInterrupt inside the new
worker; landing before multiprocessing's start-up entered its ``try``, it left the exit code unbound, the
``finally: os._exit(code)`` raised in turn, and the forked copy returned into the parent's code and ran on
as a second parent. :func:`stop_signals_held` blocks both signals in the forking thread while a pool starts
its workers, which inherit that thread's mask; :func:`release_stop_signals`, called by a worker once its own
handlers are installed, unblocks them, and a signal sent to the worker in between is handled then, by its own
handler. The hold is for the children: in the parent a signal sent to the whole process may still reach its
handler inside the hold, through another thread that does not block it.
Where ``signal.pthread_sigmask`` is missing (Windows, which spawns instead of forking) both do nothing.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Block :data:`HELD_SIGNALS` in this thread inside the block; the previous mask comes back after it,
    however the block ends (a signal sent to this thread meanwhile is delivered then). The mask is read before
    it is changed: a handler that raises as the signals are blocked (one already due) cannot leave them
    blocked."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def release_stop_signals() -> None:
    """Unblock :data:`HELD_SIGNALS` in this thread: a worker's last step of set-up, its handlers installed."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
