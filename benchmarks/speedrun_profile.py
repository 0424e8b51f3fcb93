"""Where the speedrun step's time goes: torch.profiler over the same steps of trainlab and the reference.

A diagnostic beside ``cifar_speedrun.py`` (which times the two sides; this says why they differ). Each
side trains the speedrun recipe (examples/cifar10_speedrun.yaml, benchmarks/airbench_reference.py) on
the same images; after ``--warmup`` steps the profiler records ``--steps`` steps. Printed per side:

* wall seconds per step (the device synchronised at both ends of the window);
* aten ops dispatched per step (each a kernel launch or more on a GPU, where a step of ~10 ms is
  partly launch-bound);
* on a GPU, the host's synchronising calls per step (``cudaStreamSynchronize``,
  ``cudaDeviceSynchronize``, ``cudaEventSynchronize``): each one makes the host wait for every queued
  kernel, so it can no longer queue the next step's kernels while the GPU works. The reference makes none
  inside its steps (its one read of the last loss and the clock's synchronize end the window, as
  trainlab's divergence guard reads its losses every 10 steps);
* the ``--rows`` ops with the most self time on the device (GPU) or the CPU;
* at the end, the aten ops whose count a step differs between the two sides (trainlab's extra ops).

    python benchmarks/speedrun_profile.py --device cuda --steps 10 --warmup 5   (benchmarks/gpu/check.sh, stage 5b)
    python benchmarks/speedrun_profile.py --steps 2 --warmup 1                   (a CPU: 250-row micro-batches)

Prints only; the timed ratio is ``cifar_speedrun.py``'s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))  # siblings: cifar_speedrun, airbench_reference
import airbench_reference as reference  # noqa: E402
from cifar_speedrun import CONFIG, layout, load_images, trainlab_overrides  # noqa: E402
from sidebyside import as_trainlab_train, device_sync  # noqa: E402

from trainlab.callbacks.base import Callback, TrainerView  # noqa: E402
from trainlab.config import load_config  # noqa: E402

SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def activities(device: torch.device) -> list[ProfilerActivity]:
    return [ProfilerActivity.CPU, ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]


class ProfileWindow(Callback):
    """Profile trainlab's steps ``warmup + 1 .. warmup + steps`` (counted from the fit's first step end)."""

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.sync = device_sync(device)
        self.ended, self.profiler, self.seconds = 0, None, float("nan")

    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None:
        self.ended += 1
        if self.ended == self.warmup:
            self.sync()
            self.profiler = profile(activities=activities(self.device))
            self.profiler.__enter__()
            self.started = time.perf_counter()
        elif self.ended == self.warmup + self.steps and self.profiler is not None:
            self.sync()
            self.seconds = time.perf_counter() - self.started
            self.profiler.__exit__(None, None, None)


def summary(name: str, prof: profile, seconds: float, steps: int, device: torch.device, rows: int,
            window_syncs: int) -> dict[str, float]:
    """Print one side's figures (module docstring); ``window_syncs``: the synchronising calls that end the profiled
    window (the clock's ``torch.cuda.synchronize``, and the reference's one read of its last loss), left out of
    the rate. Returns the aten ops a step by name."""
    events = prof.key_averages()
    aten = sum(e.count for e in events if e.key.startswith("aten::"))
    print(f"\n== {name}: {seconds / steps * 1e3:.2f} ms a step over {steps} steps; {aten / steps:.0f} aten ops "
          "a step (nested ones included)")
    if device.type == "cuda":
        syncs = {e.key: e.count for e in events if e.key in SYNC_CALLS}
        inside = max(sum(syncs.values()) - window_syncs, 0)
        print(f"host synchronisations a step: {inside / steps:.2f} (the window's own {window_syncs} at its end left "
              f"out; all calls: {syncs or 'none'})")
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=rows, max_name_column_width=60))
    return {e.key: e.count / steps for e in events if e.key.startswith("aten::")}


def print_op_differences(ours: dict[str, float], theirs: dict[str, float]) -> None:
    """The aten ops whose count a step differs, trainlab minus the reference, largest first."""
    differences = {key: ours.get(key, 0.0) - theirs.get(key, 0.0) for key in set(ours) | set(theirs)}
    shown = sorted(((d, key) for key, d in differences.items() if d), key=lambda item: (-abs(item[0]), item[1]))
    print(f"\n== aten ops a step, trainlab minus the reference (total {sum(differences.values()):+.0f}):")
    for difference, key in shown:
        print(f"{difference:+8.1f}  {key}")


def profile_trainlab(args: argparse.Namespace, device: torch.device, precision: str, micro: int) -> dict[str, float]:
    config = load_config(CONFIG, [*trainlab_overrides(args, device, precision, micro),
                                  f"strategy.max_steps={args.warmup + args.steps + 1}",
                                  "output.progress=off", "output.checkpoint.every_seconds=100000"])
    window = ProfileWindow(args.warmup, args.steps, device)
    with as_trainlab_train(config) as built:
        built.trainer.add_callbacks([window])
        built.trainer.fit()
    if window.ended < args.warmup + args.steps:  # the fit stopped before the window closed: no rate to give
        if window.profiler is not None:
            window.profiler.__exit__(None, None, None)
        raise SystemExit(f"error: trainlab ran {window.ended} steps, fewer than --warmup {args.warmup} + "
                         f"--steps {args.steps}")
    return summary("trainlab", window.profiler, window.seconds, args.steps, device, args.rows, window_syncs=1)


def profile_reference(args: argparse.Namespace, device: torch.device, precision: str, micro: int) -> dict[str, float]:
    train_x, train_y, _, _ = load_images(args.data, args.cache_dir)
    ref = reference.Training(train_x, train_y, {**reference.HYP, "micro_batch": micro}, seed=args.seed,
                             device=device, precision=precision)
    sync = device_sync(device)
    ref.train_steps(args.warmup)
    sync()
    with profile(activities=activities(device)) as prof:
        started = time.perf_counter()
        ref.train_steps(args.steps)  # one call: it reads the last loss (a sync) once, at the window's end
        sync()
        seconds = time.perf_counter() - started
    return summary("reference", prof, seconds, args.steps, device, args.rows, window_syncs=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cifar10-jpg", help="the extracted CIFAR-10 JPEG folders")
    parser.add_argument("--cache-dir", default="/tmp/trainlab-cache")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="rows per forward pass (default: 250 on a CPU, the whole batch on a GPU)")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per side")
    parser.add_argument("--warmup", type=int, default=5, help="steps per side before the profiler starts")
    parser.add_argument("--rows", type=int, default=15, help="ops shown per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device, precision, micro = layout(args)
    print(f"device {device}, precision {precision}, micro-batch {micro}, torch {torch.__version__}")
    ours = profile_trainlab(args, device, precision, micro)
    theirs = profile_reference(args, device, precision, micro)
    print_op_differences(ours, theirs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
