"""A comparison's runs in worker processes (``--jobs N``), and what a worker's death costs.

Each worker is pinned to ``cores // N`` torch threads and the parent's code policy (:func:`_pin_worker`)
and runs :func:`trainlab.compare.runner.execute`, telling the parent through shared run slots which run
it has (:func:`_execute_in_slot`). A worker that dies (SIGKILL: the out-of-memory killer, a user) breaks
the ProcessPoolExecutor; the run it had is recorded as not run when a signal killed the worker, the machine's
failure ("worker died: killed by SIGKILL, perhaps out of memory"; the comparison exits 5 and the next
invocation trains it), as failed when the worker exited with a code of its own (:func:`death_outcome`), and
the other unfinished runs go on in a new pool (:func:`run_in_pool`).

On Ctrl-C or SIGTERM the parent first sets the pool's shared stop value (the signal's number), then sends
each worker SIGTERM: a worker checks that value before each run it takes from the queue, so no run starts
after the signal, even where the SIGTERM itself went to a run's own handler as that run finished
(:mod:`trainlab.compare.absorbed_signals`), or reached a worker stopped meanwhile (SIGSTOP) only later.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from trainlab.atomic import write_json
from trainlab.code_policy import CodePolicy, current_policy
from trainlab.compare import runner
from trainlab.compare.machine_failure import RECORD_KEY, WORKER_DIED, stopped_again, stopped_so_before
from trainlab.compare.run_actions import ERROR_FILE, RunPlan, run_action
from trainlab.compare.runner import request_stop
from trainlab.config_fields import counted
from trainlab.notices import shared_once
from trainlab.records import read_record_object
from trainlab.signal_mask import release_stop_signals, stop_signals_held
from trainlab.worker_process import start_worker

_run_slots: tuple[Any, Any] | None = None  # in a pool worker: the parent's run slots (_execute_in_slot)
_pool_stop: Any = None  # in a pool worker: the pool's shared stop value (0, or the signal that stopped it)


def _pin_worker(threads: int, policy: CodePolicy | None = None, slots: tuple[Any, Any] | None = None,
                said: str | None = None, stop: Any = None) -> None:
    """Worker initializer: torch threads, the parent's code policy (a spawned worker starts without it:
    the user's module beside a base config, ``--allow-code``), the parent's run slots
    (:func:`_execute_in_slot`), the pool's folder of warnings said (each once by all the workers), the pool's
    stop value (``stop``), no KeyboardInterrupt between runs, die with the parent.

    On Ctrl-C the parent sets ``stop`` and sends each worker SIGTERM: during a run, the run's own handler
    (trainlab.callbacks.signal_stop) checkpoints and stops it (or, as the run finishes, lets it complete:
    :func:`runner.execute` sees that signal all the same); between runs it only sets ``_stop_requested``. A
    run already queued to this worker is not started, whichever of them the worker sees first.
    """
    global _run_slots, _pool_stop
    start_worker(threads, policy, signal.SIGKILL, said)  # a SIGKILLed comparison takes its workers: no stale lock
    _run_slots, _pool_stop = slots, stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, request_stop)
    release_stop_signals()  # held while the parent forked this worker (trainlab.signal_mask)


def _execute_in_slot(index: int, task: str, strategy: str, seed: int, raw: dict[str, Any], path: str,
                     action: str) -> dict[str, Any]:
    """:func:`execute` in a pool worker, telling the parent through its shared run slots (two arrays
    indexed like the pool's runs: ``pids``, ``starts``) which worker runs which run: ``pids[index]`` is the
    worker's pid while the run is in progress and minus it once :func:`execute` returned, ``starts[index]``
    the run's start (``time.time()``). When a worker dies the parent fails the run whose slot holds its pid.
    Once the pool's stop value is set, the run is not started (:func:`runner.not_started`)."""
    if _pool_stop is not None and _pool_stop.value:
        return runner.not_started(_pool_stop.value)
    pids, starts = _run_slots
    starts[index] = time.time()
    pids[index] = os.getpid()
    try:
        return runner.execute(task, strategy, seed, raw, path, action)  # looked up at call time, as run_plans does
    finally:
        pids[index] = -os.getpid()


def _record_death(plan: RunPlan, reason: str, machine: bool = False,
                  identity: dict[str, str | None] | None = None) -> None:
    """The run's ``ERROR_FILE`` for a worker that died under it (or could not send its outcome), so the
    leaderboard lists it: under ``not_run`` where ``machine`` (:data:`RECORD_KEY`: a worker killed by a
    signal, which the next invocation trains again), else as a failure (not tried again while ``identity``,
    the config hash and data fingerprint, stay the same; none: tried again). Written once no worker writes
    the folder any more."""
    try:
        plan.path.mkdir(parents=True, exist_ok=True)
        write_json(plan.path / ERROR_FILE, {"reason": reason, **(identity or {"config_hash": None}),
                                            RECORD_KEY: machine})
    except OSError:
        pass


def earlier_deaths(todo: list[tuple[RunPlan, str]]) -> dict[str, dict[str, Any]]:
    """The error records this invocation's runs' folders hold from the invocation before, by run label, for
    :func:`death_outcome`: read before any worker removes them."""
    found = {plan.label: read_record_object(plan.path / ERROR_FILE) for plan, _ in todo}
    return {label: record for label, record in found.items() if record is not None}


def death_outcome(plan: RunPlan, exitcode: int, started: float,
                  earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """The outcome of the run whose worker died under it with ``exitcode`` (multiprocessing's: -N for signal
    N; ``started``: the run's ``time.time()`` start), recorded in its folder (:func:`_record_death`).

    A worker killed by a signal (SIGKILL from the out-of-memory killer or a user, SIGSEGV, ...) was stopped
    from outside the run's Python code, which turns its own failures into a failed outcome (runner.execute):
    the machine's, as a MemoryError is, so the run is ``not run``, left out of the statistics, the comparison
    exits 5 and the next invocation trains it again. Killed so again where ``earlier`` (the invocation
    before's record, :func:`earlier_deaths`) says the same config on the same data was, it is the run's
    failure, as a MemoryError twice is (machine_failure.out_of_memory_again): a config the out-of-memory
    killer stops every time is not retrained, and its strategy not ranked on the seeds that fit, on every
    invocation. A worker that exited with a code of its own (``os._exit(3)`` in the run's code) is the
    run's failure."""
    reason = f"{WORKER_DIED}: {_how_it_died(exitcode)}"
    machine, identity = exitcode < 0, runner.error_identity(plan.raw)
    if machine and stopped_so_before(earlier, identity, WORKER_DIED):
        machine, reason = False, stopped_again(reason, "this config may need more memory than the machine has; "
                                               "make strategy.batch_size or the model smaller, or lower --jobs (or "
                                               "delete the run's folder to try it again)")
    # a worker that exited with a code of its own: recorded without the config's identity, so tried again next
    # time (its death need not recur)
    _record_death(plan, reason, machine, identity if exitcode < 0 else None)
    return {"status": "not run" if machine else "failed", "reason": reason, "seconds": time.time() - started}


IDLE_GRACE_S = 2.0  # a worker out of any run still alive this long into the pool's shutdown is stuck: killed
BREAKS_TO_FAIL = 2  # a run in progress at this many pool breaks that no dead worker explains is failed


def run_in_pool(todo, jobs, threads, tally, display, finish) -> None:
    """Run ``todo`` in ``jobs`` worker processes; a worker that dies costs the run it had, not the others.

    A worker's death (SIGKILL from the out-of-memory killer or a user, a crash) breaks a
    ProcessPoolExecutor: every unfinished run's future fails, and the executor stops the other workers
    (SIGTERM: their runs checkpoint). The run the dead worker had is recorded as not run ("worker died:
    killed by SIGKILL, perhaps out of memory"; as failed where the worker exited with a code of its own:
    :func:`death_outcome`); every other unfinished run goes to a new pool, with what
    its folder says it needs now (:func:`_still_to_run`: a stopped run resumes from its checkpoint). A
    break that no dead worker's run explains counts against each run then in progress, and a run in
    progress at :data:`BREAKS_TO_FAIL` of them is failed, so that no run can restart the pool forever.
    """
    import multiprocessing

    import torch

    # fork: the workers inherit the imported modules (no 5-10 s torch import per worker);
    # every worker is started on the first submit, before the display's refresh thread exists.
    # Where CUDA is present, spawn: a process that has touched CUDA (torch.cuda.is_available() is enough)
    # cannot fork a worker that uses it again.
    context = multiprocessing.get_context("spawn" if torch.cuda.is_available() else "fork")
    breaks_seen: dict[str, int] = {}  # run label -> pool breaks it was in progress at, no dead worker its own
    deaths_before = earlier_deaths(todo)
    fingerprints: dict[str, str | None] = {}
    with shared_once() as said:
        while todo:
            left = _pool_round(todo, jobs, threads, said, context, tally, display, finish, breaks_seen,
                               deaths_before)
            todo = _still_to_run(left, fingerprints, finish)
            if todo:
                display.note(f"starting new workers for the {counted(len(todo), 'unfinished run')} "
                             "(a stopped run resumes from its checkpoint)")


@dataclass
class _Stopped:
    """How a pool's shutdown went: the workers :func:`_stop_pool` had to kill, and whether Ctrl-C/SIGTERM
    came meanwhile."""

    killed: set[int]
    interrupted: bool


def _pool_round(todo, jobs, threads, said, context, tally, display, finish, breaks_seen,
                deaths_before) -> list[RunPlan]:
    """Run ``todo`` in one pool; returns the runs left to run in a new pool when a worker died, else [].
    ``said``: the folder of the warnings said (notices.shared_once, one for every pool of the comparison);
    ``breaks_seen``: per run label, the breaks no dead worker's run explained that found it unfinished
    (and in progress, where any run was); ``deaths_before``: :func:`earlier_deaths`."""
    pids = context.RawArray("q", len(todo))  # the run slots: see _execute_in_slot
    starts = context.RawArray("d", len(todo))
    stop = context.RawValue("i", 0)  # set to the signal's number on an interrupt: no worker starts a run
    # a forking pool starts all its workers at once: no more of them than runs (--jobs 8 for 2 runs starts 2)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context, initializer=_pin_worker,
                               initargs=(threads, current_policy(), (pids, starts), said, stop))
    futures: dict[Future, int] = {}
    ended: set[int] = set()  # indices into todo whose outcome went to finish()
    workers: list[Any] = []
    interrupt: KeyboardInterrupt | None = None
    try:
        broken = _run_round(pool, todo, jobs, tally, display, finish, futures, ended, workers)
    except KeyboardInterrupt as exc:
        interrupt = exc
        stop.value = getattr(exc, "signum", signal.SIGINT)  # before the SIGTERMs: a worker may take its next run
        display.note("interrupted: waiting for the runs in progress to checkpoint")
        for worker in workers or _workers(pool):
            try:
                os.kill(worker.pid, signal.SIGTERM)
            except (ProcessLookupError, TypeError):
                pass
    finally:
        stopped = _stop_pool(pool, workers or _workers(pool), pids, stop)
    tally.running = 0
    if interrupt is not None:
        _finish_late(todo, futures, ended, finish)
        raise interrupt
    left = _settle_break(todo, futures, ended, workers, stopped, pids, starts, display, finish,
                         breaks_seen, deaths_before) if broken else []
    if stopped.interrupted:
        _finish_late(todo, futures, ended, finish)
        raise KeyboardInterrupt
    return left


def _finish_late(todo, futures, ended, finish) -> None:
    """After an interrupt, once the pool is down: hand ``finish`` the outcomes that came in while the runs in
    progress stopped (a run that was finishing completed; the others checkpointed, or were not started)."""
    for future, index in futures.items():
        if index in ended or not future.done() or future.cancelled():
            continue
        if not isinstance(future.exception(), BrokenProcessPool):
            ended.add(index)
            finish(todo[index][0], _outcome(future, todo[index][0]))


def _run_round(pool, todo, jobs, tally, display, finish, futures, ended, workers) -> bool:
    """Submit ``todo`` to ``pool`` and hand each outcome to ``finish`` as it comes (``futures``: future ->
    index into ``todo``; ``ended``: the indices finished; ``workers``: filled with the pool's processes);
    True when the pool broke (a worker died)."""
    broken = False
    try:
        with stop_signals_held():  # the submits fork the workers: none runs this process's handlers
            for index, (plan, action) in enumerate(todo):
                future = pool.submit(_execute_in_slot, index, plan.task, plan.strategy, plan.seed, plan.raw,
                                     str(plan.path), action)
                futures[future] = index
    except BrokenProcessPool:  # a worker died before every run was queued
        broken = True
    workers.extend(_workers(pool))
    with display:
        pending = set(futures)
        while pending and not broken:
            tally.running = min(jobs, len(pending))
            display.refresh()
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            tally.running = min(jobs, len(pending))
            for future in finished:
                if isinstance(future.exception(), BrokenProcessPool):
                    broken = True  # the others' futures fail too: sorted out once the pool is down
                else:
                    ended.add(futures[future])
                    finish(todo[futures[future]][0], _outcome(future, todo[futures[future]][0]))
    return broken


def _settle_break(todo, futures, ended, workers, stopped, pids, starts, display, finish,
                  breaks_seen, deaths_before) -> list[RunPlan]:
    """After a broken pool is down: the outcomes that came in with the break, the dead worker's run failed
    (or, where no dead worker had a run, a break counted against each :func:`suspects` run, failed at
    :data:`BREAKS_TO_FAIL`); returns the runs left for a new pool."""
    for future, index in futures.items():  # outcomes that came in with the break
        if index not in ended and future.done() and not isinstance(future.exception(), BrokenProcessPool):
            ended.add(index)
            finish(todo[index][0], _outcome(future, todo[index][0]))
    unfinished = [index for index in range(len(todo)) if index not in ended]
    dead = {w.pid: w.exitcode for w in workers if w.exitcode not in (0, None) and w.pid not in stopped.killed}
    culprits = [index for index in unfinished if pids[index] > 0 and pids[index] in dead]
    failed: list[int] = []
    if culprits:
        for index in culprits:
            plan, how = todo[index][0], _how_it_died(dead[pids[index]])
            display.note(f"worker process {pids[index]} died ({how}) while running {plan.label}")
            failed.append(index)  # not run or failed: not tried again in this invocation
            finish(plan, death_outcome(plan, dead[pids[index]], starts[index], deaths_before.get(plan.label)))
    else:  # no dead worker had a run: blame each run in progress (or, if none was, every run not yet started)
        what = ", ".join(f"worker process {pid} died ({_how_it_died(code)})" for pid, code in dead.items()) or \
            "a worker process ended"
        display.note(f"{what} between runs: the worker pool broke")
        for index in suspects(unfinished, pids):
            plan = todo[index][0]
            breaks_seen[plan.label] = breaks_seen.get(plan.label, 0) + 1
            if breaks_seen[plan.label] >= BREAKS_TO_FAIL:
                failed.append(index)
                reason = (f"worker died: the worker pool broke {BREAKS_TO_FAIL} times with this run unfinished, "
                          f"the last time: {what}")
                _record_death(plan, reason)
                finish(plan, {"status": "failed", "reason": reason,
                              "seconds": time.time() - starts[index] if starts[index] else 0.0})
    return [todo[index][0] for index in unfinished if index not in failed]


def suspects(unfinished: list[int], pids: Any) -> list[int]:
    """The runs a pool break no dead worker's run explains is counted against: those in progress
    (``pids[index] > 0``), or, when none was, those not yet started (``0``). A run whose :func:`execute`
    returned (``< 0``: its result lost in the break) is none: its folder says how it ended when it is
    looked at again."""
    return [index for index in unfinished if pids[index] > 0] or [index for index in unfinished if pids[index] == 0]


def _workers(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (multiprocessing.Process), for their pids and exit codes."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _outcome(future: Future, plan: RunPlan) -> dict[str, Any]:
    """The outcome a worker sent back, or a failed one when it sent an exception instead (execute never
    raises: e.g. an outcome that could not be pickled)."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - one failed run must never stop the others
        reason = f"{type(exc).__name__}: {exc}"
        _record_death(plan, reason)
        return {"status": "failed", "reason": reason}


def _how_it_died(exitcode: int) -> str:
    """A worker's end from its exit code (multiprocessing: -N for signal N)."""
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    return f"killed by {name}" + (", perhaps out of memory" if -exitcode == signal.SIGKILL else "")


def _stop_pool(pool: ProcessPoolExecutor, workers: list[Any], pids: Any, stop: Any = None) -> _Stopped:
    """Shut the pool down and wait until every worker has exited; the runs in progress end their own way.

    A worker that is in no run (``pids``, :func:`_execute_in_slot`) and still alive after
    :data:`IDLE_GRACE_S` is SIGKILLed: after a worker's death the others can wait forever for the task
    queue's lock, which the dead one may have held, and they only take note of the executor's SIGTERM
    (:func:`_pin_worker`), so the executor's shutdown would hang. Such a worker holds no run: nothing is
    lost. A Ctrl-C/SIGTERM meanwhile is noted (``interrupted``), not raised: the workers must be gone first;
    it sets the pool's ``stop`` value, so that no worker starts a run still queued to it.
    """
    from multiprocessing.connection import wait as wait_for

    closer = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True)
    closer.start()
    stopped = _Stopped(set(), False)
    idle_since: dict[int, float] = {}
    while closer.is_alive():
        try:
            closer.join(0.1)
            running = {pid for pid in pids if pid > 0}
            alive = [w for w in workers if w.pid is not None and not wait_for([w.sentinel], 0)]
            now = time.monotonic()
            for worker in alive:
                if worker.pid in running or worker.pid in stopped.killed:
                    idle_since.pop(worker.pid, None)
                elif now - idle_since.setdefault(worker.pid, now) > IDLE_GRACE_S:
                    try:
                        os.kill(worker.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    stopped.killed.add(worker.pid)
        except KeyboardInterrupt as exc:
            stopped.interrupted = True
            if stop is not None and not stop.value:
                stop.value = getattr(exc, "signum", signal.SIGINT)
    return stopped


def _still_to_run(plans: list[RunPlan], fingerprints: dict[str, str | None], finish) -> list[tuple[RunPlan, str]]:
    """What each run a broken pool left unfinished needs now, read from its folder (:func:`run_action`): its
    worker may have finished it before the break (recorded as it is), or checkpointed it when the executor
    stopped it (``partial``: resumed). Returns the runs to run again, with their actions."""
    todo = []
    for plan in plans:
        action, note = run_action(plan, fingerprints)
        if action == "finished":
            finish(plan, {"status": "finished", "summary": read_record_object(plan.path / "summary.json"),
                          "seconds": 0.0})
        elif action in ("failed", "damaged"):
            finish(plan, {"status": "failed", "reason": note, "seconds": 0.0})
        else:
            todo.append((plan, action))
    return todo
