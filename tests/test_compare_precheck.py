"""What compare (and tune) refuse before the first run about the files they are given.

A data path not found is one ``error:`` line, exit 3, nothing written, whether or not the base config lists
its ``metrics`` (without them the task was read before the runs; with them every run failed alike, exit 4):
:func:`trainlab.compare.precheck.check_data_files`. A ``--space`` or ``--strategies`` file not found says which
of the command's files it is, not the words of a missing base config.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_compare import BASE
from tests.test_compare_checks import _compare, _one_error_line
from trainlab.cli import main
from trainlab.compare import compare, compare_files
from trainlab.compare.strategies import parse_strategies
from trainlab.config_fields import short_repr
from trainlab.data.paths import DATA_DIR_ENV
from trainlab.errors import ConfigError, DataError
from trainlab.tune import TuneSettings, tune

TWO = {"strategies": {"adam": None, "fast": {"strategy.optimizer.lr": 0.05}}}


def _write_csv(path: Path, rows: int = 40) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,y"] + [f"{x:.3f},{z:.3f},{int(x > z)}" for x, z in rng.normal(size=(rows, 2))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _csv_base(path: str, metrics: list[str] | None = ("accuracy",)) -> dict:
    base = {**BASE, "name": "table", "data": {"source": "csv", "path": path, "target": "y"},
            "strategy": {**BASE["strategy"], "epochs": 1}}
    return {**base, "metrics": list(metrics) if metrics else None}


# --------------------------------------------------------------------------- data files, before any run


def test_a_missing_data_file_is_one_line_before_any_run_whatever_the_metrics_list(tmp_path: Path, capsys):
    """With ``metrics:`` listed every run ran and failed alike (exit 4, a run folder each); without it the
    task's read refused it (exit 3, nothing written). Both are now that one refusal."""
    missing = tmp_path / "nope.csv"
    lines = []
    for metrics in (["accuracy", "f1"], None):
        code, out = _compare(tmp_path, _csv_base(str(missing), metrics), TWO)
        lines.append(_one_error_line(capsys))
        assert code == 3 and not out.exists()
    assert lines[0] == lines[1] == (f"error: data file not found: {short_repr(str(missing))} (tried {missing}); "
                                    "expected a CSV file with a header row")


def _npz(tmp_path: Path) -> dict:
    return {"source": "npz", "path": str(tmp_path / "gone.npz")}


def _image_folder(tmp_path: Path) -> dict:
    return {"source": "image_folder", "path": str(tmp_path / "pictures")}


def _relative_csv(tmp_path: Path) -> dict:
    return {"source": "csv", "path": "nope.csv", "target": "y"}


@pytest.mark.parametrize("data", [_npz, _image_folder, _relative_csv])
def test_each_source_s_missing_path_is_refused_with_the_run_s_own_line(tmp_path: Path, capsys, monkeypatch, data):
    """The line is the source's (its paths looked up as a run looks them up: the data folder, then the cwd)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    base = {**BASE, "data": data(tmp_path), "model": {"name": "mlp", "hidden": [4]}}
    code, out = _compare(tmp_path, base, TWO)
    line = _one_error_line(capsys)
    assert code == 3 and not out.exists()
    assert line.startswith("error: data file not found: ")
    if data is _relative_csv:
        assert f"(tried {tmp_path / 'data' / 'nope.csv'}, {tmp_path / 'nope.csv'})" in line


def test_a_strategy_s_own_missing_data_path_is_refused_naming_it(tmp_path: Path, capsys, monkeypatch):
    """Each strategy's resolved config is checked: the base's file (relative, found in the data folder) is
    there, the one a strategy sets is not; the line names that strategy."""
    (tmp_path / "data").mkdir()
    _write_csv(tmp_path / "data" / "table.csv")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    strategies = {"strategies": {"adam": None, "moved": {"data.path": "old/table.csv"}}}
    code, out = _compare(tmp_path, _csv_base("table.csv"), strategies)
    line = _one_error_line(capsys)
    assert code == 3 and not out.exists()
    assert line == (f"error: strategy 'moved': data file not found: 'old/table.csv' (tried "
                    f"{tmp_path / 'data' / 'old' / 'table.csv'}, {tmp_path / 'old' / 'table.csv'}); expected a CSV "
                    "file with a header row")


def test_several_tasks_name_the_task_whose_data_is_missing(tmp_path: Path):
    """From Python too: compare() raises the DataError before any run, and with several bases names the task."""
    there = _csv_base(str(_write_csv(tmp_path / "there.csv")))
    gone = _csv_base(str(tmp_path / "gone.csv"))
    strategies = parse_strategies(TWO)
    with pytest.raises(DataError, match=r"^task 'gone': data file not found: '.*gone\.csv'"):
        compare({"there": there, "gone": gone}, strategies, tmp_path / "out", seeds=1, jobs=1, quiet=True)
    assert not (tmp_path / "out").exists()


def test_a_wrong_csv_target_is_one_line_before_any_run_whatever_the_metrics_list(tmp_path: Path, capsys):
    """``data.target: tgt`` where the column is ``y``: without ``metrics:`` the task's read refused it (exit 3,
    nothing written); with them every run started and failed alike (exit 4, run folders written). Now the
    header line is read before any run, both ways."""
    base = {**_csv_base(str(_write_csv(tmp_path / "table.csv"))), "data": {
        "source": "csv", "path": str(tmp_path / "table.csv"), "target": "tgt"}}
    lines = []
    for metrics in (["accuracy", "f1"], None):
        code, out = _compare(tmp_path, {**base, "metrics": metrics}, TWO)
        lines.append(_one_error_line(capsys))
        assert code == 3 and not out.exists()
    assert lines[0] == lines[1] == (f"error: CSV file {tmp_path / 'table.csv'} has no target column 'tgt' "
                                    "(columns: a, b, y)")


@pytest.mark.parametrize(("data", "kind", "message"), [
    ({"target": "y", "features": ["a", "c"]}, DataError, "has no column 'c' (columns: a, b, y)"),
    ({"target": "y", "categorical": "q"}, DataError, "has no categorical column 'q' (columns: a, b, y)"),
    ({"target": "y", "features": ["a", "y"]}, ConfigError, "data.features lists the target column 'y'"),
    ({"target": "a;b;y", "delimiter": ";"}, DataError, "has no target column 'a;b;y'"),
])
def test_the_columns_a_strategy_names_are_checked_in_the_header(tmp_path: Path, data, kind, message):
    """A strategy's own data section is checked too, and the refusal names it; only the header line is read
    (a file whose second line is not even CSV passes the check)."""
    table = _write_csv(tmp_path / "table.csv")
    strategies = parse_strategies({"strategies": {"adam": None, "cols": {
        f"data.{key}": value for key, value in data.items()}}})
    with pytest.raises(kind) as raised:
        compare({"t": _csv_base(str(table))}, strategies, tmp_path / "out", seeds=1, jobs=1, quiet=True)
    assert str(raised.value).startswith("strategy 'cols': ") and message in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_the_header_check_reads_only_the_header(tmp_path: Path):
    """A good header over rows a run would refuse: the check passes (the run words the rows' problem)."""
    from trainlab.config import validate
    from trainlab.preflight import check_data_columns

    (tmp_path / "t.csv").write_text("a,b,y\n" + "\"unclosed\n" * 3)
    check_data_columns(validate(_csv_base(str(tmp_path / "t.csv"))))
    with pytest.raises(DataError, match="has no target column 'z'"):
        check_data_columns(validate({**_csv_base(str(tmp_path / "t.csv")),
                                     "data": {"source": "csv", "path": str(tmp_path / "t.csv"), "target": "z"}}))


@pytest.mark.parametrize("data", [
    {"target": []},  # no target column at all
    {"target": ["a", "b", "y"]},  # no feature column left
    {"features": ["a"], "categorical": ["b"]},  # a categorical column that is not a feature
])
def test_the_header_check_refuses_with_the_run_s_own_line(tmp_path: Path, data):
    """The preflight and the csv source share their column checks: each refusal is the run's line."""
    from trainlab.config import validate
    from trainlab.data.files import csv_file
    from trainlab.preflight import check_data_columns

    (tmp_path / "t.csv").write_text("a,b,y\n1,x,0\n2,z,1\n")
    section = {"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y", **data}
    with pytest.raises((ConfigError, DataError)) as run:
        csv_file(**{key: value for key, value in section.items() if key != "source"})
    with pytest.raises(type(run.value), match="^" + re.escape(str(run.value)) + "$"):
        check_data_columns(validate({**_csv_base(str(tmp_path / "t.csv")), "data": section}))


def test_a_text_source_s_missing_train_file_in_its_folder_is_refused(tmp_path: Path, capsys):
    """``data.train`` is relative to ``data.path``: the folder is there, the file in it is not."""
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "test.tsv").write_text("sentence\tlabel\nok\t1\n")
    base = {**BASE, "data": {"source": "text_tsv", "path": str(folder), "train": "train.tsv", "test": "test.tsv",
                             "max_length": 8},
            "model": {"name": "transformer_encoder", "d_model": 8, "heads": 2, "layers": 1}}
    code, out = _compare(tmp_path, base, TWO)
    line = _one_error_line(capsys)
    assert code == 3 and not out.exists()
    assert line.startswith(f"error: data file not found: {short_repr(str(folder / 'train.tsv'))} (tried ")


# --------------------------------------------------------------------------- the command's other files


@pytest.mark.parametrize("command", ["compare", "tune"])
def test_a_missing_strategies_or_space_file_is_named_by_its_flag(tmp_path: Path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    Path("base.yaml").write_text(yaml.safe_dump(BASE))
    flag = "--strategies" if command == "compare" else "--space"
    code = main([command, "base.yaml", flag, "nope.yaml", *(["--trials", "3"] if command == "tune" else [])])
    assert code == 2
    assert _one_error_line(capsys) == f"error: {flag} file not found: nope.yaml"
    code = main([command, "missing.yaml", flag, "nope.yaml", *(["--trials", "3"] if command == "tune" else [])])
    assert code == 2 and _one_error_line(capsys) == "error: config file not found: missing.yaml"  # the base's own


def test_from_python_a_missing_file_is_named_by_its_argument(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("base.yaml").write_text(yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match=r"^strategies_path file not found: nope\.yaml$"):
        compare_files("base.yaml", "nope.yaml", out="out")
    with pytest.raises(ConfigError, match=r"^space file not found: nope\.yaml$"):
        tune(TuneSettings(base=Path("base.yaml"), space=Path("nope.yaml"), trials=3, out=Path("tuned")))


# --------------------------------------------------------------------------- image options, before any run


def _image_folder(root: Path) -> Path:
    """Two classes of 4 RGB 8x8 PNGs each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def _image_base(path: Path, **data: object) -> dict:
    return {**BASE, "name": "pics", "data": {"source": "image_folder", "path": str(path), "val_fraction": 0.25,
                                             "test_fraction": 0.25, **data},
            "model": {"name": "mlp", "hidden": [4]}, "strategy": {**BASE["strategy"], "epochs": 1}}


@pytest.mark.parametrize("data, message", [
    ({"mode": "LA"}, "data.mode must be one of RGB (3 channels, colour), L (1 channel, grayscale); got 'LA'; did you "
                     "mean 'L'?"),
    ({"mode": "grey"}, "got 'grey'; did you mean 'L'?"),  # what a user calls it: 'L' is Pillow's name
    ({"mode": "Colour"}, "got 'Colour'; did you mean 'RGB'?"),
    ({"mean": [0.5, 0.5]}, "data.mean must be a number or a list of 3 numbers (one per channel, in [0, 1] units); "
                           "got [0.5, 0.5]"),
    ({"mode": "L", "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]},
     "data.mean must be a number or a list of 1 number (one per channel, in [0, 1] units); got [0.49, 0.48, 0.45] "
     "(null computes them from the training images); and data.std must be a number or a list of 1 number"),
    ({"workers": -1}, "data.workers must be an int >= 0; got -1"),
    ({"size": [8]}, "data.size must be a positive int or [height, width]; got [8]"),
])
def test_an_image_option_the_config_alone_refuses_is_one_line_before_any_run(tmp_path: Path, capsys, data, message):
    """Each run read the images and then failed alike (exit 4, a run folder and a leaderboard written);
    ``trainlab train`` refused it with one line, exit 2, nothing written. compare now does as train does."""
    code, out = _compare(tmp_path, _image_base(_image_folder(tmp_path / "pics"), **data), TWO)
    line = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert message in line, line


def test_image_statistics_are_checked_against_each_source_s_channels_before_any_read():
    """cifar10's images have 3 channels and idx's 1 (data.mode decides image_folder's), known from the config."""
    from trainlab.config import validate
    from trainlab.preflight import check_components

    def config(source: str, **data: object):
        return validate({**BASE, "data": {"source": source, "path": "nowhere", **data}})

    check_components(config("cifar10", mean=[0.49, 0.48, 0.45], std=0.25))
    check_components(config("idx", mean=0.13, std=[0.31]))
    with pytest.raises(ConfigError, match=r"^data.mean must be a number or a list of 1 number .* got \[0.5, 0.5, 0.5\]"):
        check_components(config("idx", mean=[0.5, 0.5, 0.5]))
    with pytest.raises(ConfigError, match=r"^data.std must be > 0 per channel"):
        check_components(config("cifar10", std=[0.2, 0.0, 0.2]))
    with pytest.raises(ConfigError, match=r"^data.mean must be in \[0, 1\]: .* got 1.5$"):  # no 0-255 guess for 1.5
        check_components(config("image_folder", mean=1.5))
