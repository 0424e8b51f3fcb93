"""Commands that messages hand the user to paste into a shell (``continue with: trainlab resume runs/x``).

A path in such a command is a word of it: written as it is, a path with a space or a quote pastes as
several words (``trainlab resume /tmp/my runs/r 1`` gives ``error: unrecognized arguments``). Every
command a message prints is built here, so that ``shlex.split`` of it (what a POSIX shell does) gives
back the words it was built from. A word that needs no quoting is written as it is, so a message
naming a plain path reads as it always did.
"""

from __future__ import annotations

import os
import shlex


def command_line(*words: str | os.PathLike[str]) -> str:
    """``words`` joined into one line that a POSIX shell splits back into the same words:
    ``shlex.split(command_line(*words)) == [os.fspath(w) for w in words]``. A word the shell would split or
    read (a space, a quote, ``$``) is quoted for it (:func:`shlex.quote`), any other is left as it is:
    ``trainlab resume runs/x``, ``trainlab resume '/tmp/my runs/r 1'``. Placeholders such as ``FILE`` or
    ``-o report.html`` are words like any other."""
    return shlex.join(os.fspath(word) for word in words)


def quoted_command(*words: str | os.PathLike[str]) -> str:
    """``words`` as a command for a message's prose, quoted as messages quote a command:
    ``'trainlab resume runs/x'``. A word the shell would split or read (a space, a quote, ``$``) is quoted
    for it (:func:`shlex.quote`), and the command is then left bare, since quotes around quotes do not paste:
    ``trainlab resume '/tmp/my runs/r 1'``."""
    line = command_line(*words)
    plain = line == " ".join(os.fspath(word) for word in words)
    return f"'{line}'" if plain else line
