"""Real trainlab processes without a Python start-up each: ``os.fork`` the test process and run the CLI.

Starting ``python -m trainlab.cli`` costs seconds on a busy machine (importing torch); a fork of the
test process, which has torch and trainlab imported already (run the reference in-process first
with :func:`run_inline`), starts training at once. The child is
a real process: it installs its own signal handlers, and SIGKILL ends it at any instruction, in the
middle of a checkpoint write or between two files of the run folder. Its stdout goes to /dev/null
and its stderr to a log file, so the test can show what it said.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from trainlab.signal_mask import release_stop_signals, stop_signals_held


def fork_call(call: Callable[[], int], log: Path) -> int:
    """Run ``call()`` in a forked child (stdout to /dev/null, stderr appended to ``log``, SIGINT and SIGTERM
    as in a fresh process), which exits with what it returns (70 when anything escapes it, printed to the
    log); returns the child's pid (reap it with :func:`wait`). Skips the test in a process that has used CUDA."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        import pytest

        pytest.skip("this test process has used CUDA, and PyTorch's autograd threads do not survive a fork: a "
                    "forked child's backward raises; run it with CUDA_VISIBLE_DEVICES='' (benchmarks/gpu/check.sh does)")
    # the child starts with SIGINT and SIGTERM blocked (the test process's handlers would run in it), and
    # unblocks them once its own are installed: no signal can raise before its try (one landing in its
    # finally is stopped by the conftest guard)
    with stop_signals_held():
        pid = os.fork()
        if pid != 0:
            return pid
        # the child: never return into pytest (the block's own exit would unblock the signals here)
        code = 70
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            errors = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(errors, 2)
            sys.stdout = open(os.devnull, "w")  # pytest replaced sys.stdout/stderr with capture objects
            sys.stderr = open(errors, "w", buffering=1, closefd=False)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            release_stop_signals()
            code = call()
        except BaseException:  # anything escaping the call is reported (exit 70)
            import traceback

            traceback.print_exc()
        finally:
            try:
                signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 70)


def fork_cli(args: Sequence[str], log: Path) -> int:
    """Start ``trainlab <args>`` in a forked child; returns its pid (reap it with :func:`wait`)."""

    def cli() -> int:
        from trainlab.cli import main

        return main(list(args))

    return fork_call(cli, log)


def wait(pid: int, timeout: float = 120.0) -> int:
    """Reap ``pid``; its exit code, or -signal when a signal ended it (SIGKILLed when it overruns)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"trainlab process {pid} still running after {timeout} s")
        time.sleep(0.005)


def run_inline(args: Sequence[str]) -> int:
    """Run ``trainlab <args>`` in this process: a reference run, and the imports every fork then shares.

    Each fork would otherwise import what the run needs lazily (scikit-learn, torch.optim's
    compiled paths): seconds per process on a busy machine.
    """
    from trainlab.cli import main

    return main(list(args))


def run_cli(args: Sequence[str], log: Path, timeout: float = 120.0) -> int:
    """Run ``trainlab <args>`` in a forked child to the end; its exit code."""
    return wait(fork_cli(args, log), timeout)


def wait_until(condition: Callable[[], bool], pid: int, timeout: float = 60.0) -> int | None:
    """Poll ``condition`` until it holds (None) or ``pid`` exits first (reaped: its exit code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return None
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.003)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"condition not met within {timeout} s")


def has_checkpoint(run: Path) -> bool:
    return any((run / "checkpoint").glob("step-*"))


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` pinned to the CPU: a forked child cannot use CUDA once its parent has (on a GPU
    machine the suite runs with device auto = cuda), and the reference run must train where the child does."""
    pinned = {**config, "runtime": {**config.get("runtime", {}), "device": "cpu"}}
    path.write_text(yaml.safe_dump(pinned))
    return path


def status(run: Path) -> str | None:
    try:
        return json.loads((run / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def train_losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [record["train_loss"] for record in map(json.loads, lines) if "train_loss" in record]


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def copy_with_only(run: Path, keep: Path, destination: Path, name: str | None = None) -> Path:
    """A copy of ``run`` as a crash right after checkpoint ``keep`` was written would leave it (interrupted).

    The copy holds no model.safetensors, no summary.json and no other checkpoint; ``keep`` may be a
    checkpoint folder kept elsewhere, copied in as ``checkpoint/<name>`` (default: its own name).
    """
    shutil.copytree(run, destination, ignore=shutil.ignore_patterns("model.safetensors", "summary.json", "best",
                                                                   "step-*"))
    shutil.copytree(keep, destination / "checkpoint" / (name or keep.name))
    info = json.loads((destination / "run.json").read_text())
    (destination / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    return destination
