"""summary.json's ``train`` block (trainlab.run_summary.final_evaluations) and the overfitting gap compare
draws from it (trainlab.compare.run_record.loss_gap).

The block is checked against the saved ``model.safetensors`` evaluated here by hand (NumPy forward pass,
log-softmax cross-entropy written out, scikit-learn's metrics) on the run's training rows, which
``load_dataset`` gives again (the split depends on ``data.split_seed`` only).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from tests.conftest import DIGITS_MLP
from trainlab.compare.run_record import RUNNING_TRAIN_LOSS_NOTE, RunRecord, convergence
from trainlab.config import validate
from trainlab.data import load_dataset

# dropout 0.5 on an MLP that is still learning: the epoch's running train loss (dropout on, early batches of
# the epoch) is far above the final weights' loss on the same rows, so the old gap came out below 0
DROPOUT_MLP = {**DIGITS_MLP, "model": {"name": "mlp", "hidden": [32], "dropout": 0.5},
               "strategy": {**DIGITS_MLP["strategy"], "epochs": 3}}


def _train(folder: Path, config: dict) -> tuple[dict, Path]:
    from trainlab.experiment import train

    return train(validate(config), out=folder, quiet=True)


@pytest.fixture(scope="module")
def dropout_run(tmp_path_factory) -> tuple[dict, Path]:
    return _train(tmp_path_factory.mktemp("dropout") / "run", DROPOUT_MLP)


def _reference_train_metrics(path: Path) -> dict[str, float]:
    """The saved weights' loss and metrics on the training rows, computed without trainlab's model or metrics:
    Linear(64, 32) -> ReLU -> (dropout: identity in evaluation) -> Linear(32, 10), in float64."""
    weights = {k: v.astype(np.float64) for k, v in load_file(str(path / "model.safetensors")).items()}
    train = load_dataset(validate(DROPOUT_MLP).data).train
    x, y = train.x.numpy().astype(np.float64), train.y.numpy()
    hidden = np.maximum(x @ weights["0.weight"].T + weights["0.bias"], 0.0)
    logits = hidden @ weights["3.weight"].T + weights["3.bias"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    predicted = logits.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="macro", zero_division=0)
    return {"loss": float(-log_softmax[np.arange(len(y)), y].mean()), "accuracy": accuracy_score(y, predicted),
            "precision": precision, "recall": recall, "f1": f1}


def _epoch_records(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if "epoch" in r and "val_loss" in r and r.get("scope") != "step"]


def test_the_train_block_is_the_saved_model_evaluated_on_the_training_rows(dropout_run):
    summary, path = dropout_run
    reference = _reference_train_metrics(path)
    assert set(summary["train"]) == set(summary["val"]) == set(reference)
    assert summary["train"]["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert summary["train"][name] == pytest.approx(reference[name], abs=1e-9), name
    written = json.loads((path / "summary.json").read_text())
    assert written["train"] == pytest.approx(summary["train"])


def test_eval_of_the_train_split_gives_the_summarys_train_block(dropout_run):
    """``trainlab eval --split train`` rebuilds the run and evaluates model.safetensors as the summary did."""
    from trainlab.run_evaluation import evaluate_run

    summary, path = dropout_run
    assert evaluate_run(path, "train") == pytest.approx(summary["train"], rel=1e-6)


def test_compares_gap_loss_is_val_minus_the_final_weights_train_loss_not_the_running_mean(dropout_run):
    """The user's finding: with dropout the recorded gap was below 0 (the running train loss, dropout on, is
    above val_loss), while the final weights' loss on the training rows is below their val loss."""
    summary, path = dropout_run
    records = _epoch_records(path)
    old_gap = records[-1]["val_loss"] - records[-1]["train_loss"]
    true_gap = summary["val"]["loss"] - _reference_train_metrics(path)["loss"]
    assert old_gap < 0 < true_gap
    figures = convergence(RunRecord(0, path, "finished", summary, records), "val_accuracy", "accuracy")
    assert figures["gap_loss"] == pytest.approx(true_gap, rel=1e-5)
    assert "note" not in figures


def test_evaluate_train_false_leaves_no_block_and_gap_loss_falls_back_with_a_note(tmp_path, capsys):
    from trainlab.cli import main

    config = {**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], "epochs": 1}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    run = tmp_path / "run"
    assert main(["train", str(config_path), "--out", str(run), "--set", "output.evaluate_train=false"]) == 0
    out = capsys.readouterr().out
    assert "\nval:" in out and "train:" not in out
    summary = json.loads((run / "summary.json").read_text())
    assert "train" not in summary and {"val", "test"} <= set(summary)
    records = _epoch_records(run)
    figures = convergence(RunRecord(0, run, "finished", summary, records), "val_accuracy", "accuracy")
    assert figures["gap_loss"] == pytest.approx(records[-1]["val_loss"] - records[-1]["train_loss"])
    assert figures["note"] == RUNNING_TRAIN_LOSS_NOTE and "running mean" in figures["note"]


def test_a_train_block_with_a_null_loss_gives_no_gap_rather_than_the_running_one():
    summary = {"val": {"loss": 0.4}, "test": {"loss": 0.5}, "train": {"loss": None}}
    records = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.4, "val_accuracy": 0.8}]
    figures = convergence(RunRecord(0, Path("."), "finished", summary, records), "val_accuracy", "accuracy")
    assert figures["gap_loss"] is None and "note" not in figures


def test_evaluate_train_is_a_checked_boolean_that_leaves_the_config_hash_alone(tmp_path, capsys):
    """Whether the summary holds a train block changes no result of the run, as output.loggers does not: an
    earlier run's hash (compare's reuse, resume's check) stays; a value that is no boolean is one error line."""
    from trainlab.cli import main

    assert validate(DIGITS_MLP).output.evaluate_train is True
    off = validate({**DIGITS_MLP, "output": {**DIGITS_MLP["output"], "evaluate_train": False}})
    assert off.output.evaluate_train is False and off.hash() == validate(DIGITS_MLP).hash()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(DIGITS_MLP))
    assert main(["train", str(config_path), "--out", str(tmp_path / "r"), "--set",
                 "output.evaluate_train=banana"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "output.evaluate_train" in err[0]
    assert "'banana'" in err[0] and not (tmp_path / "r" / "summary.json").exists()


def test_the_terminal_summary_shows_the_train_numbers_on_one_line(tmp_path, capsys):
    from trainlab.run_result_lines import print_run_result as _report

    summary = {"name": "r", "stop_reason": "epochs=2 reached", "epochs_run": 2, "train_time_s": 0.1,
               "mode": "mini-batch gradient descent", "evaluation": {"tta": None}, "notes": {},
               "train": {"loss": 0.0123456789, "accuracy": 1.0, "confusion_matrix": [[5, 0], [0, 5]], "f1": None},
               "val": {"loss": 0.2, "accuracy": 0.9}, "test": {"loss": 0.3, "accuracy": 0.85}}
    _report(summary, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    train = [line for line in lines if line.startswith("train")]
    assert train == ["train: loss 0.0123457, accuracy 1, f1 null (the saved model, eval mode)"]
    assert lines.index(train[0]) < lines.index("val:") < lines.index("test:")


def test_a_non_finite_train_loss_is_warned_about():
    from trainlab.run_summary import non_finite_warning

    assert non_finite_warning({"non_finite": ["train.accuracy=nan"]}) is None
    warning = non_finite_warning({"non_finite": ["train.loss=nan"]})
    assert warning is not None and "train.loss=nan" in warning


def test_the_report_of_a_run_shows_its_train_column(dropout_run, tmp_path):
    from trainlab.report import write_report
    from trainlab.report.sections import fmt

    summary, path = dropout_run
    html = write_report([path], tmp_path / "r.html").read_text()
    assert "<th>metric</th><th>train (final weights)</th><th>validation</th><th>test</th>" in html
    row = f"<td>{fmt(summary['train']['accuracy'])}</td><td>{fmt(summary['val']['accuracy'])}</td>"
    assert row in html.replace(' class="num"', "")


def _run(summary: dict, records: list[dict]):
    from trainlab.report.sources import RunRecords

    return RunRecords(Path("r"), {}, records, [], {"status": "finished", **summary}, {})


def test_the_reports_loss_gap_takes_the_final_weights_train_loss_and_says_when_it_cannot():
    from trainlab.report.page import Page
    from trainlab.report.sections import add_loss_gap

    records = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.5}, {"epoch": 2, "train_loss": 0.7, "val_loss": 0.4}]
    evaluated = _run({"val": {"loss": 0.4}, "train": {"loss": 0.25}}, records)
    unevaluated = _run({"val": {"loss": 0.4}}, records)
    both = Page("gaps")
    add_loss_gap(both, {"a": [evaluated], "b": [unevaluated]}, {"a": "#000", "b": "#111"})
    figure = json.loads(both.figures[0][1])
    gaps = {trace["name"]: trace["y"] for trace in figure["data"]}
    assert gaps == {"a": [pytest.approx(0.4 - 0.25)], "b": [pytest.approx(0.4 - 0.7)]}
    assert "1 of 2 runs without a train evaluation (output.evaluate_train)" in figure["layout"]["title"]["text"].replace(
        "<br>", " ")  # a long title is broken into lines (report.figures.style)
    alone = Page("gap")
    add_loss_gap(alone, {"a": [evaluated]}, {"a": "#000"})
    figure = json.loads(alone.figures[0][1])
    assert figure["layout"]["title"]["text"] == "generalisation gap in loss (above 0: validation loss is higher)"
    assert figure["layout"]["yaxis"]["title"]["text"] == "val loss - train loss (final weights)"
