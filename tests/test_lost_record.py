"""A run folder whose run.json is gone: each command says what is wrong and one path that works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.lost_record import lost_run_json
from trainlab.run_layout import RUN_FILES


def _finished_run(write_config, tmp_path: Path) -> tuple[Path, Path]:
    config = write_config(DIGITS_MLP, strategy__epochs=2,
                          output={"progress": "off", "checkpoint": {"every_n_epochs": 1, "every_seconds": None,
                                                                   "keep_after_finish": "all"}})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    return Path(config), out


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


def test_an_interrupted_run_without_run_json_says_so_everywhere_and_overwrite_replaces_it(write_config, tmp_path,
                                                                                          capsys):
    config, out = _finished_run(write_config, tmp_path)
    for name in ("run.json", "model.safetensors", "summary.json"):  # as a run stopped mid-way, its record lost
        (out / name).unlink()
    assert lost_run_json(out, RUN_FILES)
    capsys.readouterr()
    assert main(["resume", str(out)]) == 2
    err = _one_error_line(capsys)
    assert f"cannot resume {out}: its run.json is missing" in err and "--overwrite" in err
    assert "stopped before training started" not in err and "eval and predict" not in err
    for extra in ([], ["--resume"]):
        assert main(["train", str(config), "--out", str(out), *extra]) == 2
        err = _one_error_line(capsys)
        assert "holds a run whose run.json is missing, which cannot be resumed; pass --overwrite" in err, err
        assert "trainlab resume" not in err
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert (out / "run.json").is_file() and (out / "model.safetensors").is_file()


def test_eval_of_an_unfinished_run_without_run_json_offers_what_works_not_resume(write_config, tmp_path, capsys):
    """eval said "the run did not finish; try 'trainlab resume run'", which refuses such a folder; it now gives
    the advice that works (--overwrite of a copy of its config), as resume does."""
    config, out = _finished_run(write_config, tmp_path)
    for name in ("run.json", "model.safetensors", "summary.json"):
        (out / name).unlink()
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    err = _one_error_line(capsys)
    assert "its run.json is missing, so it cannot be resumed" in err and "trainlab resume" not in err
    assert f"--out {out} --overwrite" in err
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 0  # as it says


def test_a_damaged_run_json_says_what_to_do_and_the_way_it_names_works(write_config, tmp_path, capsys):
    """resume of a run.json cut off mid-write named the JSON error alone; it now says what works: restore it,
    or train again from the config into another --out (--overwrite refuses a folder it cannot read)."""
    config, out = _finished_run(write_config, tmp_path)
    (out / "model.safetensors").unlink()
    (out / "run.json").write_text('{"format": 1, "status": "interr')
    capsys.readouterr()
    assert main(["resume", str(out)]) == 3
    err = _one_error_line(capsys)
    assert err.startswith(f"error: cannot read {out / 'run.json'}: ")
    assert err.endswith("restore run.json from a backup, or train the run again from its config (a copy of "
                        f"{out / 'config.yaml'} outside the folder) into another --out (to reuse this one, remove it "
                        "first: --overwrite replaces only a folder whose run.json it can read)")
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 2  # as it says
    assert main(["train", str(config), "--out", str(tmp_path / "again"), "--quiet"]) == 0


def test_a_finished_run_without_run_json_is_not_said_to_have_stopped_before_training(write_config, tmp_path, capsys):
    _, out = _finished_run(write_config, tmp_path)
    (out / "run.json").unlink()
    capsys.readouterr()
    assert main(["resume", str(out)]) == 2
    err = _one_error_line(capsys)
    assert "run.json is missing" in err and "eval and predict still read its model.safetensors" in err


def test_a_folder_of_the_users_own_files_is_not_offered_resume_or_overwrite(write_config, tmp_path, capsys):
    config, _ = _finished_run(write_config, tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(plain)]) == 2
    err = _one_error_line(capsys)
    assert "is not a trainlab run folder (it holds notes.txt); choose another --out" in err, err
    assert "resume" not in err and "--overwrite" not in err
    assert (plain / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("evidence", ["none", "foreign summary"])
def test_a_users_config_yaml_and_metrics_are_never_taken_for_a_lost_run(write_config, tmp_path, capsys, evidence):
    """Without trainlab's own evidence (its checkpoint manifest, its summary.json) --overwrite still refuses."""
    config, _ = _finished_run(write_config, tmp_path)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"my": "settings"}))
    (folder / "metrics.csv").write_text("a,b\n1,2\n")
    if evidence == "foreign summary":
        (folder / "summary.json").write_text('{"accuracy": 0.9}')
    assert not lost_run_json(folder, RUN_FILES)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(folder), "--overwrite"]) == 2
    assert "not a trainlab run folder" in _one_error_line(capsys)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.yaml", "metrics.csv"]
                                                              + (["summary.json"] if evidence != "none" else []))


def test_a_run_folder_with_run_json_keeps_its_resume_advice(write_config, tmp_path, capsys):
    config, out = _finished_run(write_config, tmp_path)
    assert not lost_run_json(out, RUN_FILES)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out)]) == 2
    assert f"pass --overwrite to replace it, or 'trainlab resume {out}' to continue it" in _one_error_line(capsys)
    shutil.rmtree(out)


def test_a_run_folder_whose_config_yaml_the_user_edited_is_not_replaced(write_config, tmp_path, capsys):
    """Without run.json only a config.yaml byte for byte as trainlab wrote it vouches for the folder."""
    config, out = _finished_run(write_config, tmp_path)
    (out / "run.json").unlink()
    (out / "config.yaml").write_text("# my notes on this run\n" + (out / "config.yaml").read_text())
    assert not lost_run_json(out, RUN_FILES)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--overwrite"]) == 2
    assert "not a trainlab run folder" in _one_error_line(capsys)
    assert (out / "config.yaml").read_text().startswith("# my notes")


def test_a_run_without_its_config_yaml_is_told_the_way_back_and_the_config_it_started_with_resumes_it(
        write_config, tmp_path, capsys):
    """'error: config file not found: DIR/config.yaml' said nothing of the run: that it cannot be resumed and
    how to get back (the starting config copied there passes the config-hash check)."""
    config, out = _finished_run(write_config, tmp_path)
    (out / "config.yaml").unlink()
    capsys.readouterr()
    for command in (["resume", str(out)], ["train", str(config), "--out", str(out), "--resume"]):
        assert main(command) == 2
        assert _one_error_line(capsys) == (
            f"error: cannot resume {out}: its config.yaml is missing (the run's config, which resume rebuilds the "
            f"run from); copy the config the run was started with there (its --set overrides written in) as "
            f"{out / 'config.yaml'} (resume checks it "
            f"against the config hash in run.json), or train that config again with --out {out} --overwrite, or "
            "into another --out")
    shutil.copy(config, out / "config.yaml")
    assert main(["resume", str(out)]) == 0
    assert "nothing to resume" in capsys.readouterr().err
