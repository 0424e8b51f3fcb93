"""What a killed worker leaves in a finished trial's run folder, tidied by the next ``trainlab tune``.

A trial's run ends as any run does: its records and model are written (``run.json`` status
``finished``), then :func:`trainlab.engine.checkpoint.prune_after_finish` deletes the checkpoints
the config's ``output.checkpoint.keep_after_finish`` does not keep. A worker killed in between
(SIGKILL, out of memory, a reboot) leaves the checkpoints the run no longer needs, one perhaps half
deleted, and temporaries of interrupted writes; no one opens a trial's folder again (a rerun runs
another trial in its place), so :func:`tidy_trial_folders` finishes that deletion at the start of
the next tune. Only finished runs are touched, and only their ``checkpoint/`` and temporaries: a
trial cut short before it finished keeps its checkpoints (docs/tune.md), and a finished run's
model and records are never removed.
"""

from __future__ import annotations

from pathlib import Path

from trainlab.config import CheckpointConfig, read_yaml
from trainlab.engine.checkpoint import BEST, step_folders
from trainlab.engine.checkpoint import prune_after_finish as prune_checkpoints
from trainlab.errors import TrainlabError
from trainlab.records import read_record_object
from trainlab.run_layout import linked_records
from trainlab.run_leftovers import clean_stale_temporaries, is_stale_temporary
from trainlab.run_lock import RunLock

CHECKPOINTS = "checkpoint"


def tidy_trial_folders(trials_dir: Path) -> list[Path]:
    """Finish the checkpoint deletion that a killed worker cut short in each finished run folder
    ``trials_dir/<number>``; returns the folders tidied.

    A folder is tidied when its ``run.json`` says ``finished`` and it holds something its run's end
    deletes: a checkpoint that its ``keep_after_finish`` does not keep (``last``: all but ``best/`` and
    the newest step; ``none``: all; ``all``: none), or a temporary of a dead process
    (:func:`trainlab.run_leftovers.is_stale_temporary`). It is tidied under its run lock, taken
    without waiting: a folder whose lock is held belongs to a live process (a worker pruning it right
    now) and is left alone. A folder whose config cannot be read is left as it is.
    """
    tidied: list[Path] = []
    if not trials_dir.is_dir() or trials_dir.is_symlink():
        return tidied
    for folder in sorted(trials_dir.iterdir(), key=lambda p: (len(p.name), p.name)):
        if not folder.name.isdigit() or folder.is_symlink() or not folder.is_dir():
            continue
        info = read_record_object(folder / "run.json")
        if info is None or info.get("status") != "finished" or linked_records(folder):
            continue  # a linked checkpoint/ (a folder sent to you): deleting through it deletes elsewhere
        keep = _keep_after_finish(folder)
        if keep is None or not _untidy(folder, keep):
            continue
        lock = RunLock(folder, "trial run folder")
        try:
            lock.acquire()
        except TrainlabError:  # held: a live worker; or a lock that cannot be taken here (read-only)
            continue
        try:
            clean_stale_temporaries(folder)
            prune_checkpoints(folder / CHECKPOINTS, keep)
        finally:
            lock.release()
        tidied.append(folder)
    return tidied


def _keep_after_finish(folder: Path) -> str | None:
    """The run's ``output.checkpoint.keep_after_finish`` from its ``config.yaml``; None when unreadable."""
    try:
        output = read_yaml(folder / "config.yaml", follow_links=False).get("output") or {}
        return CheckpointConfig.model_validate(output.get("checkpoint") or {}).keep_after_finish
    except (TrainlabError, OSError, ValueError, AttributeError):  # ValueError: pydantic's ValidationError too
        return None


def _untidy(folder: Path, keep: str) -> bool:
    """Whether ``folder`` holds a checkpoint ``keep`` does not keep, or a temporary of a dead process."""
    checkpoints = folder / CHECKPOINTS
    for where in (folder, checkpoints):
        if where.is_dir() and not where.is_symlink() and any(is_stale_temporary(e) for e in where.iterdir()):
            return True
    if keep == "all":
        return False
    steps = step_folders(checkpoints)
    if keep == "none":
        return bool(steps) or (checkpoints / BEST).is_dir()
    return len(steps) > 1
