"""A strategy's name is the folder of its runs: the refusal states the rule the check enforces (it listed
"letters, digits, '-', '_', '=' or ','" while accepting '<', '&', quotes and spaces, and the grid's own
names hold '.'), and the printed table shows any accepted name as written, never as rich markup."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from trainlab.cli import main
from trainlab.compare.leaderboard_output import print_leaderboard
from trainlab.compare.strategies import NAME_RULE, grid_strategies, parse_strategies
from trainlab.errors import ConfigError

REFUSED = {  # name -> what the error says of it
    "": "is empty",
    "../esc": "starts with '.'",
    ".hidden": "starts with '.'",
    "a/b": "holds '/'",
    "a\\b": "holds '\\'",
    "nul\x00byte": "holds the control character '\\x00'",
    "two\nlines": "holds the control character '\\n'",
    "tab\there": "holds the control character '\\t'",
    "é" * 128: "is 256 bytes in UTF-8",
}
ACCEPTED = ["<img src=x onerror=alert(1)>", 'a&b "q"', "with space", "lr[0.1]", "[red]x", "optimizer.name=sgd,lr=0.1",
            "é" * 127, "model.name=mymodels:make", "50%"]


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_name_that_cannot_be_a_folder_is_refused_with_the_rule(name):
    with pytest.raises(ConfigError) as caught:
        parse_strategies({"strategies": {name: {}}}, "s.yaml")
    message = str(caught.value)
    assert message.startswith("s.yaml: strategy name ") and f" {REFUSED[name]}; {NAME_RULE}" in message
    assert "\n" not in message and "\x00" not in message  # one line, the name escaped


def test_the_rule_names_what_the_check_refuses():
    for refused in ("must not be empty", "start with '.'", "'/'", "'\\'", "control character", "255 bytes"):
        assert refused in NAME_RULE
    assert "letters, digits" not in NAME_RULE


@pytest.mark.parametrize("name", ACCEPTED)
def test_any_other_name_is_a_folder_name_and_accepted(name, tmp_path):
    assert [s.name for s in parse_strategies({"strategies": {name: {}}}, "s.yaml")] == [name]
    (tmp_path / name).mkdir()  # it is a folder name on this file system
    assert os.listdir(tmp_path) == [name]


def test_grid_point_names_hold_dots_and_are_accepted():
    points = grid_strategies({"strategy.optimizer.name": ["sgd", "adam"], "strategy.batch_size": [32]}, "s.yaml")
    names = [p.name for p in points]
    assert names == ["optimizer.name=sgd,batch_size=32", "optimizer.name=adam,batch_size=32"]
    assert [s.name for s in parse_strategies({"grid": {"strategy.optimizer.name": ["sgd", "adam"],
                                                       "strategy.batch_size": [32]}})] == names


def test_a_grid_of_paths_names_its_points_without_separators_and_keeps_the_paths():
    # '/' in a name would nest the runs' folders: the name flattens it, the override keeps the path
    points = parse_strategies({"grid": {"data.path": ["sets/a.csv", "sets\\b.csv"]}})
    assert [p.name for p in points] == ["path=sets_a.csv", "path=sets_b.csv"]
    assert [p.overrides["data.path"] for p in points] == ["sets/a.csv", "sets\\b.csv"]


def test_the_cli_refuses_a_bad_name_with_one_error_line_and_exit_2(tmp_path: Path, capsys):
    (tmp_path / "base.yaml").write_text("data: {source: iris}\nmodel: {name: mlp}\n")
    (tmp_path / "s.yaml").write_text('strategies:\n  "../esc": {}\n')
    code = main(["compare", str(tmp_path / "base.yaml"), "--strategies", str(tmp_path / "s.yaml"), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()
    assert err.count("\n") == 1 and err.startswith("error: ") and "strategy name '../esc' starts with '.'" in err


def _board(names: list[str]) -> dict:
    block = {"n": 2, "mean": 0.9, "std": 0.01, "min": 0.89, "max": 0.91, "ci95": None, "values": [0.89, 0.91],
             "seeds": [0, 1]}
    entries = [{"name": name, "rank": rank, "runs": 2, "failed": 1,
                "failures": [{"seed": 2, "reason": f"error: KeyError('[/{rank}]')"}],
                "metrics": {"test_accuracy": block},
                "vs_best": {"verdict": "best" if rank == 1 else "indistinguishable", "p_holm": None,
                            "prob_improvement": None, "test": None},
                "time_to_target_s": {"median": None, "reached": None, "values": [None] * 3},
                "convergence": {"note": "val_x [/note]"}}
               for rank, name in enumerate(names, start=1)]
    return {"metric": "test_accuracy", "direction": "max", "seeds": 3, "target": None,
            "tasks": {"t": {"strategies": entries, "best": names[0]}}}


def test_names_and_reasons_with_brackets_are_printed_as_written_not_as_markup():
    names = ["[red]x", "[bold]b", "lr[0.1]"]
    buffer = io.StringIO()
    print_leaderboard(_board(names), Console(file=buffer, width=250))  # a reason with "[/1]" raised MarkupError
    printed = buffer.getvalue()
    for name in names:
        assert f"│ {name} " in printed
        assert f"failed: {name} seed 2: error: KeyError('[/" in printed
        assert f"note: {name}: val_x [/note]" in printed


@pytest.mark.parametrize(("text", "said"), [
    ("no", "a strategy is named no, false or off, which YAML reads as false, not as text: quote the name as you "
           "wrote it (e.g. 'no': ...)"),
    ("on", "a strategy is named yes, true or on, which YAML reads as true, not as text: quote the name as you wrote "
           "it (e.g. 'no': ...)"),
    ("~", "a strategy is named ~ or null, which YAML reads as null, not as text: quote the name as you wrote it "
          "(e.g. 'no': ...)"),
])
def test_a_yaml_word_as_a_strategy_name_is_refused_not_renamed(tmp_path, text, said):
    """A user's `strategies: {no: {...}, yes: {...}}` ran as folders runs/iris/False and runs/iris/True."""
    import yaml

    file = tmp_path / "s.yaml"
    file.write_text(f"strategies:\n  {text}: {{strategy.epochs: 1}}\n  '{text}': {{strategy.epochs: 2}}\n")
    with pytest.raises(ConfigError) as caught:
        parse_strategies(yaml.safe_load(file.read_text()), "s.yaml")
    assert str(caught.value) == f"s.yaml: {said}"
    quoted = parse_strategies(yaml.safe_load(f"strategies:\n  '{text}': {{strategy.epochs: 2}}\n"), "s.yaml")
    assert [s.name for s in quoted] == [text]


def test_a_grid_value_written_twice_in_two_forms_is_refused():
    """A user's grid `strategy.optimizer.lr: [1e-3, 0.001]` trained two identical strategies, reported as a tie
    (YAML 1.1 leaves 1e-3 a string); [0.1, 0.10] was refused already."""
    import yaml

    grid = yaml.safe_load("grid: {strategy.optimizer.lr: [1e-3, 0.001]}")
    assert grid["grid"]["strategy.optimizer.lr"][0] == "1e-3"  # the premise: a string
    with pytest.raises(ConfigError) as caught:
        parse_strategies(grid, "s.yaml")
    assert str(caught.value) == ("s.yaml: grid key 'strategy.optimizer.lr' lists 0.001 twice (as '1e-3' and 0.001); "
                                 "list each value once")
    assert len(parse_strategies(yaml.safe_load("grid: {strategy.optimizer.lr: [1e-3, 1e-2]}"), "s.yaml")) == 2
    assert len(parse_strategies({"grid": {"strategy.optimizer.name": ["adam", "1"], "seed_x": [None, 1]}},
                                "s.yaml")) == 4
    # quoted numerals are text: two column names, not one number (a review)
    assert len(parse_strategies({"grid": {"data.label_column": ["1", "01", "1.0"]}}, "s.yaml")) == 3
    with pytest.raises(ConfigError, match="lists None twice"):
        parse_strategies({"grid": {"strategy.schedule": [None, None]}}, "s.yaml")
