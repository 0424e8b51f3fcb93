"""airbench's training augmentations: the alternating flip and the random translate.

References written out here: the flip bits' documented generator, the alternating rule
``flip(i, e) = b_i XOR (e odd)`` checked on what a model actually received through the Trainer,
and airbench's ``batch_crop`` (reflect-pad by r, crop at r + s, s uniform in [-r, r]) in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.data.augment import AlternatingFlip, CropAndFlip, RandomCrop, flip_bits
from trainlab.data.dataset import BatchRows, Split
from trainlab.data.transforms import Compose, Normalize, image_transforms
from trainlab.engine import checkpoint
from trainlab.engine.batching import BatchPlan, TensorBatches
from trainlab.engine.loop import Limits, Trainer
from trainlab.engine.objective import Objective
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.step import StandardStep
from trainlab.errors import ConfigError
from trainlab.losses import build_loss


def reference_bits(seed: int, n: int) -> torch.Tensor:
    """The documented rule: torch.rand(n) < 0.5 from a CPU generator seeded (seed * 1_000_003 + 0x5EEDF11B) mod 2**63."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + 0x5EEDF11B) % 2**63)
    return torch.rand(n, generator=generator) < 0.5


# ----------------------------------------------------------------------------- the flip bits


def test_flip_bits_are_the_documented_pure_function_of_seed_and_row():
    for seed in (0, 7, 2**62):
        assert torch.equal(flip_bits(seed, 500), reference_bits(seed, 500))
    assert torch.equal(flip_bits(3, 1000), flip_bits(3, 1000))
    assert not torch.equal(flip_bits(3, 1000), flip_bits(4, 1000))
    assert 430 < int(flip_bits(3, 1000).sum()) < 570  # Binomial(1000, 1/2): mean 500, sd 16


def test_a_rows_flip_does_not_depend_on_its_batch_or_the_step_seed():
    x = torch.arange(6 * 2, dtype=torch.float32).reshape(6, 1, 1, 2)
    flip = AlternatingFlip()
    bits = reference_bits(5, 6)
    for index in (torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([4, 1]), torch.tensor([5, 0, 3])):
        for epoch in (0, 1, 2, 7):
            out = flip(x[index], torch.Generator().manual_seed(epoch * 13), BatchRows(index, epoch, 5, 6))
            expected = [x[i].flip(-1) if bool(bits[i]) != (epoch % 2 == 1) else x[i] for i in index.tolist()]
            assert torch.equal(out, torch.stack(expected))


# ----------------------------------------------------------------------------- through the Trainer


class Recorder(nn.Module):
    """A linear model that keeps every training input it is given."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def _trainer(x: torch.Tensor, y: torch.Tensor, model: nn.Module, transform, epochs: int, seed: int = 2,
             batch_size: int = 4, callbacks=(), accum: int = 1) -> Trainer:
    torch.manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = StandardStep(model, optimizer, Objective(build_loss("cross_entropy")))
    batches = TensorBatches(Split(x, y), transform, seed, torch.device("cpu"))
    plan = BatchPlan(len(x), batch_size, seed, accum=accum)
    return Trainer(step, batches, plan, Limits(epochs=epochs), list(callbacks))


def test_each_image_is_flipped_in_exactly_one_of_two_consecutive_epochs():
    n, seed = 10, 2
    # image i is the row [i, 100 + i]: mirrored it reads [100 + i, i]
    x = torch.stack([torch.tensor([[[float(i), 100.0 + i]]]) for i in range(n)])
    y = torch.arange(n) % 2
    model = Recorder(2)
    trainer = _trainer(x, y, model, AlternatingFlip(), epochs=3, seed=seed)
    trainer.fit()
    batches_per_epoch = 3  # ceil(10 / 4)
    bits = reference_bits(seed, n)
    flipped: dict[int, dict[int, bool]] = {}
    for b, batch in enumerate(model.seen):
        epoch = b // batches_per_epoch
        for left, right in batch[:, 0, 0].tolist():
            image = int(left) if left < 100 else int(right)
            assert image not in flipped.setdefault(epoch, {})
            flipped[epoch][image] = left >= 100
    assert all(len(flipped[e]) == n for e in range(3))
    for image in range(n):
        assert flipped[0][image] == bool(bits[image])
        assert flipped[0][image] != flipped[1][image]  # once flipped, once not, in epochs (0, 1)
        assert flipped[1][image] != flipped[2][image]  # and in (1, 2)


def test_fetch_without_the_epoch_is_refused_by_the_alternating_flip():
    batches = TensorBatches(Split(torch.zeros(4, 1, 2, 2), torch.zeros(4)), AlternatingFlip(), 0,
                            torch.device("cpu"))
    with pytest.raises(ValueError, match="hflip: alternating needs"):
        batches.fetch(torch.tensor([0, 1]), step=0)
    x, _ = batches.fetch(torch.tensor([0, 1]), step=0, epoch=1)
    assert x.shape == (2, 1, 2, 2)


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_resume_with_alternating_flip_and_crop_is_bit_identical(tmp_path):
    images = torch.randint(0, 256, (22, 3, 6, 6), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    labels = torch.arange(22) % 3
    transform = Compose((RandomCrop(1), AlternatingFlip(), Normalize((0.5,) * 3, (0.25,) * 3)))
    reference = _trainer(images, labels, _conv_net(), transform, epochs=4, batch_size=5)
    reference.fit()
    expected = reference.step.weights()

    saving = _trainer(images, labels, _conv_net(), transform, epochs=4, batch_size=5,
                      callbacks=[CheckpointSaver(tmp_path, 3, None, None, keep_last=100)])
    saving.fit()
    folders = checkpoint.step_folders(tmp_path)
    assert len(folders) >= 5  # 20 steps: checkpoints in odd and even epochs, mid-epoch too
    for folder in folders:
        _, tree, tensors = checkpoint.load(folder)
        resumed = _trainer(images, labels, _conv_net(), Compose((RandomCrop(1), AlternatingFlip(),
                                                                Normalize((0.5,) * 3, (0.25,) * 3))),
                           epochs=4, batch_size=5, seed=2)
        torch.manual_seed(123)
        resumed.restore(Snapshot(tree, tensors))
        resumed.fit()
        got = resumed.step.weights()
        assert all(torch.equal(got[k], expected[k]) for k in expected), folder.name
    # the flip changes training: without it (or with a random flip) the weights differ
    plain = _trainer(images, labels, _conv_net(), Compose((RandomCrop(1), Normalize((0.5,) * 3, (0.25,) * 3))),
                     epochs=4, batch_size=5)
    plain.fit()
    assert not all(torch.equal(plain.step.weights()[k], expected[k]) for k in expected)


def test_the_micro_batches_of_an_accumulated_step_draw_their_own_augmentation():
    """Every image the same 8 x 8 ramp, so a crop's output shows its offset; batch 4, grad_accum_steps 2. The
    offsets of a step's first micro-batch are torch.randint(0, 5, (4, 2)) of a generator seeded
    augmentation_seed(seed, step) (RandomCrop's docstring), the second's the next draws of that generator:
    reseeded for each, both micro-batches of a step were cropped alike."""
    from trainlab.engine.batching import augmentation_seed

    n, seed, padding = 16, 2, 2
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).repeat(n, 1, 1, 1)
    model = Recorder(64)
    trainer = _trainer(x, torch.arange(n) % 2, model, RandomCrop(padding), epochs=1, seed=seed, accum=2)
    trainer.fit()
    assert len(model.seen) == 4  # 2 steps of 2 micro-batches
    padded = torch.nn.functional.pad(x[:4], (padding,) * 4, mode="reflect")
    for step in range(2):
        generator = torch.Generator().manual_seed(augmentation_seed(seed, step))
        for micro in range(2):
            offsets = torch.randint(0, 2 * padding + 1, (4, 2), generator=generator)
            want = torch.stack([padded[i, :, dy:dy + 8, dx:dx + 8] for i, (dy, dx) in enumerate(offsets.tolist())])
            torch.testing.assert_close(model.seen[2 * step + micro], want, rtol=0, atol=0)
        assert not torch.equal(model.seen[2 * step], model.seen[2 * step + 1])


# ----------------------------------------------------------------------------- configuration


def test_hflip_alternating_in_data_augment_builds_the_alternating_flip():
    x = np.random.default_rng(0).integers(0, 256, (8, 3, 6, 6), dtype=np.uint8)
    train, evaluate = image_transforms(x, augment={"crop_padding": 2, "hflip": "alternating"})
    assert train.steps == (CropAndFlip(RandomCrop(2, "reflect"), AlternatingFlip()), evaluate)
    assert train.takes_rows and not getattr(evaluate, "takes_rows", False)
    train, _ = image_transforms(x, augment={"hflip": True})
    assert not train.takes_rows


@pytest.mark.parametrize("value, fragment", [("alternate", "did you mean 'alternating'"), (2, "got 2"),
                                             ("random", "got 'random'")])
def test_bad_hflip_is_one_config_error_line(value, fragment):
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    with pytest.raises(ConfigError) as err:
        image_transforms(x, augment={"hflip": value})
    message = str(err.value)
    assert "\n" not in message and "data.augment.hflip must be true, false or 'alternating'" in message
    assert fragment in message


@pytest.mark.parametrize("augment, fragment", [
    ({"crop_padding": "abc"}, "data.augment.crop_padding must be a whole number of pixels >= 0 (0: no shift); got 'abc'"),
    ({"crop_padding": -1}, "crop_padding must be a whole number of pixels >= 0 (0: no shift); got -1"),
    ({"crop_padding": 2.5}, "got 2.5"), ({"crop_padding": True}, "got True"), ({"crop_padding": None}, "got None"),
    ({"pad_mode": "reflekt"}, "data.augment.pad_mode must be one of reflect, zero; got 'reflekt'; did you mean"),
])
def test_bad_crop_padding_and_pad_mode_are_one_config_error_line(augment, fragment):
    """They went through int() and str() unchecked: a ValueError (exit 4), or -1 silently no crop."""
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    with pytest.raises(ConfigError) as err:
        image_transforms(x, augment=augment)
    assert "\n" not in str(err.value) and fragment in str(err.value)


def test_a_constant_channel_is_a_data_error_saying_what_to_give():
    from trainlab.errors import DataError

    x = np.random.default_rng(0).integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    x[:, 2] = 0  # no blue
    with pytest.raises(DataError, match=r"channel 2 of the training images is constant \(every pixel 0\).*give data\.std"):
        image_transforms(x)
    _, evaluate = image_transforms(x, std=[0.5, 0.5, 1.0])  # given: used as it is
    assert evaluate.std == (0.5, 0.5, 1.0)


# ----------------------------------------------------------------------------- random translate = airbench batch_crop


def airbench_batch_crop(images: np.ndarray, shifts: np.ndarray, r: int) -> np.ndarray:
    """airbench94_muon.py's batch_crop written out: reflect-pad by r, then image n is
    padded[n, :, r + sy : r + sy + H, r + sx : r + sx + W] for its shift (sy, sx) in [-r, r]."""
    height, width = images.shape[-2:]
    padded = np.pad(images, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    out = np.empty_like(images)
    for n, (sy, sx) in enumerate(shifts):
        out[n] = padded[n, :, r + sy:r + sy + height, r + sx:r + sx + width]
    return out


@pytest.mark.parametrize("r", [1, 2, 3])
def test_random_crop_with_reflect_padding_is_airbench_translate(r):
    images = np.random.default_rng(r).integers(0, 256, (300, 3, 8, 7), dtype=np.uint8)
    out = RandomCrop(r, "reflect")(torch.from_numpy(images), torch.Generator().manual_seed(11))
    # RandomCrop's offset o = randint(0, 2r + 1) is airbench's shift s = o - r, uniform in [-r, r]
    offsets = torch.randint(0, 2 * r + 1, (300, 2), generator=torch.Generator().manual_seed(11)).numpy()
    shifts = offsets - r
    np.testing.assert_array_equal(out.numpy(), airbench_batch_crop(images, shifts, r))
    assert set(np.unique(shifts)) == set(range(-r, r + 1))  # every shift occurs
    # translating uint8 images then normalising equals airbench's order (normalise, then translate)
    normalize = Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    normalized = normalize(torch.from_numpy(images), None).numpy()
    np.testing.assert_array_equal(normalize(out, None).numpy(), airbench_batch_crop(normalized, shifts, r))


@pytest.mark.parametrize("augment", [{"crop_padding": 2, "pad_mode": "reflect", "hflip": "alternating"},
                                     {"crop_padding": 2, "pad_mode": "zero", "hflip": True}])
def test_augmented_batches_stay_on_the_data_device(augment):
    """Every transform draws from the step's CPU generator and computes on the batch's device.

    The 'meta' device (shapes only) refuses any tensor from another device, as CUDA does, so a
    stray CPU tensor in a transform (an arange, a mask, per-channel statistics) fails here without a GPU.
    """
    images = np.zeros((6, 3, 8, 8), dtype=np.uint8)
    train, evaluate = image_transforms(images, mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2], augment=augment)
    split = Split(torch.zeros(6, 3, 8, 8, dtype=torch.uint8), torch.zeros(6, dtype=torch.long))
    meta = torch.device("meta")
    batches = TensorBatches(split, train, 0, meta)
    index = torch.tensor([0, 2, 5], device=meta)
    x, y = batches.fetch(index, step=3, epoch=1)
    assert x.device == meta and y.device == meta and x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    assert evaluate(split.x.to(meta), None).device == meta
    assert batches.augmentation_generator(3).device == torch.device("cpu")  # the same draws on every device
