"""TuneSettings' arguments from Python and the command line: a wrong type or value is one ConfigError naming
the argument (``trials`` from Python, ``--trials`` in the CLI command) and what is valid, not a TypeError, an
AttributeError, a float rounded up or a string iterated by character; the direction takes tune's and
compare's words alike (trainlab.tune.arguments)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import trainlab.tune
from tests.test_tune import BASE
from trainlab.cli import main
from trainlab.code_policy import code_policy
from trainlab.errors import ConfigError
from trainlab.tune import TuneSettings, tune

SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path


def _settings(**options) -> TuneSettings:
    return TuneSettings(**{"base": "base.yaml", "space": "space.yaml", "trials": 1, "out": "out", **options})


@pytest.mark.parametrize(("options", "message"), [
    ({"trials": "4"}, "trials must be a whole number >= 1; got '4' (str)"),  # was TypeError: '<' not supported
    ({"trials": 1.5}, "trials must be a whole number >= 1; got 1.5 (float)"),  # was accepted: ran 2 trials
    ({"trials": True}, "trials must be a whole number >= 1; got True (bool)"),
    ({"trials": 0}, "trials must be a whole number >= 1; got 0"),
    ({"jobs": None}, "jobs must be a whole number from 1 to 256; got None (NoneType)"),
    ({"jobs": 2.0}, "jobs must be a whole number from 1 to 256; got 2.0 (float)"),
    ({"refit_seeds": -1}, "refit_seeds must be a whole number from 0 to 1000; got -1"),
    ({"jobs": 257}, "jobs must be a whole number from 1 to 256; got 257"),  # 10^5 forked workers: 12 GB in 25 s
    ({"seed": "a"}, "seed must be a whole number from 0 to 4294967295; got 'a' (str)"),  # was accepted
    # fANOVA's random forest refused it, so best.json lost its importances ("could not compute")
    ({"seed": -1}, "seed must be a whole number from 0 to 4294967295; got -1"),
    ({"timeout_s": "10"}, "timeout_s must be a number of seconds > 0 (or None: no time limit); got '10' (str)"),
    ({"timeout_s": 0}, "timeout_s must be a number of seconds > 0 (or None: no time limit); got 0"),
    ({"timeout_s": math.nan}, "timeout_s must be a number of seconds > 0 (or None: no time limit); got nan"),
    ({"metric": None}, "metric must be a non-empty string such as 'val_accuracy'; got None (NoneType)"),  # was AttributeError
    ({"metric": "accuracy"}, "metric must name a validation metric such as val_accuracy or val_loss; got 'accuracy'; "
                             "did you mean 'val_accuracy'?"),
    ({"direction": "up"}, "direction must be one of max, min, maximize, minimize (or None: maximize for "
                          "val_accuracy); got 'up'"),
    ({"direction": -1, "metric": "val_loss"}, "direction must be one of max, min, maximize, minimize (or None: "
                                              "minimize for val_loss); got -1 (int)"),
    ({"pruner": "med"}, "pruner 'med' is unknown; did you mean 'median'? (valid: median, hyperband, wilcoxon, none)"),
    ({"pruner": None}, "pruner must be one of median, hyperband, wilcoxon, none; got None (NoneType)"),
    ({"storage": ""}, "storage must be a non-empty string such as 'postgresql://user:pw@host/db' (or None: Optuna's "
                      "journal file in out); got ''"),
    ({"study_name": 5}, "study_name must be a non-empty string such as 'mnist1d' (or None: trainlab-<base file "
                        "stem>); got 5 (int)"),
    ({"quiet": "yes"}, "quiet must be True or False; got 'yes'"),
    ({"overrides": {"strategy.epochs": 2}}, "overrides must be 'KEY=VALUE' or a list of them; got "
                                            "{'strategy.epochs': 2}"),
    ({"overrides": ["strategy.epochs=2", 3]}, "overrides must be 'KEY=VALUE' or a list of them; got "
                                              "['strategy.epochs=2', 3]"),
    ({"base": None}, "base must be a path (str or pathlib.Path); got None (NoneType)"),
    ({"space": 3}, "space must be a path (str or pathlib.Path); got 3 (int)"),
    ({"out": ["out"]}, "out must be a path (str or pathlib.Path); got ['out'] (list)"),
])
def test_a_wrong_argument_is_one_config_error_naming_it(files, options, message):
    with pytest.raises(ConfigError) as raised:
        _settings(**options)
    assert str(raised.value) == message
    assert not (files / "out").exists()


def test_tune_refuses_anything_but_settings():
    """tune("base.yaml") raised AttributeError: 'str' object has no attribute 'jobs'."""
    with pytest.raises(ConfigError, match=r"^tune takes one TuneSettings\(base=..., space=..., trials=...\); "
                                          r"got 'base.yaml' \(str\)$"):
        tune("base.yaml")


@pytest.mark.parametrize(("given", "direction"), [("max", "maximize"), ("maximize", "maximize"),
                                                  ("min", "minimize"), ("minimize", "minimize"), (None, "maximize")])
def test_direction_takes_compares_words_too_as_optunas(given, direction):
    assert _settings(direction=given).direction == direction
    assert _settings(direction=given, metric="val_loss").direction == (direction if given else "minimize")


@pytest.mark.parametrize("spelling", ["min", "minimize"])
def test_the_command_and_python_make_the_same_settings_for_either_spelling(files, monkeypatch, spelling):
    made: list[TuneSettings] = []
    monkeypatch.setattr(trainlab.tune, "tune", made.append)  # the command imports it when it runs
    assert main(["tune", "base.yaml", "--space", "space.yaml", "--trials", "1", "--out", "out",
                 "--direction", spelling]) == 0
    assert made == [_settings(direction=spelling)]
    assert made[0].direction == "minimize"


def test_accepted_types_are_normalised():
    """Paths as strings or Paths, one override string as one override, an int timeout as seconds."""
    settings = _settings(base=Path("base.yaml"), out=None, overrides="strategy.epochs=2", timeout_s=10, seed=2**32 - 1,
                         storage="sqlite:///s.db", study_name="s", refit_seeds=0)
    assert settings.base == Path("base.yaml") and settings.out == Path("tunes/base")
    assert settings.overrides == ("strategy.epochs=2",)
    assert settings.timeout_s == 10.0
    assert _settings(overrides=["a=1", "b=2"]).overrides == _settings(overrides=("a=1", "b=2")).overrides == ("a=1", "b=2")


@pytest.mark.parametrize(("flags", "message"), [
    (["--trials", "0"], "error: --trials must be a whole number >= 1; got 0"),
    (["--trials", "1", "--jobs", "0"], "error: --jobs must be a whole number from 1 to 256; got 0"),
    (["--trials", "1", "--timeout", "nan"], "error: --timeout must be a number of seconds > 0; got nan"),
    (["--trials", "1", "--seed", "-1"], "error: --seed must be a whole number from 0 to 4294967295; got -1"),
    (["--trials", "1", "--refit-seeds", "-1"], "error: --refit-seeds must be a whole number from 0 to 1000; got -1"),
    (["--trials", "1", "--study", ""], "error: --study must be a non-empty string such as 'mnist1d'; got ''"),
    (["--trials", "1", "--pruner", "med"], "error: --pruner 'med' is unknown; did you mean 'median'? (valid: median, "
                                           "hyperband, wilcoxon, none)"),
    (["--trials", "1", "--metric", "accuracy"], "error: --metric must name a validation metric such as val_accuracy "
                                                "or val_loss; got 'accuracy'; did you mean 'val_accuracy'?"),
])
def test_the_command_names_its_flags(files, capsys, flags, message):
    assert main(["tune", "base.yaml", "--space", "space.yaml", "--out", "out", *flags]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (files / "out").exists()


def test_a_usage_error_of_tune_points_at_tune_s_own_help(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["tune", "base.yaml", "--space", "space.yaml", "--trials", "1", "--direction", "up"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == ("error: argument --direction: invalid choice: 'up' (choose from 'maximize', "
                                       "'minimize', 'max', 'min') (see 'trainlab tune --help')\n")


def test_inside_a_cli_block_the_flag_is_named():
    with code_policy(cli=True), pytest.raises(ConfigError, match=r"^--timeout must be a number of seconds > 0; "
                                                                 r"got '10' \(str\)$"):
        _settings(timeout_s="10")


def test_one_override_string_is_one_override_in_a_study(files):
    """overrides="strategy.epochs=2" was split into characters: '--set expects KEY=VALUE ...; got 's''."""
    best = tune(_settings(overrides="strategy.epochs=1", quiet=True, pruner="none"))
    config = yaml.safe_load((files / "out" / "trials" / str(best["trial"]) / "config.yaml").read_text())
    assert config["strategy"]["epochs"] == 1


def test_numpy_numbers_are_taken_as_the_numbers_they_are():
    import numpy as np

    settings = _settings(trials=np.int64(3), seed=np.int32(7), timeout_s=np.float32(2.5))
    assert (settings.trials, settings.seed, settings.timeout_s) == (3, 7, 2.5)
    assert type(settings.trials) is int and type(settings.seed) is int
    with pytest.raises(ConfigError, match="trials must be a whole number"):
        _settings(trials=np.bool_(True))


def test_a_user_metric_is_maximised_whatever_its_name_as_early_stopping_takes_it():
    """'val_mymod:my_loss' was minimised by tune and compare (by its name) and maximised by early stopping."""
    from trainlab.compare.metric_keys import direction_of
    from trainlab.metrics import higher_is_better
    from trainlab.tune.study import default_direction

    assert higher_is_better("val_mymod:my_loss")
    assert default_direction("val_mymod:my_loss") == "maximize" and direction_of("test_mymod:my_loss") == "max"
    assert default_direction("val_loss") == "minimize" and direction_of("test_loss") == "min"
