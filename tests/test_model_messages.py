"""The zoo models' messages: airbench's scaling_factor read as every number option reads numbers, errors that
name the model as the config named it (not its Python class), a too-small-images refusal whose fixes work,
option errors with the ``model '<name>':`` prefix, and docs that say what ``cifar_tutorial_cnn`` is."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.code_policy import code_policy
from trainlab.config import load_config
from trainlab.data.dataset import Dataset, Split
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.models import build_model, count_parameters
from trainlab.run_checks import check_loss_fits

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
SCALING_WORDS = "scaling_factor must be a number > 0 within float32's range (e.g. 0.111 or '1/9' for 1/9) or '1/width' (1 / widths[-1])"


def _data(x: torch.Tensor, tokenizer: str | None = None) -> Dataset:
    """A 3-class dataset of ``x`` (labels 0, 1, 2 cycling), no val or test rows."""
    y = torch.arange(len(x)) % 3
    empty = Split(x[:0], y[:0])
    return Dataset(Split(x, y), empty, empty, "multiclass", num_classes=3,
                   extras={"tokenizer": tokenizer} if tokenizer else {})


def _refusal(model: nn.Module, data: Dataset) -> str:
    with pytest.raises(DataError) as raised:
        check_loss_fits(build_loss("cross_entropy"), model, data, CPU)
    return str(raised.value)


# --------------------------------------------------------------------------- 1. airbench's scaling_factor


def _airbench_config(tmp_path: Path, scaling: str, overrides: tuple[str, ...] = ()) -> dict:
    """The model spec of a config whose YAML text sets ``scaling_factor: <scaling>`` (read as a config is)."""
    path = tmp_path / "ab.yaml"
    path.write_text("name: ab\ndata: {source: digits}\n"
                    f"model: {{name: airbench, widths: [8, 8, 16], scaling_factor: {scaling}}}\n"
                    "strategy: {loss: cross_entropy, optimizer: {name: sgd, lr: 0.01}, epochs: 1}\n")
    return load_config(path, list(overrides)).model.spec()


@pytest.mark.parametrize("written, value", [("1e-1", 0.1), ("1/9", 1 / 9), ("'1/9'", 1 / 9), ("2.5e-2", 0.025),
                                            ("0.5", 0.5), ("1/width", 1 / 16), ("3/4.0e1", 0.075)])
def test_scaling_factor_text_is_read_as_the_number(tmp_path, written, value):
    spec = _airbench_config(tmp_path, written)
    model = build_model(spec, (3, 16, 16), 10).eval()
    assert model.scaling_factor == pytest.approx(value, rel=1e-12)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.head(model.backbone(x)) * value)


def test_scaling_factor_set_on_the_command_line_as_a_fraction(tmp_path):
    spec = _airbench_config(tmp_path, "0.5", ("model.scaling_factor=1/9",))
    assert build_model(spec, (3, 16, 16), 10).scaling_factor == pytest.approx(1 / 9, rel=1e-12)


@pytest.mark.parametrize("bad", ["abc", "1/0", "-1/9", "1/9/3", "1/nan", "inf", 0, -0.5, "", "/9",
                                 "1e308/1e-308", "1e-300/1e300", 1e300, 1e-50])  # inf and 0 in float32
def test_a_bad_scaling_factor_says_numbers_are_valid(bad):
    with pytest.raises(ConfigError) as raised:
        build_model({"name": "airbench", "widths": [8, 8, 16], "scaling_factor": bad}, (3, 16, 16), 10)
    message = str(raised.value)
    assert message.startswith(f"model 'airbench': {SCALING_WORDS}; got scaling_factor="), message


# --------------------------------------------------------------------------- 2. the model as the config named it


def test_a_tabular_model_on_token_ids_is_named_as_configured():
    model = build_model({"name": "mlp", "hidden": [8]}, (6,), 3)
    assert _refusal(model, _data(torch.randint(1, 20, (16, 6)), tokenizer="word")).startswith(
        "model 'mlp' cannot take the token ids of text data (int64); use a model for text")


def test_a_text_model_is_named_as_configured():
    model = build_model({"name": "transformer_encoder", "vocab_size": 20, "d_model": 8, "heads": 2, "layers": 1},
                        (6,), 3)
    ids = torch.randint(1, 20, (12, 6))
    ids[3, 2] = 25
    assert _refusal(model, _data(ids)).startswith(
        "the training data holds token id 25, but model 'transformer_encoder' has a vocabulary of 20 ids (0..19)")
    assert _refusal(model, _data(torch.randn(12, 6))).startswith("model 'transformer_encoder' takes integer token ids")


def test_hf_pretrained_is_named_as_configured(tiny_bert_dir):
    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 6), 3)
    assert _refusal(model, _data(torch.rand(10, 2, 6))).startswith("model 'hf_pretrained' takes integer token ids")


def test_uint8_images_get_a_plain_sentence_naming_the_model_and_the_fix():
    model = build_model({"name": "cnn2d", "channels": [4]}, (1, 8, 8), 3)
    message = _refusal(model, _data(torch.randint(0, 17, (12, 1, 8, 8), dtype=torch.uint8)))
    assert message == ("model 'cnn2d' cannot take uint8 inputs: x is uint8, and integer inputs are kept as they are, "
                       "for token-id models; convert x to float32 before saving it (x / 255 for images), or use an "
                       "image source (data.source: image_folder or idx), which scales the pixels itself")
    assert "unsigned char" not in message and "should be the same" not in message


def test_a_users_factory_is_named_by_its_reference_and_a_module_by_its_class(tmp_path, monkeypatch):
    (tmp_path / "mynets_messages.py").write_text(
        "from torch import nn\n\n\ndef make(input_shape, output_dim):\n"
        "    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, output_dim))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with code_policy(allow=True):  # the user's own module, as --allow-code or a config in its folder
            factory_built = build_model({"name": "mynets_messages:make"}, (6,), 3)
    finally:
        sys.modules.pop("mynets_messages", None)
    text = _data(torch.randint(1, 20, (16, 6)), tokenizer="word")
    assert _refusal(factory_built, text).startswith("model 'mynets_messages:make' cannot take the token ids")
    python_built = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))  # trainlab.fit(model=...)
    assert _refusal(python_built, text).startswith("model 'Sequential' cannot take the token ids")


# --------------------------------------------------------------------------- 3. airbench on images too small


def _smallest_side(whiten_kernel: int) -> int:
    """The smallest square side a valid whiten_kernel conv then three 2x2 max-pools keep >= 1 pixel, found by
    running torch's own layers on zeros (not by the model's formula)."""
    for side in range(1, 200):
        x = torch.zeros(1, 1, side, side)
        if side < whiten_kernel:
            continue
        x = F.conv2d(x, torch.zeros(1, 1, whiten_kernel, whiten_kernel))
        try:
            for _ in range(3):
                x = F.max_pool2d(x, 2)
        except RuntimeError:  # "Output size is too small"
            continue
        if min(x.shape[-2:]) >= 1:
            return side
    raise AssertionError("no side found")


@pytest.mark.parametrize("name", ["airbench", "airbench_muon"])
def test_too_small_images_name_fixes_that_work(name):
    need = _smallest_side(40)
    with pytest.raises(ConfigError) as raised:
        build_model({"name": name, "widths": [8, 8, 8], "whiten_kernel": 40}, (3, 32, 32), 10)
    message = str(raised.value)
    largest = int(re.search(r"model\.whiten_kernel <= (\d+)", message).group(1))
    size = int(re.search(r"data\.size: (\d+)", message).group(1))
    assert message == (f"model '{name}': images of 32x32 are too small for whiten_kernel=40 and 3 pooling stages of "
                       f"2 (need >= {need}x{need}: whiten_kernel + 7); use model.whiten_kernel <= {largest} (the "
                       f"largest for 32x32), larger images, or resize them (data.size: {size} for an image_folder)")
    assert size >= need and size != 32  # never the size the images have
    assert _smallest_side(largest) <= 32 < _smallest_side(largest + 1)  # the largest kernel 32x32 images take
    build_model({"name": name, "widths": [8, 8, 8], "whiten_kernel": largest}, (3, 32, 32), 10)
    build_model({"name": name, "widths": [8, 8, 8], "whiten_kernel": 40}, (3, size, size), 10)


def test_tiny_images_are_told_the_cifar_size_and_no_kernel_below_one():
    with pytest.raises(ConfigError) as raised:
        build_model({"name": "airbench"}, (3, 5, 5), 10)
    message = str(raised.value)
    assert "need >= 9x9" in message and "whiten_kernel <=" not in message
    assert message.endswith("(data.size: 32 for an image_folder, the CIFAR size its lrs were tuned on)")


# --------------------------------------------------------------------------- 4. what cifar_tutorial_cnn is

CNN_DOCS = [ROOT / "docs" / "components.md", ROOT / "examples" / "README.md", ROOT / "examples" / "cifar10_cnn_sgd.yaml",
            ROOT / "trainlab" / "models" / "resnet.py"]
PYTORCH_TUTORIAL_NET = 3 * 6 * 25 + 6 + 6 * 16 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10


def test_cifar_tutorial_cnn_is_documented_as_what_it_is():
    model = build_model({"name": "cifar_tutorial_cnn"}, (3, 32, 32), 10)
    by_formula = (3 * 9 * 64 + 64) + (64 * 16 * 16 * 10 + 10)  # the conv, then the 16384 -> 10 head
    assert count_parameters(model)["total"] == by_formula == 165_642
    assert PYTORCH_TUTORIAL_NET == 62_006  # conv 3->6 5x5, conv 6->16 5x5, linear 400->120->84->10
    for path in CNN_DOCS:
        text = path.read_text()
        assert "165,642" in text, path
        # the PyTorch tutorial is named only as what the model is not
        assert not re.search(r"PyTorch (CIFAR-10 )?tutorial's (one-conv|CNN)", text), path
        for mention in re.finditer(r"PyTorch CIFAR-10\s+tutorial", text):
            assert re.search(r"not[\s#]+(the\s+)?$", text[max(0, mention.start() - 40):mention.start()]), path


# --------------------------------------------------------------------------- 5. option errors and layout hints


@pytest.mark.parametrize("spec, shape, start", [
    ({"name": "mlp", "hidden": [0]}, (4,), "model 'mlp': hidden sizes must be whole numbers >= 1"),
    ({"name": "cnn1d", "channels": [0]}, (1, 40), "model 'cnn1d': channels must be a list of positive channel counts"),
    ({"name": "cnn2d", "channels": [8, -1]}, (1, 8, 8), "model 'cnn2d': channels must be a list of positive"),
])
def test_option_errors_name_the_model(spec, shape, start):
    with pytest.raises(ConfigError) as raised:
        build_model(spec, shape, 3)
    assert str(raised.value).startswith(start), str(raised.value)


def test_cnn2d_on_images_without_a_channel_axis_says_how_to_add_one():
    with pytest.raises(DataError) as raised:
        build_model({"name": "cnn2d"}, (8, 8), 3)
    assert str(raised.value) == ("model 'cnn2d' expects inputs shaped (channels, height, width); got (8, 8); for "
                                 "images of one channel save x shaped (N, 1, 8, 8), e.g. x[:, None]")
    x = torch.rand(5, 8, 8)
    model = build_model({"name": "cnn2d"}, tuple(x[:, None].shape[1:]), 3)  # the hint, followed
    assert model(x[:, None]).shape == (5, 3)


def test_integer_inputs_to_a_model_that_fails_otherwise_keep_torchs_reason():
    """A model that casts its integer x itself and then fails on a size: the size is the reason, not the dtype."""
    import trainlab

    class CastsItself(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x.float())

    x, y = torch.randint(0, 5, (40, 5)), torch.randint(0, 3, (40,))
    with pytest.raises(DataError) as raised:
        trainlab.fit(CastsItself(), train=(x, y), strategy={"loss": "cross_entropy", "batch_size": 8, "epochs": 1,
                                                            "optimizer": {"name": "sgd", "lr": 0.1}})
    assert "mat1 and mat2 shapes cannot be multiplied" in str(raised.value), raised.value
    assert "integer inputs are kept" not in str(raised.value)
