"""Per-batch image augmentation: a random crop from the padded image, a horizontal flip (random, or airbench's
alternating flip), and both as one gather (:class:`CropAndFlip`, what ``data.augment`` builds).

Each is a batch transform (:mod:`trainlab.data.transforms`): ``(x, generator)``, or ``(x, generator, rows)``
for one whose draw depends on the sample and the epoch (``takes_rows``). Images are uint8 (N, C, H, W); every
random draw uses the generator passed in, on the CPU, and what it decides moves to the images' device without
waiting for queued kernels. A crop and a flip are a row lookup in a table of every offset's source pixels,
plain and mirrored (:func:`crop_flip_table`), and one ``torch.gather``: no per-sample loop, no padded copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from trainlab.data.dataset import BatchRows
from trainlab.errors import ConfigError
from trainlab.runtime import to_device_async

PAD_MODES = ("reflect", "zero")


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
