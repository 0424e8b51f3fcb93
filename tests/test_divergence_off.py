"""``strategy.divergence.policy: off``: a run that goes non-finite finishes (exit 0, the user's choice), but
says so in one ``warning:`` line at its end, and reports no accuracy, precision or F1 of NaN outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn

from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.data.dataset import Split
from trainlab.engine.evaluation import Evaluator
from trainlab.engine.objective import Objective
from trainlab.engine.step import StandardStep
from trainlab.losses import build_loss

METRICS = ["accuracy", "precision", "recall", "f1"]
DIVERGING = {"strategy__optimizer": {"name": "sgd", "lr": 1e30}, "strategy__epochs": 2,
             "strategy__divergence": {"policy": "off"}, "metrics": METRICS}


def _train(write_config, tmp_path, capsys, **changes) -> tuple[int, list[str], dict, list[dict]]:
    config = write_config(DIGITS_MLP, **changes)
    out = tmp_path / "run"
    code = main(["train", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return code, err, summary, [r for r in records if "event" not in r and r.get("scope") != "step"]


def test_a_run_gone_nan_with_policy_off_finishes_with_one_warning_naming_what_went_non_finite(
        write_config, tmp_path, capsys):
    code, err, summary, epochs = _train(write_config, tmp_path, capsys, **DIVERGING)
    assert code == 0 and summary["status"] == "finished"
    warnings = [line for line in err if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0] == err[-1], err  # one line, at the end
    assert warnings[0].startswith("warning: the run went non-finite: train_loss=nan from epoch 1 (step ")
    assert "val.loss=nan" in warnings[0] and "test.loss=nan" in warnings[0]
    assert summary["non_finite"][0].startswith("train_loss=nan from epoch 1 (step ")


def test_python_callers_of_fit_and_train_get_the_same_one_warning(tmp_path, caplog):
    """The line was printed by the CLI alone: trainlab.fit and trainlab.experiment.train of a run gone NaN under
    policy off said nothing (every val metric null, the model's weights NaN). Now it is a record of the
    "trainlab" logger (README: Python's warnings are) at every run's end."""
    import trainlab
    from trainlab.experiment import train

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 4, generator=generator), torch.randn(60, generator=generator)
    strategy = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 1e30}, "batch_size": 20, "epochs": 2,
                "divergence": {"policy": "off"}}
    with caplog.at_level("WARNING", logger="trainlab"):
        trainlab.fit(nn.Linear(4, 1), train=(x, y), val=(x, y), strategy=strategy, task="regression")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the run went non-finite")]
    assert len(said) == 1 and "train_loss=nan from epoch 1" in said[0], [r.getMessage() for r in caplog.records]
    caplog.clear()
    config = {**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], "optimizer": {"name": "sgd", "lr": 1e30},
                                         "epochs": 2, "divergence": {"policy": "off"}}}
    with caplog.at_level("WARNING", logger="trainlab"):
        train(config, out=tmp_path / "run", quiet=True)
    assert sum(r.getMessage().startswith("the run went non-finite") for r in caplog.records) == 1


def test_metrics_of_non_finite_outputs_are_null_not_numbers(write_config, tmp_path, capsys):
    _, _, summary, epochs = _train(write_config, tmp_path, capsys, **DIVERGING)
    for split in ("val", "test"):
        assert summary[split] == {"loss": None, **dict.fromkeys(METRICS)}, summary[split]
        assert {f"{split}.{name}=nan" for name in ["loss", *METRICS]} <= set(summary["non_finite"])
    assert epochs and all(record[f"val_{name}"] is None for record in epochs for name in METRICS)


def test_a_healthy_run_prints_no_warning_and_reports_its_metrics(write_config, tmp_path, capsys):
    code, err, summary, _ = _train(write_config, tmp_path, capsys,
                                   **{**DIVERGING, "strategy__optimizer": {"name": "sgd", "lr": 0.05}})
    assert code == 0 and not [line for line in err if line.startswith("warning:")], err
    assert "non_finite" not in summary
    assert all(isinstance(summary["test"][name], float) for name in METRICS)


# --------------------------------------------------------------------------- the Evaluator itself


class _Fixed(nn.Module):
    """A model whose outputs are given (one row per input index)."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = outputs
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs[x.long().reshape(-1)]


def _evaluate(outputs: torch.Tensor, target: torch.Tensor, names: list[str]) -> dict:
    loss = build_loss("cross_entropy")
    model = _Fixed(outputs)
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.1), Objective(loss))
    evaluator = Evaluator(step, loss, names, outputs.shape[1], "multiclass")
    return evaluator.evaluate(Split(torch.arange(len(outputs)).float().reshape(-1, 1), target))


LOGITS = torch.tensor([[2.0, 0.1, 0.3], [0.2, 1.5, 0.1], [0.3, 0.2, 0.9], [1.1, 0.4, 0.2], [0.1, 0.2, 3.0]])
TARGET = torch.tensor([0, 1, 1, 2, 2])


def test_finite_outputs_get_the_metrics_scikit_learn_computes():
    got = _evaluate(LOGITS, TARGET, ["accuracy", "f1", "f1_per_class"])
    predicted = LOGITS.argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(TARGET.numpy(), predicted))
    assert got["f1"] == pytest.approx(f1_score(TARGET.numpy(), predicted, average="macro"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_one_non_finite_output_makes_every_metric_nan_with_its_shape_kept(bad):
    outputs = LOGITS.clone()
    outputs[3, 0] = bad  # row 3's argmax would be 0 (or another class): a "prediction" of nothing
    got = _evaluate(outputs, TARGET, ["accuracy", "f1", "f1_per_class"])
    assert np.isnan(got["accuracy"]) and np.isnan(got["f1"])
    assert len(got["f1_per_class"]) == 3 and all(np.isnan(v) for v in got["f1_per_class"])


def test_a_minus_infinite_logit_is_a_class_given_probability_zero_not_a_meaningless_output():
    """log(softmax) underflowing, or a masked class: the argmax and the softmax are defined, so are the metrics
    (scikit-learn on the argmax); a row of -inf alone has none."""
    outputs = LOGITS.clone()
    outputs[3, 0] = -float("inf")
    got = _evaluate(outputs, TARGET, ["accuracy", "f1"])
    predicted = outputs.argmax(1).numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(TARGET.numpy(), predicted))
    assert got["f1"] == pytest.approx(f1_score(TARGET.numpy(), predicted, average="macro"))
    outputs[3] = -float("inf")
    assert np.isnan(_evaluate(outputs, TARGET, ["accuracy"])["accuracy"])


def test_an_infinite_single_logit_is_a_sure_sigmoid_not_a_meaningless_output():
    """One logit per sample (bce): sigmoid(+inf) = 1 is as readable as sigmoid(-inf) = 0."""
    from trainlab.engine.evaluation import _meaningless

    logits = torch.tensor([[float("inf")], [-float("inf")], [0.3]])
    assert not _meaningless(logits, "binary") and not _meaningless(logits.reshape(-1), "binary")
    assert not _meaningless(torch.tensor([[float("inf"), -float("inf")]]), "multilabel")
    assert _meaningless(torch.tensor([[float("inf"), 0.0]]), "multiclass")
    assert _meaningless(torch.tensor([[float("nan")]]), "binary")


def test_compare_and_tune_runs_gone_non_finite_are_told_by_their_own_lines_not_this_warning(tmp_path, caplog):
    """Review: inside compare (and tune) each such run warned "the run went non-finite" without naming it, beside
    compare's own failure line for the run; they are told once, by the caller."""
    from trainlab.run_summary import outcome_told_by_caller, warn_if_non_finite

    summary = {"non_finite": ["train_loss=nan from epoch 1 (step 3)"]}
    with caplog.at_level("WARNING", logger="trainlab"):
        with outcome_told_by_caller():
            warn_if_non_finite(summary)
        assert not caplog.records
        warn_if_non_finite(summary)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("the run went non-finite: train_loss=nan from epoch 1")
