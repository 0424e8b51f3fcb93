"""Regression targets no model could learn, refused before the float32 cast (trainlab.data.regression_targets):
targets whose float32 values lose their variation (1e12 + 1e3 * noise), and constant targets; and the advisor
calling no constant target counts.

References are NumPy written out here: the float32 cast of the targets and its rounding error, the spacing of
float32 values (np.spacing), population statistics of the training split.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from trainlab.advisor import advise
from trainlab.cli import main
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data import preprocessing as prep
from trainlab.data.regression_targets import MAX_ROUNDED_SHARE, float32_rounded_share
from trainlab.errors import DataError

N = 200


def _features(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N, 3))


def _huge_targets(x: np.ndarray) -> np.ndarray:
    """The report's data: y = 1e12 + 1e3 (a + 2b + 3c) + noise, which float32 holds as one value."""
    noise = np.random.default_rng(1).normal(size=len(x))
    return 1e12 + 1e3 * (x[:, 0] + 2 * x[:, 1] + 3 * x[:, 2]) + noise


def _write_csv(path, x: np.ndarray, y: np.ndarray) -> str:
    rows = [",".join(repr(float(v)) for v in (*features, target)) for features, target in zip(x, y, strict=True)]
    path.write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
    return str(path)


def _run(tmp_path, capsys, data: dict, command: str = "train") -> tuple[int, str]:
    config = {"seed": 0, "data": data, "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 2},
              "runtime": {"num_threads": 1}, "metrics": ["mse", "r2"], "output": {"progress": "off"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [command, str(path)] + (["--out", str(tmp_path / "run"), "--quiet"] if command == "train" else [])
    code = main(argv)
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _number_after(word: str, line: str) -> float:
    return float(re.search(rf"{word} ([-+0-9.e]+)", line).group(1))


# ----------------------------------------------------------------------------- targets float32 cannot hold


def test_the_report_data_really_collapses_in_float32():
    """The premise, in NumPy: the float64 targets vary by thousands, their float32 cast is one value."""
    y = _huge_targets(_features())
    assert y.std() > 3000 and len(np.unique(y)) == N
    assert len(np.unique(y.astype(np.float32))) == 1
    assert np.spacing(np.float32(1e12)) == 2.0 ** 16


@pytest.mark.parametrize("source", ["csv", "npz"])
def test_targets_float32_cannot_hold_are_refused_with_their_real_std(tmp_path, capsys, source):
    x = _features()
    y = _huge_targets(x)
    if source == "csv":
        data = {"source": "csv", "path": _write_csv(tmp_path / "big.csv", x, y), "target": "y"}
    else:
        np.savez(tmp_path / "big.npz", x=x.astype(np.float32), y=y)  # float64 y
        data = {"source": "npz", "path": str(tmp_path / "big.npz")}
    code, err = _run(tmp_path, capsys, data)
    line = _one_error_line(err)
    assert code == 3
    assert "float32 cannot hold differences that small at that magnitude" in line
    assert "data.standardize_target: true" in line
    assert _number_after("mean", line) == pytest.approx(1e12, rel=1e-6)
    # the training split's std in float64 (64% of the rows): near the whole column's, and nothing like 0
    assert _number_after("std", line) == pytest.approx(y.std(), rel=0.15)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_the_refusal_states_the_training_splits_float64_statistics():
    y = _huge_targets(_features())
    with pytest.raises(DataError) as caught:
        prep.fit(_features(), task="regression", y_train=y, target_names=["y"])
    message = str(caught.value)
    assert message.startswith("the regression target 'y' (mean ")
    assert f"std {y.std():.4g} " in message and f"mean {y.mean():.4g}," in message
    assert f"{np.spacing(np.float32(1e12)):.4g} apart" in message
    assert "1 distinct value left of 200" in message


def test_standardised_targets_of_that_size_load_whole(tmp_path):
    """data.standardize_target z-scores in float64 before the cast: every training target stays distinct, and
    mapped back they are the float64 targets within float32's relative precision of the z-scores."""
    x = _features()
    y = _huge_targets(x)
    data = load_dataset(DataConfig(source="csv", path=_write_csv(tmp_path / "big.csv", x, y), target="y",
                                   standardize_target=True), seed=0)
    trained = data.train.y.numpy().ravel()
    assert len(np.unique(trained)) == len(trained)
    mean, scale = data.preprocessing["target"]["mean"][0], data.preprocessing["target"]["scale"][0]
    back = trained.astype(np.float64) * scale + mean
    rows = np.isin(np.round(back), np.round(y))  # every mapped-back target is one of the file's (to 1 unit)
    assert rows.mean() > 0.95 and abs(back.std() - y.std()) < 0.15 * y.std()


def test_the_rounded_share_is_the_mean_squared_rounding_error_over_the_variance():
    y = 1e8 + np.random.default_rng(2).normal(scale=10.0, size=500)
    rounding = y.astype(np.float32).astype(np.float64) - y
    assert float32_rounded_share(y) == pytest.approx(np.mean(rounding ** 2) / np.var(y), rel=1e-12)
    assert float32_rounded_share(np.full(5, 3.0)) == 0.0


@pytest.mark.parametrize("std, refused", [(30.0, False), (10.0, True)])
def test_refused_exactly_when_the_cast_rounds_away_more_than_one_percent(std, refused):
    """Near 1e8 float32 values are 8 apart: a std of 30 keeps more than 99% of the variance, 10 does not (the
    share each keeps is computed here in NumPy, so the test checks its premise too)."""
    y = 1e8 + np.random.default_rng(3).normal(scale=std, size=500)
    share = np.mean((y.astype(np.float32).astype(np.float64) - y) ** 2) / np.var(y)
    assert (share > MAX_ROUNDED_SHARE) == refused
    x = np.zeros((500, 1))
    if refused:
        with pytest.raises(DataError, match=r"round away \d+\.\d% of the target's variance"):
            prep.fit(x, task="regression", y_train=y)
    else:
        prep.fit(x, task="regression", y_train=y)
    prep.fit(x, task="regression", y_train=y, standardize_target=True)  # standardised: never refused for it


def test_float32_targets_are_not_refused_for_the_cast():
    y = (1e8 + np.arange(50.0)).astype(np.float32)  # already float32: the cast changes nothing
    prep.fit(np.zeros((50, 1)), task="regression", y_train=y)


def test_the_column_of_several_that_float32_cannot_hold_is_named():
    rng = np.random.default_rng(4)
    y = np.stack([rng.normal(size=100), 1e12 + rng.normal(size=100)], axis=1)
    with pytest.raises(DataError, match=r"^the regression target 'far' \(mean 1e\+12"):
        prep.fit(np.zeros((100, 1)), task="regression", y_train=y, target_names=["near", "far"])
    with pytest.raises(DataError, match=r"^target column 1 of 2 \(mean 1e\+12"):
        prep.fit(np.zeros((100, 1)), task="regression", y_train=y)


# ----------------------------------------------------------------------------- constant targets


@pytest.mark.parametrize("standardize_target", [False, True])
def test_a_constant_target_is_refused_naming_its_value(tmp_path, capsys, standardize_target):
    x = _features()
    data = {"source": "csv", "path": _write_csv(tmp_path / "const.csv", x, np.full(N, 5.0)), "target": "y",
            "standardize_target": standardize_target}
    code, err = _run(tmp_path, capsys, data)
    line = _one_error_line(err)
    assert code == 3
    # named 'y' where the loader hands the CSV's target names to preprocessing.fit (target_names)
    assert re.search(r"the regression target( 'y')? is 5 in all \d+ training rows", line), line
    assert "nothing could be learnt" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_advise_on_a_constant_target_is_refused_not_called_counts(tmp_path, capsys):
    data = {"source": "csv", "path": _write_csv(tmp_path / "const.csv", _features(), np.full(N, 5.0)), "target": "y"}
    code, err = _run(tmp_path, capsys, data, command="advise")
    line = _one_error_line(err)
    assert code == 3 and "is 5 in all" in line and "counts" not in line


def test_a_target_constant_in_the_training_split_only_is_refused(tmp_path):
    x = _features()
    np.savez(tmp_path / "split.npz", x=x[:100], y=np.full(100, 2.5), x_test=x[100:], y_test=np.arange(100.0))
    with pytest.raises(DataError, match=r"is 2.5 in all \d+ training rows"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "split.npz")), seed=0)


def test_several_constant_columns_are_named_and_one_varying_column_is_enough():
    x = np.zeros((40, 1))
    both = np.stack([np.full(40, 1.0), np.full(40, 7.0)], axis=1)
    with pytest.raises(DataError, match=r"every regression target column is constant in all 40 training rows "
                                        r"\(target 'u' is 1, target 'v' is 7\)"):
        prep.fit(x, task="regression", y_train=both, target_names=["u", "v"])
    with pytest.raises(DataError, match=r"^the regression target 'y' is 7 in all 40 training rows: nothing could"):
        prep.fit(x, task="regression", y_train=np.full(40, 7.0), target_names=["y"])
    one_varies = np.stack([np.full(40, 1.0), np.arange(40.0)], axis=1)
    prep.fit(x, task="regression", y_train=one_varies)


def test_advise_calls_no_single_value_counts():
    """docs/data.md: counts are whole numbers >= 0 with many values; marked counts of one value are not."""
    advice = advise(np.full(100, 5.0), "regression", {"target_kind": "count"})
    assert advice.loss == {"name": "mse"}
    assert not any("count" in reason for reason in advice.reasons), advice.reasons
    two = advise(np.array([3.0, 7.0] * 50), "regression", {"target_kind": "count"})
    assert two.loss["name"] != "poisson_nll"
    counts = np.random.default_rng(5).poisson(3.0, size=300).astype(np.float64)  # many values: still counts
    assert advise(counts, "regression", {"target_kind": "count"}).loss["name"] == "poisson_nll"


@pytest.mark.parametrize("kind", ["huge", "constant"])
def test_the_python_api_refuses_what_a_config_run_refuses(kind):
    """``trainlab.fit`` casts y itself (fit_inputs): the same two refusals, with the fix a caller can apply."""
    import torch

    from trainlab import fit

    x = _features().astype(np.float32)
    y = _huge_targets(x) if kind == "huge" else np.full(len(x), 5.0)
    strategy = {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.05}, "epochs": 1, "batch_size": 32}
    with pytest.raises(DataError) as refused:
        fit(torch.nn.Linear(x.shape[1], 1), (x, y), strategy, task="regression", runtime={"num_threads": 1})
    message = str(refused.value)
    if kind == "huge":
        assert "cannot be held in float32" in message and "standardise y yourself" in message
        assert _number_after("std", message) == pytest.approx(float(y.std()), rel=1e-3)
    else:
        assert "is 5 in all" in message
