"""Hand-written run folders and comparison folders in the formats of trainlab.run_folder and
``trainlab compare`` (issue 15's leaderboard.json schema), for the report tests."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import yaml

CLASS_NAMES = ["cat", "dog", "bird"]

BASE_CONFIG = {
    "name": "digits-mlp", "seed": 0,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 32,
                 "epochs": 20},
    "metrics": ["accuracy", "f1"],
    "output": {"progress": "off"},
}

ENVIRONMENT = {"cpu": "Test CPU @ 2.0GHz", "threads": 1, "torch": "2.13.0", "python": "3.11.7",
               "native_bf16": False, "cores": 2}


def fake_run(folder: Path, *, optimizer: str, lr: float, seed: int, quality: float, rng: np.random.Generator,
             epochs: int = 20, steps_per_epoch: int = 45, log_every: int = 5, predictions: bool = True,
             status: str = "finished", events: list[dict] | None = None) -> dict:
    """A run folder whose curves approach ``quality`` (final val accuracy); returns its summary."""
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(BASE_CONFIG))
    config["seed"] = seed
    config["strategy"]["optimizer"] = {"name": optimizer, "lr": lr}
    config["strategy"]["epochs"] = epochs
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    records, clock = [], 0.0
    for epoch in range(1, epochs + 1):
        for k in range(log_every, steps_per_epoch + 1, log_every):  # step records
            step = (epoch - 1) * steps_per_epoch + k
            progress = step / (epochs * steps_per_epoch)
            scheduled = lr * 0.5 * (1 + math.cos(math.pi * progress))
            loss = 2.3 * math.exp(-4 * quality * progress) + 0.05 * rng.random()
            records.append({"step": step, "train_loss": loss, "lr": scheduled, "samples_per_s": 900.0})
        clock += 0.4 + 0.05 * rng.random()
        step = epoch * steps_per_epoch
        progress = epoch / epochs
        accuracy = quality * (1 - math.exp(-5 * progress)) + 0.01 * rng.standard_normal()
        records.append({"epoch": epoch, "step": step, "lr": lr * 0.5 * (1 + math.cos(math.pi * progress)),
                        "train_loss": 2.3 * math.exp(-4 * quality * progress),
                        "val_loss": 2.3 * math.exp(-3.5 * quality * progress) + 0.05,
                        "val_accuracy": accuracy, "val_f1": accuracy - 0.01, "elapsed_s": round(clock, 4)})
    lines = [json.dumps(r) for r in records] + [json.dumps(e) for e in events or []]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    test_accuracy = records[-1]["val_accuracy"] - 0.005 + 0.005 * rng.standard_normal()
    summary = {"name": config["name"], "status": status, "seed": seed, "config_hash": f"hash{seed}",
               "epochs_run": epochs, "steps": epochs * steps_per_epoch, "best_epoch": epochs,
               "stopped_early": False, "stop_reason": f"max_epochs reached ({epochs})", "train_time_s": clock,
               "samples_per_s": 900.0, "val": {"loss": records[-1]["val_loss"], "accuracy": records[-1]["val_accuracy"],
                                               "f1": records[-1]["val_f1"]},
               "test": {"loss": records[-1]["val_loss"] + 0.01, "accuracy": test_accuracy, "f1": test_accuracy - 0.01},
               "loss": "cross_entropy", "optimizer": optimizer, "mode": "mini-batch gradient descent (batch 32)",
               "events": events or [], "notes": {}, "environment": ENVIRONMENT, "trainlab": "0.1.0"}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "run.json").write_text(json.dumps({"format": 1, "trainlab": "0.1.0", "status": status}))
    if predictions:
        y_true = rng.integers(0, 3, 300)
        y_pred = np.where(rng.random(300) < quality, y_true, rng.integers(0, 3, 300))
        np.savez(folder / "predictions.npz", y_true=y_true, y_pred=y_pred, class_names=np.array(CLASS_NAMES))
    return summary


def _stats(values: list[float]) -> dict:
    from scipy import stats

    array = np.asarray(values)
    mean, std = float(array.mean()), float(array.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(array) - 1) * std / math.sqrt(len(array)))
    return {"mean": mean, "std": std, "median": float(np.median(array)), "min": float(array.min()),
            "max": float(array.max()), "ci95": [mean - half, mean + half], "ci_method": "t", "values": values}


def fake_comparison(root: Path, strategies: dict[str, tuple[str, float, float]], seeds: int = 5,
                    tasks: tuple[str, ...] = ("digits",), target: float | None = 0.8, real_best_run: Path | None = None,
                    epochs: int = 20) -> Path:
    """``root/leaderboard.json`` + ``root/runs/<task>/<strategy>/seed-<k>/`` for strategies
    name -> (optimizer, lr, quality). With ``real_best_run`` the best strategy's seed-0 folder is a copy
    of that trained run (no predictions.npz: the report must rebuild the model)."""
    rng = np.random.default_rng(0)
    board = {"metric": "test_accuracy", "direction": "max", "seeds": seeds,
             "target": {"metric": "val_accuracy", "value": target} if target is not None else None, "tasks": {}}
    best_name = max(strategies, key=lambda n: strategies[n][2])
    for t_index, task in enumerate(tasks):
        entries = []
        for name, (optimizer, lr, quality) in strategies.items():
            quality = quality - 0.03 * t_index * (name != best_name)
            summaries, times, steps = [], [], []
            for seed in range(seeds):
                folder = root / "runs" / task / name / f"seed-{seed}"
                if real_best_run is not None and name == best_name and seed == 0 and t_index == 0:
                    shutil.copytree(real_best_run, folder)
                    summary = json.loads((folder / "summary.json").read_text())
                    records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
                else:
                    summary = fake_run(folder, optimizer=optimizer, lr=lr, seed=seed, quality=quality, rng=rng,
                                       epochs=epochs)
                    records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
                summaries.append(summary)
                hit = next((r for r in records if target is not None and r.get("val_accuracy", 0) >= target), None)
                times.append(hit["elapsed_s"] if hit else None)
                steps.append(hit["step"] if hit else None)
            reached = [t for t in times if t is not None]
            entries.append({
                "name": name, "runs": seeds, "failed": 0,
                "metrics": {"test_accuracy": _stats([s["test"]["accuracy"] for s in summaries]),
                            "test_loss": _stats([s["test"]["loss"] for s in summaries]),
                            "train_time_s": _stats([s["train_time_s"] for s in summaries])},
                "time_to_target_s": {"median": float(np.median(reached)) if len(reached) > seeds / 2 else None,
                                     "reached": len(reached), "values": times},
                "steps_to_target": {"median": float(np.median([s for s in steps if s is not None]))
                                    if len(reached) > seeds / 2 else None, "values": steps},
            })
        entries.sort(key=lambda e: -e["metrics"]["test_accuracy"]["mean"])
        for rank, entry in enumerate(entries, start=1):
            entry["rank"] = rank
            entry["vs_best"] = ({"test": None, "p": None, "p_holm": None, "verdict": "best", "prob_improvement": None}
                                if rank == 1 else
                                {"test": "paired-t", "p": 0.01 * rank, "p_holm": min(1.0, 0.02 * rank),
                                 "verdict": "worse" if rank > 3 else "indistinguishable", "prob_improvement": 0.2})
        board["tasks"][task] = {"strategies": entries}
    (root / "leaderboard.json").write_text(json.dumps(board))
    return root


SEVEN = {"sgd": ("sgd", 0.1, 0.90), "momentum": ("sgd", 0.05, 0.93), "adam": ("adam", 0.003, 0.97),
         "adamw": ("adamw", 0.003, 0.965), "rmsprop": ("rmsprop", 0.001, 0.95), "adagrad": ("adagrad", 0.05, 0.88),
         "hopeless": ("sgd", 1e-6, 0.10)}
