"""The rich consoles trainlab's tables and live panels (standard output) and progress bars (standard error) write
through.

rich's own console, when the reader of its output goes away (``trainlab compare ... | head -1``), points
its stream at ``/dev/null`` and raises ``SystemExit(1)``: exit 1 with no word said, which the command
line cannot tell from a failure, and which skipped the files still to be written. :func:`output_console`'s
raises :class:`BrokenPipeError` instead, which the command line answers as any Unix filter does (exit 141),
and which a caller may let pass its own writes.
"""

from __future__ import annotations

from typing import Any


def _reader_gone() -> None:
    raise BrokenPipeError("the reader of the output went away")


def output_console(**options: Any) -> Any:
    """A ``rich.console.Console(**options)`` whose closed pipe raises BrokenPipeError (module docstring)."""
    from rich.console import Console

    console = Console(**options)
    console.on_broken_pipe = _reader_gone  # rich calls self.on_broken_pipe() where its write fails with EPIPE
    return console
