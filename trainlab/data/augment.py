"""Per-batch image augmentation: a random crop from the padded image, a horizontal flip (random, or airbench's
alternating flip), and both as one gather (:class:`CropAndFlip`, what ``data.augment`` builds).

Each is a batch transform (:mod:`trainlab.data.transforms`): ``(x, generator)``, or ``(x, generator, rows)``
for one whose draw depends on the sample and the epoch (``takes_rows``). Images are uint8 (N, C, H, W); every
random draw uses the generator passed in, on the CPU, and what it decides moves to the images' device without
waiting for queued kernels. A crop and a flip are lookups in small per-axis tables of each offset's source rows
and columns, plain and mirrored (:func:`crop_flip_axes`), and one ``torch.gather``: no per-sample loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from trainlab.data.dataset import BatchRows
from trainlab.errors import ConfigError
from trainlab.registry import value_hint
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


def crop_flip_axes(h: int, w: int, padding: int, mode: str = "reflect") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per axis, where a crop (and a mirror after it) reads from: ``(row_starts (S, H), cols (2 S, W), stride)``,
    int64 on the CPU, S = 2 padding + 1.

    ``row_starts[dy, i] = fold(i + dy - padding) * stride``: where the source row that output row i of the
    crop at vertical offset dy reads starts in the flattened image; ``cols[f S + dx, j] = fold(j' + dx -
    padding)`` with j' = j, or W - 1 - j mirrored (f = 1). fold maps a position of the frame padded by
    ``padding`` to the image's own (reflect: -1 -> 1, H -> H - 2); with zero padding a position outside the
    image reads row H or column W, the zeros :func:`gather_pixels` pads the image with, and a row's stride is
    W + 1 (else W). Output pixel (i, j) reads the flattened source pixel ``row_starts[dy, i] + cols[f S + dx,
    j]``: a crop and a flip are two small lookups and one gather, with tables of S (H + 2 W) entries (a table
    per offset and pixel would be 2 S^2 H W: GBs for large images).
    """
    steps = torch.arange(2 * padding + 1).unsqueeze(1) - padding
    rows, row_ok = _source_index(torch.arange(h).unsqueeze(0) + steps, h, mode)  # (S, H)
    cols, col_ok = _source_index(torch.arange(w).unsqueeze(0) + steps, w, mode)  # (S, W)
    if row_ok is not None and col_ok is not None:  # zero padding: outside positions read the zeros padded on
        rows, cols = torch.where(row_ok, rows, h), torch.where(col_ok, cols, w)
    stride = w + 1 if mode == "zero" else w
    return rows * stride, torch.cat([cols, cols.flip(-1)]), stride


@functools.lru_cache(maxsize=64)
def axes_on(h: int, w: int, padding: int, mode: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`crop_flip_axes` moved to ``device``, made once per size, padding and device: a table copied to a
    GPU at every batch is a synchronising copy (the host waits for every queued kernel). Made with inference
    mode off, so tables first made under predict's inference mode serve training too."""
    with torch.inference_mode(False):
        rows, cols, stride = crop_flip_axes(h, w, padding, mode)
        return rows.to(device), cols.to(device), stride


def gather_pixels(x: torch.Tensor, row_starts: torch.Tensor, cols: torch.Tensor, stride: int) -> torch.Tensor:
    """``out[n, c, i, j] = flat(x)[n, c, row_starts[n, i] + cols[n, j]]`` for images x (N, C, H, W), row_starts
    (N, H) and cols (N, W) (:func:`crop_flip_axes`), one gather; with ``stride`` W + 1 the image is first padded
    by a zero row and a zero column (at the bottom and right), which row H and column W read."""
    n, c, h, w = x.shape
    if stride != w:
        x = torch.nn.functional.pad(x, (0, 1, 0, 1))
    index = (row_starts.unsqueeze(2) + cols.unsqueeze(1)).reshape(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(x.reshape(n, c, -1), 2, index).reshape(n, c, h, w)


def crop_at(x: torch.Tensor, offsets: torch.Tensor, padding: int, mode: str = "reflect") -> torch.Tensor:
    """Crop each image n of x (N, C, H, W) at ``offsets[n] = (dy, dx)`` from the image padded by ``padding``.

    Equal to ``F.pad(x, [padding] * 4, mode)[n, :, dy:dy + H, dx:dx + W]`` for every n
    (``mode`` 'reflect' or 'zero'), computed as one gather through :func:`crop_flip_axes`' tables.
    """
    _, _, h, w = x.shape
    rows, cols, stride = axes_on(h, w, padding, mode, x.device)
    dy, dx = to_device_async(offsets, x.device).unbind(1)
    return gather_pixels(x, rows.index_select(0, dy), cols.index_select(0, dx), stride)


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
            raise ConfigError(f"augment.pad_mode must be one of {', '.join(PAD_MODES)}; got '{self.mode}'"
                              f"{value_hint(self.mode, PAD_MODES)}")

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

    Per sample the crop's vertical offset picks a row of :func:`crop_flip_axes`' row table, its horizontal
    offset and the flip a row of its column table (made once per image size and device); two lookups and
    one ``gather`` make the batch. Applied in turn, the crop's index arithmetic, the gather, the mirrored
    copy and the select cost some 40 ops a batch: on a GPU, where a 1,000-row step of the speedrun net is
    bound by the host's kernel launches, that was a tenth of the step's ops. Either part may be None (not
    both).
    """

    crop: RandomCrop | None
    flip: RandomFlip | AlternatingFlip | None

    def __post_init__(self) -> None:
        if self.crop is None and self.flip is None:
            raise ValueError("CropAndFlip needs a crop, a flip or both")

    @property
    def takes_rows(self) -> bool:
        return getattr(self.flip, "takes_rows", False)

    def tables(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """:func:`axes_on` for this crop (padding 0 without one) on ``device``."""
        padding, mode = (0, "reflect") if self.crop is None else (self.crop.padding, self.crop.mode)
        return axes_on(h, w, padding, mode, device)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 rows: BatchRows | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise ConfigError(f"random crop and flip need images shaped (N, C, H, W); got {tuple(x.shape)}")
        n, _, h, w = x.shape
        side = 1 if self.crop is None else 2 * self.crop.padding + 1
        if self.crop is not None:
            self.crop.check(x)
            offsets = self.crop.draw(n, generator)  # (N, 2): dy, dx, on the CPU
        else:
            offsets = torch.zeros(n, 2, dtype=torch.long)
        if isinstance(self.flip, RandomFlip):  # a mirrored column is row side + dx of the column table
            offsets[:, 1].add_(self.flip.draw(n, generator), alpha=side)
        row_code, col_code = to_device_async(offsets, x.device).unbind(1)
        if isinstance(self.flip, AlternatingFlip):
            col_code = col_code.add(self.flip.mask(rows, x.device), alpha=side)
        row_table, col_table, stride = self.tables(h, w, x.device)
        return gather_pixels(x, row_table.index_select(0, row_code), col_table.index_select(0, col_code), stride)
