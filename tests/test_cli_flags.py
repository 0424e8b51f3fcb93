"""Global flags after the subcommand, and lr-find's sweep flags."""

from __future__ import annotations

import os

import pytest

from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.cli_parser import build_parser as _parser


def test_global_flags_are_accepted_after_the_subcommand():
    args = _parser().parse_args(["schedule", "c.yaml", "--plot", "p.png", "--data-dir", "D", "--debug",
                                 "--allow-code"])
    assert (args.data_dir, args.debug, args.allow_code) == ("D", True, True)
    before = _parser().parse_args(["--data-dir", "D", "--debug", "schedule", "c.yaml", "--plot", "p.png"])
    assert (before.data_dir, before.debug, before.allow_code) == ("D", True, False)  # not reset by the subparser
    neither = _parser().parse_args(["eval", "run"])
    assert (neither.data_dir, neither.debug, neither.allow_code) == (None, False, False)


def test_data_dir_after_the_subcommand_resolves_relative_paths(write_config, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "table.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(60)))
    config = write_config(DIGITS_MLP, data={"source": "csv", "path": "table.csv", "target": "y"},
                          strategy__epochs=1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    png = tmp_path / "lr.png"
    assert main(["schedule", str(config), "--plot", str(png)]) == 3  # table.csv is not in the working directory
    assert main(["schedule", str(config), "--plot", str(png), "--data-dir", str(data)]) == 0
    assert png.exists()
    os.environ.pop("TRAINLAB_DATA_DIR", None)  # main() exports it for the command


def test_lr_find_takes_the_sweep_from_its_flags(write_config, tmp_path, capsys, monkeypatch):
    import trainlab.lr_find_run

    seen = {}
    real = trainlab.lr_find_run.lr_find_config

    def spy(config, plot=None, **kwargs):
        seen.update(kwargs)
        suggestion, lrs, losses = real(config, plot, **kwargs)
        seen["lrs"] = lrs
        return suggestion, lrs, losses

    monkeypatch.setattr(trainlab.lr_find_run, "lr_find_config", spy)
    config = write_config(DIGITS_MLP)
    assert main(["lr-find", str(config), "--start-lr", "1e-5", "--end-lr", "1", "--steps", "30"]) == 0
    assert {k: seen[k] for k in ("start_lr", "end_lr", "num_steps")} == {"start_lr": 1e-5, "end_lr": 1.0,
                                                                          "num_steps": 30}
    assert seen["lrs"][0] == pytest.approx(1e-5) and len(seen["lrs"]) <= 30
    assert seen["lrs"][-1] <= 1.0
    suggestion = float(capsys.readouterr().out.splitlines()[0].split(":")[1])
    assert 1e-5 <= suggestion <= 1.0


@pytest.mark.parametrize("flags,message", [(["--start-lr", "1", "--end-lr", "0.1"], "0 < --start-lr < --end-lr"),
                                           (["--start-lr", "0"], "0 < --start-lr"),
                                           (["--steps", "1"], "--steps must be in [30, "),
                                           (["--steps", "29"], "--steps must be in [30, 100000]; got 29 (a shorter "
                                                               "sweep skips fewer than the 3 warm-up steps")])
def test_lr_find_refuses_a_bad_sweep_in_one_line(write_config, capsys, flags, message):
    config = write_config(DIGITS_MLP)
    assert main(["lr-find", str(config), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_lr_find_gives_the_short_sweeps_reason_only_to_a_short_sweep(write_config, capsys):
    """``--steps 100000000`` was told that "a shorter sweep skips fewer than the 3 warm-up steps"."""
    config = write_config(DIGITS_MLP)
    assert main(["lr-find", str(config), "--steps", "100000000"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --steps must be in [30, 100000]; got 100000000\n"


def test_lr_find_help_states_the_shortest_sweep(capsys):
    from trainlab.lr_finder import MIN_SWEEP_STEPS

    with pytest.raises(SystemExit):
        main(["lr-find", "--help"])
    assert f"at least {MIN_SWEEP_STEPS}" in " ".join(capsys.readouterr().out.split())


def test_a_ctrl_c_or_sigterm_during_the_torch_import_is_held_and_reported_after_it(tmp_path, monkeypatch):
    import signal

    from trainlab.cli import import_holding_signals
    from trainlab.sigterm import sigterm_as_ctrl_c

    for name, sig in (("interrupted_while_importing", "SIGINT"), ("terminated_while_importing", "SIGTERM"),
                      ("interrupted_while_ignored", "SIGINT")):
        (tmp_path / f"{name}.py").write_text(f"import os, signal\nos.kill(os.getpid(), signal.{sig})\nFINISHED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh `trainlab` process has it
    received: list[int] = []
    try:
        with sigterm_as_ctrl_c(received):
            ours = signal.getsignal(signal.SIGTERM)
            assert import_holding_signals("interrupted_while_importing", received) is True  # no KeyboardInterrupt
            assert import_holding_signals("terminated_while_importing", received) is True  # mid-import
            import interrupted_while_importing
            import terminated_while_importing

            assert interrupted_while_importing.FINISHED and terminated_while_importing.FINISHED
            assert received == [signal.SIGINT, signal.SIGTERM]
            # Ctrl-C and SIGTERM behave as before afterwards
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            assert signal.getsignal(signal.SIGTERM) is ours
            assert import_holding_signals("json", received) is False
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup, or `trainlab ... &` in a script: Ctrl-C is ignored
            assert import_holding_signals("interrupted_while_ignored", received) is False
            assert received == [signal.SIGINT, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGINT, outer)


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path, capsys, monkeypatch):
    """--debug re-raised: exit 1 whatever the error, so scripts run with it lost 2/3/4/5."""
    import trainlab.cli

    assert main(["--debug", "eval", str(tmp_path / "nonexist")]) == 2  # a TrainlabError (RunDirError)
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RunDirError" in err

    def fails(kind):
        def command(args):
            raise kind
        return command

    for error, code in ((OSError(28, "No space left on device"), 5), (ZeroDivisionError("a bug"), 4)):
        monkeypatch.setitem(trainlab.cli.COMMANDS, "eval", fails(error))
        assert main(["--debug", "eval", "x"]) == code
        assert type(error).__name__ in capsys.readouterr().err
        assert main(["eval", "x"]) == code  # without --debug: the one line, as before
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_mistyped_command_or_choice_gets_a_did_you_mean(capsys):
    for argv, hint in ((["traon", "x.yaml"], "; did you mean 'train'?"),
                       (["eval", "r", "--split", "tst"], "; did you mean 'test'?")):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        err = capsys.readouterr().err
        assert caught.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
        assert hint in err and "invalid choice" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["compare", "c.yaml", "--strategies", "s.yaml", "--seeds", ""], "--seeds: expected a whole number such as 5; got ''"),
    (["tune", "c.yaml", "--space", "s.yaml", "--trials", "3.5"], "--trials: expected a whole number such as 5; got '3.5'"),
    (["lr-find", "c.yaml", "--end-lr", "ten"], "--end-lr: expected a number such as 0.5 or 1e-3; got 'ten'")])
def test_a_number_flag_given_no_number_says_what_it_takes(capsys, argv, message):
    """User trial: ``--seeds ''`` was argparse's "invalid int value: ''", which does not say what would do."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.startswith("error: argument ") and err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize("command", [["eval"], ["predict", "{missing}", "new.csv"],
                                     ["plot", "{missing}", "-o", "{png}"]])
def test_a_missing_run_folder_is_said_not_to_exist_as_resume_says(tmp_path, capsys, command):
    """eval and predict said 'is not a trainlab run folder (no config.yaml)' for a path that is not there,
    plot '... nor a comparison folder (no leaderboard.json)'."""
    missing = tmp_path / "nonexist"
    argv = [part.format(missing=missing, png=tmp_path / "c.png") for part in command] \
        + ([] if len(command) > 1 else [str(missing)])
    assert main(argv) == 2
    assert main(["resume", str(missing)]) == 2
    eval_err, resume_err = capsys.readouterr().err.splitlines()
    assert eval_err == resume_err == f"error: run folder {missing} does not exist"


def test_a_data_dir_that_is_missing_or_a_file_is_named_where_a_data_path_is_looked_for(write_config, tmp_path,
                                                                                      capsys, monkeypatch):
    """Said where a relative data path is looked for in it, not up front: a command that reads no data
    file (a built-in set here) is not refused for it."""
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    csv_config = write_config(DIGITS_MLP, "csv.yaml", data={"source": "csv", "path": "table.csv", "target": "y"})
    digits_config = write_config(DIGITS_MLP, "digits.yaml")
    for path, what in ((tmp_path / "nonexist", "does not exist"), (tmp_path / "a_file", "is not a folder")):
        assert main(["--data-dir", str(path), "schedule", str(csv_config), "--plot", str(tmp_path / "p.png")]) == 3
        err = capsys.readouterr().err
        assert err.startswith("error: data file not found: 'table.csv'") and err.count("\n") == 1, err
        assert err.rstrip().endswith(f"; the data folder {path} (--data-dir or TRAINLAB_DATA_DIR) {what}"), err
        monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
        assert main(["--data-dir", str(path), "schedule", str(digits_config), "--plot", str(tmp_path / "p.png")]) == 0
        monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    assert "TRAINLAB_DATA_DIR" not in os.environ


def test_a_data_path_read_from_the_working_directory_past_a_missing_data_dir_is_warned_once(
        write_config, tmp_path, capsys, monkeypatch):
    """A mistyped --data-dir went unnoticed when the working directory held a file of the same name."""
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40))
    (tmp_path / "table.csv").write_text("a,b,y\n" + rows + "\n")
    csv_config = write_config(DIGITS_MLP, "csv.yaml", data={"source": "csv", "path": "table.csv", "target": "y"})
    missing = tmp_path / "dat"
    for _ in range(2):  # once per folder and process
        assert main(["--data-dir", str(missing), "schedule", str(csv_config), "--plot", str(tmp_path / "p.png")]) == 0
        monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: the data folder {missing} (--data-dir or TRAINLAB_DATA_DIR) does not exist: "
                        f"relative data paths are read from the working directory ({tmp_path}) instead"]
    (tmp_path / "dat").mkdir()  # an existing folder without the file: the working directory's, unsaid
    assert main(["--data-dir", str(tmp_path / "dat"), "schedule", str(csv_config), "--plot", str(tmp_path / "p.png")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_train_past_a_data_dir_that_is_a_file_says_so_once(write_config, tmp_path, capsys, monkeypatch):
    """train found its data in the working directory past --data-dir d.csv (a file) without a word: the
    run folder's absolute data paths were resolved apart from the reader's warning."""
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("a,b,y\n" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(40)))
    config = write_config(DIGITS_MLP, data={"source": "csv", "path": "d.csv", "target": "y"}, strategy__epochs=1)
    assert main(["train", str(config), "--data-dir", "d.csv", "--out", "run", "--quiet"]) == 0
    os.environ.pop("TRAINLAB_DATA_DIR", None)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "data folder" in line]
    assert warnings == ["warning: the data folder d.csv (--data-dir or TRAINLAB_DATA_DIR) is not a folder: relative "
                        f"data paths are read from the working directory ({tmp_path}) instead"]


def test_a_run_without_a_test_split_says_so_under_its_heading(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP, data={"source": "digits", "test_fraction": 0.0}, strategy__epochs=1)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "test: (no rows in this split)" in out and "test:" not in out
    assert out[out.index("val:") + 1].startswith("  loss")


def test_resume_into_a_run_of_another_config_names_the_first_change(write_config, tmp_path, capsys):
    """It gave two config hashes only."""
    config = write_config(DIGITS_MLP, strategy__epochs=1)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--resume", "--set", "strategy.epochs=2"]) == 2
    err = capsys.readouterr().err
    # the run finished: resume would not train it further ("resume RUN to continue the stored one" did nothing)
    assert err == (f"error: --resume: {out} holds a finished run of another config (strategy.epochs: was 1, now 2), "
                   "which resume does not train further; to train with the new settings, use another --out, or "
                   "--overwrite to replace the stored run (kept until the new one finishes)\n"), err


def _subcommand_options():
    import argparse

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [(name, action) for name, sub in commands.choices.items() for action in sub._actions
            if action.option_strings and action.dest != "help"]


def test_every_subcommand_option_has_a_help_that_states_its_default():
    import argparse

    for name, action in _subcommand_options():
        assert action.help, f"trainlab {name} {action.option_strings[-1]} has no help"
        default = action.default
        if default not in (None, False, argparse.SUPPRESS) and not isinstance(default, list):
            assert "default" in action.help, f"trainlab {name} {action.option_strings[-1]}: {action.help!r}"


def test_plot_flags_name_every_image_format_they_accept():
    from trainlab.plots import FORMATS

    plots = {name: action.help for name, action in _subcommand_options() if action.dest == "plot"}
    assert set(plots) == {"schedule", "lr-find"}
    for help_text in plots.values():
        assert all(f".{suffix}" in help_text for suffix in FORMATS), help_text
