"""Timing two training loops side by side: trainlab's and a reference loop, in alternating chunks.

Used by overhead.py (vs a hand-written loop), vs_tutorial.py (vs the tutorials' DataLoader loops),
vs_lightning.py (vs PyTorch Lightning), vs_hf_trainer.py (vs the Hugging Face Trainer) and
cifar_speedrun.py (vs the plain-PyTorch speedrun). A library that owns its loop runs in a
:class:`ParkedFit` thread; trainlab's side runs as ``trainlab train`` runs it (:func:`as_trainlab_train`,
which profile_step.py and speedrun_profile.py use too).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from trainlab.builders import Built, build, run_scope
from trainlab.callbacks.base import Callback, TrainerView
from trainlab.config import Config
from trainlab.experiment import attach_run_folder_callbacks
from trainlab.run_folder import RunDir


class ParkedFit:
    """Another library's fit loop in its own thread, parked after every chunk of steps.

    The library's callback calls :meth:`begin` when training starts and :meth:`after_step` after each
    optimizer step (True: stop the fit now). :meth:`steps` lets the fit run ``count`` steps and waits
    for them, so only one side computes at any moment; :meth:`close` ends the fit.
    """

    def __init__(self, name: str, threads: int):
        self.name, self.threads = name, threads
        self.go, self.done = threading.Semaphore(0), threading.Semaphore(0)
        self.remaining, self.finish = 0, False
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self, fit: Callable[[], object]) -> ParkedFit:
        self.thread = threading.Thread(target=self._run, args=(fit,), daemon=True)
        self.thread.start()
        return self

    def _run(self, fit: Callable[[], object]) -> None:
        torch.set_num_threads(self.threads)  # the intra-op thread count is per thread
        try:
            fit()
        except BaseException as exc:  # surfaced in steps()
            self.error = exc
            self.done.release()

    def begin(self) -> None:
        self.go.acquire()

    def after_step(self) -> bool:
        self.remaining -= 1
        if self.remaining > 0:
            return False
        self.done.release()
        self.go.acquire()
        return self.finish

    def steps(self, count: int) -> None:
        self.remaining = count
        self.go.release()
        self.done.acquire()
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error!r}") from self.error

    def close(self, timeout: float = 120) -> None:
        self.finish, self.remaining = True, 1
        self.go.release()
        if self.thread is not None:
            self.thread.join(timeout=timeout)


@contextlib.contextmanager
def as_trainlab_train(config: Config) -> Iterator[Built]:
    """``build(config)`` inside its ``run_scope``, its trainer given a temporary run folder's callbacks
    (checkpoint saver, metrics recorder, signal handler, loggers) as ``trainlab train`` gives them, so a
    timed ``fit`` pays what a user's run pays; the folder is closed and removed afterwards."""
    with run_scope(config), tempfile.TemporaryDirectory() as folder:
        built = build(config, quiet=True)
        run = RunDir.create(Path(folder) / "run")
        try:
            attach_run_folder_callbacks(built, run, quiet=True, user=[])
            yield built
        finally:
            run.close()


def no_sync() -> None:
    """A CPU's kernels have finished when they return: nothing to wait for."""


def device_sync(device: torch.device | str) -> Callable[[], None]:
    """``torch.cuda.synchronize`` for a CUDA device (GPU kernels run asynchronously), :func:`no_sync` elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_sync


class Interleave(Callback):
    """Every ``chunk`` trainlab steps, run ``chunk`` reference steps, timing both sides.

    Both loops share the process, the data and the moment: a chunk of trainlab steps (with every
    callback it fires) is timed, then the same number of reference steps right after it, so a drift
    of the machine's speed hits both sides alike. trainlab's first ``skip_steps`` steps are its
    warm-up (nothing is timed); right after them the reference loop gets its own warm-up of
    ``warmup_steps`` steps. The partial chunk that contains an epoch's end (and its validation) is
    dropped. On a GPU, ``sync`` (``torch.cuda.synchronize``) runs before every clock reading, so a
    chunk's time is the time its kernels took to finish, not to be queued.
    """

    order = 99  # after every built-in callback: a chunk's time includes their step hooks
    name = "interleave"

    def __init__(self, chunk: int, reference_steps: Callable[[int], None], skip_steps: int = 0,
                 warmup_steps: int = 0, sync: Callable[[], None] = no_sync):
        self.chunk, self.reference_steps, self.sync = chunk, reference_steps, sync
        self.skip_steps, self.warmup_steps = skip_steps, warmup_steps
        self.pairs: list[tuple[float, float]] = []  # (trainlab seconds, reference seconds) per chunk
        self.active = False
        self._restart()

    def _restart(self) -> None:
        self.sync()
        self.count, self.resumed = 0, time.perf_counter()

    def on_epoch_start(self, view: TrainerView) -> None:
        self._restart()

    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None:
        if not self.active:
            if view.state.step >= self.skip_steps:
                self.active = True
                if self.warmup_steps:
                    self.reference_steps(self.warmup_steps)
                self._restart()
            return
        self.count += 1
        if self.count < self.chunk:
            return
        self.sync()
        ours = time.perf_counter() - self.resumed
        started = time.perf_counter()
        self.reference_steps(self.chunk)
        self.sync()
        self.pairs.append((ours, time.perf_counter() - started))
        self._restart()


def summarize(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """Median and quartiles of the per-chunk ratio trainlab / reference, and the ratio of total times.

    ``ours_s`` and ``theirs_s`` are the median seconds per chunk of each side. The quartiles are
    ``statistics.quantiles(method="inclusive")``, the linear interpolation of ``np.percentile``'s
    default (as data_loading.py and mfu.py): they stay within the observed ratios, where the
    default "exclusive" method extrapolates past them (ratios [1, 2] would give 0.75 and 2.25).
    """
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 chunk pairs to summarize; got {len(pairs)} (more epochs or a smaller chunk)")
    ratios = sorted(ours / theirs for ours, theirs in pairs)
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return {"median": statistics.median(ratios), "q1": low, "q3": high, "chunks": len(ratios),
            "total": sum(p[0] for p in pairs) / sum(p[1] for p in pairs),
            "ours_s": statistics.median(p[0] for p in pairs), "theirs_s": statistics.median(p[1] for p in pairs)}
