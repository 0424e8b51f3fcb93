"""Patch whitening: filters for a first conv layer that decorrelate its input patches.

For the k x k patches p of the training images (flattened in the Conv2d weight's
(channel, row, column) order, length d = C k^2), with second-moment matrix

    S = E[p p^T] = V diag(l) V^T      (eigenvalues l in decreasing order)

the whitening filters are the rows of

    W = diag(l + eps)^(-1/2) V^T,

so that the responses W p have second moment W S W^T = diag(l / (l + eps)) ~ I, and
W^T W = (S + eps I)^(-1) (a sign-free way to state the same thing). airbench gives its
stem 2d filters, W and -W, so that the GELU after it keeps both signs of every response.

Reference: Keller Jordan, airbench (github.com/KellerJordan/cifar10-airbench,
``airbench94.py``: ``init_whitening_conv``), and Jordan, "94% on CIFAR-10 in 3.29 Seconds
on a Single GPU", arXiv:2404.00498.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError

_CHUNK_ELEMENTS = 1 << 19  # patch values unfolded at a time (4 MiB of float64; ~2x faster here than 32 MiB)


def patch_second_moment(images: torch.Tensor, kernel_size: tuple[int, int],
                        dilation: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """S = (1/P) sum_p p p^T over every stride-1, unpadded k x k patch p of ``images`` (N, C, H, W).

    Accumulated in float64, a chunk of images at a time (the patches of 5,000 CIFAR images
    would take 460 MB at once). p is flattened as F.unfold does, channel-major then row then
    column: the order of ``conv.weight[o].flatten()``, so ``conv(x)[o] = w_o . p``.
    """
    n, channels, height, width = images.shape
    kh, kw = kernel_size
    rows = height - dilation[0] * (kh - 1)
    columns = width - dilation[1] * (kw - 1)
    if rows < 1 or columns < 1:
        raise ConfigError(f"images of {height}x{width} are smaller than the {kh}x{kw} patches to whiten")
    d = channels * kh * kw
    chunk = max(1, _CHUNK_ELEMENTS // (d * rows * columns))
    total = torch.zeros(d, d, dtype=torch.float64, device=images.device)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].to(torch.float64)
        patches = F.unfold(x, kernel_size, dilation=dilation)  # (n, d, positions)
        patches = patches.transpose(1, 2).reshape(-1, d)
        total += patches.T @ patches
    return total / (n * rows * columns)


def whitening_filters(second_moment: torch.Tensor, eps: float) -> torch.Tensor:
    """The rows of diag(l + eps)^(-1/2) V^T for S = V diag(l) V^T, largest eigenvalue first: (d, d)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    return eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]


@torch.no_grad()
def whiten_conv_(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4, freeze: bool = True,
                 name: str = "conv") -> None:
    """Set ``conv``'s weight to the whitening filters of ``images``' patches (in place).

    A conv with d = C k^2 output channels gets W; one with 2d gets W then -W (airbench).
    The bias is left as it is. ``freeze`` sets ``requires_grad=False`` on the weight.

    Args:
        conv: a Conv2d with groups=1 (its kernel size and dilation define the patches).
        images: (N, C, H, W) inputs as the model sees them (normalised).
        eps: added to every eigenvalue; bounds the gain of low-variance directions.
        freeze: keep the weight fixed during training (airbench does).
        name: how error messages call the layer.

    Raises:
        ConfigError: grouped conv, channel mismatch, or an output width other than d or 2d.
    """
    if images.ndim != 4:
        raise ConfigError(f"patch whitening needs images shaped (N, C, H, W); got inputs shaped {tuple(images.shape)}")
    if conv.groups != 1:
        raise ConfigError(f"patch whitening needs an ungrouped first conv; '{name}' has groups={conv.groups}")
    if conv.in_channels != images.shape[1]:
        raise ConfigError(f"patch whitening: '{name}' takes {conv.in_channels} channels but the images have "
                          f"{images.shape[1]}")
    kh, kw = conv.kernel_size
    d = conv.in_channels * kh * kw
    if conv.out_channels not in (d, 2 * d):
        raise ConfigError(f"patch whitening: '{name}' has {conv.out_channels} output channels; whitening {kh}x{kw} "
                          f"patches of {conv.in_channels} channels needs {d} (the filters) or {2 * d} (filters and "
                          "their negation)")
    second_moment = patch_second_moment(images, (kh, kw), tuple(conv.dilation))
    filters = whitening_filters(second_moment, eps).reshape(d, conv.in_channels, kh, kw)
    if conv.out_channels == 2 * d:
        filters = torch.cat((filters, -filters))
    conv.weight.copy_(filters.to(device=conv.weight.device, dtype=conv.weight.dtype))
    if freeze:
        conv.weight.requires_grad_(False)
