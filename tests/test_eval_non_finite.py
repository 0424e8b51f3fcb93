"""``trainlab eval`` of a run whose weights went non-finite (``strategy.divergence.policy: off``) prints the
metrics that are not finite as null, as ``trainlab train`` does, then one ``warning:`` line naming them and
why; exit 0. A healthy run's eval prints its numbers and no warning, and a metric undefined on the split's
rows (R² of one row) beside a finite loss is told apart from non-finite outputs.

Which values are not finite is checked against the run's own weights (``model.safetensors`` read with
safetensors and ``math.isfinite``) and against train's summary.json.
"""

from __future__ import annotations

import json
import math

import numpy as np
import yaml
from safetensors.numpy import load_file

from trainlab.cli import main

METRICS = ["mse", "mae", "r2"]


def regression_csv(path, rows: int = 40) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    y = x @ np.array([1.0, 2.0, 3.0]) + 0.1 * rng.normal(size=rows)
    lines = ["a,b,c,y"] + [",".join(f"{v:.4f}" for v in (*row, target)) for row, target in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def train(tmp_path, capsys, lr: float, **data) -> tuple:
    config = {"name": "reg", "seed": 0,
              "data": {"source": "csv", "path": regression_csv(tmp_path / "reg.csv"), "target": "y", **data},
              "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": lr}, "batch_size": 4, "epochs": 2,
                           "divergence": {"policy": "off"}},
              "metrics": METRICS, "output": {"progress": "off"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    train_out = capsys.readouterr().out
    return out, train_out, json.loads((out / "summary.json").read_text())


def evaluate(run, capsys) -> tuple[int, list[str], list[str]]:
    code = main(["eval", str(run)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def shown(lines: list[str]) -> dict[str, str]:
    """``{metric: printed value}`` of a printed metrics table."""
    return dict(line.split() for line in lines if line.startswith("  "))


def test_eval_of_weights_gone_non_finite_prints_null_as_train_and_one_warning(tmp_path, capsys):
    run, train_out, summary = train(tmp_path, capsys, lr=1e6)
    weights = load_file(str(run / "model.safetensors"))
    assert not all(math.isfinite(v) for array in weights.values() for v in array.ravel())  # the premise
    code, out, err = evaluate(run, capsys)
    assert code == 0
    assert out[0] == "test:" and shown(out) == dict.fromkeys(["loss", *METRICS], "null")
    assert summary["test"] == dict.fromkeys(["loss", *METRICS])  # train's record: the same nulls
    assert [line for line in train_out.splitlines() if line.startswith("  ")][-4:] == out[1:]  # as train prints
    assert len(err) == 1 and err[0].startswith(
        "warning: the test metrics loss=nan, mse=nan, mae=nan, r2=nan are not finite (shown as null): the model's "
        "outputs on the test split are not finite, as the run's weights went non-finite in training (summary.json "
        f"non_finite: {summary['non_finite'][0]})"), err
    assert "lower learning rate" in err[0]


def test_eval_of_a_healthy_run_prints_numbers_and_no_warning(tmp_path, capsys):
    run, _, summary = train(tmp_path, capsys, lr=0.01)
    code, out, err = evaluate(run, capsys)
    assert code == 0 and err == []
    values = shown(out)
    assert set(values) == {"loss", *METRICS}
    for name, value in values.items():
        assert math.isclose(float(value), summary["test"][name], rel_tol=1e-5), name


def test_a_metric_undefined_on_one_row_is_told_apart_from_non_finite_outputs(tmp_path, capsys):
    run, _, summary = train(tmp_path, capsys, lr=0.01, test_fraction=0.025)  # round(40 * 0.025) = 1 test row
    assert summary["rows"]["test"] == 1 and summary["test"]["r2"] is None
    code, out, err = evaluate(run, capsys)
    assert code == 0 and shown(out)["r2"] == "null" and math.isfinite(float(shown(out)["loss"]))
    assert len(err) == 1 and err[0].startswith(
        "warning: the test metric r2=nan is not finite (shown as null), while the loss is, so the model's outputs "
        "are finite: undefined on the test split's rows (R² needs two rows or more"), err
