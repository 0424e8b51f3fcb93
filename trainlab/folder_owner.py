"""Which trainlab command wrote a folder: one ``--out`` holds one command's results.

``train`` writes ``run.json``, ``compare`` writes ``leaderboard.json``, ``tune`` writes
``study.journal`` (its file storage) and ``.tune.study``. ``compare`` and ``tune`` write a
``report.html`` of their own: pointed at each other's folder, the later silently replaced
the earlier's report. :func:`refuse_foreign` refuses such a folder in one line instead; :func:`refuse_overwrite`
refuses a folder of no earlier run of the command that holds files of the names it writes (the user's own
``report.html`` or ``trials.csv`` in ``--out .``), which it would replace; a marker of the right name that is
not the command's record (the user's ``leaderboard.json``: its caller's ``is_record`` says) is no earlier run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from trainlab.errors import ConfigError

MARKERS = {"run.json": "a trainlab run folder (trainlab train)",
           "leaderboard.json": "a comparison (trainlab compare)",
           "study.journal": "a tuning study (trainlab tune)",
           ".tune.study": "a tuning study (trainlab tune)"}


def written_by(folder: Path) -> str | None:
    """What wrote ``folder`` (a :data:`MARKERS` description), or None when no marker file is there."""
    return next((what for name, what in MARKERS.items() if (folder / name).is_file()), None)


def refuse_foreign(folder: Path, command: str, own: tuple[str, ...]) -> None:
    """ConfigError when ``folder`` holds another command's results (``own``: this command's marker files)."""
    for name, what in MARKERS.items():
        if name not in own and (folder / name).is_file():
            raise ConfigError(f"--out {folder} holds {what}; trainlab {command} writes its own results "
                              f"(and report.html) there: give another --out")


def refuse_overwrite(folder: Path, command: str, own: tuple[str, ...], writes: tuple[str, ...],
                     argument: str = "--out", is_record: Callable[[Path], bool] = Path.is_file) -> None:
    """ConfigError when ``folder`` holds none of ``own`` (this command's marker files: no earlier run of it,
    which a rerun continues and whose results it replaces) but holds something named as one of ``writes`` (the
    files ``command`` writes there): the user's own, which the run would silently replace. A folder that does
    not exist, or that holds only other files (the data, the config), is accepted. ``argument``: the folder's
    argument as its caller knows it (``--out`` in the CLI, ``out`` from Python).

    ``is_record(path)`` says whether a marker file is this command's record (default: any regular file of
    the name); a marker it rejects (the user's ``leaderboard.json``) is no earlier run, and is refused as one
    of ``writes`` when named there."""
    if any(is_record(folder / name) for name in own):
        return
    found = [name for name in writes if os.path.lexists(folder / name)]
    if found:
        markers = " or ".join(own)
        foreign = [name for name in own if os.path.lexists(folder / name)]
        why = (f"its {' and '.join(foreign)} {'are' if len(foreign) > 1 else 'is'} not as trainlab {command} "
               f"writes {'them' if len(foreign) > 1 else 'it'}" if foreign
               else f"no {markers}")
        raise ConfigError(f"refusing to overwrite {', '.join(found)} in {argument} {folder}, which holds no earlier "
                          f"trainlab {command} results ({why}): trainlab {command} writes "
                          f"{', '.join(writes)} there; give another {argument}, or move those files away")
