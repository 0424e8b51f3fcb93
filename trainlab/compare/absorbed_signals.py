"""The stop signals a comparison's run took in its own handler, seen from outside the run.

A run handles SIGINT and SIGTERM itself (:class:`trainlab.callbacks.signal_stop.SignalStop`): the first one
during training checkpoints and stops it (:class:`~trainlab.errors.Interrupted`), but one that lands while
the run finishes (its final evaluation, the writing of its results) lets it complete, and says so only in a
``warning: <SIGNAL> received while finishing; the run is complete``. A comparison must start no further run
after that signal (the user asked it to stop), so it has to know of it, without taking the signal from the
run's handler, which still needs it to checkpoint.

:func:`signals_during` knows: CPython writes the number of every signal that reaches a Python-level handler,
whichever handler that is, as one byte to the wakeup fd (:func:`signal.set_wakeup_fd`). A pipe set as the
wakeup fd around the run collects them; the previous wakeup fd comes back after. Only SIGINT and SIGTERM
count (:data:`STOP_SIGNALS`): an ignored signal (a pool worker's SIGINT) reaches no handler and writes
nothing. Outside the main thread, where no wakeup fd can be set, nothing is seen.

Inside it the run's own finishing warning is held back (:class:`_RunsFinishingWarning`): the comparison says
what happened in its own words, once (the run that completed, then its interrupt line). In a pool worker
that signal is the SIGTERM its parent passes on after a Ctrl-C, which the user never sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
from collections.abc import Iterator

from trainlab.notices import LOGGER

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

# trainlab.experiment._train_and_write's line for a signal that came while the run finished
_FINISHING_WARNING = re.compile(r"SIG[A-Z]+ received while finishing; the run is complete")


class _RunsFinishingWarning(logging.Filter):
    """Drops the run's ``<SIGNAL> received while finishing; the run is complete`` from the ``trainlab`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _FINISHING_WARNING.fullmatch(record.getMessage()) is None


def _drain(fd: int) -> bytes:
    """Everything the non-blocking pipe end ``fd`` holds now."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 512)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def signals_during() -> Iterator[list[int]]:
    """Yields a list that, once the block has ended (however), holds the :data:`STOP_SIGNALS` that reached
    this process inside it, in order, whichever handler took them; the run's finishing warning is held back
    meanwhile (the module docstring). Empty where none came, or where they cannot be seen (not the main
    thread; no pipe could be made)."""
    seen: list[int] = []
    try:
        read_end, write_end = os.pipe()
    except OSError:  # out of file descriptors: the comparison goes on as it did without
        yield seen
        return
    for fd in (read_end, write_end):
        os.set_blocking(fd, False)  # set_wakeup_fd's requirement: a signal must never block in its write
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_end)
        os.close(write_end)
        yield seen
        return
    held_back = _RunsFinishingWarning()
    LOGGER.addFilter(held_back)
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        LOGGER.removeFilter(held_back)
        seen.extend(number for number in _drain(read_end) if number in STOP_SIGNALS)
        os.close(read_end)
        os.close(write_end)
