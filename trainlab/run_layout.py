"""What a run folder holds and how trainlab recognises one: the record names, ``run.json``'s format, and the
questions asked of a folder before it is overwritten, adopted or resumed (is it a run folder, did it
finish, does it hold a step checkpoint, is one of its records a link).

The layout itself (``run.json``, ``config.yaml``, ``metrics.jsonl``, ...) is described in
:mod:`trainlab.run_folder`, which writes it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from trainlab.bounded_read import read_regular_file
from trainlab.errors import RunDirError
from trainlab.run_lock import LOCK

RUN_FORMAT = 1
# What trainlab writes into a run folder; a folder holding anything else is not overwritten.
RUN_FILES = frozenset({"run.json", "config.yaml", "metrics.jsonl", "summary.json", "model.safetensors",
                       "loss.safetensors", "labels.json", "preprocessing.json", "model.json", "checkpoint",
                       "tensorboard", "metrics.csv", LOCK})
MAX_RUN_JSON_BYTES = 1 << 20
STEP_CHECKPOINT = re.compile(r"step-\d+")  # trainlab.engine.checkpoint's step folders (it imports torch)


def is_run_folder(path: Path) -> bool:
    """True if ``path/run.json`` is a regular file holding a JSON object with this run format."""
    info_path = path / "run.json"
    try:
        st = os.stat(info_path, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_RUN_JSON_BYTES:
            return False
        info = json.loads(info_path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and info.get("format") == RUN_FORMAT


def run_status(run: Path) -> Any:
    """run.json's ``status`` (``"finished"``, ...), None when unreadable or absent."""
    try:
        info = json.loads(read_regular_file(run / "run.json", MAX_RUN_JSON_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
    return info.get("status") if isinstance(info, dict) else None


def run_created(run: Path) -> float | None:
    """run.json's ``created`` (when its training started), None when unreadable or absent."""
    try:
        created = json.loads(read_regular_file(run / "run.json", MAX_RUN_JSON_BYTES)).get("created")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return float(created) if isinstance(created, int | float) and not isinstance(created, bool) else None


def holds_something_to_keep(run: Path) -> bool:
    """The run in ``run`` finished (run.json says so, written after its model and summary) or holds a step
    checkpoint (``checkpoint/step-*``) that ``resume`` continues from. ``best/`` alone is not: it is
    the best evaluation, not a resume point (resuming would start from step 0), and neither is a
    ``model.safetensors`` whose run.json was not then written (a full disk between the two): an
    overwrite that has only those replaces no run."""
    if run_status(run) == "finished":
        return True
    checkpoints = run / "checkpoint"
    return checkpoints.is_dir() and any(
        entry.is_dir() and STEP_CHECKPOINT.fullmatch(entry.name) for entry in checkpoints.iterdir())


def linked_records(path: Path) -> list[str]:
    """The :data:`RUN_FILES` in ``path`` that are symbolic links, sorted."""
    return sorted(name for name in RUN_FILES if os.path.islink(path / name))


def refuse_linked_records(path: Path, action: str) -> None:
    """RunDirError when one of :data:`RUN_FILES` in ``path`` is a symbolic link. Resuming writes checkpoints
    into ``checkpoint/`` and deletes the ones it no longer keeps: through a link (a folder sent to you, its
    ``checkpoint`` pointing at another run's) that would write and delete outside the run folder."""
    linked = linked_records(path)
    if linked:
        raise RunDirError(f"cannot {action} {path}: its {linked[0]} is a symbolic link, and trainlab writes and "
                          "deletes only inside a run folder; replace the link by a copy of what it points at, "
                          "or start a new run")
