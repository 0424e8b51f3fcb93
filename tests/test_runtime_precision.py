"""``runtime.precision: auto`` on CUDA: bf16 only where the GPU runs it natively (compute capability >= 8.0).

torch.cuda.is_bf16_supported() counts emulation by default (True on a T4 or V100, whose bf16 is emulated and
has no cuDNN convolutions); the GPU is stood in for by the function torch would answer with on each card."""

from __future__ import annotations

import pytest
import torch

from trainlab.runtime import resolve_precision


def _card(native: bool):
    """torch.cuda.is_bf16_supported on a card: an Ampere-or-later one (native) or a T4 (emulated only)."""
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native or including_emulation
    return is_bf16_supported


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_cuda_is_bf16_only_where_it_is_native(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", _card(native))
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"  # a stated precision is kept
