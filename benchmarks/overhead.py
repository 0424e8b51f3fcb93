"""trainlab's training loop vs a hand-written PyTorch loop, side by side in one process.

Same model (MLP 784-128-64-10), same optimizer (Adam, lr 1e-3, fused where torch has it),
same batch size (64), same in-memory MNIST-shaped data (60,000 random images and labels),
same per-epoch shuffling by an indexed permutation. The two are timed alternately, after a
warm-up epoch each, and the ratio of median epoch times is printed. trainlab runs with its
default callbacks (LR schedule adapter, divergence guard, checkpoint cadence by time, signal
handling, metrics recorder); an epoch is timed from its start to the end of its last step, so
the per-epoch validation (which the raw loop does not do) is left out.

    python benchmarks/overhead.py [--epochs 3] [--batch-size 64] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from trainlab.config import validate
from trainlab.data import DATA_SOURCES, RawData
from trainlab.engine.callbacks import Callback, CallbackList
from trainlab.experiment import _attach_run_callbacks, build
from trainlab.runs import RunDir
from trainlab.runtime import environment

N, FEATURES, CLASSES = 60_000, 784, 10


class EpochTimer(Callback):
    """Wall time from an epoch's start to the end of its last step (validation excluded)."""

    order = 99
    name = "epoch_timer"

    def on_epoch_start(self, trainer) -> None:
        self.started = time.perf_counter()
        self.steps_left = trainer.steps_per_epoch

    def on_step_end(self, trainer, loss) -> None:
        self.steps_left -= 1
        if self.steps_left == 0:
            self.last = time.perf_counter() - self.started


@DATA_SOURCES.register("benchmark_mnist_shaped")
def mnist_shaped(n: int = N) -> RawData:
    rng = np.random.default_rng(0)
    x = rng.random((n, FEATURES), dtype=np.float32)
    y = rng.integers(0, CLASSES, n)
    return RawData(x, y, x[:100], y[:100], x[:100], y[:100], task="multiclass")


def raw_epoch(model, optimizer, x, y, batch_size, epoch) -> None:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
    loss_fn = nn.functional.cross_entropy
    for start in range(0, len(x), batch_size):
        index = order[start:start + batch_size]
        loss = loss_fn(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
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

        timer = EpochTimer()
        trainer.callbacks = CallbackList([*trainer.callbacks.callbacks, timer])
        trainer.settings = replace(trainer.settings, epochs=1)
        trainer.fit()  # warm-up epoch (first-call costs) for trainlab
        raw_epoch(raw_model, raw_optimizer, x, y, args.batch_size, 0)  # and for the raw loop
        times: dict[str, list[float]] = {"raw": [], "trainlab": []}
        for epoch in range(1, args.epochs + 1):
            for name in ("raw", "trainlab") if epoch % 2 else ("trainlab", "raw"):  # alternate who goes first
                if name == "raw":
                    started = time.perf_counter()
                    raw_epoch(raw_model, raw_optimizer, x, y, args.batch_size, epoch)
                    times["raw"].append(time.perf_counter() - started)
                else:
                    trainer.settings = replace(trainer.settings, epochs=epoch + 1)
                    trainer.fit()  # one more epoch; the timer measures it from its start to its last step
                    times["trainlab"].append(timer.last)
        run.close()

    raw, ours = statistics.median(times["raw"]), statistics.median(times["trainlab"])
    steps = -(-len(x) // args.batch_size)
    print(f"environment: {environment()}")
    print(f"MLP 784-128-64-10, Adam (fused), batch {args.batch_size}, {len(x)} samples, {steps} steps/epoch, "
          f"{args.epochs} timed epochs each (median)")
    print(f"raw PyTorch loop : {raw:.3f} s/epoch ({steps / raw:.0f} steps/s)")
    print(f"trainlab         : {ours:.3f} s/epoch ({steps / ours:.0f} steps/s; all default callbacks on)")
    print(f"ratio trainlab / raw = {ours / raw:.3f}")


if __name__ == "__main__":
    main()
