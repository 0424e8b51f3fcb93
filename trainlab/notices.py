"""trainlab's warnings: every one goes through :func:`warn`, which logs it on the ``"trainlab"`` logger.

A warning is something the user should know that does not stop the command (an empty validation split, a
checkpoint that could not be written, targets far from unit scale). Each is one line, and the CLI shows
each as ``warning: <message>`` on stderr, even with ``--quiet``.

It is a :mod:`logging` record (level WARNING, logger ``"trainlab"``), as the Hugging Face libraries do
it, so a Python user can act on it:

* silence: ``logging.getLogger("trainlab").setLevel(logging.ERROR)``;
* capture: add a handler to ``logging.getLogger("trainlab")`` (the ``warning:`` line on stderr stays,
  unless :data:`STDERR_LINES` is removed from the logger's handlers);
* send to the application's own handlers: ``logging.getLogger("trainlab").propagate = True``.

At import the logger gets one handler of trainlab's own, :data:`STDERR_LINES`, which writes exactly
``warning: <message>`` and a newline to ``sys.stderr`` as it is when the warning is emitted (so a
redirection, pytest's capsys or :func:`contextlib.redirect_stderr` sees it), and ``propagate`` is
False: a ``logging.basicConfig()`` of the application would otherwise print each warning a second
time, in its own format. A logger level the user set before this import is kept; none set: WARNING
(not the root logger's, so an application that logs only errors still sees trainlab's warnings).

``import trainlab`` imports this module, so what a user sets on the logger after it stands. Worker
processes write their warnings to their own stderr, the parent's: a forked one (``compare --jobs`` on a
CPU) inherits the logger as the parent had set it, a spawned one (``compare --jobs`` with CUDA, ``tune
--jobs``) imports this module afresh and starts with the defaults.

"Once": work done ahead of the run's own (a read of the data to count its splits for ``--target``, the
time budget's probe build) runs under :func:`held_back`, so the work that follows says each thing once;
the runs of one comparison, which read the same data and build alike, run under :func:`each_once`; the
worker processes of one pool (``compare --jobs``, ``tune --jobs``) share a folder of what was said
(:func:`shared_once`), so that each thing is said once by all of them together, as in one process.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

LOGGER_NAME = "trainlab"

# the messages held back by the innermost held_back() in this context; None: none is
_HELD_BACK: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("trainlab_notices_held_back",
                                                                              default=None)


# the warnings given so far inside the innermost each_once() in this context; None: outside any
_SAID: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("trainlab_notices_said", default=None)

# in a pool's worker process: the folder of the warnings any process of the pool has said (shared_once)
_SAID_FOLDER: str | None = None

# inside evaluating(): a trained run rebuilt to evaluate or predict with, which trains nothing
_EVALUATING: contextvars.ContextVar[bool] = contextvars.ContextVar("trainlab_notices_evaluating", default=False)

# inside evaluating_split(): the one split ('val') an evaluation scores; None: every split matters
_EVALUATED_SPLIT: contextvars.ContextVar[str | None] = contextvars.ContextVar("trainlab_notices_evaluated_split",
                                                                             default=None)


class StderrLines(logging.Handler):
    """Writes each record as ``<level>: <message>`` + newline (``warning: ...``) on the ``sys.stderr`` of
    the moment it is emitted: looked up at each record, never kept, so that whatever stands in for
    stderr then (a redirection, a capture) receives it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            if stream is None:  # pythonw, or stderr closed at teardown: nowhere to say it
                return
            stream.write(f"{record.levelname.lower()}: {record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001 -- logging's own policy: a handler never raises into the caller
            self.handleError(record)


def _configured_logger() -> tuple[logging.Logger, StderrLines]:
    """The ``"trainlab"`` logger with its one :class:`StderrLines` (made once: a reload adds no second)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in logger.handlers:
        if type(handler).__name__ == StderrLines.__name__:  # the class of an earlier import of this module
            return logger, handler  # type: ignore[return-value]
    handler = StderrLines()
    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    return logger, handler


LOGGER, STDERR_LINES = _configured_logger()


def warn(message: str) -> None:
    """Log ``message`` (one line, without the ``warning:`` prefix, which the handler adds) on the
    ``"trainlab"`` logger at level WARNING, unless :func:`held_back`."""
    held = _HELD_BACK.get()
    if held is not None:
        held.append(message)
        return
    said = _SAID.get()
    if said is not None:
        if message in said:
            return
        said.add(message)
        if _SAID_FOLDER is not None and not _claim(_SAID_FOLDER, message):
            return  # another worker of the pool said it
    LOGGER.warning(message, stacklevel=2)  # the record names the line that warned


def training_notices() -> bool:
    """Whether :func:`warn_training` would speak: outside :func:`evaluating` (a check that only feeds such a
    warning can be skipped inside)."""
    return not _EVALUATING.get()


def warn_training(message: str) -> None:
    """:func:`warn` for what matters only to training (an augmentation that shifts small images' content out of
    the frame): not said inside :func:`evaluating`, where the run is rebuilt to evaluate or predict, trains
    nothing, and its training said it already."""
    if training_notices():
        warn(message)


@contextlib.contextmanager
def evaluating() -> Iterator[None]:
    """Inside: a trained run rebuilt to evaluate or predict with (:func:`warn_training` says nothing)."""
    token = _EVALUATING.set(True)
    try:
        yield
    finally:
        _EVALUATING.reset(token)


@contextlib.contextmanager
def evaluating_split(split: str) -> Iterator[None]:
    """Inside: an evaluation of ``split`` alone (``trainlab eval --split val``), which :func:`warn_of_split`
    spares the warnings about the rows of the other splits (a test split without some class), whose metrics it
    does not compute."""
    token = _EVALUATED_SPLIT.set(split)
    try:
        yield
    finally:
        _EVALUATED_SPLIT.reset(token)


def warn_of_split(split: str, message: str) -> None:
    """:func:`warn` for what concerns the rows of one ``split`` alone: not said inside
    :func:`evaluating_split` of another split."""
    if _EVALUATED_SPLIT.get() in (None, split):
        warn(message)


def note(message: str) -> None:
    """Print ``message`` on stderr as it is: a note (what was kept, what is resumed), not a warning; the
    caller decides whether ``--quiet`` hides it."""
    print(message, file=sys.stderr)


@contextlib.contextmanager
def each_once() -> Iterator[None]:
    """Inside, a warning whose text was given already (in this context, since the outermost ``each_once``)
    is not given again: the runs of one comparison read the same data and would each repeat its lines."""
    outer = _SAID.get()
    token = _SAID.set(set() if outer is None else outer)
    try:
        yield
    finally:
        _SAID.reset(token)


def each_once_from_now(shared: str | None = None) -> None:
    """:func:`each_once` for the rest of this thread's work (a comparison's worker process, which runs
    nothing else); ``shared``: the pool's folder from :func:`shared_once`, where a warning any process of
    the pool has said is not said again."""
    global _SAID_FOLDER
    if _SAID.get() is None:
        _SAID.set(set())
    _SAID_FOLDER = shared


def _claim(folder: str, message: str) -> bool:
    """Whether this process is the first of those sharing ``folder`` to say ``message``: the one whose
    exclusive create of the file named by the message's SHA-1 succeeds (atomic across processes). A folder
    that cannot be written (gone, full): True, the warning said rather than lost."""
    name = os.path.join(folder, hashlib.sha1(message.encode()).hexdigest())
    try:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


@contextlib.contextmanager
def shared_once() -> Iterator[str | None]:
    """A temporary folder for the worker processes this process starts (pass it to their
    :func:`each_once_from_now`): a warning is said once by all of them together, and not at all where this
    process has said it already inside :func:`each_once`. Removed on exit. None where no folder can be made (a
    full or read-only temporary folder): each worker then says each warning once on its own, as before."""
    try:
        holder = tempfile.TemporaryDirectory(prefix="trainlab-said-", ignore_cleanup_errors=True)
    except OSError:
        yield None
        return
    with holder as folder:
        for message in _SAID.get() or ():
            _claim(folder, message)
        yield folder


@contextlib.contextmanager
def held_back() -> Iterator[list[str]]:
    """No warning inside: for work ahead of the work that will give the same warnings (a read of the data
    before the run's loading, the time budget's probe build). Yields the list of the messages held back,
    in order, for a caller that gives them after all (the probe failed: its warnings may say why)."""
    held: list[str] = []
    token = _HELD_BACK.set(held)
    try:
        yield held
    finally:
        _HELD_BACK.reset(token)
