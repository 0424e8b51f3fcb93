"""Per-batch image transforms: uint8 -> normalised float, composition, and the pipeline a data config builds.

A transform is a callable ``(x_batch, generator_or_None) -> tensor`` (``BatchTransform``); one
whose draw depends on the sample and the epoch (the alternating flip) says ``takes_rows = True``
and is called ``(x_batch, generator, rows)`` with :class:`~trainlab.data.dataset.BatchRows`.
Images are kept in memory as uint8 (N, C, H, W) (or (N, D) flattened, one channel) and
converted per batch, so a 50,000-image set costs 150 MB, not 600 MB of float32.

Every random draw uses the ``torch.Generator`` passed in (the default generator when it
is ``None``), so an epoch's augmentation is a function of the generator's state. The augmentations
(random crop, flip) are :mod:`trainlab.data.augment`'s; they run on uint8 before normalising: 4x less
memory traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainlab.config_fields import counted
from trainlab.data.augment import PAD_MODES, AlternatingFlip, CropAndFlip, RandomCrop, RandomFlip
from trainlab.data.dataset import BatchRows, BatchTransform
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn_training
from trainlab.registry import did_you_mean

AUGMENT_DEFAULTS: dict[str, Any] = {"crop_padding": 4, "pad_mode": "reflect", "hflip": True}  # CIFAR recipe
HFLIP_CHOICES = (True, False, "alternating")  # random per sample and step | none | airbench's alternating flip
# other libraries' names for data.augment's keys, and what they are here
AUGMENT_KEY_MEANINGS = {
    "translate": "airbench's random translate by r pixels is crop_padding: r with pad_mode: reflect",
    "padding": "a crop from the padded image is crop_padding: r (pad_mode: reflect or zero)",
    "random_crop": "torchvision's RandomCrop(size, padding=r) is crop_padding: r with pad_mode: zero",
    "flip": "a horizontal flip is hflip: true (random) or hflip: alternating",
    "horizontal_flip": "a horizontal flip is hflip: true (random) or hflip: alternating",
    "random_flip": "a horizontal flip is hflip: true (random) or hflip: alternating",
}


# ----------------------------------------------------------------------------- statistics


# values per np.bincount call, whatever the images' size: it casts them to int64, 8 bytes a value (32 MiB)
STATS_CHUNK_VALUES = 1 << 22


def channel_stats(x: np.ndarray, chunk_values: int = STATS_CHUNK_VALUES) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population, ddof=0) std of uint8 images, in [0, 1] units.

    ``x`` is (N, C, ...) with channels on axis 1, or (N, D) / (N, H, W) read as one
    channel. Exact: from 256-bin histograms per channel (integer counts ``h[c, v]``),
    ``mean[c] = sum_v h[c, v] v / 255 / sum_v h[c, v]``, ``std[c]^2 = sum_v h[c, v] (v / 255)^2 / sum_v h[c, v]
    - mean[c]^2``. The histograms are counted ``chunk_values`` values at a time (whole images
    together while they fit, else pieces of one image's channel), so the extra memory is about
    ``9 * chunk_values`` bytes (the int64 cast ``np.bincount`` makes, and a uint8 copy of a strided
    channel) however large the images are, and no float copy of the set is made (an ``x`` that is not
    C-contiguous is also copied one chunk of images, or one image, at a time).
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"channel_stats expects uint8 images; got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError("channel_stats got 0 images")
    if chunk_values < 1:
        raise ValueError(f"channel_stats chunk_values must be at least 1; got {chunk_values}")
    channels = x.shape[1] if x.ndim == 4 else 1
    pixels = int(np.prod(x.shape[1:])) // channels  # values of one channel of one image
    images_per_chunk = max(1, chunk_values // max(pixels, 1))
    pixels_per_chunk = max(1, min(pixels, chunk_values))  # < pixels only when one image's channel is split
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(x), images_per_chunk):
        images = x[start:start + images_per_chunk]
        planes = images.reshape(len(images), channels, pixels)  # a view of a C-contiguous x; else a chunk's copy
        for first in range(0, pixels, pixels_per_chunk):
            for c in range(channels):
                piece = planes[:, c, first:first + pixels_per_chunk]
                counts[c] += np.bincount(piece.ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = (counts * values).sum(axis=1) / total
    var = (counts * values**2).sum(axis=1) / total - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


# ----------------------------------------------------------------------------- transforms


def _channel_view(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape per-channel ``values`` (C,) to broadcast against x: (1, C, 1, ...) or a scalar for one channel."""
    if values.numel() == 1:
        return values.reshape(())
    return values.reshape(1, -1, *([1] * (x.ndim - 2)))


@dataclass(frozen=True)
class Normalize:
    """``y = (x / 255 - mean[c]) / std[c]`` per channel c, as float32.

    ``mean``/``std`` are in [0, 1] units (torchvision convention), one value per channel
    (channel axis 1) or a single value for all features.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    _constants: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, init=False, compare=False,
                                                                    repr=False)

    def constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1 / (255 std), mean / std)`` per channel, float32 on ``device``: ``(x/255 - m)/s == x * 1/(255 s) -
        m/s``. Made once per device: building them per batch copied two tensors to a GPU each batch, and a
        copy from pageable memory waits for every queued kernel."""
        key = str(device)
        if key not in self._constants:
            with torch.inference_mode(False):  # made inside predict's inference mode, they must serve training too
                std = torch.tensor(self.std, dtype=torch.float32, device=device)
                mean = torch.tensor(self.mean, dtype=torch.float32, device=device)
                self._constants[key] = (1.0 / (255.0 * std), mean / std)
        return self._constants[key]

    def _broadcast(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`constants` shaped to broadcast against ``x`` (:func:`_channel_view`), kept per device and rank."""
        key = f"{x.device}/{x.ndim}"
        if key not in self._constants:
            scale, shift = self.constants(x.device)
            self._constants[key] = (_channel_view(scale, x), _channel_view(shift, x))
        return self._constants[key]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ConfigError(f"normalize mean and std need the same non-zero length; got mean={list(self.mean)}, "
                              f"std={list(self.std)}")
        if min(self.std) <= 0:
            raise ConfigError(f"normalize std must be > 0 per channel; got std={list(self.std)}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        channels = len(self.mean)
        if channels > 1 and (x.ndim < 3 or x.shape[1] != channels):
            raise ConfigError(f"normalize has {channels} channel statistics but the batch has shape "
                              f"{tuple(x.shape)} (channels on axis 1)")
        scale, shift = self._broadcast(x)
        out = x.to(torch.float32)  # a fresh tensor for uint8 input; in place from here (4x faster on CPU)
        if out is x:
            out = out.clone()
        return out.mul_(scale).sub_(shift)


@dataclass(frozen=True)
class Compose:
    """Apply ``steps`` in order, each with the same generator (and the batch's rows, to those that take them)."""

    steps: tuple[BatchTransform, ...]

    @property
    def takes_rows(self) -> bool:
        return any(getattr(step, "takes_rows", False) for step in self.steps)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 rows: BatchRows | None = None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator, rows) if getattr(step, "takes_rows", False) else step(x, generator)
        return x


# ----------------------------------------------------------------------------- building from options


# a statistic out of its [0, 1] range from here to 255 reads as one in 0-255 units (CIFAR's mean 125, std 63; a
# mean under 10 of 255 would be a nearly black data set): the refusal offers it divided by 255; 1.5 gets no guess
PIXEL_UNITS_FROM = 10.0


def check_statistics(mean: float | Sequence[float] | None, std: float | Sequence[float] | None, channels: int) -> None:
    """``data.mean`` and ``data.std`` of a source whose images have ``channels`` channels, as
    :func:`image_transforms` takes them (None: computed from the training images), checked from the config
    alone: each a number or a list of ``channels`` numbers, in [0, 1] units, std > 0; else one ConfigError."""
    problems = []
    for name, value in (("mean", mean), ("std", std)):
        try:
            if value is not None:
                _per_channel(name, value, channels)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:  # both at once: a grayscale run given RGB statistics is told of both
        raise ConfigError("; and ".join(problems))


def statistics_check(channels: int) -> Callable[[Mapping[str, Any]], None]:
    """The ``check_values`` of an image source whose images have ``channels`` channels (trainlab.data): its
    ``mean`` and ``std`` options checked by :func:`check_statistics`."""
    return lambda options: check_statistics(options["mean"], options["std"], channels)


#: the most training images whose own mean a given data.mean is checked against: every k-th of them (a view, no
#: copy; a class-ordered folder's first class alone could differ), enough to tell CIFAR's constants on digits
MISFIT_SAMPLE = 5000


def warn_if_mean_misfit(x_train: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> None:
    """One warning where a given ``mean`` (a recipe's constants: CIFAR-10's on digits on black) leaves a channel
    of the training images centred more than one ``std`` from 0 once normalised, ``|own mean - mean| / std > 1``,
    the images' own mean taken on every k-th image, at most :data:`MISFIT_SAMPLE`. The spread is not judged: a
    std of 0.5 on CIFAR (the PyTorch tutorial's) or of 1 is a choice that trains as well. The run trains either
    way; the fix named is ``null`` (the images' own)."""
    own_mean, _ = channel_stats(x_train[::max(1, -(-len(x_train) // MISFIT_SAMPLE))])
    centred = [(m - given) / s for m, given, s in zip(own_mean, mean, std, strict=True)]
    off = [c for c, value in enumerate(centred) if abs(value) > 1]
    if not off:
        return
    shown = ", ".join(f"{v:.3g}" for v in own_mean)
    warn_training(f"data.mean does not fit these training images (their own mean: [{shown}]): normalised, channel "
                  f"{off[0]} is centred {centred[off[0]]:.2f} std from 0; set data.mean (and data.std) to null to "
                  "use the images' own")


def _per_channel(name: str, value: float | Sequence[float], channels: int) -> tuple[float, ...]:
    values = (value,) if isinstance(value, int | float) else tuple(value)
    if not all(isinstance(v, int | float) for v in values) or len(values) not in (1, channels):
        raise ConfigError(f"data.{name} must be a number or a list of {counted(channels, 'number')} (one per channel, "
                          f"in [0, 1] units); got {value!r} (null computes them from the training images)")
    out = tuple(float(v) for v in values) * (channels if len(values) == 1 else 1)
    # pixels are scaled by 1/255 before normalising: a mean beyond 1 (or a std beyond 1, where 0.5 is the
    # largest a [0, 1] channel can have) is in 0-255 units, and would leave every input near one constant
    limit_ok = (lambda v: 0.0 <= v <= 1.0) if name == "mean" else (lambda v: v <= 1.0)
    if not all(limit_ok(v) for v in values):
        rule = "in [0, 1]" if name == "mean" else "at most 1"
        hint = ""
        if all(PIXEL_UNITS_FROM <= v <= 255 for v in values if not limit_ok(v)):  # 0-255 units, by the look of it
            scaled = [float(f"{v / 255:.4g}") for v in values]
            hint = f" (0-255 units? divided by 255: {name}: {scaled[0] if isinstance(value, int | float) else scaled})"
        raise ConfigError(f"data.{name} must be {rule}: statistics are in [0, 1] units, of the pixels scaled by "
                          f"1/255; got {value!r}{hint}")
    if name == "std" and min(out) <= 0:  # Normalize divides by it
        channel = next(c for c, v in enumerate(out) if v <= 0)
        raise ConfigError(f"data.std must be > 0 per channel (each channel is divided by its std); got "
                          f"std={value!r} (channel {channel} is {out[channel]:g}): give every channel a positive "
                          "std, or null to compute it from the training images")
    return out


def augment_options(augment: bool | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``true`` -> the CIFAR defaults; a mapping overrides them; false/None -> no augmentation."""
    if augment is None or augment is False:
        return None
    if augment is True:
        return dict(AUGMENT_DEFAULTS)
    if not isinstance(augment, Mapping):
        raise ConfigError(f"data.augment must be true, false or a mapping with keys "
                          f"{', '.join(AUGMENT_DEFAULTS)}; got {augment!r}")
    unknown = sorted(str(key) for key in set(augment) - set(AUGMENT_DEFAULTS))
    if unknown:
        key = unknown[0]
        hint = f": {AUGMENT_KEY_MEANINGS[key]}" if key in AUGMENT_KEY_MEANINGS else did_you_mean(key, list(AUGMENT_DEFAULTS))
        raise ConfigError(f"unknown data.augment key '{key}'{hint} (valid: {', '.join(AUGMENT_DEFAULTS)})")
    hflip = augment.get("hflip", AUGMENT_DEFAULTS["hflip"])
    if not any(hflip is choice or (isinstance(hflip, str) and hflip == choice) for choice in HFLIP_CHOICES):
        hint = did_you_mean(hflip, ["alternating"]) if isinstance(hflip, str) else ""
        raise ConfigError(f"data.augment.hflip must be true, false or 'alternating'; got {hflip!r}{hint}")
    padding = augment.get("crop_padding", AUGMENT_DEFAULTS["crop_padding"])
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"data.augment.crop_padding must be a whole number of pixels >= 0 (0: no shift); "
                          f"got {padding!r}")
    pad_mode = augment.get("pad_mode", AUGMENT_DEFAULTS["pad_mode"])
    if pad_mode not in PAD_MODES:
        raise ConfigError(f"data.augment.pad_mode must be one of {', '.join(PAD_MODES)}; got {pad_mode!r}"
                          f"{did_you_mean(pad_mode, list(PAD_MODES)) if isinstance(pad_mode, str) else ''}")
    return {**AUGMENT_DEFAULTS, **augment}


def image_transforms(
    x_train: np.ndarray,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    augment: bool | Mapping[str, Any] | None = None,
) -> tuple[BatchTransform, BatchTransform]:
    """``(train_transform, eval_transform)`` for uint8 images: augment + normalize, and normalize only.

    Args:
        x_train: the source's training images, uint8 (N, C, H, W) or (N, D) (one channel).
        mean, std: per-channel statistics in [0, 1] units; computed on ``x_train`` when not given.
        augment: ``true`` (crop_padding 4, reflect, hflip), a mapping overriding those keys, or false.
            ``hflip: alternating`` is :class:`AlternatingFlip`; ``crop_padding: r`` with reflect padding is
            airbench's ``translate: r``.
    """
    channels = x_train.shape[1] if x_train.ndim == 4 else 1
    check_statistics(mean, std, channels)  # the given ones, both at once, before any is computed
    mean_given = mean is not None
    if mean is None or std is None:
        fitted_mean, fitted_std = channel_stats(x_train)
        mean = fitted_mean if mean is None else mean
        if std is None:
            flat = [c for c, value in enumerate(np.atleast_1d(fitted_std)) if value <= 0]
            if flat:
                raise DataError(f"channel {flat[0]} of the training images is constant (every pixel "
                                f"{float(np.atleast_1d(fitted_mean)[flat[0]]) * 255:g}): its std is 0 and it cannot "
                                f"be normalised; give data.std (one value per channel, e.g. 1.0 for that one), or "
                                "images with that channel varying")
            std = fitted_std
    normalize = Normalize(_per_channel("mean", mean, channels), _per_channel("std", std, channels))
    if mean_given:
        warn_if_mean_misfit(x_train, normalize.mean, normalize.std)
    options = augment_options(augment)
    if options is None:
        return normalize, normalize
    if x_train.ndim != 4:
        raise ConfigError(f"data.augment needs images shaped (N, C, H, W); got {tuple(x_train.shape)} "
                          "(set augment: false; images an IDX source flattened: data.flatten: false)")
    crop: RandomCrop | None = None
    padding, pad_mode = options["crop_padding"], options["pad_mode"]  # checked by augment_options
    if padding > 0:
        if pad_mode == "reflect" and padding >= min(x_train.shape[2:]):
            # a mapping takes the one key (its other options kept); `augment: true` is no section to set a key
            # in, and {pad_mode: zero} is true's defaults with zero padding
            command = "--set data.augment.pad_mode=zero" if isinstance(augment, Mapping) else \
                "--set 'data.augment={pad_mode: zero}'"
            raise ConfigError(f"data.augment.crop_padding={padding} must be smaller than the image size "
                              f"{tuple(x_train.shape[2:])} for reflect padding; use pad_mode: zero (from the command "
                              f"line: {command})")
        if 8 * padding > min(x_train.shape[2:]):  # CIFAR's 4 px on 32 is 1/8; 4 px on 8x8 digits is half
            side = "x".join(str(s) for s in x_train.shape[2:])
            warn_training(f"data.augment.crop_padding={padding} shifts {side} images by up to {padding} px "
                          f"({padding / min(x_train.shape[2:]):.0%} of a side; CIFAR recipes use 4 px on 32): set a "
                          "smaller crop_padding, or augment: false, if that moves the content out of the frame")
        crop = RandomCrop(padding, pad_mode)
    flip = AlternatingFlip() if options["hflip"] == "alternating" else RandomFlip() if options["hflip"] else None
    if crop is None and flip is None:
        return normalize, normalize
    return Compose((CropAndFlip(crop, flip), normalize)), normalize
