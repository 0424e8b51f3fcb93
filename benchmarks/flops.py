"""FLOPs of a training step and the matmul peak they are compared with (nanoGPT's MFU, measured, not assumed).

Counting: :class:`torch.utils.flop_counter.FlopCounterMode` (PyTorch's shape-based counter) around
one forward pass plus loss, and separately around its ``backward()``. It counts the matrix
products (``mm``, ``addmm``, ``bmm``, convolutions, attention) at 2 FLOPs per multiply-add, e.g.
``Linear`` with in ``k``, out ``n`` on ``m`` rows: forward ``2 m n k``; backward ``2 m n k`` for the
weight gradient plus ``2 m n k`` for the input gradient (absent for the first layer when the input
needs no gradient, and for frozen weights). Elementwise work (activations, norms, the loss, the
optimizer update) is not counted, as in every MFU figure. The usual rule "step = 3 x forward"
(nanoGPT's 6N per token) over-counts a first layer that needs no input gradient; the counted
backward is used here and the rule's figure is kept next to it.

Peak: the best FLOP/s of square matmuls ``(n x n) @ (n x n)`` (``2 n^3`` FLOPs each) over a few
sizes, timed in the same process and thread count as the steps, best of a few repeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


class StepFlops(NamedTuple):
    """Counted FLOPs of one training step's forward (with loss) and backward."""

    forward: int
    backward: int

    @property
    def total(self) -> int:
        return self.forward + self.backward

    @property
    def three_times_forward(self) -> int:
        """The rule-of-thumb count: backward = 2 x forward."""
        return 3 * self.forward


def matmul_flops(m: int, n: int, k: int) -> int:
    """FLOPs of an (m x k) @ (k x n) product: m n k multiply-adds, 2 FLOPs each."""
    return 2 * m * n * k


def step_flops(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               x: torch.Tensor, y: torch.Tensor,
               autocast_dtype: torch.dtype | None = None) -> StepFlops:
    """Count the FLOPs of ``loss_fn(model(x), y)`` and of its backward; gradients are cleared afterwards."""
    autocast = (torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else torch.autocast(x.device.type, enabled=False))
    with FlopCounterMode(display=False) as forward, autocast:
        loss = loss_fn(model(x), y)
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return StepFlops(int(forward.get_total_flops()), int(backward.get_total_flops()))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, sizes: Sequence[int], repeats: int = 3, budget_s: float = 4.0,
                device: torch.device | str = "cpu") -> dict[str, object]:
    """The best FLOP/s of ``n x n`` matmuls in ``dtype`` over ``sizes`` (ascending), best of ``repeats`` each.

    A size whose single product took over ``budget_s / repeats`` is timed once and larger sizes
    are skipped (bf16 without native support runs at ~1 GFLOP/s: a 2048 product would take ~20 s).
    Returns ``{"flops_per_s": best, "sizes": {n: best FLOP/s}, "skipped": [n, ...]}``.
    """
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(0)
    per_size: dict[str, float] = {}
    skipped: list[int] = []
    for position, n in enumerate(sizes):
        a = torch.randn(n, n, generator=generator, device=device).to(dtype)
        b = torch.randn(n, n, generator=generator, device=device).to(dtype)
        best = float("inf")
        for _ in range(1 + repeats):  # the first product warms the kernel up and is not counted
            _synchronize(device)
            started = time.perf_counter()
            torch.mm(a, b)
            _synchronize(device)
            elapsed = time.perf_counter() - started
            if _ > 0:
                best = min(best, elapsed)
            elif elapsed > budget_s / repeats:  # too slow for repeats: keep this one timing and stop growing
                best = elapsed
                skipped = list(sizes[position + 1:])
                break
        per_size[str(n)] = matmul_flops(n, n, n) / best
        if skipped:
            break
    return {"flops_per_s": max(per_size.values()), "sizes": per_size, "skipped": skipped}
