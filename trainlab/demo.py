"""``trainlab demo``: seven classic optimizers x 3 seeds on MNIST-1D, as an honest comparison.

The same machinery as ``trainlab compare`` (one run folder per optimizer and seed under
``--out``, leaderboard.json/csv, Holm-corrected tests against the best optimizer), with
the base config and strategies defined here instead of in YAML files. MNIST-1D is
generated offline by the mnist1d package, so nothing is downloaded. Run it again with
the same ``--out`` and it finishes what is missing and reuses what is done.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from trainlab.compare import compare
from trainlab.compare.strategies import NamedStrategy

# learning rates: the better of two per optimizer in a sweep (MNIST-1D, MLP 100-100, batch 100, 80 epochs)
DEMO_OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.05, "momentum": 0.9},
    "rmsprop": {"lr": 3e-3},
    "adagrad": {"lr": 0.1},
    "adadelta": {"lr": 3.0},
    "adam": {"lr": 1e-2},
    "adamw": {"lr": 1e-2, "weight_decay": 0.01},
}


def demo_config(optimizer: str, epochs: int, seed: int = 0) -> dict[str, Any]:
    return {
        "name": f"demo-{optimizer}",
        "seed": seed,
        "data": {"source": "mnist1d", "val_fraction": 0.1},
        "model": {"name": "mlp", "hidden": [100, 100], "activation": "relu"},
        "strategy": {
            "loss": "cross_entropy",
            "optimizer": {"name": optimizer, **DEMO_OPTIMIZERS[optimizer]},
            "batch_size": 100,
            "epochs": epochs,
            "schedule": {"name": "cosine"},
        },
        "metrics": ["accuracy", "f1"],
        "output": {"progress": "off"},
        "runtime": {"num_threads": 1},  # a 40-100-100-10 MLP: one thread beats two (no sync overhead)
    }


def demo_strategies(optimizers: list[str]) -> list[NamedStrategy]:
    """One strategy per optimizer: its name, hyperparameters, nothing else changed."""
    return [NamedStrategy(name, {"strategy.optimizer": {"name": name, **DEMO_OPTIMIZERS[name]}})
            for name in optimizers]


def run_demo(epochs: int = 80, optimizers: list[str] | None = None, seeds: int = 3, jobs: int = 2,
             out: str | Path | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Compare the optimizers; returns one row per optimizer, best first (mean test metrics).

    ``out`` None: a temporary folder, removed afterwards (the CLI passes ``runs/demo``).
    """
    names = optimizers or list(DEMO_OPTIMIZERS)
    base = demo_config(names[0], epochs)
    with tempfile.TemporaryDirectory(prefix="trainlab-demo-") as scratch:
        folder = Path(out) if out is not None else Path(scratch)
        board = compare({"mnist1d": base}, demo_strategies(names), folder, seeds=seeds, jobs=jobs,
                        metric="test_accuracy", quiet=quiet)
    rows = []
    for entry in board["tasks"]["mnist1d"]["strategies"]:
        means = {key.removeprefix("test_"): block["mean"] for key, block in entry["metrics"].items()
                 if key.startswith("test_")}
        rows.append({"optimizer": entry["name"], **means, "time_s": entry["metrics"]["train_time_s"]["mean"],
                     "verdict": entry["vs_best"]["verdict"]})
    return rows
