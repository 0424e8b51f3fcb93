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
