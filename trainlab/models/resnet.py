"""CIFAR-style image classifiers over (C, H, W) inputs: ``resnet``, ``airbench`` (and ``airbench_muon``),
``cifar_tutorial_cnn`` (a one-conv-layer baseline).

Each model exposes ``backbone`` (features) and ``head`` (the last linear layer),
which :mod:`trainlab.finetune` uses to freeze the backbone or give it smaller
learning rates.

References:
    He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    section 4.2 (the CIFAR-10 ResNets: 6n+2 layers, widths 16/32/64, option-A shortcuts;
    ResNet-20 has 0.27M parameters).
    Keller Jordan, airbench (github.com/KellerJordan/cifar10-airbench, ``airbench94.py``),
    and Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv:2404.00498.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.config_fields import FLOAT32_MAX, short_repr
from trainlab.errors import ConfigError, DataError
from trainlab.initializers import dirac_first_filters_
from trainlab.models import MODELS, positive_size
from trainlab.models.global_pool import GlobalMaxPool
from trainlab.option_types import numbers_read


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise DataError(  # the data's shape: exit 3, as a config that does not fit its data (README)
            f"model '{name}' expects images shaped (channels, height, width); got input_shape={tuple(input_shape)}"
        )
    channels, height, width = (int(d) for d in input_shape)
    return channels, height, width


def _positive_widths(name: str, widths: list[int] | tuple[int, ...], count: int) -> list[int]:
    widths = [int(w) for w in widths]
    if len(widths) != count or any(w < 1 for w in widths):
        raise ConfigError(f"model '{name}': widths must be {count} positive integers; got widths={widths}")
    return widths


# ---------------------------------------------------------------------------
# ResNet-(6n+2) for CIFAR (He et al. 2016, section 4.2)
# ---------------------------------------------------------------------------


class ConvBN(nn.Module):
    """3x3 conv (no bias, BN follows) -> BatchNorm -> ReLU: the ResNet stem."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    When the block halves the resolution and widens the channels, the shortcut is
    option A of the paper (``"pad"``: take every second pixel, append zero channels;
    no parameters) or option B (``"conv"``: 1x1 strided conv + BN projection).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        self.projection: nn.Module | None = None
        if shortcut == "conv" and (stride != 1 or in_channels != out_channels):
            self.projection = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # zero channels appended at the end
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """stem -> 3 stages of n basic blocks (stride 1, 2, 2) -> global average pool -> linear head."""

    def __init__(self, in_channels: int, output_dim: int, blocks_per_stage: int, widths: list[int], shortcut: str):
        super().__init__()
        stages: list[tuple[str, nn.Module]] = [("stem", ConvBN(in_channels, widths[0]))]
        width = widths[0]
        for stage, stage_width in enumerate(widths):
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(width, stage_width, stride, shortcut))
                width = stage_width
            stages.append((f"stage{stage + 1}", nn.Sequential(*blocks)))
        stages += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
        self.backbone = nn.Sequential(OrderedDict(stages))
        self.head = nn.Linear(width, output_dim)
        for module in self.modules():  # He init as in torchvision's ResNet
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@MODELS.register("resnet")
def resnet(input_shape: tuple[int, ...], output_dim: int, depth: int = 20, widths: list[int] = (16, 32, 64),
           shortcut: str = "pad") -> nn.Module:
    """CIFAR ResNet-``depth`` (depth = 6n + 2: 8, 14, 20, 32, 44, 56, 110).

    Args:
        depth: total weighted layers; n = (depth - 2) / 6 basic blocks per stage.
        widths: channels of the three stages (paper: 16, 32, 64).
        shortcut: ``"pad"`` (option A, parameter-free, as in the paper's CIFAR runs)
            or ``"conv"`` (option B, 1x1 projection where the shape changes).

    ResNet-20 with the defaults and 10 classes has 269,722 parameters (paper: 0.27M).
    """
    depth, widths = _resnet_values(depth, widths, shortcut)
    channels, _, _ = _image_shape("resnet", input_shape)
    return ResNet(channels, output_dim, (depth - 2) // 6, widths, shortcut)


def _resnet_values(depth: Any, widths: Any, shortcut: Any) -> tuple[int, list[int]]:
    """Refuse what :func:`resnet` refuses from its options alone (its ``check_values``); ``(depth, widths)``."""
    depth = int(depth)
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ConfigError(f"model 'resnet': depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110); got depth={depth}")
    if shortcut not in ("pad", "conv"):
        raise ConfigError(f"model 'resnet': shortcut must be 'pad' or 'conv'; got shortcut={shortcut!r}")
    widths = _positive_widths("resnet", widths, 3)
    if shortcut == "pad" and any(b < a for a, b in zip(widths, widths[1:], strict=False)):
        raise ConfigError(f"model 'resnet': shortcut 'pad' needs non-decreasing widths; got widths={widths}")
    return depth, widths


resnet.check_values = lambda options: _resnet_values(  # type: ignore[attr-defined]
    options["depth"], options["widths"], options["shortcut"])


# ---------------------------------------------------------------------------
# airbench94-style net (Keller Jordan)
# ---------------------------------------------------------------------------
#
# Taken from airbench94.py and airbench94_muon.py (checked against both): a 2x2 "whitening" conv
# stem (width 2 * C * 2 * 2, bias, no padding) followed by GELU; three ConvGroups of conv3x3 ->
# maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU (widths 64, 256, 256); convs without bias and
# with an identity (dirac) init of their first in_channels filters; BatchNorm with eps 1e-12,
# momentum 0.6 in airbench's convention (PyTorch momentum 0.4), scale fixed at 1 (not trained),
# shift trained; a global max pool (airbench's MaxPool2d(3) on the 3x3 map of a 32x32 input); a
# bias-free linear head whose output is scaled by a constant. The two scripts differ only in:
#   airbench94:      logits = head(x) * 1/9; whitening bias starts at 0.
#   airbench94_muon: logits = head(x) / 256 (the feature width); head weight rescaled to unit std
#                    at reset (w *= 1 / w.std()); whitening bias keeps PyTorch's default uniform init.
# ``model: airbench`` is the first, ``model: airbench_muon`` the second (the same options, other
# defaults). The whitening of the stem is not part of the model: it is the ``patch_whitening``
# initializer (``strategy.init``), which needs the training images; without it the stem weight
# stays trainable (a random frozen stem would be useless).
# Left to the training recipe, not the model: the optimizers, label smoothing, lookahead EMA,
# alternating flips, test-time augmentation, training the whitening bias only for the first epochs.
# Precision: airbench runs the net in fp16 (BatchNorm in fp32). Under bf16 autocast (a CPU's fast
# type: 8 significant bits to fp16's 11) the whitening stem is where the rounding hurts: its last
# filters project onto the patches' low-variance directions, a difference of nearly equal pixel
# values scaled by (l + eps)^(-1/2), so bf16's rounding of the inputs and filters becomes 13-16%
# relative noise on those channels (CIFAR-10, airbench's eps) and the logits' relative error
# at init 1.6% (fp16 throughout: 0.25%). So the stem runs in fp32 when autocast is on
# (``stem_precision: fp32``, the default): logits' error 0.43%, for a conv of 12 inputs per output.

SCALING_FACTORS = ("1/width",)  # the named scalings, besides a number > 0 (or a fraction 'a/b' of two)
HEAD_INITS = ("default", "unit_std")
STEM_PRECISIONS = ("fp32", "autocast")
WHITEN_BIAS_INITS = ("zeros", "default")


class _AirbenchBatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features: int, momentum: float):
        super().__init__(num_features, eps=1e-12, momentum=1 - momentum)
        self.weight.requires_grad_(False)  # airbench trains only the BN shift


class _AirbenchConv(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # an implicit residual: the first in_channels filters start as the identity
        dirac_first_filters_(self.weight.data)


class ConvGroup(nn.Module):
    """conv -> maxpool 2 -> BN -> GELU -> conv -> BN -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, batchnorm_momentum: float):
        super().__init__()
        self.conv1 = _AirbenchConv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _AirbenchBatchNorm(out_channels, batchnorm_momentum)
        self.conv2 = _AirbenchConv(out_channels, out_channels)
        self.norm2 = _AirbenchBatchNorm(out_channels, batchnorm_momentum)
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.norm1(self.pool(self.conv1(x))))
        return self.activation(self.norm2(self.conv2(x)))


class Fp32Conv2d(nn.Conv2d):
    """A Conv2d that computes in fp32 when autocast is on (the stem, ``stem_precision: fp32``: notes above)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if not torch.is_autocast_enabled(device):
            return super().forward(x)
        with torch.autocast(device, enabled=False):
            return super().forward(x.float())


class AirbenchNet(nn.Module):
    """whitening conv -> GELU -> 3 ConvGroups -> global max pool -> linear (no bias) * scaling_factor."""

    def __init__(self, in_channels: int, output_dim: int, widths: list[int], whiten_kernel: int,
                 batchnorm_momentum: float, scaling_factor: float, head_init: str = "default",
                 whiten_bias_init: str = "zeros", stem_precision: str = "fp32"):
        super().__init__()
        whiten_width = 2 * in_channels * whiten_kernel**2
        conv_type = Fp32Conv2d if stem_precision == "fp32" else nn.Conv2d
        whiten_conv = conv_type(in_channels, whiten_width, whiten_kernel, padding=0, bias=True)
        if whiten_bias_init == "zeros":
            nn.init.zeros_(whiten_conv.bias)
        groups: list[tuple[str, nn.Module]] = [("whiten", whiten_conv), ("whiten_activation", nn.GELU())]
        width = whiten_width
        for index, group_width in enumerate(widths):
            groups.append((f"group{index + 1}", ConvGroup(width, group_width, batchnorm_momentum)))
            width = group_width
        groups += [("pool", GlobalMaxPool()), ("flatten", nn.Flatten())]
        self.backbone = nn.Sequential(OrderedDict(groups))
        self.head = nn.Linear(width, output_dim, bias=False)
        if head_init == "unit_std":
            with torch.no_grad():
                self.head.weight.mul_(1 / self.head.weight.std())
        self.scaling_factor = float(scaling_factor)

    @property
    def whiten_conv(self) -> nn.Conv2d:
        return self.backbone.whiten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)) * self.scaling_factor


POOLING_STAGES = 3  # the conv groups, each halving the size with a 2x2 max-pool
CIFAR_SIZE = 32  # the image size airbench's lrs were tuned on: the resize named when it is enough


def _check_images_fit(model: str, height: int, width: int, whiten_kernel: int) -> None:
    """Refuse images that the stem and the pooling stages would shrink below one pixel (torch: "Output size
    is too small" at the first batch). The whitening conv (no padding) leaves ``side - whiten_kernel + 1``
    pixels, which the :data:`POOLING_STAGES` 2x2 poolings take to at least 1 only from 2^3 = 8, so a side
    needs ``whiten_kernel + 7``. The error names the largest ``whiten_kernel`` the images take (``side -
    7``) and a ``data.size`` (image_folder's resize, docs/data.md) that meets the need: CIFAR's 32 where it
    does, else the need itself, never a size the images already have."""
    need = whiten_kernel + 2**POOLING_STAGES - 1
    side = min(height, width)
    if side >= need:
        return
    largest_kernel = side - 2**POOLING_STAGES + 1
    kernel_fix = f"model.whiten_kernel <= {largest_kernel} (the largest for {height}x{width}), " \
        if largest_kernel >= 1 else ""
    size = max(need, CIFAR_SIZE)
    size_note = ", the CIFAR size its lrs were tuned on" if size == CIFAR_SIZE else ""
    raise ConfigError(f"model '{model}': images of {height}x{width} are too small for whiten_kernel={whiten_kernel} "
                      f"and {POOLING_STAGES} pooling stages of 2 (need >= {need}x{need}: whiten_kernel + 7); use "
                      f"{kernel_fix}larger images, or resize them (data.size: {size} for an image_folder{size_note})")


def _number_option(value: float) -> float:
    """The signature of one number option, for :func:`~trainlab.option_types.numbers_read` (:func:`_number`)."""
    return value


def _number(value: Any) -> float | None:
    """``value`` as a number > 0 the way every number option reads it (``numbers_read``: ``'1e-1'``, the text
    YAML 1.1 makes of an exponent without a dot, is 0.1); None for anything else (bools, text, 0, inf)."""
    value = numbers_read(_number_option, {"value": value})["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _scaling_factor(model: str, value: Any, last_width: int) -> float:
    """The logits' multiplier that option ``scaling_factor`` gives: ``'1/width'`` is 1 / ``last_width``
    (airbench94_muon); a number > 0 (airbench94: 1/9), also as number text (``'1e-1'``) or as a fraction
    ``'a/b'`` of two such (``'1/9'``: airbench94's value as it is written). Anything else is a ConfigError."""
    if value in SCALING_FACTORS:
        return 1 / last_width
    number = _number(value)
    if number is None and isinstance(value, str) and value.count("/") == 1:
        numerator, denominator = (_number(part) for part in value.split("/"))
        number = numerator / denominator if numerator is not None and denominator is not None else None
    if number is not None and not (number <= FLOAT32_MAX and torch.tensor(number, dtype=torch.float32, device="cpu") > 0):
        number = None  # 1e300 or '1e308/1e-308' is inf, 1e-50 or '1e-300/1e300' 0 in float32 (the logits')
    if number is None:
        raise ConfigError(f"model '{model}': scaling_factor must be a number > 0 within float32's range (e.g. "
                          f"0.111 or '1/9' for 1/9) or '1/width' (1 / widths[-1]); got scaling_factor="
                          f"{short_repr(value)}")
    return number


def _choice(option: str, value: Any, choices: tuple[str, ...], model: str) -> str:
    if value not in choices:
        raise ConfigError(f"model '{model}': {option} must be one of {', '.join(choices)}; got {option}={value!r}")
    return value


@MODELS.register("airbench")
def airbench(input_shape: tuple[int, ...], output_dim: int, widths: list[int] = (64, 256, 256),
             whiten_kernel: int = 2, batchnorm_momentum: float = 0.6, scaling_factor: float | str = 1 / 9,
             head_init: str = "default", whiten_bias_init: str = "zeros", stem_precision: str = "fp32") -> nn.Module:
    """airbench94's network (see the notes above); whiten its stem with ``strategy.init: patch_whitening``.

    Args:
        widths: channels of the three conv groups (airbench94: 64, 256, 256).
        whiten_kernel: patch size of the whitening stem (airbench94: 2).
        batchnorm_momentum: running-average momentum in airbench's convention (weight on the old
            value; PyTorch's momentum is 1 minus this).
        scaling_factor: multiplies the logits: a number > 0 (airbench94: 1/9; number text such as
            ``"1e-1"`` and a fraction such as ``"1/9"`` are read as the number) or ``"1/width"``,
            1 / widths[-1] (airbench94_muon's ``head(x) / x.size(-1)``, 1/256).
        head_init: ``default`` (PyTorch's Linear init) or ``unit_std`` (then w *= 1 / std(w),
            airbench94_muon).
        whiten_bias_init: ``zeros`` (airbench94) or ``default`` (PyTorch's uniform Conv2d bias
            init, airbench94_muon).
        stem_precision: ``fp32`` runs the whitening conv in fp32 when autocast is on (see the
            notes above); ``autocast`` lets autocast cast it like every other conv.
    """
    return _airbench("airbench", input_shape, output_dim, widths, whiten_kernel, batchnorm_momentum,
                     scaling_factor, head_init, whiten_bias_init, stem_precision)


@MODELS.register("airbench_muon")
def airbench_muon(input_shape: tuple[int, ...], output_dim: int, widths: list[int] = (64, 256, 256),
                  whiten_kernel: int = 2, batchnorm_momentum: float = 0.6, scaling_factor: float | str = "1/width",
                  head_init: str = "unit_std", whiten_bias_init: str = "default",
                  stem_precision: str = "fp32") -> nn.Module:
    """airbench94_muon's CifarNet: ``airbench`` with logits / 256, a unit-std head and a default-init stem bias."""
    return _airbench("airbench_muon", input_shape, output_dim, widths, whiten_kernel, batchnorm_momentum,
                     scaling_factor, head_init, whiten_bias_init, stem_precision)


def _airbench(name: str, input_shape: tuple[int, ...], output_dim: int, widths: list[int], whiten_kernel: int,
              batchnorm_momentum: float, scaling_factor: float | str, head_init: str,
              whiten_bias_init: str, stem_precision: str) -> nn.Module:
    widths, scaling_factor = _airbench_values(name, widths, whiten_kernel, batchnorm_momentum, scaling_factor,
                                              head_init, whiten_bias_init, stem_precision)
    channels, height, width = _image_shape(name, input_shape)
    _check_images_fit(name, height, width, int(whiten_kernel))
    return AirbenchNet(channels, output_dim, widths, int(whiten_kernel), float(batchnorm_momentum),
                       float(scaling_factor), head_init, whiten_bias_init, stem_precision)


def _airbench_values(name: str, widths: Any, whiten_kernel: Any, batchnorm_momentum: Any, scaling_factor: Any,
                     head_init: Any, whiten_bias_init: Any, stem_precision: Any) -> tuple[list[int], float]:
    """Refuse what ``airbench``/``airbench_muon`` refuse from their options alone, whatever the images (their
    ``check_values``); ``(widths, scaling_factor)`` as the net takes them."""
    widths = _positive_widths(name, widths, 3)
    if not 0.0 <= batchnorm_momentum < 1.0:
        raise ConfigError(f"model '{name}': batchnorm_momentum must be in [0, 1); got {batchnorm_momentum}")
    if int(whiten_kernel) < 1:
        raise ConfigError(f"model '{name}': whiten_kernel must be >= 1; got {whiten_kernel}")
    scaling_factor = _scaling_factor(name, scaling_factor, widths[-1])
    _choice("head_init", head_init, HEAD_INITS, name)
    _choice("whiten_bias_init", whiten_bias_init, WHITEN_BIAS_INITS, name)
    _choice("stem_precision", stem_precision, STEM_PRECISIONS, name)
    return widths, scaling_factor


def _airbench_check(name: str) -> Callable[[dict[str, Any]], object]:
    return lambda options: _airbench_values(name, *(options[key] for key in (
        "widths", "whiten_kernel", "batchnorm_momentum", "scaling_factor", "head_init", "whiten_bias_init",
        "stem_precision")))


airbench.check_values = _airbench_check("airbench")  # type: ignore[attr-defined]
airbench_muon.check_values = _airbench_check("airbench_muon")  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# A one-conv-layer baseline CNN (``cifar_tutorial_cnn``)
# ---------------------------------------------------------------------------


@MODELS.register("cifar_tutorial_cnn")
def cifar_tutorial_cnn(input_shape: tuple[int, ...], output_dim: int, channels: int = 64) -> nn.Module:
    """conv C->64 (3x3, padding 1) -> ReLU -> maxpool 2 -> flatten -> linear to the classes.

    The flatten size is measured from the layers: 64 * (H // 2) * (W // 2), i.e. 64 * 16 * 16 = 16384 for
    32x32 images (165,642 parameters for 3 channels and 10 classes); the tutorial code this model was written
    from hard-coded a size that did not match its own layers. Despite its name it is not the PyTorch CIFAR-10
    tutorial's network (conv 3->6 5x5, pool, conv 6->16 5x5, pool, linear 400->120->84->10: ~62k
    parameters); the name stays so that existing configs and run folders still load.
    """
    channels = positive_size("cifar_tutorial_cnn", "channels", channels)
    in_channels, height, width = _image_shape("cifar_tutorial_cnn", input_shape)
    if height < 2 or width < 2:
        raise ConfigError(f"model 'cifar_tutorial_cnn': images must be at least 2x2; got {height}x{width}")
    flat = channels * (height // 2) * (width // 2)
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)),
        ("relu", nn.ReLU()),
        ("pool", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("head", nn.Linear(flat, output_dim)),
    ]))


cifar_tutorial_cnn.check_values = lambda options: positive_size(  # type: ignore[attr-defined]
    "cifar_tutorial_cnn", "channels", options["channels"])
