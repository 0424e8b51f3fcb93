"""Per-batch image transforms against per-sample references (F.pad + slicing, torch.flip, NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainlab.data.augment import (
    AlternatingFlip,
    CropAndFlip,
    RandomCrop,
    RandomFlip,
    crop_at,
    crop_flip_axes,
    flip_where,
    gather_pixels,
)
from trainlab.data.dataset import BatchRows
from trainlab.data.transforms import Compose, Normalize, channel_stats, image_transforms
from trainlab.errors import ConfigError


def images(n: int = 6, c: int = 3, h: int = 5, w: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8))


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("shape", [(10, 3, 4, 5), (10, 12), (10, 6, 6), (10, 1, 3, 3)])
def test_channel_stats_match_numpy(shape):
    x = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    scaled = x.astype(np.float64) / 255.0
    axes = (0, 2, 3) if x.ndim == 4 else None
    mean, std = channel_stats(x, chunk_values=7)  # chunks of 7 values: they end inside images
    np.testing.assert_allclose(mean, np.atleast_1d(scaled.mean(axis=axes)), rtol=1e-12)
    np.testing.assert_allclose(std, np.atleast_1d(scaled.std(axis=axes)), rtol=1e-10)


def test_channel_stats_rejects_float():
    with pytest.raises(ValueError, match="uint8"):
        channel_stats(np.zeros((2, 3), dtype=np.float32))


# ----------------------------------------------------------------------------- normalize


def test_normalize_per_channel_matches_formula():
    x = images()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    out = Normalize(mean, std)(x, None)
    expected = (x.numpy() / 255.0 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_normalize_single_value_on_flat_features():
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (4, 20), dtype=np.uint8))
    out = Normalize((0.1307,), (0.3081,))(x, None)
    np.testing.assert_allclose(out.numpy(), (x.numpy() / 255.0 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


def test_normalize_makes_its_constants_once_per_device(monkeypatch):
    """Building the per-channel constants per batch copied two tensors to a GPU each batch (each copy from
    pageable memory synchronises the stream); they are made on a device's first batch and reused."""
    normalize = Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    first = normalize(images(), None)
    made = []
    real_tensor = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *args, **kwargs: made.append(args) or real_tensor(*args, **kwargs))
    again = normalize(images(), None)
    assert made == [] and torch.equal(first, again)
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])
    np.testing.assert_allclose(normalize(images(n=2, h=1, w=1), None).numpy().reshape(2, 3),
                               (images(n=2, h=1, w=1).numpy().reshape(2, 3) / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_normalize_constants_made_under_inference_mode_still_serve_training():
    """predict runs the eval transform under inference mode; constants made there were inference tensors, and a
    later training batch through the same transform died ("Inference tensors cannot be saved for backward")."""
    normalize = Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    with torch.inference_mode():
        normalize(images(), None)
    x = images().float().requires_grad_(True)
    normalize(x, None).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(1 / (255 * np.array([0.2, 0.25, 0.3])).reshape(1, 3, 1, 1),
                               x.shape), rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: on a CPU no copy synchronises anything")
def test_an_augmented_batch_on_a_gpu_queues_without_synchronising():
    """crop offsets and flip masks are drawn on the CPU; moving them, and the normalising constants, to the GPU
    must not wait for the queued kernels (torch's sync debug mode 'error' raises on any synchronising call)."""
    device = torch.device("cuda")
    x = images(n=16, h=8, w=8).to(device)
    normalize = Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    for transform in (Compose((RandomCrop(2), RandomFlip(), normalize)),
                      Compose((CropAndFlip(RandomCrop(2), RandomFlip()), normalize))):
        generator = torch.Generator().manual_seed(0)
        transform(x, generator)  # the first batch makes the constants and the table (a synchronising copy, once)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = transform(x, generator)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert out.device.type == "cuda" and out.shape == x.shape


def test_a_crop_makes_its_tables_once_per_size_and_device(monkeypatch):
    """A plain RandomCrop made its tables, and copied them to the images' device, at every batch: on a GPU a
    synchronising copy each batch (the GPU test above); they are made once per size, padding and device."""
    import trainlab.data.augment as augment

    made = []
    real = augment.crop_flip_axes
    monkeypatch.setattr(augment, "crop_flip_axes", lambda *args: made.append(args) or real(*args))
    augment.axes_on.cache_clear()
    generator = torch.Generator().manual_seed(0)
    for transform in (RandomCrop(2), RandomCrop(2), CropAndFlip(RandomCrop(2), RandomFlip())):
        for _ in range(3):
            transform(images(n=4, h=8, w=8), generator)
    RandomCrop(1)(images(n=4, h=8, w=8), generator)
    assert made == [(8, 8, 2, "reflect"), (8, 8, 1, "reflect")]


def test_normalize_validates():
    with pytest.raises(ConfigError, match="std must be > 0"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(ConfigError, match="same non-zero length"):
        Normalize((0.5, 0.5), (0.2,))
    with pytest.raises(ConfigError, match="3 channel statistics"):
        Normalize((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), None)


# ----------------------------------------------------------------------------- crop and flip


def reference_crop(x: torch.Tensor, offsets: torch.Tensor, padding: int, mode: str) -> torch.Tensor:
    """Per-sample loop: pad (as float, F.pad's reflect needs it) and slice."""
    torch_mode = "reflect" if mode == "reflect" else "constant"
    out = torch.empty_like(x)
    h, w = x.shape[2:]
    for n in range(len(x)):
        padded = F.pad(x[n:n + 1].double(), [padding] * 4, mode=torch_mode)
        dy, dx = int(offsets[n, 0]), int(offsets[n, 1])
        out[n] = padded[0, :, dy:dy + h, dx:dx + w].to(x.dtype)
    return out


@pytest.mark.parametrize("mode", ["reflect", "zero"])
@pytest.mark.parametrize("padding", [1, 3])
def test_crop_at_matches_pad_and_slice_for_every_offset(mode, padding):
    side = 2 * padding + 1
    grid = torch.tensor([(dy, dx) for dy in range(side) for dx in range(side)])
    x = images(n=len(grid), h=5, w=7)  # non-square: a row/column mix-up would show
    np.testing.assert_array_equal(crop_at(x, grid, padding, mode).numpy(), reference_crop(x, grid, padding, mode).numpy())


def test_crop_at_centre_offset_is_identity():
    x = images()
    offsets = torch.full((len(x), 2), 4)
    assert torch.equal(crop_at(x, offsets, 4, "zero"), x)


def test_random_crop_draws_offsets_from_the_generator():
    x = images(n=32, h=8, w=8)
    out = RandomCrop(2, "reflect")(x, torch.Generator().manual_seed(7))
    offsets = torch.randint(0, 5, (32, 2), generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, reference_crop(x, offsets, 2, "reflect"))
    again = RandomCrop(2, "reflect")(x, torch.Generator().manual_seed(7))
    other = RandomCrop(2, "reflect")(x, torch.Generator().manual_seed(8))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_random_crop_validates():
    with pytest.raises(ConfigError, match="pad_mode"):
        RandomCrop(4, "wrap")
    with pytest.raises(ConfigError, match="crop_padding"):
        RandomCrop(-1)
    with pytest.raises(ConfigError, match="smaller than the image size"):
        RandomCrop(4, "reflect")(images(h=4, w=4), None)
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
        RandomCrop(1)(torch.zeros(2, 9, dtype=torch.uint8), None)


@pytest.mark.parametrize("mode", ["reflect", "zero"])
@pytest.mark.parametrize("padding", [0, 2])
def test_crop_flip_axes_tables_give_the_padded_slice_and_its_mirror(mode, padding):
    """Row dy of the row table with row dx (plain) or S + dx (mirrored) of the column table: F.pad + slicing,
    then torch.flip of the last axis, for every offset."""
    x = images(n=1, h=5, w=6)
    side = 2 * padding + 1
    rows, cols, stride = crop_flip_axes(5, 6, padding, mode)
    assert rows.shape == (side, 5) and cols.shape == (2 * side, 6) and stride == (7 if mode == "zero" else 6)
    for dy in range(side):
        for dx in range(side):
            expected = reference_crop(x, torch.tensor([[dy, dx]]), padding, mode)
            for col, want in ((dx, expected), (side + dx, expected.flip(-1))):
                got = gather_pixels(x, rows[dy:dy + 1], cols[col:col + 1], stride)
                assert torch.equal(got, want), (dy, dx, col)


def _sequential(crop, flip, x, generator, rows=None):
    out = x if crop is None else crop(x, generator)
    if flip is None:
        return out
    return flip(out, generator, rows) if isinstance(flip, AlternatingFlip) else flip(out, generator)


@pytest.mark.parametrize("crop", [None, RandomCrop(1, "reflect"), RandomCrop(3, "zero"), RandomCrop(2, "reflect")])
@pytest.mark.parametrize("flip", [None, RandomFlip(0.5), RandomFlip(1.0), "alternating"])
def test_crop_and_flip_is_the_crop_then_the_flip_with_the_same_draws(crop, flip):
    if crop is None and flip is None:
        with pytest.raises(ValueError, match="a crop, a flip or both"):
            CropAndFlip(None, None)
        return
    flip = AlternatingFlip() if flip == "alternating" else flip
    x = images(n=12, h=7, w=9, seed=4)
    fused = CropAndFlip(crop, flip)
    assert fused.takes_rows == (flip is not None and isinstance(flip, AlternatingFlip))
    for epoch in (0, 1):
        rows = BatchRows(torch.tensor([3, 0, 7, 11, 2, 5, 9, 1, 4, 6, 8, 10]), epoch, seed=5, n=12)
        ours, theirs = torch.Generator().manual_seed(epoch), torch.Generator().manual_seed(epoch)
        got = fused(x, ours, rows) if fused.takes_rows else fused(x, ours)
        assert torch.equal(got, _sequential(crop, flip, x, theirs, rows)), epoch
        assert torch.equal(torch.rand(3, generator=ours), torch.rand(3, generator=theirs))  # as many draws


def test_crop_and_flip_refuses_what_the_crop_refuses():
    with pytest.raises(ConfigError, match="reflect padding 4 must be smaller"):
        CropAndFlip(RandomCrop(4, "reflect"), RandomFlip())(images(h=4, w=4), None)
    with pytest.raises(ConfigError, match=r"shaped \(N, C, H, W\)"):
        CropAndFlip(None, RandomFlip())(torch.zeros(2, 9, dtype=torch.uint8), None)


def _torch_calls(function, whole: int | None = None) -> int:
    """The torch functions and tensor methods ``function`` calls (each an op the host dispatches), attribute
    reads aside; with ``whole``, only those whose result holds at least ``whole`` elements and is not a view of
    its input (a pass over every pixel of the batch)."""
    from torch.overrides import TorchFunctionMode

    class Count(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            if getattr(func, "__name__", "") in ("__get__", "__set__", "size", "dim", "numel", "__len__"):
                return result
            if whole is None:
                Count.calls += 1
            elif isinstance(result, torch.Tensor) and result.numel() >= whole and result._base is None:
                Count.calls += 1
            return result

    with Count():
        function()
    return Count.calls


@pytest.mark.parametrize("flip", [RandomFlip(), "alternating"])
def test_crop_and_flip_dispatches_fewer_ops_than_the_crop_then_the_flip(flip):
    """Why it exists: on a GPU the speedrun's step is bound by the host dispatching kernels, and each pass over
    the batch's pixels is a kernel over all of them. Fewer ops than the crop then the flip (17 vs 19 torch
    calls here, once the plain crop's tables were made once too), and one pass over the pixels (the gather)
    where the two make three (the crop's gather, the flip's flip and where)."""
    flip = AlternatingFlip() if flip == "alternating" else flip
    x, crop, rows = images(n=64, h=8, w=8), RandomCrop(2), BatchRows(torch.arange(64), 1, seed=0, n=64)
    fused = CropAndFlip(crop, flip)
    fused(x, torch.Generator().manual_seed(0), rows)  # its tables, made once
    fused_calls = _torch_calls(lambda: fused(x, torch.Generator().manual_seed(0), rows))
    sequential_calls = _torch_calls(lambda: _sequential(crop, flip, x, torch.Generator().manual_seed(0), rows))
    assert fused_calls < sequential_calls, (fused_calls, sequential_calls)
    fused_passes = _torch_calls(lambda: fused(x, torch.Generator().manual_seed(0), rows), whole=x.numel())
    sequential_passes = _torch_calls(lambda: _sequential(crop, flip, x, torch.Generator().manual_seed(0), rows),
                                     whole=x.numel())
    assert (fused_passes, sequential_passes) == (1, 3)


def test_flip_where_mirrors_only_masked_samples():
    x = images(n=4)
    mask = torch.tensor([True, False, False, True])
    out = flip_where(x, mask)
    for n in range(4):
        assert torch.equal(out[n], torch.flip(x[n], dims=[-1]) if mask[n] else x[n])


def test_random_flip_uses_generator_and_probability():
    x = images(n=2000, c=1, h=1, w=2)
    out = RandomFlip(0.5)(x, torch.Generator().manual_seed(3))
    mask = torch.rand(2000, generator=torch.Generator().manual_seed(3)) < 0.5
    assert torch.equal(out, flip_where(x, mask))
    assert 900 < int(mask.sum()) < 1100
    assert torch.equal(RandomFlip(0.0)(x, None), x)
    assert torch.equal(RandomFlip(1.0)(x, None), x.flip(-1))


# ----------------------------------------------------------------------------- building


def test_image_transforms_fit_statistics_and_compose():
    x = images(n=20, h=8, w=8).numpy()
    train, evaluate = image_transforms(x, augment=True)
    mean, std = channel_stats(x)
    assert evaluate == Normalize(mean, std)
    assert isinstance(train, Compose)
    assert train.steps == (CropAndFlip(RandomCrop(4, "reflect"), RandomFlip(0.5)), evaluate)
    batch = torch.from_numpy(x)
    out = train(batch, torch.Generator().manual_seed(0))
    # the same steps by hand with the same generator
    g = torch.Generator().manual_seed(0)
    expected = evaluate(RandomFlip(0.5)(RandomCrop(4)(batch, g), g), g)
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    normalized = evaluate(batch, None)
    np.testing.assert_allclose(normalized.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized.std(dim=(0, 2, 3), unbiased=False).numpy(), 1.0, atol=1e-5)


def test_image_transforms_options():
    x = images(n=4, h=8, w=8).numpy()
    train, evaluate = image_transforms(x, mean=0.5, std=[0.1, 0.2, 0.3])
    assert train is evaluate and evaluate == Normalize((0.5, 0.5, 0.5), (0.1, 0.2, 0.3))
    train, _ = image_transforms(x, mean=0.5, std=0.5, augment={"crop_padding": 2, "pad_mode": "zero", "hflip": False})
    assert train.steps[0] == CropAndFlip(RandomCrop(2, "zero"), None) and len(train.steps) == 2
    train, _ = image_transforms(x, mean=0.5, std=0.5, augment={"crop_padding": 0, "hflip": True})
    assert train.steps[0] == CropAndFlip(None, RandomFlip(0.5))
    train, evaluate = image_transforms(x, mean=0.5, std=0.5, augment={"crop_padding": 0, "hflip": False})
    assert train is evaluate
    with pytest.raises(ConfigError, match="unknown data.augment key 'rotate'"):
        image_transforms(x, augment={"rotate": 10})
    with pytest.raises(ConfigError, match="list of 3 numbers"):
        image_transforms(x, mean=[0.1, 0.2], std=0.5)
    with pytest.raises(ConfigError, match="flatten"):
        image_transforms(x.reshape(4, -1), augment=True)
    with pytest.raises(ConfigError, match="pad_mode: zero"):
        image_transforms(images(n=2, h=3, w=3).numpy(), augment=True)


@pytest.mark.parametrize("mean, std, message", [
    (120, 60, "data.mean must be in [0, 1]: statistics are in [0, 1] units, of the pixels scaled by 1/255; got 120 "
              "(0-255 units? divided by 255: mean: 0.4706)"),
    ([125.3, 123.0, 113.9], [63.0, 62.1, 66.7], "divided by 255: mean: [0.4914, 0.4824, 0.4467])"),  # CIFAR's
    (-0.1, 0.2, "data.mean must be in [0, 1]"),
    (0.5, 60, "data.std must be at most 1: statistics are in [0, 1] units, of the pixels scaled by 1/255; got 60 "
              "(0-255 units? divided by 255: std: 0.2353)"),
])
def test_image_statistics_in_pixel_units_are_refused_with_the_scaled_values(mean, std, message):
    """mean 120 / std 60 trained at chance: every input was about -2 whatever the image."""
    x = images(n=4, h=8, w=8).numpy()
    with pytest.raises(ConfigError) as info:
        image_transforms(x, mean=mean, std=std)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_zero_std_names_the_config_key_and_the_channel():
    x = images(n=4, h=8, w=8).numpy()
    with pytest.raises(ConfigError) as info:
        image_transforms(x, mean=[0.5, 0.5, 0.5], std=[0.2, 0, 0.2])
    assert str(info.value) == ("data.std must be > 0 per channel (each channel is divided by its std); got "
                               "std=[0.2, 0, 0.2] (channel 1 is 0): give every channel a positive std, or null to "
                               "compute it from the training images")
    with pytest.raises(ConfigError, match=r"^data.std must be > 0 per channel .* got std=-0.1 \(channel 0 is -0.1\)"):
        image_transforms(x, std=-0.1)


def test_image_statistics_at_the_edges_of_their_units_are_taken():
    x = images(n=4, h=8, w=8).numpy()
    assert image_transforms(x, mean=[0.0, 1.0, 0.5], std=1.0)[1] == Normalize((0.0, 1.0, 0.5), (1.0, 1.0, 1.0))


def test_a_crop_padding_large_for_the_images_is_warned_of(capsys):
    image_transforms(images(n=2, h=32, w=32).numpy(), augment=True)  # CIFAR's 4 px on 32: no word
    assert capsys.readouterr().err == ""
    image_transforms(images(n=2, h=8, w=8).numpy(), augment=True)  # the CIFAR recipe on 8x8 digits
    assert ("warning: data.augment.crop_padding=4 shifts 8x8 images by up to 4 px (50% of a side"
            in capsys.readouterr().err)


def test_the_crop_padding_warning_is_training_s_alone_not_repeated_when_a_trained_run_is_rebuilt(tmp_path, capsys):
    """``trainlab eval`` / ``predict`` rebuild the run (``build(..., training=False)``) and train nothing: the
    augmentation's warning, said when the run trained, is not said again (a user trial saw it on eval)."""
    from PIL import Image

    from trainlab.builders import build, run_scope
    from trainlab.config import validate

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    config = validate({"name": "pics", "seed": 0, "model": {"name": "mlp", "hidden": [4]},
                       "data": {"source": "image_folder", "path": str(tmp_path), "val_fraction": 0.25,
                                "test_fraction": 0.25, "augment": {"crop_padding": 4, "pad_mode": "zero"}},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1,
                                    "batch_size": 2}})
    shifted = "data.augment.crop_padding=4 shifts 8x8 images by up to 4 px"
    with run_scope(config):
        build(config, quiet=True, training=False)
        assert shifted not in capsys.readouterr().err
        build(config, quiet=True)
        assert shifted in capsys.readouterr().err


def test_a_given_mean_far_from_the_images_own_is_warned_of(capsys):
    """A recipe's CIFAR-10 constants on digits on black (mean 0.06, not 0.49): every input sat 1.7 std below 0,
    without a word; the images' own statistics (null) were the fix. A spread of one's choice is no misfit."""
    from trainlab.data.transforms import image_transforms

    cifar = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}
    digits = np.zeros((100, 3, 8, 8), np.uint8)
    digits[:, :, 3:5, 3:5] = 255  # mean 4/64 = 0.0625
    for std in (cifar["std"], None):  # given, or the images' own: the mean is judged either way
        image_transforms(digits, mean=cifar["mean"], std=std)
        (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
        sigma = 0.2470 if std else (0.0625 - 0.0625 ** 2) ** 0.5
        assert line == ("warning: data.mean does not fit these training images (their own mean: [0.0625, 0.0625, "
                        f"0.0625]): normalised, channel 0 is centred {(0.0625 - 0.4914) / sigma:.2f} std from 0; set "
                        "data.mean (and data.std) to null to use the images' own")
    uniform = np.random.default_rng(0).integers(0, 256, (100, 3, 8, 8), dtype=np.uint8)  # CIFAR-like spread
    image_transforms(uniform, **cifar)
    image_transforms(uniform, mean=0.5, std=0.5)  # the PyTorch tutorial's: std 0.29 / 0.5, no misfit
    image_transforms(uniform, mean=0.0, std=1.0)
    image_transforms(digits)  # their own: nothing to say
    assert "warning:" not in capsys.readouterr().err
