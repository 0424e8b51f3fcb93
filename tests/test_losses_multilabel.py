"""Multi-label data ((N, L) outputs and 0/1 targets) through the loss contract, and ``probabilities``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.errors import DataError
from trainlab.losses import build_loss
from trainlab.losses.base import one_hot_rows, single_label_on_multilabel

N, L = 6, 3


def _multilabel(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return torch.tensor(2 * rng.normal(size=(N, L)), dtype=torch.float32), \
        torch.tensor(rng.integers(0, 2, (N, L)), dtype=torch.float32)  # the data layer's float32 0/1


@pytest.mark.parametrize("spec", ["bce", {"name": "bce", "pos_weight": [1.0, 4.0, 0.5]}, "focal",
                                  {"name": "focal", "alpha": 0.25}, {"name": "focal", "alpha": [0.25, 0.5, 0.75]}])
def test_sigmoid_losses_accept_multilabel(spec):
    loss = build_loss(spec)
    assert loss.output_dim("multilabel", L, L) == L
    output, target = _multilabel()
    loss.check(output, target)
    value = loss(output, target)
    assert value.ndim == 0 and torch.isfinite(value)
    decisions = loss.predict(output)
    assert decisions.shape == (N, L) and torch.equal(decisions, (torch.sigmoid(output) > 0.5).long())
    np.testing.assert_allclose(loss.probabilities(output).numpy(), 1 / (1 + np.exp(-output.numpy())), rtol=1e-6)


def test_one_label_multilabel_keeps_its_column():
    loss = build_loss("bce")
    assert loss.output_dim("multilabel", 1, 1) == 1
    output = torch.tensor([[2.0], [-1.0]])
    assert loss.predict(output).tolist() == [[1], [0]] and loss.probabilities(output).shape == (2, 1)


def test_per_label_pos_weight_multiplies_each_positive_term():
    output, target = _multilabel(1)
    pos_weight = [1.0, 4.0, 0.5]
    weighted = build_loss({"name": "bce", "pos_weight": pos_weight, "reduction": "none"})(output, target)
    plain = build_loss({"name": "bce", "reduction": "none"})(output, target)
    factor = torch.where(target == 1, torch.tensor(pos_weight), torch.ones(L))
    torch.testing.assert_close(weighted, plain * factor)


@pytest.mark.parametrize("name", ["cross_entropy", "nll", "multiclass_hinge"])
def test_single_label_losses_refuse_multilabel_in_one_line(name):
    output, target = _multilabel()
    with pytest.raises(DataError, match=rf"{name} takes one class label per sample but the targets have 3 "
                                        r"columns \(a multi-label task\); use bce") as info:
        build_loss(name).check(output, target)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"multilabel task \(3 columns of 0/1\); if each row is one-hot .* "
                                        r"y\.argmax\(1\) .*; for rows with several labels use bce"):
        build_loss(name).output_dim("multilabel", L, L)  # the targets unseen: both fixes


def test_one_hot_rows_are_told_to_give_the_class_indices_and_multi_hot_rows_bce():
    """Keras's to_categorical rows (one 1 each) are single-label classes: the fix is their argmax, not bce."""
    output = torch.zeros(4, 3)
    one_hot = torch.eye(3)[torch.tensor([0, 2, 1, 2])]
    with pytest.raises(DataError) as info:
        build_loss("cross_entropy").check(output, one_hot)
    message = str(info.value)
    assert "the targets are one-hot rows (3 columns with a single 1 each" in message
    assert "y.argmax(1)" in message and "bce" not in message and "\n" not in message
    multi_hot = one_hot.clone()
    multi_hot[0, 1] = 1.0  # a row with two labels
    for target in (multi_hot, torch.zeros(4, 3)):  # a row with none is no one-hot row either
        with pytest.raises(DataError, match=r"use bce \(one sigmoid per label\)$") as info:
            build_loss("cross_entropy").check(output, target)
        assert "argmax" not in str(info.value)
    assert one_hot_rows(one_hot.long()) and not one_hot_rows(0.5 * torch.ones(4, 2))  # halves sum to 1, not 0/1
    assert single_label_on_multilabel("nll", 3, multi_hot) == ("nll is a single-label classification loss but "
                                                                "the data is a multilabel task (3 columns of 0/1); "
                                                                "use bce (one sigmoid per label)")


def test_fit_with_one_hot_targets_and_cross_entropy_says_to_give_the_class_indices():
    import trainlab

    x = np.random.default_rng(0).normal(size=(30, 4))
    y = np.eye(3)[np.arange(30) % 3]
    with pytest.raises(DataError, match=r"one-hot .*y\.argmax\(1\)"):
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                                     "epochs": 1}, task="multilabel")


def test_multilabel_shape_and_label_errors():
    output, target = _multilabel()
    with pytest.raises(DataError, match=r"multi-label outputs \(6, 2\) do not match targets \(6, 3\)"):
        build_loss("bce").check(output[:, :2], target)
    with pytest.raises(DataError, match=r"focal: multi-label outputs \(6, 2\)"):
        build_loss("focal").check(output[:, :2], target)
    bad = target.clone()
    bad[0, 0] = 2.0
    with pytest.raises(DataError, match=r"expects binary targets in \{0, 1\}; got 2"):
        build_loss("focal").check(output, bad)
    with pytest.raises(DataError, match="pos_weight has 2 entries but the model outputs 3"):
        build_loss({"name": "bce", "pos_weight": [1.0, 2.0]}).check(output, target)
    with pytest.raises(DataError, match="focal on 3 labels needs alpha as one number in"):
        build_loss({"name": "focal", "alpha": [0.2, 0.3]}).check(output, target)


def test_probabilities_per_target_kind():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(N, 4))
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    z = torch.tensor(logits)
    for name in ("cross_entropy", "focal", "multiclass_hinge", "nll"):
        loss = build_loss(name)
        loss.output_dim("multiclass", 4, 1)
        got = loss.probabilities(torch.log(torch.tensor(softmax)) if name == "nll" else z)
        if name == "multiclass_hinge":
            assert got is None  # margins are not probabilities
        else:
            assert got.dtype == torch.float64
            np.testing.assert_allclose(got.numpy(), softmax, rtol=1e-12)
    one_logit = torch.tensor(logits[:, :1])
    sigmoid = 1 / (1 + np.exp(-logits[:, 0]))
    for name in ("bce", "focal"):
        loss = build_loss(name)
        loss.output_dim("binary", 2, 1)
        np.testing.assert_allclose(loss.probabilities(one_logit).numpy(), sigmoid, rtol=1e-12)
    np.testing.assert_allclose(build_loss("bce_prob").probabilities(torch.tensor(sigmoid[:, None])).numpy(), sigmoid)
    assert build_loss("bce").probabilities(one_logit.half()).dtype == torch.float32
    for name in ("hinge", "mse", "huber", "poisson_nll"):
        assert build_loss(name).probabilities(one_logit) is None


def test_constants_survive_a_state_dict_round_trip():
    loss = build_loss({"name": "bce", "pos_weight": [0.1, 1 / 3, 3.0]}).double()
    fresh = build_loss({"name": "bce", "pos_weight": [0.1, 1 / 3, 3.0]}).double()
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.pos_weight, torch.tensor([0.1, 1 / 3, 3.0], dtype=torch.float64))
