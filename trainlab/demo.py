"""``trainlab demo``: seven classic optimizers on MNIST-1D with one MLP, as a leaderboard.

No files are read or written: MNIST-1D is generated offline by the mnist1d package.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from trainlab.builders import build, run_scope
from trainlab.config import validate

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
        "runtime": {"num_threads": 1},  # a 40-100-100-10 MLP: one thread beats two (no sync overhead)
    }


def run_demo(epochs: int = 80, optimizers: list[str] | None = None, console: Console | None = None) -> list[dict]:
    console = console or Console()
    rows = []
    for name in optimizers or list(DEMO_OPTIMIZERS):
        config = validate(demo_config(name, epochs))
        with run_scope(config):
            built = build(config, quiet=True)
            started = time.perf_counter()
            built.trainer.fit()
            elapsed = time.perf_counter() - started
            test = built.evaluator.evaluate(built.data.test)
        rows.append({"optimizer": name, **test, "time_s": elapsed})
        console.print(f"  {name:<9} test accuracy {test['accuracy']:.3f}  ({elapsed:.1f} s)")
    rows.sort(key=lambda r: -r["accuracy"])
    table = Table(title=f"MNIST-1D, MLP 40-100-100-10, {epochs} epochs, batch 100, cosine LR")
    for column in ("rank", "optimizer", "test accuracy", "test F1", "test loss", "time (s)"):
        table.add_column(column, justify="right" if column != "optimizer" else "left")
    for rank, row in enumerate(rows, start=1):
        table.add_row(str(rank), row["optimizer"], f"{row['accuracy']:.3f}", f"{row['f1']:.3f}",
                      f"{row['loss']:.3f}", f"{row['time_s']:.1f}")
    console.print(table)
    return rows
