"""Configs the compare tests share: a base config quick enough to run a comparison's runs in seconds."""

from __future__ import annotations

from typing import Any

IRIS_BASE: dict[str, Any] = {
    "name": "iris",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                 "epochs": 3},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 2, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}


def iris_base(epochs: int = 3) -> dict[str, Any]:
    """:data:`IRIS_BASE` training ``epochs`` epochs (a fresh copy: a test may change it)."""
    import copy

    base = copy.deepcopy(IRIS_BASE)
    base["strategy"]["epochs"] = epochs
    return base
