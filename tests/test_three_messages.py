"""Three messages that named the wrong thing or nothing: oneDNN's missing reduced-precision kernel of an LSTM
(a torch crash, exit 4, now a ``runtime.precision`` ConfigError), a NaN in rows of several axes (named by a
flattened "column"), and an ``mlp`` dropout with no hidden layer to act after (silently a no-op)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data.dataset import Dataset, Split
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.models import build_model
from trainlab.run_checks import check_loss_fits

CPU = torch.device("cpu")
# torch 2.x's message on a CPU without avx512_bf16, for nn.LSTM under a bf16 or fp16 autocast
ONEDNN_LSTM = ("could not create a primitive descriptor for the LSTM forward propagation primitive. Run workload "
               "with environment variable ONEDNN_VERBOSE=all to get additional diagnostic information.")


# ------------------------------------------------------------------ 1. oneDNN without a bf16 kernel


class Sequence(nn.Module):
    """An LSTM classifier over (20, 3) rows; with ``fail`` set, its forward under autocast raises ``fail``
    (oneDNN's failure on this CPU or not, whatever CPU runs the test), and runs as usual without autocast."""

    def __init__(self, fail: str | None = None):
        super().__init__()
        self.encoder = nn.LSTM(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)
        self.fail = fail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail and torch.is_autocast_enabled("cpu"):
            raise RuntimeError(self.fail)
        out, _ = self.encoder(x)
        return self.head(out[:, -1])


def _sequences(n: int = 16) -> Dataset:
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(n, 20, 3)).astype(np.float32))
    y = torch.arange(n) % 2
    empty = Split(x[:0], y[:0])
    return Dataset(Split(x, y), empty, empty, "binary", num_classes=2)


def _check(model: nn.Module, precision: str) -> None:
    check_loss_fits(build_loss("cross_entropy"), model, _sequences(), CPU, precision=precision)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_an_lstm_without_a_reduced_precision_kernel_is_a_precision_config_error(precision):
    """Before: the run started, its first step crashed with torch's line (exit 4, run.json "failed")."""
    with pytest.raises(ConfigError) as caught:
        _check(Sequence(fail=ONEDNN_LSTM), precision)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"runtime.precision is {precision}, but the LSTM layer (encoder) of model "
                              f"'Sequence' has no {precision} kernel on this CPU (")
    assert "oneDNN: could not create a primitive descriptor for the LSTM forward propagation primitive" in message
    assert "use runtime.precision: fp32" in message and "ONEDNN_VERBOSE" not in message


def test_the_precision_error_says_a_layer_when_onednn_names_no_kind():
    with pytest.raises(ConfigError, match=r"^runtime.precision is bf16, but a layer of model 'Sequence' has no "
                                          r"bf16 kernel on this CPU .*; use runtime.precision: fp32"):
        _check(Sequence(fail="could not create a primitive descriptor for a reorder primitive"), "bf16")


def test_fp32_and_other_autocast_failures_are_not_told_as_precision():
    _check(Sequence(fail=ONEDNN_LSTM), "fp32")  # fp32 runs no autocast: nothing to refuse
    _check(Sequence(fail="mat1 and mat2 shapes cannot be multiplied"), "bf16")  # left to the run's own error


def test_a_real_lstm_is_refused_exactly_where_torch_cannot_run_it_in_bf16():
    """The reference is torch itself: plain nn.LSTM under a bf16 autocast on this CPU. Where it fails (a CPU
    without avx512_bf16, as the AMD EPYC this was found on) the check refuses; where it runs, it passes.
    A GRU has a bf16 kernel either way."""
    torch.manual_seed(0)
    model = Sequence()
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            nn.LSTM(3, 4, batch_first=True)(torch.zeros(2, 20, 3))
        torch_fails = False
    except RuntimeError as exc:
        torch_fails = "primitive descriptor" in str(exc)
    if torch_fails:
        with pytest.raises(ConfigError, match=r"the LSTM layer \(encoder\) .* no bf16 kernel"):
            _check(model, "bf16")
    else:
        _check(model, "bf16")
    model.encoder = nn.GRU(3, 4, batch_first=True)
    model.forward = lambda x: model.head(model.encoder(x)[0][:, -1])
    _check(model, "bf16")


# ------------------------------------------------------------------ 2. a NaN in rows of several axes


@pytest.fixture
def npz_source(tmp_path):
    """``load(x, y, **data options)``: a config run's dataset of the arrays, read by the npz source."""

    def load(x: np.ndarray, y: np.ndarray, **options) -> Dataset:
        np.savez(tmp_path / "data.npz", x=x, y=y)
        return load_dataset(DataConfig(source="npz", path=str(tmp_path / "data.npz"), **options))

    return load


def _rows(shape: tuple[int, ...], dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=shape).astype(dtype)
    return x, np.arange(shape[0]) % 2


def test_a_nan_in_a_sequence_row_is_named_by_its_position_in_the_row(npz_source):
    """Before: "at row 17, column 17": the index in the row flattened, which is no column of (20, 3) rows."""
    x, y = _rows((200, 20, 3))
    x[17, 5, 2] = np.nan
    row, *position = (int(i) for i in np.argwhere(np.isnan(x))[0])  # numpy's own index of the NaN
    with pytest.raises(DataError) as caught:
        npz_source(x, y)
    assert str(caught.value) == (f"training data has a non-finite feature value (nan) at row {row}, position "
                                 f"[{position[0]}, {position[1]}] (counting from 0); fix the data or set "
                                 "data.nan_policy: drop")
    assert (row, position) == (17, [5, 2])


def test_a_nan_in_a_table_keeps_its_column(npz_source):
    x, y = _rows((40, 4))
    x[5, 1] = np.inf
    with pytest.raises(DataError, match=r"non-finite feature value \(inf\) at row 5, column 1 \(counting from 0\);"):
        npz_source(x, y)


def test_a_position_nan_in_every_row_and_a_value_beyond_float32_are_named_by_position_too(npz_source):
    x, y = _rows((30, 2, 4, 5))
    x[:, 1, 2, 0] = np.nan  # flattened index 1*20 + 2*5 + 0 = 30
    with pytest.raises(DataError, match=r"empty after dropping rows with NaN/Inf: the features at position "
                                        r"\[1, 2, 0\] \(counting from 0\) are NaN/Inf in every row"):
        npz_source(x, y, nan_policy="drop")
    x, y = _rows((30, 2, 4, 5), np.float64)
    x[3, 0, 3, 1] = 1e300
    with pytest.raises(DataError, match=r"^training data features at row 3, position \[0, 3, 1\] \(counting from "
                                        r"0\): 1e\+300 is beyond float32's range"):
        npz_source(x, y)


# ------------------------------------------------------------------ 3. a dropout with nothing to act on


def test_mlp_dropout_without_a_hidden_layer_is_refused():
    """Before: built as Flatten -> Linear, training exactly as dropout 0 without a word."""
    with pytest.raises(ConfigError, match=r"^model 'mlp': dropout acts after each hidden layer, and hidden=\[\] "
                                          r"has none, so dropout=0\.5 would do nothing; give a hidden layer "
                                          r"\(hidden: \[64\]\) or drop dropout \(dropout: 0\)$"):
        build_model({"name": "mlp", "hidden": [], "dropout": 0.5}, (4,), 2)
    linear = build_model({"name": "mlp", "hidden": [], "dropout": 0.0}, (4,), 2)  # a linear model, as documented
    assert [type(m) for m in linear.modules()][1:] == [nn.Linear]


# each built-in model with a dropout option, at its fewest layers, with a dropout rate above 0
FEWEST_LAYERS = [
    ({"name": "mlp", "hidden": [], "dropout": 0.3}, (6,), torch.randn(8, 6)),
    ({"name": "mlp", "hidden": [5], "dropout": 0.3}, (6,), torch.randn(8, 6)),
    ({"name": "cnn1d", "channels": [2], "hidden": None, "dropout": 0.3}, (1, 8), torch.randn(8, 1, 8)),
    ({"name": "cnn2d", "channels": [2], "hidden": None, "dropout": 0.3}, (1, 4, 4), torch.randn(8, 1, 4, 4)),
    ({"name": "transformer_encoder", "vocab_size": 10, "d_model": 4, "heads": 1, "layers": 1, "dropout": 0.3},
     (5,), torch.randint(1, 10, (8, 5))),
]


@pytest.mark.parametrize(("spec", "shape", "x"), FEWEST_LAYERS, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_a_dropout_option_either_acts_or_is_refused(spec, shape, x):
    """Dropout acts when a train-mode forward differs from the eval-mode one on the same inputs."""
    torch.manual_seed(0)
    try:
        model = build_model(spec, shape, 2)
    except ConfigError as exc:
        assert "dropout" in str(exc)
        return
    with torch.no_grad():
        evaluated = model.eval()(x)
        trained = model.train()(x)
    assert not torch.allclose(trained, evaluated)


def test_trainlab_fit_names_a_non_finite_cell_of_rows_of_several_axes_by_its_position():
    """fit's own check named the flattened index a column: (20, 5, 3) rows with a NaN at [4, 1, 2] said column 5."""
    import trainlab

    x = np.random.default_rng(0).normal(size=(20, 5, 3)).astype(np.float32)
    x[4, 1, 2] = np.nan
    want = tuple(int(i) for i in np.argwhere(np.isnan(x))[0])  # numpy's own index of the NaN
    with pytest.raises(DataError, match=rf"^train x has a non-finite value at row {want[0]}, position "
                                        rf"\[{want[1]}, {want[2]}\] \(counting from 0\)"):
        trainlab.fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 2)), train=(x, np.arange(20) % 2),
                     strategy={"epochs": 1})
    table = np.ones((6, 4), dtype=np.float32)
    table[2, 3] = np.inf
    with pytest.raises(DataError, match=r"at row 2, column 3 \(counting from 0\)"):
        trainlab.fit(torch.nn.Linear(4, 2), train=(table, np.arange(6) % 2), strategy={"epochs": 1})
