"""tune and compare write their results into an existing --out: one that is no earlier run of the command
but holds the user's own files of those names (``--out .`` beside the user's report.html or trials.csv) is
refused in one line, the files untouched, as train refuses a folder not its own; the folder of an earlier run
of the same command is continued, and one holding only other files (the configs, data) is accepted. A base
file whose stem cannot be a folder name (``...yaml``: ``..``, ``.hidden.yaml``) is refused where the stem
names a folder: tune's default ``tunes/<stem>`` (was the working directory) and compare's ``runs/<task>/``
(was a hidden folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.compare_configs import iris_base
from trainlab.cli import main
from trainlab.compare import command, compare
from trainlab.compare.strategies import NamedStrategy
from trainlab.errors import ConfigError
from trainlab.tune import TuneSettings, study

SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}
MINE = "the user's own\n"
# the names a finished study (tune) and a comparison (compare) hold at the top of --out, besides their folders
TUNE_WRITES = ["best.json", "best.yaml", "importances.json", "report.html", "study.journal", "trials.csv"]
COMPARE_WRITES = ["leaderboard.csv", "leaderboard.json", "report.html"]
CONFIGS = {"base.yaml", "space.yaml", "s.yaml"}  # the files fixture's


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A working directory holding a one-epoch iris base config, a tune space and a one-strategy file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(iris_base(epochs=1)))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    (tmp_path / "s.yaml").write_text("strategies:\n  plain:\n")
    return tmp_path


def _tune(out: str, trials: int = 1) -> int:
    return main(["tune", "base.yaml", "--space", "space.yaml", "--trials", str(trials), "--quiet", "--out", out])


def _compare(out: str) -> int:
    return main(["compare", "base.yaml", "--strategies", "s.yaml", "--seeds", "1", "--jobs", "1", "--out", out])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


TUNE_REFUSAL = ("error: refusing to overwrite trials.csv, report.html in --out {out}, which holds no earlier trainlab "
                "tune results (no study.journal or .tune.study): trainlab tune writes best.yaml, best.json, "
                "trials.csv, importances.json, report.html there; give another --out, or move those files away")
COMPARE_REFUSAL = ("error: refusing to overwrite leaderboard.csv, report.html in --out {out}, which holds no earlier "
                   "trainlab compare results (no leaderboard.json): trainlab compare writes leaderboard.json, "
                   "leaderboard.csv, report.html there; give another --out, or move those files away")


@pytest.mark.parametrize("out", [".", "sub"])
@pytest.mark.parametrize(("command", "results", "refusal"), [
    ("tune", ("report.html", "trials.csv"), TUNE_REFUSAL),
    ("compare", ("report.html", "leaderboard.csv"), COMPARE_REFUSAL),
])
def test_an_out_holding_the_users_files_of_the_results_names_is_refused(files, capsys, out, command, results,
                                                                         refusal):
    folder = files / out
    folder.mkdir(exist_ok=True)
    for name in (*results, "data.csv"):
        (folder / name).write_text(MINE)
    before = _listing(folder)
    assert (_tune if command == "tune" else _compare)(out) == 2
    assert _one_error_line(capsys) == refusal.format(out=out)
    assert _listing(folder) == before  # no journal, lock, study record or runs/ left behind
    assert all((folder / name).read_text() == MINE for name in (*results, "data.csv"))


def test_python_callers_are_told_of_out_and_a_link_of_such_a_name_counts(files):
    (files / "elsewhere.html").write_text(MINE)
    (files / "sub").mkdir()
    (files / "sub" / "report.html").symlink_to(files / "elsewhere.html")
    with pytest.raises(ConfigError, match=r"^refusing to overwrite report\.html in out sub, .*; give another out, "):
        compare({"iris": iris_base(epochs=1)}, [NamedStrategy("plain", {})], "sub", seeds=1, jobs=1)
    from trainlab.tune import tune

    with pytest.raises(ConfigError, match=r"^refusing to overwrite report\.html in out sub, .*; give another out, "):
        tune(TuneSettings(base="base.yaml", space="space.yaml", trials=1, out="sub", quiet=True))
    assert (files / "sub" / "report.html").is_symlink() and (files / "elsewhere.html").read_text() == MINE


def test_tune_into_the_working_directory_runs_and_its_rerun_continues(files, capsys):
    """The working directory holding only the configs is accepted; the study's own folder, its results in it,
    is continued by the rerun (which replaces them); every file it writes is one the refusal guards."""
    assert _tune(".") == 0
    written = {p.name for p in files.iterdir() if p.is_file() and not p.name.startswith(".")} - CONFIGS
    assert written == set(TUNE_WRITES) and written <= {*study.RESULT_FILES, *study.STUDY_RECORDS}
    assert _tune(".", trials=2) == 0
    capsys.readouterr()
    assert len((files / "trials.csv").read_text().strip().splitlines()) == 3  # header and both trials


def test_compare_into_the_working_directory_runs_and_its_rerun_refreshes(files, capsys):
    (files / "data.csv").write_text(MINE)
    assert _compare(".") == 0
    written = {p.name for p in files.iterdir() if p.is_file() and not p.name.startswith(".")} - CONFIGS
    assert written == {"data.csv", *COMPARE_WRITES}
    assert written - {"data.csv"} <= {command.OWN_RECORD, *command.RESULT_FILES}
    (files / "leaderboard.csv").write_text("stale")
    assert _compare(".") == 0
    capsys.readouterr()
    assert (files / "leaderboard.csv").read_text().startswith("task,") and (files / "data.csv").read_text() == MINE


@pytest.mark.parametrize(("name", "problem"), [("...yaml", "'..' cannot be a folder name: it starts with '.'"),
                                               (".hidden.yaml", "'.hidden' cannot be a folder name: it starts "
                                                                "with '.'")])
def test_tune_refuses_a_base_stem_that_names_no_folder_where_it_names_one(files, capsys, name, problem):
    (files / name).write_text((files / "base.yaml").read_text())
    before = _listing(files)
    assert main(["tune", name, "--space", "space.yaml", "--trials", "1"]) == 2
    assert _one_error_line(capsys) == (f"error: CONFIG {name}: its file stem {problem}; the stem names the study's "
                                       f"folder tunes/{Path(name).stem} (--out's default); rename the file, or pass "
                                       "--out")
    assert _listing(files) == before  # tunes/.. was the working directory, whose report.html it replaced
    with pytest.raises(ConfigError, match=r"refit's task folder out/refit/runs/\.+(hidden)?; rename the file$"):
        TuneSettings(base=name, space="space.yaml", trials=1, out="out", refit_seeds=2)
    assert TuneSettings(base=name, space="space.yaml", trials=1, out="out").out == Path("out")  # names no folder


def test_compare_refuses_a_hidden_task_name_as_it_refuses_a_hidden_strategy_name(files, capsys):
    (files / ".hidden.yaml").write_text((files / "base.yaml").read_text())
    assert main(["compare", ".hidden.yaml", "--strategies", "s.yaml", "--seeds", "1", "--out", "out"]) == 2
    assert _one_error_line(capsys).startswith(
        "error: .hidden.yaml: its task name '.hidden' (the file's stem) cannot be a folder name: it starts with '.'; "
        "a task name is the folder of its runs (runs/<task>/), so it keeps a strategy name's rule: ")
    assert not (files / "out").exists()  # was runs/.hidden/, a hidden folder
    for task, problem in ((".hidden", "starts with '.'"), ("a/b", "holds '/'"), ("", "is empty")):
        with pytest.raises(ConfigError, match=rf"^bases: task name '{task}' cannot be a folder name: it {problem}; "):
            compare({task: iris_base()}, [NamedStrategy("plain", {})], "out", seeds=1, jobs=1)


# ---------------------------------------------------------------- a leaderboard.json that is not compare's

USERS_BOARD = '{"mine": 1}\n'


@pytest.mark.parametrize("board", [USERS_BOARD, "not json at all\n", '{"metric": "test_accuracy", "tasks": []}\n'])
def test_a_users_leaderboard_json_is_no_earlier_comparison_and_is_refused(files, capsys, board):
    """Any file named leaderboard.json was taken as an earlier comparison's, and it and report.html replaced:
    only a leaderboard.json holding compare's fields is one (a JSON object with a list for its tasks is not)."""
    (files / "mine3").mkdir()
    (files / "mine3" / "leaderboard.json").write_text(board)
    (files / "mine3" / "report.html").write_text(MINE)
    before = _listing(files / "mine3")
    assert _compare("mine3") == 2
    assert _one_error_line(capsys) == (
        "error: refusing to overwrite leaderboard.json, report.html in --out mine3, which holds no earlier trainlab "
        "compare results (its leaderboard.json is not as trainlab compare writes it): trainlab compare writes "
        "leaderboard.json, leaderboard.csv, report.html there; give another --out, or move those files away")
    assert _listing(files / "mine3") == before  # no runs/, no lock
    assert (files / "mine3" / "leaderboard.json").read_text() == board
    assert (files / "mine3" / "report.html").read_text() == MINE


def test_a_users_leaderboard_json_alone_is_refused_and_a_link_to_compares_is_not_its_record(files, capsys):
    (files / "alone").mkdir()
    (files / "alone" / "leaderboard.json").write_text(USERS_BOARD)
    assert _compare("alone") == 2
    assert _one_error_line(capsys).startswith("error: refusing to overwrite leaderboard.json in --out alone, ")
    assert (files / "alone" / "leaderboard.json").read_text() == USERS_BOARD
    assert _compare("done") == 0  # a real comparison's record, linked into another folder: not that folder's
    (files / "linked").mkdir()
    (files / "linked" / "leaderboard.json").symlink_to(files / "done" / "leaderboard.json")
    capsys.readouterr()
    assert _compare("linked") == 2
    assert "refusing to overwrite leaderboard.json in --out linked" in _one_error_line(capsys)
    assert (files / "linked" / "leaderboard.json").is_symlink()


def test_a_comparison_killed_after_its_leaderboard_json_reruns_into_its_folder(files, capsys):
    """The record is written before leaderboard.csv and report.html: a comparison stopped between them left
    its leaderboard.json alone, which is compare's (its fields) and lets the rerun finish the folder."""
    assert _compare("cmp") == 0
    for name in ("leaderboard.csv", "report.html"):
        (files / "cmp" / name).unlink()
    assert _compare("cmp") == 0
    capsys.readouterr()
    assert {"leaderboard.csv", "report.html", "leaderboard.json"} <= set(_listing(files / "cmp"))
    assert command.is_comparison_record(files / "cmp" / "leaderboard.json")
