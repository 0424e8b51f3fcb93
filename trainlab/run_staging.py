"""Overwriting a run folder without deleting first: the new run is staged beside the old one as
``.<name>.new-<pid>`` and swapped into place when it has something to keep; and what a kill in between
leaves (dead staging folders, an old run set aside as ``.<name>.old-<pid>``), found and put right.

:meth:`trainlab.run_folder.RunDir.create` states the rules; this module holds the folder operations.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from trainlab.atomic import fsync_dir
from trainlab.errors import folder_error
from trainlab.run_layout import holds_something_to_keep, is_run_folder, run_created
from trainlab.run_leftovers import dead_siblings, remove_path, sibling_name, swap_place
from trainlab.run_lock import RunLock, holder

_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def staging_name(final: Path, pid: int | None = None) -> Path:
    """Where an overwrite of ``final`` by process ``pid`` (this one) stages its run: ``.<name>.new-<pid>``
    beside the folder ``final`` names or, where it is a symbolic link, resolves to (:func:`swap_place`),
    the name shortened to fit NAME_MAX (:func:`~trainlab.run_leftovers.sibling_name`)."""
    return sibling_name(swap_place(final), "new", os.getpid() if pid is None else pid)


def swap_into_place(staging: Path, target: Path) -> Path:
    """Put the run in ``staging`` at ``target`` and the run that was there aside; returns where the old run now
    is (to delete). One atomic exchange where renameat2 has it (the old run then under the staging name),
    else two renames, the old run first renamed aside as ``.<name>.old-<pid>``: a kill between them leaves
    both runs under their dot names, which :func:`put_back_cut_swap` undoes."""
    if exchange(staging, target):
        aside = staging  # now holds the old run
    else:
        aside = sibling_name(target, "old", os.getpid())
        os.replace(target, aside)
        os.replace(staging, target)
    fsync_dir(target.parent)
    return aside


def stranded_overwrites(final: Path) -> list[Path]:
    """Dead staging folders of ``final`` that hold a run with something to keep (a step checkpoint or its results),
    newest first: a ``train --overwrite`` killed before it could swap itself into place.
    :meth:`~trainlab.run_folder.RunDir.open_existing` (``resume``) adopts the newest. One that
    :func:`_set_aside` is not one."""
    found = [entry for kind, entry in dead_siblings(final)
             if kind == "new" and entry.is_dir() and not entry.is_symlink() and is_run_folder(entry)
             and holds_something_to_keep(entry) and not _set_aside(entry, final)]
    return sorted(found, key=lambda entry: entry.stat().st_mtime, reverse=True)


def _set_aside(entry: Path, final: Path) -> bool:
    """True if the dead staging folder ``entry`` holds the run an overwrite *replaced*: the swap
    (:meth:`~trainlab.run_folder.RunDir.commit_overwrite`) gives the old run the staging folder's name, and a
    kill before its deletion ends leaves it there, older than the run now at ``final``. Such a folder is removed,
    never adopted (adopting it would bring the old run back and delete the finished new one). A
    folder without run.json but with checkpoints is one whose deletion removed run.json first (an
    overwrite writes run.json before any checkpoint); one with a damaged run.json is kept."""
    if not os.path.lexists(entry / "run.json"):
        return holds_something_to_keep(entry) and is_run_folder(final)
    ours, theirs = run_created(entry), run_created(final)
    return ours is not None and theirs is not None and ours < theirs


def clean_stale_staging(final: Path) -> list[Path]:
    """Remove ``.<name>.new-<pid>`` / ``.old-<pid>`` siblings of ``final`` left by dead processes
    (:func:`~trainlab.run_leftovers.dead_siblings`: beside the folder a link ``final`` resolves to).

    A dead staging folder that holds its results or a step checkpoint is kept (it is someone's work), unless it
    is a replaced run whose deletion was cut short (:func:`_set_aside`).
    """
    removed = []
    for kind, entry in dead_siblings(final):
        if kind == "new" and holds_something_to_keep(entry) and not _set_aside(entry, final):
            continue
        if kind == "old" and not final.exists():
            continue  # a swap was cut between its two renames: this is the only copy of the old run
        remove_path(entry)
        removed.append(entry)
    return removed


def staging_place(final: Path) -> str:
    """Where :meth:`~trainlab.run_folder.RunDir.create` stages an overwrite of ``final``, in words:
    beside ``final``, or in the folder holding what a link ``final`` points at (:func:`swap_place`)."""
    place = swap_place(final)
    if place == final:
        return f"beside {final}"
    return f"in {place.parent} (beside {place}, which the link {final} points at)"


def put_back_cut_swap(final: Path) -> Path | None:
    """Rename back the old run that an overwrite's swap of two renames (:func:`swap_into_place`, where
    renameat2 cannot exchange) set aside as ``.<name>.old-<pid>`` before a kill cut it short, while the folder
    it was taken from (:func:`swap_place`: ``final``, or what a link ``final`` points at) is missing; returns
    the folder it was in, or None when there is none to put back.

    That leaves what a kill before the swap leaves: the old run in place and the new one staged, which
    ``resume`` adopts (:func:`stranded_overwrites`) and another ``--overwrite`` replaces; as a checkpoint's
    swap cut short is put back (:func:`~trainlab.run_leftovers.clean_stale_temporaries`). Else ``final`` does
    not exist (a link dangles) and neither run is found. A set-aside folder whose lock is held is left: a live
    swap holds it (its name's pid may look dead: a process started after the old run's last change)."""
    place = swap_place(final)
    if os.path.lexists(place):
        return None
    try:
        # cut between the renames only while its staged run is still beside it: after the second rename, an
        # old run whose removal a kill cut short is no run to bring back (the user may have deleted the new one)
        aside = [entry for kind, entry in dead_siblings(final)
                 if kind == "old" and entry.is_dir() and not entry.is_symlink()
                 and entry.with_name(_staged_name_of(entry)).is_dir()]
        if not aside:
            return None
        latest = max(aside, key=lambda entry: entry.lstat().st_ctime)  # the rename that set it aside sets ctime
    except OSError:  # a parent that cannot be listed, a leftover a cleaner removed meanwhile: the caller's own
        return None  # error names what is missing (mkdir, "does not exist")
    if holder(latest) is not None:
        return None  # a live swap between its two renames: it finishes itself
    lock = RunLock(latest)
    lock.acquire()  # raced by another process putting it back: "in use", naming the folder
    try:
        os.rename(latest, place)
    except OSError as exc:
        lock.release()
        if exc.errno in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
            return None  # another process put it back first
        raise folder_error(f"cannot put the run in {latest} back at {place}, where an overwrite of {final} "
                           "was cut short", exc) from None
    lock.moved_to(place)
    lock.release()
    fsync_dir(place.parent)
    return latest


def _staged_name_of(aside: Path) -> str:
    """The staging folder's name of the overwrite that set ``aside`` (``.<stem>.old-<pid>``) aside:
    ``.<stem>.new-<pid>``, the same process's."""
    stem, _, pid = aside.name.rpartition(".old-")
    return f"{stem}.new-{pid}"
