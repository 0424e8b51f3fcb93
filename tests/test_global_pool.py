"""GlobalPool: the adaptive pools' own numbers on a CPU (and on a GPU without deterministic algorithms), a
reduction with a deterministic backward on a GPU under ``runtime.deterministic``, where PyTorch's adaptive
pools have none and raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.models.global_pool import GlobalPool

REFERENCE = {"max": nn.AdaptiveMaxPool2d(1), "avg": nn.AdaptiveAvgPool2d(1)}


def _forward_backward(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    out.backward(upstream)
    return out.detach(), x.grad


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_on_a_cpu_it_computes_the_adaptive_pools_numbers_bit_for_bit(kind, deterministic):
    # whole numbers 0-2: many positions tie for a maximum, where the pool's gradient goes to one of them
    x = torch.randint(0, 3, (4, 6, 5, 7), generator=torch.Generator().manual_seed(0)).float()
    upstream = torch.randn(4, 6, 1, 1, generator=torch.Generator().manual_seed(1))
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        out, grad = _forward_backward(GlobalPool(kind), x, upstream)
        expected_out, expected_grad = _forward_backward(REFERENCE[kind], x, upstream)
    finally:
        torch.use_deterministic_algorithms(before)
    assert torch.equal(out, expected_out) and torch.equal(grad, expected_grad)


def test_the_reduction_is_the_pool_written_out_in_numpy():
    """max: the largest value per (n, c), its gradient on the maximum (shared where positions tie);
    avg: the mean, its gradient upstream / (H * W) everywhere."""
    x = np.array([[[[1.0, 5.0], [5.0, -2.0]], [[0.5, 0.25], [3.0, 1.0]]]], dtype=np.float32)  # channel 0 ties
    upstream = np.array([[[[2.0]], [[4.0]]]], dtype=np.float32)
    pool = GlobalPool("max")
    xt = torch.from_numpy(x).requires_grad_(True)
    out = pool.reduce(xt)
    out.backward(torch.from_numpy(upstream))
    np.testing.assert_array_equal(out.detach().numpy(), x.max(axis=(2, 3), keepdims=True))
    is_max = x == x.max(axis=(2, 3), keepdims=True)
    np.testing.assert_array_equal(xt.grad.numpy(), upstream * is_max / is_max.sum(axis=(2, 3), keepdims=True))
    assert xt.grad[0, 0, 0, 1] == xt.grad[0, 0, 1, 0] == 1.0  # the tie shares the upstream 2.0
    xt = torch.from_numpy(x).requires_grad_(True)
    out = GlobalPool("avg").reduce(xt)
    out.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(out.detach().numpy(), x.mean(axis=(2, 3), keepdims=True), rtol=1e-7)
    np.testing.assert_array_equal(xt.grad.numpy(), np.broadcast_to(upstream / 4, x.shape))


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        GlobalPool("sum")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the deterministic branch runs on a GPU only")
@pytest.mark.parametrize("name", ["airbench", "resnet"])
def test_on_a_gpu_under_deterministic_algorithms_the_models_train_where_the_adaptive_pools_raise(name):
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
    from trainlab.models import MODELS

    x = torch.randn(8, 3, 32, 32, device="cuda")
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        kind = "max" if name == "airbench" else "avg"
        with pytest.raises(RuntimeError, match="deterministic"):
            REFERENCE[kind].cuda()(x.clone().requires_grad_(True)).sum().backward()
        model = MODELS.get(name)((3, 32, 32), 10).cuda()
        model(x).sum().backward()
        eager = GlobalPool(kind)
        features = torch.randn(8, 16, 4, 4, device="cuda")
        torch.testing.assert_close(eager(features), REFERENCE[kind](features))
    finally:
        torch.use_deterministic_algorithms(before)
