"""A study folder moved or copied continues and reports its own runs (trainlab.tune.run_dirs).

Trials recorded their run folder as an absolute path: a moved study could not be continued ("config file
not found: <old place>/trials/0/config.yaml", every rerun, after running new trials and rewriting
trials.csv), and a copy silently read and reported the original's runs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.test_tune import read_trials, write
from trainlab.cli import main
from trainlab.tune.run_dirs import names_folder, run_dir_attrs, run_folder

SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}


def _tune(base: Path, space: Path, out: Path, trials: int) -> int:
    return main(["tune", str(base), "--space", str(space), "--trials", str(trials), "--out", str(out),
                 "--pruner", "none", "--quiet"])


def _consistent(out: Path, former: Path | None = None) -> None:
    """Every results file of ``out`` names run folders inside ``out`` only, and best.yaml is the best one's;
    the report names no run folder of the ``former`` study folder."""
    rows = read_trials(out)
    assert all(row["run_dir"] == str(out / "trials" / row["number"]) for row in rows), rows
    best = json.loads((out / "best.json").read_text())
    assert best["run_dir"] == str(out / "trials" / str(best["trial"]))
    assert f"best trial {best['trial']} " in (out / "best.yaml").read_text()
    assert str(out) in (out / "report.html").read_text()
    assert former is None or f"{former}/trials" not in (out / "report.html").read_text()


def test_a_moved_study_folder_continues_and_reports_its_own_runs(tmp_path, capsys):
    base, space = write(tmp_path, space=SPACE)
    assert _tune(base, space, tmp_path / "a", 2) == 0
    shutil.move(tmp_path / "a", tmp_path / "b")
    assert _tune(base, space, tmp_path / "b", 3) == 0, capsys.readouterr().err
    assert len(read_trials(tmp_path / "b")) == 3 and not (tmp_path / "a").exists()
    _consistent(tmp_path / "b", tmp_path / "a")


def test_a_copied_study_folder_reads_its_own_runs_and_leaves_the_original_alone(tmp_path, capsys):
    base, space = write(tmp_path, space=SPACE)
    assert _tune(base, space, tmp_path / "a", 2) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.is_file()}
    shutil.copytree(tmp_path / "a", tmp_path / "copy", symlinks=True)
    (tmp_path / "a" / "trials" / "0" / "config.yaml").unlink()  # the copy must not need the original's
    assert _tune(base, space, tmp_path / "copy", 3) == 0, capsys.readouterr().err
    _consistent(tmp_path / "copy", tmp_path / "a")
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.is_file()} == before


def test_a_study_recorded_with_absolute_run_folders_is_read_inside_its_new_place(tmp_path, capsys):
    """A study written before the fix: its trials name <old place>/trials/<n>; moved, it continues."""
    base, space = write(tmp_path, space=SPACE)
    old = tmp_path / "old"
    assert _tune(base, space, old, 2) == 0
    journal = old / "study.journal"
    text = re.sub(r'"run_dir":"trials/(\d+)"', lambda m: f'"run_dir":"{old}/trials/{m.group(1)}"',
                  journal.read_text())
    text = text.replace('"run_path":', '"unread":')  # not kept before the fix
    assert text.count(f'"run_dir":"{old}/trials/') == 2 and "run_path" not in text
    journal.write_text(text)
    shutil.move(old, tmp_path / "new")
    assert _tune(base, space, tmp_path / "new", 3) == 0, capsys.readouterr().err
    _consistent(tmp_path / "new")


def test_the_run_folder_of_a_record(tmp_path):
    out, other = tmp_path / "out", tmp_path / "other"
    (out / "trials" / "3").mkdir(parents=True)
    (other / "trials" / "4").mkdir(parents=True)
    recorded = run_dir_attrs(3, out / "trials")
    assert recorded == {"run_dir": "trials/3", "run_path": str(out / "trials" / "3")}
    assert run_folder(recorded, 3, out) == out / "trials" / "3"
    gone = run_dir_attrs(3, tmp_path / "gone" / "trials")
    assert run_folder(gone, 3, tmp_path / "new") == tmp_path / "new" / "trials" / "3"  # neither there: its place
    (tmp_path / "copy" / "trials" / "3").mkdir(parents=True)
    assert run_folder(recorded, 3, tmp_path / "copy") == tmp_path / "copy" / "trials" / "3"  # its own, not out's
    # an RDB trial that a worker of another --out ran: this out does not hold it, so where it ran
    assert run_folder(run_dir_attrs(4, other / "trials"), 4, out) == other / "trials" / "4"
    # recorded before the fix: absolute paths
    assert run_folder({"run_dir": str(tmp_path / "gone" / "trials" / "3")}, 3, out) == out / "trials" / "3"
    assert run_folder({"run_dir": str(other / "trials" / "4")}, 4, out) == other / "trials" / "4"
    assert run_folder({"run_dir": str(tmp_path / "run")}, 3, out) == tmp_path / "run"  # not a study's trials/<n>
    assert run_folder({}, 3, out) is None


def test_recovery_reads_a_run_folder_only_when_the_trial_names_it(tmp_path):
    folder = tmp_path / "out" / "trials" / "3"
    folder.mkdir(parents=True)
    (tmp_path / "elsewhere" / "trials" / "3").mkdir(parents=True)
    assert names_folder(run_dir_attrs(3, tmp_path / "copied-from" / "trials"), 3, folder)
    assert names_folder({"run_dir": str(folder)}, 3, folder)
    assert names_folder({"run_dir": str(tmp_path / "moved-away" / "trials" / "3")}, 3, folder)
    assert not names_folder({"run_dir": "trials/4"}, 3, folder)
    assert not names_folder({"run_dir": str(tmp_path / "elsewhere" / "trials" / "3")}, 3, folder)  # another --out's
    assert not names_folder({}, 3, folder)


def test_best_yaml_of_a_trial_written_when_zero_meant_unset_keeps_it_unset(tmp_path):
    """best.yaml copied a trial folder's weight_decay: 0.0 (written when 0.0 meant unset: adamw's 0.01) into a
    user config, where 0.0 means decay off: a refit of an older study trained another config."""
    import optuna
    import yaml

    from tests.conftest import DIGITS_MLP
    from trainlab.config import validate
    from trainlab.tune.results import best_config_yaml

    config = validate({**DIGITS_MLP, "name": "digits-trial0",
                       "strategy": {**DIGITS_MLP["strategy"], "optimizer": {"name": "adamw", "lr": 0.003}}})
    old = config.to_dict()
    old["strategy"]["regularization"]["weight_decay"] = 0.0  # the older default, no first-line mark
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    trial = optuna.trial.create_trial(value=0.9)
    best = yaml.safe_load(best_config_yaml(trial, tmp_path, "s", "val_accuracy", {}))
    assert best["strategy"]["regularization"]["weight_decay"] is None
