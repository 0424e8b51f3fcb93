"""A step record's ``train_loss`` is the per-sample mean of the data loss since the last step record (each
step's mean weighted by its rows), the same mean the epoch record's ``train_loss`` takes. It was the plain
mean of the steps' means, which over-weights a short last batch: at an epoch's end the two records of the
same steps disagreed.

References: the epoch record over exactly the same steps, and the rows-weighted mean of the step losses a
callback saw, each step's rows read from the batch plan by hand (192 training rows at batch 50: 50, 50, 50, 42).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import trainlab
from trainlab.config import validate
from trainlab.experiment import train


class StepLosses(trainlab.Callback):
    def __init__(self):
        self.losses = []

    def on_step_end(self, view, loss) -> None:
        self.losses.append(float(loss))


def test_a_step_record_over_an_epoch_equals_the_epoch_records_train_loss(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x @ [1.0, -2.0, 0.5] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    table = tmp_path / "table.csv"
    table.write_text("a,b,c,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(x, y, strict=True)))
    # 300 rows: 60 test, then 48 validation, 192 training rows; batch 50 gives steps of 50, 50, 50 and 42 rows
    config = validate({"name": "steps", "data": {"source": "csv", "path": str(table), "target": "y"},
                       "model": {"name": "mlp", "hidden": [8]},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.5},
                                    "batch_size": 50, "epochs": 2},
                       "output": {"log_every_n_steps": 4}, "runtime": {"num_threads": 1}})
    seen = StepLosses()
    _, run_dir = train(config, out=tmp_path / "run", quiet=True, callbacks=[seen])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r.get("scope") != "step" and "train_loss" in r]
    steps = [r for r in records if r.get("scope") == "step"]
    assert [r["step"] for r in epochs] == [r["step"] for r in steps] == [4, 8]
    rows = np.array([50, 50, 50, 42])
    for k, (epoch, step) in enumerate(zip(epochs, steps, strict=True)):
        weighted = float(np.dot(seen.losses[4 * k:4 * k + 4], rows) / rows.sum())
        assert step["train_loss"] == pytest.approx(weighted, rel=1e-6)
        assert step["train_loss"] == pytest.approx(epoch["train_loss"], rel=1e-6)
        assert abs(weighted - np.mean(seen.losses[4 * k:4 * k + 4])) > 1e-4  # the plain mean is another number


def _step_losses(run) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r.get("scope") == "step" and "train_loss" in r}


def test_a_resumed_run_writes_the_step_records_of_the_uninterrupted_one(tmp_path):
    """The sums since the last step record are checkpointed: resumed from a checkpoint between two records,
    the next record covered only the steps after the resume (7.28 was 4.65 in the sweep's case)."""
    from tests.conftest import DIGITS_MLP
    from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints

    config = {**DIGITS_MLP, "output": {**DIGITS_MLP.get("output", {}), "log_every_n_steps": 7}}
    config["strategy"] = {**config["strategy"], "epochs": 1}
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=5)
    uninterrupted = _step_losses(full)
    assert len(uninterrupted) >= 3
    for step in sorted(checkpoints)[:3]:  # 5, 10, 15: each between two records
        assert step % 7
        assert _step_losses(resume_a_copy(full, checkpoints[step], tmp_path)) == uninterrupted


def test_after_a_rollback_each_step_record_is_the_per_sample_mean_of_the_steps_it_covers(tmp_path):
    """The guard's rollback snapshot holds the step logger's sums as they were at its step: the record after a
    rollback covers the steps kept, each with its rows (it was a negative cross-entropy: the restored
    samples_seen was below the logger's). Reference: the same run logging every step (logging does not
    change training), averaged per sample."""
    from trainlab.cli import main

    base = {"name": "rollback", "seed": 5, "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [32]},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 10.0}, "batch_size": 32,
                         "epochs": 4, "schedule": {"name": "warmup_linear", "warmup_fraction": 0.5},
                         "divergence": {"policy": "rollback", "spike_factor": 20, "window": 10, "lr_factor": 0.1,
                                        "max_rollbacks": 4}},
            "metrics": ["accuracy"], "output": {"progress": "off"}, "runtime": {"num_threads": 1}}
    runs = {}
    for every in (4, 1):
        path = tmp_path / f"every{every}.yaml"
        path.write_text(yaml.safe_dump({**base, "output": {"progress": "off", "log_every_n_steps": every}}))
        assert main(["train", str(path), "--out", str(tmp_path / f"r{every}"), "--quiet"]) == 0
        runs[every] = tmp_path / f"r{every}"
    events = json.loads((runs[4] / "summary.json").read_text())["events"]
    assert [e["action"] for e in events if e.get("action") == "rollback"], "the config must roll back"
    every4, every1 = _step_losses(runs[4]), _step_losses(runs[1])
    records = [json.loads(line) for line in (runs[1] / "metrics.jsonl").read_text().splitlines()]
    position = {r["step"]: r["epoch"] for r in records if r.get("scope") == "step" and "train_loss" in r}
    epoch_one = next(r["train_loss"] for r in records if "scope" not in r and r.get("epoch") == 1 and "train_loss" in r)

    def rows(step: int, last: int) -> int:
        return last if float(position[step]).is_integer() else 32  # an epoch's last batch is shorter

    first = [s for s in every1 if position[s] <= 1.0]
    last_rows = next(k for k in range(1, 33)  # the last batch's rows: the one that gives epoch 1's record
                     if abs(sum(every1[s] * rows(s, k) for s in first) / sum(rows(s, k) for s in first)
                            - epoch_one) < 1e-6)
    for step, value in every4.items():
        covered = [s for s in range(step - 3, step + 1) if s in every1]
        weights = [rows(s, last_rows) for s in covered]
        assert value == pytest.approx(sum(every1[s] * w for s, w in zip(covered, weights, strict=True))
                                      / sum(weights), rel=1e-5), step
