"""Does ``trainlab lr-find`` land within 10x of the best LR of a small sweep? (MNIST-1D, MLP, Adam.)

    python benchmarks/lr_find_sweep.py [--optimizer adam] [--epochs 20]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from trainlab.builders import fit_config
from trainlab.config import validate
from trainlab.demo import demo_config
from trainlab.lr_find_run import lr_find_config
from trainlab.runtime import environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw = demo_config(args.optimizer, args.epochs)
    raw["strategy"]["schedule"] = {"name": "constant"}
    suggestion, _, _ = lr_find_config(validate(raw))
    results = {}
    for lr in np.logspace(-4, 0, 9):
        raw["strategy"]["optimizer"]["lr"] = float(lr)
        built = fit_config(validate(raw))  # build + fit inside the run's scope (threads, seeds)
        results[float(lr)] = built.evaluator.evaluate(built.data.val)["accuracy"]
        print(f"  lr {lr:.2e}: val accuracy {results[float(lr)]:.3f}", flush=True)
    best = max(results, key=results.get)
    ratio = suggestion / best
    print(f"environment: {environment()}")
    print(f"lr-find suggestion {suggestion:.3g}; sweep best {best:.3g}; ratio {ratio:.2f} "
          f"({'within' if 0.1 <= ratio <= 10 else 'NOT within'} a factor of 10)")


if __name__ == "__main__":
    main()
