"""trainlab vs PyTorch Lightning on the overhead task, side by side in one process.

Same model (MLP 784-128-64-10, same initial weights), same optimizer (Adam lr 1e-3, fused), same
in-memory MNIST-shaped data as overhead.py, batch 64. Lightning runs as its docs set it up for a
plain fit: a ``LightningModule`` whose ``training_step`` returns the cross-entropy, ``Trainer(
accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
enable_model_summary=False)``, no validation loader. Two Lightning data paths are timed, each in its
own run:

* ``lightning``: ``DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)``, what the docs
  and most users write (per-sample indexing, then collate);
* ``lightning-batched``: a loader that yields whole index-sliced batches (a ``BatchSampler`` as the
  sampler, ``batch_size=None``), which isolates Lightning's loop from the per-sample data path.

Lightning's ``fit`` owns its loop, so it runs in a second thread that a callback parks after every
``chunk`` steps; trainlab's Interleave callback hands it the baton and times it (the hand-over costs
tens of microseconds per chunk of ~50 ms). Only one side computes at any moment. The control
``--loaders thread-control`` runs overhead.py's hand-written loop in the same kind of parked thread:
its ratio next to overhead.py's ``trainlab/raw b64`` shows what the thread hand-over itself costs.

Writes ``benchmarks/results/lightning.json`` with ``"ratios": {"trainlab/lightning b64": ...,
"trainlab/lightning-batched b64": ...}``. Needs the ``bench`` extra (``pip install -e .[bench]``).

    python benchmarks/vs_lightning.py [--epochs 2] [--chunk 50] [--threads N] [--loaders lightning ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence import write_result  # noqa: E402
from overhead import CLASSES, FEATURES, overhead_config, raw_loop  # noqa: E402
from sidebyside import Interleave, ParkedFit, as_trainlab_train, summarize  # noqa: E402

try:
    import lightning as L  # noqa: N812  (Lightning's own spelling)
except ImportError:  # pragma: no cover - the bench extra is not installed
    L = None


class IndexBatches(Dataset):
    """``dataset[index_list]`` -> the whole batch by one indexing (used with a BatchSampler as sampler)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(index)
        return self.x[rows], self.y[rows]


def loader_for(kind: str, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    if kind == "lightning":
        return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=generator)
    sampler = BatchSampler(RandomSampler(range(len(x)), generator=generator), batch_size, drop_last=False)
    return DataLoader(IndexBatches(x, y), sampler=sampler, batch_size=None)


def lightning_contender(model: nn.Module, loader: DataLoader, threads: int) -> Any:
    """A Lightning fit that runs ``steps(count)`` optimizer steps at a time in its own thread."""

    class Classifier(L.LightningModule):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)

    parked = ParkedFit("Lightning's fit", threads)

    class Baton(L.Callback):
        def on_train_start(self, trainer, module) -> None:
            parked.begin()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if parked.after_step():
                trainer.should_stop = True

    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[Baton()])
    return parked.start(lambda: trainer.fit(Classifier(model), loader))


LABELS = {"lightning": "lightning", "lightning-batched": "lightning-batched", "thread-control": "raw-in-thread"}


class ThreadControl:
    """overhead.py's hand-written loop, run ``steps(count)`` at a time in a parked thread like Lightning's fit."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, threads: int):
        self.raw = raw_loop(x, y, batch_size)
        self.go, self.done = threading.Semaphore(0), threading.Semaphore(0)
        self.count, self.finish = 0, False
        self.thread = threading.Thread(target=self._serve, args=(threads,), daemon=True)
        self.thread.start()

    def _serve(self, threads: int) -> None:
        torch.set_num_threads(threads)
        while True:
            self.go.acquire()
            if self.finish:
                return
            self.raw.steps(self.count)
            self.done.release()

    def steps(self, count: int) -> None:
        self.count = count
        self.go.release()
        self.done.acquire()

    def close(self) -> None:
        self.finish = True
        self.go.release()
        self.thread.join(timeout=60)


def measure(kind: str, epochs: int, chunk: int, batch_size: int = 64) -> dict[str, Any]:
    config = overhead_config(batch_size, 1 + epochs)
    with as_trainlab_train(config) as built:
        trainer = built.trainer
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                              nn.Linear(64, CLASSES))
        model.load_state_dict(built.model.state_dict())  # the same initial weights as trainlab's
        if kind == "thread-control":
            contender = ThreadControl(trainer.batches.x, trainer.batches.y, batch_size, torch.get_num_threads())
        else:
            loader = loader_for(kind, trainer.batches.x, trainer.batches.y, batch_size)
            contender = lightning_contender(model, loader, torch.get_num_threads())
        try:
            steps = trainer.plan.steps_per_epoch
            interleave = Interleave(chunk, contender.steps, skip_steps=steps, warmup_steps=steps)
            trainer.add_callbacks([interleave])
            trainer.fit()
        finally:
            contender.close()
    stats = summarize(interleave.pairs)
    return {**stats, "contender": kind, "batch_size": batch_size, "chunk_steps": chunk, "timed_epochs": epochs,
            "contender_steps_per_s": chunk / stats["theirs_s"], "trainlab_steps_per_s": chunk / stats["ours_s"]}


def run(kinds: list[str], epochs: int = 2, chunk: int = 50, write: bool = True) -> dict[str, Any]:
    if L is None:
        raise SystemExit("PyTorch Lightning is not installed; pip install -e '.[bench]'")
    for name in ("lightning.pytorch", "lightning.fabric"):  # its banner and tips, once per fit
        logging.getLogger(name).setLevel(logging.ERROR)
    rows = [measure(kind, epochs, chunk) for kind in kinds]
    ratios = {f"trainlab/{LABELS[row['contender']]} b{row['batch_size']}": row["median"] for row in rows}
    for row in rows:
        print(f"{row['contender']:<18} b{row['batch_size']}: {row['chunks']} chunk pairs of {row['chunk_steps']} "
              f"steps; contender {row['contender_steps_per_s']:.0f} steps/s, trainlab "
              f"{row['trainlab_steps_per_s']:.0f} steps/s (median chunks); ratio trainlab/contender median "
              f"{row['median']:.3f} (quartiles {row['q1']:.3f} / {row['q3']:.3f}; total {row['total']:.3f})")
    details = {"task": "MLP 784-128-64-10, Adam lr 1e-3 (fused), 60,000 MNIST-shaped rows in memory; "
                       "Lightning without logger, progress bar, checkpointing or model summary",
               "method": "one process; Lightning's fit in a parked thread; one warm-up epoch each; alternating "
                         "chunks; ratio = trainlab chunk time / Lightning chunk time", "rows": rows}
    if write:
        path = write_result("lightning", ratios, details, contenders={"lightning": L.__version__})
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs of trainlab after the warm-up epoch")
    parser.add_argument("--chunk", type=int, default=50, help="steps per side before switching")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--loaders", nargs="+", default=["lightning", "lightning-batched"],
                        choices=["lightning", "lightning-batched", "thread-control"])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.loaders, args.epochs, args.chunk, write=not args.no_write)


if __name__ == "__main__":
    main()
