"""Per-batch image transforms: uint8 -> normalised float, random crop with padding, horizontal flip.

A transform is a callable ``(x_batch, generator_or_None) -> tensor`` (``BatchTransform``); one
whose draw depends on the sample and the epoch (:class:`AlternatingFlip`) says ``takes_rows = True``
and is called ``(x_batch, generator, rows)`` with :class:`~trainlab.data.dataset.BatchRows`.
Images are kept in memory as uint8 (N, C, H, W) (or (N, D) flattened, one channel) and
converted per batch, so a 50,000-image set costs 150 MB, not 600 MB of float32.

Every random draw uses the ``torch.Generator`` passed in (the default generator when it
is ``None``), so an epoch's augmentation is a function of the generator's state. The
augmentations work on whole batches: a random crop and a flip together (:class:`CropAndFlip`) are one
row lookup in a table of every offset's source pixels, plain and mirrored, and one ``torch.gather`` (no
per-sample loop, no padded copy, a handful of dispatched ops a batch). Augment runs on uint8 before
normalising: 4x less memory traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from trainlab.data.dataset import BatchRows, BatchTransform
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn
from trainlab.registry import did_you_mean
from trainlab.runtime import to_device_async

PAD_MODES = ("reflect", "zero")
AUGMENT_DEFAULTS: dict[str, Any] = {"crop_padding": 4, "pad_mode": "reflect", "hflip": True}  # CIFAR recipe
HFLIP_CHOICES = (True, False, "alternating")  # random per sample and step | none | airbench's alternating flip


# ----------------------------------------------------------------------------- statistics


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population, ddof=0) std of uint8 images, in [0, 1] units.

    ``x`` is (N, C, ...) with channels on axis 1, or (N, D) / (N, H, W) read as one
    channel. Exact: computed from 256-bin histograms per channel (integer counts), in
    chunks of ``chunk`` images so no float copy of the whole set is made.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"channel_stats expects uint8 images; got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError("channel_stats got 0 images")
    channels = x.shape[1] if x.ndim == 4 else 1
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk].reshape(min(chunk, len(x) - start), channels, -1)
        for c in range(channels):
            counts[c] += np.bincount(block[:, c].ravel(), minlength=256)
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


def _source_index(positions: torch.Tensor, size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Map padded-frame positions (may be < 0 or >= size) to source indices; zero mode also returns validity."""
    if mode == "reflect":  # torch 'reflect': -1 -> 1, size -> size - 2 (the edge is not repeated)
        period = 2 * (size - 1)
        folded = torch.remainder(positions, period) if period else torch.zeros_like(positions)
        return torch.where(folded >= size, period - folded, folded), None
    valid = (positions >= 0) & (positions < size)
    return positions.clamp(0, size - 1), valid


def crop_flip_table(h: int, w: int, padding: int, mode: str = "reflect") -> torch.Tensor:
    """Where every output pixel of every crop offset, plain and mirrored, reads from: (2 K, H W) int64 on the CPU,
    K = (2 padding + 1)^2.

    Row ``f K + dy (2 padding + 1) + dx`` is the crop at offset (dy, dx) of the image padded by ``padding``
    ('reflect' or 'zero'), mirrored left-right after it iff f = 1: output pixel (i, j) reads the flattened
    source pixel ``fold(i + dy - padding) W + fold(j' + dx - padding)``, j' = j (or W - 1 - j mirrored), where
    fold maps a padded-frame position to the image's own (reflect: -1 -> 1, H -> H - 2); with zero padding a
    position outside the image reads ``H W``, the zero :func:`gather_pixels` appends. A crop and a flip are
    then one row lookup and one gather.
    """
    side = 2 * padding + 1
    steps = torch.arange(side)
    dy, dx = steps.repeat_interleave(side), steps.repeat(side)  # offset k = dy * side + dx
    rows = torch.arange(h).unsqueeze(0) + dy.unsqueeze(1) - padding  # (K, H) padded-frame positions
    cols = torch.arange(w).unsqueeze(0) + dx.unsqueeze(1) - padding  # (K, W)
    rows, row_ok = _source_index(rows, h, mode)
    cols, col_ok = _source_index(cols, w, mode)
    flat = rows.unsqueeze(2) * w + cols.unsqueeze(1)  # (K, H, W) source positions in the flattened image
    if row_ok is not None and col_ok is not None:  # zero padding: outside pixels read the appended zero
        flat = torch.where(row_ok.unsqueeze(2) & col_ok.unsqueeze(1), flat, h * w)
    return torch.cat([flat, flat.flip(-1)]).reshape(2 * side * side, h * w)


def gather_pixels(x: torch.Tensor, index: torch.Tensor, zero_pad: bool = False) -> torch.Tensor:
    """``out[n, c, p] = x[n, c, index[n, p]]`` for images x (N, C, H, W) and pixel positions index (N, H W) in
    the flattened image, one gather; with ``zero_pad`` position ``H W`` reads 0."""
    n, c, h, w = x.shape
    source = x.reshape(n, c, h * w)
    if zero_pad:
        source = torch.cat([source, source.new_zeros(n, c, 1)], dim=2)
    return torch.gather(source, 2, index.unsqueeze(1).expand(n, c, h * w)).reshape(n, c, h, w)


def crop_at(x: torch.Tensor, offsets: torch.Tensor, padding: int, mode: str = "reflect") -> torch.Tensor:
    """Crop each image n of x (N, C, H, W) at ``offsets[n] = (dy, dx)`` from the image padded by ``padding``.

    Equal to ``F.pad(x, [padding] * 4, mode)[n, :, dy:dy + H, dx:dx + W]`` for every n
    (``mode`` 'reflect' or 'zero'), computed as one gather through :func:`crop_flip_table`'s rows.
    """
    _, _, h, w = x.shape
    code = offsets[:, 0] * (2 * padding + 1) + offsets[:, 1]
    table = crop_flip_table(h, w, padding, mode).to(x.device)
    return gather_pixels(x, table[to_device_async(code, x.device)], mode == "zero")


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the last axis of the samples where ``mask`` (N,) is true."""
    return torch.where(mask.reshape(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)


@dataclass(frozen=True)
class RandomCrop:
    """Pad by ``padding`` ('reflect' or 'zero') and crop back to H x W at a uniform random offset per sample.

    Offsets: ``torch.randint(0, 2 * padding + 1, (N, 2), generator=generator)`` as (dy, dx), drawn on
    the CPU (the generator's device) and moved to the images' device.

    With reflect padding this is airbench's random translate (``translate: r``, ``batch_crop``):
    airbench draws a shift s uniform in [-r, r] per axis and crops the r-padded image at r + s,
    which is offset r + s, uniform in [0, 2r]: ``crop_padding: r, pad_mode: reflect``.
    """

    padding: int
    mode: str = "reflect"

    def __post_init__(self) -> None:
        if self.padding < 0:
            raise ConfigError(f"augment.crop_padding must be >= 0; got {self.padding}")
        if self.mode not in PAD_MODES:
            raise ConfigError(f"augment.pad_mode must be one of {', '.join(PAD_MODES)}; got '{self.mode}'")

    def check(self, x: torch.Tensor) -> None:
        """Refuse a batch this crop cannot take: not (N, C, H, W), or reflect padding as large as a side."""
        if x.ndim != 4:
            raise ConfigError(f"random crop needs images shaped (N, C, H, W); got {tuple(x.shape)}")
        if self.mode == "reflect" and self.padding >= min(x.shape[2:]):
            raise ConfigError(f"reflect padding {self.padding} must be smaller than the image size "
                              f"{tuple(x.shape[2:])}; use pad_mode: zero or a smaller crop_padding")

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` offsets (dy, dx), (n, 2) int64 on the CPU (the class docstring)."""
        return torch.randint(0, 2 * self.padding + 1, (n, 2), generator=generator)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.check(x)
        return crop_at(x, self.draw(len(x), generator), self.padding, self.mode)


@dataclass(frozen=True)
class RandomFlip:
    """Mirror left-right each sample with probability ``p``: mask = ``torch.rand(N, generator) < p``
    (drawn on the CPU, the generator's device, and moved to the images' device)."""

    p: float = 0.5

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Which of ``n`` samples to mirror, (n,) bool on the CPU (the class docstring)."""
        return torch.rand(n, generator=generator) < self.p

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return flip_where(x, to_device_async(self.draw(len(x), generator), x.device))


FLIP_BITS_SALT = 0x5EED_F11B  # keeps the flip bits' generator apart from the epoch orders' seeds


def flip_bits_seed(seed: int) -> int:
    """The seed of the alternating flip's bits: ``(seed * 1_000_003 + FLIP_BITS_SALT) mod 2**63``."""
    return (seed * 1_000_003 + FLIP_BITS_SALT) % 2**63


def flip_bits(seed: int, n: int) -> torch.Tensor:
    """Each row's fixed flip bit, (n,) bool: ``torch.rand(n, generator) < 0.5``, generator seeded with
    :func:`flip_bits_seed` (on the CPU, so every device gets the same bits)."""
    generator = torch.Generator().manual_seed(flip_bits_seed(seed))
    return torch.rand(n, generator=generator) < 0.5


@dataclass(frozen=True)
class AlternatingFlip:
    """airbench's derandomised horizontal flip: row i is mirrored in epoch e iff ``b_i XOR (e mod 2 == 1)``.

    ``b = flip_bits(seed, n)`` is drawn once per run, so over any two consecutive epochs every image is
    seen once mirrored and once as it is (independent coin flips leave half the images with the same
    view twice). A pure function of (seed, n, row, epoch): nothing to checkpoint. Reference: Jordan
    (2024), "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv:2404.00498 (alternating flip).
    """

    takes_rows: ClassVar[bool] = True
    _bits: dict[tuple[int, int, str], torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def bits(self, seed: int, n: int, device: torch.device) -> torch.Tensor:
        key = (seed, n, str(device))
        if key not in self._bits:  # one tensor per run: drawn once, not per batch
            self._bits[key] = flip_bits(seed, n).to(device)
        return self._bits[key]

    def mask(self, rows: BatchRows | None, device: torch.device) -> torch.Tensor:
        """Which samples of the batch to mirror, (N,) bool on ``device``: ``b[row] XOR (epoch odd)``."""
        if rows is None:
            raise ValueError("hflip: alternating needs each sample's row and epoch (TensorBatches.fetch passes "
                             "them when given the epoch)")
        mask = self.bits(rows.seed, rows.n, device)[rows.index.to(device)]
        return mask ^ bool(rows.epoch % 2)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 rows: BatchRows | None = None) -> torch.Tensor:
        return flip_where(x, self.mask(rows, x.device))


@dataclass(frozen=True)
class CropAndFlip:
    """A random crop, then a horizontal flip (random or alternating), as one gather: the same output as
    ``flip(crop(x))`` with the same draws from the generator in the same order (the crop's offsets, then a
    random flip's coin flips), in a few dispatched ops a batch.

    Per sample the crop's offset and the flip pick a row of :func:`crop_flip_table` (made once per image
    size and device); one ``index_select`` and one ``gather`` make the batch. Applied in turn, the crop's
    index arithmetic, the gather, the mirrored copy and the select cost some 40 ops a batch: on a GPU, where a
    1,000-row step of the speedrun net is bound by the host's kernel launches, that was a tenth of the step's
    ops. Either part may be None (not both).
    """

    crop: RandomCrop | None
    flip: RandomFlip | AlternatingFlip | None
    _tables: dict[tuple[int, int, str], torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.crop is None and self.flip is None:
            raise ValueError("CropAndFlip needs a crop, a flip or both")

    @property
    def takes_rows(self) -> bool:
        return getattr(self.flip, "takes_rows", False)

    def table(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """:func:`crop_flip_table` for this crop (padding 0 without one) on ``device``, made once."""
        key = (h, w, str(device))
        if key not in self._tables:
            padding, mode = (0, "reflect") if self.crop is None else (self.crop.padding, self.crop.mode)
            self._tables[key] = crop_flip_table(h, w, padding, mode).to(device)
        return self._tables[key]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 rows: BatchRows | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise ConfigError(f"random crop and flip need images shaped (N, C, H, W); got {tuple(x.shape)}")
        n, _, h, w = x.shape
        side = 1 if self.crop is None else 2 * self.crop.padding + 1
        code = None  # each sample's row of the table, on the CPU until a device-side flip joins it
        if self.crop is not None:
            self.crop.check(x)
            offsets = self.crop.draw(n, generator)
            code = offsets[:, 0] * side + offsets[:, 1]
        if isinstance(self.flip, RandomFlip):
            mirrored = self.flip.draw(n, generator).long() * (side * side)
            code = mirrored if code is None else code + mirrored
        code = None if code is None else to_device_async(code, x.device)
        if isinstance(self.flip, AlternatingFlip):
            mirrored = self.flip.mask(rows, x.device).long() * (side * side)
            code = mirrored if code is None else code + mirrored
        index = self.table(h, w, x.device).index_select(0, code)
        return gather_pixels(x, index, self.crop is not None and self.crop.mode == "zero")


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


def _per_channel(name: str, value: float | Sequence[float], channels: int) -> tuple[float, ...]:
    values = (value,) if isinstance(value, int | float) else tuple(value)
    if not all(isinstance(v, int | float) for v in values) or len(values) not in (1, channels):
        raise ConfigError(f"data.{name} must be a number or a list of {channels} numbers (one per channel, "
                          f"in [0, 1] units); got {value!r} (null computes them from the training images)")
    out = tuple(float(v) for v in values) * (channels if len(values) == 1 else 1)
    # pixels are scaled by 1/255 before normalising: a mean beyond 1 (or a std beyond 1, where 0.5 is the
    # largest a [0, 1] channel can have) is in 0-255 units, and would leave every input near one constant
    limit_ok = (lambda v: 0.0 <= v <= 1.0) if name == "mean" else (lambda v: v <= 1.0)
    if not all(limit_ok(v) for v in values):
        scaled = [float(f"{v / 255:.4g}") for v in values]
        shown = scaled[0] if isinstance(value, int | float) else scaled
        rule = "in [0, 1]" if name == "mean" else "at most 1"
        raise ConfigError(f"data.{name} must be {rule}: statistics are in [0, 1] units, of the pixels scaled by "
                          f"1/255; got {value!r} (0-255 units? divided by 255: {name}: {shown})")
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
    unknown = sorted(set(augment) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown data.augment key '{unknown[0]}'{did_you_mean(unknown[0], list(AUGMENT_DEFAULTS))} "
                          f"(valid: {', '.join(AUGMENT_DEFAULTS)})")
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
            raise ConfigError(f"data.augment.crop_padding={padding} must be smaller than the image size "
                              f"{tuple(x_train.shape[2:])} for reflect padding; use pad_mode: zero (from the command "
                              f"line: --set 'data.augment={{crop_padding: {padding}, pad_mode: zero}}')")
        if 8 * padding > min(x_train.shape[2:]):  # CIFAR's 4 px on 32 is 1/8; 4 px on 8x8 digits is half
            side = "x".join(str(s) for s in x_train.shape[2:])
            warn(f"data.augment.crop_padding={padding} shifts {side} images by up to {padding} px "
                 f"({padding / min(x_train.shape[2:]):.0%} of a side; CIFAR recipes use 4 px on 32): set a smaller "
                 "crop_padding, or augment: false, if that moves the content out of the frame")
        crop = RandomCrop(padding, pad_mode)
    flip = AlternatingFlip() if options["hflip"] == "alternating" else RandomFlip() if options["hflip"] else None
    if crop is None and flip is None:
        return normalize, normalize
    return Compose((CropAndFlip(crop, flip), normalize)), normalize
