"""Model FLOP utilisation (nanoGPT's MFU) of trainlab's training steps, against matmul peaks of the same run.

For each model below, trainlab builds the run from a config (``build(config)``: data, model, loss,
optimizer, StandardStep) and this script times ``built.step.train_step`` on the micro-batches of the
run's own steps (``plan.steps``), fetched beforehand through its ``TensorBatches.fetch`` (so the
figure is the step's: every micro-batch's forward, loss and backward, clipping, the optimizer update;
data loading is benchmarks/data_loading.py). Per model:

* FLOPs per step: counted by ``FlopCounterMode`` over one whole ``train_step`` (the first warm-up
  step), so they are what that step computes: every micro-batch's forward and backward and the
  optimizer's own matrix products (the speedrun's Muon Newton-Schulz iterations; none for Adam or
  SGD); the forward (+ loss) and backward of one micro-batch are counted apart too (benchmarks/flops.py
  states what is counted; the 3 x forward rule is recorded beside them);
* step time: ``--warmup`` untimed steps (the counted one first), then chunks of about ``--chunk``
  seconds of steps (one step at least), each chunk followed by one square matmul of the best size of
  the peak sweep, in the step's precision, repeated to run about as long as the chunk (1 s at most):
  the two contenders alternate, so the shared machine's speed swings hit both alike; chunks go on
  until ``--max-chunks`` chunks or ``--budget`` seconds of steps, and at least the row's minimum
  (:data:`MIN_CHUNKS`; :data:`SPEEDRUN_MIN_CHUNKS` for the speedrun's seconds-long step);
* achieved FLOP/s = counted FLOPs / median step time; MFU = the median over chunks of (the chunk's
  FLOP/s / the matmul's FLOP/s right after it), with quartiles. The peak sweeps (best of 3 at
  several sizes, before and after the steps) are recorded too, with ``mfu_of_sweep_peak`` =
  achieved / best sweep peak.

The models: the MLP 784-128-64-10 with Adam at batch 64 and 512 (the overhead task, on 60,000
MNIST-shaped rows), ResNet-20 with SGD-Nesterov at batch 128 (channels_last, as
examples/cifar10_resnet.yaml), and the CIFAR-10 speedrun's own step (``speedrun``):
examples/cifar10_speedrun.yaml as it is (the ``airbench_muon`` net with its patch-whitening init,
the ``muon_conv`` / Nesterov-SGD optimizer groups, label smoothing, clipping, 4 micro-batches of 250
rows per optimizer step, channels_last, its augmentation), with only its data swapped for random
CIFAR-shaped uint8 images and its time budget for one epoch. bf16-autocast steps run only where the
CPU has native bf16 (avx512_bf16 / amx_bf16) or with ``--bf16 on``; without it bf16 matmuls run at
~1 GFLOP/s (the speedrun's ``precision: auto`` picks bf16 exactly where this script does).

Writes ``benchmarks/results/mfu.json`` with ``"ratios": {"mfu fp32 mlp b64": ..., ..., "mfu fp32
speedrun b1000": ...}`` (each the MFU, a fraction of the peak; higher is better; ``b`` is the rows per
optimizer step).

    python benchmarks/mfu.py [--threads 1] [--max-chunks 20] [--budget 8] [--bf16 auto|on|off] [--models mlp resnet20 speedrun]
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
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # evidence, flops, overhead: beside this script
import overhead  # noqa: E402,F401  (registers the MNIST-shaped source)
from evidence import write_result  # noqa: E402
from flops import matmul_flops, matmul_peak, step_flops  # noqa: E402

from trainlab.builders import build, run_scope  # noqa: E402
from trainlab.config import Config, read_yaml, validate  # noqa: E402
from trainlab.data import DATA_SOURCES, RawData  # noqa: E402
from trainlab.data.transforms import image_transforms  # noqa: E402
from trainlab.engine.state import TrainState  # noqa: E402
from trainlab.runtime import cpu_has_native_bf16  # noqa: E402

SPEEDRUN_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "cifar10_speedrun.yaml"
CIFAR_SOURCE = "benchmark_cifar_shaped"
CIFAR_ROWS = 5000  # 4,800 training rows after the 2% + 2% val/test split: 4 whole speedrun steps of 1,000 rows
CIFAR_MEAN, CIFAR_STD = (0.491, 0.481, 0.443), (0.246, 0.244, 0.262)
MIN_CHUNKS = 5  # timed chunks per model, whatever the budget
MAX_CHUNKS = 20  # timed chunks per model at most (was 30: 20 pays for the speedrun rows' seconds-long steps)
BUDGET_S = 8.0  # seconds of timed steps per model once its minimum of chunks is in (mfu: ~2 min on one core)
SPEEDRUN_MIN_CHUNKS = 3  # the speedrun's step is 1,000 rows (2-10 s on one core): 3 chunks keep mfu near 2 minutes
PEAK_SIZES = {"fp32": (256, 512, 1024, 2048), "bf16": (256, 512, 1024, 2048)}
# (model, rows per micro-batch) of each timed step; the speedrun's layout is its config's (4 x 250 rows a step)
ROWS = (("mlp", 64), ("mlp", 512), ("resnet20", 128), ("speedrun", None))
MODELS = tuple(dict.fromkeys(model for model, _ in ROWS))


def cifar_shaped(n: int = CIFAR_ROWS, mean: tuple[float, ...] = CIFAR_MEAN, std: tuple[float, ...] = CIFAR_STD,
                 augment: bool | dict[str, Any] = True) -> RawData:
    """``n`` random uint8 32x32 RGB images and labels 0-9 (seeded), normalised by ``mean``/``std`` and
    augmented as ``augment`` says (``image_transforms``: true is CIFAR's standard crop + flip)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    transforms = partial(image_transforms, mean=tuple(mean), std=tuple(std), augment=augment)
    return RawData(x, y, task="multiclass", fit_transforms=transforms)


if CIFAR_SOURCE not in DATA_SOURCES.names():
    DATA_SOURCES.register(CIFAR_SOURCE)(cifar_shaped)


def speedrun_config(precision: str) -> Config:
    """examples/cifar10_speedrun.yaml with its data swapped for :func:`cifar_shaped` images (its
    normalisation and augmentation kept), one epoch instead of its time budget, no TTA, in ``precision``.
    The model, init, loss, optimizer groups, clipping, micro-batches and layout are the file's own."""
    raw = read_yaml(SPEEDRUN_CONFIG)
    data = raw["data"]
    raw["name"] = "mfu_speedrun"
    raw["data"] = {"source": CIFAR_SOURCE, "val_fraction": 0.02, "test_fraction": 0.02,
                   "mean": data["mean"], "std": data["std"], "augment": data["augment"]}
    strategy = {key: value for key, value in raw["strategy"].items() if key not in ("time_budget_s", "tta")}
    raw["strategy"] = {**strategy, "epochs": 1}
    raw["runtime"] = {**raw.get("runtime", {}), "precision": precision}
    raw["output"] = {"progress": "off"}
    return validate(raw)


def step_config(model: str, batch_size: int | None, precision: str) -> Config:
    """The run config of one timed step: ``model`` is ``mlp``, ``resnet20`` or ``speedrun``
    (:func:`speedrun_config`, whose batch is the config's: ``batch_size`` is ignored)."""
    if model == "speedrun":
        return speedrun_config(precision)
    if model == "mlp":
        return validate({
            "name": "mfu_mlp", "seed": 0, "data": {"source": overhead.SOURCE},
            "model": {"name": "mlp", "hidden": [128, 64]},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 1e-3},
                         "batch_size": batch_size, "epochs": 1},
            "runtime": {"precision": precision}, "output": {"progress": "off"}})
    if model != "resnet20":
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    return validate({
        "name": "mfu_resnet20", "seed": 0,
        "data": {"source": CIFAR_SOURCE, "val_fraction": 0.02, "test_fraction": 0.02},
        "model": {"name": "resnet", "depth": 20},
        "strategy": {"loss": {"name": "cross_entropy", "label_smoothing": 0.1},
                     "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                                   "weight_decay": 5e-4},
                     "batch_size": batch_size, "epochs": 1},
        "runtime": {"precision": precision, "channels_last": True}, "output": {"progress": "off"}})


def whole_step_flops(step: Any, micro_batches: list[tuple[torch.Tensor, torch.Tensor]], state: TrainState) -> int:
    """The FLOPs ``FlopCounterMode`` counts over one real ``step.train_step(micro_batches, state)`` (the
    weights move): every micro-batch's forward and backward, and the optimizer's matrix products."""
    with FlopCounterMode(display=False) as counter:
        step.train_step(micro_batches, state)
    return int(counter.get_total_flops())


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


def measure_step(model: str, batch_size: int | None, precision: str, peak: PeakKernel, max_chunks: int,
                 warmup: int, budget_s: float, chunk_s: float) -> dict[str, Any]:
    """Build the run, count one step's FLOPs, then time chunks of train_steps, each followed by peak matmuls.

    A step is one of the run's own (``plan.steps`` of epoch 0: its micro-batches, ``grad_accum_steps``
    of them), repeated over and over. The first warm-up step is the counted one
    (:func:`whole_step_flops`). A chunk is as many steps as take about ``chunk_s`` (one at least); its
    pair ratio is the chunk's FLOP/s over the matmul's right after it, so the shared machine's speed
    swings hit both alike. Chunks are timed until ``max_chunks`` chunks, or ``budget_s`` seconds of
    steps once the row's minimum (:data:`MIN_CHUNKS`, :data:`SPEEDRUN_MIN_CHUNKS`) is in. MFU = the
    median pair ratio.
    """
    config = step_config(model, batch_size, precision)
    min_chunks = SPEEDRUN_MIN_CHUNKS if model == "speedrun" else MIN_CHUNKS
    with run_scope(config):
        built = build(config, quiet=True)
        step, batches, plan = built.step, built.trainer.batches, built.trainer.plan
        micro_rows = plan.batch_size
        # epoch 0's steps whose every micro-batch is whole (the last may be short)
        whole_steps = [indices for _, indices in plan.steps(0)
                       if len(indices) == plan.accum and all(len(index) == micro_rows for index in indices)]

        def micro_batches(i: int) -> list[tuple[torch.Tensor, torch.Tensor]]:  # the run's steps, over and over
            indices = whole_steps[i % len(whole_steps)]
            return [batches.fetch(index, i, 0, micro) for micro, index in enumerate(indices)]

        step.set_mode(True)
        x, y = micro_batches(0)[0]
        if step.options.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        one_micro = step_flops(step.model, step.objective.loss, x, y,
                               torch.bfloat16 if precision == "bf16" else None)
        state = TrainState()
        counted_total = whole_step_flops(step, micro_batches(0), state)
        state.step += 1

        def run_steps(count: int) -> float:
            fetched = [micro_batches(state.step + i) for i in range(count)]  # outside the timer: the step's time only
            started = time.perf_counter()
            for one in fetched:
                step.train_step(one, state)
                state.step += 1
            return time.perf_counter() - started

        plain_warmup = max(warmup - 1, 1)  # the counted step ran slower (the counter's dispatch): not timed
        warmup_s = run_steps(plain_warmup) / plain_warmup
        peak.seconds()
        chunk_steps = max(1, round(chunk_s / max(warmup_s, 1e-6)))
        pairs: list[tuple[float, float]] = []  # (chunk seconds per step, matmul seconds)
        spent, timed = 0.0, 0
        while len(pairs) < min_chunks or (len(pairs) < max_chunks and spent < budget_s):
            chunk_time = run_steps(chunk_steps)
            # the matmul side runs about as long as the chunk (up to 1 s): equal exposure to the swings
            pairs.append((chunk_time / chunk_steps, peak.seconds(chunk_time)))
            spent, timed = spent + chunk_time, timed + chunk_steps
    forward, backward = plan.accum * one_micro.forward, plan.accum * one_micro.backward
    step_s = [p[0] for p in pairs]
    mfus = [(counted_total / one_step_s) / (peak.flops / matmul_s) for one_step_s, matmul_s in pairs]
    q1, median, q3 = _quartiles(step_s)
    mfu_q1, mfu, mfu_q3 = _quartiles(mfus)
    groups = config.strategy.optimizer.groups or []
    return {"model": model, "batch_size": micro_rows * plan.accum, "micro_batch": micro_rows,
            "grad_accum_steps": plan.accum, "precision": precision, "channels_last": step.options.channels_last,
            "network": config.model.name, "parameters": built.notes.get("parameters"),
            "optimizer": config.strategy.optimizer.name,
            "optimizer_groups": {group.label(i): group.optimizer or config.strategy.optimizer.name
                                 for i, group in enumerate(groups)},
            "forward_flops": forward, "backward_flops": backward, "optimizer_flops": counted_total - forward - backward,
            "step_flops": counted_total, "three_times_forward_flops": 3 * forward,
            "warmup_steps": 1 + plain_warmup, "chunk_steps": chunk_steps, "chunks": len(pairs), "timed_steps": timed,
            "timed_s": spent, "step_s_median": median, "step_s_q1": q1, "step_s_q3": q3,
            "samples_per_s": micro_rows * plan.accum / median, "achieved_flops_per_s": counted_total / median,
            "peak_kernel": f"{peak.size}x{peak.size} {precision} matmul",
            "peak_flops_per_s_beside": peak.flops / float(np.median([p[1] for p in pairs])),
            "mfu": mfu, "mfu_q1": mfu_q1, "mfu_q3": mfu_q3}


def best_size(sweep: dict[str, Any]) -> int:
    return int(max(sweep["sizes"], key=lambda n: sweep["sizes"][n]))


def run(threads: int | None = None, max_chunks: int = MAX_CHUNKS, warmup: int = 2, bf16: str = "auto", budget_s: float = BUDGET_S,
        chunk_s: float = 0.2, write: bool = True, models: tuple[str, ...] = MODELS) -> dict[str, Any]:
    """Peak sweeps, then every step of :data:`ROWS` whose model is in ``models`` beside its peak kernel, then
    the sweeps again; print and write results/mfu.json."""
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
        for model, batch_size in [row for row in ROWS if row[0] in models]:
            row = measure_step(model, batch_size, precision, kernel, max_chunks, warmup, budget_s, chunk_s)
            rows.append(row)
            print(f"  {precision} {model:<9} b{row['batch_size']:<5} {row['step_flops'] / 1e9:8.3f} GFLOP/step "
                  f"(fwd {row['forward_flops'] / 1e9:.3f}, bwd {row['backward_flops'] / 1e9:.3f}, "
                  f"optimizer {row['optimizer_flops'] / 1e9:.3f}); "
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
        "method": "FLOPs per step counted by torch.utils.flop_counter.FlopCounterMode over one whole train_step "
                  "(every micro-batch's forward with loss and backward, and the optimizer's matrix products; "
                  "one micro-batch's forward and backward counted apart: forward_flops / backward_flops are "
                  "those times the micro-batches; matmuls and convolutions only, 2 FLOPs per multiply-add); "
                  "trainlab's train_step timed in chunks of ~0.2 s on the run's own micro-batches fetched "
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
    parser.add_argument("--max-chunks", type=int, default=MAX_CHUNKS, help="timed chunks per model at most")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help=f"seconds of timed steps per model; at least {MIN_CHUNKS} chunks whatever it takes "
                             f"({SPEEDRUN_MIN_CHUNKS} for the speedrun)")
    parser.add_argument("--chunk", type=float, default=0.2, help="seconds of steps per chunk (one step at least)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps per model first, the FLOP-counted one among them (2 at least)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="the rows to time")
    parser.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                        help="bf16 autocast steps: auto = only with native bf16 (avx512_bf16/amx_bf16)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/mfu.json alone")
    args = parser.parse_args(argv)
    run(args.threads, args.max_chunks, args.warmup, args.bf16, args.budget, args.chunk, write=not args.no_write,
        models=tuple(args.models))


if __name__ == "__main__":
    main()
