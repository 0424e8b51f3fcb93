"""Warnings the data layer gives the user: one ``warning: ...`` line on stderr each.

Printed, not :func:`warnings.warn`-ed: they change what a run means (an empty validation split,
categories never seen in training), so they are shown even with ``--quiet``, once, in the CLI's
own one-line style.
"""

from __future__ import annotations

import sys


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr (``message`` is one line)."""
    print(f"warning: {message}", file=sys.stderr)
