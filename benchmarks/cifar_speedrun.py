"""The CIFAR-10 speedrun: trainlab's examples/cifar10_speedrun.yaml beside the plain-PyTorch reference.

Two measurements, both on the JPEG-75 CIFAR-10 of ../shared/datasets (extracted to a folder first,
see examples/README.md):

* ``--side-by-side`` (default): trainlab trains the speedrun config through its whole engine
  (``build``, ``Trainer.fit``, every run-folder callback) and, every ``--chunk`` steps, the
  reference (benchmarks/airbench_reference.py) runs as many steps of the same recipe on the same
  images, in the same process. Reported: the median and quartiles of the per-chunk time ratio
  trainlab / reference (target <= 1.05). Only ``--steps`` steps are timed (a full run is ~35 min
  per side on a 2-core CPU without native bf16).
* ``--reference-only --epochs E``: train the reference for E epochs and print its test accuracy
  without and with TTA, and its training time: the accuracy to set beside the speedrun config's
  (``trainlab train examples/cifar10_speedrun.yaml``).

On a GPU (``--device cuda``) both sides keep the images on the GPU, run bf16 autocast
(``--precision auto``) and, by default, step on whole batches (``--micro-batch``; the
CPU default is micro-batches of 250), and the clocks are read after ``torch.cuda.synchronize``.

Writes ``benchmarks/results/cifar_speedrun.json`` (side by side) or
``benchmarks/results/cifar_speedrun_reference.json`` (reference only), with a ``_cuda`` suffix on
a GPU; see evidence.py.

    python benchmarks/cifar_speedrun.py [--data /tmp/cifar10-jpg] [--steps 12 --chunk 2] [--threads N]
    python benchmarks/cifar_speedrun.py --reference-only --epochs 8
    python benchmarks/cifar_speedrun.py --device cuda --steps 40 --chunk 5 --warmup 5   (benchmarks/gpu/check.sh)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # siblings: evidence, sidebyside, airbench_reference
import airbench_reference as reference  # noqa: E402
from evidence import write_result  # noqa: E402
from sidebyside import device_sync  # noqa: E402

from trainlab.config import load_config  # noqa: E402
from trainlab.runtime import resolve_device, resolve_precision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "cifar10_speedrun.yaml"
BATCH = reference.HYP["batch_size"]


def usage_error(message: str) -> None:
    """One ``error:`` line on stderr, exit status 2 (bad usage)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def layout(args: argparse.Namespace) -> tuple[torch.device, str, int]:
    """(device, precision, micro-batch rows) of this run: ``auto`` precision is bf16 where native."""
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if precision not in ("fp32", "bf16"):
        usage_error(f"--precision {precision!r}: the reference runs fp32 or bf16")
    micro = args.micro_batch or (BATCH if device.type == "cuda" else reference.HYP["micro_batch"])
    if micro < 1 or BATCH % micro:
        usage_error(f"--micro-batch {micro} must divide the batch of {BATCH} rows")
    return device, precision, micro


def result_name(base: str, device: torch.device) -> str:
    return base if device.type == "cpu" else f"{base}_{device.type}"


def trainlab_overrides(args: argparse.Namespace, device: torch.device, precision: str, micro: int) -> list[str]:
    """The speedrun config's settings for this device, precision and micro-batch layout."""
    return [f"data.path={args.data}", f"data.cache_dir={args.cache_dir}", f"runtime.device={device.type}",
            f"runtime.precision={precision}", f"strategy.batch_size={micro}",
            f"strategy.grad_accum_steps={BATCH // micro}"]


def load_images(data: str, cache_dir: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 train/test images (N, 3, 32, 32) and labels through trainlab's image-folder reader (+ cache)."""
    from trainlab.data import load_dataset

    config = load_config(CONFIG, [f"data.path={data}", f"data.cache_dir={cache_dir}", "data.augment=false"])
    dataset = load_dataset(config.data, config.seed)
    return dataset.train.x, dataset.train.y, dataset.test.x, dataset.test.y


def reference_only(args: argparse.Namespace) -> None:
    device, precision, micro = layout(args)
    sync = device_sync(device)
    train_x, train_y, test_x, test_y = load_images(args.data, args.cache_dir)
    hyp = {**reference.HYP, "epochs": args.epochs, "micro_batch": micro}
    started = time.perf_counter()
    training = reference.Training(train_x, train_y, hyp, seed=args.seed, device=device, precision=precision)
    per_epoch = len(training.loader)
    paused = 0.0  # seconds spent on --eval-each-epoch evaluations, not counted as training
    for epoch in range(args.epochs):
        loss = training.train_steps(per_epoch)
        sync()
        line = f"epoch {epoch + 1}: train loss {loss:.4f}, {time.perf_counter() - started - paused:.1f} s"
        if args.eval_each_epoch:
            evaluating = time.perf_counter()
            tta = reference.accuracy(training.model, test_x, test_y, tta_level=reference.HYP["tta_level"],
                                     precision=precision)
            line += f", test accuracy (TTA) {tta:.4f}"
            paused += time.perf_counter() - evaluating
        print(line, flush=True)
    sync()
    train_s = time.perf_counter() - started - paused
    plain = reference.accuracy(training.model, test_x, test_y, tta_level=0, precision=precision)
    tta = reference.accuracy(training.model, test_x, test_y, tta_level=reference.HYP["tta_level"],
                             precision=precision)
    print(f"reference, {args.epochs} epochs on {device.type} ({precision}): test accuracy {plain:.4f} "
          f"(TTA {tta:.4f}) in {train_s:.1f} s of training")
    path = write_result(result_name("cifar_speedrun_reference", device), {}, {
        "settings": {"epochs": args.epochs, "seed": args.seed, "hyp": hyp, "device": str(device),
                     "precision": precision},
        "test_accuracy": plain, "test_accuracy_tta": tta, "train_time_s": train_s})
    print(f"wrote {path}")


def side_by_side(args: argparse.Namespace) -> None:
    from sidebyside import Interleave, as_trainlab_train, summarize

    device, precision, micro = layout(args)
    # --no-clip: equal work, as the reference does not clip (the config's clip at 10 never acts on CIFAR-10, but
    # its norm costs ~20 ops a step, which a GPU's host-bound step at 1,000 rows pays in full)
    unclipped = ["strategy.clip_grad_norm=null"] if args.no_clip else []
    config = load_config(CONFIG, [*trainlab_overrides(args, device, precision, micro), f"strategy.max_steps={args.warmup + args.steps + 1}",
                                  "output.progress=off", "output.checkpoint.every_seconds=100000", *unclipped])
    train_x, train_y, _, _ = load_images(args.data, args.cache_dir)
    with as_trainlab_train(config) as built:
        ref = reference.Training(train_x, train_y, {**reference.HYP, "micro_batch": micro}, seed=config.seed,
                                 device=device, precision=precision)
        interleave = Interleave(args.chunk, ref.train_steps, skip_steps=args.warmup, warmup_steps=args.warmup,
                                sync=device_sync(device))
        built.trainer.add_callbacks([interleave])
        built.trainer.fit()
    result = summarize(interleave.pairs)
    print(f"trainlab/reference per-step time: median {result['median']:.3f} (quartiles {result['q1']:.3f}-"
          f"{result['q3']:.3f}, {result['chunks']} chunks of {args.chunk} steps; "
          f"{result['ours_s'] / args.chunk * 1e3:.1f} ms vs {result['theirs_s'] / args.chunk * 1e3:.1f} ms a step)")
    path = write_result(result_name("cifar_speedrun", device),
                        {f"trainlab/reference speedrun b{BATCH}{' no-clip' if args.no_clip else ''}": result["median"]},
                        {"settings": {"steps": args.steps, "chunk": args.chunk, "warmup": args.warmup,
                                      "device": str(device), "precision": precision, "micro_batch": micro,
                                      "clip_grad_norm": None if args.no_clip else config.strategy.clip_grad_norm},
                         "per_chunk": result})
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/cifar10-jpg", help="the extracted CIFAR-10 JPEG folders")
    parser.add_argument("--cache-dir", default="/tmp/trainlab-cache")
    parser.add_argument("--reference-only", action="store_true")
    parser.add_argument("--epochs", type=int, default=8, help="reference-only: epochs to train")
    parser.add_argument("--eval-each-epoch", action="store_true",
                        help="reference-only: test accuracy (TTA) after every epoch, its time not counted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12, help="side by side: timed steps per side")
    parser.add_argument("--chunk", type=int, default=2, help="side by side: steps per turn")
    parser.add_argument("--warmup", type=int, default=2, help="side by side: untimed steps per side first")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 on a GPU or a CPU with native bf16, else fp32 (as runtime.precision)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="rows per forward pass (default: 250 on a CPU, the whole batch on a GPU)")
    parser.add_argument("--no-clip", action="store_true",
                        help="side by side: trainlab without the config's clip_grad_norm (the reference does not clip)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    (reference_only if args.reference_only else side_by_side)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
