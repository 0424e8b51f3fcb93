"""``trainlab tune --jobs N``: the study's trials run in N spawned worker processes on one storage.

Each worker runs :func:`trainlab.tune.study.run_trials` (claims under the study's lock, so any
number of workers end with the study's total). A worker dies with the tune process
(``PR_SET_PDEATHSIG``). An interrupt is reported once, by the tune process: the workers are born
with SIGINT blocked and unblock it in their entry point (a Ctrl-C during a fresh interpreter's
imports would otherwise print a traceback per worker), claim no further trial once the tune
process was interrupted, and exit with the signal's code alone.

A spawned worker starts by importing the main module, i.e. runs the caller's script again; a
``tune(jobs=N)`` call that ``if __name__ == "__main__":`` does not guard runs there too and would start
workers of its own, which multiprocessing refuses with a traceback per worker. Such a worker exits at
once with :data:`RERAN_SCRIPT_EXIT` instead (:func:`exit_if_rerunning_the_script`) and the tune process
says why, once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from trainlab.errors import ConfigError, Interrupted, TrainingError, TrainlabError
from trainlab.registry import CodePolicy, current_policy, set_policy
from trainlab.tune.space import SearchSpace, load_space
from trainlab.tune.study import TuneSettings, continue_advice, run_trials

RERAN_SCRIPT_EXIT = 87  # a worker's exit code: importing the main script called tune(jobs=N) again
GUARD_ADVICE = ("guard the call with if __name__ == '__main__': (tune --jobs starts worker processes that "
                "import your script)")


def exit_if_rerunning_the_script(settings: TuneSettings) -> None:
    """In a spawned worker importing the caller's main script (multiprocessing's bootstrapping phase,
    the state in which it refuses to start processes): exit with :data:`RERAN_SCRIPT_EXIT`, silently,
    for the tune process to report. A no-op elsewhere, and for ``jobs`` 1, which starts no process."""
    import multiprocessing

    # _inheriting: multiprocessing's own test for that phase (spawn._check_not_importing_main)
    if settings.jobs > 1 and getattr(multiprocessing.current_process(), "_inheriting", False):
        sys.exit(RERAN_SCRIPT_EXIT)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM when the tune process dies, even by SIGKILL (no orphan workers);
    SIGTERM inside a trial records it as interrupted, elsewhere the next start fails it as stale."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _worker_main(settings: TuneSettings, deadline: float | None, stop: Any, policy: CodePolicy | None = None) -> None:
    """Entry point of a ``--jobs`` worker process: errors are one line and an exit code; an interrupt is
    the tune process's to report (one line), so here it is an exit code alone.

    The worker starts with SIGINT blocked (:func:`run_workers`): a Ctrl-C during its start-up (the
    imports of a fresh interpreter, seconds) stays pending and lands here, not in Python's start-up,
    which would print a traceback. ``policy``: the tune process's code policy (``--allow-code``, the base
    config's folder as the user's code), which a spawned interpreter does not inherit."""
    _die_with_parent()
    if policy is not None:
        set_policy(policy)
    try:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        space = load_space(settings.space)
        run_trials(settings, space, settings.base_config(), deadline, stop.is_set)
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    except Interrupted as exc:
        sys.exit(exc.exit_code)
    except TrainlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    if stop.is_set():
        sys.exit(128 + signal.SIGINT)


@contextlib.contextmanager
def _sigint_held() -> Iterator[list[int]]:
    """While starting the workers: SIGINT blocked in this thread, so the workers are born with it blocked
    (the mask is inherited; :func:`_worker_main` unblocks it), and only recorded here (another thread of
    this process may take it), so that a start is never cut off halfway (the worker would read a
    truncated start-up message and print a traceback). Yields the list of signals received meanwhile."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield received
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGINT, previous)


def run_workers(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any]) -> None:
    """``--jobs 1``: trials in this process; ``--jobs N``: N spawned worker processes on the same storage."""
    deadline = None if settings.timeout_s is None else time.time() + settings.timeout_s
    if settings.jobs == 1:
        run_trials(settings, space, base_raw, deadline)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    stop = context.Event()  # set on an interrupt: a worker claims no further trial
    workers = [context.Process(target=_worker_main, args=(settings, deadline, stop, current_policy()),
                               name=f"tune-worker-{i}") for i in range(settings.jobs)]
    try:
        with _sigint_held() as received:
            for worker in workers:
                worker.start()
        if received:
            raise KeyboardInterrupt
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        stop.set()
        for worker in workers:
            if worker.pid is not None:
                worker.join()
        raise Interrupted(f"SIGINT received: the trials it cut short are recorded as failed; "
                          f"{continue_advice(settings)}", signal.SIGINT) from None
    codes = [w.exitcode for w in workers]
    if RERAN_SCRIPT_EXIT in codes:
        script = getattr(sys.modules.get("__main__"), "__file__", None) or "your script"
        raise ConfigError(f"tune(jobs={settings.jobs}) ran again in its worker processes when they imported "
                          f"{script}: {GUARD_ADVICE}")
    if any(codes):
        raise TrainingError(f"tune workers exited with codes {codes}; see the lines above")
