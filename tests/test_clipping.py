"""trainlab.engine.clipping against the formula written out in NumPy, and torch's clip_grad_norm_."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from trainlab.engine.clipping import clip_grad_norm, global_norm

SHAPES = [(64, 3, 3, 3), (64,), (256, 64, 3, 3), (256,), (10, 256), (10,), (1,)]


def _params(scale: float, dtypes=(torch.float32,), seed: int = 0) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(SHAPES):
        dtype = dtypes[i % len(dtypes)]
        p = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
        p.grad = (scale * torch.randn(shape, generator=generator)).to(dtype)
        params.append(p)
    return params


def _numpy_clip(grads: list[np.ndarray], max_norm: float) -> tuple[float, list[np.ndarray]]:
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)))
    coefficient = min(1.0, max_norm / (total + 1e-6))
    return total, [g.astype(np.float64) * coefficient for g in grads]


@pytest.mark.parametrize("scale, max_norm", [(1.0, 0.5), (1e-3, 10.0), (50.0, 1.0)])
def test_clip_grad_norm_is_the_published_formula(scale, max_norm):
    params = _params(scale)
    expected_total, expected = _numpy_clip([p.grad.numpy().copy() for p in params], max_norm)
    total = clip_grad_norm(params, max_norm)
    assert float(total) == pytest.approx(expected_total, rel=1e-5)
    for p, want in zip(params, expected, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("dtypes", [(torch.float32,), (torch.float32, torch.float64)])
def test_clip_grad_norm_gives_torchs_result_bit_for_bit(dtypes):
    ours, theirs = _params(3.0, dtypes), _params(3.0, dtypes)
    total = clip_grad_norm(ours, 1.0)
    torch_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=True)
    assert torch.equal(total, torch_total)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs, strict=True))


def test_parameters_without_a_gradient_are_left_out_and_none_at_all_gives_zero():
    params = _params(2.0)
    params[1].grad = None
    expected_total, _ = _numpy_clip([p.grad.numpy().copy() for p in params if p.grad is not None], 1.0)
    assert float(clip_grad_norm(params, 1.0)) == pytest.approx(expected_total, rel=1e-5)
    assert params[1].grad is None
    assert float(clip_grad_norm([torch.nn.Parameter(torch.ones(3))], 1.0)) == 0.0
    assert float(global_norm([])) == 0.0


def test_global_norm_is_the_l2_norm_of_every_gradient_as_one_vector():
    grads = [p.grad for p in _params(0.7, (torch.float32, torch.float64))]
    flat = np.concatenate([g.double().numpy().ravel() for g in grads])
    assert float(global_norm(grads)) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-6)


def _aten_ops(function) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        function()
    return sum(event.count for event in prof.key_averages() if event.key.startswith("aten::"))


def test_clipping_dispatches_fewer_ops_than_torchs_function():
    """The reason for the module: no per-parameter .to and no regrouping (a host-bound GPU step pays per op)."""
    ours, theirs = _params(3.0), _params(3.0)
    our_ops = _aten_ops(lambda: clip_grad_norm(ours, 1.0))
    torch_ops = _aten_ops(lambda: torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=True))
    assert our_ops + len(SHAPES) <= torch_ops, (our_ops, torch_ops)
