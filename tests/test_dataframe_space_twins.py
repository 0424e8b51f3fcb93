"""A DataFrame given to ``predict_file`` / ``predict`` whose category cells differ only in spaces around them
(``' north'``, ``'north'``) gets the warning a CSV file of the same cells gets, naming ``the DataFrame``:
it said ``CSV file the DataFrame: ...``, a file no one wrote.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trainlab
import trainlab.experiment
from trainlab.config import validate

SUFFIX = ("the values ' north' and 'north' in 'region' differ only in spaces around them, which are stripped, so "
          "they are read as one class or category, 'north'; fix the data if they are two")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frame_spaces")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"weight": rng.normal(30, 10, 60), "region": rng.choice(["north", "south"], 60),
                          "label": rng.integers(0, 2, 60)})
    table.to_csv(tmp / "train.csv", index=False)
    raw = {"name": "spaces", "seed": 0, "data": {"source": "csv", "path": str(tmp / "train.csv"), "target": "label"},
           "model": {"name": "mlp", "hidden": [4]},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.03}, "batch_size": 32,
                        "epochs": 1},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
    trainlab.experiment.train(validate(raw), out=tmp / "run", quiet=True)
    return tmp, trainlab.load_run(tmp / "run")


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_space_twins_of_a_dataframe_are_warned_of_as_the_dataframe_not_a_csv_file(run, capsys):
    tmp, loaded = run
    rows = pd.DataFrame({"weight": [25.0, 25.0, 40.0], "region": [" north", "north", "south"]})
    capsys.readouterr()
    predicted = loaded.predict_file(rows)["prediction"].tolist()
    assert _warnings(capsys.readouterr().err) == [f"warning: the DataFrame: {SUFFIX}"]
    assert predicted[0] == predicted[1]  # the same row once the spaces are stripped
    rows.to_csv(tmp / "rows.csv", index=False)  # the same cells in a file: named by the file, as before
    assert loaded.predict_file(tmp / "rows.csv")["prediction"].tolist() == predicted
    assert _warnings(capsys.readouterr().err) == [f"warning: CSV file {tmp / 'rows.csv'}: {SUFFIX}"]
