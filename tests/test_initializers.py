"""Initializers: dirac identity, patch whitening as a strategy component, composition, errors."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.resume_from_checkpoints import resume_a_copy
from tests.test_patch_whitening import correlated_images, numpy_whitening
from trainlab.builders import build_model_for
from trainlab.config import validate
from trainlab.data.dataset import Dataset, Split
from trainlab.data.transforms import image_transforms
from trainlab.errors import ConfigError
from trainlab.initializers import build_initializers, images_needed, initialize
from trainlab.losses import build_loss
from trainlab.models import build_model

# ---------------------------------------------------------------------------
# dirac
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("conv, x", [
    (nn.Conv2d(4, 6, 3, padding="same"), torch.randn(2, 4, 7, 7)),  # out > in: 4 identity filters
    (nn.Conv2d(6, 4, 3, padding="same"), torch.randn(2, 6, 7, 7)),  # out < in: 4 identity filters
    (nn.Conv1d(3, 5, 5, padding="same"), torch.randn(2, 3, 11)),
    (nn.Conv2d(4, 8, 3, padding="same", groups=2), torch.randn(2, 4, 7, 7)),  # per group: 2 of 4 filters
])
def test_dirac_makes_the_first_filters_the_identity_and_keeps_the_rest(conv, x):
    before = conv.weight.detach().clone()
    initialize(nn.Sequential(conv), "dirac")
    out = F.conv2d if conv.weight.ndim == 4 else F.conv1d
    y = out(x, conv.weight, padding="same", groups=conv.groups)  # without the bias
    out_g, in_g = conv.out_channels // conv.groups, conv.in_channels // conv.groups
    identity = min(out_g, in_g)
    for group in range(conv.groups):
        filters = slice(group * out_g, group * out_g + identity)
        channels = slice(group * in_g, group * in_g + identity)
        torch.testing.assert_close(y[:, filters], x[:, channels])  # conv(x) reproduces x there
        rest = slice(group * out_g + identity, (group + 1) * out_g)
        assert torch.equal(conv.weight[rest], before[rest])  # the other filters keep their init


def test_a_list_composes_in_order_kaiming_then_dirac():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 25, 2))
    torch.manual_seed(0)
    initialize(model, "kaiming_normal")
    kaiming = model[0].weight.detach().clone()
    torch.manual_seed(0)
    initialize(model, ["kaiming_normal", {"name": "dirac"}])
    assert torch.equal(model[0].weight[3:], kaiming[3:])  # He-init filters beyond the identity
    assert torch.equal(model[0].weight[:3], nn.init.dirac_(torch.empty(3, 3, 3, 3)))
    assert not model[0].bias.any() and not model[3].bias.any()  # the weight fill zeroes biases
    # the other order: the fill overwrites the identity
    initialize(model, ["dirac", "kaiming_normal"])
    assert not torch.equal(model[0].weight[:3], nn.init.dirac_(torch.empty(3, 3, 3, 3)))


# ---------------------------------------------------------------------------
# patch_whitening as an initializer of any model with a first Conv2d
# ---------------------------------------------------------------------------


def test_patch_whitening_whitens_a_resnet_stem_and_freezes_it():
    x = correlated_images(n=30, size=16)
    images = torch.from_numpy(x).float()
    model = build_model({"name": "resnet", "depth": 8, "widths": [27, 32, 64]}, (3, 16, 16), 10)  # 3x3 stem: d = 27
    initialize(model, {"name": "patch_whitening", "eps": 5e-4, "images": 20}, images=images)
    stem = model.backbone.stem.conv
    _, _, expected = numpy_whitening(x[:20], 3, 5e-4)  # only the first `images` inputs
    got = stem.weight.detach().double().reshape(27, 27).numpy()
    signs = np.sign(np.sum(got * expected, axis=1))
    np.testing.assert_allclose(got * signs[:, None], expected, rtol=2e-4, atol=1e-5)
    assert not stem.weight.requires_grad
    assert all(p.requires_grad for name, p in model.named_parameters() if name != "backbone.stem.conv.weight")


def test_patch_whitening_options_layer_and_freeze_false():
    model = nn.Sequential(OrderedDict(stem=nn.Conv2d(8, 8, 3), whiten=nn.Conv2d(8, 64, 2)))
    images = torch.randn(16, 8, 8, 8)
    with pytest.raises(ConfigError, match="'stem' has 8 output channels.*needs 72"):
        initialize(model, "patch_whitening", images=images)  # default: the first Conv2d
    with pytest.raises(ConfigError, match="no Conv2d named 'whitn'; did you mean 'whiten'"):
        initialize(model, {"name": "patch_whitening", "layer": "whitn"}, images=images)
    before = model.stem.weight.detach().clone()
    initialize(model, {"name": "patch_whitening", "layer": "whiten", "freeze": False}, images=images)
    assert model.whiten.weight.requires_grad and torch.equal(model.stem.weight, before)
    with torch.no_grad():  # whiten's patches are those it receives: the stem's responses to the images
        second = F.conv2d(model.stem(images), model.whiten.weight[:32]).permute(0, 2, 3, 1).reshape(-1, 32).double()
    assert torch.diagonal(second.T @ second / len(second)).min() > 0.9  # whitened: ~unit second moment


@pytest.mark.parametrize("spec, message", [
    ({"name": "patch_whitening", "eps": 0}, "eps must be a number > 0"),
    ({"name": "patch_whitening", "images": 0}, "images must be a positive integer"),
    ({"name": "patch_whitening", "freeze": "yes"}, "option .freeze. must be true or false; got .yes."),
    ({"name": "patch_whitening", "epsilon": 1e-3}, "no option 'epsilon'; did you mean 'eps'"),
    ({"name": "patch_whitenin"}, "did you mean 'patch_whitening'"),
    ({"name": "normal", "std": -1}, "initializer 'normal': std must be >= 0; got std=-1"),  # torch failed in apply
    ({"name": "uniform", "low": 1, "high": 0}, "low must be <= high; got low=1, high=0"),
    ({"name": "kaiming_uniform", "mode": "fan_middle"}, "option 'mode' must be one of 'fan_in', 'fan_out'"),
    ({"name": "kaiming_normal", "nonlinearity": "swish"}, "option 'nonlinearity' must be one of 'relu', "),
    ({"name": "constant", "value": "x"}, "option 'value' must be a number; got 'x'"),
])
def test_bad_specs_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_initializers(spec)
    assert "\n" not in str(info.value)


def test_patch_whitening_needs_a_conv_and_images():
    with pytest.raises(ConfigError, match=r"needs a model with a Conv2d layer; model 'Linear' has none"):
        initialize(nn.Linear(3, 2), "patch_whitening", images=torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="needs training images"):
        initialize(nn.Conv2d(3, 24, 2), "patch_whitening")


def test_eps_written_as_yaml_1_1_reads_it_without_a_dot():
    assert build_initializers({"name": "patch_whitening", "eps": "5e-4"})[0].eps == 5e-4  # YAML's '5e-4' is a str
    with pytest.raises(ConfigError, match="option 'eps' must be a number; got 'small'"):
        build_initializers({"name": "patch_whitening", "eps": "small"})
    with pytest.raises(ConfigError, match="eps must be a number > 0; got eps=-0.001"):
        build_initializers({"name": "patch_whitening", "eps": "-1e-3"})


def test_images_needed_is_the_most_any_initializer_reads():
    assert images_needed(build_initializers(["kaiming_normal", "dirac"])) == 0
    assert images_needed(build_initializers([{"name": "patch_whitening", "images": 300}, "dirac"])) == 300


# ---------------------------------------------------------------------------
# Through the config and the builder: the first training images, normalised as the model sees them
# ---------------------------------------------------------------------------


def _image_dataset(n: int = 24, size: int = 12) -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)
    raw[:, 1] = raw[:, 0] // 2 + raw[:, 1] // 2  # correlated channels
    x, y = torch.from_numpy(raw), torch.from_numpy(rng.integers(0, 3, size=n))
    _, normalize = image_transforms(raw, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3), augment=False)
    split = Split(x, y)
    data = Dataset(split, split, split, "multiclass", num_classes=3, train_transform=normalize, eval_transform=normalize)
    return data, raw


def _config(init):
    return validate({"data": {"source": "digits"}, "model": {"name": "airbench", "widths": [8, 8, 8]},
                     "strategy": {"loss": "cross_entropy", "optimizer": "sgd", "epochs": 1, "init": init}})


def test_builder_whitens_airbench_from_a_seeded_sample_of_normalised_training_images():
    data, raw = _image_dataset()
    config = _config([{"name": "patch_whitening", "images": 16}])
    model = build_model_for(config, data, build_loss("cross_entropy"))
    mean, std = np.array([0.5, 0.4, 0.3])[:, None, None], np.array([0.25, 0.2, 0.3])[:, None, None]
    rows = torch.randperm(len(raw), generator=torch.Generator().manual_seed(config.seed))[:16].numpy()  # documented rule
    assert sorted(rows) != list(range(16))
    normalised = (raw[rows].astype(np.float64) / 255 - mean) / std
    _, _, expected = numpy_whitening(normalised, 2, 5e-4)
    weight = model.whiten_conv.weight.detach().double().reshape(24, 12).numpy()
    signs = np.sign(np.sum(weight[:12] * expected, axis=1))
    np.testing.assert_allclose(weight[:12] * signs[:, None], expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(weight[12:], -weight[:12])
    assert not model.whiten_conv.weight.requires_grad


def test_airbench_without_whitening_keeps_a_trainable_random_stem():
    data, _ = _image_dataset()
    model = build_model_for(_config(None), data, build_loss("cross_entropy"))
    assert model.whiten_conv.weight.requires_grad
    assert _config("dirac").strategy.init.name == "dirac"
    assert [one.name for one in _config(["dirac", {"name": "patch_whitening"}]).strategy.init] == [
        "dirac", "patch_whitening"]


def test_whitened_run_resumed_from_a_checkpoint_is_bit_identical(tmp_path):
    """The whitening is recomputed on resume and the weight stays frozen: resume == uninterrupted."""

    import yaml
    from PIL import Image

    from trainlab.cli import main

    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 12)):
        for label in range(3):
            folder = tmp_path / "images" / split / f"c{label}"
            folder.mkdir(parents=True)
            for index in range(n // 3):
                pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                pixels[..., label] //= 2
                Image.fromarray(pixels).save(folder / f"{index}.png")
    config = {
        "name": "whitened", "seed": 0,
        "data": {"source": "image_folder", "path": str(tmp_path / "images"), "val_fraction": 0.25},
        "model": {"name": "airbench", "widths": [8, 8, 8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                     "batch_size": 8, "epochs": 2, "init": ["dirac", {"name": "patch_whitening", "images": 20}]},
        "output": {"progress": "off", "checkpoint": {"every_n_steps": 3, "every_seconds": None,
                                                     "keep_last": 100, "keep_after_finish": "all"}},
        "runtime": {"num_threads": 1},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    full = tmp_path / "full"
    assert main(["train", str(path), "--out", str(full), "--quiet"]) == 0
    middle = next(f for f in (full / "checkpoint").glob("step-*") if int(f.name.split("-")[1]) == 6)
    resumed = resume_a_copy(full, middle, tmp_path)
    assert (resumed / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()
    from safetensors.torch import load_file

    final = load_file(full / "model.safetensors")
    at_step_3 = load_file(full / "checkpoint" / "step-000000003" / "tensors.safetensors")
    assert torch.equal(final["backbone.whiten.weight"], at_step_3["parts.step.model.backbone.whiten.weight"])  # frozen
    assert not torch.equal(final["backbone.whiten.bias"], at_step_3["parts.step.model.backbone.whiten.bias"])  # trained
