"""Overwriting a run folder named through a symbolic link or by a name near NAME_MAX, and strategy names
that would read alike.

- ``--overwrite`` of a link swapped the link itself: the link became a plain folder holding the new run (on
  the link's file system), and the link, under the staging folder's name, still pointed at the old run.
- a 250-character run folder could be made but never overwritten: its staging sibling's name passed
  NAME_MAX ("File name too long").
- a grid of ``data.path: [sets/a.csv, sets_a.csv]`` named both points ``path=sets_a.csv`` and was refused
  with "give each strategy its own name", which a grid point cannot be given.
- ``café`` (one code point) and ``café`` (``e`` and a combining accent), ``adam`` and ``"adam "``, and a
  name of only spaces were accepted, and showed alike (or blank) in the leaderboard.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from tests.compare_configs import iris_base
from tests.conftest import LINREG
from trainlab.cli import main
from trainlab.compare.strategies import NamedStrategy, as_strategies, parse_strategies
from trainlab.errors import EXIT_SYSTEM, ConfigError
from trainlab.run_folder import RunDir
from trainlab.run_leftovers import NAME_MAX, dead_siblings, is_stale_temporary, sibling_name
from trainlab.run_lock import RunLock
from trainlab.run_staging import put_back_cut_swap, staging_name

LONG = "a" * 250  # fits NAME_MAX (255 bytes) as a folder; ".<it>.new-<pid>" does not


def _dead_pid() -> int:
    """The pid of a process that has exited (what a killed trainlab leaves its leftovers named by)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)


def _fake_run(folder: Path, weights: bytes = b"old weights", **info) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"format": 1, "status": "finished", **info}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**LINREG, "output": {"progress": "off"},
                                    "strategy": {**LINREG["strategy"], "epochs": 2}}))
    return path


def _seed(run: Path) -> int:
    return json.loads((run / "summary.json").read_text())["seed"]


# --------------------------------------------------------------------------- overwrite through a link

def test_train_overwrite_through_a_link_replaces_its_target_and_keeps_the_link(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    assert main(["train", str(config), "--out", "real/r", "--quiet"]) == 0
    Path("link").symlink_to("real/r")
    capsys.readouterr()
    assert main(["train", str(config), "--out", "link", "--overwrite", "--set", "seed=7", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert os.readlink("link") == "real/r"  # still the link, to the same folder
    assert _seed(Path("real/r")) == 7  # the new run, where the link points
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "link", "real"]  # no staging link left
    assert os.listdir("real") == ["r"]  # the replaced run deleted, no staging folder left


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_the_staging_folder_of_a_link_lies_beside_its_target_and_the_commit_swaps_there(tmp_path, monkeypatch,
                                                                                        exchange):
    monkeypatch.chdir(tmp_path)
    if not exchange:
        monkeypatch.setattr("trainlab.run_staging.exchange", lambda a, b: False)
    target = _fake_run(tmp_path / "real" / "r")
    link = tmp_path / "link"
    link.symlink_to(target)
    run = RunDir.create(link, overwrite=True)
    assert run.staged and run.path.parent == target.parent and run.final_path == link
    run.write_info(status="finished")
    (run.path / "model.safetensors").write_bytes(b"new weights")
    assert run.commit_overwrite() == link
    run.close()
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert (target / "model.safetensors").read_bytes() == b"new weights"
    assert sorted(os.listdir(tmp_path)) == ["link", "real"] and os.listdir(target.parent) == ["r"]
    assert not (target / ".lock").exists()


def test_an_overwrite_through_a_link_killed_after_a_checkpoint_is_adopted_by_resume_of_the_link(tmp_path):
    """The kill leaves the new run staged beside the target (a dead pid's name): neither run is lost, and
    resuming through the link swaps the new one in at the target, the link kept."""
    target = _fake_run(tmp_path / "real" / "r")
    link = tmp_path / "link"
    link.symlink_to(target)
    stranded = _fake_run(staging_name(link, _dead_pid()), b"new weights", status="running")
    (stranded / "checkpoint" / "step-000000005").mkdir(parents=True)
    assert stranded.parent == target.parent
    assert [entry for _, entry in dead_siblings(link)] == [stranded]
    run = RunDir.open_existing(link)
    try:
        assert run.adopted_from == stranded and run.path == link
    finally:
        run.close()
    assert link.is_symlink() and (target / "model.safetensors").read_bytes() == b"new weights"
    assert not stranded.exists() and os.listdir(target.parent) == ["r"]


def test_the_old_run_a_kill_left_set_aside_beside_a_links_target_is_removed_not_adopted(tmp_path):
    """Killed between the swap and the deletion: the replaced run (older) carries the staging name."""
    target = _fake_run(tmp_path / "real" / "r", b"new weights", created=2.0)
    link = tmp_path / "link"
    link.symlink_to(target)
    aside = _fake_run(target.parent / f".r.new-{_dead_pid()}", created=1.0)  # beside the target, as staged
    RunDir.open_existing(link).close()
    assert not aside.exists() and (target / "model.safetensors").read_bytes() == b"new weights"


# --------------------------------------------------------------------------- names near NAME_MAX

def test_train_overwrite_of_a_folder_named_up_to_name_max_works(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    out = Path("long") / LONG
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--set", "seed=7", "--quiet"]) == 0
    assert "error" not in capsys.readouterr().err
    assert _seed(out) == 7 and os.listdir("long") == [LONG]


@pytest.mark.parametrize("name", [LONG, "é" * 127, "b" * 255], ids=["250-ascii", "254-bytes-utf8", "255-ascii"])
def test_a_long_names_siblings_fit_name_max_and_are_known_as_its_leftovers(tmp_path, name):
    final = _fake_run(tmp_path / name)
    dead = _dead_pid()
    for kind in ("new", "old"):
        sibling = sibling_name(final, kind, 4_294_967_295)  # the most digits a pid has
        assert len(os.fsencode(sibling.name)) <= NAME_MAX
    stranded = _fake_run(staging_name(final, dead), b"new weights")
    assert is_stale_temporary(stranded) and [entry for _, entry in dead_siblings(final)] == [stranded]
    other = tmp_path / (name[:-1] + "c")  # the same start: its siblings are not this one's
    assert staging_name(other, dead).name != stranded.name and not list(dead_siblings(_fake_run(other)))
    run = RunDir.open_existing(final)  # resume adopts the killed overwrite
    run.close()
    assert (final / "model.safetensors").read_bytes() == b"new weights" and not stranded.exists()


def test_a_short_names_staging_name_is_unchanged(tmp_path):
    """What an earlier trainlab left beside a run (``.run.new-<pid>``) is still recognised."""
    assert staging_name(tmp_path / "run", 42) == tmp_path / ".run.new-42"


# --------------------------------------------------------------------------- grid points named alike

def test_grid_values_that_flatten_alike_name_distinct_points(tmp_path):
    points = parse_strategies({"grid": {"data.path": ["sets/a.csv", "sets_a.csv"], "strategy.epochs": [1]}},
                              "g1.yaml")
    # the value written as its name keeps it; the one whose '/' was flattened is told apart
    assert {p.overrides["data.path"]: p.name for p in points} == {
        "sets/a.csv": "path=sets_a.csv~2,epochs=1", "sets_a.csv": "path=sets_a.csv,epochs=1"}
    points = parse_strategies({"grid": {"data.path": ["x/a", "x\\a", "x_a~2"]}}, "g1.yaml")
    assert [p.name for p in points] == ["path=x_a", "path=x_a~3", "path=x_a~2"]  # a suffix never taken twice


def test_a_grid_value_listed_twice_is_refused_with_a_fix_a_grid_allows():
    with pytest.raises(ConfigError) as raised:
        parse_strategies({"grid": {"strategy.epochs": [2, 3, 2]}}, "g1.yaml")
    assert str(raised.value) == "g1.yaml: grid key 'strategy.epochs' lists 2 twice; list each value once"


def test_a_strategy_named_as_a_grid_point_is_told_to_rename_the_strategy():
    with pytest.raises(ConfigError) as raised:
        parse_strategies({"strategies": {"epochs=2 ": None}, "grid": {"strategy.epochs": [2, 3]}}, "s.yaml")
    assert str(raised.value) == ("s.yaml: duplicate strategy name 'epochs=2': a strategy 'epochs=2 ' is named as a "
                                 "grid point (grid points are named by their values); rename that strategy")


def test_compare_runs_a_grid_of_paths_that_flatten_alike(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rows = "\n".join(f"{i % 7 / 7:.3f},{i % 3}" for i in range(45))
    Path("sets").mkdir()
    Path("sets/a.csv").write_text("a,y\n" + rows + "\n")
    Path("sets_a.csv").write_text("a,y\n" + rows + "\n")
    base = {**iris_base(epochs=1), "data": {"source": "csv", "path": "sets_a.csv", "target": "y"}}
    Path("base.yaml").write_text(yaml.safe_dump(base))
    Path("g1.yaml").write_text("grid: {data.path: [sets/a.csv, sets_a.csv]}\n")
    code = main(["compare", "base.yaml", "--strategies", "g1.yaml", "--seeds", "1", "--jobs", "1", "--out", "out"])
    assert code == 0, capsys.readouterr().err
    board = json.loads(Path("out/leaderboard.json").read_text())
    names = sorted(entry["name"] for entry in board["tasks"]["base"]["strategies"])
    assert names == ["path=sets_a.csv", "path=sets_a.csv~2"]


# --------------------------------------------------------------------------- strategy names that read alike

NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize("first, second, shown", [
    (NFC, NFD, f"{NFC!r} ('caf\\xe9') and {NFD!r} ('cafe\\u0301')"),
    ("adam", "adam ", "'adam' and 'adam '"),
    (" sgd", "sgd\u00a0", "' sgd' and 'sgd\\xa0'"),
], ids=["nfc-nfd", "trailing-space", "spaces-around"])
def test_names_that_read_alike_are_refused_naming_both_spellings(first, second, shown):
    with pytest.raises(ConfigError) as raised:
        parse_strategies({"strategies": {first: None, second: {"strategy.epochs": 2}}}, "s.yaml")
    message = str(raised.value)
    assert message.startswith(f"s.yaml: strategy names {shown} read alike (equal once Unicode-normalised to NFC")
    assert message.endswith("; rename one") and "\n" not in message
    with pytest.raises(ConfigError, match="read alike"):  # compare()'s list of strategies too
        as_strategies([NamedStrategy(first, {}), NamedStrategy(second, {})])


@pytest.mark.parametrize("name", [" ", "   ", "\u00a0", "\u3000"])
def test_a_name_of_only_spaces_is_refused(name):
    with pytest.raises(ConfigError) as raised:
        parse_strategies({"strategies": {name: None}}, "s.yaml")
    assert f"strategy name {ascii(name)} is blank (only spaces); a strategy name" in str(raised.value)


def test_the_cli_refuses_names_alike_in_one_line_with_exit_2(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(iris_base(epochs=1)))
    (tmp_path / "s.yaml").write_text(f"strategies:\n  {NFC}: {{}}\n  {NFD}: {{}}\n", encoding="utf-8")
    code = main(["compare", str(tmp_path / "base.yaml"), "--strategies", str(tmp_path / "s.yaml"), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and not (tmp_path / "out").exists()
    assert f"strategy names {NFC!r} ('caf\\xe9') and {NFD!r} ('cafe\\u0301') read alike" in err


def test_names_that_differ_otherwise_are_still_accepted():
    names = ["adam", "Adam", "adam-2", "a dam", "café", "cafe"]
    assert [s.name for s in parse_strategies({"strategies": dict.fromkeys(names)}, "s.yaml")] == names


# --------------------------------------------------------------------------- a swap through a link cut short

_CUT_SWAP = """
import os, sys
import trainlab.run_staging as run_staging
from trainlab.cli import main
from trainlab.run_leftovers import sibling_name

def cut_between_the_two_renames(staging, target):  # renameat2 unsupported: the first rename, then the kill
    os.replace(target, sibling_name(target, "old", os.getpid()))
    os._exit(9)

run_staging.exchange = cut_between_the_two_renames
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("out", ["link", "real/r"], ids=["through-a-link", "plain-folder"])
@pytest.mark.parametrize("then", ["resume", "rerun"])
def test_an_overwrite_killed_between_the_two_renames_of_its_swap_is_put_back(tmp_path, monkeypatch, capsys, out,
                                                                             then):
    """Where renameat2 cannot exchange, the commit renames the old run aside, then the new one in. A kill
    between the two left no folder at the swap's place (a link dangling), both runs under dot names: resume
    said the run folder does not exist, a rerun "cannot create output folder link: File exists"."""
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    assert main(["train", str(config), "--out", "real/r", "--quiet"]) == 0
    Path("link").symlink_to("real/r")
    killed = subprocess.run([sys.executable, "-c", _CUT_SWAP, "train", str(config), "--out", out, "--overwrite",
                             "--set", "seed=7", "--quiet"], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert not os.path.exists("real/r")  # the window: neither run at the place, the link dangling
    assert sorted(name.split("-")[0] for name in os.listdir("real")) == [".r.new", ".r.old"]
    capsys.readouterr()
    if then == "resume":  # continues the killed overwrite (finished: nothing to do), the old run deleted
        assert main(["resume", out, "--quiet"]) == 0, capsys.readouterr().err
        assert _seed(Path("real/r")) == 7
    else:  # replaces both, as an overwrite of a run with a killed overwrite beside it does
        assert main(["train", str(config), "--out", out, "--overwrite", "--set", "seed=9", "--quiet"]) == 0, \
            capsys.readouterr().err
        assert _seed(Path("real/r")) == 9
    assert "error" not in capsys.readouterr().err
    assert os.readlink("link") == "real/r" and os.listdir("real") == ["r"]


def test_a_set_aside_run_whose_lock_is_held_is_not_put_back(tmp_path):
    """A live swap between its two renames holds the set-aside run's lock; its name's pid may read as dead
    (a process started after the old run's last change), yet the swap finishes itself."""
    target, pid = tmp_path / "real" / "r", _dead_pid()
    aside = _fake_run(sibling_name(target, "old", pid))
    _fake_run(sibling_name(target, "new", pid))  # the staged run the second rename would have put in place
    lock = RunLock(aside)
    lock.acquire()
    try:
        assert put_back_cut_swap(target) is None
        assert aside.is_dir() and not target.exists()
    finally:
        lock.release()
    assert put_back_cut_swap(target) == aside and (target / "model.safetensors").read_bytes() == b"old weights"


def test_an_old_run_left_after_a_finished_swap_is_not_brought_back(tmp_path):
    """After the second rename only the set-aside old run is left (its removal killed); the user then deleted
    the new run: that old run is no cut swap to put back, and the folder is free for a new run."""
    target = tmp_path / "real" / "r"
    aside = _fake_run(sibling_name(target, "old", _dead_pid()))
    assert put_back_cut_swap(target) is None
    assert aside.is_dir() and not target.exists()


# --------------------------------------------------------------------------- the staging folder's place, in words

def test_a_staging_folder_that_cannot_be_made_beside_a_links_target_names_that_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = _fake_run(tmp_path / "real" / "r")
    Path("link").symlink_to(target)
    make_folder = Path.mkdir

    def refuse_in_real(self, *args, **kwargs):  # root writes anywhere: a folder it may not write, simulated
        if self.parent == target.parent:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return make_folder(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse_in_real)
    config = _config(tmp_path)
    assert main(["train", str(config), "--out", "link", "--overwrite", "--quiet"]) == EXIT_SYSTEM  # WriteError
    err = capsys.readouterr().err
    assert err == (f"error: cannot create a staging folder in {target.parent} (beside {target}, which the link "
                   "link points at): Permission denied\n")
    assert (target / "model.safetensors").read_bytes() == b"old weights"
