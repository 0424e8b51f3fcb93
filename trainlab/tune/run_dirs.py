"""Where a trial's run folder is: recorded relative to the study folder, found inside the one in use.

A trial records its run folder (the user attribute ``run_dir``) as ``trials/<number>``, relative to the
study folder (``--out``), so a study folder that is moved or copied continues and reports its own runs:
the rerun reads ``<its --out>/trials/<number>``, wherever the folder was when the trial ran. It also
records where that was (``run_path``, absolute), for the one case where the study folder in use does not
hold the run: an RDB study whose workers each have their own ``--out``.

Trials recorded by trainlab versions before this rule hold an absolute ``run_dir``, inside the folder
where the study then was. Such a path that ends in ``trials/<number>`` (the trial's own number) is read
by that part: inside the study folder in use when it holds that run folder (a moved or copied study),
else as written (an RDB study's trial that a worker of another ``--out`` ran).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from trainlab.record_paths import absolute_path

TRIALS = "trials"  # the study folder's folder of run folders
ATTR_RUN_DIR = "run_dir"  # trial user attr: its run folder, trials/<number> (relative to the study folder)
ATTR_RUN_PATH = "run_path"  # trial user attr: the absolute path of its run folder where it ran


def run_dir_attrs(number: int, trials_dir: Path) -> dict[str, str]:
    """The user attributes a trial records as its run begins in ``trials_dir/<number>``: ``run_dir``
    (``trials/<number>``) and ``run_path`` (absolute: :func:`absolute_path`)."""
    return {ATTR_RUN_DIR: str(PurePosixPath(TRIALS, str(number))),
            ATTR_RUN_PATH: absolute_path(trials_dir / str(number))}


def own_part(named: Path, number: int) -> bool:
    """Whether the absolute ``named`` (a run folder recorded before relative paths) ends in the trial's
    own ``trials/<number>``."""
    return named.parts[-2:] == (TRIALS, str(number))


def where_it_ran(attrs: dict[str, Any]) -> Path | None:
    """The absolute path where a trial (user attributes ``attrs``) ran its run: its ``run_path``, or an older
    absolute ``run_dir``; None without either. It may be gone (a moved study folder) or, read on another
    machine, not the trial's folder at all."""
    recorded, written = attrs.get(ATTR_RUN_DIR), attrs.get(ATTR_RUN_PATH)
    if isinstance(written, str) and written:
        return Path(written)
    if isinstance(recorded, str) and recorded and Path(recorded).is_absolute():
        return Path(recorded)
    return None


def run_folder(attrs: dict[str, Any], number: int, out: Path) -> Path | None:
    """The run folder of trial ``number`` (user attributes ``attrs``) in the study folder ``out``.

    ``out/trials/<number>`` when ``out`` holds it and the trial's ``run_dir`` names that part (relative, or
    an older absolute one ending in ``trials/<number>``: the study folder was moved or copied); else the
    absolute path where the trial ran, when it exists (an RDB study's trial that a worker of another
    ``--out`` ran); else ``out/trials/<number>`` for a relative record, an older one as written. None
    without a record (a trial that never began its run)."""
    recorded = attrs.get(ATTR_RUN_DIR)
    if not isinstance(recorded, str) or not recorded:
        return None
    named, own = Path(recorded), out / TRIALS / str(number)
    if (not named.is_absolute() or own_part(named, number)) and own.is_dir():
        return own
    elsewhere = where_it_ran(attrs)
    if elsewhere is not None and elsewhere.is_dir():
        return elsewhere
    return named if named.is_absolute() else out / named


def shown_run_folder(attrs: dict[str, Any], number: int, out: Path) -> str | None:
    """:func:`run_folder` as the results show it: its :func:`absolute_path`, or None where there is no such
    folder (a trial that never began its run, or whose worker was killed before its run folder was made):
    a path that does not exist would send its reader looking for a run that never was."""
    folder = run_folder(attrs, number, out)
    return None if folder is None or not folder.is_dir() else absolute_path(folder)


def names_folder(attrs: dict[str, Any], number: int, folder: Path) -> bool:
    """Whether trial ``number``'s records (user attributes ``attrs``) name ``folder``
    (``<--out>/trials/<number>``) as its run folder, for reading its outcome back. A relative ``run_dir``
    names it (the study folder in use, or a copy: a worker of another ``--out`` ran its trials into that
    ``--out``, not this one); an older absolute one when it is that folder, or when it ends in the trial's
    own part and is gone (the study folder was moved). Stricter than :func:`run_folder`: reading a run not
    the trial's would record a wrong outcome."""
    recorded = attrs.get(ATTR_RUN_DIR)
    if not isinstance(recorded, str) or not recorded:
        return False
    named = Path(recorded)
    if not named.is_absolute():
        return named == Path(TRIALS, str(number))
    try:
        return os.path.samefile(named, folder)
    except OSError:  # either is missing, or cannot be looked up
        return own_part(named, number) and not os.path.lexists(named) and folder.is_dir()
