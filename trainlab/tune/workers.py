"""``trainlab tune --jobs N``: the study's trials run in N spawned worker processes on one storage.

Each worker runs :func:`trainlab.tune.study.run_trials` (claims under the study's lock, so any
number of workers end with the study's total). A worker dies with the tune process
(``PR_SET_PDEATHSIG``). An interrupt is reported once, by the tune process: the workers are born
with SIGINT blocked and unblock it in their entry point (a Ctrl-C during a fresh interpreter's
imports would otherwise print a traceback per worker), claim no further trial once the tune
process was interrupted, and exit with the signal's code alone. SIGTERM is handled as a Ctrl-C, in the
tune process and in each worker, so the trials it cuts short are recorded as interrupted
(:func:`_signals_as_interrupt`). The tune process passes the signal it received (SIGINT or SIGTERM) on
to each worker: it may have reached the tune process alone (``kill -INT PID``, ``docker stop``). A
worker takes the first signal as the stop and only records later ones (a terminal's Ctrl-C reaches it
and then comes passed on: one stop, its trial recorded). So does the tune process (:func:`interrupt_once`):
a second Ctrl-C while it stops the workers would abandon the stop, and the results written then would show
the trials the workers were still recording as RUNNING. A worker stopped by a file it cannot write
(exit 5: a full or read-only disk) stops the others' claims. A worker killed outright (SIGKILL, the
out-of-memory killer) is one warning naming its trial, recorded as failed (or read back from its
finished run), and the study ends as the other workers end it.

A spawned worker starts by importing the main module, i.e. runs the caller's script again; a
``tune(jobs=N)`` call that ``if __name__ == "__main__":`` does not guard runs there too and would start
workers of its own, which multiprocessing refuses with a traceback per worker. Such a worker exits at
once with :data:`RERAN_SCRIPT_EXIT` instead (:func:`exit_if_rerunning_the_script`) and the tune process
says why, once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from optuna.trial import TrialState

from trainlab.code_policy import CodePolicy, current_policy
from trainlab.errors import (
    DISK_FULL_OR_READ_ONLY,
    EXIT_SYSTEM,
    ConfigError,
    Interrupted,
    TrainingError,
    TrainlabError,
    WriteError,
    cannot,
)
from trainlab.notices import shared_once, warn
from trainlab.runtime import threads_per_worker
from trainlab.sigterm import SignalInterrupt, outcome_decided
from trainlab.tune.claims import fail_dead_workers
from trainlab.tune.objective import ATTR_FAIL_REASON, ATTR_HOST, ATTR_PID
from trainlab.tune.recovery import ATTR_RECOVERED
from trainlab.tune.space import SearchSpace, load_space
from trainlab.tune.storage import claim_lock
from trainlab.tune.study import TuneSettings, continue_advice, run_trials, study_for
from trainlab.tune.worker_errors import relay, relayed
from trainlab.worker_process import start_worker

RERAN_SCRIPT_EXIT = 87  # a worker's exit code: importing the main script called tune(jobs=N) again
GUARD_ADVICE = ("guard the call with if __name__ == '__main__': (tune --jobs starts worker processes that "
                "import your script)")


def refuse_unimportable_main(jobs: int) -> None:
    """A ConfigError where the caller's main script is a pseudo-file (``python - < script.py``: ``<stdin>``):
    each spawned worker imports the main script first and would fail with a traceback of its own. A main
    without a file (a notebook, ``python -c``) is not imported, and works; a real path is left to spawn
    (relative to the start's folder, a zipapp's, a frozen app's: it finds or skips them)."""
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    if isinstance(file, str) and file.startswith("<") and not getattr(sys, "frozen", False):
        raise ConfigError(f"tune(jobs={jobs}) starts worker processes that import your main script, and "
                          f"{file!r} is no file they can import (a script read from standard input?): save it to a "
                          "file, with the call under if __name__ == '__main__':, or use jobs=1")


def exit_if_rerunning_the_script(settings: TuneSettings) -> None:
    """In a spawned worker importing the caller's main script (multiprocessing's bootstrapping phase,
    the state in which it refuses to start processes): exit with :data:`RERAN_SCRIPT_EXIT`, silently,
    for the tune process to report. A no-op elsewhere, and for ``jobs`` 1, which starts no process."""
    import multiprocessing

    # _inheriting: multiprocessing's own test for that phase (spawn._check_not_importing_main)
    if settings.jobs > 1 and getattr(multiprocessing.current_process(), "_inheriting", False):
        sys.exit(RERAN_SCRIPT_EXIT)


def _worker_main(settings: TuneSettings, deadline: float | None, stop: Any, policy: CodePolicy | None = None,
                 said: str | None = None, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Entry point of a ``--jobs`` worker process: an error is an exit code and its line, relayed for the
    tune process to say once (:mod:`trainlab.tune.worker_errors`); an interrupt is the tune process's to
    report (one line), so here it is an exit code alone. ``signals``: those that stop the tune process
    (:func:`_stopping_signals`): where it ignores SIGINT (``nohup``, a shell's ``cmd &``), so does the worker,
    and its runs then keep it ignored as the tune process's own would (a SIGINT to the process group stopped
    the workers of a study that went on, which then ended in exit 4).

    The worker starts with SIGINT blocked (:func:`run_workers`): a Ctrl-C during its start-up (the
    imports of a fresh interpreter, seconds) stays pending and lands here, not in Python's start-up,
    which would print a traceback. ``policy``: the tune process's code policy (``--allow-code``, the base
    config's folder as the user's code), which a spawned interpreter does not inherit; ``said``: the folder of the warnings the workers have said
    (``notices.shared_once``: each once by all of them)."""
    # SIGTERM when the tune process dies, even by SIGKILL: the trial it runs is recorded as interrupted (a
    # SIGTERM during the worker's start-up kills it before it claims one); a run's second signal is recorded,
    # not "stop now": the tune process passes on the signal that reached it, which a terminal's Ctrl-C (the
    # whole process group) or a scheduler's SIGTERM has sent here already
    start_worker(threads_per_worker(settings.jobs), policy, signal.SIGTERM, said)
    received: list[int] = []  # SIGINT or SIGTERM outside a run: the trial it cuts short is recorded
    if signal.SIGINT not in signals:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # before the unblock: one pending since the start is dropped
    try:
        # then SIG_IGN: a signal after the block (the one passed on, behind a terminal's Ctrl-C) would raise a
        # KeyboardInterrupt in the interpreter's teardown, a traceback under the tune process's one line
        with _signals_as_interrupt(signals, then=signal.SIG_IGN) as received:
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            space = load_space(settings.space)
            run_trials(settings, space, settings.base_config(), deadline, stop.is_set)
    except KeyboardInterrupt:
        sys.exit(128 + (received[-1] if received else signal.SIGINT))
    except Interrupted as exc:
        sys.exit(exc.exit_code)
    except TrainlabError as exc:
        relay(said, str(exc), exc.exit_code)
        sys.exit(exc.exit_code)
    except OSError as exc:  # outside a trial (its claim's lease on a full disk): one line, as the CLI says it
        written = exc.errno in DISK_FULL_OR_READ_ONLY
        relay(said, cannot(exc, "write" if written else "read or write"), EXIT_SYSTEM)
        sys.exit(EXIT_SYSTEM)  # the tune process adds how to go on
    if stop.is_set():
        sys.exit(128 + signal.SIGINT)


@contextlib.contextmanager
def _sigint_held(received: list[int], signals: tuple[int, ...]) -> Iterator[None]:
    """While starting the workers: SIGINT blocked in this thread, so the workers are born with it blocked
    (the mask is inherited; :func:`_worker_main` unblocks it), and ``signals`` (those that stop the tune
    process) only recorded here (another thread of this process may take them), so that a start is never
    cut off halfway (the worker would read a truncated start-up message and print a traceback). The signals
    received meanwhile are appended to ``received``."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in signals}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _FirstSignalStops:
    """The handler of :func:`_signals_as_interrupt`: each signal's number is appended to ``received``, and
    the first raises :class:`SignalInterrupt` (a KeyboardInterrupt naming it)."""

    def __init__(self, received: list[int]):
        self.received = received

    def __call__(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            raise SignalInterrupt(signum)


@contextlib.contextmanager
def _signals_as_interrupt(signals: tuple[int, ...] = (signal.SIGTERM,), then: Any = None) -> Iterator[list[int]]:
    """``signals`` handled as a Ctrl-C (SIGTERM instead of killing the process by its default action), in
    the tune process and in each worker; yields the numbers of those received, in order. The tune process:
    a SIGTERM to it alone (``kill PID``, ``docker stop``) would kill its workers with it
    (``PR_SET_PDEATHSIG``), their trials left RUNNING and no line saying what happened. A worker (SIGINT
    too): a signal outside its run's own handler (claiming a trial, loading its data) would leave the trial
    RUNNING until the next start. The first raises :class:`SignalInterrupt`, later ones are only recorded,
    so that the interrupt's clean-up (recording the trial, waiting for the workers, writing the results) is
    not cut short. Inside another such block for the same signals it adds nothing and yields that one's
    record: one first signal per process, however many blocks the clean-up spans. The previous handling
    (the CLI's :func:`trainlab.sigterm.command_signals`) comes back after, or ``then`` where given (a
    worker's ``SIG_IGN``: its exit code is decided)."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    enclosing = {signal.getsignal(sig) for sig in signals}
    if len(enclosing) == 1 and isinstance(outer := enclosing.pop(), _FirstSignalStops):
        yield outer.received
        return
    received: list[int] = []
    handler = _FirstSignalStops(received)  # one for all: one record, and an enclosed block finds it
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, handling in previous.items():
            signal.signal(sig, handling if then is None else then)


def _stopping_signals() -> tuple[int, ...]:
    """The signals that stop the tune process: SIGTERM, and SIGINT unless it is ignored (``nohup``, a
    shell's ``cmd &``: a Ctrl-C is not meant to reach it)."""
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):  # None: set outside Python (embedding)
        return (signal.SIGTERM,)
    return (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def interrupt_once(settings: TuneSettings) -> Iterator[None]:
    """With ``--jobs`` N > 1, around the workers' run and the results written when it is stopped: SIGINT
    and SIGTERM as in :func:`_signals_as_interrupt`, the first stops the study and later ones (a second
    Ctrl-C, a ``timeout -s INT`` that signals the process and then its group) are only recorded, so that the
    tune process still waits for every worker to record the trial it cut short and then writes results
    that agree with the study. A first signal outside the workers' pool (just before it, or once they have
    ended) is said as one inside it is, and once it has stopped the study a signal after the block is only
    recorded too (:func:`~trainlab.sigterm.outcome_decided`). A no-op for ``--jobs 1``, whose trials' own
    handler takes the signal."""
    if settings.jobs == 1:
        yield
        return
    with _signals_as_interrupt(_stopping_signals()) as received:
        try:
            yield
        except SignalInterrupt as exc:  # the pool says its own (Interrupted)
            raise _interrupted(settings, exc.signum) from None
        finally:
            if received:  # stopped by it: a signal after this block must not replace the line that says so
                outcome_decided()


def _interrupted(settings: TuneSettings, signum: int, errors: list[TrainlabError] | None = None) -> Interrupted:
    """The interrupt's one line; ``errors``: the workers' relayed ones (:mod:`~trainlab.tune.worker_errors`),
    the earliest said in it too, which no other line would say."""
    before = f"; before it, a tune worker had stopped: {errors[0]}" if errors else ""
    return Interrupted(f"{signal.Signals(signum).name} received: any trial it cut short is recorded as failed; "
                       f"{continue_advice(settings)}{before}", signum)


def _join(workers: list[Any], stop: Any, said: str | None = None) -> None:
    """Wait for every worker, in the order they end. One that ends with :data:`EXIT_SYSTEM` (a file it
    could not write: a full or read-only disk, which its trial is recorded as interrupted for; or the
    --storage database's connection lost) stops the others' claims (``stop``): their next trials would meet
    the same disk or database. Their running trials go on, so its relayed error (``said``: the pool's
    folder) is a warning now, not only the error once they have ended."""
    from multiprocessing.connection import wait

    pending = list(workers)
    while pending:
        ended = wait([worker.sentinel for worker in pending])
        for worker in [w for w in pending if w.sentinel in ended]:
            worker.join()
            pending.remove(worker)
            if worker.exitcode == EXIT_SYSTEM:
                stop.set()
                why = [str(e) for e in relayed(said) if getattr(e, "worker_pid", None) == worker.pid]
                if why and pending:
                    warn(f"tune worker pid {worker.pid} stopped: {why[0]}; the other workers finish their running "
                         "trials and claim no further one")


def _stop_workers(workers: list[Any], stop: Any, signum: int) -> None:
    """After an interrupt of the tune process: no worker claims a further trial (``stop``), and each is
    waited for. The signal (SIGINT or SIGTERM) may have reached this process alone (``kill -INT PID``), so
    it is passed on to every live worker, whose run then stops at its next step and records its trial as
    FAIL (interrupted). A worker that had it already (a terminal's Ctrl-C reaches the whole process group)
    only records the second (:func:`_worker_main`)."""
    stop.set()
    for worker in workers:
        if worker.pid is not None and worker.exitcode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(worker.pid, signum)
    for worker in workers:
        if worker.pid is not None:
            worker.join()


def _say_killed(settings: TuneSettings, killed: list[Any]) -> None:
    """One warning per worker killed by a signal (SIGKILL, the out-of-memory killer), naming the trial it
    ran and how that trial is recorded. A trial it left RUNNING (no other worker claimed after its death) is
    recorded first, as a claim would (:func:`~trainlab.tune.claims.fail_dead_workers`: failed, or read back
    from its ended run), so that the results agree with the study."""
    study = study_for(settings)
    with claim_lock(settings).held():
        fail_dead_workers(study, settings)
    trials, host = study.get_trials(deepcopy=False), socket.gethostname()
    for worker in killed:
        try:
            how = signal.Signals(-worker.exitcode).name
        except ValueError:
            how = f"signal {-worker.exitcode}"
        ran = [t for t in trials if t.user_attrs.get(ATTR_PID) == worker.pid and t.user_attrs.get(ATTR_HOST) == host]
        last = ran[-1] if ran else None
        if last is None or (last.state != TrialState.FAIL and ATTR_RECOVERED not in last.user_attrs):
            warn(f"tune worker pid {worker.pid} was killed ({how}) between trials; the other workers went on")
            continue
        recorded = (f"FAIL ({last.user_attrs.get(ATTR_FAIL_REASON)}) and does not count"
                    if last.state == TrialState.FAIL else f"{last.state.name}, read back from its finished run")
        warn(f"tune worker pid {worker.pid} was killed ({how}) while it ran trial {last.number}: the trial is "
             f"recorded as {recorded}; the other workers went on")


def _say_killed_before(settings: TuneSettings, workers: list[Any], signum: int) -> None:
    """On an interrupt, :func:`_say_killed` for the workers a signal other than the interrupt's killed (a
    SIGKILL before it), which the interrupt's line does not name; their warnings come before it. Reading the
    study may fail where the interrupt came from a failing disk or database: the interrupt's line is then
    what is said."""
    killed = [w for w in workers if w.exitcode is not None and w.exitcode < 0 and -w.exitcode != signum]
    if killed:
        with contextlib.suppress(Exception):
            _say_killed(settings, killed)


def trials_left(settings: TuneSettings) -> int:
    """``--trials`` less the study's COMPLETE and PRUNED trials: the most trials a run of the study can still
    start. A RUNNING trial is not subtracted: its worker may be dead, and a worker then runs one in its place."""
    states = [trial.state for trial in study_for(settings).get_trials(deepcopy=False)]
    return settings.trials - states.count(TrialState.COMPLETE) - states.count(TrialState.PRUNED)


class StopFlag:
    """The flag the tune process sets (an interrupt, a worker stopped by a full disk) and its workers read before
    each claim: one byte of shared memory (``RawValue``, as compare's pool holds its stop). Not a
    ``multiprocessing.Event``: its lock and semaphores are named ones that Python's resource tracker outlives a
    SIGKILLed tune process to remove, printing "There appear to be 5 leaked semaphore objects" on the user's
    terminal minutes later. Passed to the workers as their start arguments (spawn pickles it then)."""

    def __init__(self, context: Any) -> None:
        self._value = context.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


def run_workers(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any]) -> None:
    """``--jobs 1``: trials in this process; ``--jobs N``: N spawned worker processes on the same storage (no
    more than the trials left (:func:`trials_left`): a worker past the total would only start, import torch and
    find nothing to run; a resumed study with 2 of its 10 trials left starts 2, not ``--jobs 8``)."""
    deadline = None if settings.timeout_s is None else time.time() + settings.timeout_s
    if settings.jobs == 1:
        run_trials(settings, space, base_raw, deadline)
        return
    import multiprocessing

    refuse_unimportable_main(settings.jobs)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    stop = StopFlag(context)  # set on an interrupt: a worker claims no further trial
    signals = _stopping_signals()
    with shared_once() as said:
        workers = [context.Process(target=_worker_main, args=(settings, deadline, stop, current_policy(), said,
                                                              signals), name=f"tune-worker-{i}")
                   for i in range(min(settings.jobs, max(1, trials_left(settings))))]
        _run_pool(settings, workers, stop, said)


def _run_pool(settings: TuneSettings, workers: list[Any], stop: Any, said: str | None = None) -> None:
    """Start ``workers``, wait for them, stop them on an interrupt; their exit codes as one error. A worker
    killed by a signal (SIGKILL, out of memory) is one warning naming its trial (:func:`_say_killed`) and no
    error when another worker ended the study (exit 0): its trial is recorded and the others went on to the
    total; when every worker was killed, the study stopped short and that is the error."""
    # received: the signals that reached this process; inside the runner's interrupt_once, its record, so that
    # a later signal cuts short neither the workers' stop nor the results written after it
    signals = _stopping_signals()
    with _signals_as_interrupt(signals) as received:
        try:
            with _sigint_held(received, signals):
                for worker in workers:
                    worker.start()
            if received:
                raise KeyboardInterrupt
            _join(workers, stop, said)
        except KeyboardInterrupt:
            if not received:  # a KeyboardInterrupt of no signal here: recorded, so that one now only is
                received.append(signal.SIGINT)
            signum = received[0]
            _stop_workers(workers, stop, signum)
            _say_killed_before(settings, workers, signum)
            raise _interrupted(settings, signum, relayed(said)) from None
    codes = [w.exitcode for w in workers]
    killed = [w for w in workers if w.exitcode is not None and w.exitcode < 0]
    if killed:
        _say_killed(settings, killed)
        if 0 in codes:  # another worker ended the study: the killed one's trial is recorded, nothing is lost
            codes = [code for code in codes if code is None or code >= 0]
        elif all(code is not None and code < 0 for code in codes):
            raise TrainingError(f"every tune worker was killed (exit codes {codes}), so the study stopped short "
                                f"of its total; {continue_advice(settings)}")
    if RERAN_SCRIPT_EXIT in codes:
        script = getattr(sys.modules.get("__main__"), "__file__", None) or "your script"
        raise ConfigError(f"tune(jobs={settings.jobs}) ran again in its worker processes when they imported "
                          f"{script}: {GUARD_ADVICE}")
    errors = relayed(said)
    if EXIT_SYSTEM in codes:  # a full or read-only disk; with --storage, its database's connection lost too
        cause, mended = (("a file could not be written or the --storage database could not be reached",
                          "the disk is writable and the database reachable") if settings.storage is not None
                         else ("a file could not be written", "the disk is writable"))
        said_why = [str(error) for error in errors if error.exit_code == EXIT_SYSTEM]
        why = said_why[0] if said_why else f"tune workers exited with codes {codes}: {cause} (see the lines above)"
        raise WriteError(f"{why}; once {mended}, {continue_advice(settings)}")
    if any(codes):
        if errors:  # the first worker's error, said once for all of them
            raise errors[0]
        raise TrainingError(f"tune workers exited with codes {codes}; see the lines above")
