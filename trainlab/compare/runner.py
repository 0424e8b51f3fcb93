"""Plan and run every task x strategy x seed of a comparison, resumably.

Layout: ``DIR/runs/<task>/<strategy>/seed-<k>/`` is an ordinary run folder. Before
running, each planned run is classified by what its folder holds (:func:`run_action`):

    new      no run.json                         -> train
    finished status finished, same config + data -> skip (files untouched)
    failed   status diverged, or compare-error.json,
             same config hash and data           -> skip, reported as failed (delete the folder to retry)
    changed  config hash or data files differ    -> train again from scratch (said so)
    partial  running / interrupted, same hash    -> trainlab.experiment.resume
    damaged  run.json unreadable or of an unknown status, or status finished with a summary.json that is
             missing or not a finished run's summary -> the comparison is refused before any run (DataError,
             exit 3) naming the file: a finished run is never trained again, nor its files replaced, unasked

"Same data" is the same ``data_fingerprint`` (trainlab.data.fingerprint: the data files' paths,
sizes and modification times); a failure recorded on other data is tried again.

``--jobs N`` runs N runs at once in forked worker processes, each pinned to
``cores // N`` torch threads. A run that diverges or raises is recorded as failed
with its reason and never stops the others. A worker that dies (SIGKILL: the out-of-memory
killer, a user) costs the run it had, recorded as failed ("worker died: killed by SIGKILL,
perhaps out of memory"); the other unfinished runs go on in new workers (:func:`_run_in_pool`).
The parent shows a live rich display on a TTY and plain lines otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.atomic import write_json
from trainlab.compare.display import LiveDisplay, PlainDisplay, QuietDisplay, Tally
from trainlab.compare.strategies import NamedStrategy, apply_strategy
from trainlab.config import Config, validate
from trainlab.config_fields import short_repr
from trainlab.data.fingerprint import data_fingerprint
from trainlab.data.paths import resolve_data_paths
from trainlab.errors import DataError, Interrupted, RunDirError, TrainingError, TrainlabError
from trainlab.records import finished_summary_damage, read_record_object
from trainlab.registry import CodePolicy, code_references, current_policy, set_policy, trusting_runs
from trainlab.sigterm import sigterm_as_ctrl_c
from trainlab.yaml_files import load_yaml_file

ERROR_FILE = "compare-error.json"  # written into a run folder whose run raised (not diverged)


@dataclass(frozen=True)
class RunPlan:
    """One run of the comparison: where it lives and the resolved config it must have."""

    task: str
    strategy: str
    seed: int
    raw: dict[str, Any]
    path: Path

    @property
    def config(self) -> Config:
        return validate(self.raw)

    @property
    def label(self) -> str:
        return f"{self.task}/{self.strategy}/seed-{self.seed}"


def seed_config(raw: dict[str, Any], task: str, strategy: str, seed: int) -> dict[str, Any]:
    """The run's raw config: ``seed`` = k (data order, initial weights; the split too unless
    the config fixes ``data.split_seed``), a name per arm, and no progress bar."""
    raw = dict(raw)
    raw["seed"] = seed
    raw["name"] = f"{task}-{strategy}"
    output = dict(raw.get("output") or {})
    output["progress"] = "off"
    raw["output"] = output
    return raw


def plan_runs(bases: dict[str, dict[str, Any]], strategies: list[NamedStrategy], seeds: list[int],
              out: Path) -> list[RunPlan]:
    """Every task x strategy x seed, seed-major so that early results already pair across arms."""
    plans = []
    for task, base in bases.items():
        configs = {s.name: apply_strategy(base, s.overrides) for s in strategies}
        for seed in seeds:
            for strategy in strategies:
                raw = seed_config(configs[strategy.name], task, strategy.name, seed)
                plans.append(RunPlan(task, strategy.name, seed, raw, out / "runs" / task / strategy.name / f"seed-{seed}"))
    return plans




def current_data_fingerprint(config: Config, memo: dict[str, str | None] | None = None) -> str | None:
    """:func:`~trainlab.data.fingerprint.data_fingerprint` of the files ``config`` names now, its paths
    resolved as a run resolves them (``TRAINLAB_DATA_DIR``, then the cwd). ``memo`` keeps one per
    data section (the runs of a comparison share a few; a CIFAR folder takes ~0.4 s)."""
    data = resolve_data_paths(config.data.model_dump())
    if memo is None:
        return data_fingerprint(data)
    key = json.dumps(data, sort_keys=True, default=str)
    if key not in memo:
        memo[key] = data_fingerprint(data)
    return memo[key]


def run_action(plan: RunPlan, memo: dict[str, str | None] | None = None) -> tuple[str, str]:
    """(action, note): action is new | finished | failed | changed | partial (see module docstring).
    ``memo``: data fingerprints already taken (:func:`current_data_fingerprint`)."""
    wanted = plan.config.hash()
    data = current_data_fingerprint(plan.config, memo)
    error = read_record_object(plan.path / ERROR_FILE)
    if error is not None and error.get("config_hash") == wanted and error.get("data_fingerprint") == data:
        return "failed", str(error.get("reason"))  # the same config on the same data would fail the same way
    info_path = plan.path / "run.json"
    info = read_record_object(info_path)
    if info is None:
        if not (info_path.exists() or info_path.is_symlink()):
            return "new", ""
        # run.json is written atomically, so a kill never leaves it unreadable: someone damaged it, and whether
        # the run finished cannot be told
        return "damaged", (f"{info_path} cannot be read as a JSON object (damaged, or not a regular file), so "
                           f"whether {plan.label} finished cannot be told; {_RESTORE} {plan.path} to train that "
                           "run again")
    summary_path = plan.path / "summary.json"
    status = info.get("status")
    damage = finished_summary_damage(summary_path) if status == "finished" else None
    recorded = info.get("config_hash")
    if not recorded and not damage:  # runs whose run.json predates its config_hash: the summary's
        recorded = (read_record_object(summary_path) or {}).get("config_hash")
    if damage and recorded is None:  # nothing left says which config the finished run trained
        return "damaged", _damaged_summary(plan, summary_path, damage)
    if recorded != wanted:
        return "changed", f"config changed (hash {recorded} -> {wanted}): running {plan.label} again"
    if info.get("data_fingerprint", data) != data:  # runs recorded before fingerprints: by config alone
        return "changed", f"data files changed since {plan.label} ran: running it again"
    if damage:
        return "damaged", _damaged_summary(plan, summary_path, damage)
    if status == "finished":
        return "finished", ""
    if status == "diverged":
        return "failed", "diverged"
    if status not in RESUMABLE:
        return "damaged", (f"{info_path} has status {short_repr(status)}, which no run records (one of "
                           f"running, interrupted, finished, diverged); {_RESTORE} {plan.path} to train that "
                           "run again")
    return "partial", f"resuming {plan.label} (status {status})"


RESUMABLE = ("running", "interrupted")  # run.json statuses of a run that stopped before its end
_RESTORE = "restore the file from a copy, or delete the folder"


def _damaged_summary(plan: RunPlan, path: Path, damage: str) -> str:
    return (f"{path} of the finished run {plan.label} {damage}; compare never trains a finished run again "
            f"unasked: {_RESTORE} {plan.path} to train that run again")


# --------------------------------------------------------------------------- one run (in a worker)

_stop_requested = False  # set in a worker by SIGTERM from the parent: start no further run
_run_slots: tuple[Any, Any] | None = None  # in a pool worker: the parent's run slots (_execute_in_slot)


def _request_stop(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


def _pin_worker(threads: int, policy: CodePolicy | None = None, slots: tuple[Any, Any] | None = None) -> None:
    """Worker initializer: torch threads, the parent's code policy (a spawned worker starts without it:
    the user's module beside a base config, ``--allow-code``), the parent's run slots
    (:func:`_execute_in_slot`), no KeyboardInterrupt between runs, die with the parent.

    On Ctrl-C the parent sends each worker SIGTERM: during a run, the run's own handler
    (trainlab.callbacks.signal_stop) checkpoints and stops it; between runs it only sets
    ``_stop_requested``, so a run already queued to this worker is not started.
    """
    import torch

    global _run_slots
    torch.set_num_threads(threads)
    if policy is not None:
        set_policy(policy)
    _run_slots = slots
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, _request_stop)
    try:  # Linux: a SIGKILLed comparison takes its workers with it, so no stale lock outlives it
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def is_own_run(folder: Path, raw: dict[str, Any]) -> bool:
    """Whether the run folder's config.yaml names no ``module:attr`` code beyond what ``raw`` (the plan's
    config: the user's base with the strategy) names; False when it cannot be read."""
    try:
        stored = load_yaml_file(folder / "config.yaml", follow_links=False)
    except (TrainlabError, OSError):
        return False
    return code_references(stored) <= code_references(raw)


def execute(task: str, strategy: str, seed: int, raw: dict[str, Any], path: str, action: str) -> dict[str, Any]:
    """Run one planned run; never raises except on interruption. Returns an outcome dict."""
    global _stop_requested
    from trainlab.experiment import resume, train

    folder = Path(path)
    started = time.perf_counter()
    if _stop_requested:
        return {"status": "interrupted", "reason": "not started: the comparison was interrupted",
                "signum": signal.SIGTERM, "seconds": 0.0}
    try:
        (folder / ERROR_FILE).unlink(missing_ok=True)
        if action == "partial":
            try:
                # the user's own run (its config.yaml names no code the plan's does not): resumed under the
                # comparison's code policy, as it was trained; anything else as anyone's run folder
                with trusting_runs([folder]) if is_own_run(folder, raw) else contextlib.nullcontext():
                    summary, _ = resume(folder, quiet=True)
            except (TrainingError, Interrupted, RunDirError):  # RunDirError: finished, in use, linked records
                raise
            except Exception as exc:  # an unreadable partial run: start it again
                print(f"warning: cannot resume {folder} ({exc}); training it from scratch", file=sys.stderr)
                summary, _ = train(validate(raw), out=folder, overwrite=True, quiet=True)
        else:
            summary, _ = train(validate(raw), out=folder, overwrite=True, quiet=True)
    except TrainingError as exc:
        return {"status": "failed", "reason": f"diverged: {exc}", "seconds": time.perf_counter() - started}
    except Interrupted as exc:
        _stop_requested = True  # the parent's SIGTERM may have landed in the run's own handler
        return {"status": "interrupted", "reason": str(exc), "signum": exc.exit_code - 128,
                "seconds": time.perf_counter() - started}
    except Exception as exc:  # noqa: BLE001 - one failed run must never stop the others
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:1000]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            record = {"reason": reason, **_identity_or_none(raw), "traceback": traceback.format_exc()}
            write_json(folder / ERROR_FILE, record)  # atomic: a kill leaves no torn record
        except OSError:
            pass
        return {"status": "failed", "reason": reason, "seconds": time.perf_counter() - started}
    return {"status": "finished", "summary": summary, "seconds": time.perf_counter() - started}


def _execute_in_slot(index: int, task: str, strategy: str, seed: int, raw: dict[str, Any], path: str,
                     action: str) -> dict[str, Any]:
    """:func:`execute` in a pool worker, telling the parent through its shared run slots (two arrays
    indexed like the pool's runs: ``pids``, ``starts``) which worker runs which run: ``pids[index]`` is the
    worker's pid while the run is in progress and minus it once :func:`execute` returned, ``starts[index]``
    the run's start (``time.time()``). When a worker dies the parent fails the run whose slot holds its pid."""
    pids, starts = _run_slots
    starts[index] = time.time()
    pids[index] = os.getpid()
    try:
        return execute(task, strategy, seed, raw, path, action)
    finally:
        pids[index] = -os.getpid()


def _record_death(plan: RunPlan, reason: str) -> None:
    """The run's ``ERROR_FILE`` for a worker that died under it (or could not send its outcome), so the
    leaderboard lists the failure; it carries no config hash, so the next invocation runs it again (a kill
    need not recur). Written once no worker writes the folder any more."""
    try:
        plan.path.mkdir(parents=True, exist_ok=True)
        write_json(plan.path / ERROR_FILE, {"reason": reason, "config_hash": None})
    except OSError:
        pass


def _identity_or_none(raw: dict[str, Any]) -> dict[str, str | None]:
    """The config hash and data fingerprint of a failed run's config, for its error record (None where
    they cannot be had: such a run is tried again next time)."""
    try:
        config = validate(raw)
        return {"config_hash": config.hash(), "data_fingerprint": current_data_fingerprint(config)}
    except Exception:  # noqa: BLE001 - only for the error record
        return {"config_hash": None, "data_fingerprint": None}


# --------------------------------------------------------------------------- the comparison

def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_plans(plans: list[RunPlan], jobs: int, tally: Tally, live: bool | None = None,
              quiet: bool = False) -> dict[str, dict[str, Any]]:
    """Run what each plan needs; returns ``{plan.label: outcome}`` for every plan. ``quiet``: no line per run.

    Raises :class:`Interrupted` (exit 128 + signal: 130 for Ctrl-C/SIGINT, 143 for SIGTERM) after
    the runs in progress have checkpointed; everything finished so far stays on disk for the next
    invocation. Raises :class:`DataError` (exit 3) before any run when a run folder is damaged
    (:func:`run_action`'s ``damaged``), naming the first such file.
    """
    live = sys.stdout.isatty() if live is None else live
    global _stop_requested
    _stop_requested = False  # an earlier comparison in this process (--jobs 1) may have been interrupted
    display = (QuietDisplay if quiet else LiveDisplay if live else PlainDisplay)(tally, jobs)
    outcomes: dict[str, dict[str, Any]] = {}
    todo: list[tuple[RunPlan, str]] = []
    fingerprints: dict[str, str | None] = {}
    actions = [(plan, *run_action(plan, fingerprints)) for plan in plans]
    damaged = [note for _, action, note in actions if action == "damaged"]
    if damaged:  # before any run: nothing is trained or written while a folder is in doubt
        others = len(damaged) - 1
        more = (f" ({others} more run folder{'s are' if others > 1 else ' is'} damaged too)" if others else "")
        raise DataError(damaged[0] + more)
    for plan, action, note in actions:
        if note and action != "failed":
            display.note(note)
        if action == "finished":
            outcomes[plan.label] = {"status": "finished", "skipped": True}
            tally.done += 1
            tally.record(plan, read_record_object(plan.path / "summary.json"))
        elif action == "failed":
            outcomes[plan.label] = {"status": "failed", "skipped": True, "reason": note}
            tally.done += 1
            tally.failed += 1
        else:
            todo.append((plan, action))
    if tally.done:
        display.note(f"{tally.done} of {tally.total} runs already done in their folders: skipped")
    threads = max(1, cores() // jobs)
    if not todo:
        return outcomes

    def finish(plan: RunPlan, outcome: dict[str, Any]) -> None:
        outcomes[plan.label] = outcome
        if outcome["status"] == "interrupted":
            return
        tally.done += 1
        tally.failed += outcome["status"] == "failed"
        tally.run_seconds.append(outcome.get("seconds", 0.0))
        tally.record(plan, outcome.get("summary"))
        display.finished(plan, outcome)

    received: list[int] = []
    try:
        with sigterm_as_ctrl_c(received):  # the runs in progress checkpoint; exit 143
            if jobs == 1:
                _run_in_process(todo, threads, tally, display, finish)
            else:
                _run_in_pool(todo, jobs, threads, tally, display, finish)
    except KeyboardInterrupt:  # between runs, or in the pool's parent (which stops its workers first)
        raise Interrupted("interrupted: run the same command again to finish the comparison",
                          received[-1] if received else signal.SIGINT) from None
    interrupted = [o for o in outcomes.values() if o["status"] == "interrupted"]
    if interrupted:
        raise Interrupted(f"interrupted: {len(interrupted)} run(s) checkpointed; run the same command again "
                          "to finish the comparison", interrupted[0].get("signum", signal.SIGINT))
    return outcomes


def _run_in_process(todo, threads, tally, display, finish) -> None:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with display:
            for plan, action in todo:
                tally.running = 1
                display.refresh()
                outcome = execute(plan.task, plan.strategy, plan.seed, plan.raw, str(plan.path), action)
                tally.running = 0
                finish(plan, outcome)
                if outcome["status"] == "interrupted":
                    break
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------- the worker pool

IDLE_GRACE_S = 2.0  # a worker out of any run still alive this long into the pool's shutdown is stuck: killed
BREAKS_TO_FAIL = 2  # a run in progress at this many pool breaks that no dead worker explains is failed


def _run_in_pool(todo, jobs, threads, tally, display, finish) -> None:
    """Run ``todo`` in ``jobs`` worker processes; a worker that dies costs the run it had, not the others.

    A worker's death (SIGKILL from the out-of-memory killer or a user, a crash) breaks a
    ProcessPoolExecutor: every unfinished run's future fails, and the executor stops the other workers
    (SIGTERM: their runs checkpoint). The run the dead worker had is recorded as failed ("worker died:
    killed by SIGKILL, perhaps out of memory"); every other unfinished run goes to a new pool, with what
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
    fingerprints: dict[str, str | None] = {}
    while todo:
        left = _pool_round(todo, jobs, threads, context, tally, display, finish, breaks_seen)
        todo = _still_to_run(left, fingerprints, finish)
        if todo:
            display.note(f"starting new workers for the {len(todo)} unfinished run{'s' if len(todo) > 1 else ''} "
                         "(a stopped run resumes from its checkpoint)")


@dataclass
class _Stopped:
    """How a pool's shutdown went: the workers :func:`_stop_pool` had to kill, and whether Ctrl-C/SIGTERM
    came meanwhile."""

    killed: set[int]
    interrupted: bool


def _pool_round(todo, jobs, threads, context, tally, display, finish, breaks_seen) -> list[RunPlan]:
    """Run ``todo`` in one pool; returns the runs left to run in a new pool when a worker died, else [].
    ``breaks_seen``: per run label, the breaks no dead worker's run explained that found it unfinished
    (and in progress, where any run was)."""
    pids = context.RawArray("q", len(todo))  # the run slots: see _execute_in_slot
    starts = context.RawArray("d", len(todo))
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_pin_worker,
                               initargs=(threads, current_policy(), (pids, starts)))
    futures: dict[Future, int] = {}
    ended: set[int] = set()  # indices into todo whose outcome went to finish()
    workers: list[Any] = []
    broken = False
    try:
        try:
            for index, (plan, action) in enumerate(todo):
                future = pool.submit(_execute_in_slot, index, plan.task, plan.strategy, plan.seed, plan.raw,
                                     str(plan.path), action)
                futures[future] = index
        except BrokenProcessPool:  # a worker died before every run was queued
            broken = True
        workers = _workers(pool)
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
    except KeyboardInterrupt:
        display.note("interrupted: waiting for the runs in progress to checkpoint")
        for worker in workers or _workers(pool):
            try:
                os.kill(worker.pid, signal.SIGTERM)
            except (ProcessLookupError, TypeError):
                pass
        raise
    finally:
        stopped = _stop_pool(pool, workers or _workers(pool), pids)
    tally.running = 0
    if not broken:
        if stopped.interrupted:
            raise KeyboardInterrupt
        return []
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
            failed.append(index)
            reason = f"worker died: {how}"
            _record_death(plan, reason)
            finish(plan, {"status": "failed", "reason": reason, "seconds": time.time() - starts[index]})
    else:  # no dead worker had a run: blame each run in progress (or, if none was, every run not yet started)
        blamed = suspects(unfinished, pids)
        what = ", ".join(f"worker process {pid} died ({_how_it_died(code)})" for pid, code in dead.items()) or \
            "a worker process ended"
        display.note(f"{what} between runs: the worker pool broke")
        for index in blamed:
            plan = todo[index][0]
            breaks_seen[plan.label] = breaks_seen.get(plan.label, 0) + 1
            if breaks_seen[plan.label] >= BREAKS_TO_FAIL:
                failed.append(index)
                reason = (f"worker died: the worker pool broke {BREAKS_TO_FAIL} times with this run unfinished, "
                          f"the last time: {what}")
                _record_death(plan, reason)
                finish(plan, {"status": "failed", "reason": reason,
                              "seconds": time.time() - starts[index] if starts[index] else 0.0})
    if stopped.interrupted:
        raise KeyboardInterrupt
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


def _stop_pool(pool: ProcessPoolExecutor, workers: list[Any], pids: Any) -> _Stopped:
    """Shut the pool down and wait until every worker has exited; the runs in progress end their own way.

    A worker that is in no run (``pids``, :func:`_execute_in_slot`) and still alive after
    :data:`IDLE_GRACE_S` is SIGKILLed: after a worker's death the others can wait forever for the task
    queue's lock, which the dead one may have held, and they only take note of the executor's SIGTERM
    (:func:`_pin_worker`), so the executor's shutdown would hang. Such a worker holds no run: nothing is
    lost. A Ctrl-C/SIGTERM meanwhile is noted (``interrupted``), not raised: the workers must be gone first.
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
        except KeyboardInterrupt:
            stopped.interrupted = True
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
