"""``lr: auto`` and ``loss: auto`` say on the console, as the run starts, what they chose.

A user saw the chosen lr only in summary.json / config.yaml / run.json's auto_notes. Now ``trainlab train``
notes ``loss: auto -> bce (pos_weight=...; ...)`` and ``lr: auto -> 0.00123 (LR range test, 1.23 s)`` on
stderr before training (not under --quiet). The pos_weight is compared with NumPy's n_neg / n_pos of the
training rows (the whole file: no val/test split), the lr with the one config.yaml records the run used.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from trainlab.cli import main


def _csv(tmp_path: Path, binary: bool) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    if binary:  # about 10% positives: bce with pos_weight
        y = (x[:, 0] + 0.5 * rng.normal(size=300) > 1.5).astype(int)
    else:  # light-tailed regression: mse, which has no options
        y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.3, size=300)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = y
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path, y


def _config(tmp_path: Path, data: Path) -> str:
    config = {"name": "auto", "seed": 0,
              "data": {"source": "csv", "path": str(data), "target": "y", "val_fraction": 0.0, "test_fraction": 0.0},
              "model": {"name": "mlp", "hidden": [8]},
              "strategy": {"loss": "auto", "optimizer": {"name": "adam", "lr": "auto"}, "batch_size": 30,
                           "epochs": 1},
              "runtime": {"num_threads": 1}, "output": {"progress": "off"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _used_lr(run: Path) -> float:
    return float(yaml.safe_load((run / "config.yaml").read_text())["strategy"]["optimizer"]["lr"])


def test_train_notes_the_loss_and_the_lr_that_auto_chose_before_training(tmp_path, capsys):
    data, y = _csv(tmp_path, binary=True)
    n_pos = int(y.sum())
    pos_weight = float(f"{(len(y) - n_pos) / n_pos:.4g}")  # the advisor's 4 significant digits
    assert n_pos / len(y) < 0.2  # rare enough for pos_weight
    run = tmp_path / "run"
    assert main(["train", _config(tmp_path, data), "--out", str(run)]) == 0
    err = capsys.readouterr().err.splitlines()
    loss_lines = [line for line in err if line.startswith("loss: auto")]
    assert loss_lines == [f"loss: auto -> bce (pos_weight={pos_weight}; 'trainlab advise' says why)"]
    lr_lines = [line for line in err if line.startswith("lr: auto")]
    assert len(lr_lines) == 1
    found = re.fullmatch(r"lr: auto -> (\S+) \(LR range test, (\d+\.\d\d) s\)", lr_lines[0])
    assert found, lr_lines[0]
    assert float(found.group(1)) == float(f"{_used_lr(run):.4g}")  # the lr the run trained with
    # said as the run starts: before the lines written as it ends
    ending = next(i for i, line in enumerate(err) if line.startswith("note: checkpoints kept"))
    assert err.index(loss_lines[0]) < err.index(lr_lines[0]) < ending


def test_a_loss_without_options_is_named_alone_and_quiet_says_neither(tmp_path, capsys):
    data, _ = _csv(tmp_path, binary=False)
    config = _config(tmp_path, data)
    assert main(["train", config, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "loss: auto -> mse ('trainlab advise' says why)" in err
    assert sum(line.startswith("lr: auto -> ") for line in err) == 1
    assert main(["train", config, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "loss: auto" not in err and "lr: auto" not in err
