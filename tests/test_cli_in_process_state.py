"""trainlab.cli.main called from Python (a notebook, a script) leaves the process as it found it: a
``--data-dir`` of one call set TRAINLAB_DATA_DIR for good (the next call, without it, read its data from
that folder), and every call added a warnings filter hiding torch's UserWarnings from the user's own code.
Also: a float64 model given to fit is told that trainlab trains in float32, not that its inputs were."""

from __future__ import annotations

import copy
import json
import os
import warnings

import numpy as np
import pytest
import torch
import yaml

import trainlab
from trainlab.cli import DATA_DIR_ENV, main
from trainlab.data import paths
from trainlab.errors import ConfigError, DataError

NPZ = {"name": "npz", "seed": 0, "data": {"source": "npz", "path": "t.npz"}, "model": {"name": "mlp", "hidden": [8]},
       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 1},
       "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


def test_the_cli_names_the_variable_the_data_readers_read():
    assert DATA_DIR_ENV == paths.DATA_DIR_ENV


def test_a_data_dir_of_one_call_is_not_the_next_calls(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    (tmp_path / "dA").mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "dA" / "t.npz", x=rng.normal(size=(60, 3)).astype(np.float32), y=rng.integers(0, 2, 60))
    (tmp_path / "npz.yaml").write_text(yaml.safe_dump(NPZ))
    assert main(["--data-dir", str(tmp_path / "dA"), "train", "npz.yaml", "--out", "c1", "--quiet"]) == 0
    assert json.loads((tmp_path / "c1" / "run.json").read_text())["data_dir"] == str(tmp_path / "dA")
    assert DATA_DIR_ENV not in os.environ
    assert main(["train", "npz.yaml", "--out", "c2", "--quiet"]) == 3  # t.npz is in no folder this call reads
    assert "t.npz" in capsys.readouterr().err
    monkeypatch.setenv(DATA_DIR_ENV, "/somewhere/else")  # the user's own value comes back as it was
    main(["--data-dir", str(tmp_path / "dA"), "advise", "npz.yaml"])
    assert os.environ[DATA_DIR_ENV] == "/somewhere/else"


def test_the_warnings_filters_are_the_callers_after_a_call(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump({**NPZ, "data": {"source": "iris"}}))
    before = list(warnings.filters)
    main(["advise", "iris.yaml"])
    assert warnings.filters == before


def test_a_float64_model_is_told_trainlab_trains_in_float32():
    x, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    with pytest.raises(DataError) as error:
        trainlab.fit(model, train=(torch.tensor(x), torch.tensor(y)), runtime={"num_threads": 1},
                     strategy={"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 8,
                               "epochs": 1})
    line = str(error.value)
    assert line.startswith("model 'Sequential' has float64 weights, but trainlab trains in float32"), line
    assert "call model.float()" in line and "cannot take float32 inputs" not in line


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fit_trains_under_the_callers_disabled_gradients(mode):
    """A notebook cell's torch.set_grad_enabled(False) (or inference_mode) around fit failed with torch's
    'element 0 of tensors does not require grad'; fit trains, and the caller's mode is theirs again after."""
    x, y = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32), np.arange(40) % 3
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    before = [p.detach().clone() for p in model.parameters()]
    context = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with context:
        result = trainlab.fit(model, train=(x, y), runtime={"num_threads": 1}, strategy={
            "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 8, "epochs": 1})
        assert not torch.is_grad_enabled()
    assert len(result.history) == 1
    assert any(not torch.equal(old, new.cpu()) for old, new in zip(before, model.parameters(), strict=True))


def test_weights_fit_remakes_under_the_callers_inference_mode_still_train():
    """Under the caller's inference_mode, the copies fit makes of the weights (channels_last here; the move to a
    GPU alike) were inference tensors: the first backward died with torch's 'Inference tensors cannot be saved
    for backward'. The run's scope turns inference mode off while it builds and trains."""
    x, y = np.random.default_rng(0).normal(size=(40, 3, 8, 8)).astype(np.float32), np.arange(40) % 3
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 3))
    with torch.inference_mode():
        result = trainlab.fit(model, train=(x, y), runtime={"num_threads": 1, "channels_last": True}, strategy={
            "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 8, "epochs": 1})
        assert torch.is_inference_mode_enabled()
    assert len(result.history) == 1 and not any(p.is_inference() for p in model.parameters())


def test_a_binary_runs_class_zero_probability_keeps_its_digits_on_confident_rows(tmp_path):
    """P(class 0) was 1 - sigmoid(z) in float32: 9% off at z = 14, exactly 0 past z ~ 16.6 (the rare class,
    when it sorts first, lost every digit). Checked against sigmoid(-z) in float64."""
    from trainlab.experiment import train
    from trainlab.inference import load_run

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    np.savez(tmp_path / "b.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    train({**NPZ, "data": {"source": "npz", "path": str(tmp_path / "b.npz")}, "model": {"name": "linear"},
           "strategy": {"loss": "bce", "optimizer": {"name": "sgd", "lr": 0.5}, "batch_size": "full", "epochs": 20}},
          out=tmp_path / "run", quiet=True)
    run = load_run(tmp_path / "run")
    unit = float(run.outputs(np.array([[1.0, 0.0]], np.float32)).reshape(-1)[0]
                 - run.outputs(np.array([[0.0, 0.0]], np.float32)).reshape(-1)[0])
    rows = np.array([[14.0 / unit, 0.0], [25.0 / unit, 0.0], [-25.0 / unit, 0.0]], np.float32)
    z = run.outputs(rows).double().reshape(-1)
    assert z[1] > 20 and z[2] < -20
    got = run.predict_proba(rows)
    np.testing.assert_allclose(got[:, 0], torch.sigmoid(-z).numpy(), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], torch.sigmoid(z).numpy(), rtol=1e-5)


def test_a_model_built_under_inference_mode_is_one_error_naming_the_fix():
    """Its weights are inference tensors: torch's 'Inference tensors cannot be saved for backward' came at the
    first step, naming neither the model nor the fix; a deepcopy made outside the block trains."""
    x, y = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32), np.arange(40) % 3
    with torch.inference_mode():
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    strategy = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 8, "epochs": 1}
    with pytest.raises(ConfigError) as error:
        trainlab.fit(model, train=(x, y), runtime={"num_threads": 1}, strategy=strategy)
    assert str(error.value) == (
        "model 'Sequential' was built under torch.inference_mode(): its weights are inference tensors, which cannot "
        "be trained; build it outside that block (under torch.no_grad() is fine), or pass a copy: "
        "copy.deepcopy(model) made outside it")
    result = trainlab.fit(copy.deepcopy(model), train=(x, y), runtime={"num_threads": 1}, strategy=strategy)
    assert len(result.history) == 1
