"""A second ``trainlab.fit`` on the same module continues from its trained weights (README): the strategy's
``init`` acts on a module the first time a fit trains it, and is skipped, with one warning, on a later fit
of that module; a new module, or one whose fit failed before training, is still initialised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainlab
from trainlab.errors import ConfigError

TRAIN = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 16, "epochs": 5,
         "init": {"name": "constant", "value": 0.5}}
STILL = dict(TRAIN, epochs=1, optimizer={"name": "sgd", "lr": 1e-30})  # a fit that moves no weight


def _blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(scale=3.0, size=(3, 4))[y] + rng.normal(size=(n, 4))).astype(np.float32), y


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]


def test_second_fit_keeps_the_trained_weights_and_warns(capsys):
    x, y = _blobs()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    trainlab.fit(model, (x, y), TRAIN)
    trained = _weights(model)
    assert not np.allclose(trained[0], 0.5), "the first fit should have trained away from the constant init"
    assert "strategy.init" not in capsys.readouterr().err  # the first fit initialises without a word
    trainlab.fit(model, (x, y), STILL)  # was: re-initialised to 0.5 before training, silently
    for after, before in zip(_weights(model), trained, strict=True):
        np.testing.assert_array_equal(after, before)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "strategy.init" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: strategy.init {'name': 'constant', 'value': 0.5} is skipped")
    assert "keeps its trained weights" in warnings[0] and "pass a new module" in warnings[0]
    assert "trainlab.initializers.initialize(model" in warnings[0]


def test_a_new_module_is_still_initialised(capsys):
    x, y = _blobs()
    trainlab.fit(torch.nn.Linear(4, 3), (x, y), TRAIN)
    fresh = torch.nn.Linear(4, 3)
    trainlab.fit(fresh, (x, y), STILL)
    weight, bias = _weights(fresh)
    np.testing.assert_array_equal(weight, np.full((3, 4), 0.5, dtype=np.float32))  # constant fill
    np.testing.assert_allclose(bias, np.zeros(3), atol=1e-20)  # biases zeroed (lr 1e-30 moves them by ~1e-32)
    assert "strategy.init" not in capsys.readouterr().err


def test_a_fit_that_failed_before_training_leaves_the_module_untrained(capsys):
    x, y = _blobs()
    model = torch.nn.Linear(4, 3)
    with pytest.raises(ConfigError):
        trainlab.fit(model, (x, y), dict(STILL, batch_size=0))
    trainlab.fit(model, (x, y), STILL)
    np.testing.assert_array_equal(_weights(model)[0], np.full((3, 4), 0.5, dtype=np.float32))
    assert "strategy.init" not in capsys.readouterr().err


def test_the_warnings_call_for_an_initializer_that_reads_images_runs_as_given(capsys):
    """For patch_whitening the warning suggested initialize(model, {...}) without images=, which raised."""
    import re

    from trainlab.initializers import initialize

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 1, 6, 6)).astype(np.float32), np.arange(40) % 2
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 2), torch.nn.Flatten(), torch.nn.Linear(200, 2))
    strategy = dict(STILL, init={"name": "patch_whitening", "images": 30})
    trainlab.fit(model, (x, y), strategy)
    capsys.readouterr()
    trainlab.fit(model, (x, y), strategy)
    warning = next(line for line in capsys.readouterr().err.splitlines() if "strategy.init" in line)
    call = re.search(r"trainlab\.initializers\.(initialize\(model, .*?\]\)) \(inputs: ", warning)
    assert call, warning
    assert call.group(1) == ("initialize(model, {'name': 'patch_whitening', 'images': 30}, "
                             "images=inputs[torch.randperm(len(inputs))[:30]])")
    model[0].weight.requires_grad_(True)
    eval(call.group(1), {"initialize": initialize, "model": model, "inputs": torch.from_numpy(x), "torch": torch})
    assert not model[0].weight.requires_grad  # whitened and frozen again
