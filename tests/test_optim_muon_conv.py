"""muon_conv (airbench's Muon on conv kernels) against the algorithm written out in NumPy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

import trainlab.optim.builtins  # noqa: F401
from tests.muon_reference import NumpyMuon
from tests.muon_reference import newton_schulz5 as numpy_newton_schulz5
from trainlab.engine.serialize import join_state, split_state
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS
from trainlab.optim import muon_conv as muon_conv_module
from trainlab.optim.muon_conv import newton_schulz5, ns_compute_dtype

SHAPES = [(6, 3, 3, 3), (8, 2, 1, 1), (5, 7), (4, 2, 5)]  # a wide kernel, a tall one, a matrix, a Conv1d kernel


def _problem(dtype=torch.float64):
    """Parameters and targets for L = sum 0.5 ||W - T||^2 (gradient W - T, so it changes every step)."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype)) for shape in SHAPES]
    targets = [torch.randn(*shape, generator=generator, dtype=dtype) for shape in SHAPES]
    return params, targets


def _loss(params, targets):
    return sum(0.5 * ((p - t) ** 2).sum() for p, t in zip(params, targets, strict=True))


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("normalize_weights", [True, False])
def test_steps_match_the_numpy_algorithm(nesterov, normalize_weights):
    params, targets = _problem()
    settings = dict(momentum=0.6, nesterov=nesterov, ns_steps=3, normalize_weights=normalize_weights,
                    weight_decay=0.1 if not normalize_weights else 0.0)
    optimizer = OPTIMIZERS.build({"name": "muon_conv", **settings, "ns_dtype": "float64"},
                                 [{"params": params}], lr=0.24)
    reference = NumpyMuon(**settings)
    weights = [p.detach().numpy().copy() for p in params]
    goals = [t.numpy() for t in targets]
    for step in range(5):
        lr = 0.24 * (1 - step / 5)  # the schedule writes group["lr"]; the step must read it
        optimizer.param_groups[0]["lr"] = lr
        optimizer.zero_grad()
        _loss(params, targets).backward()
        optimizer.step()
        weights = [reference.step(i, w, w - t, lr) for i, (w, t) in enumerate(zip(weights, goals, strict=True))]
        for p, w in zip(params, weights, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-10, atol=1e-12)


def test_float32_iteration_is_close_to_float64():
    params, targets = _problem(torch.float32)
    optimizer = OPTIMIZERS.build({"name": "muon_conv", "ns_dtype": "float32"}, [{"params": params}], lr=0.1)
    reference = NumpyMuon(momentum=0.6, nesterov=True, ns_steps=3, normalize_weights=True)
    weights = [p.detach().double().numpy() for p in params]
    for _ in range(3):
        optimizer.zero_grad()
        _loss(params, targets).backward()
        optimizer.step()
        weights = [reference.step(i, w, w - t.double().numpy(), 0.1) for i, (w, t) in enumerate(zip(weights, targets, strict=True))]
    for p, w in zip(params, weights, strict=True):
        np.testing.assert_allclose(p.detach().double().numpy(), w, rtol=1e-4, atol=1e-5)


def test_bfloat16_iteration_is_close_to_float64():
    matrix = torch.randn(16, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = newton_schulz5(matrix.float(), 3, torch.bfloat16).double().numpy()
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, numpy_newton_schulz5(matrix.numpy(), 3), atol=0.05)


def test_newton_schulz_output_is_roughly_orthogonal():
    """airbench: the quintic gives U S' V^T with S' roughly in [0.5, 1.5], not exactly U V^T."""
    matrix = torch.randn(24, 54, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    singular = np.linalg.svd(newton_schulz5(matrix, 5, torch.float64).numpy(), compute_uv=False)
    assert singular.min() > 0.5 and singular.max() < 1.5


def test_auto_dtype_is_bf16_only_where_native(monkeypatch):
    import trainlab.runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(trainlab.runtime, "cpu_has_native_bf16", lambda: False)
    assert ns_compute_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(trainlab.runtime, "cpu_has_native_bf16", lambda: True)
    assert ns_compute_dtype("auto", cpu) == torch.bfloat16
    assert ns_compute_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert ns_compute_dtype("float32", torch.device("cuda")) == torch.float32
    assert muon_conv_module.NS_DTYPES["bfloat16"] == torch.bfloat16


def _through_disk(state: dict) -> dict:
    tree, tensors = split_state(state)
    blob = save_tensors({k: v.contiguous() for k, v in tensors.items()})
    return join_state(json.loads(json.dumps(tree)), load_tensors(blob))


def test_state_dict_round_trip_continues_bit_identically():
    spec = {"name": "muon_conv", "ns_dtype": "float32"}
    params, targets = _problem(torch.float32)
    optimizer = OPTIMIZERS.build(spec, [{"params": params}], lr=0.2)

    def run(ps, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            _loss(ps, targets).backward()
            opt.step()

    run(params, optimizer, 3)
    saved_params = [p.detach().clone() for p in params]
    saved = _through_disk(optimizer.state_dict())
    assert set(saved["state"][0]) == {"momentum_buffer"}
    run(params, optimizer, 3)

    fresh = [torch.nn.Parameter(p.clone()) for p in saved_params]
    resumed = OPTIMIZERS.build(spec, [{"params": fresh}], lr=0.2)
    resumed.load_state_dict(saved)
    run(fresh, resumed, 3)
    for a, b in zip(params, fresh, strict=True):
        assert torch.equal(a, b)


def test_refuses_vectors_and_bad_options():
    with pytest.raises(ConfigError, match=r"muon_conv.*ndim >= 2.*shape \(3,\).*strategy.optimizer.groups"):
        OPTIMIZERS.build("muon_conv", [{"params": [torch.nn.Parameter(torch.zeros(3))]}], lr=0.1)
    matrix = torch.nn.Parameter(torch.zeros(3, 3))
    with pytest.raises(ConfigError, match=r"ns_dtype.*Received: ns_dtype='half'"):
        OPTIMIZERS.build({"name": "muon_conv", "ns_dtype": "half"}, [{"params": [matrix]}], lr=0.1)
    with pytest.raises(ConfigError, match=r"ns_steps"):
        OPTIMIZERS.build({"name": "muon_conv", "ns_steps": 0}, [{"params": [matrix]}], lr=0.1)
