"""Registry optimizers backed by torch.optim equal direct torch.optim use with trainlab's groups."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import trainlab.optim.builtins  # noqa: F401
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS, param_groups, requires_closure
from trainlab.optim.muon import MuonWithAdamW

STEPS = 50




def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 2))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(32, 4, generator=generator), torch.randn(32, 2, generator=generator)


def _groups_by_hand(model: nn.Module) -> list[dict]:
    """The decay/no_decay split written out, independent of ``param_groups``."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = STEPS) -> list[torch.Tensor]:
    x, y = _data()

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        if requires_closure(optimizer):
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


# name, registry kwargs, the torch.optim class, the same configuration spelled for torch
CASES = [
    ("sgd", {"lr": 0.05, "weight_decay": 0.01}, torch.optim.SGD, {"lr": 0.05, "weight_decay": 0.01}),
    ("momentum", {"lr": 0.05, "weight_decay": 0.01}, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("nesterov", {"lr": 0.05}, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.01}, torch.optim.RMSprop, {"lr": 0.01, "weight_decay": 0.01}),
    ("adagrad", {"lr": 0.1}, torch.optim.Adagrad, {"lr": 0.1}),
    ("adadelta", {"lr": 1.0}, torch.optim.Adadelta, {"lr": 1.0}),
    ("adam", {"lr": 0.01, "weight_decay": 0.01}, torch.optim.Adam,
     {"lr": 0.01, "weight_decay": 0.01, "fused": True}),
    ("adamw", {"lr": 0.01}, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.01, "fused": True}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}, torch.optim.NAdam,
     {"lr": 0.01, "weight_decay": 0.01, "decoupled_weight_decay": True}),
    ("radam", {"lr": 0.01, "weight_decay": 0.01}, torch.optim.RAdam, {"lr": 0.01, "weight_decay": 0.01}),
    ("adamax", {"lr": 0.01, "betas": [0.8, 0.99]}, torch.optim.Adamax, {"lr": 0.01, "betas": (0.8, 0.99)}),
    ("adafactor", {"lr": 0.01, "weight_decay": 0.1}, torch.optim.Adafactor, {"lr": 0.01, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("name", "kwargs", "torch_class", "torch_kwargs"), CASES, ids=[c[0] for c in CASES])
def test_registry_matches_direct_torch(name, kwargs, torch_class, torch_kwargs):
    model = _model()
    reference = copy.deepcopy(model)
    ours = _train(model, OPTIMIZERS.build({"name": name, **kwargs}, param_groups(model)))
    theirs = _train(reference, torch_class(_groups_by_hand(reference), **torch_kwargs))
    assert all(not torch.equal(a, b) for a, b in zip(ours, list(_model().parameters()), strict=True))  # it moved
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


def test_no_decay_group_is_not_decayed():
    """A weight decay kwarg reaches the decay group only: with zero gradients only matrices shrink."""
    model = _model()
    optimizer = OPTIMIZERS.build({"name": "adamw", "weight_decay": 0.5}, param_groups(model), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p, old in zip(model.parameters(), before, strict=True):
        if p.ndim >= 2:
            torch.testing.assert_close(p.detach(), old * (1 - 0.1 * 0.5))
        else:
            assert torch.equal(p.detach(), old)


def test_lbfgs_merges_groups_and_matches_torch():
    model = _model()
    reference = copy.deepcopy(model)
    optimizer = OPTIMIZERS.build({"name": "lbfgs", "max_iter": 5}, param_groups(model), lr=1.0)
    assert len(optimizer.param_groups) == 1 and requires_closure(optimizer)
    ours = _train(model, optimizer, steps=10)
    hand = _groups_by_hand(reference)  # same order as the merged groups: L-BFGS flattens in this order
    flat = hand[0]["params"] + hand[1]["params"]
    theirs = _train(reference, torch.optim.LBFGS(flat, lr=1.0, max_iter=5, line_search_fn="strong_wolfe"), steps=10)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


def test_lbfgs_rejects_unknown_line_search():
    with pytest.raises(ConfigError, match="line_search_fn"):
        OPTIMIZERS.build({"name": "lbfgs", "line_search_fn": "armijo"}, param_groups(_model()), lr=1.0)


# --- Muon + AdamW composite ---------------------------------------------------------------------------


def test_muon_matches_torch_muon_plus_adamw():
    model = _model()
    reference = copy.deepcopy(model)
    ours = _train(model, OPTIMIZERS.build({"name": "muon", "adamw_lr": 0.003}, param_groups(model), lr=0.02))
    hand = _groups_by_hand(reference)
    muon = torch.optim.Muon([{"params": hand[0]["params"]}], lr=0.02, weight_decay=0.1,
                            adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW([{"params": hand[1]["params"], "weight_decay": 0.0}], lr=0.003, betas=(0.9, 0.95),
                              weight_decay=0.1, fused=True)
    x, y = _data()
    for _ in range(STEPS):
        muon.zero_grad()
        adamw.zero_grad()
        nn.functional.mse_loss(reference(x), y).backward()
        muon.step()
        adamw.step()
    for a, b in zip(ours, reference.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-7, rtol=0)


def test_muon_splits_matrices_from_everything_else():
    conv = nn.Conv2d(2, 3, 3)
    linear = nn.Linear(4, 5)
    groups = [{"params": [conv.weight, linear.weight], "group": "decay"},
              {"params": [conv.bias, linear.bias], "group": "no_decay", "weight_decay": 0.0}]
    optimizer = MuonWithAdamW(groups, lr=0.01)
    summary = [(g["optimizer"], g["group"], [tuple(p.shape) for p in g["params"]], g["weight_decay"])
               for g in optimizer.param_groups]
    assert summary == [
        ("muon", "decay", [(5, 4)], 0.1),
        ("adamw", "decay", [(3, 2, 3, 3)], 0.1),  # conv kernels are not flattened: AdamW
        ("adamw", "no_decay", [(3,), (5,)], 0.0),
    ]


def test_muon_lr_written_into_param_groups_reaches_both_parts():
    model = _model()
    optimizer = OPTIMIZERS.build("muon", param_groups(model), lr=0.02)
    for group in optimizer.param_groups:
        group["lr"] = 0.0  # what an LR schedule does
    before = [p.detach().clone() for p in model.parameters()]
    _train(model, optimizer, steps=3)
    for p, old in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), old)


def test_muon_state_dict_round_trip_continues_identically():
    model = _model()
    optimizer = OPTIMIZERS.build("muon", param_groups(model), lr=0.02)
    _train(model, optimizer, steps=5)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    expected = _train(model, optimizer, steps=5)

    fresh = _model()
    fresh.load_state_dict(saved_model)
    resumed = OPTIMIZERS.build("muon", param_groups(fresh), lr=0.02)
    resumed.load_state_dict(saved_state)
    assert resumed.muon.state is resumed.state and resumed.adamw.param_groups[0] is resumed.param_groups[1]
    for a, b in zip(_train(fresh, resumed, steps=5), expected, strict=True):
        assert torch.equal(a, b)


def test_muon_rejects_unknown_adjust_lr_fn():
    with pytest.raises(ConfigError, match="adjust_lr_fn"):
        OPTIMIZERS.build({"name": "muon", "adjust_lr_fn": "rms"}, param_groups(_model()), lr=0.01)
