"""SIGTERM handled as Ctrl-C: the polite stop that ``kill``, systemd, Docker and job schedulers send.

Inside :func:`sigterm_as_ctrl_c` a SIGTERM raises :class:`KeyboardInterrupt` where the process is,
so whatever cleans up after a Ctrl-C (a run's checkpoint, a comparison's workers, the CLI's
``error: interrupted`` line) runs for it too; the signal number is appended to ``received`` so the
caller can exit 128 + 15 rather than Ctrl-C's 130. A run's own handler
(:class:`~trainlab.callbacks.signal_stop.SignalStop`) takes over while it trains and gives this one
back after. Outside the main thread, where Python cannot handle signals, nothing changes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def sigterm_as_ctrl_c(received: list[int]) -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
