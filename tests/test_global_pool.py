"""GlobalMaxPool: the adaptive max-pool's own numbers on a CPU (and on a GPU without deterministic
algorithms), a reduction with a deterministic backward on a GPU under ``runtime.deterministic``, where
PyTorch's adaptive max-pool has none and raises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.models.global_pool import GlobalMaxPool


def _forward_backward(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    out.backward(upstream)
    return out.detach(), x.grad


@pytest.mark.parametrize("deterministic", [False, True])
def test_on_a_cpu_it_computes_the_adaptive_max_pools_numbers_bit_for_bit(deterministic):
    # whole numbers 0-2: many positions tie for a maximum, where the pool's gradient goes to one of them
    x = torch.randint(0, 3, (4, 6, 5, 7), generator=torch.Generator().manual_seed(0)).float()
    upstream = torch.randn(4, 6, 1, 1, generator=torch.Generator().manual_seed(1))
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        out, grad = _forward_backward(GlobalMaxPool(), x, upstream)
        expected_out, expected_grad = _forward_backward(nn.AdaptiveMaxPool2d(1), x, upstream)
    finally:
        torch.use_deterministic_algorithms(before)
    assert torch.equal(out, expected_out) and torch.equal(grad, expected_grad)


def test_the_reduction_is_the_max_written_out_in_numpy():
    """The largest value per (n, c); its gradient on the maximum, shared where positions tie."""
    x = np.array([[[[1.0, 5.0], [5.0, -2.0]], [[0.5, 0.25], [3.0, 1.0]]]], dtype=np.float32)  # channel 0 ties
    upstream = np.array([[[[2.0]], [[4.0]]]], dtype=np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = GlobalMaxPool().reduce(xt)
    out.backward(torch.from_numpy(upstream))
    np.testing.assert_array_equal(out.detach().numpy(), x.max(axis=(2, 3), keepdims=True))
    is_max = x == x.max(axis=(2, 3), keepdims=True)
    np.testing.assert_array_equal(xt.grad.numpy(), upstream * is_max / is_max.sum(axis=(2, 3), keepdims=True))
    assert xt.grad[0, 0, 0, 1] == xt.grad[0, 0, 1, 0] == 1.0  # the tie shares the upstream 2.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the deterministic branch runs on a GPU only")
@pytest.mark.parametrize("name", ["airbench", "resnet"])
def test_on_a_gpu_under_deterministic_algorithms_the_models_train(name):
    """airbench's global max-pool would raise there (nn.AdaptiveMaxPool2d has no deterministic CUDA backward);
    resnet's global average pool is a mean, which has one."""
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
    from trainlab.models import MODELS

    x = torch.randn(8, 3, 32, 32, device="cuda")
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        if name == "airbench":
            with pytest.raises(RuntimeError, match="deterministic"):
                nn.AdaptiveMaxPool2d(1).cuda()(x.clone().requires_grad_(True)).sum().backward()
            features = torch.randn(8, 16, 4, 4, device="cuda")
            torch.testing.assert_close(GlobalMaxPool()(features), nn.AdaptiveMaxPool2d(1)(features))
        model = MODELS.get(name)((3, 32, 32), 10).cuda()
        model(x).sum().backward()
    finally:
        torch.use_deterministic_algorithms(before)
