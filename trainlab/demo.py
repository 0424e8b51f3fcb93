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
from trainlab.config_fields import path_argument
from trainlab.errors import ConfigError

DEMO_TASK = "mnist1d"  # the comparison's one task: its runs are in OUT/runs/mnist1d
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


def refuse_other_comparison(out: Path) -> None:
    """A ConfigError for an ``out`` that holds another comparison than the demo's: one of a strategies file (its
    record, :data:`~trainlab.compare.folder_identity.RECORD_FILE`) or runs of a task other than ``mnist1d``.
    The demo's comparison is made from dicts, which ``compare`` takes into any folder without a record, so a
    demo into ``trainlab compare``'s folder replaced its leaderboard and report; the demo's own folder is
    continued, as documented."""
    from trainlab.compare.folder_identity import RECORD_FILE

    tasks = sorted(path.name for path in (out / "runs").iterdir() if path.is_dir()) if (out / "runs").is_dir() else []
    if (out / RECORD_FILE).exists() or any(task != DEMO_TASK for task in tasks):
        what = f"runs of task{'s' * (len(tasks) > 1)} {', '.join(tasks)}" if tasks else "a strategies file's comparison"
        raise ConfigError(f"--out {out} holds another comparison ({what}); the demo writes its own comparison: give "
                          "another --out (or the demo's own folder, runs/demo, to continue it)")


def run_demo(epochs: int = 80, optimizers: list[str] | None = None, seeds: int = 3, jobs: int = 2,
             out: str | Path | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Compare the optimizers; returns one row per optimizer, best first (mean test metrics).

    ``out`` None: a temporary folder, removed afterwards (the CLI passes ``runs/demo``).
    """
    names = optimizers or list(DEMO_OPTIMIZERS)
    base = demo_config(names[0], epochs)
    given = None if out is None else path_argument(out, "out")
    if given is not None:
        refuse_other_comparison(given)
    with tempfile.TemporaryDirectory(prefix="trainlab-demo-") as scratch:
        folder = given if given is not None else Path(scratch)
        board = compare({DEMO_TASK: base}, demo_strategies(names), folder, seeds=seeds, jobs=jobs,
                        metric="test_accuracy", quiet=quiet)
    rows = []
    for entry in board["tasks"][DEMO_TASK]["strategies"]:
        means = {key.removeprefix("test_"): block["mean"] for key, block in entry["metrics"].items()
                 if key.startswith("test_")}
        rows.append({"optimizer": entry["name"], **means, "time_s": entry["metrics"]["train_time_s"]["mean"],
                     "verdict": entry["vs_best"]["verdict"]})
    return rows
