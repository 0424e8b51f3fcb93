"""Where a study lives and how its workers take turns: Optuna storages and the trial-claiming locks.

Default storage: Optuna's file journal ``DIR/study.journal`` (``JournalStorage`` over
``JournalFileBackend``), safe for several processes of one machine. An RDB URL is used as given,
with heartbeats (a killed worker's trial is failed and retried); ``postgresql://`` is read as
``postgresql+psycopg://`` (psycopg 3). Workers claim trials under a :class:`FileLock` in DIR, or a
:class:`PostgresLock` (an advisory lock keyed by the study name) for PostgreSQL storages.

What the database's errors say (a URL that cannot be opened, a connection lost mid-study) is
:mod:`trainlab.tune.storage_messages`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages.journal import JournalFileBackend

from trainlab.atomic import write_bytes
from trainlab.errors import ConfigError, WriteError, folder_error
from trainlab.notices import warn
from trainlab.tune.storage_messages import masked_url, missing_driver, unopened_reason

if TYPE_CHECKING:
    from trainlab.tune.study import TuneSettings

JOURNAL_NAME = "study.journal"
LOCK_NAME = ".tune.lock"
STUDY_MARKER = ".tune.study"  # the name of the study whose run folders DIR holds
HEARTBEAT_INTERVAL_S = 20  # RDB storages: a worker records a heartbeat this often ...
HEARTBEAT_GRACE_S = 60  # ... and a RUNNING trial without one for this long is failed and retried


def storage_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` -> ``postgresql+psycopg://`` (psycopg 3), ``postgres+DRIVER://``
    -> ``postgresql+DRIVER://`` (SQLAlchemy 2 has no ``postgres`` dialect); others unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    if url.startswith("postgres+"):
        return "postgresql+" + url.removeprefix("postgres+")
    return url


_STORAGES: dict[tuple[str | None, Path], tuple[optuna.storages.BaseStorage, tuple[int, int] | None]] = {}


def open_storage(settings: TuneSettings) -> optuna.storages.BaseStorage:
    """The study's storage, opened once per process (workers racing to create the tables retry).

    A journal is opened again when its file is no longer the one opened (the out folder deleted or
    replaced between two tunes of one Python session): the open storage would read a file that is gone.
    """
    key = (settings.storage, settings.out)
    journal = None if settings.storage is not None else settings.out.absolute() / JOURNAL_NAME
    opened = _STORAGES.get(key)
    if opened is None or (journal is not None and _file_identity(journal) != opened[1]):
        storage = _open_storage(settings)
        _STORAGES[key] = opened = (storage, None if journal is None else _file_identity(journal))
    return opened[0]


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``; None when it does not exist."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def repair_journal(path: Path) -> int:
    """Move the journal's damaged lines aside, under the journal's lock (:func:`journal_lock`); returns how many.

    A line is damaged when it does not end in a newline (an append cut off by a crash or a full disk)
    or is not JSON. Optuna stops at the first one (the whole study unreadable), and the next append
    would glue its record onto a cut-off tail. The damaged lines are written to
    ``<journal>.damaged-<unix time>`` (nothing is thrown away) and the journal keeps the others, in order.
    """
    if not path.is_file():
        return 0
    lock = journal_lock(path)
    lock.acquire()
    try:
        data = path.read_bytes()
        kept, damaged = [], []
        for line in data.splitlines(keepends=True):
            try:
                ok = line.endswith(b"\n") and isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            (kept if ok else damaged).append(line)
        if damaged:
            aside = _aside(path)
            write_bytes(aside, b"".join(damaged))
            write_bytes(path, b"".join(kept))
    finally:
        lock.release()
    return len(damaged)


def journal_lock(journal: Path) -> FileLock:
    """The lock the journal's appends (Optuna's ``JournalFileBackend`` calls its ``acquire`` and ``release``)
    and :func:`repair_journal` take: a :class:`FileLock` on ``.<journal name>.flock`` beside the journal (not
    the journal itself, which :func:`repair_journal` replaces). The kernel drops it when its holder dies, so
    a worker killed while appending blocks no one; Optuna's default (a symlink) stays until 30 seconds have
    passed without the journal changing, holding every other worker of the study that long."""
    return FileLock(journal.with_name(f".{journal.name}.flock"))


class WholeRecordJournal(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` whose appends are whole or nothing: an append that fails (a full or
    read-only disk, an interrupt) before all its bytes are written cuts the journal back to its length
    before the append, under the journal's lock, and an ``OSError`` is raised as a :class:`WriteError`
    naming the journal (exit 5). An append whose bytes were all written and only its ``fsync`` failed (a
    full disk or quota on NFS often reports there) or was interrupted keeps its whole line, and still
    raises (the record "may not be on disk"): another worker may already have read that line and applied
    it, and cutting it would shift that worker's byte offsets into the next record.

    Optuna's own append leaves the part it wrote: the next append (another record of the same study,
    say the failed trial's) lands after that fragment, and reading the journal back then fails on the
    glued line (``JSONDecodeError``) in every worker. A failed append leaves whole records only here:
    Optuna's in-memory state, updated only from what it reads back, and the file agree, and the study can
    go on once the disk is writable. :func:`repair_journal` still mends a fragment that a killed writer left
    (no code runs after SIGKILL)."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
        # the lock Optuna's append takes (journal_lock): one acquire, as a FileLock is not reentrant
        self._lock.acquire()
        try:
            self._append(data)
        finally:
            self._lock.release()

    def _append(self, data: bytes) -> None:
        path = self._file_path
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _journal_error(path, exc) from None
        try:
            length = os.fstat(descriptor).st_size  # under the lock: no one else appends meanwhile
            try:
                length = _set_fragment_aside(descriptor, length, Path(path))
            except OSError as exc:
                raise _journal_error(path, exc) from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view):]
                os.fsync(descriptor)
            except BaseException as exc:
                # Only a partial record is cut: a whole one may already have been read and applied by
                # another worker (reads take no lock), and cutting it would shift that worker's byte
                # offsets into the next record. The file's size says what was written (an interrupt
                # may land between a write's return and its count being kept), as no one else appends.
                whole = _size(descriptor) >= length + len(data)
                if not whole:
                    with contextlib.suppress(OSError):  # cutting back needs no space; a fragment left is
                        os.ftruncate(descriptor, length)  # repaired when the study is next opened
                if isinstance(exc, OSError):
                    raise _journal_error(path, exc, whole=whole) from None
                raise
        finally:
            os.close(descriptor)


def _aside(path: Path) -> Path:
    """``<journal>.damaged-<unix time>``, or ``...-<unix time>-<n>`` where that is taken (two set aside within a
    second: the first one kept)."""
    stamp, number = int(time.time()), 1
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    return aside


def _set_fragment_aside(descriptor: int, length: int, path: Path) -> int:
    """The journal's length once a cut-off last line (no newline: a writer killed mid-append, which no code
    of its ran after) is moved to ``<journal>.damaged-<unix time>`` and cut off, under the journal's lock;
    ``length`` when the journal ends in a newline. Appended onto, that fragment would glue the next whole
    record into one unreadable line, which :func:`repair_journal` then moves aside with the record in it.
    Readers take no lock, but none has read past the fragment: Optuna's reader stops at a line without its
    newline, and takes up the record written in its place."""
    if length == 0 or os.pread(descriptor, 1, length - 1) == b"\n":
        return length
    start = length
    while start > 0:  # back to the byte after the last newline
        begin = max(0, start - 65536)
        newline = os.pread(descriptor, start - begin, begin).rfind(b"\n")
        if newline >= 0:
            start = begin + newline + 1
            break
        start = begin
    write_bytes(_aside(path), os.pread(descriptor, length - start, start))
    os.ftruncate(descriptor, start)
    return start


def _size(descriptor: int) -> int:
    """The open file's size; -1 when it cannot be read (then an append counts as partial)."""
    try:
        return os.fstat(descriptor).st_size
    except OSError:
        return -1


class JournalWriteError(WriteError):
    """An append to the study's journal failed (:class:`WholeRecordJournal`): the message names the journal
    and says the study can be continued."""


def _journal_error(path: str, exc: OSError, whole: bool = False) -> JournalWriteError:
    """``whole``: the record was written in full and only its flush (fsync) failed: it stays in the journal
    but may not be on disk."""
    record = "was written but may not be on disk" if whole else "was not written"
    return JournalWriteError(f"cannot write the study's journal {path}: {exc.strerror or exc}; the record "
                             f"{record} and the journal is intact: once the disk is writable, rerun the same "
                             "trainlab tune command to continue the study")


def _open_storage(settings: TuneSettings) -> optuna.storages.BaseStorage:
    if settings.storage is None:
        from optuna.storages.journal import JournalStorage

        try:
            settings.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise folder_error(f"cannot create study folder {settings.out}", exc) from None
        journal = settings.out.absolute() / JOURNAL_NAME
        if damaged := repair_journal(journal):
            warn(f"{journal}: {damaged} damaged line(s) (a write cut off by a crash or a full disk) "
                 f"moved to {journal.name}.damaged-*; the study goes on from its intact records")
        return JournalStorage(WholeRecordJournal(str(journal), lock_obj=journal_lock(journal)))
    url = storage_url(settings.storage)
    for attempt in range(10):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                                  grace_period=HEARTBEAT_GRACE_S,
                                                  heartbeat_stale_trial_callback=retry)
        except ImportError as exc:
            raise ConfigError(f"--storage {masked_url(settings.storage)}: {missing_driver(exc)}") from None
        except Exception as exc:  # SQLAlchemy's ArgumentError / OperationalError: a bad URL or no server
            if is_duplicate(exc) and attempt < 9:  # another worker is creating the tables right now
                time.sleep(0.2 * (attempt + 1))
                continue
            raise ConfigError(f"--storage {masked_url(settings.storage)}: {unopened_reason(settings.storage, exc)}"
                              ) from None
    raise AssertionError("unreachable")


def is_duplicate(exc: Exception) -> bool:
    return isinstance(exc, optuna.exceptions.DuplicatedStudyError) or type(exc).__name__ == "IntegrityError"


class FileLock:
    """An exclusive ``flock`` on a file: the processes of one machine (or one shared folder) take turns.
    Each acquire opens its own descriptor, so threads of one process take turns too."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: Any = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a")  # noqa: SIM115 - held open until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class PostgresLock:
    """``pg_advisory_lock`` keyed by the study name: workers on several machines take turns."""

    def __init__(self, url: str, study_name: str):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        self.engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        self.key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        import sqlalchemy

        with self.engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})


def claim_lock(settings: TuneSettings) -> FileLock | PostgresLock:
    if settings.storage is not None and storage_url(settings.storage).startswith("postgresql"):
        return PostgresLock(storage_url(settings.storage), settings.name)
    return FileLock(settings.out / LOCK_NAME)
