"""``runtime.deterministic``: run_scope turns on deterministic kernels (torch.use_deterministic_algorithms,
cuDNN deterministic without benchmarking, CUBLAS_WORKSPACE_CONFIG) for the run and puts back what the process
had; false touches nothing; at false the key stays out of the config hash; a bad value is one config error;
a run with it trains on a CPU."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
import yaml

import trainlab
from tests.conftest import DIGITS_MLP
from trainlab.builders import run_scope
from trainlab.cli import main
from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.runtime import CUBLAS_WORKSPACE, CUBLAS_WORKSPACE_ENV

cudnn = torch.backends.cudnn


def _flags() -> dict[str, object]:
    """Every process-wide setting runtime.deterministic changes."""
    return {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn.deterministic": cudnn.deterministic, "cudnn.benchmark": cudnn.benchmark,
            CUBLAS_WORKSPACE_ENV: os.environ.get(CUBLAS_WORKSPACE_ENV)}


ON = {"deterministic_algorithms": True, "warn_only": False, "cudnn.deterministic": True, "cudnn.benchmark": False,
      CUBLAS_WORKSPACE_ENV: CUBLAS_WORKSPACE}


@pytest.fixture(autouse=True)
def _flags_kept(monkeypatch):
    """Each test starts without CUBLAS_WORKSPACE_CONFIG, and the torch flags are as before it afterwards, also
    when it fails inside a run_scope or set them itself."""
    monkeypatch.delenv(CUBLAS_WORKSPACE_ENV, raising=False)  # monkeypatch puts a value it removed back
    before = _flags()
    yield
    torch.use_deterministic_algorithms(before["deterministic_algorithms"], warn_only=before["warn_only"])
    cudnn.deterministic, cudnn.benchmark = before["cudnn.deterministic"], before["cudnn.benchmark"]


def _config(deterministic: bool | None = None, **strategy):
    raw = copy.deepcopy(DIGITS_MLP)
    raw["strategy"].update(strategy)
    if deterministic is not None:
        raw["runtime"] = {"deterministic": deterministic}
    return raw


def _users_own_settings(monkeypatch) -> None:
    """Settings a user made before the run, each other than both run_scope's and torch's defaults."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = False, True
    monkeypatch.setenv(CUBLAS_WORKSPACE_ENV, ":16:8")


# ----------------------------------------------------------------------------- run_scope


def test_deterministic_true_turns_everything_on_for_the_run_and_back_off_after():
    before = _flags()
    assert before != ON  # else this test could not tell
    with run_scope(validate(_config(deterministic=True))):
        assert _flags() == ON
    assert _flags() == before
    assert CUBLAS_WORKSPACE_ENV not in os.environ  # set by run_scope, so removed again


def test_deterministic_true_keeps_the_users_workspace_and_puts_back_the_users_flags(monkeypatch):
    _users_own_settings(monkeypatch)
    before = _flags()
    with run_scope(validate(_config(deterministic=True))):
        # strict: an op without a deterministic kernel raises, not warns; the user's cuBLAS workspace stays
        assert _flags() == {**ON, CUBLAS_WORKSPACE_ENV: ":16:8"}
    assert _flags() == before


def test_deterministic_true_in_a_process_that_used_cuda_warns_that_the_workspace_may_come_too_late(monkeypatch, capsys):
    """cuBLAS reads CUBLAS_WORKSPACE_CONFIG when it starts: set after that, the run was silently not pinned."""
    is_initialized = torch.cuda.is_initialized
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)  # on a GPU, other tests may have used CUDA
    with run_scope(validate(_config(deterministic=True))):
        pass
    assert "warning: runtime.deterministic" not in capsys.readouterr().err  # CUDA not used before: no word
    if torch.cuda.is_available():  # used for real: torch itself trusts is_initialized to skip its start-up
        torch.cuda.init()
        monkeypatch.setattr(torch.cuda, "is_initialized", is_initialized)
    else:
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with run_scope(validate(_config(deterministic=True))):
        pass
    err = capsys.readouterr().err
    assert (f"warning: runtime.deterministic: this process used CUDA before the run, so {CUBLAS_WORKSPACE_ENV} set "
            f"now may not reach cuBLAS") in err and f"set {CUBLAS_WORKSPACE_ENV}={CUBLAS_WORKSPACE} in the environment" in err
    monkeypatch.setenv(CUBLAS_WORKSPACE_ENV, ":16:8")  # the user's own, set before: nothing to warn of
    with run_scope(validate(_config(deterministic=True))):
        pass
    assert "warning" not in capsys.readouterr().err


def test_deterministic_true_puts_the_flags_back_when_the_run_fails():
    before = _flags()
    with pytest.raises(RuntimeError, match="boom"), run_scope(validate(_config(deterministic=True))):
        raise RuntimeError("boom")
    assert _flags() == before


@pytest.mark.parametrize("users_settings", [False, True], ids=["defaults", "users-settings"])
@pytest.mark.parametrize("deterministic", [None, False], ids=["unset", "false"])
def test_deterministic_false_changes_nothing(monkeypatch, users_settings, deterministic):
    if users_settings:
        _users_own_settings(monkeypatch)
    before = _flags()
    with run_scope(validate(_config(deterministic=deterministic))):
        assert _flags() == before
    assert _flags() == before


# ----------------------------------------------------------------------------- config


def test_the_key_at_false_keeps_the_hash_and_true_changes_it():
    unset, off, on = (validate(_config(deterministic=value)) for value in (None, False, True))
    assert on.runtime.deterministic and not off.runtime.deterministic and not unset.runtime.deterministic
    assert unset.hash() == off.hash() != on.hash()
    assert "deterministic" not in unset.results_dict()["runtime"]
    # DIGITS_MLP's hash before runtime.deterministic existed: configs recorded then keep theirs
    assert unset.hash() == "ba501924669a26eb"


def test_a_bad_value_is_one_config_error(write_config, capsys):
    config = write_config(_config())
    code = main(["train", "--quiet", "--out", str(config.parent / "run"), "--set", "runtime.deterministic=maybe",
                 str(config)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: config key 'runtime.deterministic': ") and "got 'maybe'" in err[0], err[0]
    assert not (config.parent / "run").exists()


# ----------------------------------------------------------------------------- runs


class _SeesFlags(trainlab.Callback):
    """Records the process's settings at every step."""

    def __init__(self):
        self.seen: list[dict[str, object]] = []

    def on_step_start(self, view) -> None:
        self.seen.append(_flags())


def test_a_conv_net_trains_with_deterministic_true_on_a_cpu():
    """Conv2d, BatchNorm, pooling and cross-entropy (forward and backward) run under
    use_deterministic_algorithms(True), the flags are on at every step, and two runs give the same weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 1, 8, 8)).astype(np.float32)
    y = np.arange(48) % 3

    def run():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                    torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                    torch.nn.Flatten(), torch.nn.Linear(4, 3))
        sees = _SeesFlags()
        result = trainlab.fit(model, (x, y), {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                              "batch_size": 16, "epochs": 2},
                              callbacks=[sees], metrics=[], runtime={"device": "cpu", "deterministic": True})
        return result, sees.seen

    first, seen = run()
    assert len(seen) == 6 and all(flags == ON for flags in seen)
    assert np.isfinite(first.history[-1]["train_loss"])
    again, _ = run()
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.are_deterministic_algorithms_enabled()


class _ResizesAQuantizedTensor(torch.nn.Module):
    """A linear layer whose forward also resizes a quantized tensor: torch has no deterministic kernel for that
    on a CPU (``quantized_resize_cpu_``), the CPU's stand-in for the CUDA-only ops of the same kind."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x):
        torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.quint8).resize_(8)
        return self.linear(x)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_an_op_without_a_deterministic_kernel_is_one_config_error_naming_the_setting():
    x, y = np.zeros((8, 4), np.float32), np.arange(8) % 3
    with pytest.raises(ConfigError) as raised:
        trainlab.fit(_ResizesAQuantizedTensor(), (x, y), {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1},
                     metrics=[], runtime={"device": "cpu", "deterministic": True})
    message = str(raised.value)
    assert message.startswith("runtime.deterministic is true, but quantized_resize_cpu_ has no deterministic "
                              "implementation") and "runtime.deterministic: false" in message, message
    assert "\n" not in message and not torch.are_deterministic_algorithms_enabled()
    result = trainlab.fit(_ResizesAQuantizedTensor(), (x, y), {"loss": "cross_entropy", "optimizer": "adam",
                                                               "epochs": 1}, metrics=[], runtime={"device": "cpu"})
    assert np.isfinite(result.history[-1]["train_loss"])  # the same model trains without the setting


def test_trainlab_train_with_deterministic_true_trains_and_records_it(write_config, tmp_path):
    config = write_config(_config(epochs=1))
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), "--set", "runtime.deterministic=true", str(config)]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["runtime"]["deterministic"] is True
    assert not torch.are_deterministic_algorithms_enabled() and CUBLAS_WORKSPACE_ENV not in os.environ


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: a CPU run is deterministic either way")
def test_on_a_gpu_two_runs_of_a_conv_net_give_the_same_weights_bit_for_bit():
    """cuDNN's convolution backward and the adaptive pools have nondeterministic (or no) deterministic CUDA
    kernels: with runtime.deterministic the airbench net (convs, BatchNorm, Muon, global max pool) trains twice
    to the same bits."""
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
    from trainlab.models import MODELS

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 16, 16)).astype(np.float32)
    y = np.arange(64) % 10

    def run():
        torch.manual_seed(0)
        model = MODELS.get("airbench")((3, 16, 16), 10, widths=[8, 16, 16])
        strategy = {"loss": "cross_entropy", "batch_size": 16, "epochs": 2,
                    "optimizer": {"name": "nesterov", "lr": 0.05, "groups": [
                        {"name": "filters", "select": "conv_filters", "optimizer": "muon_conv", "lr": 0.1}]}}
        return trainlab.fit(model, (x, y), strategy, metrics=[], runtime={"device": "cuda", "deterministic": True})

    first, again = run(), run()
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
