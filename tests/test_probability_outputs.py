"""A model that squashes its outputs (a final sigmoid or softmax) before a loss on logits is refused before
training (trainlab.probability_outputs.check_probability_outputs); the messages of the loss checks name the fix
that fits (the task for regression losses on whole-number targets, the loss only for output mismatches)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import trainlab
from trainlab.cli import main
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.probability_outputs import _rows_sum_to_one, check_probability_outputs, final_squash
from trainlab.run_checks import CONFIG_FIXES

SGD = {"optimizer": {"name": "sgd", "lr": 0.5}, "batch_size": 32, "epochs": 20}


def _separable(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The sweep's data: 3 standardised features, label 1 where x0 + x1 / 2 > 0."""
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 3).astype(np.float32)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)


class FunctionalSigmoid(nn.Module):
    """torch.sigmoid called in forward (no nn.Sigmoid layer to find), then squeezed and unsqueezed."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layer(x)).squeeze(1).unsqueeze(1)


class WrittenSoftmax(nn.Module):
    """A softmax written out (exp / sum): no softmax node in the graph, only the values tell."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.layer = nn.Linear(3, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.layer(x).exp()
        return scores / scores.sum(dim=1, keepdim=True)


def _sequential(*layers: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- refused through trainlab.fit


@pytest.mark.parametrize("make_model,loss,evidence,alternative", [
    (lambda: _sequential(nn.Linear(3, 1), nn.Sigmoid()), "bce",
     "its last operation is a sigmoid, and all 32 outputs lie in [0, 1]",
     "or keep it and use loss bce_prob, which takes probabilities"),
    (lambda: FunctionalSigmoid(), "bce", "its last operation is a sigmoid, and all 32 outputs lie in [0, 1]",
     "or keep it and use loss bce_prob, which takes probabilities"),
    (lambda: _sequential(nn.Linear(3, 1), nn.Sigmoid()), "hinge",
     "its last operation is a sigmoid, and all 32 outputs lie in [0, 1]",
     "or keep it and use loss bce_prob, which takes probabilities"),
    (lambda: _sequential(nn.Linear(3, 1), nn.Sigmoid()), "focal",
     "its last operation is a sigmoid, and all 32 outputs lie in [0, 1]",
     "or keep it and use loss bce_prob, which takes probabilities"),
    (lambda: _sequential(nn.Linear(3, 2), nn.Softmax(dim=-1)), "cross_entropy",
     "all 32 rows are non-negative and sum to 1, and its last operation is a softmax",
     "or end it with log_softmax and use loss nll, which takes log-probabilities"),
    (lambda: WrittenSoftmax(), "cross_entropy", "all 32 rows are non-negative and sum to 1",
     "or end it with log_softmax and use loss nll, which takes log-probabilities"),
    (lambda: _sequential(nn.Linear(3, 2), nn.Softmax(dim=-1)), "multiclass_hinge",
     "all 32 rows are non-negative and sum to 1, and its last operation is a softmax",
     "or end it with log_softmax and use loss nll, which takes log-probabilities"),
])
def test_a_squashed_model_before_a_loss_on_logits_is_refused_by_fit(make_model, loss, evidence, alternative):
    """Was: trained without a word, val accuracy 0.496 reported for a sigmoid model that separates at 0.93."""
    x, y = _separable()
    squash = "sigmoid" if "sigmoid" in evidence else "softmax"
    with pytest.raises(ConfigError) as caught:
        trainlab.fit(make_model(), train=(x, y), val=(x, y), strategy={"loss": loss, **SGD})
    assert str(caught.value) == (
        f"the model's outputs look like probabilities ({evidence}), but loss '{loss}' expects logits (unbounded "
        f"scores), so its training and metrics would be wrong; remove the final {squash} from the model, "
        f"{alternative}")


def test_loss_auto_is_named_as_the_choice_of_the_loss_that_takes_logits():
    x, y = _separable()
    with pytest.raises(ConfigError, match=r"but loss 'bce' \(chosen by loss: auto for these binary targets\) "
                                          r"expects logits"):
        trainlab.fit(_sequential(nn.Linear(3, 1), nn.Sigmoid()), train=(x, y), strategy={"loss": "auto", **SGD})


def test_the_fixes_named_train_and_report_what_the_model_scores():
    """The error's two fixes, followed, give the metrics an independent computation gives: the same model
    without its sigmoid under bce (accuracy of z > 0), and with it under bce_prob (accuracy of p > 0.5)."""
    x, y = _separable()
    for head, loss in (([], "bce"), ([nn.Sigmoid()], "bce_prob")):
        model = _sequential(nn.Linear(3, 1), *head)
        result = trainlab.fit(model, train=(x, y), val=(x, y), strategy={"loss": loss, **SGD})
        with torch.no_grad():
            output = model.cpu()(torch.from_numpy(x)).squeeze(1).numpy()  # fit left it on the run's device
        decided = output > (0.5 if head else 0.0)
        assert result.summary["val"]["accuracy"] == pytest.approx(float(np.mean(decided == y)))
        assert result.summary["val"]["accuracy"] > 0.9


@pytest.mark.parametrize("make_model,loss", [
    (lambda: _sequential(nn.Linear(3, 1), nn.Sigmoid()), "bce_prob"),  # a loss on probabilities
    (lambda: _sequential(nn.Linear(3, 2), nn.LogSoftmax(dim=1)), "nll"),  # on log-probabilities
    (lambda: _sequential(nn.Linear(3, 2), nn.LogSoftmax(dim=1)), "cross_entropy"),  # log_softmax is logits too
    (lambda: _sequential(nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 1), nn.Sigmoid(), nn.Linear(1, 1)), "bce"),
])
def test_models_whose_outputs_fit_their_loss_train(make_model, loss):
    x, y = _separable()
    result = trainlab.fit(make_model(), train=(x, y), strategy={"loss": loss, **SGD, "epochs": 1})
    assert len(result.history) == 1


# --------------------------------------------------------------------------- the evidence, and no false alarms


def _probe(model: nn.Module, x: torch.Tensor, loss_name: str, task: str = "binary", classes: int = 2) -> None:
    loss = build_loss(loss_name)
    loss.output_dim(task, classes, 1)
    with torch.no_grad():
        output = model(x)
    check_probability_outputs(loss, model, x, output, task, CONFIG_FIXES.final_squash)


def test_fresh_logit_models_are_never_refused_though_many_give_outputs_in_0_1():
    """All outputs of a freshly initialised deep MLP lie in [0, 1] for ~1 seed in 10 (a bias-dominated output):
    values alone cannot tell a sigmoid, the graph does. 1200 fresh Linear/MLP models on standardised
    features, one output (bce) and three (cross_entropy): none refused."""
    in_unit = 0
    for seed in range(100):
        torch.manual_seed(seed)
        for features in (1, 5, 100):
            x = torch.randn(64, features)
            for depth in (0, 2):
                layers: list[nn.Module] = []
                width = features
                for _ in range(depth):
                    layers += [nn.Linear(width, 128), nn.ReLU()]
                    width = 128
                for outputs, loss, task, classes in ((1, "bce", "binary", 2), (3, "cross_entropy", "multiclass", 3)):
                    model = nn.Sequential(*layers, nn.Linear(width, outputs))
                    with torch.no_grad():
                        in_unit += bool(((model(x) >= 0) & (model(x) <= 1)).all())
                    _probe(model, x, loss, task, classes)
    assert in_unit >= 5  # the hazard the graph check is there for was met


def test_an_outputs_in_0_1_model_without_a_squash_is_not_refused():
    """trainlab's `constant` initializer on a ReLU MLP: every output >= 0 and small, none a probability."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    for layer in (model[0], model[2]):
        nn.init.constant_(layer.weight, 0.01)
        nn.init.zeros_(layer.bias)
    x = torch.randn(64, 4)
    with torch.no_grad():
        output = model(x)
    assert ((output >= 0) & (output <= 1)).all() and output.max() > output.min()
    _probe(model, x, "bce")


def test_the_graph_names_the_final_squash_through_reshapes_and_casts():
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    assert final_squash(FunctionalSigmoid(), x) == "sigmoid"
    assert final_squash(nn.Sequential(nn.Linear(3, 2), nn.Hardsigmoid()), x) == "hardsigmoid"
    assert final_squash(nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=1), nn.Flatten()), x) == "softmax"
    assert final_squash(nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Linear(2, 1)), x) is None
    assert final_squash(nn.Linear(3, 1), x) is None
    frozen = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()).requires_grad_(False)
    assert final_squash(frozen, x) is None  # no graph: the question stays open, nothing is refused on it


def test_final_squash_restores_each_modules_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 1), nn.Sigmoid())
    model.train()
    model[1].eval()  # a frozen BatchNorm a fine-tune keeps in eval
    final_squash(model, torch.randn(8, 3))
    assert [m.training for m in model] == [True, False, True, True, True]


def test_rows_summing_to_1_need_8_rows_and_allow_half_precision_rounding():
    torch.manual_seed(0)
    probabilities = torch.softmax(torch.randn(8, 5), dim=1)
    assert _rows_sum_to_one(probabilities)
    assert not _rows_sum_to_one(probabilities[:7])  # too few rows to tell
    assert _rows_sum_to_one(probabilities.bfloat16())  # rows off 1 by bf16 rounding, up to eps / 2
    assert not _rows_sum_to_one(probabilities * 1.01)
    assert not _rows_sum_to_one(torch.full((8, 2), 0.5))  # every row the same: no spread to tell by
    logits = probabilities.clone()
    logits[3, 0] -= 2 * logits[3, 0]  # one negative score: not a distribution
    assert not _rows_sum_to_one(logits)


def test_kl_div_on_logits_refuses_a_softmax_and_on_log_probs_takes_log_softmax():
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1))
    with torch.no_grad():
        output = model(x)
    with pytest.raises(ConfigError, match="remove the final softmax from the model .*, or end it with log_softmax "
                                          "and give kl_div input: log_probs$"):
        check_probability_outputs(build_loss("kl_div"), model, x, output, "regression", CONFIG_FIXES.final_squash)
    log_model = nn.Sequential(nn.Linear(3, 4), nn.LogSoftmax(dim=1))
    with torch.no_grad():
        log_output = log_model(x)
    check_probability_outputs(build_loss({"name": "kl_div", "input": "log_probs"}), log_model, x, log_output,
                              "regression", CONFIG_FIXES.final_squash)


# --------------------------------------------------------------------------- the CLI: zoo and code models


def _config(tmp_path, model: dict, loss: str) -> str:
    config = {"name": "squashed", "seed": 0, "data": {"source": "breast_cancer"}, "model": model,
              "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 1},
              "output": {"progress": "off"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_cli_refuses_a_zoo_models_output_activation_sigmoid_under_bce_and_names_the_key(tmp_path, capsys):
    config = _config(tmp_path, {"name": "linear", "output_activation": "sigmoid"}, "bce")
    assert main(["train", config, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the model's outputs look like probabilities")
    assert "remove the final sigmoid from the model (linear and mlp: leave out model.output_activation), or " \
           "keep it and use loss bce_prob" in err
    assert not (tmp_path / "run").exists()
    _config(tmp_path, {"name": "linear", "output_activation": "sigmoid"}, "bce_prob")  # the textbook example trains
    assert main(["train", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0


def test_cli_refuses_a_code_model_that_calls_softmax_in_its_forward(tmp_path, capsys):
    (tmp_path / "squashing_models.py").write_text(
        "import torch\n\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, input_shape, output_dim):\n"
        "        super().__init__()\n"
        "        self.layer = torch.nn.Linear(input_shape[0], 2)\n\n"
        "    def forward(self, x):\n"
        "        return torch.softmax(self.layer(x), dim=1)\n")
    config = _config(tmp_path, {"name": "squashing_models:Net"}, "cross_entropy")
    try:
        assert main(["train", config, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    finally:
        sys.modules.pop("squashing_models", None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: the model's outputs look like probabilities (all 32 rows are non-negative and "
                          "sum to 1, and its last operation is a softmax), but loss 'cross_entropy' expects logits")


# --------------------------------------------------------------------------- the loss hints that fit the mistake


def test_loss_auto_hint_is_left_off_an_input_width_error():
    """The model's first layer does not fit the data's 3 features: nothing about the loss to change."""
    x, y = _separable(64)
    with pytest.raises(DataError) as caught:
        trainlab.fit(nn.Linear(7, 1), train=(x, y), strategy={"loss": "auto", **SGD})
    assert str(caught.value) == ("model 'Linear' cannot take inputs shaped (3,) (float32, a batch of 32 rows): mat1 "
                                 "and mat2 shapes cannot be multiplied (32x3 and 7x1)")


def test_loss_auto_hint_stays_on_an_output_width_error():
    x, y = _separable(64)
    with pytest.raises(DataError, match=r"\(loss: auto chose 'bce' for these binary targets, which takes 1 output"):
        trainlab.fit(nn.Linear(3, 2), train=(x, y), strategy={"loss": "auto", **SGD})


def test_a_regression_loss_on_whole_number_targets_names_the_task_as_a_fix_and_the_fix_trains(tmp_path, capsys):
    rng = np.random.RandomState(0)
    x = rng.randn(100, 3).astype(np.float32)
    ratings = (np.arange(100) % 5).astype(np.float32)  # 0..4: read as 5 classes unless the task says otherwise
    strategy = {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16, "epochs": 1}
    with pytest.raises(DataError) as caught:
        trainlab.fit(nn.Linear(3, 1), train=(x, ratings), strategy=strategy)
    assert str(caught.value) == (
        "mse is a regression loss but the data is a multiclass classification task (5 classes); use cross_entropy "
        "for class labels, or, if the targets are numbers to predict (such as whole-number ratings or 0/1 "
        "values), set task='regression'")
    result = trainlab.fit(nn.Linear(3, 1), train=(x, ratings), val=(x, ratings), strategy=strategy, task="regression")
    assert "mse" in result.summary["val"]
    with pytest.raises(DataError, match=r"\(such as whole-number ratings or 0/1 values\), set data\.task: "
                                        r"regression$"):
        build_loss("huber").output_dim("binary", 2, 1)
    # a config run names its key, which it reads
    np.savez(tmp_path / "ratings.npz", x=x, y=ratings)
    config = {"name": "ratings", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "ratings.npz")},
              "model": {"name": "linear"}, "strategy": strategy, "output": {"progress": "off"}}
    (tmp_path / "ratings.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "ratings.yaml"), "--out", str(tmp_path / "a"), "--quiet"]) == 3
    assert capsys.readouterr().err.rstrip().endswith("set data.task: regression")
    config["data"]["task"] = "regression"
    (tmp_path / "ratings.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "ratings.yaml"), "--out", str(tmp_path / "b"), "--quiet"]) == 0
