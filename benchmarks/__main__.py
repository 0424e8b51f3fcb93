"""The benchmark suite's quick members, one after another: ``python -m benchmarks [--only NAME ...]``.

Each member runs its contenders side by side in one process (alternating chunks after a warm-up),
prints medians and quartiles of the per-chunk time ratios, and writes
``benchmarks/results/<name>.json`` (machine, versions, commit, and ``"ratios"``; see evidence.py).
At the end every ratio is printed next to its target. Members whose contender is not installed
(Lightning: the ``bench`` extra) or whose data is missing (data_loading: ``--data-dir``) are
skipped with a note. mfu (about 2 minutes on one core) and data_loading (about a minute) measure
trainlab alone: MFU against the matmul peak, and samples/s. The slow benchmarks (vs_tutorial.py,
examples.py, optimizers.py, lr_find_sweep.py) are run as scripts; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the members import their siblings by name
import data_loading  # noqa: E402
import mfu  # noqa: E402
import overhead  # noqa: E402
import vs_lightning  # noqa: E402

# label prefix -> (bound, inclusive, why): a ratio is trainlab's time / the contender's (lower is faster)
TARGETS = {
    "trainlab/raw": (1.03, True, "issue 17; issue 12's bound is 1.05"),
    "trainlab/lightning": (0.85, False, "issue 17, at batch 64"),
}
MEMBERS = ("overhead", "lightning", "mfu", "data_loading")


def target_for(label: str) -> tuple[float, bool, str] | None:
    prefix = label.rsplit(" ", 1)[0]
    return TARGETS.get(prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=MEMBERS, default=list(MEMBERS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier on a shared machine; 0 = torch's default)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per contender pair")
    parser.add_argument("--data-dir", type=Path, default=data_loading.DEFAULT_DATA_DIR,
                        help="data_loading's folder of mnist/ and cifar10-jpg/ (default: ../shared/datasets)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ratios: dict[str, float] = {}
    if "overhead" in args.only:
        print("== overhead: trainlab vs a hand-written loop", flush=True)
        ratios.update(overhead.run([64, 512], args.epochs, write=not args.no_write)["ratios"])
    if "lightning" in args.only:
        print("== lightning: trainlab vs PyTorch Lightning", flush=True)
        if importlib.util.find_spec("lightning") is None:
            print("skipped: PyTorch Lightning is not installed (pip install -e '.[bench]')")
        else:
            ratios.update(vs_lightning.run(["lightning", "lightning-batched", "thread-control"], args.epochs,
                                           write=not args.no_write)["ratios"])
    if "mfu" in args.only:
        print("== mfu: achieved FLOP/s of trainlab's steps / the matmul peak", flush=True)
        ratios.update(mfu.run(write=not args.no_write)["ratios"])
    if "data_loading" in args.only:
        print("== data_loading: IDX, CIFAR JPEG cold/warm cache, batch fetch (samples/s)", flush=True)
        if not (args.data_dir / "cifar10-jpg").is_dir():
            print(f"skipped: no cifar10-jpg/ under {args.data_dir} (pass --data-dir)")
        else:
            ratios.update(data_loading.run(args.data_dir, write=not args.no_write)["ratios"])
    print("== ratios (time ratios: trainlab / contender, warm / cold; MFU: achieved / peak)")
    missed = 0
    for label, value in ratios.items():
        target = target_for(label)
        if target is None:
            print(f"{label:<32} {value:.3f}")
            continue
        bound, inclusive, why = target
        ok = value <= bound if inclusive else value < bound
        missed += not ok
        print(f"{label:<32} {value:.3f}  target {'<=' if inclusive else '<'} {bound} ({why}): "
              f"{'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
