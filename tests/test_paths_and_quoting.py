"""Paths and values as a user types them: a ``#`` in a ``--set`` value, a quote in a value the error says to
quote, a quote or backslash in a path printed inside Python, and ``~`` where no shell expanded it.

- ``--set 'data.path=data #1/w.csv'`` read ``#1/w.csv`` as a YAML comment (data file 'data' not found), and
  ``--set "name=it's #1: yes"`` trained a run named ``it's`` without a word: a value YAML would cut at a
  comment is now the string as written;
- ``quote it: --set 'name="{a: it's}"'`` was no shell word (bash: unexpected EOF): the argument is quoted for
  the shell, and the references here are ``shlex.split`` and bash itself;
- the ``load_state_dict(...('PATH'))`` a trainlab.fit folder is told to load with was no Python for a path
  holding a quote: the reference is ``ast.parse``, and running the snippet on a real module;
- ``--out=~/x`` (the shell expands ``~`` only at a word's start), ``train(out="~/x")`` and
  ``fit(strategy="~/s.yaml")`` made or looked for a folder named ``~`` in the working directory, where
  ``output.dir: ~/x`` in a config is the home folder's.
"""

from __future__ import annotations

import ast
import functools
import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import yaml

import trainlab
from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.cli_parser import build_parser
from trainlab.config import load_config
from trainlab.config_overrides import parse_override
from trainlab.errors import ConfigError, RunDirError
from trainlab.experiment import train
from trainlab.inference import load_run
from trainlab.run_evaluation import evaluate_run
from trainlab.run_resume import resume

AWKWARD = "fit out é 'q' \"dq\" \\ #1"  # both quotes, a backslash, a '#' after a space, a non-ASCII letter
IRIS = {**DIGITS_MLP, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
        "strategy": {**DIGITS_MLP["strategy"], "epochs": 1}}


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith(("warning: ", "note: "))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """$HOME in a folder of its own, and the working directory in another: a literal ``~`` folder made in the
    working directory is told apart from the home folder's."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    yield home
    assert not (work / "~").exists(), "a folder named '~' was made in the working directory"


# --------------------------------------------------------------------------- 1. '#' in a --set value

@pytest.mark.parametrize(("override", "value"), [
    ("data.path=data #1/wine 日本.csv", "data #1/wine 日本.csv"),
    ("name=it's #1: yes", "it's #1: yes"),  # without the comment YAML would read a mapping: as written, a string
    ("name=#3", "#3"),  # a comment from the start: YAML's null
    ("name=  run #2  ", "run #2"),
    ("model.hidden=[64, 32] # wide", "[64, 32] # wide"),  # a string, which model.hidden refuses by name
])
def test_a_set_value_where_yaml_would_read_a_comment_is_the_string_as_written(override, value):
    assert parse_override(override)[1] == value


@pytest.mark.parametrize(("override", "value"), [
    ("name=\"it's #1: yes\"", "it's #1: yes"),  # the quoted form sets the same string
    ("name='#3'", "#3"),
    ("name=a#b", "a#b"),  # no space before '#': no comment, plain YAML
    ("model.hidden=[64, 32]", [64, 32]),  # a value without a comment is YAML as before
    ("strategy.optimizer={name: adam, lr: 0.01}", {"name": "adam", "lr": 0.01}),
])
def test_a_set_value_without_a_yaml_comment_is_read_as_yaml(override, value):
    assert parse_override(override)[1] == value


def test_advise_finds_a_data_path_holding_a_hash_after_a_space(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cfg dir é"
    (folder / "data #1").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a:.3f},{b:.3f},{int(a + b > 0)}" for a, b in rng.normal(size=(60, 2)))
    (folder / "data #1" / "wine 日本.csv").write_text("f1,f2,label\n" + rows + "\n")
    (folder / "csv.yaml").write_text(yaml.safe_dump({**IRIS, "data": {"source": "csv", "path": "x.csv",
                                                                      "target": "label"}}))
    monkeypatch.chdir(folder)
    assert main(["advise", "csv.yaml", "--set", "data.path=data #1/wine 日本.csv"]) == 0, capsys.readouterr().err
    assert "binary" in capsys.readouterr().out  # the file was read: its 0/1 labels are a binary task


def test_a_run_named_with_a_hash_after_a_space_keeps_the_whole_name(write_config):
    config = load_config(write_config(IRIS), ["name=it's #1: yes"])
    assert config.name == "it's #1: yes"


# --------------------------------------------------------------------------- 2. the quote-it advice pastes

@pytest.mark.parametrize(("key", "value"), [
    ("name", "{a: it's}"), ("name", "[it's, \"q\"]"), ("name", "yes"),
    ("output.dir", "{a: $HOME \\ `b` it's}"),  # a backslash (which a run name refuses) and what bash expands
])
def test_the_suggested_quoted_set_is_one_shell_word_that_sets_the_value_as_typed(write_config, tmp_path, capsys,
                                                                                key, value):
    config = write_config(IRIS)
    assert main(["train", str(config), "--set", f"{key}={value}", "--out", str(tmp_path / "q2")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    suggestion = line.split("; quote it: ", 1)[1]
    words = shlex.split(suggestion)  # what a POSIX shell reads
    printed = subprocess.run(["bash", "-c", f"printf '%s\\0' {suggestion}"], capture_output=True, text=True,
                             check=True).stdout  # and what bash itself reads
    assert printed.split("\0")[:-1] == words
    assert words[0] == "--set" and len(words) == 2
    loaded = load_config(config, [words[1]])
    assert functools.reduce(getattr, key.split("."), loaded) == value  # the quoted form sets the string typed

    assert not (tmp_path / "q2").exists()


@pytest.mark.parametrize(("value", "kind", "problem"), [
    ("{name: adam", "mapping", "expected ',' or '}', but the value ended"),
    ("[accuracy", "list", "expected ',' or ']', but the value ended"),
    ("[16,", "list", "expected the node content, but the value ended"),
    ("[draft] it's \"q\"", "list", "more follows its closing bracket"),
])
def test_a_set_value_opening_a_list_or_mapping_yaml_cannot_read_is_refused_with_both_fixes(
        write_config, tmp_path, capsys, value, kind, problem):
    """A VALUE YAML cannot read was the string as written: --set 'strategy.optimizer={name: adam' was looked up
    as an optimizer module '{name', and --set 'metrics=[accuracy' an unknown metric after the data was read."""
    config = write_config(IRIS)
    assert main(["train", str(config), "--set", f"name={value}", "--out", str(tmp_path / "r")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    close = "" if problem == "more follows its closing bracket" else "close it, or "  # closed already
    assert line.startswith(f"error: --set name: {value!r} opens a YAML {kind} that does not read as one ({problem}); "
                           f"{close}quote the value for a string: "), line
    words = shlex.split(line.split(" for a string: ", 1)[1])
    assert words[0] == "--set" and len(words) == 2
    assert load_config(config, [words[1]]).name == value  # the quoted form sets the string typed
    assert not (tmp_path / "r").exists()


def test_a_plain_value_keeps_its_quote_it_wording(write_config, tmp_path, capsys):
    assert main(["train", str(write_config(IRIS)), "--set", "name=yes", "--out", str(tmp_path / "r")]) == 2
    assert _one_error_line(capsys.readouterr().err).endswith("; quote it: --set 'name=\"yes\"'")


# --------------------------------------------------------------------------- 3. the fit folder's Python

def _fit_folder(path: Path, lora: bool = False) -> dict[str, torch.Tensor]:
    """A trainlab.fit(out=...) folder's two files, with a 3->2 Linear's weights (peft's keys with ``lora``)."""
    path.mkdir(parents=True)
    weights = {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.tensor([7.0, 8.0])}
    prefix = "base_model.model." if lora else ""
    safetensors.torch.save_file({prefix + key: value for key, value in weights.items()},
                                str(path / "model.safetensors"))
    (path / "strategy.yaml").write_text("strategy: {loss: mse}\n")
    return weights


def _load_snippet(message: str) -> str:
    """The shortest ``model.load_state_dict(...)`` call in ``message`` that parses as Python (ast.parse)."""
    start = message.index("model.load_state_dict(")
    for end in range(start + 1, len(message) + 1):
        try:
            tree = ast.parse(message[start:end], mode="eval")
        except SyntaxError:
            continue
        if isinstance(tree.body, ast.Call):
            return message[start:end]
    raise AssertionError(f"no load_state_dict call that parses in {message!r}")


@pytest.mark.parametrize("lora", [False, True])
def test_the_fit_folder_load_snippet_is_python_naming_the_file(tmp_path, lora):
    folder = tmp_path / AWKWARD
    weights = _fit_folder(folder, lora)
    with pytest.raises(RunDirError) as refused:
        load_run(folder)
    snippet = _load_snippet(str(refused.value))
    call = ast.parse(snippet, mode="eval").body
    assert ast.literal_eval(call.args[0].args[0]) == str(folder / "model.safetensors")
    if not lora:  # run as printed, it loads the weights into a fresh module
        model = torch.nn.Linear(3, 2)
        exec(snippet, {"model": model, "safetensors": safetensors})  # noqa: S102 (the snippet under test)
        assert torch.equal(model.weight, weights["weight"]) and torch.equal(model.bias, weights["bias"])


def test_eval_of_a_fit_folder_given_with_a_quoted_tilde_names_it_in_the_home_folder(home, capsys):
    _fit_folder(home / "fit out é 'q' #1")
    assert main(["eval", "~/fit out é 'q' #1"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    call = ast.parse(_load_snippet(line), mode="eval").body
    assert ast.literal_eval(call.args[0].args[0]) == str(home / "fit out é 'q' #1" / "model.safetensors")


# --------------------------------------------------------------------------- 4. '~' where no shell expanded it

# every argument of the CLI that names a file or folder: (argv, the attribute parse_args sets from it)
PATH_ARGUMENTS = [
    (["train", "~/c.yaml"], "config"),
    (["train", "c.yaml", "--out=~/r"], "out"),
    (["eval", "~/r"], "run_dir"),
    (["resume", "~/r"], "run_dir"),
    (["compare", "~/c.yaml", "~/d.yaml", "--strategies", "s.yaml"], "configs"),
    (["compare", "c.yaml", "--strategies=~/s.yaml"], "strategies"),
    (["compare", "c.yaml", "--strategies", "s.yaml", "--out=~/cmp"], "out"),
    (["demo", "--out=~/demo"], "out"),
    (["advise", "~/c.yaml"], "config"),
    (["schedule", "~/c.yaml", "--plot", "lr.png"], "config"),
    (["schedule", "c.yaml", "--plot=~/lr.png"], "plot"),
    (["lr-find", "~/c.yaml"], "config"),
    (["lr-find", "c.yaml", "--plot=~/lr.png"], "plot"),
    (["predict", "~/r", "new.csv"], "run_dir"),
    (["predict", "r", "~/new.csv"], "input"),
    (["predict", "r", "new.csv", "-o", "~/p.csv"], "out"),
    (["predict", "r", "new.csv", "--out=~/p.csv"], "out"),
    (["report", "~/r", "~/s"], "paths"),
    (["report", "r", "-o", "~/rep.html"], "out"),
    (["plot", "~/r", "~/s"], "run_dirs"),
    (["plot", "r", "--out=~/c.png"], "out"),
    (["tune", "~/c.yaml", "--space", "s.yaml", "--trials", "1"], "config"),
    (["tune", "c.yaml", "--space=~/s.yaml", "--trials", "1"], "space"),
    (["tune", "c.yaml", "--space", "s.yaml", "--trials", "1", "--out=~/t"], "out"),
    (["--data-dir=~/data", "advise", "c.yaml"], "data_dir"),
    (["advise", "c.yaml", "--data-dir=~/data"], "data_dir"),
]


@pytest.mark.parametrize(("argv", "attribute"), PATH_ARGUMENTS, ids=[" ".join(a) for a, _ in PATH_ARGUMENTS])
def test_every_cli_path_argument_expands_a_tilde(home, argv, attribute):
    parsed = getattr(build_parser().parse_args(argv), attribute)
    given_words = [word.split("=", 1)[-1] for word in argv if "~" in word]
    for given, value in zip(given_words, parsed if isinstance(parsed, list) else [parsed], strict=True):
        assert value == str(home) + given.removeprefix("~")  # ~/x is $HOME/x, as bash reads it


def test_a_tilde_of_no_such_user_is_one_usage_error(home, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "c.yaml", "--out=~no_such_user_x9/r"])
    line = _one_error_line(capsys.readouterr().err)
    assert exit_info.value.code == 2 and "'~no_such_user_x9'" in line and "no such user" in line


def test_train_out_with_a_tilde_saves_in_the_home_folder(home, write_config, capsys):
    assert main(["train", str(write_config(IRIS)), "--out=~/cli_run", "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"saved to {home / 'cli_run'}"
    _, folder = train(write_config(IRIS), out="~/exp run", quiet=True)
    assert folder == home / "exp run" and (folder / "summary.json").is_file()


def test_fit_expands_a_tilde_in_out_and_in_the_strategy_path(home):
    (home / "cfg").mkdir()
    (home / "cfg" / "strat.yaml").write_text(yaml.safe_dump({"loss": "cross_entropy", "batch_size": 16,
                                                             "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1}))
    x, y = torch.randn(32, 3, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 2
    trainlab.fit(torch.nn.Linear(3, 2), train=(x, y), strategy="~/cfg/strat.yaml", out="~/fit run")
    assert json.loads((home / "fit run" / "summary.json").read_text())["stop_reason"]


@pytest.mark.parametrize("call", [
    lambda: train({"name": "x"}, out="~no_such_user_x9/r"),
    lambda: trainlab.fit(torch.nn.Linear(3, 2), train=(torch.zeros(4, 3), torch.zeros(4)), strategy={},
                         out="~no_such_user_x9/r"),
])
def test_a_tilde_of_no_such_user_in_the_api_is_one_config_error(home, call):
    with pytest.raises(ConfigError, match=r"'~no_such_user_x9'.*no such user"):
        call()


def test_every_api_path_argument_expands_a_tilde(home, write_config, capsys):
    """load_run, resume, evaluate_run and a config path read from Python take ``~`` as the home folder, as
    train's out does (every API path goes through config_fields.path_argument)."""
    config = write_config(IRIS)
    (home / "c.yaml").write_text(Path(config).read_text())
    _, folder = train("~/c.yaml", out="~/api run", quiet=True)
    assert folder == home / "api run"
    assert load_run("~/api run").model is not None
    assert evaluate_run("~/api run")
    capsys.readouterr()
    resume("~/api run")
    assert f"run {home / 'api run'} already finished" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [("name=run\t#2", "run\t#2"), ("data.path=x\t# y.csv", "x\t# y.csv"),
                                         ("name=a:\tb", "a:\tb")])
def test_a_tab_before_a_hash_or_after_a_colon_in_set_is_kept_as_written(text, value):
    """Review: with libyaml's parser (which takes a tab as a separator) 'run<TAB>#2' read as 'run' (a comment
    the comment check, PyYAML's scanner, did not see) and 'a:<TAB>b' as a mapping; one parser for both."""
    assert parse_override(text)[1] == value
