"""benchmarks/flops.py: FlopCounterMode's step count against the closed forms of a Linear layer and a conv."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from flops import matmul_flops, matmul_peak, step_flops  # noqa: E402


def mean_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((output - target) ** 2).mean()


def test_matmul_flops_is_two_per_multiply_add():
    assert matmul_flops(3, 5, 7) == 2 * 3 * 5 * 7


def test_linear_forward_is_2mnk_and_backward_counts_only_the_gradients_needed():
    m, k, n = 6, 10, 4
    layer = nn.Linear(k, n)
    x, y = torch.randn(m, k), torch.randn(m, n)
    counted = step_flops(layer, mean_loss, x, y)
    assert counted.forward == 2 * m * n * k
    # the input needs no gradient: only the weight gradient (x^T @ grad_out: 2 m n k); the bias
    # gradient is a sum, not a matmul
    assert counted.backward == 2 * m * n * k
    assert counted.three_times_forward == 6 * m * n * k
    assert all(p.grad is None for p in layer.parameters())  # cleared after counting


def test_two_linears_backward_adds_the_hidden_input_gradient():
    m, k, h, n = 5, 8, 6, 3
    model = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, n))
    counted = step_flops(model, mean_loss, torch.randn(m, k), torch.randn(m, n))
    assert counted.forward == 2 * m * h * k + 2 * m * n * h
    # weight gradients of both layers, plus the input gradient of the second layer only
    assert counted.backward == (2 * m * h * k + 2 * m * n * h) + 2 * m * h * n
    assert counted.total == counted.forward + counted.backward


def test_conv_forward_is_two_per_multiply_add_per_output():
    batch, c_in, c_out, size, kernel = 2, 3, 4, 6, 3
    conv = nn.Conv2d(c_in, c_out, kernel, bias=False)
    out = size - kernel + 1
    counted = step_flops(conv, lambda o, t: o.mean(), torch.randn(batch, c_in, size, size), torch.zeros(1))
    assert counted.forward == 2 * batch * c_out * out * out * c_in * kernel * kernel


def test_matmul_peak_reports_every_size_and_the_best():
    peak = matmul_peak(torch.float32, [16, 32], repeats=1)
    assert set(peak["sizes"]) == {"16", "32"}
    assert peak["flops_per_s"] == max(peak["sizes"].values()) > 0
    assert peak["skipped"] == []
