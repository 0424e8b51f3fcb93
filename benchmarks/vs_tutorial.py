"""trainlab vs the tutorials' own training loops, side by side in one process, on the same real data.

The tutorials train through a ``DataLoader(dataset, batch_size=64, shuffle=True)``: per-sample
indexing and a collate per batch. Here the tutorial loop gets the most favourable form of that: a
``TensorDataset`` of already-normalised float32 tensors (torchvision's datasets would also decode and
convert every image per sample), no worker processes, and the optimizer built as the tutorial builds
it (``torch.optim.Adam(params, lr=1e-3)``, ``torch.optim.SGD(params, lr=0.01, momentum=0.9)``). The
model is a copy of trainlab's, so both train the same architecture from the same initial weights.
trainlab trains from the example's own config (uint8 data, normalised per batch, fused Adam, all
default callbacks). After warm-up steps, the two loops take turns in chunks of ``--chunk`` steps
(see sidebyside.py), so the machine's speed swings hit both alike; trainlab's chunks that contain an
epoch's end (validation) are left out.

    python benchmarks/vs_tutorial.py --data-dir ../shared/datasets [--epochs 2] [mnist_mlp_adam cifar10_cnn_sgd]

CIFAR-10 is read from the extracted JPEG folder the example names (see examples/README.md).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sidebyside: beside this script
from sidebyside import Interleave, as_trainlab_train, summarize  # noqa: E402

from trainlab.config import load_config  # noqa: E402
from trainlab.runtime import environment  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TUTORIAL_OPTIMIZERS = {
    "mnist_mlp_adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "cifar10_cnn_sgd": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
}


class TutorialLoop:
    """The loop as the tutorials write it, able to stop and go on after any number of steps."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader):
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.criterion = nn.CrossEntropyLoss()
        self.batches = iter(loader)

    def steps(self, count: int) -> None:
        self.model.train()
        for _ in range(count):
            try:
                inputs, labels = next(self.batches)
            except StopIteration:  # a new epoch: the DataLoader reshuffles
                self.batches = iter(self.loader)
                inputs, labels = next(self.batches)
            self.optimizer.zero_grad()
            outputs = self.model(inputs)
            loss = self.criterion(outputs, labels)
            loss.backward()
            self.optimizer.step()


def compare(name: str, epochs: int, chunk: int) -> dict[str, float]:
    """Side-by-side statistics (see sidebyside.summarize) over ``epochs`` epochs of trainlab after a warm-up."""
    # the warm-up (2 chunks) lies in the first epoch; the timed epochs follow it
    config = load_config(EXAMPLES / f"{name}.yaml", ["output.progress=off", f"strategy.epochs={epochs + 1}"])
    with as_trainlab_train(config) as built:
        trainer = built.trainer
        tutorial_model = copy.deepcopy(built.model)
        x = built.data.train.x
        if built.data.eval_transform is not None:  # the tutorial normalises once, up front
            x = torch.cat([built.data.eval_transform(x[i:i + 4096], None) for i in range(0, len(x), 4096)])
        loader = DataLoader(TensorDataset(x, built.data.train.y), batch_size=config.strategy.batch_size,
                            shuffle=True, generator=torch.Generator().manual_seed(0))
        tutorial = TutorialLoop(tutorial_model, TUTORIAL_OPTIMIZERS[name](tutorial_model.parameters()), loader)
        # warm-up: trainlab's first 2 chunks and 2 chunks of the tutorial loop (first-call costs)
        interleave = Interleave(chunk, tutorial.steps, skip_steps=2 * chunk, warmup_steps=2 * chunk)
        trainer.add_callbacks([interleave])
        trainer.fit()
    return {**summarize(interleave.pairs), "steps": trainer.plan.steps_per_epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"examples to compare (default: all of {', '.join(TUTORIAL_OPTIMIZERS)})")
    parser.add_argument("--data-dir", default=None, help="where relative data paths are resolved (MNIST)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of trainlab after the warm-up")
    parser.add_argument("--chunk", type=int, default=50, help="steps per side before switching")
    args = parser.parse_args()
    if args.data_dir:
        os.environ["TRAINLAB_DATA_DIR"] = args.data_dir
    unknown = [n for n in args.names if n not in TUTORIAL_OPTIMIZERS]
    if unknown:
        parser.error(f"unknown example {unknown[0]!r}; choose from {', '.join(TUTORIAL_OPTIMIZERS)}")
    print(f"environment: {environment()}")
    for name in args.names or list(TUTORIAL_OPTIMIZERS):
        stats = compare(name, args.epochs, args.chunk)
        print(f"{name}: {stats['chunks']} chunk pairs of {args.chunk} steps; per chunk: tutorial loop "
              f"{stats['theirs_s']:.3f} s, trainlab {stats['ours_s']:.3f} s (medians)")
        print(f"  time ratio trainlab / tutorial: median {stats['median']:.3f} (quartiles {stats['q1']:.3f} / "
              f"{stats['q3']:.3f}), total {stats['total']:.3f}; trainlab is {1 / stats['median']:.2f}x "
              f"the tutorial's speed")


if __name__ == "__main__":
    main()
