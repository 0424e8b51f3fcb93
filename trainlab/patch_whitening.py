"""Patch whitening: filters for a first conv layer that decorrelate its input patches.

For the k x k patches p of the training images (flattened in the Conv2d weight's
(channel, row, column) order, length d = C k^2), with second-moment matrix

    S = E[p p^T] = V diag(l) V^T      (eigenvalues l in decreasing order)

the whitening filters are the rows of

    W = diag(l + eps)^(-1/2) V^T,

so that the responses W p have second moment W S W^T = diag(l / (l + eps)) ~ I, and
W^T W = (S + eps I)^(-1) (a sign-free way to state the same thing). airbench gives its
stem 2d filters, W and -W, so that the GELU after it keeps both signs of every response.

Null directions: where the patches span only r < d dimensions (grayscale images stored as
RGB, whose channels are all one affine function of the gray value; constant channels), the
eigenvalues l_i <= NULL_RTOL * l_1 are float64 round-off and the patches have no component
along v_i. Their filters would respond only to the float32 or bf16 rounding of the conv, at a
gain of (l_i + eps)^(-1/2) (45 at airbench's eps): noise that a BatchNorm with a tiny eps
(airbench: 1e-12) scales up to unit variance, differently in training and in evaluation. A zero
filter is no better: its channel is constant, and such a BatchNorm's backward overflows on it.
So the rows of the null directions repeat the rows of the r others, in order and cyclically:
every channel carries a whitened response, the first r of them distinct.

Reference: Keller Jordan, airbench (github.com/KellerJordan/cifar10-airbench,
``airbench94.py``: ``init_whitening_conv``), and Jordan, "94% on CIFAR-10 in 3.29 Seconds
on a Single GPU", arXiv:2404.00498.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError

NULL_RTOL = 1e-10  # eigenvalues at most this fraction of the largest are treated as 0 (see above)
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
    """The rows of diag(l + eps)^(-1/2) V^T for S = V diag(l) V^T, largest eigenvalue first: (d, d).

    The rows of the null directions (``l_i <= NULL_RTOL * l_1``, see the module notes) are copies of
    the first r rows, cyclically: row ``r + j`` is row ``j mod r``.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = eigenvectors.T * torch.rsqrt(eigenvalues.clamp(min=0) + eps)[:, None]
    rank = int((eigenvalues > NULL_RTOL * eigenvalues[0]).sum())
    if 0 < rank < len(filters):
        filters[rank:] = filters[torch.arange(len(filters) - rank) % rank]
    return filters


class _LayerReached(BaseException):
    """Raised by :func:`layer_inputs`' hook: the forward has given the layer its input and goes no further (a
    BaseException, which a forward's ``except Exception`` does not catch)."""


@torch.no_grad()
def layer_inputs(model: nn.Module, layer: nn.Module, images: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """What ``layer`` receives (its first input) when ``model`` runs on ``images``: the images themselves for
    a stem, the earlier layers' output for a conv further in (a model that projects or normalises its input
    first), whose patches are the ones to whiten.

    The forward runs ``chunk`` images at a time (moved to the model's device and dtype) and stops at the layer,
    with the model as in training where that changes what the layer receives and as in evaluation elsewhere:
    BatchNorm layers normalise by the chunk's own statistics, as in a training step (a fresh one in eval mode
    passes its input through unscaled), their running statistics put back after; dropout is off. A layer
    that forward does not call is a ConfigError.
    """
    captured: list[torch.Tensor] = []

    def stop_at_layer(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append((args[0] if args else kwargs["input"]).detach())
        raise _LayerReached

    modes = {module: module.training for module in model.modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    saved = [{name: b.clone() for name, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    handle = layer.register_forward_pre_hook(stop_at_layer, with_kwargs=True)
    model.eval()
    for norm in norms:
        norm.train()
    try:
        for start in range(0, len(images), chunk):
            x = images[start:start + chunk]
            reached = len(captured)
            try:
                model(x if first is None else x.to(device=first.device, dtype=first.dtype))
            except _LayerReached:
                pass
            if len(captured) == reached:
                raise ConfigError(f"patch whitening: the model's forward does not call its conv "
                                  f"'{_layer_name(model, layer)}' (as in evaluation, dropout off); name the conv to "
                                  "whiten with layer:")
    finally:
        handle.remove()
        for module, training in modes.items():
            module.train(training)
        for norm, buffers in zip(norms, saved, strict=True):
            for name, value in buffers.items():
                getattr(norm, name).copy_(value)
    return torch.cat(captured)


def _layer_name(model: nn.Module, layer: nn.Module) -> str:
    return next((name for name, module in model.named_modules() if module is layer), type(layer).__name__)


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
        raise ConfigError(f"patch whitening: conv '{name}' has {conv.out_channels} output channels; "
                          f"whitening {kh}x{kw} patches of {conv.in_channels} channels needs {d} (the filters) or "
                          f"{2 * d} (filters and their negation): give the model such a conv (the airbench "
                          "models' stem is one), or leave strategy.init out")
    second_moment = patch_second_moment(images, (kh, kw), tuple(conv.dilation))
    filters = whitening_filters(second_moment, eps).reshape(d, conv.in_channels, kh, kw)
    if conv.out_channels == 2 * d:
        filters = torch.cat((filters, -filters))
    conv.weight.copy_(filters.to(device=conv.weight.device, dtype=conv.weight.dtype))
    if freeze:
        conv.weight.requires_grad_(False)
