"""Model FLOP utilisation (nanoGPT's MFU) of trainlab's training steps, against matmul peaks of the same run.

For each model below, trainlab builds the run from a config (``build(config)``: data, model, loss,
optimizer, StandardStep) and this script times ``built.step.train_step`` on batches fetched
beforehand through the run's own ``TensorBatches.fetch`` (so the figure is the step's: forward,
loss, backward, optimizer update; data loading is benchmarks/data_loading.py). Per model:

* FLOPs per step: counted by ``FlopCounterMode`` on one batch, forward (+ loss) and backward
  separately (benchmarks/flops.py states what is counted; the 3 x forward rule is recorded too);
* step time: ``--warmup`` untimed steps, then chunks of about ``--chunk`` seconds of steps (one
  step at least), each chunk followed by one square matmul of the best size of the peak sweep, in
  the step's precision, repeated to run about as long as the chunk (1 s at most): the two
  contenders alternate, so the shared machine's speed swings hit both alike; chunks go on until
  ``--max-chunks`` chunks or ``--budget`` seconds of steps, 5 chunks at least;
* achieved FLOP/s = counted FLOPs / median step time; MFU = the median over chunks of (the chunk's
  FLOP/s / the matmul's FLOP/s right after it), with quartiles. The peak sweeps (best of 3 at
  several sizes, before and after the steps) are recorded too, with ``mfu_of_sweep_peak`` =
  achieved / best sweep peak.

The models: the MLP 784-128-64-10 with Adam at batch 64 and 512 (the overhead task, on 60,000
MNIST-shaped rows), ResNet-20 with SGD-Nesterov at batch 128 and the airbench94 net ("speedrun")
with SGD-Nesterov (channels_last both, as examples/cifar10_resnet.yaml) on random CIFAR-shaped uint8
images with the standard augmentation. bf16-autocast steps run only where the CPU has native bf16
(avx512_bf16 / amx_bf16) or with ``--bf16 on``; without it bf16 matmuls run at ~1 GFLOP/s.

Writes ``benchmarks/results/mfu.json`` with ``"ratios": {"mfu fp32 mlp b64": ..., ...}`` (each
the MFU, a fraction of the peak; higher is better).

    python benchmarks/mfu.py [--threads 1] [--max-chunks 30] [--budget 10] [--airbench-batch 256] [--bf16 auto|on|off]
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # evidence, flops, overhead: beside this script
import overhead  # noqa: E402,F401  (registers the MNIST-shaped source)
from evidence import write_result  # noqa: E402
from flops import matmul_flops, matmul_peak, step_flops  # noqa: E402

from trainlab.builders import build, run_scope  # noqa: E402
from trainlab.config import Config, validate  # noqa: E402
from trainlab.data import DATA_SOURCES, RawData  # noqa: E402
from trainlab.data.transforms import image_transforms  # noqa: E402
from trainlab.engine.state import TrainState  # noqa: E402
from trainlab.runtime import cpu_has_native_bf16  # noqa: E402

CIFAR_SOURCE = "benchmark_cifar_shaped"
CIFAR_ROWS = 5000  # enough for one airbench batch of 2000 after the val/test split (60% train)
MIN_CHUNKS = 5  # timed chunks per model, whatever the budget
PEAK_SIZES = {"fp32": (256, 512, 1024, 2048), "bf16": (256, 512, 1024, 2048)}


def cifar_shaped(n: int = CIFAR_ROWS) -> RawData:
    """``n`` random uint8 32x32 RGB images and labels 0-9 (seeded), with CIFAR's augmentation and statistics."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    transforms = partial(image_transforms, mean=(0.491, 0.481, 0.443), std=(0.246, 0.244, 0.262), augment=True)
    return RawData(x, y, task="multiclass", fit_transforms=transforms)


if CIFAR_SOURCE not in DATA_SOURCES.names():
    DATA_SOURCES.register(CIFAR_SOURCE)(cifar_shaped)


def step_config(model: str, batch_size: int, precision: str) -> Config:
    """The run config of one timed step: ``model`` is ``mlp``, ``resnet20`` or ``airbench``."""
    if model == "mlp":
        return validate({
            "name": "mfu_mlp", "seed": 0, "data": {"source": overhead.SOURCE},
            "model": {"name": "mlp", "hidden": [128, 64]},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 1e-3},
                         "batch_size": batch_size, "epochs": 1},
            "runtime": {"precision": precision}, "output": {"progress": "off"}})
    network = {"resnet20": {"name": "resnet", "depth": 20}, "airbench": {"name": "airbench"}}[model]
    return validate({
        "name": f"mfu_{model}", "seed": 0,
        "data": {"source": CIFAR_SOURCE, "val_fraction": 0.02, "test_fraction": 0.02},
        "model": network,
        "strategy": {"loss": {"name": "cross_entropy", "label_smoothing": 0.1},
                     "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                                   "weight_decay": 5e-4},
                     "batch_size": batch_size, "epochs": 1},
        "runtime": {"precision": precision, "channels_last": True}, "output": {"progress": "off"}})


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(median), float(q3)


class PeakKernel:
    """One square matmul in ``dtype`` at the sweep's best size: the contender timed beside each chunk of steps."""

    def __init__(self, dtype: torch.dtype, size: int):
        generator = torch.Generator().manual_seed(1)
        self.a = torch.randn(size, size, generator=generator).to(dtype)
        self.b = torch.randn(size, size, generator=generator).to(dtype)
        self.flops = matmul_flops(size, size, size)
        self.size = size

    def seconds(self, at_least_s: float = 0.0) -> float:
        """Seconds per product, over as many products as fill ``min(at_least_s, 1 s)`` (one at least)."""
        count, started = 0, time.perf_counter()
        while True:
            torch.mm(self.a, self.b)
            count += 1
            elapsed = time.perf_counter() - started
            if elapsed >= min(at_least_s, 1.0):
                return elapsed / count


def measure_step(model: str, batch_size: int, precision: str, peak: PeakKernel, max_chunks: int, warmup: int,
                 budget_s: float, chunk_s: float) -> dict[str, Any]:
    """Build the run, count one batch's FLOPs, then time chunks of train_steps, each followed by peak matmuls.

    A chunk is as many steps as take about ``chunk_s`` (one at least); its pair ratio is the
    chunk's FLOP/s over the matmul's right after it, so the shared machine's speed swings hit both
    alike. Chunks are timed until ``max_chunks`` chunks, or ``budget_s`` seconds of steps once
    :data:`MIN_CHUNKS` chunks are in. MFU = the median pair ratio.
    """
    config = step_config(model, batch_size, precision)
    with run_scope(config):
        built = build(config, quiet=True)
        step, batches = built.step, built.trainer.batches
        order = built.trainer.plan.order(0)
        whole_batches = len(order) // batch_size

        def batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:  # epoch 0's full batches, over and over
            start = (i % whole_batches) * batch_size
            return batches.fetch(order[start:start + batch_size], i)

        x, y = batch(0)
        if step.options.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        step.set_mode(True)
        counted = step_flops(step.model, step.objective.loss, x, y,
                             torch.bfloat16 if precision == "bf16" else None)
        state = TrainState()

        def run_steps(count: int) -> float:
            fetched = [batch(state.step + i) for i in range(count)]  # outside the timer: the step's time only
            started = time.perf_counter()
            for one in fetched:
                step.train_step([one], state)
                state.step += 1
            return time.perf_counter() - started

        warmup_s = run_steps(warmup) / max(warmup, 1)
        peak.seconds()
        chunk_steps = max(1, round(chunk_s / max(warmup_s, 1e-6)))
        pairs: list[tuple[float, float]] = []  # (chunk seconds per step, matmul seconds)
        spent, timed = 0.0, 0
        while len(pairs) < MIN_CHUNKS or (len(pairs) < max_chunks and spent < budget_s):
            chunk_time = run_steps(chunk_steps)
            # the matmul side runs about as long as the chunk (up to 1 s): equal exposure to the swings
            pairs.append((chunk_time / chunk_steps, peak.seconds(chunk_time)))
            spent, timed = spent + chunk_time, timed + chunk_steps
    step_times = [p[0] for p in pairs]
    mfus = [(counted.total / step_s) / (peak.flops / matmul_s) for step_s, matmul_s in pairs]
    q1, median, q3 = _quartiles(step_times)
    mfu_q1, mfu, mfu_q3 = _quartiles(mfus)
    return {"model": model, "batch_size": batch_size, "precision": precision,
            "parameters": built.notes.get("parameters"), "optimizer": config.strategy.optimizer.name,
            "forward_flops": counted.forward, "backward_flops": counted.backward, "step_flops": counted.total,
            "three_times_forward_flops": counted.three_times_forward,
            "warmup_steps": warmup, "chunk_steps": chunk_steps, "chunks": len(pairs), "timed_steps": timed,
            "timed_s": spent, "step_s_median": median, "step_s_q1": q1, "step_s_q3": q3,
            "samples_per_s": batch_size / median, "achieved_flops_per_s": counted.total / median,
            "peak_kernel": f"{peak.size}x{peak.size} {precision} matmul",
            "peak_flops_per_s_beside": peak.flops / float(np.median([p[1] for p in pairs])),
            "mfu": mfu, "mfu_q1": mfu_q1, "mfu_q3": mfu_q3}


def best_size(sweep: dict[str, Any]) -> int:
    return int(max(sweep["sizes"], key=lambda n: sweep["sizes"][n]))


def run(threads: int | None = None, max_chunks: int = 30, warmup: int = 2, airbench_batch: int = 256,
        bf16: str = "auto", budget_s: float = 10.0, chunk_s: float = 0.2, write: bool = True) -> dict[str, Any]:
    """Peak sweeps, then every step beside its peak kernel, then the sweeps again; print and write results/mfu.json."""
    if threads:
        torch.set_num_threads(threads)
    native_bf16 = cpu_has_native_bf16()
    step_precisions = ["fp32"] + (["bf16"] if bf16 == "on" or (bf16 == "auto" and native_bf16) else [])
    print(f"torch threads {torch.get_num_threads()}; native bf16: {native_bf16}; "
          f"steps in {', '.join(step_precisions)}", flush=True)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    before = {p: matmul_peak(dtypes[p], PEAK_SIZES[p]) for p in dtypes}
    rows = []
    for precision in step_precisions:
        kernel = PeakKernel(dtypes[precision], best_size(before[precision]))
        for model, batch_size in (("mlp", 64), ("mlp", 512), ("resnet20", 128), ("airbench", airbench_batch)):
            row = measure_step(model, batch_size, precision, kernel, max_chunks, warmup, budget_s, chunk_s)
            rows.append(row)
            print(f"  {precision} {model:<9} b{batch_size:<5} {row['step_flops'] / 1e9:8.3f} GFLOP/step "
                  f"(fwd {row['forward_flops'] / 1e9:.3f}, bwd {row['backward_flops'] / 1e9:.3f}); "
                  f"step {row['step_s_median'] * 1e3:7.1f} ms; {row['achieved_flops_per_s'] / 1e9:5.1f} GFLOP/s "
                  f"beside {row['peak_flops_per_s_beside'] / 1e9:5.1f}; MFU {row['mfu']:.3f} "
                  f"(q {row['mfu_q1']:.3f}/{row['mfu_q3']:.3f}, {row['chunks']} chunks)", flush=True)
    after = {p: matmul_peak(dtypes[p], PEAK_SIZES[p]) for p in dtypes}
    peak = {p: max(before[p]["flops_per_s"], after[p]["flops_per_s"]) for p in dtypes}
    print(f"matmul peak (best of sweeps) fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s (before "
          f"{before['fp32']['flops_per_s'] / 1e9:.1f}, after {after['fp32']['flops_per_s'] / 1e9:.1f}); bf16 "
          f"{peak['bf16'] / 1e9:.2f} GFLOP/s (before {before['bf16']['flops_per_s'] / 1e9:.2f}, after "
          f"{after['bf16']['flops_per_s'] / 1e9:.2f})")
    ratios = {}
    for row in rows:
        row["mfu_of_sweep_peak"] = row["achieved_flops_per_s"] / peak[row["precision"]]
        ratios[f"mfu {row['precision']} {row['model']} b{row['batch_size']}"] = row["mfu"]
    details = {
        "method": "FLOPs per step counted by torch.utils.flop_counter.FlopCounterMode on one batch (forward with "
                  "loss, and backward, counted separately; matmuls and convolutions only, 2 FLOPs per "
                  "multiply-add); trainlab's train_step timed in chunks of ~0.2 s on batches fetched "
                  "beforehand, each chunk followed by square matmuls of the sweep's best size in the step's "
                  "precision, repeated to last about as long as the chunk (1 s at most); MFU = median over chunks of (counted FLOPs / step s) / (matmul FLOPs / matmul s). "
                  "mfu_of_sweep_peak: median achieved FLOP/s over the best FLOP/s of the size sweeps before "
                  "and after (more exposed to the machine's swings)",
        "native_bf16": native_bf16,
        "bf16_steps": "bf16" in step_precisions,
        "bf16_note": None if "bf16" in step_precisions else
                     "bf16 autocast steps skipped: the CPU has neither avx512_bf16 nor amx_bf16 (its bf16 matmul "
                     "peak is far below fp32's; see peaks); pass --bf16 on to time them anyway",
        "peak_flops_per_s": peak, "peaks_before": before, "peaks_after": after, "rows": rows,
    }
    if write:
        path = write_result("mfu", ratios, details)
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--max-chunks", type=int, default=30, help="timed chunks per model at most")
    parser.add_argument("--budget", type=float, default=10.0,
                        help=f"seconds of timed steps per model; at least {MIN_CHUNKS} chunks whatever it takes")
    parser.add_argument("--chunk", type=float, default=0.2, help="seconds of steps per chunk (one step at least)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--airbench-batch", type=int, default=256,
                        help="the speedrun net's batch (airbench uses 2000: ~60 s a step on one core)")
    parser.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                        help="bf16 autocast steps: auto = only with native bf16 (avx512_bf16/amx_bf16)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/mfu.json alone")
    args = parser.parse_args(argv)
    run(args.threads, args.max_chunks, args.warmup, args.airbench_batch, args.bf16, args.budget, args.chunk, write=not args.no_write)


if __name__ == "__main__":
    main()
