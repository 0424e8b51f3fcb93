"""Commands that messages hand the user to paste into a shell (``continue with: trainlab resume runs/x``).

A path in such a command is a word of it: written as it is, a path with a space or a quote pastes as
several words (``trainlab resume /tmp/my runs/r 1`` gives ``error: unrecognized arguments``). Every
command a message prints is built here, so that ``shlex.split`` of it (what a POSIX shell does) gives
back the words it was built from. A word that needs no quoting is written as it is, so a message
naming a plain path reads as it always did.

The other way round, :func:`home_expanded` reads a path as the shell would have: ``~`` and ``~user`` at its
start stand for a home folder. A shell expands them only at the start of a word, so ``--out=~/runs`` and a
quoted ``"~/my runs"`` reach trainlab as they are, and the Python API's arguments never pass a shell. Every
path argument of the CLI (:func:`trainlab.cli_parser.path_word`) and of the Python API
(:func:`trainlab.config_fields.path_argument`) goes through it, as
``output.dir`` and ``data.path`` in a config are expanded, so that no folder named ``~`` is made in the
working directory (one that ``rm -rf ~`` would not clean up but take the home folder with it).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def command_line(*words: str | os.PathLike[str]) -> str:
    """``words`` joined into one line that a POSIX shell splits back into the same words:
    ``shlex.split(command_line(*words)) == [os.fspath(w) for w in words]``. A word the shell would split or
    read (a space, a quote, ``$``) is quoted for it (:func:`shlex.quote`), any other is left as it is:
    ``trainlab resume runs/x``, ``trainlab resume '/tmp/my runs/r 1'``. Placeholders such as ``FILE`` or
    ``-o report.html`` are words like any other."""
    return shlex.join(os.fspath(word) for word in words)


def utf8_conversion(file: Path, windows: bool = False) -> str:
    """How to save ``file`` (not UTF-8: a Latin-1 or Windows-1252 export, where ``é`` is the one byte 0xe9) as
    UTF-8, beside it so that the command works from any folder: ``iconv -f latin1 -t utf-8 FILE > FILE-utf8``;
    ``windows`` (the file holds bytes 0x80-0x9f, Windows-1252's ``€``, curly quotes, dashes, which Latin-1 reads
    as control characters): ``-f cp1252``."""
    converted = file.with_name(f"{file.stem}-utf8{file.suffix}")
    encoding = "cp1252" if windows else "latin1"
    return f"save it as UTF-8 (e.g. {command_line('iconv', '-f', encoding, '-t', 'utf-8', file)} > {command_line(converted)})"


def quoted_command(*words: str | os.PathLike[str]) -> str:
    """``words`` as a command for a message's prose, quoted as messages quote a command:
    ``'trainlab resume runs/x'``. A word the shell would split or read (a space, a quote, ``$``) is quoted
    for it (:func:`shlex.quote`), and the command is then left bare, since quotes around quotes do not paste:
    ``trainlab resume '/tmp/my runs/r 1'``."""
    line = command_line(*words)
    plain = line == " ".join(os.fspath(word) for word in words)
    return f"'{line}'" if plain else line


def home_expanded(path: str | os.PathLike[str]) -> str:
    """``path`` with a leading ``~`` (the user's home folder) or ``~user`` (that user's) replaced as a POSIX
    shell replaces it (:func:`os.path.expanduser`); any other path as it is: ``~/runs`` -> ``/home/me/runs``,
    ``runs/~x`` stays. A ``~user`` of no user this machine knows (or a ``~`` with neither ``$HOME`` nor a
    password entry) is a ValueError saying so, as ``output.dir: ~nobody/x`` is: made as it is, it would be a
    folder named ``~nobody`` in the working directory."""
    text = os.fspath(path)
    expanded = os.path.expanduser(text)
    if expanded.startswith("~"):
        home = text.split(os.sep, 1)[0]
        raise ValueError(f"cannot expand {home!r} in {text!r}: no such user (write the full path)")
    return expanded
