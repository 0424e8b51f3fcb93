"""Fine-tuning speed of trainlab's MiniLM step: samples/s at max_length 64 and 256, dynamic padding on and off.

The SST-2 fine-tune recipe (examples/sst2_minilm_finetune.yaml: all-MiniLM-L6-v2, mean pooling, AdamW
lr 3e-5, batch 32, clipping at 1.0) built by trainlab at each ``max_length``; its own training step
(``StandardStep.train_step``: forward, loss, backward, clip, AdamW) runs in these modes:

* ``dynamic``: ``hf_pretrained``'s ``trim_padding`` (the default): each batch cut to its longest sentence;
* ``padded``: every batch at ``max_length`` (``trim_padding: false``);
* ``bf16``: dynamic padding under bf16 autocast, only where the CPU has native bf16 (avx512_bf16 or
  amx_bf16); elsewhere bf16 is emulated and slower than fp32, and the mode is skipped with a note.

Side by side: after ``--warmup`` untimed steps of each mode, every chunk takes the next ``--chunk``
batches of trainlab's epoch order and runs **those same batches** in each mode in turn (the modes'
order reversed every other chunk), so a chunk's modes differ only in padding or precision, never in
which sentences they got. Per length it reports the median and quartiles of the per-chunk ratios
(dynamic / padded samples/s = padded time / dynamic time; with bf16 also fp32 / bf16 time of the dynamic
step) and each mode's median samples/s. The encoder's attention implementation (SDPA expected) and the
tokens per sentence are recorded: SST-2's sentences are short, so at max_length 256 nearly every
position of a padded batch is padding, which is what dynamic padding saves on short-text data sets.
Texts cut at ``max_length`` are warned of once (``trainlab.notices.each_once``), not once per build.

Writes ``benchmarks/results/finetune_speed.json`` with ``"ratios": {"dynamic/padded L64": ...,
"dynamic/padded L256": ...}`` (plus ``"bf16/fp32 L64"``, ``"bf16/fp32 L256"`` where bf16 ran; samples/s
ratios, higher: the first mode faster), the samples/s of every mode, and the transformers, tokenizers and
MiniLM package versions. The ratios have no target: they measure what padding and precision are worth.

    python benchmarks/finetune_speed.py --data-dir ../shared/datasets [--lengths 64 256] [--chunk 2]
        [--chunks 6] [--warmup 1] [--max-rows 2000] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence import cpu_flags, write_result  # noqa: E402
from sidebyside import summarize  # noqa: E402
from vs_hf_trainer import BATCH, PACKAGE, finetune_config  # noqa: E402

from trainlab.builders import build, run_scope  # noqa: E402
from trainlab.engine.batching import token_lengths  # noqa: E402
from trainlab.engine.state import TrainState  # noqa: E402
from trainlab.notices import each_once  # noqa: E402

# 6 chunks of 2 batches after 1 warm-up step of each mode. The old 3 chunks of 1 step (each mode on different
# batches) ranged 0.97-1.81 at L64. A chunk's ratio follows its batches' longest sentence (a batch holding a
# 64-token sentence costs as much trimmed as padded), so the quartiles show the batches, not the machine; the
# same batches in every run give the same median (L64: 1.83 and 1.82 in two runs, quartiles 1.51 / 1.97).
# The padded L256 steps (~10 s each on one core of a 2-core AMX Xeon) are most of the ~3.5 minutes.
CHUNK, CHUNKS, WARMUP = 2, 6, 1
LENGTHS = (64, 256)
MAX_ROWS = 2000  # SST-2 training sentences read: 1,805 after the val/test split, 56 batches of 32


def native_bf16() -> bool:
    flags = cpu_flags()
    return flags["avx512_bf16"] or flags["amx_bf16"]


def contender_versions() -> dict[str, str]:
    """The versions of the Hugging Face code the step runs on: transformers (the encoder), tokenizers (the
    tokenization) and the MiniLM checkpoint's package; a package not installed is left out."""
    versions = {}
    for name in ("transformers", "tokenizers", PACKAGE.replace("_", "-")):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def measure_length(data_dir: str, max_length: int, modes: list[str], chunk: int, chunks: int, warmup: int,
                   max_rows: int) -> dict[str, Any]:
    """Build the fine-tune at ``max_length``, then time ``chunks`` chunks of the same ``chunk`` batches in
    every mode (after ``warmup`` steps of each); the row of this length (see the module docstring)."""
    config = finetune_config(data_dir, max_length, True, 10_000, max_rows)
    with run_scope(config):
        built = build(config, quiet=True)
    step, batches, model = built.step, built.trainer.batches, built.model
    order = built.trainer.plan.order(0)
    whole_batches = len(order) // BATCH
    state = TrainState()
    step.set_mode(training=True)

    def batch(i: int) -> Any:  # epoch 0's whole batches, over and over
        start = (i % whole_batches) * BATCH
        return batches.fetch(order[start:start + BATCH], i)

    def run_steps(mode: str, first: int, count: int) -> float:
        """Seconds for batches ``first`` .. ``first + count - 1`` in ``mode`` (fetched outside the timer)."""
        fetched = [batch(first + i) for i in range(count)]
        model.trim_padding = mode != "padded"
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
        started = time.perf_counter()
        with autocast:
            for one in fetched:
                step.train_step([one], state)
        return time.perf_counter() - started

    for mode in modes:
        run_steps(mode, 0, warmup)
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for index in range(chunks):
        first = warmup + index * chunk
        for mode in modes if index % 2 == 0 else modes[::-1]:
            seconds[mode].append(run_steps(mode, first, chunk))
    samples_per_s = {mode: statistics.median(chunk * BATCH / s for s in values) for mode, values in seconds.items()}
    # summarize() gives the median of first / second per pair: padded time / dynamic time = dynamic / padded samples/s
    compared = {"dynamic/padded": summarize(list(zip(seconds["padded"], seconds["dynamic"], strict=True)))}
    if "bf16" in modes:
        compared["bf16/fp32"] = summarize(list(zip(seconds["dynamic"], seconds["bf16"], strict=True)))
    lengths = token_lengths(batches.x).float()
    return {"max_length": max_length, "warmup_steps": warmup, "chunk_steps": chunk, "chunks": chunks,
            "samples_per_s": samples_per_s, "chunk_seconds": seconds,
            "ratios": {name: {key: stats[key] for key in ("median", "q1", "q3", "total")}
                       for name, stats in compared.items()},
            "mean_tokens_per_sentence": float(lengths.mean()), "max_tokens": int(lengths.max()),
            "attention": built.model.backbone.config._attn_implementation}


def run(data_dir: str, lengths: list[int] | tuple[int, ...] = LENGTHS, chunk: int = CHUNK, chunks: int = CHUNKS,
        warmup: int = WARMUP, max_rows: int = MAX_ROWS, write: bool = True) -> dict[str, Any]:
    """Every length's row (:func:`measure_length`), printed; ``write``: results/finetune_speed.json too.
    Returns ``{"ratios": {label: median}, ...details}``."""
    if chunks < 2:
        raise SystemExit(f"--chunks must be at least 2 (the quartiles need two chunk pairs); got {chunks}")
    os.environ["HF_HUB_OFFLINE"] = "1"
    modes = ["dynamic", "padded"] + (["bf16"] if native_bf16() else [])
    with each_once():  # each build at each length reads the same texts: say what was cut once
        rows = [measure_length(data_dir, length, modes, chunk, chunks, warmup, max_rows) for length in lengths]
    for row in rows:
        speeds = ", ".join(f"{mode} {value:.1f}" for mode, value in row["samples_per_s"].items())
        compared = "; ".join(f"{name} {stats['median']:.2f} (quartiles {stats['q1']:.2f} / {stats['q3']:.2f})"
                             for name, stats in row["ratios"].items())
        print(f"L{row['max_length']}: samples/s {speeds}; {compared}; {row['chunks']} chunks of "
              f"{row['chunk_steps']} steps (attention {row['attention']}, "
              f"{row['mean_tokens_per_sentence']:.1f} tokens per sentence)", flush=True)
    if "bf16" not in modes:
        print("bf16: skipped, this CPU has no native bf16 (avx512_bf16 / amx_bf16); fp32 only")
    ratios = {f"{name} L{row['max_length']}": stats["median"] for row in rows for name, stats in row["ratios"].items()}
    details = {"task": f"sst2_minilm_finetune step (all-MiniLM-L6-v2, batch {BATCH}, AdamW, clip 1.0), "
                       "trainlab's StandardStep.train_step on the same batches per mode",
               "method": f"after {warmup} warm-up step(s) of each mode, chunks of {chunk} batches, each chunk's "
                         "batches run in every mode in turn (the order reversed every other chunk); ratios are "
                         "medians (quartiles in rows) of per-chunk time ratios: dynamic/padded = padded time / "
                         "dynamic time, bf16/fp32 = fp32 dynamic time / bf16 dynamic time (higher: the first mode "
                         "faster); samples/s: each mode's median chunk",
               "bf16": "measured" if "bf16" in modes else "skipped: no native bf16 on this CPU", "rows": rows}
    if write:
        path = write_result("finetune_speed", ratios, details, contenders=contender_versions())
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS))
    parser.add_argument("--chunk", type=int, default=CHUNK, help="batches per chunk, run in every mode")
    parser.add_argument("--chunks", type=int, default=CHUNKS, help="timed chunks per length (2 at least)")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="untimed steps of each mode first")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS, help="SST-2 training sentences read")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.data_dir, args.lengths, args.chunk, args.chunks, args.warmup, args.max_rows, write=not args.no_write)


if __name__ == "__main__":
    main()
