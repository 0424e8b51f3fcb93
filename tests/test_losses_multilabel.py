"""Multi-label data ((N, L) outputs and 0/1 targets) through the loss contract, and ``probabilities``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.errors import DataError
from trainlab.losses import build_loss

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
    with pytest.raises(DataError, match="multilabel task; use bce"):
        build_loss(name).output_dim("multilabel", L, L)


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
