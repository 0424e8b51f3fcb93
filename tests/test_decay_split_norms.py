"""Weight decay, the L1/L2 penalties, layer-wise groups and routed groups act on the model's weights only:
tensors of 2+ dimensions that are no bias and no normalisation layer's (trainlab.optim.decay_split), so a
LayerNorm over (C, H, W), whose gain and shift are 3-D, is neither decayed nor penalised. Each split is
checked against a hand-written list of names, one SGD step against the update written out in NumPy, the
penalty against NumPy's sum; and ``regularization.weight_decay`` is refused in a routed group whose options
make its optimizer's decay an L2 term, as at the top level."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import trainlab
from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.errors import ConfigError
from trainlab.finetune import layerwise_param_groups
from trainlab.losses.penalties import penalty
from trainlab.optim import param_groups
from trainlab.optim.decay_split import weight_ids
from trainlab.optim.routing import build_routed_optimizer


class CustomRMSNorm(nn.Module):
    """A norm layer of the user's own, known by its class name only (as T5LayerNorm is)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=(-2, -1), keepdim=True) + 1e-6) * self.weight


class Net(nn.Module):
    """16 features -> (1, 4, 4) -> conv -> BN, LayerNorm over (C, H, W), GroupNorm, RMSNorm and a custom
    norm over (H, W) -> head -> a raw 3x3 mixing matrix and a raw (1, 3) bias of the model's own."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm([4, 4, 4])
        self.gn = nn.GroupNorm(2, 4)
        self.rms = nn.RMSNorm([4, 4])
        self.custom = CustomRMSNorm((4, 4))
        self.head = nn.Linear(64, 3)
        self.mix = nn.Parameter(torch.eye(3) + 0.1 * torch.randn(3, 3))
        self.bias = nn.Parameter(0.1 * torch.randn(1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.view(-1, 1, 4, 4))
        h = self.custom(self.rms(self.gn(self.ln(self.bn(h)))))
        return self.head(torch.relu(h).flatten(1)) @ self.mix + self.bias


WEIGHTS = ["conv.weight", "head.weight", "mix"]  # written out: the only tensors weight decay and L1/L2 act on
NOT_WEIGHTS = ["conv.bias", "bn.weight", "bn.bias", "ln.weight", "ln.bias", "gn.weight", "gn.bias", "rms.weight",
               "custom.weight", "head.bias", "bias"]


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    model = Net()
    with torch.no_grad():  # gains and shifts away from 1 and 0: a decay or penalty on them shows
        for name, parameter in model.named_parameters():
            if name in NOT_WEIGHTS:
                parameter.copy_(1.0 + 0.3 * torch.randn_like(parameter))
    return model


def _names(model: nn.Module, params) -> list[str]:
    """The names of ``params`` in ``model``, sorted."""
    ids = {id(p) for p in params}
    return sorted(name for name, p in model.named_parameters() if id(p) in ids)


def _data(n: int = 48):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 16, generator=generator), torch.randint(0, 3, (n,), generator=generator)


def test_the_model_has_what_the_test_means():
    shapes = {name: p.ndim for name, p in _net().named_parameters()}
    assert sorted(WEIGHTS + NOT_WEIGHTS) == sorted(shapes)
    assert [name for name in NOT_WEIGHTS if shapes[name] >= 2] == ["ln.weight", "ln.bias", "rms.weight",
                                                                   "custom.weight", "bias"]


def test_param_groups_decay_the_weights_only():
    model = _net()
    groups = {g["group"]: g for g in param_groups(model)}
    assert _names(model, groups["decay"]["params"]) == sorted(WEIGHTS)
    assert _names(model, groups["no_decay"]["params"]) == sorted(NOT_WEIGHTS)
    assert groups["no_decay"]["weight_decay"] == 0.0


@pytest.mark.parametrize("norm", [
    nn.LayerNorm([3, 4]), nn.LayerNorm([3, 4], bias=False), nn.LayerNorm(4), nn.RMSNorm([3, 4]),
    nn.GroupNorm(1, 3), nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.BatchNorm3d(3), nn.SyncBatchNorm(3),
    nn.InstanceNorm1d(3, affine=True), nn.InstanceNorm2d(3, affine=True), nn.InstanceNorm3d(3, affine=True),
], ids=lambda norm: repr(norm))
def test_no_torch_norm_layer_has_a_weight(norm):
    model = nn.Sequential(nn.Linear(4, 4), norm)
    assert weight_ids(model) == {id(model[0].weight)}


def test_multihead_attention_biases_are_no_weights_and_its_projections_are():
    attention = nn.MultiheadAttention(4, 2, add_bias_kv=True)  # bias_k, bias_v: (1, 1, 4)
    named = dict(attention.named_parameters())
    assert {name for name, p in named.items() if id(p) in weight_ids(attention)} == {"in_proj_weight",
                                                                                       "out_proj.weight"}


def test_a_model_that_is_a_norm_layer_has_no_weight():
    assert weight_ids(nn.LayerNorm([3, 4])) == set()


class _Grab(trainlab.Callback):
    def on_train_start(self, view):
        self.before = {k: v.detach().clone().cpu() for k, v in view.weights().items()}

    def on_step_end(self, view, loss):
        self.after = {k: v.detach().clone().cpu() for k, v in view.weights().items()}
        view.control.stop("one step")


def test_one_sgd_step_decays_the_weights_only():
    """sgd (no momentum) with regularization.weight_decay: p - lr (g + wd p) for the weights, p - lr g else."""
    lr, wd = 0.1, 0.05
    model, (x, y) = _net(), _data()
    reference = copy.deepcopy(model)
    grab = _Grab()
    trainlab.fit(model, train=(x, y), callbacks=[grab], runtime={"num_threads": 1},
                 strategy={"loss": "cross_entropy", "batch_size": "full", "epochs": 1,
                           "optimizer": {"name": "sgd", "lr": lr}, "regularization": {"weight_decay": wd}})
    reference.load_state_dict(grab.before)
    reference.train()
    nn.functional.cross_entropy(reference(x), y).backward()
    for name, parameter in reference.named_parameters():
        p, g = grab.before[name].double().numpy(), parameter.grad.double().numpy()
        expected = p - lr * (g + wd * p) if name in WEIGHTS else p - lr * g
        np.testing.assert_allclose(grab.after[name].double().numpy(), expected, rtol=0, atol=1e-6, err_msg=name)


def test_the_penalty_is_numpys_sum_over_the_weights():
    l1, l2 = 0.003, 0.02
    model = _net()
    arrays = {name: p.detach().double().numpy() for name, p in model.named_parameters()}
    expected = sum(l1 * np.abs(arrays[name]).sum() + l2 * np.square(arrays[name]).sum() for name in WEIGHTS)
    assert float(penalty(model, l1=l1, l2=l2).detach()) == pytest.approx(expected, rel=1e-6)


def test_the_recorded_train_penalty_is_numpys_sum_over_the_weights():
    l2 = 0.05
    model, (x, y) = _net(), _data()
    arrays = {name: p.detach().double().numpy() for name, p in model.named_parameters()}
    expected = sum(l2 * np.square(arrays[name]).sum() for name in WEIGHTS)
    result = trainlab.fit(model, train=(x, y), runtime={"num_threads": 1},
                          strategy={"loss": "cross_entropy", "batch_size": "full", "epochs": 1,
                                    "optimizer": {"name": "sgd", "lr": 1e-9}, "regularization": {"l2": l2}})
    assert result.history[0]["train_penalty"] == pytest.approx(expected, rel=1e-5)


def test_layerwise_groups_decay_the_weights_only():
    model = _net()
    groups = layerwise_param_groups(model, base_lr=0.1, decay=0.5)
    decay = [p for g in groups if g["group"] == "decay" for p in g["params"]]
    no_decay = [p for g in groups if g["group"] == "no_decay" for p in g["params"]]
    assert _names(model, decay) == sorted(WEIGHTS)
    assert _names(model, no_decay) == sorted(NOT_WEIGHTS)
    assert all(g["weight_decay"] == 0.0 for g in groups if g["group"] == "no_decay")


def test_a_routed_group_without_weight_decay_splits_by_the_same_rule():
    model = _net()
    optimizer = build_routed_optimizer(model, {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
                                       [{"name": "norms", "select": "norm_weights"}, {"name": "hd", "select": "head"}])
    split = {(g["route"], g["group"], g["weight_decay"]): _names(model, g["params"]) for g in optimizer.param_groups}
    assert split == {
        ("rest", "decay", 0.1): ["conv.weight", "mix"],
        ("rest", "no_decay", 0.0): ["bias", "bn.bias", "conv.bias", "gn.bias", "ln.bias"],
        ("norms", "no_decay", 0.0): ["bn.weight", "custom.weight", "gn.weight", "ln.weight", "rms.weight"],
        ("hd", "decay", 0.1): ["head.weight"],
        ("hd", "no_decay", 0.0): ["head.bias"],
    }


# --------------------------------------------------------------------------- regularization.weight_decay in groups

PLAIN_SGD = {"name": "sgd", "lr": 0.05, "weight_decay": 0.02}  # regularization.weight_decay 0.02 placed in it


@pytest.mark.parametrize("group", [{"select": "head", "momentum": 0.9},
                                   {"select": "head", "momentum": 0.9, "nesterov": True},
                                   {"select": "head", "optimizer": "sgd", "momentum": 0.5}])
def test_a_group_that_makes_sgds_decay_coupled_is_refused(group):
    with pytest.raises(ConfigError, match=r"^strategy\.optimizer\.groups\[0\]: strategy\.regularization\."
                                          r"weight_decay \(decoupled\) has no home in optimizer 'sgd', whose "
                                          r"weight_decay is an L2 term in the gradient; .*groups\[0\]\.weight_decay"):
        build_routed_optimizer(_net(), PLAIN_SGD, [group], weight_decay=0.02)


def test_a_group_that_keeps_sgd_plain_gets_the_decoupled_decay():
    model = _net()
    optimizer = build_routed_optimizer(model, PLAIN_SGD, [{"name": "hd", "select": "head", "lr": 0.5}],
                                       weight_decay=0.02)
    head = {g["group"]: (g["weight_decay"], g["lr"], g.get("momentum")) for g in optimizer.param_groups
            if g["route"] == "hd"}
    assert head == {"decay": (0.02, 0.5, 0.0), "no_decay": (0.0, 0.5, 0.0)}


def test_a_group_with_its_own_weight_decay_may_use_sgds_l2():
    model = _net()
    optimizer = build_routed_optimizer(model, PLAIN_SGD, [{"name": "hd", "select": "head", "momentum": 0.9,
                                                           "weight_decay": 0.01}], weight_decay=0.02)
    head = [(g["weight_decay"], g["momentum"]) for g in optimizer.param_groups if g["route"] == "hd"]
    assert head == [(0.01, 0.9)]


def test_the_cli_refuses_a_momentum_group_under_regularization_weight_decay(write_config, capsys, tmp_path):
    config = copy.deepcopy(DIGITS_MLP)
    config["strategy"].update(optimizer={"name": "sgd", "lr": 0.05, "groups": [{"select": "head", "momentum": 0.9}]},
                              regularization={"weight_decay": 0.02}, epochs=1)
    path = write_config(config)
    assert main(["train", str(path), "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: strategy.optimizer.groups[0]: strategy.regularization."
                                               "weight_decay (decoupled) has no home in optimizer 'sgd'"), err


class NormedLinear(nn.Module):
    """A cosine classifier's head: a 2-D weight normalised in forward, a weight all the same."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=1) @ nn.functional.normalize(self.weight, dim=1).T


class T5LayerNorm(nn.Module):
    """A custom norm layer known by its class name alone (no torch norm class under it), shaped 2-D here."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def test_a_class_named_for_norm_only_when_it_is_one_loses_its_decay():
    """'norm' inside a class name (NormedLinear) says nothing of a norm layer; a name ending in Norm does."""
    model = nn.Sequential(nn.Linear(4, 4), T5LayerNorm(), NormedLinear())
    ids = weight_ids(model)
    assert id(model[0].weight) in ids and id(model[2].weight) in ids and id(model[1].weight) not in ids
    decay = next(g for g in param_groups(model) if g["group"] == "decay")["params"]
    assert {id(p) for p in decay} == {id(model[0].weight), id(model[2].weight)}


def test_a_checkpoint_whose_optimizer_groups_were_split_by_the_older_rule_is_told_why():
    """torch's refusal of a state dict whose groups hold other counts of parameters (a run begun before the
    decay rule changed) gets the reason and what to do; another mismatch gets no such hint."""
    from trainlab.run_resume import _regrouped_hint

    a, b, c = (nn.Parameter(torch.ones(2, 2)) for _ in range(3))
    old = torch.optim.SGD([{"params": [a, b]}, {"params": [c], "weight_decay": 0.0}], lr=0.1)
    new = torch.optim.SGD([{"params": [a]}, {"params": [b, c], "weight_decay": 0.0}], lr=0.1)
    with pytest.raises(ValueError) as raised:
        new.load_state_dict(old.state_dict())
    assert "commit 4b8448d" in _regrouped_hint(str(raised.value))
    assert _regrouped_hint("Error(s) in loading state_dict for Linear: size mismatch for weight") == ""


def test_a_checkpoint_with_another_number_of_optimizer_groups_is_told_why_too():
    """The older rule could leave one group where the new one makes two (an empty group is dropped)."""
    from trainlab.run_resume import _regrouped_hint

    a, b = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2))
    old = torch.optim.SGD([{"params": [a, b]}], lr=0.1)
    new = torch.optim.SGD([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.1)
    with pytest.raises(ValueError) as raised:
        new.load_state_dict(old.state_dict())
    assert "commit 4b8448d" in _regrouped_hint(str(raised.value))
