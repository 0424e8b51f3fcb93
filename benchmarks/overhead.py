"""trainlab's training loop vs a hand-written PyTorch loop, side by side in one process.

Same model (MLP 784-128-64-10), same optimizer (Adam, lr 1e-3, fused where torch has it),
same batch size (64), same in-memory MNIST-shaped data (60,000 random images and labels),
same per-epoch shuffling by an indexed permutation. After a warm-up epoch each, the two loops
take turns in chunks of ``--chunk`` optimizer steps (50: about 40 ms a side here), so the
machine's speed swings (this 2-core VM's epoch times wander by up to 1.7x) hit both sides alike.
Printed: the median and quartiles of the per-chunk ratio (trainlab time / raw time) and the ratio
of total times. trainlab runs with its default callbacks (LR schedule adapter, divergence guard,
checkpoint cadence by time, signal handling, metrics recorder); the chunks that contain an epoch's
end, with its validation (which the raw loop does not do), are left out.

    python benchmarks/overhead.py [--epochs 3] [--chunk 50] [--batch-size 64] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from sidebyside import Interleave, summarize  # benchmarks/sidebyside.py, beside this script
from torch import nn

from trainlab.callbacks.base import CallbackList, Event
from trainlab.config import validate
from trainlab.data import DATA_SOURCES, RawData
from trainlab.experiment import _attach_run_callbacks, build
from trainlab.run_folder import RunDir
from trainlab.runtime import environment

N, FEATURES, CLASSES = 60_000, 784, 10


@DATA_SOURCES.register("benchmark_mnist_shaped")
def mnist_shaped(n: int = N) -> RawData:
    rng = np.random.default_rng(0)
    x = rng.random((n, FEATURES), dtype=np.float32)
    y = rng.integers(0, CLASSES, n)
    return RawData(x, y, x[:100], y[:100], x[:100], y[:100], task="multiclass")


class RawLoop:
    """The hand-written loop: a shuffled permutation per epoch, index, forward, backward, step."""

    def __init__(self, model, optimizer, x, y, batch_size):
        self.model, self.optimizer, self.x, self.y, self.batch_size = model, optimizer, x, y, batch_size
        self.epoch, self.start = 0, len(x)

    def steps(self, count: int) -> None:
        model, optimizer, x, y, bs = self.model, self.optimizer, self.x, self.y, self.batch_size
        loss_fn = nn.functional.cross_entropy
        for _ in range(count):
            if self.start >= len(x):
                self.order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.epoch))
                self.epoch, self.start = self.epoch + 1, 0
            index = self.order[self.start:self.start + bs]
            self.start += bs
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def hook_cost(trainer, steps: int = 20_000) -> float:
    """Microseconds per step spent in the callbacks' step hooks (on_step_start + on_step_end), timed alone."""
    loss = torch.tensor(2.3)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.callbacks.fire(Event.STEP_START, trainer)
        trainer.callbacks.fire(Event.STEP_END, trainer, loss)
    return (time.perf_counter() - started) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=50, help="steps per side before switching")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = validate({
        "name": "overhead", "seed": 0,
        "data": {"source": "benchmark_mnist_shaped"},
        "model": {"name": "mlp", "hidden": [128, 64]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 1e-3},
                     "batch_size": args.batch_size, "epochs": 10_000},
        "metrics": ["accuracy"],
        "output": {"progress": "off"},
    })
    built = build(config, quiet=True)
    trainer = built.trainer
    with tempfile.TemporaryDirectory() as folder:
        run = RunDir.create(f"{folder}/run")
        _attach_run_callbacks(built, run, quiet=True)

        torch.manual_seed(0)
        raw_model = nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                                  nn.Linear(64, CLASSES))
        raw_optimizer = torch.optim.Adam(raw_model.parameters(), lr=1e-3, fused=True)
        x, y = built.data.train.x, built.data.train.y

        raw = RawLoop(raw_model, raw_optimizer, x, y, args.batch_size)
        steps = -(-len(x) // args.batch_size)
        trainer.settings = replace(trainer.settings, epochs=1)
        trainer.fit()  # warm-up epoch (first-call costs) for trainlab
        raw.steps(steps)  # and for the raw loop
        interleave = Interleave(args.chunk, raw.steps)
        trainer.callbacks = CallbackList([*trainer.callbacks.callbacks, interleave])
        trainer.settings = replace(trainer.settings, epochs=1 + args.epochs)
        trainer.fit()
        trainer.callbacks = CallbackList([cb for cb in trainer.callbacks.callbacks if cb is not interleave])
        hooks_us = hook_cost(trainer)
        run.close()

    stats = summarize(interleave.pairs)
    print(f"environment: {environment()}")
    print(f"MLP 784-128-64-10, Adam (fused), batch {args.batch_size}, {len(x)} samples, {steps} steps/epoch, "
          f"{args.epochs} epochs of trainlab interleaved with the raw loop in chunks of {args.chunk} steps "
          f"({stats['chunks']} chunk pairs)")
    print(f"raw PyTorch loop : {args.chunk / stats['theirs_s']:.0f} steps/s (median chunk)")
    print(f"trainlab         : {args.chunk / stats['ours_s']:.0f} steps/s (median chunk; all default callbacks on)")
    print(f"chunk ratios     : quartiles {stats['q1']:.3f} / {stats['median']:.3f} / {stats['q3']:.3f}")
    print(f"callback hooks   : {hooks_us:.1f} us per step of {stats['ours_s'] / args.chunk * 1e6:.0f} us, timed alone "
          f"(LR adapter, signals, divergence guard, checkpoint cadence)")
    print(f"ratio trainlab / raw = {stats['median']:.3f} (median of chunk pairs; total time {stats['total']:.3f})")


if __name__ == "__main__":
    main()
