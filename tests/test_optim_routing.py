"""strategy.optimizer.groups: which parameter goes where, each group's update, the schedule, resume, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.nn import functional as F

from tests.muon_reference import NumpyMuon
from tests.resume_from_checkpoints import resumed_model_bytes, train_keeping_checkpoints
from trainlab.config import validate
from trainlab.engine.step import LRGroups
from trainlab.errors import ConfigError
from trainlab.optim.routing import RoutedOptimizer, build_routed_optimizer


class SmallConvNet(nn.Module):
    """conv -> BN -> conv(+bias) -> BN -> head; norm1's gain is frozen (as airbench freezes BN gains)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 3)
        self.norm1.weight.requires_grad_(False)

    def forward(self, x):
        x = F.gelu(self.norm1(self.conv1(x)))
        x = F.gelu(self.norm2(self.conv2(x)))
        return self.head(x.mean((2, 3)))


def _net(dtype=torch.float32) -> SmallConvNet:
    torch.manual_seed(0)
    return SmallConvNet().to(dtype)


TOP = {"name": "nesterov", "lr": 0.05, "momentum": 0.85}
RECIPE = [
    {"name": "filters", "select": "conv_filters", "optimizer": "muon_conv", "lr": 0.2, "ns_dtype": "float64"},
    {"name": "norm_biases", "select": "norm_biases", "lr": 0.03, "weight_decay": 0.5},
    {"name": "head", "select": "head", "lr": 0.4, "weight_decay": 0.01},
]


def _routes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    routes: dict[str, list[str]] = {}
    for group in optimizer.param_groups:
        routes.setdefault(group["route"], []).extend(names[id(p)] for p in group["params"])
    return routes


# --- which parameters land where -------------------------------------------------------------------


def test_recipe_routes_filters_norm_biases_head_and_leaves_the_rest_to_the_top_level():
    model = _net()
    optimizer = build_routed_optimizer(model, TOP, RECIPE)
    assert isinstance(optimizer, RoutedOptimizer)
    assert _routes(model, optimizer) == {
        "rest": ["conv2.bias", "norm2.weight"],  # norm1.weight is frozen: in no group at all
        "filters": ["conv1.weight", "conv2.weight"],
        "norm_biases": ["norm1.bias", "norm2.bias"],
        "head": ["head.weight", "head.bias"],
    }
    kinds = {(g["route"], type(optimizer.optimizers[g["inner"]]).__name__) for g in optimizer.param_groups}
    assert kinds == {("rest", "SGD"), ("filters", "MuonConv"), ("norm_biases", "SGD"), ("head", "SGD")}
    # groups on the top-level optimizer with its options share one torch optimizer
    assert len(optimizer.optimizers) == 2
    lrs = {(g["route"], g["group"]): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert lrs == {("rest", "no_decay"): (0.05, 0.0), ("filters", "decay"): (0.2, 0.0),
                   ("norm_biases", "explicit"): (0.03, 0.5), ("head", "explicit"): (0.4, 0.01)}
    assert all(g["momentum"] == 0.85 and g["nesterov"] for g in optimizer.param_groups if g["route"] != "filters")


def test_glob_regex_and_ndim_selectors_first_match_wins():
    model = _net()
    groups = [
        {"name": "head_w", "match": "head.*", "ndim": 2, "lr": 0.1},
        {"name": "matrices", "ndim_at_least": 2, "lr": 0.2},  # head.weight already taken above
        {"name": "norms", "match": "*norm*.bias", "lr": 0.3},
        {"name": "conv_bias", "regex": r"^conv\d\.bias$", "lr": 0.4},
    ]
    optimizer = build_routed_optimizer(model, TOP, groups)
    assert _routes(model, optimizer) == {
        "rest": ["norm2.weight", "head.bias"],
        "head_w": ["head.weight"],
        "matrices": ["conv1.weight", "conv2.weight"],
        "norms": ["norm1.bias", "norm2.bias"],
        "conv_bias": ["conv2.bias"],
    }


def test_without_explicit_weight_decay_a_group_decays_its_matrices_only():
    model = _net()
    top = {"name": "adamw", "lr": 0.01, "weight_decay": 0.1}
    optimizer = build_routed_optimizer(model, top, [{"name": "convs", "regex": "^conv", "lr": 0.02}])
    decay = {(g["route"], g["group"]): g["weight_decay"] for g in optimizer.param_groups}
    assert decay == {("rest", "decay"): 0.1, ("rest", "no_decay"): 0.0,
                     ("convs", "decay"): 0.1, ("convs", "no_decay"): 0.0}


def test_regularization_weight_decay_is_placed_into_a_group_on_another_optimizer():
    model = _net()
    optimizer = build_routed_optimizer(model, {"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
                                       [{"select": "head", "optimizer": "lion", "lr": 1e-3}], weight_decay=0.05)
    head = [g for g in optimizer.param_groups if g["route"] == "group0"]
    assert {g["group"]: g["weight_decay"] for g in head} == {"decay": 0.05, "no_decay": 0.0}


# --- each group's update is its optimizer's, run alone ----------------------------------------------


def test_each_group_updates_as_its_optimizer_alone_and_the_schedule_scales_each_base_lr():
    model = _net(torch.float64)
    reference = copy.deepcopy(model)
    routed = build_routed_optimizer(model, TOP, RECIPE)
    lrs = LRGroups([routed])  # the engine's LR writer (StandardStep.set_lr_factor)
    base = {g["route"]: g["lr"] for g in routed.param_groups}
    assert base == {"rest": 0.05, "filters": 0.2, "norm_biases": 0.03, "head": 0.4}

    named = dict(reference.named_parameters())
    sgd = torch.optim.SGD([
        {"params": [named["conv2.bias"], named["norm2.weight"]], "lr": 0.05, "weight_decay": 0.0},
        {"params": [named["norm1.bias"], named["norm2.bias"]], "lr": 0.03, "weight_decay": 0.5},
        {"params": [named["head.weight"], named["head.bias"]], "lr": 0.4, "weight_decay": 0.01},
    ], lr=0.05, momentum=0.85, nesterov=True)
    sgd_base = [0.05, 0.03, 0.4]
    muon = NumpyMuon(momentum=0.6, nesterov=True, ns_steps=3, normalize_weights=True)
    filters = ["conv1.weight", "conv2.weight"]

    generator = torch.Generator().manual_seed(3)
    total = 4
    for k in range(total):
        factor = (total - k) / total  # linear decay to 0
        x = torch.randn(8, 3, 6, 6, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 3, (8,), generator=generator)

        lrs.set_factor(factor)
        for group in routed.param_groups:
            assert group["lr"] == pytest.approx(base[group["route"]] * factor, rel=1e-15)
        routed.zero_grad()
        F.cross_entropy(model(x), y).backward()
        routed.step()

        for group, lr in zip(sgd.param_groups, sgd_base, strict=True):
            group["lr"] = lr * factor
        reference.zero_grad(set_to_none=True)  # the filters are not in sgd
        F.cross_entropy(reference(x), y).backward()
        sgd.step()
        with torch.no_grad():
            for i, name in enumerate(filters):
                p = named[name]
                p.copy_(torch.from_numpy(muon.step(i, p.numpy(), p.grad.numpy(), 0.2 * factor)))

        for (name, ours), theirs in zip(model.named_parameters(), reference.parameters(), strict=True):
            np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name} at step {k}")
    assert not torch.equal(model.conv1.weight, _net(torch.float64).conv1.weight)  # it did train


def test_state_dict_round_trip_and_train_eval_reach_inner_optimizers():
    model = _net()
    groups = [{"select": "conv_filters", "optimizer": "muon_conv", "lr": 0.1, "ns_dtype": "float32"},
              {"select": "head", "optimizer": "schedule_free_adamw", "lr": 0.01}]
    optimizer = build_routed_optimizer(model, TOP, groups)
    x, y = torch.randn(4, 3, 5, 5), torch.tensor([0, 1, 2, 0])

    def step(m, opt):
        opt.train()
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()

    for _ in range(2):
        step(model, optimizer)
    optimizer.eval()  # the engine does this before saving; schedule-free puts x in the parameters
    saved = copy.deepcopy(optimizer.state_dict())
    weights = copy.deepcopy(model.state_dict())
    step(model, optimizer)

    fresh = _net()
    fresh.load_state_dict(weights)
    resumed = build_routed_optimizer(fresh, TOP, groups)
    resumed.load_state_dict(saved)
    assert [g["lr"] for g in resumed.param_groups] == [g["lr"] for g in optimizer.param_groups]
    assert resumed.param_groups[0] is resumed.optimizers[resumed.param_groups[0]["inner"]].param_groups[0]
    assert len(resumed.state) == len(optimizer.state) > 0
    step(fresh, resumed)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


# --- config errors ------------------------------------------------------------------------------------


def test_group_matching_nothing_names_parameters():
    with pytest.raises(ConfigError, match=r"groups\[1\] \('group1': match: 'encoder\.\*'\) matches no trainable "
                                          r"parameter; parameters: conv1\.weight, norm1\.bias, conv2\.weight"):
        build_routed_optimizer(_net(), TOP, [RECIPE[0], {"match": "encoder.*"}])
    with pytest.raises(ConfigError, match=r"not already taken by an earlier group"):
        build_routed_optimizer(_net(), TOP, [{"ndim_at_least": 2}, {"match": "head.weight"}])


def test_unknown_optimizer_preset_and_option_get_did_you_mean():
    with pytest.raises(ConfigError, match=r"groups\[0\]: unknown optimizer 'muon_cnv'; did you mean 'muon_conv'\?"):
        build_routed_optimizer(_net(), TOP, [{"select": "conv_filters", "optimizer": "muon_cnv"}])
    with pytest.raises(ConfigError, match=r"unknown select preset 'conv_filter'; did you mean 'conv_filters'\?"):
        build_routed_optimizer(_net(), TOP, [{"select": "conv_filter"}])
    with pytest.raises(ConfigError, match=r"groups 'group0': optimizer 'muon_conv' has no option 'momentun'; "
                                          r"did you mean 'momentum'\?"):
        build_routed_optimizer(_net(), TOP, [{"select": "conv_filters", "optimizer": "muon_conv", "momentun": 0.9}])
    with pytest.raises(ConfigError, match=r"groups\[0\] selects nothing"):
        build_routed_optimizer(_net(), TOP, [{"lr": 0.1}])
    # a top-level option the groups inherit is named as the top level's, not as every inheriting group's
    with pytest.raises(ConfigError, match=r"^strategy\.optimizer: optimizer 'nesterov' has no option 'momentun'; did "
                                          r"you mean 'momentum'\?"):
        build_routed_optimizer(_net(), {**TOP, "momentun": 0.9}, [{"select": "conv_filters", "lr": 0.1}])


def test_closure_optimizers_and_vectors_for_muon_conv_are_refused():
    with pytest.raises(ConfigError, match=r"'lbfgs' \(groups 'group0'\) re-evaluates the loss in step\(closure\)"):
        build_routed_optimizer(_net(), TOP, [{"select": "head", "optimizer": "lbfgs"}])
    with pytest.raises(ConfigError, match=r"muon_conv updates tensors with ndim >= 2 only; got a parameter of shape"):
        build_routed_optimizer(_net(), TOP, [{"select": "head", "optimizer": "muon_conv", "lr": 0.1}])


BASE = {
    "name": "routed",
    "seed": 1,
    "data": {"source": "mnist1d", "num_samples": 500, "channels_first": True},
    "model": {"name": "cnn1d", "channels": [4, 8], "batch_norm": True},
    "strategy": {
        "loss": "cross_entropy",
        "optimizer": {"name": "nesterov", "lr": 0.05, "momentum": 0.85, "groups": [
            {"name": "filters", "select": "conv_filters", "optimizer": "muon_conv", "lr": 0.2,
             "ns_dtype": "float32"},
            {"name": "norm_biases", "select": "norm_biases", "lr": 0.03, "weight_decay": 0.05},
            {"name": "head", "select": "head", "lr": 0.3, "weight_decay": 0.005},
        ]},
        "batch_size": 32,
        "epochs": 2,
        "schedule": {"name": "warmup_linear", "warmup_steps": 0},
    },
    "output": {"progress": "off"},
    "runtime": {"num_threads": 1},
}


def test_config_errors_are_one_line():
    raw = copy.deepcopy(BASE)
    raw["strategy"]["optimizer"]["lr"] = "auto"
    with pytest.raises(ConfigError, match=r"lr: auto cannot be combined with groups"):
        validate(raw)
    raw["strategy"]["optimizer"].update(lr=0.05, groups=[])
    with pytest.raises(ConfigError, match=r"groups must list at least one group"):
        validate(raw)
    raw["strategy"]["optimizer"]["groups"] = [{"select": "head", "lr": -1}]
    with pytest.raises(ConfigError, match=r"strategy\.optimizer\.groups\.0\.lr"):
        validate(raw)


def test_config_without_groups_keeps_its_hash_and_spec():
    raw = copy.deepcopy(BASE)
    del raw["strategy"]["optimizer"]["groups"]
    config = validate(raw)
    assert "groups" not in config.to_dict()["strategy"]["optimizer"]
    assert "groups" not in validate(BASE).strategy.optimizer.spec()


def test_cli_exits_2_with_one_line_for_a_group_matching_nothing(tmp_path, capsys):
    from trainlab.cli import main

    config = copy.deepcopy(BASE)
    config["strategy"]["optimizer"]["groups"].append({"name": "attention", "match": "*attn*"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "groups[3] ('attention': match: '*attn*') matches no trainable parameter" in error


# --- through the engine: the schedule and a bit-identical resume -------------------------------------


def test_engine_schedule_scales_every_group_base_lr():
    from trainlab.builders import build, run_scope

    config = validate({**BASE, "strategy": {**BASE["strategy"], "epochs": None, "max_steps": 5}})
    with run_scope(config):
        built = build(config, quiet=True)
        optimizer = built.step.optimizer
        seen: list[dict[str, float]] = []
        inner_step = optimizer.step

        def recording_step(closure=None):
            seen.append({g["route"]: g["lr"] for g in optimizer.param_groups})
            return inner_step(closure)

        optimizer.step = recording_step
        built.trainer.fit()
    base = {"rest": 0.05, "filters": 0.2, "norm_biases": 0.03, "head": 0.3}  # rest: the conv biases
    assert len(seen) == 5
    for k, lrs in enumerate(seen):
        assert lrs == pytest.approx({route: lr * (5 - k) / 5 for route, lr in base.items()}, rel=1e-12), k


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path):
    config = {**BASE, "runtime": {**BASE.get("runtime", {}), "deterministic": True}}  # a GPU's cuDNN too
    full, folders = train_keeping_checkpoints(config, tmp_path, every_n_steps=4)
    reference_bytes = (full / "model.safetensors").read_bytes()
    for step in (4, 16):  # mid-epoch 1 and in epoch 2 (10 steps per epoch here)
        assert resumed_model_bytes(full, folders[step], tmp_path) == reference_bytes, step


def test_docs_airbench_recipe_validates_and_routes_the_airbench_model():
    import re
    from pathlib import Path

    import trainlab.models.builtins  # noqa: F401
    from trainlab.losses import build_loss
    from trainlab.models import MODELS
    from trainlab.step_builders import build_routed_optimizer_for

    doc = (Path(__file__).parents[1] / "docs" / "param_groups.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S) if "ns_steps" in b)
    strategy = yaml.safe_load(block)["strategy"]
    config = validate({**BASE, "strategy": {**strategy, "epochs": 1}})
    model = MODELS.get("airbench")((3, 16, 16), 10, widths=[4, 8, 8])
    model.backbone.whiten.weight.requires_grad_(False)  # airbench's frozen whitening filter
    spec = config.strategy.optimizer.spec()
    optimizer = build_routed_optimizer_for(config, model, build_loss(config.strategy.loss.spec()), spec)
    routes = _routes(model, optimizer)
    convs = [f"backbone.group{i}.conv{j}.weight" for i in (1, 2, 3) for j in (1, 2)]
    norms = [f"backbone.group{i}.norm{j}.bias" for i in (1, 2, 3) for j in (1, 2)]
    assert routes == {"filters": convs, "whiten_bias": ["backbone.whiten.bias"], "biases": norms,
                      "head": ["head.weight"]}
    assert config.strategy.optimizer.groups[1].train_epochs == 3
    settings = {g["route"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    bias_settings = (0.053, pytest.approx(2e-6 * 2000 / 0.053, rel=1e-3))
    assert settings == {"filters": (0.24, 0.0), "whiten_bias": bias_settings, "biases": bias_settings,
                        "head": (0.67, pytest.approx(2e-6 * 2000 / 0.67, rel=1e-3))}
