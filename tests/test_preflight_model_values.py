"""compare and tune refuse a built-in model's bad option values, and any factory's option types, before any run.

The preflight checked a model's option *names* only: ``model.hidden: 8`` (mlp takes a list of sizes) or
``model.dropout: 1.5`` passed it, and each run of a comparison or trial of a study read its data, then failed
at its model's build (a space ``model.hidden: {low: 8, high: 32}`` failed every trial). Each built-in model's
``check_values`` now refuses, from the config alone, what its build refuses whatever the input's shape; the
refusal is the build's own line.
"""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.models import MODELS, build_model
from trainlab.preflight import check_components

BASE = {"name": "pre", "seed": 0, "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 64,
                     "epochs": 1},
        "metrics": ["accuracy"]}
IMAGE = (3, 32, 32)

# (model spec, an input shape the model takes with its defaults, the line its build and the preflight give)
BAD_VALUES = [
    ({"name": "mlp", "dropout": 1.5}, (4,), "model 'mlp': dropout must be in [0, 1) (0: none); got dropout=1.5"),
    ({"name": "mlp", "hidden": [16, 0]}, (4,),
     "model 'mlp': hidden sizes must be whole numbers >= 1, e.g. [128, 64]; got hidden=[16, 0]"),
    ({"name": "mlp", "hidden": [], "dropout": 0.5}, (4,), "model 'mlp': dropout acts after each hidden layer"),
    ({"name": "cnn2d", "kernel": 0}, IMAGE, "model 'cnn2d': kernel must be a whole number >= 1; got kernel=0"),
    ({"name": "cnn1d", "channels": [8, -1]}, (1, 64), "model 'cnn1d': channels must be a list of positive channel"),
    ({"name": "cnn2d", "dropout": -0.1}, IMAGE, "model 'cnn2d': dropout must be in [0, 1)"),
    ({"name": "resnet", "depth": 21}, IMAGE, "model 'resnet': depth must be 6n+2 with n >= 1"),
    ({"name": "resnet", "widths": [64, 32, 16]}, IMAGE, "model 'resnet': shortcut 'pad' needs non-decreasing widths"),
    ({"name": "airbench", "batchnorm_momentum": 1.0}, IMAGE,
     "model 'airbench': batchnorm_momentum must be in [0, 1); got 1.0"),
    ({"name": "airbench_muon", "head_init": "zeros"}, IMAGE,
     "model 'airbench_muon': head_init must be one of default, unit_std; got head_init='zeros'"),
    ({"name": "airbench", "scaling_factor": 0}, IMAGE, "model 'airbench': scaling_factor must be a number > 0"),
    ({"name": "cifar_tutorial_cnn", "channels": 0}, IMAGE,
     "model 'cifar_tutorial_cnn': channels must be a whole number >= 1; got channels=0"),
    ({"name": "transformer_encoder", "vocab_size": 100, "heads": 3}, (16,),
     "model 'transformer_encoder': d_model must be a positive multiple of heads; got d_model=128, heads=3"),
    ({"name": "transformer_encoder", "vocab_size": 100, "pooling": "max"}, (16,),
     "model 'transformer_encoder': pooling must be one of"),
    ({"name": "transformer_encoder", "vocab_size": 1}, (16,), "model 'transformer_encoder': vocab_size must be >= 2"),
    # a value of a fixed set misspelt gets the did-you-mean a misspelt key gets (user trial: pooling: CLS)
    ({"name": "transformer_encoder", "vocab_size": 100, "pooling": "CLS"}, (16,),
     "model 'transformer_encoder': pooling must be one of mean, cls; got 'CLS'; did you mean 'cls'?"),
]


def _config(model: dict) -> object:
    return validate({**copy.deepcopy(BASE), "model": copy.deepcopy(model)})


@pytest.mark.parametrize(("model", "shape", "line"), BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))])
def test_a_value_every_build_refuses_is_refused_by_the_preflight_with_the_builds_line(model, shape, line):
    with pytest.raises(ConfigError) as built:
        build_model(copy.deepcopy(model), shape, 3)
    with pytest.raises(ConfigError) as checked:
        check_components(_config(model))
    assert str(built.value).startswith(line), str(built.value)
    assert str(checked.value) == str(built.value)


@pytest.mark.parametrize("name", ["mlp", "cnn1d", "cnn2d", "resnet", "airbench", "airbench_muon",
                                  "cifar_tutorial_cnn", "transformer_encoder", "hf_pretrained"])
def test_every_built_in_model_with_value_checks_passes_them_at_its_defaults(name):
    assert callable(MODELS.get(name).check_values)
    check_components(_config({"name": name}))  # no input shape needed: shape rules stay the build's


def test_a_shape_rule_stays_the_builds_the_preflight_does_not_guess_the_input():
    """airbench on 8x8 images is refused by its build (too small for its pooling), not by the preflight, which
    has no images to measure."""
    model = {"name": "airbench", "widths": [8, 8, 8]}
    check_components(_config(model))
    with pytest.raises(ConfigError, match="too small"):
        build_model(model, (3, 8, 8), 10)


@pytest.mark.parametrize(("model", "shape"), [
    ({"name": "mlp"}, (4,)), ({"name": "cnn1d"}, (1, 64)), ({"name": "cnn2d"}, IMAGE), ({"name": "resnet"}, IMAGE),
    ({"name": "airbench"}, IMAGE), ({"name": "airbench_muon"}, IMAGE), ({"name": "cifar_tutorial_cnn"}, IMAGE),
    ({"name": "transformer_encoder", "vocab_size": 100}, (16,)),
])
def test_every_built_in_model_builds_on_the_meta_device(model, shape):
    """build_model counts a model with a large option on the meta device first: airbench's scaling_factor
    check made a tensor there and read it (``Tensor.item() cannot be called on meta tensors``), so an airbench
    of width 2048, or on 512x512 images, stopped with torch's RuntimeError."""
    with torch.device("meta"):
        built = MODELS.build(model, shape, 10)
    assert all(p.is_meta for p in built.parameters())
    assert build_model({**model, "name": model["name"]}, shape, 10) is not None


def test_hf_pretrained_option_values_are_refused_before_any_checkpoint_is_read():
    with pytest.raises(ConfigError, match=r"^model 'hf_pretrained': pooling must be one of .*got 'max'$"):
        check_components(_config({"name": "hf_pretrained", "path": "/no/such/folder", "pooling": "max"}))
    with pytest.raises(ConfigError, match=r"^model 'hf_pretrained': dropout must be in \[0, 1\)"):
        check_components(_config({"name": "hf_pretrained", "path": "/no/such/folder", "dropout": 1.0}))


@pytest.mark.parametrize(("section", "spec", "line"), [
    ("model", {"name": "mlp", "hidden": 8}, "model 'mlp': option 'hidden' must be a list of whole numbers; got 8"),
    ("model", {"name": "cnn2d", "batch_norm": "yes"}, "model 'cnn2d': option 'batch_norm' must be true or false"),
    ("data", {"source": "synthetic_linear", "n": "many"},
     "data source 'synthetic_linear': option 'n' must be a whole number"),
])
def test_an_option_of_the_wrong_type_is_refused_by_the_preflight(section, spec, line):
    with pytest.raises(ConfigError, match=f"^{line.replace('(', '[(]').replace(')', '[)]')}"):
        check_components(validate({**copy.deepcopy(BASE), section: spec}))


@pytest.mark.parametrize(("model", "shape"), [
    ({"name": "mlp", "hidden": [16.0], "dropout": "1e-1"}, (4,)),  # YAML 1.1 leaves 1e-1 as text
    ({"name": "cnn2d", "channels": [8.0, 16.0], "dropout": "1e-1", "kernel": 3.0}, IMAGE),
    ({"name": "airbench", "batchnorm_momentum": "6e-1", "scaling_factor": "1e-1"}, IMAGE),
    ({"name": "transformer_encoder", "vocab_size": 100, "dropout": "1e-1"}, (16,)),
    ({"name": "resnet", "depth": 20.0}, IMAGE),
])
def test_values_the_build_reads_as_numbers_pass_the_preflight_as_they_pass_the_build(model, shape):
    """The build reads '1e-1' as 0.1 and 16.0 as 16 (option_types.numbers_read); the preflight checked them as
    written, refusing (dropout '1e-1') or failing on ('<=' between float and str) configs that train."""
    with torch.device("meta"):
        build_model(copy.deepcopy(model), shape, 3)
    check_components(_config(model))


def test_a_users_model_class_is_not_called_as_its_own_value_check(tmp_path, monkeypatch):
    """A class's attribute ``check_values`` is its own method, no check of the factory's options."""
    (tmp_path / "classmodel.py").write_text(
        "import torch\n\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self, input_shape, output_dim, width: int = 8):\n"
        "        super().__init__()\n        self.layer = torch.nn.Linear(input_shape[0], output_dim)\n\n"
        "    def check_values(self):\n        raise AssertionError('called as the options check')\n\n"
        "    def forward(self, x):\n        return self.layer(x)\n")
    from trainlab.code_policy import code_policy

    monkeypatch.syspath_prepend(str(tmp_path))
    with code_policy(allow=True):
        check_components(_config({"name": "classmodel:Net", "width": 4}))
    sys.modules.pop("classmodel", None)
