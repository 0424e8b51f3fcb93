"""Transfer learning: backbone/head split, freezing, gradual unfreezing, layer-wise LRs, LoRA."""

from __future__ import annotations

import importlib.util
import sys
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError
from trainlab.finetune import (
    apply_epoch_freezing,
    backbone_frozen_at,
    backbone_frozen_for_now,
    check_finetune_options,
    freeze_backbone,
    frozen_by_finetune,
    frozen_norms_to_eval,
    layerwise_param_groups,
    model_layers,
    parameter_counts,
    split_backbone_head,
    unfreeze_all,
)
from trainlab.lora import apply_lora, default_lora_targets
from trainlab.models import build_model

HAS_PEFT = importlib.util.find_spec("peft") is not None


def _resnet(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "resnet", "depth": 8, "widths": [4, 8, 16]}, (3, 8, 8), classes)


def _text(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "transformer_encoder", "vocab_size": 30, "d_model": 8, "heads": 2, "layers": 2,
                        "dropout": 0.0, **kwargs}, (6,), 3)


def _batch(n: int = 8):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    x, y = _batch()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def _snapshot(params):
    return [p.detach().clone() for p in params]


# ---------------------------------------------------------------------------
# split and counts
# ---------------------------------------------------------------------------


def test_split_uses_head_attribute():
    model = _resnet()
    backbone, head = split_backbone_head(model)
    assert [id(p) for p in head] == [id(model.head.weight), id(model.head.bias)]
    assert {id(p) for p in backbone} == {id(p) for p in model.backbone.parameters()}


def test_split_falls_back_to_last_parameterised_child():
    mlp = build_model({"name": "mlp", "hidden": [5, 4]}, (3,), 2)  # Flatten-free: Linear, ReLU, Linear, ReLU, Linear
    backbone, head = split_backbone_head(mlp)
    assert [id(p) for p in head] == [id(mlp[-1].weight), id(mlp[-1].bias)]
    assert len(backbone) == 4
    cnn = build_model({"name": "cnn2d", "channels": [4]}, (1, 8, 8), 2)  # Sequential(features, head block)
    assert {id(p) for p in split_backbone_head(cnn)[1]} == {id(p) for p in cnn[1].parameters()}
    single = nn.Linear(3, 2)  # no children: all head
    assert split_backbone_head(single)[0] == [] and len(split_backbone_head(single)[1]) == 2


def test_split_with_only_backbone_attribute():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(4, 4)
            self.classifier = nn.Linear(4, 2)

    net = Net()
    backbone, head = split_backbone_head(net)
    assert {id(p) for p in head} == {id(p) for p in net.classifier.parameters()}
    assert {id(p) for p in backbone} == {id(p) for p in net.backbone.parameters()}


def test_parameter_counts():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    assert parameter_counts(model) == {"trainable": 4 + 8 + 2, "total": 12 + 4 + 8 + 2}


# ---------------------------------------------------------------------------
# freezing
# ---------------------------------------------------------------------------


def test_freeze_trains_only_the_head():
    model = _resnet()
    total = parameter_counts(model)["total"]
    assert freeze_backbone(model) == len(list(model.backbone.parameters()))
    assert parameter_counts(model) == {"trainable": 16 * 10 + 10, "total": total}
    backbone, head = split_backbone_head(model)
    backbone_before, head_before = _snapshot(backbone), _snapshot(head)
    trainable = [p for p in model.parameters() if p.requires_grad]
    _train_steps(model, torch.optim.AdamW(trainable, lr=0.1, weight_decay=0.1))
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, backbone, strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(head_before, head, strict=True))


def test_frozen_parameters_in_the_optimizer_stay_fixed_then_train_after_unfreezing():
    # gradual unfreezing: the optimizer holds every parameter from the start
    model = _resnet()
    freeze_backbone(model)
    groups = layerwise_param_groups(model, base_lr=0.05, decay=1.0, include_frozen=True)
    optimizer = torch.optim.AdamW(groups, lr=0.05, weight_decay=0.1)
    backbone, head = split_backbone_head(model)
    before = _snapshot(backbone)
    _train_steps(model, optimizer, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(before, backbone, strict=True))  # grad None -> skipped, no decay
    assert unfreeze_all(model) == len(backbone)
    assert parameter_counts(model)["trainable"] == parameter_counts(model)["total"]
    _train_steps(model, optimizer, steps=1)
    changed = [not torch.equal(a, b) for a, b in zip(before, backbone, strict=True)]
    assert all(changed)


def test_epoch_freezing_schedule():
    assert [backbone_frozen_at(e, True, 2) for e in range(4)] == [True, True, False, False]
    assert [backbone_frozen_at(e, True, None) for e in range(3)] == [True, True, True]
    assert [backbone_frozen_at(e, False, None) for e in range(3)] == [False, False, False]
    model = _resnet()
    head_count = 16 * 10 + 10
    trainable = []
    for epoch in range(4):
        apply_epoch_freezing(model, epoch, freeze=True, unfreeze_after_epochs=2)
        trainable.append(parameter_counts(model)["trainable"])
    total = parameter_counts(model)["total"]
    assert trainable == [head_count, head_count, total, total]


def test_unfreeze_restores_only_what_freeze_froze():
    model = build_model({"name": "airbench", "widths": [8, 8, 8]}, (3, 16, 16), 10)
    fixed_by_design = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert len(fixed_by_design) == 6  # the BatchNorm scales
    freeze_backbone(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight"}
    unfreeze_all(model)
    assert [name for name, p in model.named_parameters() if not p.requires_grad] == fixed_by_design


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_frozen_by_finetune_is_true_from_freeze_to_unfreeze():
    model = build_model({"name": "airbench", "widths": [8, 8, 8]}, (3, 16, 16), 10)
    assert not frozen_by_finetune(model)  # its BatchNorm scales are frozen by design, not by fine-tuning
    freeze_backbone(model)
    assert frozen_by_finetune(model)
    unfreeze_all(model)
    assert not frozen_by_finetune(model)


def test_backbone_frozen_for_now_gives_back_only_what_it_froze():
    """The LR range test freezes the backbone for its sweep; a backbone that was frozen already (by the
    optimizer build, ``finetune.freeze`` alone) or by design must stay frozen after it, which unfreeze_all
    (everything freeze_backbone ever froze) would not leave it."""
    model = build_model({"name": "airbench", "widths": [8, 8, 8]}, (3, 16, 16), 10)
    all_trainable = _trainable(model)
    with backbone_frozen_for_now(model) as count:
        assert _trainable(model) == {"head.weight"} and frozen_by_finetune(model)
        assert count == len(all_trainable) - 1
    assert _trainable(model) == all_trainable and not frozen_by_finetune(model)
    # frozen before the block: frozen after it, with the same mark (unfreeze_all still gives all of it back)
    freeze_backbone(model)
    with backbone_frozen_for_now(model) as count:
        assert count == 0 and _trainable(model) == {"head.weight"}
    assert _trainable(model) == {"head.weight"} and frozen_by_finetune(model)
    unfreeze_all(model)
    assert _trainable(model) == all_trainable
    # part of it frozen before (one layer by hand): that part stays frozen, the rest is given back
    stem = next(name for name in all_trainable if name != "head.weight")
    model.get_parameter(stem).requires_grad_(False)
    with backbone_frozen_for_now(model):
        assert _trainable(model) == {"head.weight"}
    assert _trainable(model) == all_trainable - {stem}


def test_frozen_norms_keep_running_statistics():
    model = _resnet()
    freeze_backbone(model)
    model.train()
    assert frozen_norms_to_eval(model) == 1 + 3 * 2  # stem + 2 per block
    stem_bn = model.backbone.stem.bn
    before = stem_bn.running_mean.clone()
    model(_batch()[0])
    assert torch.equal(stem_bn.running_mean, before)
    unfreeze_all(model)
    model.train()
    assert frozen_norms_to_eval(model) == 0
    model(_batch()[0])
    assert not torch.equal(stem_bn.running_mean, before)


def test_a_rollback_within_the_epoch_keeps_the_frozen_backbones_norms_in_eval_mode():
    """A restore puts every layer back in train mode; UnfreezeSchedule applies the freezing again at the next
    step (its state was restored), so a frozen backbone's batch norm keeps its running statistics after a
    divergence rollback in the middle of an epoch. Before, they trained again until the epoch's end."""
    from trainlab.callbacks.base import Callback
    from trainlab.callbacks.unfreeze import UnfreezeSchedule
    from trainlab.data.dataset import Split
    from trainlab.engine.batching import BatchPlan, TensorBatches
    from trainlab.engine.loop import Limits, Trainer
    from trainlab.engine.objective import Objective
    from trainlab.engine.step import StandardStep
    from trainlab.losses import build_loss

    class Backboned(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.backbone(x))

    class RollBackOnce(Callback):
        def __init__(self):
            self.snapshot, self.modes = None, []

        def on_step_end(self, view, loss):
            self.modes.append(view.model.backbone[1].training)
            if view.state.step == 1:
                self.snapshot = view.snapshot()
            elif view.state.step == 3 and len(self.modes) == 3:
                view.control.rollback_to = self.snapshot

    torch.manual_seed(0)
    model = Backboned()
    generator = torch.Generator().manual_seed(0)
    split = Split(torch.randn(40, 4, generator=generator), torch.randint(0, 3, (40,), generator=generator))
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.1), Objective(build_loss("cross_entropy")))
    watcher = RollBackOnce()
    trainer = Trainer(step, TensorBatches(split, None, 0, torch.device("cpu")), BatchPlan(40, 8, 0), Limits(epochs=1),
                      [UnfreezeSchedule(True, None), watcher])
    before = model.backbone[1].running_mean.clone()
    trainer.fit()
    assert len(watcher.modes) == 7  # 5 steps, 2 of them again after the rollback
    assert watcher.modes == [False] * 7
    assert torch.equal(model.backbone[1].running_mean, before)


@pytest.mark.parametrize("options, match", [
    ({"unfreeze_after_epochs": 2}, "needs freeze: true"),
    ({"freeze": True, "unfreeze_after_epochs": 0}, "integer >= 1"),
    ({"layerwise_lr_decay": 1.5}, r"\(0, 1\]"),
    ({"lora": {"rank": 0}}, "lora.rank"),
    ({"lora": {"rank": 4, "scale": 2}}, "unknown strategy.finetune.lora"),
    ({"freeze": True, "lora": {"rank": 4}}, "remove freeze"),
    ({"lora": {"target_modules": "query"}}, "target_modules"),
])
def test_check_finetune_options(options, match):
    with pytest.raises(ConfigError, match=match):
        check_finetune_options(**options)


def test_check_finetune_options_accepts_valid():
    check_finetune_options(freeze=True, unfreeze_after_epochs=3, layerwise_lr_decay=0.8)
    check_finetune_options(lora={"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["query"]})


# ---------------------------------------------------------------------------
# layer-wise learning rates
# ---------------------------------------------------------------------------

TEXT_LAYERS = ["backbone.embeddings", "backbone.encoder.layers.0", "backbone.encoder.layers.1",
               "backbone.encoder.norm", "head"]


def test_layers_of_the_text_transformer():
    assert [name for name, _ in model_layers(_text())] == TEXT_LAYERS


def test_layerwise_lrs_decay_geometrically():
    model = _text()
    base_lr, decay = 1e-3, 0.5
    groups = layerwise_param_groups(model, base_lr, decay)
    for group in groups:
        depth = len(TEXT_LAYERS) - 1 - TEXT_LAYERS.index(group["layer"])
        assert group["lr"] == pytest.approx(base_lr * decay**depth)
        assert group["lr_scale"] == pytest.approx(decay**depth)
        if group["group"] == "no_decay":
            assert group["weight_decay"] == 0.0 and all(p.ndim < 2 for p in group["params"])
        else:
            assert "weight_decay" not in group and all(p.ndim >= 2 for p in group["params"])
    layer_lrs = {g["layer"]: g["lr"] for g in groups}
    ratios = [layer_lrs[low] / layer_lrs[high] for low, high in pairwise(TEXT_LAYERS)]
    assert ratios == pytest.approx([decay] * 4)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each parameter exactly once


def test_layerwise_groups_take_effect_in_sgd():
    model = _text()
    base_lr, decay = 0.1, 0.3
    optimizer = torch.optim.SGD(layerwise_param_groups(model, base_lr, decay), lr=base_lr)
    probes = {"head": model.head.bias, "backbone.encoder.layers.1": model.backbone.encoder.layers[1].linear2.bias,
              "backbone.embeddings": model.backbone.embeddings.positions.weight}
    before = {name: p.detach().clone() for name, p in probes.items()}
    ids = torch.randint(1, 30, (4, 6), generator=torch.Generator().manual_seed(0))
    F.cross_entropy(model(ids), torch.tensor([0, 1, 2, 0])).backward()
    grads = {name: p.grad.clone() for name, p in probes.items()}
    optimizer.step()
    for name, parameter in probes.items():
        depth = len(TEXT_LAYERS) - 1 - TEXT_LAYERS.index(name)
        torch.testing.assert_close(parameter.detach(), before[name] - base_lr * decay**depth * grads[name])


def test_layerwise_groups_skip_frozen_unless_asked():
    model = _resnet()
    freeze_backbone(model)
    assert [g["layer"] for g in layerwise_param_groups(model, 0.1, 0.9)] == ["head", "head"]
    everything = layerwise_param_groups(model, 0.1, 0.9, include_frozen=True)
    assert sum(p.numel() for g in everything for p in g["params"]) == parameter_counts(model)["total"]
    assert [name for name, _ in model_layers(model)][:3] == ["backbone.stem", "backbone.stage1.0", "backbone.stage2.0"]


def test_layerwise_rejects_bad_decay():
    with pytest.raises(ConfigError, match="layerwise_lr_decay"):
        layerwise_param_groups(_text(), 0.1, 0.0)


# ---------------------------------------------------------------------------
# Hugging Face BERT layers and LoRA
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """hf_pretrained over a randomly initialised 2-layer BERT (hidden 16) saved to a tmp folder."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
    transformers.BertModel(config).save_pretrained(folder)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_model({"name": "hf_pretrained", "path": str(folder), "dropout": 0.0}, (2, 6), 3)

    return build


def _bert_batch():
    ids = torch.tensor([[2, 5, 7, 9, 3, 0], [2, 6, 6, 8, 11, 3]])
    return torch.stack([ids, (ids != 0).long()], dim=1), torch.tensor([0, 2])


def test_bert_layers_embeddings_lowest(tiny_bert):
    model = tiny_bert()
    names = [name for name, _ in model_layers(model)]
    assert names == ["unused", "backbone.embeddings", "backbone.encoder.layer.0", "backbone.encoder.layer.1", "head"]
    lrs = {g["layer"]: g["lr"] for g in layerwise_param_groups(model, 2e-5, 0.9)}
    assert lrs["backbone.embeddings"] == pytest.approx(2e-5 * 0.9**3)
    assert lrs["backbone.encoder.layer.1"] == pytest.approx(2e-5 * 0.9)  # just below the head
    no_decay = [g for g in layerwise_param_groups(model, 2e-5, 0.9) if g["group"] == "no_decay"]
    layer_norm_weight = model.backbone.encoder.layer[0].output.LayerNorm.weight
    assert any(p is layer_norm_weight for g in no_decay for p in g["params"])


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed")
def test_lora_trains_only_adapters_and_head(tiny_bert):
    reference = tiny_bert().eval()
    x, y = _bert_batch()
    expected = reference(x).detach()
    rank = 2
    model = apply_lora(tiny_bert(), rank=rank, alpha=4, target_modules=["query", "value"])
    adapters = 2 * 2 * rank * (16 + 16)  # 2 layers x (query, value) x (A: r x 16, B: 16 x r)
    counts = parameter_counts(model)
    assert counts["trainable"] == adapters + 16 * 3 + 3
    assert counts["total"] == parameter_counts(reference)["total"] + adapters
    torch.testing.assert_close(model.eval()(x), expected)  # B = 0: same function at the start
    base = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    head_before = model.head.weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)
    assert not torch.equal(model.head.weight, head_before)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert len(lora_b) == 4 and all(p.abs().sum() > 0 for p in lora_b)


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed")
def test_lora_default_targets_on_text_transformer():
    model = _text()
    targets = default_lora_targets(model)
    assert targets == [f"backbone.encoder.layers.{i}.linear{j}" for i in range(2) for j in (1, 2)]
    total_before = parameter_counts(model)["total"]
    wrapped = apply_lora(model, rank=1)
    adapters = 2 * ((8 + 32) + (32 + 8))  # linear1: 8 -> 32 (ff_dim 4 * d_model), linear2: 32 -> 8, rank 1
    assert parameter_counts(wrapped) == {"trainable": adapters + 8 * 3 + 3, "total": total_before + adapters}
    assert wrapped(torch.randint(1, 30, (2, 6))).shape == (2, 3)


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed")
def test_lora_unknown_target_is_a_config_error():
    """Its list showed the first 12 module names (containers, never the layers' own names)."""
    with pytest.raises(ConfigError, match="matched no supported layer") as caught:
        apply_lora(_text(), rank=2, target_modules=["no_such_layer"])
    assert str(caught.value).endswith("the backbone's Linear/Conv layers end in: linear1, linear2")


def test_lora_without_peft(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ConfigError, match=r"needs the 'lora' extra: pip install 'trainlab\[lora\]'"):
        apply_lora(_text(), rank=2)


@pytest.mark.parametrize("unfreeze_after_epochs, max_steps, warned", [
    (3, None, "unfreeze_after_epochs=3, but the run trains 3 epoch(s) (24 steps): the backbone never unfreezes, "
              "as with freeze alone; set it below 3 to train the backbone, or remove it"),
    (2, 8, "unfreeze_after_epochs=2, but the run trains 1 epoch(s) (8 steps): the backbone never unfreezes, as "
           "with freeze alone; train more epochs to unfreeze the backbone, or remove it"),
    (2, None, None),
])
def test_an_unfreeze_the_run_never_reaches_is_warned_of(capsys, unfreeze_after_epochs, max_steps, warned):
    from trainlab.builders import build, run_scope
    from trainlab.config import validate

    config = validate({"name": "u", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                    "batch_size": 12, "epochs": 3, "max_steps": max_steps,
                                    "finetune": {"freeze": True, "unfreeze_after_epochs": unfreeze_after_epochs}},
                       "output": {"progress": "off"}})
    with run_scope(config):
        build(config, quiet=True)
    err = capsys.readouterr().err
    assert err == (f"warning: strategy.finetune.{warned}\n" if warned else "")


@pytest.mark.parametrize("finetune, warned", [
    ({"freeze": True}, "strategy.finetune.freeze trains only the head of"),
    ({"lora": {"rank": 2}}, "strategy.finetune.lora trains low-rank adapters on"),
])
def test_a_backbone_frozen_at_random_weights_is_warned_of(capsys, finetune, warned):
    """A user trial: freeze on a zoo model (built at random: only hf_pretrained loads weights) trained its head
    on random features, 75% where training the whole model gave 87%, without a word."""
    from trainlab.builders import build, run_scope
    from trainlab.config import validate

    config = validate({"name": "u", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                    "batch_size": 12, "epochs": 1, "finetune": finetune},
                       "output": {"progress": "off"}})
    with run_scope(config):
        build(config, quiet=True)
    assert capsys.readouterr().err == (
        f"warning: {warned} model 'mlp', whose frozen weights a config run builds at random (only hf_pretrained "
        "loads pretrained ones): it learns on random features; leave strategy.finetune out to train the whole model, "
        "or fine-tune a pretrained one (hf_pretrained, a module:attr model that loads its weights, or your own model "
        "given to trainlab.fit)\n")
    with run_scope(config):
        build(config, quiet=True, training=False)  # evaluating a trained run: its training said it
    assert capsys.readouterr().err == ""


def test_layerwise_decay_skips_the_pooler_the_model_never_reads(tiny_bert_dir):
    """BERT's pooler was counted as the layer below the head, so the top encoder layer got decay^2: but
    hf_pretrained pools last_hidden_state (mean or [CLS]), and the pooler gets no gradient."""
    from trainlab.models.hf import tokenize_texts

    torch.manual_seed(0)
    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 8), 3)
    x = tokenize_texts(tiny_bert_dir, ["the cat sat", "a dog ran fast"], max_length=8)
    F.cross_entropy(model(x), torch.tensor([0, 2])).backward()
    pooler = list(model.backbone.pooler.parameters())
    assert pooler and all(p.grad is None for p in pooler)
    assert model.backbone.encoder.layer[1].output.dense.weight.grad is not None
    layers = dict(model_layers(model))
    assert [id(p) for p in layers["unused"]] == [id(p) for p in pooler]
    assert sum(len(params) for params in layers.values()) == len(list(model.parameters()))  # each once
    lrs = {g["layer"]: g["lr"] for g in layerwise_param_groups(model, 1.0, 0.5)}
    assert lrs == {"head": 1.0, "backbone.encoder.layer.1": 0.5, "backbone.encoder.layer.0": 0.25,
                   "backbone.embeddings": 0.125, "unused": 0.0625}


# ---------------------------------------------------------------------------
# the records' lr with layer-wise decay: the head's
# ---------------------------------------------------------------------------


def test_the_recorded_lr_is_the_heads_not_the_unused_poolers(tiny_bert):
    """The first param group is the lowest layer's, BERT's unused pooler at lr x decay^4 here: the records
    showed a rate nothing trains at, 16x below the head's strategy.optimizer.lr."""
    from trainlab.engine.step import LRGroups

    model = tiny_bert()
    optimizer = torch.optim.SGD(layerwise_param_groups(model, 2e-5, 0.5), lr=2e-5)
    assert optimizer.param_groups[0]["layer"] == "unused"
    lrs = LRGroups([optimizer])
    lrs.set_factor(0.3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-5 * 0.5**4 * 0.3)
    assert lrs.current() == pytest.approx(2e-5 * 0.3)


def test_a_runs_recorded_lr_is_strategy_lr_times_the_schedule_with_layerwise_decay(tmp_path):
    """Every step and epoch record's lr against 0.1 x the cosine factor written out (NumPy): the head's LR."""
    import json

    import numpy as np

    from trainlab.experiment import train

    config = {"name": "lw", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8, 8]},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 30,
                           "epochs": 3, "schedule": {"name": "cosine"}, "finetune": {"layerwise_lr_decay": 0.5}},
              "output": {"progress": "off", "log_every_n_steps": 1}, "runtime": {"num_threads": 1}}
    _, run = train(config, out=tmp_path / "run", quiet=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "lr" in r]
    steps = np.array([r["step"] for r in records])  # a record after optimizer step k: the LR step k - 1 ran at
    total = 12  # 3 epochs of 4 steps (120 training rows, batches of 30)
    expected = 0.1 * 0.5 * (1.0 + np.cos(np.pi * (steps - 1) / total))
    assert len(records) == 12 + 3 and steps.max() == total
    np.testing.assert_allclose([r["lr"] for r in records], expected, rtol=1e-12)


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed")
def test_lora_on_a_container_module_is_one_line_naming_its_type():
    """peft's refusal holds the module's repr (14 lines for a BERT attention block), which the error carried."""
    for targets, named in ((["encoder"], "'encoder' names TransformerEncoder"),
                           (["linear1", "norm1"], "'norm1' names LayerNorm")):  # linear1 is adaptable: not named
        with pytest.raises(ConfigError) as caught:
            apply_lora(_text(), rank=2, target_modules=targets)
        message = str(caught.value)
        assert "\n" not in message, message
        assert message == (f"strategy.finetune.lora.target_modules={targets}: peft cannot adapt every module they "
                           f"name ({named}); the backbone's Linear/Conv layers end in: linear1, linear2")


def test_the_lora_functions_still_import_from_finetune_where_scripts_took_them():
    """A message of trainlab's once told users to write ``from trainlab.finetune import apply_lora``."""
    import trainlab.lora
    from trainlab.finetune import apply_lora as from_finetune
    from trainlab.finetune import merge_lora as merged

    assert from_finetune is trainlab.lora.apply_lora and merged is trainlab.lora.merge_lora
    with pytest.raises(AttributeError, match="has no attribute 'apply_loraa'"):
        trainlab.finetune.apply_loraa  # noqa: B018
