"""What a comparison folder says about itself: which strategies file made it, where its runs are, which is best.

A user's script found three defects in ``trainlab compare``:

1. ``dd/a/strategies.yaml`` and ``dd/b/strategies.yaml`` share the default ``--out`` (``runs/compare-strategies``):
   the second comparison printed ``config changed ...: running iris/adam/seed-0 again`` and replaced the first's
   runs and leaderboard, exit 0. The folder now records its strategies file (``.comparison.json``) and refuses
   another one before any run is touched.
2. leaderboard.json's ``run_dirs`` were relative to the caller's folder (``../cmp7/runs/iris/adam/seed-0`` from
   ``proj/``); they are absolute now, as ``trainlab tune`` writes ``run_dir``.
3. A strategy whose every seed diverged (sgd at lr 1e8) was ``best`` with rank 1; it has no rank now, and a task
   where no strategy has a run that counts has no best.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from trainlab.cli import main
from trainlab.compare import compare_files
from trainlab.compare.folder_identity import RECORD_FILE
from trainlab.compare.leaderboard import absolute_path, build_leaderboard
from trainlab.compare.leaderboard_output import print_leaderboard, to_csv
from trainlab.compare.run_actions import RunPlan
from trainlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                     "epochs": 1},
        "metrics": ["accuracy"], "runtime": {"num_threads": 1}}
FAST = ["--seeds", "1", "--jobs", "1", "--quiet"]


def _strategies(path: Path, lr: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"strategies": {"adam": {"strategy.optimizer": {"name": "adam", "lr": lr}}}}))
    return path


def _files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: the SHA-256 of its bytes and its mtime (a rerun must not even rewrite one)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


@pytest.fixture
def two_files(tmp_path: Path, monkeypatch) -> Path:
    """The user's setup: iris.yaml, a/strategies.yaml (lr 0.01) and b/strategies.yaml (lr 0.001), same stem;
    the first comparison already run into the default --out."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(BASE))
    _strategies(tmp_path / "a" / "strategies.yaml", 0.01)
    _strategies(tmp_path / "b" / "strategies.yaml", 0.001)
    assert main(["compare", "iris.yaml", "--strategies", "a/strategies.yaml", *FAST]) == 0
    return tmp_path


# --------------------------------------------------------------------------- 1. one folder, one strategies file

def test_another_strategies_file_of_the_same_name_is_refused_from_the_default_out_and_touches_nothing(
        two_files: Path, capsys):
    folder = Path("runs/compare-strategies")
    record = json.loads((folder / RECORD_FILE).read_text())
    assert record == {"strategies_file": str(two_files.resolve() / "a" / "strategies.yaml"),
                      "strategies_given": str(two_files.absolute() / "a" / "strategies.yaml"),
                      "strategies_from_folder": os.path.join("..", "..", "a", "strategies.yaml"),
                      "base_configs": {"iris": str(two_files.resolve() / "iris.yaml")}}
    before = _files(folder)
    capsys.readouterr()
    assert main(["compare", "iris.yaml", "--strategies", "b/strategies.yaml", *FAST]) == 2
    a, b = two_files.resolve() / "a" / "strategies.yaml", two_files.resolve() / "b" / "strategies.yaml"
    assert _one_error_line(capsys) == (
        f"error: runs/compare-strategies holds the comparison of strategies file {a}, and this one's is {b}: "
        "--out's default is runs/compare-<strategies file name>, the same for both, and comparing here would "
        "train its runs again over that comparison's; pass --out DIR to keep both (or delete "
        "runs/compare-strategies to replace that comparison)")
    assert _files(folder) == before  # the first comparison's runs, leaderboard and report as they were
    config = yaml.safe_load((folder / "runs/iris/adam/seed-0/config.yaml").read_text())
    assert config["strategy"]["optimizer"]["lr"] == 0.01


def test_the_refusal_docs_compare_md_quotes_is_the_line_printed(two_files: Path, capsys):
    capsys.readouterr()
    assert main(["compare", "iris.yaml", "--strategies", "b/strategies.yaml", *FAST]) == 2
    line = _one_error_line(capsys).replace(str(two_files.resolve()), "/home/me/exp")
    docs = " ".join((ROOT / "docs" / "compare.md").read_text().split())
    assert line in docs, "docs/compare.md does not quote the line printed"


def test_an_explicit_out_of_another_strategies_files_comparison_is_refused_too(two_files: Path, capsys):
    before = _files(Path("runs/compare-strategies"))
    capsys.readouterr()
    assert main(["compare", "iris.yaml", "--strategies", "b/strategies.yaml", *FAST,
                 "--out", "runs/compare-strategies"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: --out runs/compare-strategies holds the comparison of strategies file "
                           f"{two_files.resolve() / 'a' / 'strategies.yaml'}, and this one's is "
                           f"{two_files.resolve() / 'b' / 'strategies.yaml'}: "), line
    assert line.endswith("give another --out, or delete runs/compare-strategies to replace that comparison"), line
    assert _files(Path("runs/compare-strategies")) == before
    # another --out keeps both comparisons
    assert main(["compare", "iris.yaml", "--strategies", "b/strategies.yaml", *FAST, "--out", "cmp-b"]) == 0
    assert json.loads(Path("cmp-b", RECORD_FILE).read_text())["strategies_file"] == str(
        two_files.resolve() / "b" / "strategies.yaml")
    assert _files(Path("runs/compare-strategies")) == before


def test_from_python_the_refusal_names_out_as_the_caller_wrote_it(two_files: Path):
    with pytest.raises(ConfigError) as caught:
        compare_files("iris.yaml", "b/strategies.yaml", seeds=1, jobs=1, quiet=True)
    assert "pass out=DIR to keep both" in str(caught.value) and "--out" not in str(caught.value).split(": ", 1)[1]


def test_the_same_strategies_file_edited_and_reached_by_another_path_is_the_same_comparison(two_files: Path, capsys):
    folder = Path("runs/compare-strategies")
    before = _files(folder)
    capsys.readouterr()
    # unchanged, named through another path to the same file: skipped as done, not one file rewritten
    assert main(["compare", "./iris.yaml", "--strategies", "b/../a/strategies.yaml", *FAST]) == 0
    assert "1 of 1 runs already done in their folders: skipped" in capsys.readouterr().out
    assert {k: v for k, v in _files(folder).items() if k.startswith(("runs/", RECORD_FILE))} == \
        {k: v for k, v in before.items() if k.startswith(("runs/", RECORD_FILE))}
    _strategies(two_files / "a" / "strategies.yaml", 0.005)  # edited: the re-run-what-changed of docs/compare.md
    assert main(["compare", "iris.yaml", "--strategies", "a/strategies.yaml", *FAST]) == 0
    assert ("config changed (strategy.optimizer.lr: was 0.01, now 0.005): running iris/adam/seed-0 again"
            in capsys.readouterr().out)
    assert yaml.safe_load((folder / "runs/iris/adam/seed-0/config.yaml").read_text())["strategy"]["optimizer"][
        "lr"] == 0.005


def test_a_link_re_pointed_to_another_version_is_the_same_comparison(tmp_path: Path, monkeypatch, capsys):
    """``current.yaml -> v1.yaml``, then ``-> v2.yaml``: --out's default (runs/compare-current) is named after the
    link, and the comparison goes on as the same file edited does; it was refused as another file's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(BASE))
    _strategies(tmp_path / "v1.yaml", 0.01)
    _strategies(tmp_path / "v2.yaml", 0.005)
    os.symlink("v1.yaml", "current.yaml")
    assert main(["compare", "iris.yaml", "--strategies", "current.yaml", *FAST]) == 0
    os.remove("current.yaml")
    os.symlink("v2.yaml", "current.yaml")
    capsys.readouterr()
    assert main(["compare", "iris.yaml", "--strategies", "current.yaml", *FAST]) == 0
    assert "config changed (strategy.optimizer.lr: was 0.01, now 0.005)" in capsys.readouterr().out
    record = json.loads((tmp_path / "runs/compare-current" / RECORD_FILE).read_text())
    assert record["strategies_file"] == str((tmp_path / "v2.yaml").resolve())
    assert record["strategies_given"] == str(tmp_path.absolute() / "current.yaml")


def test_a_project_copied_whole_is_the_same_comparison_in_its_new_place(two_files: Path, monkeypatch, capsys):
    """The folder and its strategies file moved together (cp -a exp exp2): the file sits where the recorded one
    sat relative to the folder, so its runs are its own, as a copied tune study's are."""
    copy = Path(shutil.copytree(two_files, two_files.parent / "copied", symlinks=True))
    monkeypatch.chdir(copy)
    capsys.readouterr()
    assert main(["compare", "iris.yaml", "--strategies", "a/strategies.yaml", *FAST]) == 0
    assert "1 of 1 runs already done in their folders: skipped" in capsys.readouterr().out
    record = json.loads(Path("runs/compare-strategies", RECORD_FILE).read_text())
    assert (record["strategies_file"], record["strategies_from_folder"]) == (
        str(copy.resolve() / "a" / "strategies.yaml"), os.path.join("..", "..", "a", "strategies.yaml"))
    assert main(["compare", "iris.yaml", "--strategies", "b/strategies.yaml", *FAST]) == 2  # b is still another


def test_a_folder_made_before_the_record_is_taken_as_before_and_then_recorded(two_files: Path, capsys):
    folder = Path("runs/compare-strategies")
    (folder / RECORD_FILE).unlink()  # as an earlier version left it
    capsys.readouterr()
    assert main(["compare", "iris.yaml", "--strategies", "b/strategies.yaml", *FAST]) == 0  # today's behaviour
    assert "running iris/adam/seed-0 again" in capsys.readouterr().out
    assert json.loads((folder / RECORD_FILE).read_text())["strategies_file"] == str(
        two_files.resolve() / "b" / "strategies.yaml")
    assert main(["compare", "iris.yaml", "--strategies", "a/strategies.yaml", *FAST]) == 2  # now b's folder


def test_a_comparison_that_adds_a_task_adds_its_base_config_to_the_record(two_files: Path):
    (two_files / "wine").mkdir()
    (two_files / "wine" / "iris2.yaml").write_text(yaml.safe_dump(BASE))
    assert main(["compare", "wine/iris2.yaml", "--strategies", "a/strategies.yaml", *FAST]) == 0
    record = json.loads(Path("runs/compare-strategies", RECORD_FILE).read_text())
    assert record["base_configs"] == {"iris": str(two_files.resolve() / "iris.yaml"),
                                      "iris2": str(two_files.resolve() / "wine" / "iris2.yaml")}


# --------------------------------------------------------------------------- 2. absolute run_dirs

def test_run_dirs_are_absolute_whatever_folder_compare_ran_from(tmp_path: Path, monkeypatch):
    (tmp_path / "proj").mkdir()
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(BASE))
    _strategies(tmp_path / "s.yaml", 0.01)
    monkeypatch.chdir(tmp_path / "proj")
    assert main(["compare", "../iris.yaml", "--strategies", "../s.yaml", "--seeds", "2", "--jobs", "1", "--quiet",
                 "--out", "../cmp7"]) == 0
    board = json.loads((tmp_path / "cmp7" / "leaderboard.json").read_text())
    run_dirs = board["tasks"]["iris"]["strategies"][0]["run_dirs"]
    expected = [os.path.join(str(tmp_path), "cmp7", "runs", "iris", "adam", f"seed-{seed}") for seed in (0, 1)]
    assert run_dirs == expected
    monkeypatch.chdir("/")  # from anywhere else, they still name the run folders
    assert all((Path(d) / "summary.json").is_file() for d in run_dirs)


def test_a_relative_plan_is_written_absolute_and_a_dotdot_after_a_link_is_read_as_the_kernel_reads_it(
        tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plans = [_fabricated_run(Path("cmp") / "runs" / "t" / "ok" / f"seed-{seed}", "ok", seed, 0.9) for seed in (0, 1)]
    board = build_leaderboard(plans, "test_accuracy")
    assert board["tasks"]["t"]["strategies"][0]["run_dirs"] == [f"{tmp_path}/cmp/runs/t/ok/seed-{s}" for s in (0, 1)]
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    # link/.. is real/, not tmp_path: folding the '..' away as text would name tmp_path/elsewhere, not there
    assert absolute_path(Path("link/../elsewhere")) == f"{tmp_path}/real/elsewhere"
    assert absolute_path(Path("./cmp/../cmp/runs")) == f"{tmp_path}/cmp/runs"


# --------------------------------------------------------------------------- 3. no run that counts: no rank, no best

def _fabricated_run(path: Path, strategy: str, seed: int, accuracy: float | None) -> RunPlan:
    """A run folder as a finished run (``accuracy``) or a diverged one (None) leaves it, without training."""
    path.mkdir(parents=True)
    if accuracy is None:
        summary = {"status": "diverged", "reason": "training diverged at step 4: non-finite loss (nan)"}
    else:
        summary = {"status": "finished", "train_time_s": 0.1, "test": {"loss": 0.3, "accuracy": accuracy},
                   "val": {"loss": 0.3, "accuracy": accuracy}}
    (path / "summary.json").write_text(json.dumps(summary))
    return RunPlan("t", strategy, seed, {}, path)


def _board(root: Path, accuracies: dict[str, list[float | None]]) -> dict:
    plans = [_fabricated_run(root / name / f"seed-{seed}", name, seed, value)
             for name, values in accuracies.items() for seed, value in enumerate(values)]
    return build_leaderboard(plans, "test_accuracy")


def _printed(board: dict) -> str:
    buffer = io.StringIO()
    print_leaderboard(board, Console(file=buffer, width=200))
    return buffer.getvalue()


def test_a_task_whose_only_strategy_diverged_on_every_seed_has_no_best_and_no_rank(tmp_path: Path):
    board = _board(tmp_path, {"boom": [None, None]})
    table = board["tasks"]["t"]
    assert table["best"] is None and table["strategies"][0]["rank"] is None
    assert table["strategies"][0]["vs_best"]["verdict"] != "best"
    rows = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert (rows[0]["strategy"], rows[0]["rank"]) == ("boom", "")
    row = next(line for line in _printed(board).splitlines() if "boom" in line and "│" in line)
    assert row.split("│")[1].strip() == "-", row


def test_a_strategy_with_no_run_that_counts_is_listed_last_unranked_below_one_with_a_single_seed(tmp_path: Path):
    # 'boom' first in the file, 'lucky' one finished seed (third standing), 'good' two: good 1, lucky 2, boom none
    board = _board(tmp_path, {"boom": [None, None], "lucky": [0.95, None], "good": [0.8, 0.9]})
    entries = board["tasks"]["t"]["strategies"]
    assert [(e["name"], e["rank"]) for e in entries] == [("good", 1), ("lucky", 2), ("boom", None)]
    assert board["tasks"]["t"]["best"] == "good"
    rows = {row["strategy"]: row["rank"] for row in csv.DictReader(io.StringIO(to_csv(board)))}
    assert rows == {"good": "1", "lucky": "2", "boom": ""}
    printed = [line.split("│") for line in _printed(board).splitlines() if line.startswith("│")]
    assert [(cells[1].strip(), cells[2].strip()) for cells in printed] == [("1", "good"), ("2", "lucky"), ("-", "boom")]


def test_compare_of_a_strategy_that_diverges_on_every_seed_names_no_best_in_the_board_table_and_report(
        tmp_path: Path, capsys):
    """The user's strat3.yaml: sgd at lr 1e8 diverges at step 4 on both seeds."""
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "strat3.yaml").write_text("strategies:\n  boom: {strategy.optimizer: {name: sgd, lr: 1.0e+8}}\n")
    out = tmp_path / "cmp3"
    assert main(["compare", str(tmp_path / "iris.yaml"), "--strategies", str(tmp_path / "strat3.yaml"), "--seeds", "2",
                 "--jobs", "1", "--quiet", "--out", str(out)]) == 4
    printed = capsys.readouterr().out
    board = json.loads((out / "leaderboard.json").read_text())
    boom = board["tasks"]["iris"]["strategies"][0]
    assert (board["tasks"]["iris"]["best"], boom["rank"], boom["runs"], boom["failed"]) == (None, None, 0, 2)
    row = next(line for line in printed.splitlines() if "boom" in line and "│" in line)
    assert row.split("│")[1].strip() == "-", row
    assert next(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))["rank"] == ""
    report = (out / "report.html").read_text()
    assert "there is no best strategy to predict with" in report
    assert "No finished run of the best strategy" not in report
