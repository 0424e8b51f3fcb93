"""SIGINT and SIGTERM held back while a process forks its workers.

A worker that ``multiprocessing`` forks runs the parent's Python signal handlers until its initializer
installs its own. A Ctrl-C (the terminal sends it to the whole process group) or the SIGTERM a parent
passes on to its workers, landing in that window, raised the parent's KeyboardInterrupt inside the new
worker; landing before multiprocessing's start-up entered its ``try``, it left the exit code unbound, the
``finally: os._exit(code)`` raised in turn, and the forked copy returned into the parent's code and ran on
as a second parent. :func:`stop_signals_held` blocks both signals in the forking thread while a pool starts
its workers, which inherit the mask; :func:`release_stop_signals`, called by a worker once its own handlers
are installed, unblocks them, and a signal that came in between is handled then, by the worker's handler.
Where ``signal.pthread_sigmask`` is missing (Windows, which spawns instead of forking) both do nothing.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Block :data:`HELD_SIGNALS` in this thread inside the block; the previous mask comes back after it
    (a signal sent meanwhile is delivered then, to this process's handler)."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def release_stop_signals() -> None:
    """Unblock :data:`HELD_SIGNALS` in this thread: a worker's last step of set-up, its handlers installed."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
