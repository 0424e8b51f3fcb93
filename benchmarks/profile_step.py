"""Where trainlab's per-step time goes, next to the hand-written loop of overhead.py.

Runs the overhead task (MLP 784-128-64-10 + Adam, MNIST-shaped data) for ``--epochs`` epochs of
trainlab with every default run-folder callback, and the same number of raw-loop steps. Two views:

* counters: each per-step part of trainlab is wrapped with ``time.perf_counter`` on the instance
  (callbacks' on_step_start and on_step_end, the batch fetch, the Step's train_step, and the rest of
  ``run_epoch``: plan slicing, loss tallies, state updates), timed over the epochs after the first;
  the raw loop's steps are timed in the same process right after. Each wrapper adds ~0.2 us.
* ``--cprofile``: the top functions by own time of one more trainlab epoch under cProfile
  (cProfile inflates Python-heavy code, so read it for ranking, not for microseconds).

    python benchmarks/profile_step.py [--batch-size 64] [--epochs 3] [--threads 1] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import overhead_config, raw_loop  # noqa: E402
from sidebyside import as_trainlab_train  # noqa: E402

from trainlab.callbacks.base import Callback, Event, TrainerView  # noqa: E402


class Counters:
    """Seconds per named part, counted only while ``on``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.on = False

    def wrap(self, owner: Any, attribute: str, label: str) -> None:
        inner = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                if self.on:
                    self.seconds[label] += time.perf_counter() - started
                    self.calls[label] += 1

        setattr(owner, attribute, timed)


class EpochClock(Callback):
    """Turns the counters on from the second epoch and times each whole epoch's steps (no validation)."""

    order = 0
    name = "epoch_clock"

    def __init__(self, counters: Counters):
        self.counters, self.steps, self.seconds = counters, 0, 0.0

    def on_epoch_start(self, view: TrainerView) -> None:
        self.counters.on = view.state.epoch >= 1
        self.started, self.first_step = time.perf_counter(), view.state.step

    def on_validation_end(self, view: TrainerView, record: dict) -> None:
        if self.counters.on:  # the record is made after the last step, before this hook: its time is in
            self.seconds += time.perf_counter() - self.started
            self.steps += view.state.step - self.first_step
        self.counters.on = False


def profile(batch_size: int, epochs: int, use_cprofile: bool) -> None:
    config = overhead_config(batch_size, 1 + epochs)
    with as_trainlab_train(config) as built:
        trainer = built.trainer
        counters = Counters()
        clock = EpochClock(counters)
        trainer.add_callbacks([clock])
        hooks = trainer.callbacks.hooks
        for event in (Event.STEP_START, Event.STEP_END):
            for i, hook in enumerate(hooks[event]):
                holder = type("Holder", (), {})()
                holder.hook = hook
                counters.wrap(holder, "hook", f"{event.value}: {type(hook.__self__).__name__}")
                hooks[event][i] = holder.hook
        counters.wrap(trainer.batches, "fetch", "batches.fetch (x[index], y[index])")
        counters.wrap(trainer.step, "train_step", "step.train_step")
        counters.wrap(trainer, "_tally", "trainer._tally (loss sums)")
        counters.wrap(trainer.step.objective.loss, "forward", "  in train_step: loss (its forward)")
        counters.wrap(trainer.step.optimizer, "step", "  in train_step: optimizer.step")
        counters.wrap(trainer.step.optimizer, "zero_grad", "  in train_step: optimizer.zero_grad")
        trainer.fit()
        if use_cprofile:
            with as_trainlab_train(overhead_config(batch_size, 1)) as again:
                profiler = cProfile.Profile()
                profiler.enable()
                again.trainer.fit()
                profiler.disable()
        raw = raw_loop(trainer.batches.x, trainer.batches.y, batch_size)
        raw.steps(trainer.plan.steps_per_epoch)  # warm-up
        started = time.perf_counter()
        raw.steps(clock.steps)
        raw_s = time.perf_counter() - started

    per_step = {label: seconds / clock.steps * 1e6 for label, seconds in counters.seconds.items()}
    total_us, raw_us = clock.seconds / clock.steps * 1e6, raw_s / clock.steps * 1e6
    named = sum(v for k, v in per_step.items() if not k.startswith("  "))
    print(f"batch {batch_size}, threads {torch.get_num_threads()}, {clock.steps} timed steps")
    print(f"  raw loop step (timed after trainlab)       {raw_us:8.1f} us")
    print(f"  trainlab step, whole (epoch time / steps)  {total_us:8.1f} us   ratio {total_us / raw_us:.3f}")
    for label, us in sorted(per_step.items(), key=lambda kv: kv[0].startswith("  ")):
        print(f"    {label:<45}{us:8.1f} us")
    print(f"    {'rest of run_epoch (plan, state, dispatch)':<45}{total_us - named:8.1f} us")
    if use_cprofile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile(args.batch_size, args.epochs, args.cprofile)


if __name__ == "__main__":
    main()
