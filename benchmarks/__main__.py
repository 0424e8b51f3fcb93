"""The benchmark suite's quick members, one after another: ``python -m benchmarks [--only NAME ...]``.

Each member runs its contenders side by side in one process (alternating chunks after a warm-up),
prints medians and quartiles of the per-chunk ratios, and writes
``benchmarks/results/<name>.json`` (machine, versions, commit, and ``"ratios"``; see evidence.py).
At the end every ratio is printed next to its target (none for the measurements: finetune_speed, mfu,
data_loading), then every member that was skipped, with the reason and the fix. A member is skipped
when its contender is not installed (Lightning: the ``bench`` extra; the HF Trainer and finetune_speed:
transformers, accelerate, tokenizers and the MiniLM package, all in the ``bench`` extra) or its data is
missing (``--data-dir``, default ``$TRAINLAB_DATA_DIR``, else ``../shared/datasets`` beside the checkout:
sst2/ for hf_trainer and finetune_speed, mnist/ and cifar10-jpg/ for data_loading). finetune_speed
(about 3.5 minutes on one core), mfu (about 2) and data_loading (about 1) measure trainlab alone:
samples/s with and without dynamic padding and bf16, MFU against the matmul peaks, and samples/s of
the readers. The slow benchmarks (vs_tutorial.py, examples.py, optimizers.py, lr_find_sweep.py) are run
as scripts; see benchmarks/README.md.

Exit status: 0 when every member ran and every target was met; otherwise the sum of
:data:`EXIT_TARGET_MISSED` (1: a ratio missed its target) and :data:`EXIT_MEMBER_SKIPPED` (2: a member
was skipped, so its ratios are missing): 1, 2, or 3 for both.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the members import their siblings by name
import data_loading  # noqa: E402
import finetune_speed  # noqa: E402
import mfu  # noqa: E402
import overhead  # noqa: E402
import vs_hf_trainer  # noqa: E402
import vs_lightning  # noqa: E402

from trainlab.notices import each_once  # noqa: E402

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
EXIT_TARGET_MISSED = 1  # added to the exit status when a ratio misses its target
EXIT_MEMBER_SKIPPED = 2  # added when a member was skipped (its contender not installed, its data missing)
BENCH_INSTALL = ".venv/bin/python -m pip install -c constraints.txt -e '.[bench]', as make bench does"
DATA_FIX = "pass --data-dir DIR or set TRAINLAB_DATA_DIR=DIR, DIR the folder of sst2/, mnist/ and cifar10-jpg/"


class Member(NamedTuple):
    """One benchmark of the suite: its title line, what it needs, and how it runs."""

    title: str
    packages: tuple[str, ...]  # import names that must be installed
    data: tuple[str, ...]  # paths under --data-dir that must exist
    run: Callable[[argparse.Namespace], dict[str, float]]  # -> its ratios (label -> median)


def _write(args: argparse.Namespace) -> bool:
    return not args.no_write


MEMBERS: dict[str, Member] = {
    "overhead": Member(
        "trainlab vs a hand-written loop", (), (),
        lambda args: overhead.run([64, 512], args.epochs, write=_write(args))["ratios"]),
    "lightning": Member(
        "trainlab vs PyTorch Lightning", ("lightning",), (),
        lambda args: vs_lightning.run(["lightning", "lightning-batched", "thread-control"], args.epochs,
                                      write=_write(args))["ratios"]),
    "hf_trainer": Member(
        "trainlab vs the Hugging Face Trainer (MiniLM on SST-2)",
        ("transformers", "accelerate", vs_hf_trainer.PACKAGE), ("sst2/train.tsv",),
        lambda args: vs_hf_trainer.run(list(vs_hf_trainer.PAIRINGS + vs_hf_trainer.CONTROLS), args.data_dir, write=_write(args))["ratios"]),
    "finetune_speed": Member(
        "trainlab's MiniLM fine-tuning step: dynamic padding, max_length 64 / 256, bf16 (samples/s)",
        ("transformers", "tokenizers", vs_hf_trainer.PACKAGE), ("sst2/train.tsv",),
        lambda args: finetune_speed.run(args.data_dir, write=_write(args))["ratios"]),
    "mfu": Member(
        "achieved FLOP/s of trainlab's steps / the matmul peak", (), (),
        lambda args: mfu.run(write=_write(args))["ratios"]),
    "data_loading": Member(
        "IDX, CIFAR JPEG cold/warm cache, batch fetch (samples/s)", (), ("mnist", "cifar10-jpg/train.tar.gz"),
        lambda args: data_loading.run(args.data_dir, write=_write(args))["ratios"]),
}


class Skipped(NamedTuple):
    """Why a member did not run, and what makes it run."""

    reason: str
    fix: str


def why_skipped(member: Member, data_dir: Path) -> Skipped | None:
    """The reason ``member`` cannot run here (a package not installed, a data path missing), or None."""
    missing = [name for name in member.packages if importlib.util.find_spec(name) is None]
    if missing:
        return Skipped(f"not installed: {', '.join(missing)}", BENCH_INSTALL)
    absent = [path for path in member.data if not (data_dir / path).exists()]
    if absent:
        return Skipped(f"no {', '.join(absent)} under {data_dir}", DATA_FIX)
    return None


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


def summary(ratios: dict[str, float], skipped: dict[str, Skipped]) -> int:
    """Print every ratio beside its target, then the skipped members; return the exit status (docstring)."""
    print("== ratios (time ratios trainlab / contender, lower is faster; warm / cold; MFU: achieved / peak; "
          "hf-trainer and finetune_speed: samples/s ratios, higher is faster; median of chunk pairs)")
    missed = 0
    for label, value in ratios.items():
        verdict = meets(label, value)
        if verdict is None:
            print(f"{label:<36} {value:.3f}")
            continue
        ok, reads = verdict
        missed += not ok
        print(f"{label:<36} {value:.3f}  {reads}: {'ok' if ok else 'MISSED'}")
    if missed:
        print(f"{missed} target(s) missed")
    if skipped:
        print(f"== skipped: {len(skipped)} member(s), their ratios are missing above")
        for name, why in skipped.items():
            print(f"{name:<15} {why.reason}; fix: {why.fix}")
    return (EXIT_TARGET_MISSED if missed else 0) + (EXIT_MEMBER_SKIPPED if skipped else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0],
                                     epilog="exit status: 0 all ran and met their targets; +1 a target missed; "
                                            "+2 a member skipped")
    parser.add_argument("--only", nargs="+", choices=list(MEMBERS), default=list(MEMBERS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier on a shared machine; 0 = torch's default)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per contender pair")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("TRAINLAB_DATA_DIR") or data_loading.DEFAULT_DATA_DIR),
                        help="folder of sst2/ (hf_trainer, finetune_speed), mnist/ and cifar10-jpg/ "
                             "(data_loading); default: TRAINLAB_DATA_DIR, else ../shared/datasets beside "
                             "the checkout")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ratios: dict[str, float] = {}
    skipped: dict[str, Skipped] = {}
    with each_once():  # the members build the same data again and again (hf_trainer: twice a pairing)
        for name in [name for name in MEMBERS if name in args.only]:
            member = MEMBERS[name]
            print(f"== {name}: {member.title}", flush=True)
            why = why_skipped(member, args.data_dir)
            if why is not None:
                skipped[name] = why
                print(f"skipped: {why.reason}; fix: {why.fix}", flush=True)
                continue
            ratios.update(member.run(args))
    return summary(ratios, skipped)


if __name__ == "__main__":
    sys.exit(main())
