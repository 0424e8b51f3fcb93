"""Warnings the data layer gives the user: one ``warning: ...`` line on stderr each.

Printed, not :func:`warnings.warn`-ed: they change what a run means (an empty validation split,
categories never seen in training), so they are shown even with ``--quiet``, once, in the CLI's
own one-line style. "Once": a check that reads the data ahead of the run's own loading (counting its
splits for ``--target``) reads it under :func:`held_back`, so the loading that follows says each thing.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator

_HELD_BACK: contextvars.ContextVar[bool] = contextvars.ContextVar("trainlab_notices_held_back", default=False)


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr (``message`` is one line), unless :func:`held_back`."""
    if not _HELD_BACK.get():
        print(f"warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def held_back() -> Iterator[None]:
    """No data warning inside: for a read ahead of the loading that will print the same warnings."""
    token = _HELD_BACK.set(True)
    try:
        yield
    finally:
        _HELD_BACK.reset(token)
