"""compare and compare_files from Python: a single string where a list is expected is one item, a wrong
type is one ConfigError naming the argument and what is valid (not a TypeError, an AttributeError, or a
string iterated by character), and the direction takes compare's and tune's words alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from trainlab.compare import compare, compare_files
from trainlab.compare.strategies import NamedStrategy
from trainlab.errors import ConfigError

BASE = {"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                     "epochs": 1},
        "metrics": ["accuracy"], "runtime": {"num_threads": 1}, "output": {"progress": "off"}}


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump({"strategies": {"a": None}}))
    return tmp_path


def _epochs(out: Path, task: str = "iris", strategy: str = "a") -> int:
    return yaml.safe_load((out / "runs" / task / strategy / "seed-0" / "config.yaml").read_text())["strategy"]["epochs"]


def test_one_path_and_one_override_as_strings_are_one_item(files):
    """compare_files("iris.yaml", ...) iterated the characters ("config file not found: i"); overrides=
    "strategy.epochs=2" gave "--set expects KEY=VALUE; got 's'"."""
    board = compare_files("iris.yaml", "strategies.yaml", out="out", overrides="strategy.epochs=2", seeds=1, jobs=1,
                          quiet=True, live=False, direction="maximize")
    assert list(board["tasks"]) == ["iris"]
    assert _epochs(files / "out") == 2  # the override, applied
    assert board["direction"] == "max"  # tune's word, compare's meaning
    path_board = compare_files([Path("iris.yaml")], Path("strategies.yaml"), out=Path("out"), seeds=1, jobs=1,
                               quiet=True, live=False, overrides=["strategy.epochs=2"])
    assert path_board["tasks"]["iris"]["strategies"][0]["runs"] == 1  # the same runs, found again


@pytest.mark.parametrize(("options", "message"), [
    ({"seeds": "2"}, "seeds must be a whole number from 1 to 1000; got '2' (str)"),  # named as Python's argument
    ({"seeds": 0}, "seeds must be a whole number from 1 to 1000; got 0"),
    ({"seeds": True}, "seeds must be a whole number from 1 to 1000; got True (bool)"),
    ({"jobs": None}, "jobs must be a whole number from 1 to 256; got None (NoneType)"),
    ({"jobs": 1.5}, "jobs must be a whole number from 1 to 256; got 1.5 (float)"),
    # --jobs 100000 forked 525 workers for 2 runs (12 GB in 25 s); 10^11 seeds ran out of memory planning runs
    ({"jobs": 257}, "jobs must be a whole number from 1 to 256; got 257"),
    ({"seeds": 10**11}, "seeds must be a whole number from 1 to 1000; got 100000000000"),
    ({"seed": 2}, "compare_files got an unknown option 'seed'; did you mean 'seeds'? (options: seeds, jobs, target, "
                  "metric, direction, live, quiet, wait, show_leaderboard)"),
    ({"direction": "up"}, "direction must be one of max, min, maximize, minimize (or None: by the metric's name); "
                          "got 'up'"),
    ({"metric": 3}, "metric must be a string such as 'test_accuracy'; got 3 (int)"),
    ({"target": 0.9}, "target must be a string such as 'val_accuracy=0.9' or None; got 0.9 (float)"),
    ({"quiet": "yes"}, "quiet must be True or False; got 'yes'"),
    ({"overrides": {"strategy.epochs": 2}}, "overrides must be 'KEY=VALUE' or a list of them; got {'strategy.epochs': 2}"),
    # a metric the runs do not record: named as the keyword too (it said --metric from Python)
    ({"metric": "test_acc"}, "metric 'test_acc' is not recorded by the runs of task 'iris'; did you mean "
                             "'test_accuracy'? (recorded: test_loss, test_accuracy, val_loss, val_accuracy, "
                             "train_time_s, samples_per_s, epochs_run, steps, best_epoch)"),
])
def test_a_wrong_option_is_one_config_error_naming_it(files, options, message):
    with pytest.raises(ConfigError) as raised:
        compare_files(["iris.yaml"], "strategies.yaml", out="out", **options)
    assert str(raised.value) == message
    assert not (files / "out").exists()  # refused before anything is written


@pytest.mark.parametrize(("flags", "message"), [
    (["--seeds", "0"], "error: --seeds must be a whole number from 1 to 1000; got 0"),
    (["--jobs", "0"], "error: --jobs must be a whole number from 1 to 256; got 0"),
    (["--metric", "test_acc"], "error: --metric 'test_acc' is not recorded by the runs of task 'iris'; did you mean "
                               "'test_accuracy'? (recorded: test_loss, test_accuracy, val_loss, val_accuracy, "
                               "train_time_s, samples_per_s, epochs_run, steps, best_epoch)"),
])
def test_the_command_names_its_flags(files, capsys, flags, message):
    """The same check from the CLI names the flag; from Python (above) the keyword argument."""
    from trainlab.cli import main

    assert main(["compare", "iris.yaml", "--strategies", "strategies.yaml", "--out", "out", *flags]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (files / "out").exists()


@pytest.mark.parametrize(("base_paths", "message"), [
    ([], "base_paths must be a config file's path or a non-empty list of them; got [] (list)"),
    (None, "base_paths must be a config file's path or a non-empty list of them; got None (NoneType)"),
    ([3], "each of base_paths must be a path (str or pathlib.Path); got 3 (int)"),
])
def test_bad_base_paths_are_one_config_error(files, base_paths, message):
    with pytest.raises(ConfigError) as raised:
        compare_files(base_paths, "strategies.yaml", out="out")
    assert str(raised.value) == message


@pytest.mark.parametrize(("bases", "strategies", "message"), [
    (["iris.yaml"], [NamedStrategy("a", {})],
     "bases must be a mapping {task name: config dict}, e.g. {'iris': read_yaml('iris.yaml')}; for config files, "
     "use compare_files(['iris.yaml'], 'strategies.yaml'); got ['iris.yaml'] (list)"),
    ({"iris": "iris.yaml"}, [NamedStrategy("a", {})],
     "bases['iris'] must be a config dict (read_yaml('iris.yaml')); got 'iris.yaml' (str); for config files, use "
     "compare_files(['iris.yaml'], 'strategies.yaml')"),
    ({"a/b": BASE}, [NamedStrategy("a", {})], "bases: task name 'a/b' cannot be a folder name"),
    ({"iris": BASE}, "strategies.yaml", "strategies must be a list of NamedStrategy(name, {config key: value}), or a "
                                        "mapping {name: {config key: value}} (a strategies file's content works too); "
                                        "got str 'strategies.yaml'"),
    ({"iris": BASE}, [("a", {})], "strategies must be a list of NamedStrategy"),
    ({"iris": BASE}, [NamedStrategy("a", {}), NamedStrategy("a", {"strategy.epochs": 2})],
     "strategies: duplicate strategy name 'a'; give each strategy its own name"),
    ({"iris": BASE}, {"a": {"seed": 3}}, "strategies: strategy 'a' sets 'seed', which compare sets for every run"),
])
def test_compare_refuses_wrong_bases_and_strategies_in_one_line(files, bases, strategies, message):
    """compare(bases=[...]) and compare(strategies={...}) raised AttributeError ('list' object has no attribute
    'items', 'str' object has no attribute 'overrides')."""
    with pytest.raises(ConfigError) as raised:
        compare(bases, strategies, "out", seeds=1, jobs=1)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert not (files / "out").exists()


def test_strategies_as_a_mapping_and_minimize(files):
    """A mapping of strategies is the file's ``strategies`` section (or the whole file's content); tune's
    "minimize" ranks by the smaller loss, as "min" does."""
    board = compare({"iris": BASE}, {"a": None, "b": {"strategy.epochs": 2}}, "out", seeds=1, jobs=1, quiet=True,
                    live=False, metric="test_loss", direction="minimize")
    assert board["direction"] == "min"
    entries = board["tasks"]["iris"]["strategies"]
    losses = {e["name"]: e["metrics"]["test_loss"]["values"][0] for e in entries}
    assert [e["name"] for e in entries] == sorted(losses, key=losses.get)  # ranked by the smaller test loss
    assert _epochs(files / "out", strategy="b") == 2
    again = compare({"iris": BASE}, {"strategies": {"a": None}, "grid": {"strategy.epochs": [2]}}, "out", seeds=1,
                    jobs=1, quiet=True, live=False, metric="test_loss", direction="min")
    assert {e["name"] for e in again["tasks"]["iris"]["strategies"]} == {"a", "epochs=2"}
    assert json.loads((files / "out" / "leaderboard.json").read_text())["direction"] == "min"


@pytest.mark.parametrize(("given", "written"), [("min", "min"), ("max", "max"), ("minimize", "min"),
                                                ("maximize", "max"), (None, None)])
def test_compare_direction_takes_both_words(given, written):
    from trainlab.compare.command import compare_direction

    assert compare_direction(given) == written


def test_quiet_prints_no_line_per_run(files, capsys):
    """compare(quiet=True) still printed '[1/2] iris/a/seed-0: test_accuracy=...' for every run."""
    compare_files("iris.yaml", "strategies.yaml", out="out", seeds=2, jobs=1, quiet=True, live=False)
    printed = capsys.readouterr()
    assert "seed-" not in printed.out + printed.err
    compare_files("iris.yaml", "strategies.yaml", out="loud", seeds=2, jobs=1, live=False)
    assert "iris/a/seed-1" in capsys.readouterr().out
