"""The warning for a robust regression loss whose threshold (huber's delta, smooth_l1's beta, adaptive's fixed
scale) is at least the span of the training targets as the loss sees them, so that the loss trains as plain
(scaled) MSE; and the docs' rule that those options are in the units of the targets the loss sees
(standard deviations under data.standardize_target). Spans and sds are NumPy computations from the raw
arrays, not the code under test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from trainlab.cli import main
from trainlab.losses import build_loss
from trainlab.losses.quadratic_zone import all_quadratic_warning

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _np_span(y: np.ndarray) -> tuple[float, int]:
    """max over columns j and rows i of |y_ij - mean_i y_ij|, and its column."""
    columns = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    per_column = np.abs(columns - columns.mean(axis=0)).max(axis=0)
    return float(per_column.max()), int(per_column.argmax())


def _repro_npz(path: Path, seed: int = 0) -> Path:
    """The user report's data: X ~ N(0, 1) (60, 4), y = 100 (X [2, -1, 0, 0.5] + 1 + 0.3 noise)."""
    rng = np.random.default_rng(seed)

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 4))
        y = 100 * (x @ np.array([2.0, -1.0, 0.0, 0.5]) + 1 + 0.3 * rng.normal(size=n))
        return x.astype(np.float32), y.astype(np.float32)

    (x, y), (x_val, y_val), (x_test, y_test) = rows(60), rows(20), rows(20)
    np.savez(path, x=x, y=y, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
    return path


def _train(tmp_path: Path, capsys, loss: dict, standardize_target: bool) -> tuple[int, list[str], Path]:
    npz = _repro_npz(tmp_path / "d.npz")
    config = {"name": "q", "seed": 0,
              "data": {"source": "npz", "path": str(npz), "standardize_target": standardize_target},
              "model": {"name": "linear"},
              "strategy": {"loss": loss, "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": "full", "epochs": 2},
              "runtime": {"num_threads": 1, "device": "cpu"}, "output": {"progress": "off"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    code = main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet", "--overwrite"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: loss ")]
    return code, lines, npz


# --------------------------------------------------------------------------- the user report, end to end


def test_huber_delta_beyond_the_standardized_targets_is_warned_with_the_span_in_sds_and_the_delta_over_sd(
        tmp_path, capsys):
    """Was silent: delta 50 (meant in target units, sd ~196) on z-scored targets (span ~2.5 sds) made huber
    plain 0.5 MSE for the whole run. The warning names the delta, the span in sds, the sd in target units
    and 50 / sd, the delta in the loss's units a target-unit delta of 50 is."""
    code, lines, npz = _train(tmp_path, capsys, {"name": "huber", "delta": 50.0}, standardize_target=True)
    assert code == 0
    y = np.load(npz)["y"].astype(np.float64)
    sd = y.std()  # population sd, as data.standardize_target z-scores
    span, _ = _np_span((y - y.mean()) / sd)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("warning: loss huber: delta 50 is at least the largest |target - mean| of the training "
                           f"targets, {span:.3g} standard deviations: ")
    assert f"sd {sd:.4g} target units" in line
    assert f"delta 50 meant in target units is delta {50 / sd:.3g} here" in line
    assert "plain 0.5 x MSE" in line and f"set delta below {span:.3g}" in line


def test_a_delta_below_the_span_in_the_losss_units_is_not_warned(tmp_path, capsys):
    """The advisor's delta (about 0.2 sds here) and anything below the NumPy span: no warning."""
    y = np.load(_repro_npz(tmp_path / "probe.npz"))["y"].astype(np.float64)
    span, _ = _np_span((y - y.mean()) / y.std())
    code, lines, _ = _train(tmp_path, capsys, {"name": "huber", "delta": 0.99 * span}, standardize_target=True)
    assert code == 0 and lines == []


def test_without_standardize_target_the_span_is_in_target_units(tmp_path, capsys):
    y = np.load(_repro_npz(tmp_path / "probe.npz"))["y"].astype(np.float64)
    span, _ = _np_span(y)
    code, lines, _ = _train(tmp_path, capsys, {"name": "huber", "delta": round(span) + 1.0},
                            standardize_target=False)
    assert code == 0 and len(lines) == 1, lines
    assert f"training targets, {span:.4g} target units; " in lines[0]
    assert "standard deviations" not in lines[0]
    code, lines, _ = _train(tmp_path, capsys, {"name": "huber", "delta": 0.99 * span}, standardize_target=False)
    assert code == 0 and lines == []


# --------------------------------------------------------------------------- the rule, per loss


LOSSES_WITH_A_ZONE = [("huber", "delta", {}), ("smooth_l1", "beta", {}), ("adaptive", "scale", {}),
                      ("adaptive", "scale", {"alpha": 0.5, "learn_alpha": True, "alpha_range": [0.0, 1.999],
                                             "scale": 1.0})]


@pytest.mark.parametrize(("name", "option", "extra"), LOSSES_WITH_A_ZONE)
def test_the_threshold_is_compared_with_the_numpy_span_of_each_column_against_its_own_mean(name, option, extra):
    rng = np.random.default_rng(1)
    y = np.stack([rng.normal(5.0, 0.5, size=40), rng.normal(-3.0, 2.0, size=40)], axis=1)
    span, column = _np_span(y)
    assert span < np.abs(y).max()  # a column's own mean, not 0, is what the span measures from
    target = torch.tensor(y, dtype=torch.float32)
    above = all_quadratic_warning(build_loss({"name": name, **extra, option: span * 1.001}), target)
    assert above is not None
    assert above.startswith(f"loss {name}: {option} {span * 1.001:g} is at least the largest |target - mean|")
    assert f"{span:.4g} target units (column {column} of 2)" in above
    assert all_quadratic_warning(build_loss({"name": name, **extra, option: span * 0.999}), target) is None


@pytest.mark.parametrize("spec", [{"name": "adaptive", "scale": 100.0, "learn_scale": True},  # fits its scale
                                  {"name": "adaptive", "alpha": 2.0, "scale": 100.0},  # L2 at every scale
                                  {"name": "mse"}, {"name": "log_cosh"}, {"name": "smooth_l1", "beta": 0.0}])
def test_losses_without_a_fixed_quadratic_zone_are_not_warned(spec):
    y = torch.linspace(-1.0, 1.0, 30)
    assert all_quadratic_warning(build_loss(spec), y) is None


def test_the_sd_and_the_converted_delta_are_the_spanning_columns():
    rng = np.random.default_rng(2)
    raw = np.stack([rng.normal(0, 10, size=50), rng.normal(0, 1000, size=50)], axis=1)
    sd = raw.std(axis=0)
    z = (raw - raw.mean(axis=0)) / sd
    span, column = _np_span(z)
    message = all_quadratic_warning(build_loss({"name": "huber", "delta": 10.0}), torch.tensor(z), list(sd))
    assert message is not None
    assert f"{span:.3g} standard deviations (column {column} of 2)" in message
    assert f"sd {sd[column]:.4g} target units; delta 10 meant in target units is delta {10 / sd[column]:.3g}" \
        in message


# --------------------------------------------------------------------------- the docs say the same rule


def _row(page: str, option: str, after: str) -> str:
    text = (DOCS / page).read_text()
    start = text.index(after)
    return next(line for line in text[start:].splitlines() if line.startswith(f"| `{option}` |"))


@pytest.mark.parametrize(("section", "option"), [("### `huber`", "delta"), ("### `smooth_l1`", "beta"),
                                                 ("### `adaptive`", "scale")])
def test_components_page_gives_the_threshold_in_the_units_the_loss_sees(section, option):
    """Said "in target units" (huber delta, adaptive scale), which standardize_target made untrue."""
    row = _row("components.md", option, section)
    assert "in target units" not in row
    assert "units of the targets the loss sees" in row


def test_data_page_says_standardize_target_puts_the_losss_options_in_sds():
    row = _row("data.md", "standardize_target", "## Options every source shares")
    assert "delta_std = delta / sd" in row and "huber's `delta`" in row
