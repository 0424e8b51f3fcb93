"""Plan and run every task x strategy x seed of a comparison, resumably.

Layout: ``DIR/runs/<task>/<strategy>/seed-<k>/`` is an ordinary run folder; what each planned run's folder
holds decides what is done with it (:func:`~trainlab.compare.run_actions.run_action`: trained, skipped,
resumed, adopted from a staging folder, or the comparison refused).

``--jobs N`` runs N runs at once in forked worker processes, each pinned to
``cores // N`` torch threads. A run that diverges or raises is recorded as failed
with its reason and never stops the others; one the machine stopped (a full or read-only disk, a
permission denied, memory: once, trainlab.compare.machine_failure) is recorded as not run, and the next
invocation trains it again; so is one whose
folder another process holds (``trainlab resume`` of it: :mod:`trainlab.compare.busy_run`), with nothing
recorded in its folder. A worker that dies (SIGKILL: the out-of-memory
killer, a user) costs the run it had, recorded as not run, the machine's ("worker died: killed by SIGKILL,
perhaps out of memory"; failed where the worker exited with a code of its own); the other unfinished runs
go on in new workers (:mod:`trainlab.compare.pool`).
The parent shows a live rich display on a TTY and plain lines otherwise.

Ctrl-C (SIGINT) or SIGTERM stops the comparison: the runs in progress checkpoint, and no further run
starts, in this process (``--jobs 1``) or in a pool's worker. A signal that lands while a run finishes (its
final evaluation, its results being written) is taken by that run's own handler, which lets it complete:
:func:`execute` sees it all the same (:mod:`trainlab.compare.absorbed_signals`) and starts nothing after it.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from trainlab.atomic import write_json
from trainlab.code_policy import is_own_run, trusting_runs
from trainlab.compare.absorbed_signals import signals_during
from trainlab.compare.busy_run import busy_reason
from trainlab.compare.display import LiveDisplay, PlainDisplay, QuietDisplay, Tally
from trainlab.compare.machine_failure import (
    RECORD_KEY,
    is_machine_failure,
    machine_reason,
    out_of_memory_again,
)
from trainlab.compare.run_actions import (
    ERROR_FILE,
    RunPlan,
    current_data_fingerprint,
    drop_stale_error_record,
    run_action,
)
from trainlab.config import validate
from trainlab.config_fields import counted
from trainlab.errors import DataError, Interrupted, RunDirError, TrainingError
from trainlab.exception_origin import failure_text
from trainlab.notices import warn
from trainlab.records import read_record_object
from trainlab.runtime import threads_per_worker
from trainlab.sigterm import sigterm_as_ctrl_c

_stop_requested = False  # start no further run: the comparison was stopped (a signal, in this process)


def request_stop(signum: int, frame: Any) -> None:
    """A pool worker's SIGTERM handler between runs (:func:`trainlab.compare.pool._pin_worker`): start no further run."""
    global _stop_requested
    _stop_requested = True


def not_started(signum: int = signal.SIGTERM) -> dict[str, Any]:
    """The outcome of a run the comparison was stopped before (``signum``: the signal that stopped it)."""
    return {"status": "interrupted", "reason": "not started: the comparison was interrupted", "signum": signum,
            "seconds": 0.0}


def execute(task: str, strategy: str, seed: int, raw: dict[str, Any], path: str, action: str) -> dict[str, Any]:
    """Run one planned run; never raises except on interruption. Returns an outcome dict: its ``status``
    (``finished`` with its ``summary``; ``failed`` for a failure that would repeat, a divergence or the run's
    raising; ``not run`` where the machine stopped it, :func:`~trainlab.compare.machine_failure.is_machine_failure`,
    or another process holds its folder, :func:`~trainlab.compare.busy_run.busy_reason`; ``interrupted``), its
    ``reason`` and ``seconds``. A failure or the machine's is recorded in the folder's ``compare-error.json``
    (best effort: the disk may be full), the machine's flagged so that the next invocation trains the run
    again (:func:`~trainlab.compare.run_actions.run_action`); a busy folder's is not recorded (another process owns the folder).

    A stop signal the run's own handler took as the run finished (it completed) is in the outcome as
    ``stop_signal``, and no further run starts in this process (:mod:`trainlab.compare.absorbed_signals`)."""
    global _stop_requested

    if _stop_requested:
        return not_started()
    started = time.perf_counter()
    with signals_during() as seen:
        outcome = _outcome_of_run(Path(path), raw, action)
    outcome["seconds"] = time.perf_counter() - started
    if outcome["status"] == "interrupted":
        _stop_requested = True  # the parent's SIGTERM may have landed in the run's own handler
    elif seen:
        _stop_requested = True  # the run completed, taking the signal as it finished: nothing starts after it
        outcome["stop_signal"] = seen[0]
    return outcome


def _outcome_of_run(folder: Path, raw: dict[str, Any], action: str) -> dict[str, Any]:
    """:func:`execute`'s outcome, without its ``seconds``."""
    from trainlab.run_summary import outcome_told_by_caller  # torch and the engine: in the worker

    previous = read_record_object(folder / ERROR_FILE)  # an earlier invocation's: out of memory twice fails
    try:
        (folder / ERROR_FILE).unlink(missing_ok=True)
        # a non-finite run is failed naming its metric (metric_keys): no warning too; its outcome is the leaderboard's
        with outcome_told_by_caller():
            summary = _train_or_resume(folder, raw, action)
    except TrainingError as exc:
        return {"status": "failed", "reason": f"diverged: {exc}"}
    except Interrupted as exc:
        return {"status": "interrupted", "reason": str(exc), "signum": exc.exit_code - 128}
    except Exception as exc:  # noqa: BLE001 - one failed run must never stop the others
        return _raised_outcome(folder, raw, exc, previous)
    return {"status": "finished", "summary": summary}


def _raised_outcome(folder: Path, raw: dict[str, Any], exc: Exception, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The outcome of a run whose training raised ``exc`` (not a divergence, not an interrupt), recorded in its
    folder's ``compare-error.json`` (``previous``: that record as it was before the run): ``not run`` for
    a folder another process holds or the machine's failure, except a MemoryError the invocation before had
    too (:func:`~trainlab.compare.machine_failure.out_of_memory_again`); else ``failed``."""
    busy = busy_reason(exc)
    if busy is not None:  # another process's run of this folder (trainlab resume): not this run's failure
        return {"status": "not run", "reason": busy}
    identity = error_identity(raw)
    machine = is_machine_failure(exc)
    reason = machine_reason(exc) if machine else failure_text(exc)[:1000]  # a user's code: with its file:line
    again = out_of_memory_again(exc, previous, identity)
    if again is not None:  # a config that needs more memory than the machine has: its strategy's failure
        machine, reason = False, again
    _record_error(folder, identity, reason, machine)
    return {"status": "not run" if machine else "failed", "reason": reason}


def _train_or_resume(folder: Path, raw: dict[str, Any], action: str) -> dict[str, Any]:
    """The run's summary: ``partial`` and ``adopt`` resumed, anything else trained (over what the folder holds)."""
    from trainlab.experiment import train
    from trainlab.run_resume import resume
    from trainlab.run_staging import stranded_overwrites

    staged = stranded_overwrites(folder) if action == "adopt" else []  # gone since: trained from scratch below
    if action == "partial" or staged:
        if action == "partial":
            _drop_staged_runs(folder)
        # the run resumed: the folder's own, or the staged one resume adopts (its config is the plan's)
        resumed = staged[0] if staged else folder
        try:
            # the user's own run (its config.yaml names no code the plan's does not): resumed under the
            # comparison's code policy, as it was trained; anything else as anyone's run folder
            with trusting_runs([folder]) if is_own_run(resumed, raw) else nullcontext():
                return resume(folder, quiet=True)[0]
        except (TrainingError, Interrupted, RunDirError):  # RunDirError: finished, in use, linked records
            raise
        except Exception as exc:
            if is_machine_failure(exc):  # a full disk, not an unreadable run: its checkpoints stay for the next try
                raise
            warn(f"cannot resume {folder} ({exc}); training it from scratch")  # an unreadable partial run
    return train(validate(with_threads_given(raw)), out=folder, overwrite=True, quiet=True)[0]


def _drop_staged_runs(folder: Path) -> None:
    """Remove the dead staging folders beside ``folder`` (:func:`~trainlab.run_staging.stranded_overwrites`)
    before its own run is resumed: :func:`~trainlab.compare.run_actions.run_action` found that the newest holds no run of the plan (another
    config or data: a config tried, stopped and edited back; else the action is ``adopt``), and ``resume`` adopts
    the newest such folder, which would go on with that run in place of the folder's own."""
    from trainlab.run_leftovers import remove_path
    from trainlab.run_staging import stranded_overwrites

    for staged in stranded_overwrites(folder):
        remove_path(staged)


def with_threads_given(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``runtime.num_threads`` set to the torch threads the comparison gave this run (its
    worker's, :func:`~trainlab.runtime.threads_per_worker`) where the config leaves it unset, so that the
    run's config.yaml reproduces the run alone: the thread count moves the last bits of float sums.

    Only the trained config holds it, not the plan's: the plan's config hash, which a failure's record is
    matched by (:func:`~trainlab.compare.run_actions.run_action`), stays that of the config as asked for, whatever ``--jobs``; the run's
    run.json hash then differs from it in the thread count alone, which :func:`~trainlab.compare.run_actions.recorded_run_change` does not
    count as a change (the run identity leaves it out, trainlab.config_identity)."""
    import torch

    runtime = raw.get("runtime") or {}
    if not isinstance(runtime, dict) or runtime.get("num_threads") is not None:  # set, or the schema's to refuse
        return raw
    return {**raw, "runtime": {**runtime, "num_threads": torch.get_num_threads()}}


def _record_error(folder: Path, identity: dict[str, str | None], reason: str, machine: bool) -> None:
    """The folder's ``compare-error.json``: ``reason``, the config hash and data fingerprint it failed with
    (``identity``: :func:`error_identity`), ``machine_failure`` and the traceback of the exception being
    handled. Atomic (a kill leaves no torn record), and best effort: a folder that cannot be written keeps no
    record, and the comparison's leaderboard takes the reason from the outcome instead."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        record = {"reason": reason, **identity, RECORD_KEY: machine,
                  "traceback": traceback.format_exc()}
        write_json(folder / ERROR_FILE, record)
    except OSError:
        pass


def error_identity(raw: dict[str, Any]) -> dict[str, str | None]:
    """The config hash and data fingerprint of a failed run's config, for its error record (None where
    they cannot be had: such a run is tried again next time)."""
    try:
        config = validate(raw)
        return {"config_hash": config.hash(), "data_fingerprint": current_data_fingerprint(config)}
    except Exception:  # noqa: BLE001 - only for the error record
        return {"config_hash": None, "data_fingerprint": None}


# --------------------------------------------------------------------------- the comparison

def refuse_damaged(notes: list[str]) -> None:
    """DataError (exit 3) naming the first damaged run folder (:func:`~trainlab.compare.run_actions.run_action`'s notes) and how many more
    there are; nothing when there is none. Before any run: nothing is trained or written while a folder is
    in doubt."""
    if notes:
        others = len(notes) - 1
        more = (f" ({others} more run folder{'s are' if others > 1 else ' is'} damaged too)" if others else "")
        raise DataError(notes[0] + more)


def run_plans(plans: list[RunPlan], jobs: int, tally: Tally, live: bool | None = None,
              quiet: bool = False, earlier: dict[str, dict[str, Any]] | None = None,
              before_training: Callable[[], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run what each plan needs; returns ``{plan.label: outcome}`` for every plan (:func:`execute`'s, or
    ``{"status": "finished" | "failed", "skipped": True}`` for a folder that holds its outcome). ``quiet``: no
    line per run. ``earlier``: the outcomes of the runs before these (an earlier group of the comparison's,
    trainlab.compare.command.run_groups); a stop signal one of them took as it finished (:func:`stop_signal`)
    stops these too: none starts. ``before_training`` is called before the first run starts (not when every
    folder holds its outcome already).

    Raises :class:`Interrupted` (exit 128 + signal: 130 for Ctrl-C/SIGINT, 143 for SIGTERM) after
    the runs in progress have checkpointed, and while a run is left (:func:`settle_stop`); everything finished
    so far stays on disk for the next invocation. A signal a run took as it finished when none is left is in
    the outcomes (its ``stop_signal``): :func:`say_runs_complete` once no other runs follow. Raises
    :class:`DataError` (exit 3) before any run when a run folder is damaged (:func:`~trainlab.compare.run_actions.run_action`'s
    ``damaged``), naming the first such file.
    """
    live = sys.stdout.isatty() if live is None else live
    global _stop_requested
    _stop_requested = False  # an earlier comparison in this process (--jobs 1) may have been interrupted
    fingerprints: dict[str, str | None] = {}
    actions = [(plan, *run_action(plan, fingerprints)) for plan in plans]
    refuse_damaged([note for _, action, note in actions if action == "damaged"])
    todo = [(plan, action) for plan, action, _ in actions if action not in ("finished", "failed")]
    stopped_before = stop_signal(earlier or {})
    if stopped_before is not None and todo:  # "no run starts after the signal", whichever group took it
        raise interruption(todo, stopped_before, earlier)
    display = (QuietDisplay if quiet else LiveDisplay if live else PlainDisplay)(tally, jobs)
    outcomes = _skipped_outcomes(actions, tally, display)
    threads = threads_per_worker(jobs)
    if not todo:
        return outcomes
    if before_training is not None:
        before_training()

    def finish(plan: RunPlan, outcome: dict[str, Any]) -> None:
        outcomes[plan.label] = outcome
        if outcome["status"] == "interrupted":
            return
        tally.done += 1
        tally.failed += outcome["status"] == "failed"
        tally.not_run += outcome["status"] == "not run"
        tally.run_seconds.append(outcome.get("seconds", 0.0))
        if outcome["status"] != "not run":  # a seed the machine stopped is no failure of its strategy
            tally.record(plan, outcome.get("summary"))
        display.finished(plan, outcome)

    received: list[int] = []
    try:
        with sigterm_as_ctrl_c(received):  # the runs in progress checkpoint; exit 143
            if jobs == 1:
                _run_in_process(todo, threads, tally, display, finish)
            else:
                from trainlab.compare.pool import run_in_pool  # the pool runs this module's execute

                run_in_pool(todo, jobs, threads, tally, display, finish)
    except KeyboardInterrupt as exc:  # between runs, or in the pool's parent (which stops its workers first)
        signum = received[-1] if received else getattr(exc, "signum", signal.SIGINT)
        raise interruption(todo, signum, outcomes) from None
    settle_stop(todo, outcomes)
    return outcomes


def _skipped_outcomes(actions: list[tuple[RunPlan, str, str]], tally: Tally, display: Any) -> dict[str, dict[str, Any]]:
    """The outcomes of the runs :func:`~trainlab.compare.run_actions.run_action` found done in their folders (finished, or failed in an
    earlier invocation), counted in ``tally``; every action's note and the skipped runs' lines on ``display``."""
    outcomes: dict[str, dict[str, Any]] = {}
    for plan, action, note in actions:
        if note and action != "failed":
            display.note(note)
        if action == "finished":
            outcomes[plan.label] = {"status": "finished", "skipped": True}
            tally.done += 1
            tally.record(plan, read_record_object(plan.path / "summary.json"))
            drop_stale_error_record(plan)
        elif action == "failed":
            outcomes[plan.label] = {"status": "failed", "skipped": True, "reason": note}
            tally.done += 1
            tally.failed += 1
    for note in skipped_notes(actions, tally.total):
        display.note(note)
    return outcomes


def settle_stop(todo: list[tuple[RunPlan, str]], outcomes: dict[str, dict[str, Any]]) -> None:
    """After the runs, where a signal stopped the comparison (:func:`stop_signal`): :func:`interruption` while
    a run of ``todo`` is left (not started, or at a checkpoint). Once every one is done (the signal came as
    the last one finished) nothing of ``todo`` is left to stop; whether the comparison's other runs are
    (a later group's) is the caller's to settle: :func:`run_plans`'s ``earlier``, :func:`say_runs_complete`."""
    stopped = stop_signal(outcomes)
    if stopped is None:
        return
    if any(outcomes.get(plan.label, {}).get("status", "interrupted") == "interrupted" for plan, _ in todo):
        raise interruption(todo, stopped, outcomes)


def say_runs_complete(outcomes: dict[str, dict[str, Any]]) -> None:
    """After the comparison's last runs (``outcomes``: every run's), where a run took a stop signal as it
    finished and nothing was left to stop: one warning says so."""
    stopped = stop_signal(outcomes)
    if stopped is not None:
        warn(f"{signal.Signals(stopped).name} received while finishing; the comparison's runs are complete")


def skipped_notes(actions: list[tuple[RunPlan, str, str]], total: int) -> list[str]:
    """The lines for the runs :func:`~trainlab.compare.run_actions.run_action` found done in their folders: those finished, and apart from
    them those that failed in an earlier invocation (skipped too, but not done)."""
    finished = sum(action == "finished" for _, action, _ in actions)
    failed = sum(action == "failed" for _, action, _ in actions)
    notes = [f"{finished} of {total} runs already done in their folders: skipped"] if finished else []
    if failed:
        notes.append(f"{counted(failed, 'run')} of {total} failed in an earlier invocation: skipped, reported "
                     "as failed (delete a run's folder to train it again)")
    return notes


def stop_signal(outcomes: dict[str, dict[str, Any]]) -> int | None:
    """The signal that stopped the comparison while its runs ran, from their outcomes: an interrupted run's, or
    one a run took as it finished (:func:`execute`'s ``stop_signal``); None when no run saw one."""
    for outcome in outcomes.values():
        if outcome["status"] == "interrupted":
            return outcome.get("signum", signal.SIGINT)
        if outcome.get("stop_signal") is not None:
            return outcome["stop_signal"]
    return None


def interruption(todo: list[tuple[RunPlan, str]], signum: int,
                 outcomes: dict[str, dict[str, Any]] | None = None) -> Interrupted:
    """The comparison's interrupt line: how many of its runs completed as the signal came (a run that was
    finishing: :func:`execute`'s ``stop_signal`` in ``outcomes``, of ``todo`` or an earlier group's: they
    were run in this invocation) and how many of ``todo`` now wait at a
    checkpoint (their run.json says ``interrupted``: the same command resumes them), read from their
    folders, as the runs that stopped in a pool's workers may report nothing back."""
    outcomes = outcomes or {}
    completed = sum(outcome.get("stop_signal") is not None for outcome in outcomes.values())
    waiting = sum((read_record_object(plan.path / "run.json") or {}).get("status") == "interrupted"
                  for plan, _ in todo)
    said = []
    if completed:
        said.append(f"{counted(completed, 'run')} {'was' if completed == 1 else 'were'} finishing and completed")
    if waiting:
        said.append(f"{counted(waiting, 'run')} checkpointed")
    so_far = f"{', '.join(said)}; " if said else ""
    return Interrupted(f"interrupted: {so_far}run the same command again to finish the comparison", signum)


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
                if _stop_requested:  # interrupted, or a signal the run took as it finished: start no other
                    break
    finally:
        torch.set_num_threads(previous)
