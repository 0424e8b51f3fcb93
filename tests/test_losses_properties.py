"""Invariants over the catalog: finite at extreme inputs, >= 0, 0 at the target; shape and label
errors caught by ``check`` with one-line messages; ``output_dim`` for each kind of loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss

FAST = settings(max_examples=40, deadline=None)




def finite_value_and_grad(loss, pred: torch.Tensor, target: torch.Tensor) -> None:
    pred = pred.clone().requires_grad_(True)
    value = loss(pred, target)
    assert torch.isfinite(value).all(), value
    value.sum().backward()
    assert torch.isfinite(pred.grad).all(), pred.grad


extreme_logits = st.lists(st.sampled_from([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4]), min_size=2, max_size=12)


# --------------------------------------------------------------------------- extreme inputs


@FAST
@given(logits=extreme_logits, labels=st.data(), name=st.sampled_from(
    ["bce", "focal", "hinge", "squared_hinge", {"name": "bce", "pos_weight": 19.0},
     {"name": "focal", "gamma": 0.5, "alpha": 0.25}]))
def test_binary_losses_finite_at_extreme_logits(logits, labels, name):
    target = torch.tensor(labels.draw(st.lists(st.integers(0, 1), min_size=len(logits), max_size=len(logits))))
    for dtype in (torch.float32, torch.float64):
        finite_value_and_grad(build_loss(name).to(dtype), torch.tensor(logits, dtype=dtype)[:, None], target)


@FAST
@given(rows=st.lists(st.lists(st.sampled_from([-1e4, -30.0, 0.0, 2.0, 1e4]), min_size=3, max_size=3),
                     min_size=1, max_size=8), labels=st.data(),
       name=st.sampled_from(["cross_entropy", "focal", "multiclass_hinge", {"name": "focal", "gamma": 0.5},
                             {"name": "cross_entropy", "label_smoothing": 0.1, "class_weights": [1, 5, 2]},
                             {"name": "multiclass_hinge", "variant": "weston_watkins"}]))
def test_multiclass_losses_finite_at_extreme_logits(rows, labels, name):
    target = torch.tensor(labels.draw(st.lists(st.integers(0, 2), min_size=len(rows), max_size=len(rows))))
    for dtype in (torch.float32, torch.float64):
        finite_value_and_grad(build_loss(name).to(dtype), torch.tensor(rows, dtype=dtype), target)


@FAST
@given(rows=st.lists(st.lists(st.sampled_from([-1e4, 0.0, 3.0, 1e4]), min_size=4, max_size=4), min_size=1,
                     max_size=6))
def test_kl_div_and_nll_finite_at_extreme_logits(rows):
    logits = torch.tensor(rows)
    target = torch.softmax(torch.tensor(rows) * 1e-3, dim=1)
    finite_value_and_grad(build_loss("kl_div"), logits, target)
    log_probs = torch.log_softmax(logits, dim=1)
    finite_value_and_grad(build_loss("nll"), log_probs, torch.zeros(len(rows), dtype=torch.int64))


@FAST
@given(probs=st.lists(st.sampled_from([0.0, 1e-30, 0.3, 1.0 - 1e-7, 1.0]), min_size=1, max_size=10),
       labels=st.data())
def test_bce_prob_finite_at_probabilities_zero_and_one(probs, labels):
    target = torch.tensor(labels.draw(st.lists(st.integers(0, 1), min_size=len(probs), max_size=len(probs))))
    loss = build_loss("bce_prob")
    finite_value_and_grad(loss, torch.tensor(probs)[:, None], target)
    # the clamp bounds every term by -log(eps)
    assert float(build_loss({"name": "bce_prob", "reduction": "none"})(torch.tensor(probs)[:, None],
                                                                         target).max()) <= -np.log(1e-7) + 1e-3


@pytest.mark.parametrize("name, width", [("cosine_similarity", None), ("cosine_embedding", 2), ("contrastive", 2),
                                         ("triplet", 3), ("nt_xent", 2)])
def test_cosine_and_metric_losses_finite_for_zero_vectors(name, width):
    dim = 4
    if width is None:
        pred, target = torch.zeros(3, dim), torch.zeros(3, dim)
        pred[1] = 1.0  # one zero vector against a non-zero one
        finite_value_and_grad(build_loss(name), pred, target)
        return
    loss = build_loss({"name": name, "embedding_dim": dim})
    pred = torch.zeros(4, width * dim)
    pred[2, :dim] = 1.0  # mix of all-zero rows and one non-zero embedding
    for labels in (torch.tensor([1, 1, 1, 1]), torch.tensor([0, 0, 1, 0])):
        finite_value_and_grad(loss, pred, labels)


@pytest.mark.parametrize("name", ["bce", "focal", "hinge", "bce_prob", "cross_entropy",
                                  {"name": "cross_entropy", "class_weights": [1.0, 9.0]},
                                  {"name": "bce", "pos_weight": 19.0}])
@pytest.mark.parametrize("label", [0, 1])
def test_all_one_class_batches(name, label):
    target = torch.full((6,), label)
    if name == "bce_prob":
        pred = torch.rand(6, 1)
    elif "cross_entropy" in str(name):
        pred = torch.randn(6, 2)
    else:
        pred = torch.randn(6, 1)
    finite_value_and_grad(build_loss(name), pred, target)


# --------------------------------------------------------------------------- >= 0 and 0 at the target


values = arrays(np.float64, (5, 2), elements=st.floats(-1e3, 1e3, allow_nan=False))
REGRESSION = ["mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile", {"name": "quantile", "tau": 0.1},
              "adaptive", {"name": "adaptive", "alpha": -2.0}, {"name": "adaptive", "alpha": 0.0},
              {"name": "adaptive", "alpha": float("-inf")}, {"name": "smooth_l1", "beta": 0.0}]


@FAST
@given(pred=values, target=values, name=st.sampled_from(REGRESSION))
def test_regression_losses_nonnegative_and_zero_at_target(pred, target, name):
    loss = build_loss(name).double()
    pred_t, target_t = torch.tensor(pred), torch.tensor(target)
    assert float(loss(pred_t, target_t)) >= 0
    assert float(loss(target_t, target_t)) == 0.0


@FAST
@given(target=arrays(np.float64, (4, 3), elements=st.floats(-1e3, 1e3, allow_nan=False)).filter(
    lambda a: (np.linalg.norm(a, axis=1) > 1e-3).all()), scale=st.floats(1e-3, 1e3))
def test_cosine_similarity_zero_for_parallel_vectors(target, scale):
    loss = build_loss({"name": "cosine_similarity", "reduction": "none"}).double()
    target_t = torch.tensor(target)
    torch.testing.assert_close(loss(scale * target_t, target_t), torch.zeros(4, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    assert (loss(-target_t, target_t) <= 2 + 1e-12).all() and (loss(-target_t, target_t) >= 2 - 1e-12).all()


@FAST
@given(logits=arrays(np.float64, (6, 1), elements=st.floats(-1e4, 1e4, allow_nan=False)), labels=st.data(),
       name=st.sampled_from(["bce", "focal", "hinge", "squared_hinge"]))
def test_binary_losses_nonnegative_and_zero_when_confidently_right(logits, labels, name):
    target = torch.tensor(labels.draw(arrays(np.int64, 6, elements=st.integers(0, 1))))
    loss = build_loss(name).double()
    assert float(loss(torch.tensor(logits), target)) >= 0
    confident = (2.0 * target.double() - 1.0)[:, None] * 1e4
    assert float(loss(confident, target)) == 0.0


@FAST
@given(logits=arrays(np.float64, (5, 4), elements=st.floats(-50, 50, allow_nan=False)), labels=st.data(),
       name=st.sampled_from(["cross_entropy", "focal", "multiclass_hinge", "kl_div",
                             {"name": "multiclass_hinge", "variant": "weston_watkins"}]))
def test_multiclass_losses_nonnegative_and_zero_at_target(logits, labels, name):
    target = torch.tensor(labels.draw(arrays(np.int64, 5, elements=st.integers(0, 3))))
    loss = build_loss(name).double()
    logits_t = torch.tensor(logits)
    if name == "kl_div":  # target is a distribution; KL(t || t) = 0
        distribution = torch.softmax(logits_t, 1)
        assert float(loss(torch.zeros_like(logits_t), distribution)) >= -1e-12
        assert abs(float(loss(logits_t, distribution))) < 1e-12
        return
    assert float(loss(logits_t, target)) >= 0
    assert float(loss(1e4 * torch.nn.functional.one_hot(target, 4).double(), target)) == 0.0


@FAST
@given(emb=arrays(np.float64, (4, 3), elements=st.floats(-100, 100, allow_nan=False)))
def test_metric_losses_nonnegative_and_zero_at_target(emb):
    e = torch.tensor(emb)
    similar = torch.ones(4, dtype=torch.int64)
    for name in ("contrastive", "cosine_embedding"):
        loss = build_loss({"name": name, "embedding_dim": 3}).double()
        assert float(loss(torch.cat([e, -e], 1), torch.tensor([0, 1, 0, 1]))) >= 0
        if name == "contrastive" or (np.linalg.norm(emb, axis=1) > 1e-6).all():
            assert abs(float(loss(torch.cat([e, e], 1), similar))) < 1e-12
    triplet = build_loss({"name": "triplet", "embedding_dim": 3, "margin": 1.0}).double()
    far = e + 1e3
    assert float(triplet(torch.cat([e, e, far], 1), similar)) == 0.0
    assert float(triplet(torch.cat([e, far, e], 1), similar)) > 0


# --------------------------------------------------------------------------- check(): one-line messages


def message(loss, pred, target) -> str:
    with pytest.raises(DataError) as info:
        loss.check(pred, target)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_check_messages():
    assert message(build_loss("cross_entropy"), torch.randn(64, 10), torch.rand(64)) == (
        "cross_entropy expects integer class labels in [0, 10); got float targets")
    # a (N,) output (a model ending in .squeeze(-1)): its size is the batch's, not a class count ("(N, 16)")
    assert message(build_loss("cross_entropy"), torch.randn(16), torch.zeros(16).long()) == (
        "cross_entropy expects (N, C) outputs and (N,) labels; got outputs (16,) and labels (16,): one number per "
        "row, where one column per class is needed (a model ending in .squeeze(-1), or with one output?); give the "
        "model's last layer one output per class")
    assert message(build_loss("mse"), torch.randn(64, 10), torch.randn(64, 1)) == (
        "mse: prediction shape (64, 10) does not match target shape (64, 1)")
    assert message(build_loss("cross_entropy"), torch.randn(4, 3), torch.tensor([0, 1, 3, 2])) == (
        "cross_entropy expects integer class labels in [0, 3); got labels in [0, 3]")
    assert message(build_loss("bce"), torch.randn(3, 1), torch.tensor([0, 2, 1])) == (
        "bce expects binary targets in {0, 1}; got 2")
    assert message(build_loss("bce"), torch.randn(3, 2), torch.tensor([0, 1, 1])) == (
        "bce: expects one output per sample; got shape (3, 2); give the model's last layer 1 output (one logit), or "
        "use cross_entropy for 2 outputs (one score per class)")
    assert "hinge expects binary targets in {0, 1} or {-1, 1}; got 3" == message(
        build_loss("hinge"), torch.randn(2, 1), torch.tensor([1, 3]))
    # the model's last layer does not fit the loss: a config error (exit 2), naming the key that fixes it
    with pytest.raises(ConfigError, match=r"bce_prob expects probabilities in \[0, 1\].*output_activation: sigmoid"):
        build_loss("bce_prob").check(torch.tensor([[1.5], [0.2]]), torch.tensor([1, 0]))
    with pytest.raises(ConfigError, match="nll expects log-probabilities.*model.output_activation: log_softmax"):
        build_loss("nll").check(torch.randn(4, 3) + 5, torch.zeros(4).long())
    assert "kl_div expects each target row to be a probability distribution" in message(
        build_loss("kl_div"), torch.randn(2, 3), torch.ones(2, 3))
    assert "poisson_nll expects counts >= 0" in message(build_loss("poisson_nll"), torch.randn(2, 1),
                                                        -torch.ones(2, 1))
    assert "gaussian_nll needs 2 outputs (mean, variance) per target" in message(
        build_loss("gaussian_nll"), torch.randn(2, 3), torch.randn(2, 1))
    assert "contrastive expects 2 embeddings per row" in message(
        build_loss({"name": "contrastive", "embedding_dim": 2}), torch.randn(2, 5), torch.tensor([0, 1]))
    assert "class_weights has 2 entries but the model outputs 3" in message(
        build_loss({"name": "cross_entropy", "class_weights": [1, 2]}), torch.randn(2, 3), torch.tensor([0, 1]))
    assert "focal on 3 classes needs alpha as a list" in message(
        build_loss({"name": "focal", "alpha": 0.25}), torch.randn(2, 3), torch.tensor([0, 1]))
    assert message(build_loss("cross_entropy"), torch.randn(4, 3), torch.zeros(5).long()) == (
        "cross_entropy: 4 predictions but 5 targets")


def test_check_accepts_valid_inputs():
    build_loss({"name": "cross_entropy", "ignore_index": -1}).check(torch.randn(3, 4), torch.tensor([0, -1, 3]))
    build_loss("hinge").check(torch.randn(3, 1), torch.tensor([-1, 1, 1]))
    build_loss("bce").check(torch.randn(3, 4), torch.randint(0, 2, (3, 4)).float())  # multi-label
    build_loss("focal").check(torch.randn(3, 1), torch.tensor([0, 1, 1]))
    build_loss({"name": "nt_xent", "embedding_dim": 2}).check(torch.randn(3, 2, 2), torch.zeros(3))
    build_loss("gaussian_nll").check(torch.randn(3, 4), torch.randn(3, 2))


def test_constructor_and_spec_errors():
    with pytest.raises(ConfigError, match="unknown loss 'hubber'; did you mean 'huber'"):
        build_loss("hubber")
    with pytest.raises(ConfigError, match="loss 'huber' has no option 'delt'; did you mean 'delta'"):
        build_loss({"name": "huber", "delt": 1.0})
    for spec, text in [({"name": "huber", "delta": -1}, "huber delta must be > 0; got -1"),
                       ({"name": "quantile", "tau": 1.5}, "quantile tau must be in \\(0, 1\\); got 1.5"),
                       ({"name": "multiclass_hinge", "variant": "ovr"}, "variant must be one of crammer_singer"),
                       ({"name": "mse", "reduction": "avg"}, "option 'reduction' must be one of 'mean', 'sum', 'none'; got 'avg'"),
                       ({"name": "bce", "pos_weight": 0}, "bce pos_weight must be > 0"),
                       ({"name": "nt_xent", "temperature": 0}, "nt_xent temperature must be > 0"),
                       ({"name": "gaussian_nll", "variance": "fixed"}, "variance must be one of predicted, learned")]:
        with pytest.raises(ConfigError, match=text):
            build_loss(spec)


# --------------------------------------------------------------------------- output_dim and predict


def test_output_dim_for_each_kind():
    assert build_loss("mse").output_dim("regression", None, 3) == 3
    assert build_loss("gaussian_nll").output_dim("regression", None, 3) == 6
    assert build_loss("bce").output_dim("binary", 2, 1) == 1
    assert build_loss("bce").output_dim("multilabel", None, 5) == 5
    assert build_loss("cross_entropy").output_dim("multiclass", 10, 1) == 10
    assert build_loss("focal").output_dim("binary", 2, 1) == 1
    assert build_loss("focal").output_dim("multiclass", 7, 1) == 7
    assert build_loss({"name": "contrastive", "embedding_dim": 16}).output_dim("binary", 2, 1) == 32
    assert build_loss({"name": "cosine_embedding", "embedding_dim": 8}).output_dim("binary", 2, 1) == 16
    assert build_loss({"name": "triplet", "embedding_dim": 16}).output_dim("multiclass", 10, 1) == 48
    assert build_loss({"name": "nt_xent", "embedding_dim": 16}).output_dim("regression", None, 1) == 32
    with pytest.raises(DataError, match="cross_entropy is a single-label classification loss but the data is a "
                                        "regression task.*set data.task: multiclass"):
        build_loss("cross_entropy").output_dim("regression", None, 1)
    with pytest.raises(DataError, match="mse is a regression loss but the data is a multiclass"):
        build_loss("mse").output_dim("multiclass", 10, 1)
    with pytest.raises(DataError, match="contrastive trains on pairs"):
        build_loss("contrastive").output_dim("multiclass", 10, 1)


def test_a_regression_loss_on_named_classes_is_not_offered_the_regression_task_they_refuse(write_config, capsys):
    """iris' classes are names: 'set data.task: regression' was offered, then refused ('the targets are class
    labels such as setosa'). Numbered classes (0..K-1, possibly ratings) keep the offer."""
    from tests.conftest import LINREG
    from trainlab.cli import main

    iris = {**LINREG, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
            "strategy": {**LINREG["strategy"], "batch_size": 32, "epochs": 1}, "metrics": None}
    assert main(["train", str(write_config(iris)), "--quiet"]) == 3
    assert capsys.readouterr().err == ("error: mse is a regression loss but the data is a multiclass classification "
                                       "task (3 classes named such as 'setosa'); use cross_entropy for class labels\n")
    # a regression-kind loss of the user's that says how it takes classes (its own output_dim) is not refused
    from trainlab.config import DataConfig
    from trainlab.data import load_dataset
    from trainlab.losses.base import Loss
    from trainlab.losses.task_fit import check_task_fits

    class OneHotMSE(Loss):
        target_kind = "continuous"

        def output_dim(self, task, num_classes, target_dim):
            return num_classes

    iris_data = load_dataset(DataConfig(source="iris"), seed=0)
    check_task_fits(OneHotMSE(), iris_data, False)
    digits = {**iris, "data": {"source": "digits"}}
    assert main(["train", str(write_config(digits)), "--quiet"]) == 3
    assert capsys.readouterr().err.endswith("(10 classes); use cross_entropy for class labels, or, if the targets "
                                            "are numbers to predict (such as whole-number ratings or 0/1 values), "
                                            "set data.task: regression\n")


def test_the_regression_refusal_states_the_data_layers_class_rule():
    """The message's parenthesis is infer_task's rule: each label set it names as classes is inferred as
    classes, and the ones just past its bounds as a regression target."""
    import numpy as np

    from trainlab.data.dataset import infer_task

    with pytest.raises(DataError) as info:
        build_loss("cross_entropy").output_dim("regression", None, 1)
    message = str(info.value)
    assert ("targets are classes when they are whole numbers exactly 0..K-1 with K <= 10 (K <= 20 when every class "
            "holds at least 1/(5K) of the rows) or exactly -1 and 1") in message
    assert "csv and npz targets are inferred as classes only" not in message
    assert infer_task(np.array([-1, 1] * 5)) == "binary"
    assert infer_task(np.arange(10).repeat(2)) == "multiclass"
    once = np.concatenate([[0], np.arange(1, 10).repeat(20)])  # class 0: 1 row of 181
    assert infer_task(once) == "multiclass"  # K <= 10: no share asked
    assert infer_task(np.arange(20).repeat(5)) == "multiclass"  # K = 20, each class 5 of 100 rows = 1/(5K)
    once = np.concatenate([[0], np.arange(1, 20).repeat(11)])  # K = 20, class 0: 1 row of 210 < 1/(5K)
    assert infer_task(once) == "regression"
    assert infer_task(np.arange(21).repeat(5)) == "regression"  # K = 21
    assert infer_task(np.array([1, 2, 3] * 4)) == "regression" and infer_task(np.array([-1, 0, 1] * 4)) == "regression"


def test_predict():
    logits = torch.tensor([[2.0], [-1.0]])
    assert build_loss("bce").predict(logits).tolist() == [1, 0]
    assert build_loss("bce_prob").predict(torch.tensor([[0.7], [0.2]])).tolist() == [1, 0]
    assert build_loss("bce").predict(torch.tensor([[1.0, -1.0]])).tolist() == [[1, 0]]
    assert build_loss("focal").predict(logits).tolist() == [1, 0]
    assert build_loss("focal").predict(torch.tensor([[0.0, 3.0, 1.0]])).tolist() == [1]
    assert build_loss("poisson_nll").predict(torch.zeros(1, 1)).tolist() == [[1.0]]
    assert build_loss("gaussian_nll").predict(torch.tensor([[1.0, 2.0, 3.0, 4.0]])).tolist() == [[1.0, 2.0]]
    near, far = torch.tensor([[0.0, 0.0, 0.1, 0.0]]), torch.tensor([[0.0, 0.0, 3.0, 0.0]])
    contrastive = build_loss({"name": "contrastive", "embedding_dim": 2, "margin": 1.0})
    assert contrastive.predict(near).tolist() == [1] and contrastive.predict(far).tolist() == [0]
    cosine = build_loss({"name": "cosine_embedding", "embedding_dim": 2})
    assert cosine.predict(torch.tensor([[1.0, 0.0, 1.0, 0.1], [1.0, 0.0, -1.0, 0.0]])).tolist() == [1, 0]
    assert build_loss({"name": "triplet", "embedding_dim": 2}).predict(torch.randn(5, 6)).shape == (5, 3, 2)
