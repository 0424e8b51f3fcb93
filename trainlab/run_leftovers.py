"""What killed processes leave in and beside run folders, recognised by name and removed.

- ``.<name>.tmp-<pid>`` / ``.old-<pid>`` / ``.new-<pid>`` / ``.deleting-<pid>`` (a checkpoint being
  written, swapped or deleted by keep-last pruning, an overwrite's staging folder): stale once ``<pid>``
  is no live process, or a process that started after the entry's last change (the pid reused: a
  container's trainlab is pid 1 every time);
- ``.<file>.<random>.tmp`` (:mod:`trainlab.atomic`): no PID, stale when the folder's lock is held
  (nothing else writes there).

An overwrite's siblings of a run folder (:func:`sibling_name`) lie beside the folder a symbolic link to it
resolves to, and a name too long for NAME_MAX with their prefix and suffix is shortened there, with a hash
of the whole name that keeps it the one folder's.

:mod:`trainlab.run_folder` decides, under the run's lock, which of these to remove or adopt.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from trainlab.run_lock import writer_gone

# .step-000000010.tmp-1234/ (checkpoint being written), .step-000000010.old-1234/ (being swapped),
# .step-000000010.deleting-1234/ (renamed aside to be deleted: engine.checkpoint.remove; a kill during its
# rmtree leaves up to a whole checkpoint), .model.safetensors.abc123.tmp (atomic.write_bytes; no PID: only
# removed when nothing runs here), anything.tmp-1234
_TMP_WITH_PID = re.compile(r"^\..*\.(?:tmp|old|new|deleting)-(\d+)$")
_ATOMIC_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")
_RENAMED_ASIDE = re.compile(r"^\..*\.deleting-\d+$")


def _gone(pid: int, entry: Path) -> bool:
    """Whether the process that named ``entry`` by ``pid`` is gone (:func:`trainlab.run_lock.writer_gone`,
    by the entry's last change): a pid reused by a later process, this one included, is no live writer.

    A ``.deleting-<pid>`` folder got its name by a rename of a checkpoint that an earlier process may have
    written (a resumed run prunes the killed run's checkpoints): its modification time is the writer's,
    older than the live pruner; its status-change time (ctime), which the rename sets, is when the name
    was given."""
    try:
        stat = entry.lstat()
    except OSError:
        return False  # already gone: nothing to remove
    written = max(stat.st_mtime, stat.st_ctime) if _RENAMED_ASIDE.match(entry.name) else stat.st_mtime
    return writer_gone(pid, written)


def is_stale_temporary(entry: Path) -> bool:
    """A temporary of a dead process (``.<name>.tmp-<pid>``, ``.deleting-<pid>`` etc.) or of
    :mod:`trainlab.atomic`."""
    match = _TMP_WITH_PID.match(entry.name)
    if match is not None:
        return _gone(int(match.group(1)), entry)
    return _ATOMIC_TMP.match(entry.name) is not None


def clean_stale_temporaries(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries that killed processes left in ``run_dir`` and its ``checkpoint/``.

    Call it while holding the run's lock (e.g. right after :meth:`RunDir.open_existing` on resume):
    ``.<name>.tmp-<pid>`` / ``.old-<pid>`` / ``.new-<pid>`` / ``.deleting-<pid>`` folders or files are
    removed only when ``<pid>`` is not a live process; ``.<file>.<random>.tmp`` files of :mod:`trainlab.atomic` carry no
    PID and are removed because the lock proves no other process writes this folder; a dead process's
    ``checkpoint/.step-N.old-<pid>`` with no ``step-N`` beside it is renamed back to ``step-N``
    (:func:`_swapped_out_step`). Returns what was removed. Never follows symbolic links.
    """
    removed: list[Path] = []
    root = Path(run_dir)
    for folder in (root, root / "checkpoint"):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in sorted(folder.iterdir()):
            if not is_stale_temporary(entry):
                continue
            original = _swapped_out_step(entry)
            if original is not None and not original.exists():
                os.replace(entry, original)  # the swap's first rename ran, its second did not: put it back
            else:
                remove_path(entry)
                removed.append(entry)
    return removed


_STEP_SET_ASIDE = re.compile(r"^\.(step-\d+)\.old-\d+$")


def _swapped_out_step(entry: Path) -> Path | None:
    """``checkpoint/step-N`` for ``checkpoint/.step-N.old-<pid>``: a complete checkpoint that
    :func:`trainlab.engine.checkpoint.save` set aside to write the same step again (a run's end re-saves
    its last step as finished). Killed between its two renames, the run has no ``step-N`` but this copy,
    which :func:`clean_stale_temporaries` renames back instead of removing (a resume would else start
    over from an earlier checkpoint, or from step 0)."""
    match = _STEP_SET_ASIDE.match(entry.name)
    if match is None or entry.parent.name != "checkpoint" or not entry.is_dir() or entry.is_symlink():
        return None
    return entry.with_name(match.group(1))


NAME_MAX = 255  # bytes in a file name on ext4, XFS, Btrfs, APFS, NTFS: the most a sibling's name is given
_PID_DIGITS = 10  # a pid's digits at most (2**32 - 1)
_NAME_HASH_CHARS = 16  # hex digits of SHA-256 that stand for the part of a long name left out


def swap_place(final: Path) -> Path:
    """The folder an overwrite of ``final`` swaps: ``final`` itself, or the folder it resolves to where
    ``final`` is a symbolic link. A rename moves the link, not what it points at: a swap at the link
    would turn the link into the new run's folder (on the link's file system) and leave the link, under
    the staging folder's name, pointing at the old run."""
    return Path(os.path.realpath(final)) if final.is_symlink() else final


def name_max(folder: Path) -> int:
    """NAME_MAX of the file system holding ``folder``, at most :data:`NAME_MAX` (what a file system that
    reports more may still refuse)."""
    try:
        return min(NAME_MAX, os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX


def sibling_stem(final: Path) -> str:
    """What stands for ``final``'s name in its siblings' names (``.<stem>.new-<pid>``): the name itself
    where ``.<name>.new-<pid>`` fits NAME_MAX bytes; else as many of its first characters as leave room
    for ``~`` and the first :data:`_NAME_HASH_CHARS` hex digits of the name's SHA-256, which tell two long
    names with the same start apart. A run folder named up to NAME_MAX bytes can so be overwritten."""
    encoded = os.fsencode(final.name)
    room = name_max(final.parent) - len(".") - len(".new-") - _PID_DIGITS
    if len(encoded) <= room:
        return final.name
    digest = "~" + hashlib.sha256(encoded).hexdigest()[:_NAME_HASH_CHARS]
    start = final.name
    while start and len(os.fsencode(start)) > room - len(digest):
        start = start[:-1]
    return start + digest


def sibling_name(final: Path, kind: str, pid: int) -> Path:
    """``.<stem>.<kind>-<pid>`` (:func:`sibling_stem`) beside ``final``: ``kind`` ``"new"`` names an
    overwrite's staging folder, ``"old"`` the old run set aside by a swap of two renames."""
    return final.parent / f".{sibling_stem(final)}.{kind}-{pid}"


def dead_siblings(final: Path) -> Iterator[tuple[str, Path]]:
    """(``"new"`` or ``"old"``, folder) for each :func:`sibling_name` of ``final`` (beside the folder it
    resolves to: :func:`swap_place`) whose process is dead: an overwrite's staging folder, or the old run
    set aside during a swap."""
    final = swap_place(final)
    if not final.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(sibling_stem(final))}\.(new|old)-(\d+)$")
    for entry in final.parent.iterdir():
        match = pattern.match(entry.name)
        if match is not None and _gone(int(match.group(2)), entry):
            yield match.group(1), entry


def remove_path(path: Path) -> None:
    """A file, a link or a folder tree; one already gone is no error."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
