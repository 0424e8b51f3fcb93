"""Test-time augmentation: a model's outputs averaged over mirrored and translated views of each image.

airbench's ``infer`` (KellerJordan/cifar10-airbench, airbench94_muon.py), generalised to a
translation of ``r`` pixels. With ``predict`` the model's forward pass on a batch x (N, C, H, W):

    mirror(x)    = (predict(x) + predict(flip(x))) / 2     with flip; predict(x) without
    shift(x, s)  = pad x by r (reflect), crop H x W at offset r + s per axis
    tta(x)       = mirror(x)                                                       translate r = 0
                 = mirror(x) / 2 + (mirror(shift(x, -r)) + mirror(shift(x, +r))) / 4   translate r > 0

``flip: true, translate: 0`` is airbench's ``tta_level=1`` (2 views), ``flip: true, translate: 1``
its ``tta_level=2`` (6 views). The views are averaged as outputs (logits), the loss and metrics
are computed on the average. It runs on the evaluation transform's output (normalised images):
reflect padding commutes with a per-channel affine normalisation, as in airbench.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trainlab.errors import ConfigError
from trainlab.registry import value_hint

TTA_WHEN = ("final", "always")  # final: the summary's val/test and `trainlab eval`; always: every validation too


@dataclass(frozen=True)
class TestTimeAugmentation:
    """Average ``predict`` over mirrored (``flip``) and ``translate``-pixel shifted views (module docstring).

    ``when``: ``final`` applies it to the run's final val/test evaluation (summary.json, ``trainlab
    eval``) only, so per-epoch validation costs one forward pass; ``always`` to every validation too.
    """

    __test__ = False  # not a pytest test class, whatever its name
    flip: bool = True
    translate: int = 1
    when: str = "final"

    def __post_init__(self) -> None:
        if isinstance(self.translate, bool) or not isinstance(self.translate, int) or self.translate < 0:
            raise ConfigError(f"strategy.tta.translate must be an integer >= 0 (pixels); got {self.translate!r}")
        if self.when not in TTA_WHEN:
            raise ConfigError(f"strategy.tta.when must be one of {', '.join(TTA_WHEN)}; got {self.when!r}"
                              f"{value_hint(self.when, TTA_WHEN)}")

    @property
    def views(self) -> int:
        """Forward passes per batch: (2 if flip else 1) x (3 if translate else 1)."""
        return (2 if self.flip else 1) * (3 if self.translate else 1)

    def describe(self) -> dict[str, Any]:
        """What summary.json records under ``evaluation.tta``."""
        return {"flip": self.flip, "translate": self.translate, "when": self.when, "views": self.views}

    def check_input(self, input_shape: tuple[int, ...], flattened: bool = False) -> None:
        """One-line ConfigError unless inputs are images (C, H, W) larger than the reflect padding;
        ``flattened``: the data source flattened its images (``data.flatten: true``), which the fix names."""
        if len(input_shape) != 3:
            unflatten = "; or keep the images' shape: data.flatten: false" if flattened else ""
            raise ConfigError(f"strategy.tta needs image inputs shaped (C, H, W); got inputs shaped "
                              f"{tuple(input_shape)} (remove strategy.tta{unflatten})")
        if self.translate >= min(input_shape[1:]):
            raise ConfigError(f"strategy.tta.translate={self.translate} must be smaller than the image size "
                              f"{tuple(input_shape[1:])} (reflect padding)")

    def mirror(self, predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        output = predict(x).float()
        if not self.flip:
            return output
        return 0.5 * output + 0.5 * predict(x.flip(-1)).float()

    def __call__(self, predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """tta(x) for a batch x (N, C, H, W), as float32."""
        if x.ndim != 4:
            raise ConfigError(f"strategy.tta needs image batches shaped (N, C, H, W); got {tuple(x.shape)}")
        centre = self.mirror(predict, x)
        r = self.translate
        if r == 0:
            return centre
        height, width = x.shape[-2:]
        padded = F.pad(x, (r, r, r, r), mode="reflect")
        up_left = padded[:, :, 0:height, 0:width]  # offset r - r: shifted by -r
        down_right = padded[:, :, 2 * r:2 * r + height, 2 * r:2 * r + width]  # offset r + r
        shifted = 0.5 * self.mirror(predict, up_left) + 0.5 * self.mirror(predict, down_right)
        return 0.5 * centre + 0.5 * shifted


def build_tta(options: TestTimeAugmentation | None, input_shape: tuple[int, ...],
              flattened: bool = False) -> TestTimeAugmentation | None:
    """The run's TTA after checking it fits the data (``flattened``: see :meth:`TestTimeAugmentation.check_input`);
    None when off or when it has a single view."""
    if options is None or options.views == 1:
        return None
    options.check_input(input_shape, flattened)
    return options
