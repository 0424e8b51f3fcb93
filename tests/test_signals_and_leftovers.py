"""Signals once a run is complete or while it waits for disk space, and what a write error leaves behind.

- A SIGINT/SIGTERM that arrives once the result is on disk (run.json says finished) changes nothing: exit 0,
  one ``warning: ... received while finishing; the run is complete`` line, the summary printed; also after
  ``main`` has returned, during the interpreter's teardown (no death by the default action, no
  ``Exception ignored ... KeyboardInterrupt`` from a finaliser).
- A signal ends the wait for disk space at the end of a run (exit 128 + N, resumable), and a repeated
  signal of either kind stops a run at once.
- A train stopped by a full disk before run.json leaves records that the same command, rerun, reuses; its
  message says so. A folder with anything else stays refused and untouched.
- A full disk's errors name the file: the run lock's PID write, a plot.

Real processes are forks of the test process (tests/forked_runs.py); the teardown test is one fresh
interpreter without torch. No test needs root or a mount: a full disk is a write that raises ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trainlab.cli
import trainlab.engine.checkpoint
import trainlab.errors
from tests.forked_runs import fork_call, fork_cli, run_inline, status, wait, wait_until, write_config
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.experiment import StoppedWaiting, retrying
from trainlab.run_folder import RunDir
from trainlab.run_lock import RunLock

CONFIG = {
    "name": "late",
    "seed": 3,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 64,
                 "epochs": 2},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 10, "keep_last": 2, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def _enospc(path: Path | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if path else []))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    """The model of the run never interrupted (and the imports every fork then shares)."""
    root = tmp_path_factory.mktemp("late-reference")
    out = root / "run"
    assert run_inline(["train", str(write_config(root / "config.yaml", CONFIG)), "--out", str(out), "--quiet"]) == 0
    return (out / "model.safetensors").read_bytes()


def _signalling(original, *signums: int):
    def wrapped(*args, **kwargs):
        for signum in signums:
            os.kill(os.getpid(), signum)
            time.sleep(0.05)  # the handler runs here
        return original(*args, **kwargs)

    return wrapped


def _finished_with_one_warning(code: int, err: str, out: Path, signum: int) -> None:
    assert code == 0 and "Traceback" not in err and "error:" not in err, f"exit {code}: {err}"
    name = signal.Signals(signum).name
    assert err.count("received while finishing") == 1, err
    assert f"warning: {name} received while finishing; the run is complete" in err, err
    assert status(out) == "finished"


# --------------------------------------------------------------------------- 1. a signal once the run is complete

@SIGNALS
def test_a_signal_after_the_run_is_written_and_its_handler_removed_is_a_warning(signum, reference, tmp_path,
                                                                               monkeypatch):
    """While the summary is printed the run's own handler is gone: the CLI's raised KeyboardInterrupt
    (``error: interrupted`` exit 130, or 143 for SIGTERM) and the summary on stdout was lost."""
    monkeypatch.setattr(trainlab.cli, "print_run_result", _signalling(trainlab.cli.print_run_result, signum))
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    _finished_with_one_warning(code, log.read_text(), out, signum)
    assert (out / "model.safetensors").read_bytes() == reference


@SIGNALS
def test_two_signals_after_run_json_says_finished_do_not_stop_it(signum, reference, tmp_path, monkeypatch):
    """Pruning the checkpoints comes after run.json says finished: a repeated signal there stopped the run
    'at once' (exit 130, status rewritten to interrupted) although everything was written."""
    monkeypatch.setattr(trainlab.engine.checkpoint, "prune_after_finish",
                        _signalling(trainlab.engine.checkpoint.prune_after_finish, signum, signum))
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    _finished_with_one_warning(code, log.read_text(), out, signum)
    assert (out / "model.safetensors").read_bytes() == reference


TEARDOWN = """
import os, signal, sys, time
import trainlab.cli as cli

SIG = int(sys.argv[1])

def plotted(args):
    print("plotted")
    return 0

cli.COMMANDS["plot"] = plotted  # a command whose result is written; plot imports no torch

class Finaliser:  # runs as the interpreter finalises __main__, as torch's _del_library does
    def __del__(self, kill=os.kill, pid=os.getpid(), sleep=time.sleep):
        kill(pid, SIG)
        sleep(0.2)

late = Finaliser()
sys.argv = ["trainlab", "plot", "run"]
code = cli.main()
os.kill(os.getpid(), SIG)  # after main returned: the exit is under way
time.sleep(0.2)
sys.exit(code)
"""


@SIGNALS
def test_a_signal_while_the_process_exits_is_reported_once_and_the_exit_stays_0(signum):
    """After ``main`` returned the CLI restored the default handlers: SIGTERM killed the finished process
    (-15, no message), SIGINT raised KeyboardInterrupt (a traceback, exit 130), and one in the teardown an
    ``Exception ignored in ... KeyboardInterrupt`` or death by the default action."""
    done = subprocess.run([sys.executable, "-c", TEARDOWN, str(int(signum))], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout == "plotted\n"
    name = signal.Signals(signum).name
    assert done.stderr == f"warning: {name} received while finishing; the command is complete\n", done.stderr


def test_ctrl_c_between_a_comparison_s_runs_still_interrupts_it(reference, tmp_path, monkeypatch):
    """A finished run completes ``train``, not ``compare``: a Ctrl-C before its next run must stop it."""
    import yaml

    import trainlab.experiment

    calls = []

    def second_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first run is finished and written; no run's handler is up
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return original(*args, **kwargs)

    original = trainlab.experiment._train
    monkeypatch.setattr(trainlab.experiment, "_train", second_interrupted)
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text(yaml.safe_dump({"strategies": {"a": None, "b": {"strategy.batch_size": 32}}}))
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["compare", str(write_config(tmp_path / "config.yaml", CONFIG)), "--strategies",
                          str(strategies), "--seeds", "1", "--jobs", "1", "--out", str(tmp_path / "cmp")], log))
    monkeypatch.undo()
    err = log.read_text()
    assert code == 130 and "received while finishing" not in err, f"exit {code}: {err}"
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: interrupted: run the same command again to finish the comparison"], err


# --------------------------------------------------------------------------- 2. the wait for disk space, repeated signals

def test_retrying_ends_its_wait_at_a_received_signal():
    attempts = []

    def full():
        attempts.append(time.monotonic())
        raise _enospc()

    def interrupted():  # SIGTERM arrives during the third attempt
        return signal.SIGTERM if len(attempts) >= 3 else None

    started = time.monotonic()
    with pytest.raises(StoppedWaiting) as stopped:
        retrying(full, "the run's results", patience_s=60, pause_s=0.01, interrupted=interrupted)
    assert stopped.value.signum == signal.SIGTERM and len(attempts) == 3 and time.monotonic() - started < 5
    assert str(stopped.value) == "SIGTERM received while waiting for disk space to write the run's results"


def test_a_repeated_signal_of_either_kind_stops_at_once():
    for first, second in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT),
                          (signal.SIGINT, signal.SIGTERM), (signal.SIGINT, signal.SIGINT)):
        stop = SignalStop()
        stop.handler(first, None)
        with pytest.raises(KeyboardInterrupt):
            stop.handler(second, None)
        assert stop.received == first and stop.signals == [first, second]


def test_a_signal_between_the_result_written_and_its_hand_over_is_reported_once(monkeypatch):
    """A signal after ``done`` was set but before ``handed_over`` was (the handler ran between the CLI's
    ``result_written`` returning and the assignment) was recorded in ``received`` and reported by nobody:
    the CLI had been handed nothing, and the caller leaves a handed-over run's signals to the CLI."""
    import trainlab.sigterm as sigterm

    stop, real, lines = SignalStop(), sigterm.result_written, []

    def landing(pending=None, what="the run"):
        handed = real(pending, what)
        if not stop.signals:  # the handler runs before result_written's answer is assigned to handed_over
            stop.handler(signal.SIGTERM, None)
        return handed

    with sigterm.command_signals([], run_is_result=True) as guard:
        guard._write = lambda fd, data: lines.append(data.decode())
        monkeypatch.setattr(sigterm, "result_written", landing)
        stop.result_written()
        monkeypatch.undo()
        assert stop.handed_over and lines == ["warning: SIGTERM received while finishing; the run is complete\n"]
        stop.handler(signal.SIGINT, None)  # a later one: deferred, and the report is once-only
    assert stop.signals == [signal.SIGTERM, signal.SIGINT] and len(lines) == 1, lines


def test_a_ctrl_c_to_a_comparison_s_group_then_the_parent_s_sigterm_checkpoints_each_worker_s_run(
        reference, tmp_path, monkeypatch):
    """A terminal's Ctrl-C reaches compare's pool workers too (the process group); they ignore SIGINT
    (pool._pin_worker) and the parent sends each one SIGTERM. The run's handler took SIGINT over anyway, so
    the parent's SIGTERM was a second signal: "SIGINT then SIGTERM received: stopped at once", no checkpoint
    at the signal, while the parent said it waited for the runs to checkpoint. A worker of a real pool,
    set up by its initializer: both signals arrive at the end of the first epoch (step 18)."""
    from trainlab.compare import pool, runner
    from trainlab.engine.loop import Trainer

    out, log = tmp_path / "run", tmp_path / "stderr.log"
    raw = {**CONFIG, "runtime": {**CONFIG["runtime"], "device": "cpu"}}

    def worker() -> int:
        pool._pin_worker(1)
        outcome = runner.execute("late", "a", 3, raw, str(out), "new")
        print(outcome, file=sys.stderr)
        return 0 if outcome["status"] == "interrupted" and outcome["signum"] == signal.SIGTERM else 1

    monkeypatch.setattr(Trainer, "end_epoch", _signalling(Trainer.end_epoch, signal.SIGINT, signal.SIGTERM))
    monkeypatch.setattr(runner, "_stop_requested", False)
    code = wait(fork_call(worker, log))
    monkeypatch.undo()
    err = log.read_text()
    assert code == 0 and "stopped at once" not in err, f"exit {code}: {err}"
    assert status(out) == "interrupted"
    steps = sorted(int(path.name.split("-")[1]) for path in (out / "checkpoint").glob("step-*"))
    assert steps[-1] == 19, (steps, err)  # the SIGTERM's checkpoint, at the next step end; not the cadence's 10
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference


@SIGNALS
def test_a_signal_ends_the_wait_for_disk_space_and_the_run_resumes(signum, reference, tmp_path, monkeypatch):
    """A full disk when the results are written: the run waited 300 s whatever signals came (two SIGTERMs did
    nothing). Now the first one ends the wait: exit 128 + N, one line, and the run resumes to the same model."""

    def full(self, summary):
        raise _enospc(self.path / "summary.json")

    monkeypatch.setattr(RunDir, "write_summary", full)
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    pid = fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log)
    monkeypatch.undo()
    assert wait_until(lambda: log.exists() and "retrying for up to" in log.read_text(), pid, timeout=120) is None, log.read_text()
    os.kill(pid, signum)
    code = wait(pid, timeout=30)
    err = log.read_text()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 128 + signum and "Traceback" not in err and len(errors) == 1, f"exit {code}: {err}"
    name = signal.Signals(signum).name
    assert errors[0].startswith(f"error: {name} received while waiting for disk space to write the run's results: "
                                "stopped at step 36; resuming continues from its last checkpoint"), errors[0]
    assert errors[0].endswith(f"trainlab resume {out.resolve()}")
    assert status(out) == "interrupted"
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert status(out) == "finished" and (out / "model.safetensors").read_bytes() == reference


def test_two_sigterms_mid_training_stop_at_once_with_exit_143(reference, tmp_path, monkeypatch):
    """A second SIGTERM (a scheduler's repeated polite stop) was recorded and ignored: only Ctrl-C escalated."""
    from trainlab.engine.loop import Trainer

    monkeypatch.setattr(Trainer, "end_epoch", _signalling(Trainer.end_epoch, signal.SIGTERM, signal.SIGTERM))
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert code == 143 and len(errors) == 1, log.read_text()
    assert errors[0].startswith("error: SIGTERM received twice: stopped at once at step 18; resuming continues "
                                "from its last checkpoint"), errors[0]
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference


def test_a_signal_while_the_interrupt_unwinds_to_the_cli_keeps_its_line(reference, tmp_path, monkeypatch):
    """A user trial's double Ctrl-C (1 in 16): the second landed once the run's own handler was gone, while
    the run's Interrupted unwound to the CLI, whose handler raised: ``error: interrupted`` replaced the line
    that says where to resume."""
    import trainlab.experiment

    sent: list[int] = []

    def first_checkpoint_then_ctrl_c(*args, **kwargs):
        saved = original_save(*args, **kwargs)
        if not sent:  # the first Ctrl-C: the run checkpoints at its next step and stops
            sent.append(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return saved

    def run_then_ctrl_c_while_unwinding(*args, **kwargs):
        try:
            return original_run(*args, **kwargs)
        except trainlab.errors.Interrupted:
            os.kill(os.getpid(), signal.SIGINT)  # the second, the run's handler gone
            time.sleep(0.05)
            raise

    original_save, original_run = trainlab.engine.checkpoint.save, trainlab.experiment.run_training
    monkeypatch.setattr(trainlab.engine.checkpoint, "save", first_checkpoint_then_ctrl_c)
    monkeypatch.setattr(trainlab.experiment, "run_training", run_then_ctrl_c_while_unwinding)
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    lines = log.read_text().splitlines()
    assert code == 130 and lines == [f"error: SIGINT received: stopped at step 11 after writing a checkpoint; "
                                     f"continue with: trainlab resume {out.resolve()}"], lines
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference


def test_a_second_signal_after_the_signals_checkpoint_is_in_place_names_that_checkpoint(reference, tmp_path,
                                                                                          monkeypatch):
    """A user trial's double Ctrl-C (2 in 21): the second landed as the first one's checkpoint (step 28) had been
    renamed into place, before the saver took note of it: "resuming continues from its last checkpoint
    (step-000000025)", where the resume went on from step 28."""
    calls: list[int] = []

    def save(*args, **kwargs):
        saved = original_save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # the first Ctrl-C at the first checkpoint (step 10): the run checkpoints step 11
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        elif len(calls) == 2:  # step 11's checkpoint in place: the second Ctrl-C, as the run's handler raises it
            raise KeyboardInterrupt
        return saved

    original_save = trainlab.engine.checkpoint.save
    monkeypatch.setattr(trainlab.engine.checkpoint, "save", save)
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(out)], log))
    monkeypatch.undo()
    lines = log.read_text().splitlines()
    assert code == 130 and len(lines) == 1, lines
    assert lines[0].startswith("error: SIGINT received: stopped at once at step 11; resuming continues from its last "
                               f"checkpoint ({out.resolve() / 'checkpoint' / 'step-000000011'})"), lines
    assert run_inline(["resume", str(out), "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == reference


def test_the_checkpoint_named_is_the_newest_of_this_runs_up_to_the_step_it_stopped_at(tmp_path):
    """Review: a step folder beyond the stop is none of this run's (one a resume skipped as unreadable, which the
    next resume skips again); one up to it, newer than the saver's last, was renamed into place whole."""
    from types import SimpleNamespace

    from trainlab.experiment import _newest_checkpoint

    for step in (10, 20):
        (tmp_path / "checkpoint" / f"step-{step:09d}").mkdir(parents=True)
    run = SimpleNamespace(checkpoints=tmp_path / "checkpoint")
    resumed = SimpleNamespace(last_saved=str(tmp_path / "checkpoint" / "step-000000010"))
    assert _newest_checkpoint(run, resumed, 15) == resumed.last_saved  # step 20: an older run's, skipped
    assert _newest_checkpoint(run, resumed, 20) == str(tmp_path / "checkpoint" / "step-000000020")
    assert _newest_checkpoint(run, SimpleNamespace(last_saved=None), 5) is None
    assert _newest_checkpoint(run, SimpleNamespace(last_saved=None), 12) == str(tmp_path / "checkpoint" / "step-000000010")


# --------------------------------------------------------------------------- 3. what a write error before run.json leaves

def _fail_run_json(monkeypatch):
    def full(self, **fields):
        raise _enospc(self.path / "run.json")

    monkeypatch.setattr(RunDir, "write_info", full)


def test_a_train_stopped_by_a_full_disk_before_run_json_is_rerun_as_the_message_says(reference, tmp_path,
                                                                                     monkeypatch, capsys):
    """It said "resume once the disk is writable"; resume said "no run.json" and train again "already exists"."""
    config, out = write_config(tmp_path / "config.yaml", CONFIG), tmp_path / "run"
    _fail_run_json(monkeypatch)
    assert run_inline(["train", str(config), "--out", str(out), "--quiet"]) == 5
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert err == (f"error: cannot write ({out / 'run.json'}): No space left on device; training had not started: "
                   "rerun the same command once the disk is writable")
    left = sorted(p.name for p in out.iterdir())
    assert left == ["config.yaml", "labels.json", "model.json", "preprocessing.json"], left  # no lock, no run.json
    assert run_inline(["resume", str(out)]) == 2
    assert "rerun that same command" in capsys.readouterr().err
    assert run_inline(["train", str(config), "--out", str(out), "--quiet"]) == 0
    assert status(out) == "finished" and (out / "model.safetensors").read_bytes() == reference


@pytest.mark.parametrize("other", ["a user's file", "another config's records", "a user's config.yaml"])
def test_a_folder_with_anything_else_is_not_reused_and_keeps_every_file(other, reference, tmp_path, monkeypatch,
                                                                        capsys):
    config, out = write_config(tmp_path / "config.yaml", CONFIG), tmp_path / "run"
    if other == "a user's config.yaml":
        out.mkdir()
        (out / "config.yaml").write_text("name: mine\n")
    else:
        changed = {**CONFIG, "model": {"name": "mlp", "hidden": [8]}} if other.startswith("another") else CONFIG
        _fail_run_json(monkeypatch)
        assert run_inline(["train", str(write_config(tmp_path / "first.yaml", changed)), "--out", str(out),
                           "--quiet"]) == 5
        monkeypatch.undo()
        if other == "a user's file":
            (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert run_inline(["train", str(config), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------- 4. a full disk's error names the file

def test_the_lock_s_pid_write_on_a_full_disk_names_the_lock_and_leaves_it_free(tmp_path, monkeypatch):
    def full(fd, data, offset):
        raise _enospc()

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError) as failed:
        RunLock(tmp_path).acquire()
    monkeypatch.undo()
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(tmp_path / ".lock")
    lock = RunLock(tmp_path)  # free: the failed attempt closed its descriptor
    lock.acquire()
    lock.release()


def test_a_plot_on_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from trainlab.plots import save_figure

    def full(self, *args, **kwargs):
        raise _enospc()

    monkeypatch.setattr(Figure, "savefig", full)
    target = tmp_path / "curves.png"
    with pytest.raises(OSError) as failed:
        save_figure(Figure(), target)
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_names_the_plot_it_could_not_write(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    def full(self, *args, **kwargs):
        raise _enospc()

    run = tmp_path / "run"
    assert run_inline(["train", str(write_config(tmp_path / "config.yaml", CONFIG)), "--out", str(run),
                       "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(Figure, "savefig", full)
    assert trainlab.cli.main(["plot", str(run), "--out", str(tmp_path / "curves.png")]) == 5
    assert capsys.readouterr().err.startswith(f"error: cannot write ({tmp_path / 'curves.png'}): No space left")
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_a_comparison_worker_takes_a_repeated_signal_as_one_stop():
    """A SIGTERM to the whole process group and the parent's forwarded one reach a worker's run: one stop,
    with its checkpoint (``escalates`` off), where a lone run stops at once at the second."""
    from trainlab.callbacks.signal_stop import SignalStop

    alone = SignalStop()
    alone.handler(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):
        alone.handler(signal.SIGTERM, None)
    worker = SignalStop()
    worker.escalates = False  # what compare.pool._pin_worker sets for its process (on the class)
    worker.handler(signal.SIGTERM, None)
    worker.handler(signal.SIGTERM, None)
    assert worker.received == signal.SIGTERM and worker.signals == [signal.SIGTERM, signal.SIGTERM]


def test_a_keyboard_interrupt_of_the_users_code_is_not_called_a_signal(tmp_path):
    """A callback's KeyboardInterrupt (a notebook's own stop) was said as "SIGINT received: stopped at once",
    though no signal came."""
    from trainlab.callbacks.base import Callback
    from trainlab.config import validate
    from trainlab.experiment import train

    class StopAtThree(Callback):
        def on_step_end(self, view, loss):
            if view.state.step == 3:
                raise KeyboardInterrupt

    with pytest.raises(trainlab.errors.Interrupted) as caught:
        train(validate(CONFIG), out=tmp_path / "run", quiet=True, callbacks=[StopAtThree()])
    assert str(caught.value).startswith("KeyboardInterrupt raised (no signal received): stopped at once at step 3")
    assert caught.value.exit_code == 130
