"""Run folders read back: a run trained when trainlab inferred its task otherwise is rebuilt with the task it
trained on (trainlab.run_records.with_recorded_task)."""

from __future__ import annotations

import json

import numpy as np
import yaml

from trainlab.cli import main
from trainlab.config import validate
from trainlab.run_records import with_recorded_task


def _one_hot_csv(path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 3))
    label = np.argmax(x, axis=1)
    rows = ["x0,x1,x2,a,b,c"] + [",".join(f"{v:.4f}" for v in x[i]) + "," + ",".join(
        "1" if label[i] == k else "0" for k in range(3)) for i in range(90)]
    path.write_text("\n".join(rows) + "\n")


def test_a_run_whose_task_is_now_inferred_otherwise_is_evaluated_as_it_trained(tmp_path, capsys):
    """One-hot target columns were multi-label before trainlab read them as one class per row: a run trained
    then (config without data.task, loss bce) must still evaluate, on the task it trained on."""
    _one_hot_csv(tmp_path / "tags.csv")
    config = {"name": "tags", "seed": 0,
              "data": {"source": "csv", "path": str(tmp_path / "tags.csv"), "target": ["a", "b", "c"],
                       "task": "multilabel"},
              "model": {"name": "mlp", "hidden": [8]},
              "strategy": {"loss": "bce", "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 2, "batch_size": 16}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(run), "--quiet"]) == 0
    # the folder as the earlier trainlab wrote it: data.task left out (inferred: multilabel then)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["data"]["task"] = None
    (run / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    info = json.loads((run / "run.json").read_text())
    info["resolved_config_hash"] = validate(stored).hash()
    (run / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    printed = capsys.readouterr().out
    assert f"{summary['test']['loss']:.6g}" in printed


def test_the_recorded_task_fills_only_a_task_left_to_inference(tmp_path):
    config = validate({"data": {"source": "iris"}, "model": {"name": "mlp"},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1}})
    assert with_recorded_task(config, tmp_path).data.task is None  # no records: as it was
    (tmp_path / "model.json").write_text("{damaged")
    (tmp_path / "labels.json").write_text(json.dumps({"task": "multiclass", "class_names": ["a", "b", "c"]}))
    assert with_recorded_task(config, tmp_path).data.task == "multiclass"  # the next record says it
    (tmp_path / "model.json").write_text(json.dumps({"task": "binary"}))
    assert with_recorded_task(config, tmp_path).data.task == "binary"
    given = validate({**config.to_dict(), "data": {"source": "iris", "task": "multiclass"}})
    assert with_recorded_task(given, tmp_path).data.task == "multiclass"  # a task the config gives stays


def test_a_damaged_summary_names_its_json_error_once(tmp_path):
    """json's own message for a control character ends in "at": the line read "... at at line 1"."""
    from trainlab.records import finished_summary_damage

    path = tmp_path / "summary.json"
    path.write_text('{"status": "fini\x01shed"}')
    assert finished_summary_damage(path) == ("is not valid JSON (Invalid control character at line 1 column 17: "
                                             "cut off or damaged)")
    path.write_text('{"status": ')
    assert finished_summary_damage(path) == "is not valid JSON (Expecting value at line 1 column 12: cut off or damaged)"
