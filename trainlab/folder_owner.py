"""Which trainlab command wrote a folder: one ``--out`` holds one command's results.

``train`` writes ``run.json``, ``compare`` writes ``leaderboard.json``, ``tune`` writes
``study.journal`` (its file storage) and ``.tune.study``. ``compare`` and ``tune`` write a
``report.html`` of their own: pointed at each other's folder, the later silently replaced
the earlier's report. :func:`refuse_foreign` refuses such a folder in one line instead.
"""

from __future__ import annotations

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
