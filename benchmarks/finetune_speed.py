"""Fine-tuning speed of trainlab's MiniLM step: samples/s at max_length 64 and 256, dynamic padding on and off.

The SST-2 fine-tune recipe (examples/sst2_minilm_finetune.yaml: all-MiniLM-L6-v2, mean pooling, AdamW
lr 3e-5, batch 32, clipping at 1.0) built by trainlab at each ``max_length``; its own training step
(``StandardStep.train_step``: forward, loss, backward, clip, AdamW) runs the same batches, in
trainlab's epoch order, alternating chunks of ``--chunk`` steps between the modes after one warm-up
step of each:

* ``dynamic``: ``hf_pretrained``'s ``trim_padding`` (the default): each batch cut to its longest sentence;
* ``padded``: every batch at ``max_length`` (``trim_padding: false``);
* ``bf16``: dynamic padding under bf16 autocast, only where the CPU has native bf16 (avx512_bf16 or
  amx_bf16); elsewhere bf16 is emulated and slower than fp32, and the mode is skipped with a note.

The encoder's attention implementation (SDPA expected) is recorded. SST-2's sentences are short (the
tokens per sentence are recorded), so at max_length 256 nearly every position of a padded batch is
padding: that is what dynamic padding saves on short-text data sets. Writes
``benchmarks/results/finetune_speed.json`` with ``"ratios": {"dynamic/padded L64": ..., "dynamic/padded
L256": ...}`` (samples/s ratios, higher: dynamic faster) and the samples/s of every mode.

    python benchmarks/finetune_speed.py --data-dir ../shared/datasets [--lengths 64 256] [--chunk 1] [--chunks 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence import cpu_flags, write_result  # noqa: E402
from vs_hf_trainer import BATCH, finetune_config  # noqa: E402

from trainlab.builders import build, run_scope  # noqa: E402
from trainlab.engine.batching import token_lengths  # noqa: E402
from trainlab.engine.state import TrainState  # noqa: E402


def native_bf16() -> bool:
    flags = cpu_flags()
    return flags["avx512_bf16"] or flags["amx_bf16"]


def measure_length(data_dir: str, max_length: int, modes: list[str], chunk: int, chunks: int,
                   max_rows: int) -> dict[str, Any]:
    config = finetune_config(data_dir, max_length, True, 10_000, max_rows)
    with run_scope(config):
        built = build(config, quiet=True)
    step, batches, model = built.step, built.trainer.batches, built.model
    order = built.trainer.plan.order(0)
    state = TrainState()
    step.set_mode(training=True)
    position = 0

    def run_steps(mode: str, count: int) -> float:
        nonlocal position
        model.trim_padding = mode != "padded"
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
        started = time.perf_counter()
        with autocast:
            for _ in range(count):
                index = order[position:position + BATCH]
                position = (position + BATCH) % (len(order) - BATCH)
                step.train_step([batches.fetch(index, state.step)], state)
        return time.perf_counter() - started

    for mode in modes:  # warm-up: one untimed step of each
        run_steps(mode, 1)
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(chunks):
        for mode in modes:
            seconds[mode].append(run_steps(mode, chunk))
    per_s = {mode: [chunk * BATCH / s for s in values] for mode, values in seconds.items()}
    ratios = sorted(d / p for d, p in zip(per_s["dynamic"], per_s["padded"], strict=True))
    lengths = token_lengths(batches.x).float()
    return {"max_length": max_length, "chunk_steps": chunk, "chunks": chunks,
            "samples_per_s": {mode: statistics.median(values) for mode, values in per_s.items()},
            "dynamic_over_padded": {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]},
            "mean_tokens_per_sentence": float(lengths.mean()), "max_tokens": int(lengths.max()),
            "attention": built.model.backbone.config._attn_implementation}


def run(data_dir: str, lengths: list[int], chunk: int = 1, chunks: int = 3, max_rows: int = 2000,
        write: bool = True) -> dict[str, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    modes = ["dynamic", "padded"] + (["bf16"] if native_bf16() else [])
    rows = [measure_length(data_dir, length, modes, chunk, chunks, max_rows) for length in lengths]
    for row in rows:
        speeds = ", ".join(f"{mode} {value:.1f}" for mode, value in row["samples_per_s"].items())
        print(f"L{row['max_length']}: samples/s {speeds}; dynamic/padded {row['dynamic_over_padded']['median']:.2f} "
              f"(attention {row['attention']}, {row['mean_tokens_per_sentence']:.1f} tokens per sentence)", flush=True)
    if "bf16" not in modes:
        print("bf16: skipped, this CPU has no native bf16 (avx512_bf16 / amx_bf16); fp32 only")
    ratios = {f"dynamic/padded L{row['max_length']}": row["dynamic_over_padded"]["median"] for row in rows}
    details = {"task": f"sst2_minilm_finetune step (all-MiniLM-L6-v2, batch {BATCH}, AdamW, clip 1.0), "
                       "trainlab's StandardStep.train_step on the same batches per mode",
               "method": "alternating chunks of each mode after one warm-up step each; samples/s medians; "
                         "ratio = dynamic samples/s / padded samples/s (higher: dynamic padding faster)",
               "bf16": "measured" if "bf16" in modes else "skipped: no native bf16 on this CPU", "rows": rows}
    if write:
        path = write_result("finetune_speed", ratios, details)
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--lengths", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--chunk", type=int, default=1, help="steps per mode before switching")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks per mode")
    parser.add_argument("--max-rows", type=int, default=2000, help="SST-2 training sentences read")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.data_dir, args.lengths, args.chunk, args.chunks, args.max_rows, write=not args.no_write)


if __name__ == "__main__":
    main()
