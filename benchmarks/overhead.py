"""trainlab's training loop vs a hand-written PyTorch loop, side by side in one process.

Same model (MLP 784-128-64-10), same optimizer (Adam, lr 1e-3, fused where torch has it), same
batch size (64 and 512 by default), same in-memory MNIST-shaped data (60,000 random float32 images
and labels), same per-epoch shuffling by an indexed permutation. trainlab trains through the whole
engine (``build`` inside ``run_scope``, ``Trainer.fit``) with every default callback of a run folder
(LR schedule adapter, divergence guard, checkpoint saver, metrics recorder, signal stop). After a
warm-up epoch of each, the two loops take turns in chunks of about ``--chunk-samples`` rows
(3,200: 50 steps at batch 64, 6 at batch 512), so the machine's speed swings (this shared 2-core
VM's epoch times wander by up to 1.7x) hit both sides alike. Reported per batch size: the median
and quartiles of the per-chunk ratio (trainlab time / raw time) and the ratio of total times. The
chunks that contain an epoch's end, with its validation (which the raw loop does not do), are left out.

Writes ``benchmarks/results/overhead.json`` (see benchmarks/evidence.py) with
``"ratios": {"trainlab/raw b64": ..., "trainlab/raw b512": ...}``. With ``--device cuda`` both loops
keep data, model and optimizer on the GPU, the clocks are read after ``torch.cuda.synchronize``,
and the file is ``overhead_cuda.json``.

    python benchmarks/overhead.py [--batch-sizes 64 512] [--epochs 3] [--chunk-samples 3200] [--threads N]
                                  [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sidebyside, evidence: beside this script
from evidence import write_result  # noqa: E402
from sidebyside import Interleave, as_trainlab_train, device_sync, summarize  # noqa: E402

from trainlab.callbacks.base import Event  # noqa: E402
from trainlab.callbacks.callback_list import CallbackList  # noqa: E402
from trainlab.config import Config, validate  # noqa: E402
from trainlab.data import DATA_SOURCES, RawData  # noqa: E402
from trainlab.engine.loop import Trainer  # noqa: E402

N, FEATURES, CLASSES = 60_000, 784, 10
SOURCE = "benchmark_mnist_shaped"


def mnist_shaped(n: int = N) -> RawData:
    """60,000 random float32 'images' of 784 pixels in [0, 1) and labels 0-9 (seeded; no files), and 100 more
    of each for val and test (rows of their own: copies of training rows are warned of)."""
    rng = np.random.default_rng(0)
    x = rng.random((n + 200, FEATURES), dtype=np.float32)
    y = rng.integers(0, CLASSES, n + 200)
    return RawData(x[:n], y[:n], x[n:n + 100], y[n:n + 100], x[n + 100:], y[n + 100:], task="multiclass")


if SOURCE not in DATA_SOURCES.names():
    DATA_SOURCES.register(SOURCE)(mnist_shaped)


def overhead_config(batch_size: int, epochs: int, device: str = "cpu") -> Config:
    return validate({
        "name": "overhead", "seed": 0,
        "data": {"source": SOURCE},
        "model": {"name": "mlp", "hidden": [128, 64]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 1e-3},
                     "batch_size": batch_size, "epochs": epochs},
        "metrics": ["accuracy"],
        "output": {"progress": "off"},
        "runtime": {"device": device},
    })


class RawLoop:
    """The hand-written loop: a shuffled permutation per epoch, index, forward, backward, step.

    ``gather="index"`` takes the batch as tutorials write it, ``x[index]``; ``"index_select"`` as
    trainlab's ``TensorBatches.fetch`` does, ``x.index_select(0, index)`` (same values, ~4x faster
    for 64 rows on a CPU): the second pairing isolates trainlab's loop from that difference.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int, gather: str = "index"):
        self.model, self.optimizer, self.x, self.y, self.batch_size = model, optimizer, x, y, batch_size
        self.gather = gather
        self.epoch, self.start = 0, len(x)

    def steps(self, count: int) -> None:
        model, optimizer, x, y, bs = self.model, self.optimizer, self.x, self.y, self.batch_size
        loss_fn = nn.functional.cross_entropy
        select = self.gather == "index_select"
        for _ in range(count):
            if self.start >= len(x):
                self.order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.epoch)).to(x.device)
                self.epoch, self.start = self.epoch + 1, 0
            index = self.order[self.start:self.start + bs]
            self.start += bs
            if select:
                loss = loss_fn(model(x.index_select(0, index)), y.index_select(0, index))
            else:
                loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def raw_loop(x: torch.Tensor, y: torch.Tensor, batch_size: int, gather: str = "index") -> RawLoop:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    model.to(x.device)
    return RawLoop(model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=True), x, y, batch_size, gather)


def hook_cost(trainer: Trainer, steps: int = 20_000) -> float:
    """Microseconds per step spent in the callbacks' step hooks (on_step_start + on_step_end), timed alone."""
    loss = torch.tensor(2.3)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.callbacks.fire(Event.STEP_START, trainer.view)
        trainer.callbacks.fire(Event.STEP_END, trainer.view, loss)
    return (time.perf_counter() - started) / steps * 1e6


def measure(batch_size: int, epochs: int, chunk: int, gather: str = "index", device: str = "cpu") -> dict[str, Any]:
    """One warm-up epoch, then ``epochs`` epochs of trainlab interleaved with the raw loop; the chunk statistics."""
    config = overhead_config(batch_size, 1 + epochs, device)
    with as_trainlab_train(config) as built:
        trainer = built.trainer
        raw = raw_loop(trainer.batches.x, trainer.batches.y, batch_size, gather)
        steps = trainer.plan.steps_per_epoch
        interleave = Interleave(chunk, raw.steps, skip_steps=steps, warmup_steps=steps,
                                sync=device_sync(trainer.batches.device))
        trainer.add_callbacks([interleave])
        trainer.fit()
        trainer.callbacks = CallbackList([cb for cb in trainer.callbacks.callbacks if cb is not interleave])
        hooks_us = hook_cost(trainer)
    stats = summarize(interleave.pairs)
    return {**stats, "batch_size": batch_size, "gather": gather, "device": device, "chunk_steps": chunk,
            "steps_per_epoch": steps,
            "timed_epochs": epochs, "hooks_us_per_step": hooks_us,
            "raw_steps_per_s": chunk / stats["theirs_s"], "trainlab_steps_per_s": chunk / stats["ours_s"]}


GATHERS = {"index": "raw", "index_select": "raw-index_select"}  # the raw loop's batch gather -> its label


def run(batch_sizes: list[int], epochs: int = 3, chunk_samples: int = 3200, write: bool = True,
        gathers: tuple[str, ...] = tuple(GATHERS), device: str = "cpu") -> dict[str, Any]:
    """Measure every batch size against each raw gather, print the table, write results/overhead[_cuda].json."""
    rows = []
    for bs in batch_sizes:
        for gather in gathers:  # each row printed as it is measured: a run cut short still reports
            row = measure(bs, epochs, max(2, chunk_samples // bs), gather, device)
            rows.append(row)
            print(f"batch {row['batch_size']:>4} vs {GATHERS[row['gather']]:<16}: {row['chunks']} chunk pairs of "
                  f"{row['chunk_steps']} steps; raw {row['raw_steps_per_s']:.0f} steps/s, trainlab "
                  f"{row['trainlab_steps_per_s']:.0f} steps/s (median chunks); ratio trainlab/raw median "
                  f"{row['median']:.3f} (quartiles {row['q1']:.3f} / {row['q3']:.3f}; total {row['total']:.3f}); "
                  f"step hooks {row['hooks_us_per_step']:.1f} us/step", flush=True)
    ratios = {f"trainlab/{GATHERS[row['gather']]} b{row['batch_size']}": row["median"] for row in rows}
    details = {"task": f"MLP 784-128-64-10, Adam lr 1e-3 (fused), {N} MNIST-shaped rows in memory, "
                       "trainlab with every default run-folder callback", "device": device,
               "method": "one process; one warm-up epoch each; then alternating chunks; chunks containing an "
                         "epoch end (validation) dropped; ratio = trainlab chunk time / raw chunk time; "
                         "'raw' gathers batches as x[index], 'raw-index_select' as x.index_select(0, index) "
                         "like trainlab",
               "rows": rows}
    if write:
        path = write_result("overhead" if device == "cpu" else f"overhead_{device}", ratios, details)
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of trainlab after the warm-up epoch")
    parser.add_argument("--chunk-samples", type=int, default=3200,
                        help="rows per chunk and side (chunk steps = this // batch size)")
    parser.add_argument("--gathers", nargs="+", choices=list(GATHERS), default=list(GATHERS),
                        help="the raw loop's batch gather(s): x[index] as tutorials write it, and/or index_select")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/overhead.json alone")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both loops run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.batch_sizes, args.epochs, args.chunk_samples, write=not args.no_write, gathers=tuple(args.gathers),
        device=args.device)


if __name__ == "__main__":
    main()
