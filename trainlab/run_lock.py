"""The single-writer lock of a run folder (``.lock``), and whether a process is alive."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from trainlab.errors import RunDirError, folder_error

LOCK = ".lock"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (signal 0; one we may not signal counts as alive). A
    zombie (dead, not yet reaped by its parent: a killed ``tune --jobs`` worker its parent has not joined
    yet) is not alive: it holds no lock and finishes no trial."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return _state(pid) not in ("Z", "X")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (which may hold spaces and parentheses): the state
    letter first, the start time 20th; None where unreadable (no such process, no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        return text[text.rindex(")") + 2:].split()
    except (OSError, ValueError):
        return None


def _state(pid: int) -> str | None:
    """The process state letter (R, S, D, Z, ...); None where unreadable."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (/proc/<pid>/stat, field 22); None where
    unreadable (no such process, no /proc). With the pid it names one process: a pid is reused, by a
    later process or by a fresh PID namespace whose first process is always pid 1."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def process_started_at(pid: int) -> float | None:
    """:func:`process_start` as a Unix time (boot time from /proc/stat plus the ticks); None where unreadable."""
    ticks = process_start(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return None


def writer_gone(pid: int, written: float) -> bool:
    """Whether the process ``pid`` that named a file or folder it last changed at ``written`` (a Unix time)
    is gone: no process has that pid, or the one that has it started after the change (the pid was
    reused, e.g. this process, pid 1 of a container, after the earlier pid 1 was killed). One second of
    slack covers the boot time's whole-second precision."""
    if not pid_alive(pid):
        return True
    started = process_started_at(pid)
    return started is not None and written < started - 1.0


def same_process(pid: int, start: int | None) -> bool:
    """Whether ``pid`` is alive and, when ``start`` (its :func:`process_start`) was recorded, the same process."""
    if not pid_alive(pid):
        return False
    return start is None or process_start(pid) in (None, start)


def holder(folder: Path) -> str | None:
    """Who holds ``folder``'s lock now (``"process N"``), or None: no lock file, no PID in it, or its process
    gone (:func:`writer_gone`: a killed run leaves its file). Read without locking, so that a run taking
    the lock at that moment is never refused for it."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO there must not block
    except OSError:
        return None
    try:
        text, written = os.read(fd, 32).decode().strip(), os.fstat(fd).st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    if not text.isdigit() or writer_gone(int(text), written):
        return None
    return f"process {int(text)}"


class RunLock:
    """``.lock``: an ``fcntl.flock`` held on the file for the whole run (or comparison: ``what`` names the
    folder in messages), plus the owner's PID for messages.

    The kernel drops the flock when its process dies, so a lock left by a killed run is free without
    anyone deciding it is stale; taking it is one atomic system call, so of two processes racing for
    it exactly one wins. The file is unlinked on release while still locked; a process that opened
    the old file before the unlink sees (by inode) that it locked a file no longer at the path, and
    retries.
    """

    def __init__(self, folder: Path, what: str = "run folder"):
        self.path, self.what = folder / LOCK, what
        self.held = False
        self._fd: int | None = None

    def _owner(self, fd: int) -> str:
        with contextlib.suppress(OSError, ValueError):
            text = os.pread(fd, 32, 0).decode().strip()
            if text.isdigit():
                return f"process {int(text)}"
        return "another process"

    def acquire(self, wait: bool = False) -> None:
        """Take the lock; held by another process: RunDirError, or with ``wait`` block until it is free."""
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except IsADirectoryError:
                raise RunDirError(f"lock {self.path} is a folder, not a lock file; remove it if no trainlab "
                                  f"process uses this {self.what}") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise RunDirError(f"lock {self.path} is a symbolic link; remove it") from None
                raise folder_error(f"cannot open the lock {self.path}", exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                owner = self._owner(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirError(
                        f"{self.what} {self.path.parent} is in use by {owner} (lock {self.path}); "
                        "wait for it to finish, or, for a new run, choose another --out") from None
                raise folder_error(f"cannot lock {self.path}", exc) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # locked a file its owner unlinked on release: retry on the new one
                os.close(fd)
                continue
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise RunDirError(f"lock {self.path} is not a regular file; remove it")
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
            except OSError as exc:  # a full disk fails the PID's write: name the file (the CLI's "cannot write (...)")
                os.close(fd)  # the flock goes with it; the empty file is a free lock, as a killed run leaves one
                raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from None
            self._fd, self.held = fd, True
            return
        raise RunDirError(f"could not take the lock {self.path}")

    def moved_to(self, folder: Path) -> None:
        """The folder was renamed (the lock's open file moves with it)."""
        self.path = folder / LOCK

    def release(self) -> None:
        """Unlock. The file is removed where it can be: a folder that became unwritable keeps it, unlocked
        (``flock`` is the lock, not the file: the next run takes it), and the error that stopped the run is
        the one said, not this unlink's (it named ``.lock`` where metrics.jsonl could not be written)."""
        if self.held and self._fd is not None:
            try:
                with contextlib.suppress(OSError):
                    if os.fstat(self._fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino:
                        self.path.unlink()  # while still locked: see the class docstring
            finally:
                os.close(self._fd)
                self._fd, self.held = None, False
