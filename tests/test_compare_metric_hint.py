"""compare's refusal of the default --metric (test_accuracy) on a regression task offers the key to pass, as
tune's does for val_accuracy (docs/compare.md quotes the line): the maximised test_ key the runs record, so the
ranking's direction stays; stand_in is checked against lists written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.test_compare_checks import REGRESSION
from trainlab.cli import main
from trainlab.compare.metric_keys import stand_in

ROOT = Path(__file__).resolve().parent.parent


def _refusal(tmp_path: Path, capsys, base: dict, *flags: str) -> str:
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "s2.yaml").write_text("strategies:\n  sgd:\n    strategy.optimizer: {name: sgd, lr: 0.01}\n  adam:\n")
    code = main(["compare", str(tmp_path / "reg.yaml"), "--strategies", str(tmp_path / "s2.yaml"), "--seeds", "1",
                 "--out", str(tmp_path / "c_reg"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert not (tmp_path / "c_reg").exists()
    return err.strip()


def test_the_default_metric_on_a_regression_task_offers_test_r2(tmp_path, capsys):
    line = _refusal(tmp_path, capsys, REGRESSION)
    assert line == ("error: --metric 'test_accuracy' is not recorded by the runs of task 'reg'; accuracy is a "
                    "classification metric, and these records are of a regression task; did you mean 'test_r2'? "
                    "(recorded: test_loss, test_mse, test_mae, test_r2, val_loss, val_mse, val_mae, val_r2, "
                    "train_time_s, samples_per_s, epochs_run, steps, best_epoch); test_accuracy is --metric's "
                    "default: pass --metric with one of these")


def test_docs_quote_the_line_compare_prints(tmp_path, capsys):
    line = _refusal(tmp_path, capsys, REGRESSION)
    docs = (ROOT / "docs" / "compare.md").read_text()
    assert line in " ".join(docs.split()), "docs/compare.md does not quote the line printed"


@pytest.mark.parametrize(("wanted", "recorded", "expected"), [
    ("test_accuracy", ["test_loss", "test_mse", "test_mae", "test_r2", "val_loss", "val_r2"], "test_r2"),
    ("val_accuracy", ["val_loss", "val_mse", "val_r2"], "val_r2"),
    ("test_accuracy", ["test_loss", "test_mse", "test_mae", "val_loss"], "test_mse"),  # nothing maximised
    ("test_accuracy", ["test_loss", "val_loss", "train_time_s"], None),  # the loss alone
    ("test_mse", ["test_loss", "test_r2", "test_mae"], "test_mae"),  # minimised, as mse is
])
def test_stand_in_keeps_the_split_and_the_direction(wanted, recorded, expected):
    assert stand_in(wanted, recorded) == expected


@pytest.mark.parametrize(("flags", "named"), [(("--metric", "r2"), "test_r2"), (("--metric", "mae"), "test_mae")])
def test_a_bare_metric_name_is_offered_its_splits_key(tmp_path, capsys, flags, named):
    """`--metric r2` (as a Keras or Optuna user types it) was refused with no did-you-mean."""
    assert f"did you mean '{named}'? (a key names its split)" in _refusal(tmp_path, capsys, REGRESSION, *flags)
