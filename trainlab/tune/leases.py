"""A worker's lease on the trial it runs (storages without heartbeats: the file journal).

A lease is an ``flock`` on ``DIR/.tune.leases/<claim token>``, taken when the worker claims the trial
(under the claim lock) and released when it is done with the trial, however that ended. The kernel
drops an ``flock`` when its holder dies, whatever kills it, so a lease that can be taken says its
worker is gone and one that cannot says it lives, whichever host it runs on: the workers of a journal
study share DIR (the journal lives there), on one machine or on a shared file system whose ``flock``
the hosts share, which the journal's appends and the claim lock need already (docs/tune.md). A trial
whose recorded host is not this one (a container re-created under a new hostname, another machine)
is judged by its lease, where its pid cannot be looked up. RDB storages judge their workers by
Optuna's heartbeats instead: their workers need not share a DIR.

A lease file is removed by :func:`sweep` once its trial is no longer RUNNING and no one holds it: at the
next claim, or when the study stops without one (an interrupt, an error:
:func:`trainlab.tune.claims.remove_ended_leases`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
from pathlib import Path

LEASES = ".tune.leases"  # the folder in DIR that holds them
_TOKEN = re.compile(r"[0-9a-f]{32}")  # a claim token (uuid4 hex): what may name a lease file


def leases_folder(out: Path) -> Path:
    return out / LEASES


class Lease:
    """The held lease of one claim (:meth:`take`); :meth:`release` lets it go."""

    def __init__(self, path: Path, descriptor: int):
        self.path = path
        self._descriptor: int | None = descriptor

    @classmethod
    def take(cls, folder: Path, token: str) -> Lease:
        """Create and lock ``folder/<token>`` (a fresh token: no one else holds it). The file names its
        holder (host and pid) for a person looking at it; the lock alone says whether it lives.

        Raises:
            OSError: the file cannot be made, locked or written (a full disk); it names the lease file
                (``filename``), as the CLI's ``error: cannot write (<file>): <reason>`` line says it."""
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"not a claim token: {token!r}")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / token
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(descriptor, f"{socket.gethostname()} {os.getpid()}\n".encode())
        except OSError as exc:  # a write on a descriptor names no file: a full disk's line names the lease
            os.close(descriptor)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        except BaseException:
            os.close(descriptor)
            raise
        return cls(path, descriptor)

    def release(self) -> None:
        """Unlock (closing the descriptor); the file stays until :func:`sweep` finds its trial over."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)


def holder_gone(folder: Path, token: object) -> bool | None:
    """Whether the worker holding the lease ``folder/<token>`` is gone: True when the lease can be taken
    (it is let go at once), False when another holds it, None when there is no such lease (a claim made
    before leases, a damaged token): then its worker's liveness cannot be read from it.

    Never ask about a lease this process holds: where ``flock`` is emulated by POSIX record locks (NFS),
    a process's own locks do not conflict, and closing any descriptor of the file drops them all."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    try:  # opened for writing: NFS emulates flock by POSIX locks, whose exclusive kind needs write access
        descriptor = os.open(folder / token, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system that cannot lock: no word on its holder
        return None
    finally:
        os.close(descriptor)  # unlocks it too
    return True


def sweep(folder: Path, keep: set[str]) -> None:
    """Remove the lease files of claims that are over: those whose token is not in ``keep`` (the tokens of
    the RUNNING trials and those this process holds) and whose lease no one holds. Call with the claim
    lock held: a claim takes its lease under it, so none is taken meanwhile. The folder goes once empty."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for path in folder.iterdir():
        if path.name in keep or not _TOKEN.fullmatch(path.name) or path.is_symlink():
            continue
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()  # under its lock: a holder between our open and our lock would have kept it
        except OSError:  # held (BlockingIOError), or removed meanwhile
            pass
        finally:
            os.close(descriptor)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty
