"""Commands that messages give the user to paste: a path with a space or a quote stays one word.

``continue with: trainlab resume /tmp/my runs/r 1`` pasted gave ``error: unrecognized arguments``. Each
hint's command is cut out of the message it is in and split as a POSIX shell splits it (``shlex.split``,
the reference); the path must come back as one argument, and a plain path keeps the words it always had.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

import trainlab
import trainlab.cli
from trainlab.cli import main
from trainlab.errors import ConfigError
from trainlab.lost_record import cannot_resume
from trainlab.model_file import why_no_model
from trainlab.shell_command import command_line, quoted_command

AWKWARD = "my runs/it's \"r\" 1"  # a space, a single and a double quote: every way a pasted path breaks


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith(("warning: ", "note: "))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _pasted(text: str, before: str, after: str = "") -> list[str]:
    """The words a shell reads from the command between ``before`` and ``after`` in ``text``: a command
    quoted as a whole (``'trainlab resume runs/x'``, a plain path's) loses those quotes first, as a reader does."""
    match = re.search(re.escape(before) + "(.*)" + re.escape(after) + ("$" if not after else ""), text)
    assert match, (before, after, text)
    command = match.group(1)
    if command.startswith("'trainlab") and command.endswith("'"):
        command = command[1:-1]
    return shlex.split(command)


# --------------------------------------------------------------------------- the helpers

@pytest.mark.parametrize("path", [AWKWARD, "/tmp/a$HOME b", "runs/plain-1", "-o"])
def test_a_command_line_splits_back_into_its_words(path):
    words = ["trainlab", "predict", path, "FILE"]
    assert shlex.split(command_line(*words)) == words
    assert shlex.split(command_line("--out", Path(path), "--overwrite")) == ["--out", path, "--overwrite"]


def test_plain_words_keep_their_wording():
    assert command_line("trainlab", "resume", "runs/plain-1") == "trainlab resume runs/plain-1"
    assert quoted_command("trainlab", "resume", Path("runs/plain-1")) == "'trainlab resume runs/plain-1'"
    assert quoted_command("trainlab", "resume", "/tmp/my runs/r 1") == "trainlab resume '/tmp/my runs/r 1'"


# --------------------------------------------------------------------------- through the CLI and the API

def test_eval_with_a_missing_data_dir_hints_a_predict_command_that_pastes(tmp_path, capsys):
    run = tmp_path / AWKWARD
    run.mkdir(parents=True)
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "none")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert _pasted(line, "to score other rows, run ") == ["trainlab", "predict", str(run), "FILE"]


@pytest.mark.parametrize("raised, before", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/file"), "once the disk is writable, "),
    (KeyboardInterrupt(), "its checkpoints are intact: "),
])
def test_resume_cut_short_hints_a_resume_command_that_pastes(tmp_path, monkeypatch, capsys, raised, before):
    def cut_short(args):
        raise raised

    run = tmp_path / AWKWARD
    monkeypatch.setitem(trainlab.cli.COMMANDS, "resume", cut_short)
    main(["resume", str(run)])
    assert _pasted(_one_error_line(capsys.readouterr().err), before) == ["trainlab", "resume", str(run)]


def test_plot_of_a_comparison_folder_hints_a_report_command_that_pastes(tmp_path, capsys):
    from trainlab.report.sources import LEADERBOARD

    comparison = tmp_path / AWKWARD
    comparison.mkdir(parents=True)
    (comparison / LEADERBOARD).write_text("{}")
    assert main(["plot", str(comparison), "-o", str(tmp_path / "c.png")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert _pasted(line, "is a comparison folder; use ", ", or plot its run folders") == [
        "trainlab", "report", str(comparison), "-o", "report.html"]


def test_eval_of_a_fit_folder_hints_a_plot_command_that_pastes(tmp_path, capsys):
    folder = tmp_path / AWKWARD
    folder.mkdir(parents=True)
    (folder / "strategy.yaml").write_text("loss: cross_entropy\n")
    (folder / "model.safetensors").write_bytes(b"")
    assert main(["eval", str(folder)]) != 0
    line = _one_error_line(capsys.readouterr().err)
    assert _pasted(line.rsplit("; ", 1)[1], "", " draws its curves") == ["trainlab", "plot", str(folder)]


def test_fit_of_a_whole_config_hints_a_train_command_that_pastes(tmp_path):
    import torch

    path = tmp_path / "it's my config.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, "strategy": {"loss": "cross_entropy", "batch_size": 8,
                                                            "optimizer": {"name": "sgd", "lr": 0.1}}}))
    x = np.zeros((8, 2), dtype=np.float32)
    with pytest.raises(ConfigError) as caught:
        trainlab.fit(torch.nn.Linear(2, 2), (x, np.arange(8) % 2), path)
    assert _pasted(str(caught.value), "run the whole config with `", "`") == ["trainlab", "train", str(path)]


def test_schedule_of_an_lr_auto_config_hints_an_lr_find_command_that_pastes(tmp_path, capsys):
    config = tmp_path / "it's lr auto.yaml"
    config.write_text(yaml.safe_dump({
        "name": "auto", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp"},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": "auto"}, "batch_size": 16,
                     "epochs": 1},
        "runtime": {"device": "cpu"}}))
    assert main(["schedule", str(config), "--plot", str(tmp_path / "s.png")]) == 0
    note = next(line for line in capsys.readouterr().err.splitlines() if "lr-find" in line)
    assert _pasted(note, "(run ", " for the value)") == ["trainlab", "lr-find", str(config)]


# --------------------------------------------------------------------------- the other hints, by their functions

@pytest.mark.parametrize("status", ["finished", "failed", "running"])
def test_a_run_without_its_model_hints_a_command_that_pastes(tmp_path, status):
    run = tmp_path / AWKWARD
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"format": 1, "status": status, "error": "boom"}))
    said = why_no_model(run)
    if status == "finished":
        assert _pasted(said, "train the run again with ", "; a comparison's run") == [
            "trainlab", "train", str(run / "config.yaml"), "--out", str(run), "--overwrite"]
    else:
        assert _pasted(said, "resume it with " if status == "failed" else "try ") == ["trainlab", "resume", str(run)]


def test_a_run_without_its_run_json_hints_an_overwrite_that_pastes(tmp_path):
    run = tmp_path / AWKWARD
    said = cannot_resume(run)
    assert _pasted(said, "outside the folder) with ", ", or into another --out") == ["--out", str(run), "--overwrite"]


def test_plot_of_a_run_with_step_records_only_hints_a_report_command_that_pastes(tmp_path, capsys):
    from trainlab.run_plots import _no_epochs

    class Run:
        path = tmp_path / AWKWARD
        info: dict = {}
        summary: dict = {}
        records: list = []
        events = [{"event": "step"}]

    Run.path.mkdir(parents=True)
    (Run.path / "metrics.jsonl").write_text('{"step": 1, "train_loss": 1.0}\n')
    said = _no_epochs(Run())
    assert _pasted(said, "the run recorded no epoch yet; ", " draws step records)") == [
        "trainlab", "report", str(Run.path), "-o", "report.html"]


def test_plain_paths_keep_the_hints_wording(tmp_path):
    run = tmp_path / "plain"
    assert why_no_model(run).endswith(f"try 'trainlab resume {run}'")
    assert f"with --out {run} --overwrite, or into another --out" in cannot_resume(run)


def test_a_run_whose_run_json_is_damaged_is_not_told_to_resume(tmp_path):
    """eval of a killed run with a truncated run.json said "try 'trainlab resume RUN'", which resume refuses (exit 3)."""
    run = tmp_path / "cut"
    run.mkdir()
    (run / "run.json").write_text('{"status": "runn')
    assert why_no_model(run).startswith("the run did not finish, and its run.json cannot be read: it cannot be resumed "
                                        "without it: restore run.json from a backup, or train the run again")
