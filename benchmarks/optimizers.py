"""Milliseconds per optimizer step for ~5M float32 parameters in 50 tensors.

For every registered optimizer: the registry's configuration; for trainlab's
own multi-tensor optimizers also the per-parameter for-loop path
(``foreach=False``); for Adam/AdamW torch's three implementations (for-loop,
foreach, fused). Gradients are fixed random tensors, so only ``step()`` is timed.
Each row: warm-up steps, then the median over ``--repeats`` timings of
``--steps`` steps, taken round-robin across rows (this machine is shared, so
load bursts then hit every row alike). L-BFGS is left out: its ``step(closure)`` re-evaluates the
model up to 20 times, so it is not comparable per step.

Acceptance check printed at the end: trainlab's Lion and LAMB (foreach) must be
within 1.3x of torch's foreach Adam.

    .venv/bin/python benchmarks/optimizers.py [--repeats 7] [--steps 5] [--threads N] [--only lion,lamb]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import trainlab.optim.builtins  # noqa: F401
from trainlab.optim import OPTIMIZERS, param_groups
from trainlab.runtime import cpu_model

# 40 weight matrices + 10 vectors = 40 * 256 * 480 + 10 * 10_000 = 5,015,200 parameters in 50 tensors
MATRIX_SHAPE, MATRICES = (256, 480), 40
VECTOR_SHAPE, VECTORS = (10_000,), 10
PROJECT_FOREACH = ("lion", "lamb", "schedule_free_adamw", "prodigy")
LR = {"adadelta_zeiler": 1.0, "prodigy": 1.0, "lion": 1e-4}
CHECK_LIMIT = 1.3


class _Parameters(torch.nn.Module):
    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(MATRIX_SHAPE, generator=generator) * 0.05) for _ in range(MATRICES))
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(VECTOR_SHAPE, generator=generator) * 0.05) for _ in range(VECTORS))


def _model() -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    model = _Parameters(generator)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator) * 1e-2
    return model


def _torch_adam_foreach(groups: list[dict]) -> torch.optim.Optimizer:
    """The acceptance baseline: torch's multi-tensor Adam."""
    return torch.optim.Adam(groups, lr=1e-3, foreach=True)


def _cases() -> list[tuple[str, str, Callable[[list[dict]], torch.optim.Optimizer]]]:
    """(optimizer, implementation, build(groups)) rows, in registry order."""
    cases = []
    for name in OPTIMIZERS.names():
        if name == "lbfgs":
            continue
        lr = LR.get(name, 1e-3)
        if name in ("adam", "adamw"):
            torch_class = torch.optim.Adam if name == "adam" else torch.optim.AdamW
            cases.append((name, "torch for-loop", lambda g, c=torch_class, lr=lr: c(g, lr=lr, foreach=False)))
            cases.append((name, "torch foreach", lambda g, c=torch_class, lr=lr: c(g, lr=lr, foreach=True)))
            cases.append((name, "torch fused (registry)", lambda g, n=name, lr=lr: OPTIMIZERS.build(n, g, lr=lr)))
        elif name in PROJECT_FOREACH:
            cases.append((name, "trainlab foreach (registry)", lambda g, n=name, lr=lr: OPTIMIZERS.build(n, g, lr=lr)))
            cases.append((name, "trainlab for-loop", lambda g, n=name, lr=lr: OPTIMIZERS.build(
                {"name": n, "foreach": False}, g, lr=lr)))
        else:
            cases.append((name, "registry", lambda g, n=name, lr=lr: OPTIMIZERS.build(n, g, lr=lr)))
    return cases


def time_steps(builds: list[Callable[[list[dict]], torch.optim.Optimizer]], repeats: int, steps: int,
               warmup: int = 3) -> list[float]:
    """Median milliseconds per ``step()`` of each optimizer over ``repeats`` timings of ``steps`` steps.

    The timings are taken round-robin (one timing of every optimizer per round),
    so a burst of load from other processes hits every row alike.
    """
    optimizers = []
    for build in builds:
        optimizer = build(param_groups(_model()))
        for _ in range(warmup):  # allocates state, warms caches and the allocator
            optimizer.step()
        optimizers.append(optimizer)
    timings: list[list[float]] = [[] for _ in optimizers]
    for _ in range(repeats):
        for optimizer, row in zip(optimizers, timings, strict=True):
            start = time.perf_counter()
            for _ in range(steps):
                optimizer.step()
            row.append((time.perf_counter() - start) / steps * 1e3)
    return [statistics.median(row) for row in timings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timings per row; the median is reported")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per timing")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--only", default="", help="comma-separated optimizer names (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    only = {n.strip() for n in args.only.split(",") if n.strip()}

    total = MATRICES * MATRIX_SHAPE[0] * MATRIX_SHAPE[1] + VECTORS * VECTOR_SHAPE[0]
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"{total:,} float32 parameters in {MATRICES + VECTORS} tensors; "
          f"median of {args.repeats} x {args.steps} steps after 3 warm-up steps, round-robin")
    cases = [case for case in _cases() if not only or case[0] in only]
    baseline, *measured = time_steps([_torch_adam_foreach] + [build for _, _, build in cases], args.repeats, args.steps)
    rows = [(name, implementation, ms) for (name, implementation, _), ms in zip(cases, measured, strict=True)]

    print()
    print("| optimizer | implementation | ms / step | x torch Adam foreach |")
    print("|---|---|---:|---:|")
    print(f"| (baseline) adam | torch foreach | {baseline:.2f} | 1.00 |")
    for name, implementation, ms in rows:
        print(f"| {name} | {implementation} | {ms:.2f} | {ms / baseline:.2f} |")

    print()
    for name, implementation, ms in rows:
        if name in ("lion", "lamb") and implementation.startswith("trainlab foreach"):
            verdict = "ok" if ms <= CHECK_LIMIT * baseline else "TOO SLOW"
            print(f"check: {name} foreach {ms:.2f} ms vs torch foreach Adam {baseline:.2f} ms = "
                  f"{ms / baseline:.2f}x (limit {CHECK_LIMIT}x): {verdict}")


if __name__ == "__main__":
    main()
