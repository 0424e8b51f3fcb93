"""Config values refused with the rule and a fix that works: quoting advised only where the quoted string
validates, ``lr: Auto`` pointed at ``auto``, optimizer options below their range said as a range (not torch's
"Invalid weight_decay value"), ``early_stopping: true`` as the defaults, and no pydantic class names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import torch
import yaml
from pydantic import BaseModel
from sklearn.datasets import load_iris

import trainlab
from trainlab.config import Config, load_config, validate
from trainlab.config_strategy import EarlyStoppingConfig
from trainlab.errors import ConfigError
from trainlab.optim import build_optimizer, param_groups

IRIS: dict[str, Any] = {
    "name": "base", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 3},
    "runtime": {"num_threads": 1}, "output": {"progress": "off"},
}


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(IRIS, sort_keys=False))
    return path


def _refusal(tmp_path: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path), list(overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- 1. "quote it" only where it helps

def test_an_unknown_set_key_gets_no_advice_to_quote_it(tmp_path):
    """The key was the problem: quoting `true` left the key as unknown as before."""
    message = _refusal(tmp_path, "strategy.finetune.freez=true")
    assert message == ("unknown config key 'strategy.finetune.freez'; did you mean 'freeze'? (valid: freeze, "
                       "unfreeze_after_epochs, layerwise_lr_decay, lora)")


def test_a_set_list_refused_for_a_number_inside_gets_no_advice_to_quote_it(tmp_path):
    """Quoting the list made it a string, which groups refuses too."""
    message = _refusal(tmp_path, "strategy.optimizer.groups=[{name: b, select: biases, lr: -0.1}]")
    assert message == "config key 'strategy.optimizer.groups.0.lr': Input should be greater than 0; got -0.1"


@pytest.mark.parametrize("override", ["strategy.finetune=true", "strategy.early_stopping=5", "strategy.loss=[mse]",
                                      "strategy.regularization=yes"])
def test_a_section_given_no_mapping_gets_no_advice_to_quote_it(tmp_path, override):
    message = _refusal(tmp_path, override)
    assert "quote it" not in message and "was read as" not in message, message


@pytest.mark.parametrize("override, quoted, field", [
    ("name=123", "name=\"123\"", "name"),  # a folder name YAML read as a number
    ("name=yes", "name=\"yes\"", "name"),  # ... as a boolean
    ("output.dir=2024", "output.dir=\"2024\"", "dir"),
])
def test_quoting_is_advised_where_the_quoted_string_validates_and_the_advice_works(tmp_path, override, quoted, field):
    message = _refusal(tmp_path, override)
    assert message.endswith(f"; quote it: --set '{quoted}'"), message
    key = quoted.partition("=")[0]
    config = load_config(_config_file(tmp_path), [quoted])  # the advice, followed
    section = config.output if key.startswith("output.") else config
    assert getattr(section, field) == quoted.partition("=")[2].strip('"')


def test_a_number_whose_string_the_key_refuses_too_gets_no_advice_to_quote_it(tmp_path):
    """data.task takes one of its task words: "1" is none of them either."""
    message = _refusal(tmp_path, "data.task=1")
    assert message == "config key 'data.task': Input should be a valid string; got 1"


# ----------------------------------------------------------------------------- 2. lr: Auto

@pytest.mark.parametrize("word", ["Auto", "AUTO", "aUTO", "auot"])
def test_lr_auto_in_another_letter_case_gets_the_did_you_mean_a_misspelling_gets(tmp_path, word):
    """The config's fixed words match as written (device: CPU gets "did you mean 'cpu'?"): so does lr's auto."""
    message = _refusal(tmp_path, f"strategy.optimizer.lr={word}")
    assert message == ("config key 'strategy.optimizer.lr': must be a number (e.g. 0.5 or 1e-3) or 'auto' (an LR "
                       f"range test picks it); got '{word}'; did you mean 'auto'?")
    assert load_config(_config_file(tmp_path), ["strategy.optimizer.lr=auto"]).strategy.optimizer.lr == "auto"


# ----------------------------------------------------------------------------- 3. optimizer option ranges

# (optimizer, option, refused value, the rule said): each a value torch's constructor refuses in its own words
NEGATIVE_OPTIONS = [
    ("adam", "weight_decay", -0.1, "weight_decay must be >= 0 (a pull of the weights toward 0)"),
    ("sgd", "weight_decay", -1e-4, "weight_decay must be >= 0 (a pull of the weights toward 0)"),
    ("adagrad", "lr_decay", -0.1, "lr_decay must be >= 0 (Adagrad's lr is lr / (1 + (step - 1) x lr_decay))"),
    ("adagrad", "initial_accumulator_value", -0.1,
     "initial_accumulator_value must be >= 0 (the starting sum of squared gradients)"),
    ("rmsprop", "alpha", -0.1, "alpha must be >= 0 (RMSprop's weight of its running average)"),
    ("nadam", "momentum_decay", -0.1, "momentum_decay must be >= 0 (NAdam's momentum schedule)"),
    ("adadelta", "rho", -0.1, "rho must be in [0, 1] (the weight of the running averages of squared gradients "
                              "and updates)"),
    ("adadelta", "rho", 1.5, "rho must be in [0, 1] (the weight of the running averages of squared gradients "
                             "and updates)"),
]
TORCH_CLASSES = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
                 "rmsprop": torch.optim.RMSprop, "nadam": torch.optim.NAdam, "adadelta": torch.optim.Adadelta}


@pytest.mark.parametrize("name, option, value, rule", NEGATIVE_OPTIONS)
def test_an_optimizer_option_torch_refuses_is_said_as_its_valid_range(name, option, value, rule):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match=f"Invalid {option}|Invalid {option.split('_')[0]}"):  # torch refuses it
        TORCH_CLASSES[name](model.parameters(), lr=0.1, **{option: value})
    with pytest.raises(ConfigError) as caught:
        build_optimizer({"name": name, "lr": 0.1, option: value}, param_groups(model))
    assert str(caught.value) == f"optimizer '{name}': {rule}; got {value}"


@pytest.mark.parametrize("name, option, value", [("adam", "weight_decay", 0.0), ("adagrad", "lr_decay", 0.0),
                                                 ("rmsprop", "alpha", 0.0), ("adadelta", "rho", 1.0),
                                                 ("adadelta", "rho", 0.0), ("nadam", "momentum_decay", 0.0)])
def test_an_optimizer_option_at_its_bound_is_taken(name, option, value):
    built = build_optimizer({"name": name, "lr": 0.1, option: value}, param_groups(torch.nn.Linear(3, 2)))
    assert all(group[option] == value for group in built.param_groups if option != "weight_decay"
               or group.get("group") != "no_decay")


def test_muons_adamw_lr_below_0_is_said_as_its_range():
    with pytest.raises(ConfigError) as caught:
        build_optimizer({"name": "muon", "lr": 0.02, "adamw_lr": -0.1}, param_groups(torch.nn.Linear(3, 2)))
    assert str(caught.value) == "optimizer 'muon': adamw_lr must be >= 0 (the step size of the AdamW part); got -0.1"


def test_a_negative_weight_decay_from_the_cli_is_one_line_with_its_range(tmp_path, capsys):
    from trainlab.cli import main

    code = main(["train", str(_config_file(tmp_path)), "--set", "strategy.optimizer.weight_decay=-0.1",
                 "--set", f"output.dir={tmp_path / 'run'}"])
    assert code == 2
    assert capsys.readouterr().err == ("error: optimizer 'adam': weight_decay must be >= 0 (a pull of the weights "
                                       "toward 0); got -0.1\n")


# ----------------------------------------------------------------------------- 4. early_stopping: true, class names

@pytest.mark.parametrize("value, expected", [(True, EarlyStoppingConfig.model_validate({})), (False, None),
                                             (None, None)])
def test_early_stopping_true_is_the_defaults_and_false_none(value, expected):
    raw = {**IRIS, "strategy": {**IRIS["strategy"], "early_stopping": value}}
    assert validate(raw).strategy.early_stopping == expected
    if value:  # the defaults as the README states them
        assert (expected.monitor, expected.mode, expected.patience, expected.min_delta, expected.restore_best) \
            == ("val_loss", "min", 10, 0.0, True)


def test_early_stopping_true_trains_with_early_stopping_at_the_default_patience():
    """An lr of 1e-30 leaves float32 weights as they are: the first validation is the best, and the 10 after it
    (the default patience) do not improve on it, so the run stops after epoch 1 + 10 = 11 of 50."""
    x, y = load_iris(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    strategy = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 1e-30}, "batch_size": 32,
                "epochs": 50, "early_stopping": True}
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=(x, y))
    assert result.summary["stop_reason"].startswith("early stopping: val_loss did not improve for 10 epochs (best ")
    assert [record["epoch"] for record in result.history] == list(range(1, 12))


def _sections(model: type[BaseModel], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type[BaseModel]]]:
    """Every (dotted path, model) of a section the config holds directly (not in a list), at any depth."""
    found = []
    for key, field in model.model_fields.items():
        for candidate in (field.annotation, *get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found.append(((*path, key), candidate))
                found.extend(_sections(candidate, (*path, key)))
    return found


@pytest.mark.parametrize("path, model", _sections(Config), ids=lambda item: ".".join(item) if isinstance(item, tuple)
                         else item.__name__)
def test_a_section_given_no_mapping_is_said_without_its_class_name(path, model):
    raw = yaml.safe_load(yaml.safe_dump(IRIS))
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = 5
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    message = str(caught.value)
    assert model.__name__ not in message and "instance of" not in message, message
    assert message.startswith(f"config key '{'.'.join(path)}': must be "), message


@pytest.mark.parametrize("section, value, said", [
    ("early_stopping", 5, "must be a mapping of its options (e.g. {patience: 10}, or {} for the defaults); got 5"),
    ("finetune", "x", "must be a mapping of its options (e.g. {freeze: false}, or {} for the defaults); got 'x'"),
    ("weight_averaging", True, "must be one of 'ema', 'lookahead' or a mapping of its options (e.g. {kind: ema}); "
                               "got True"),
    ("loss", 5, "must be a registered name, or a mapping of name and its options (e.g. {name: NAME, OPTION: "
                "VALUE}); got 5"),
])
def test_a_section_given_no_mapping_says_what_it_takes(section, value, said):
    with pytest.raises(ConfigError) as caught:
        validate({**IRIS, "strategy": {**IRIS["strategy"], section: value}})
    assert str(caught.value) == f"config key 'strategy.{section}': {said}"


def test_an_option_of_a_built_in_optimizer_is_not_bounded_on_a_users_own(monkeypatch):
    """Review: the >= 0 rule for RMSprop's alpha, Adagrad's lr_decay and NAdam's momentum_decay applied to
    every registered optimizer, a user's own whose alpha may be negative too."""
    from trainlab.errors import ConfigError
    from trainlab.optim import check_option_ranges

    check_option_ranges("my_optimizer", {"alpha": -0.5, "lr_decay": -1.0, "momentum_decay": -0.1})
    with pytest.raises(ConfigError, match="alpha must be >= 0"):
        check_option_ranges("rmsprop", {"alpha": -0.5})
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        check_option_ranges("my_optimizer", {"weight_decay": -0.5})


def test_metrics_as_one_name_reads_as_the_list_of_it_as_fit_takes_it(tmp_path):
    """User trial: ``--set metrics=accuracy`` was "config key 'metrics': Input should be a valid list", where
    ``trainlab.fit(metrics="accuracy")`` takes the one name."""
    config = load_config(_config_file(tmp_path), ["metrics=accuracy"])
    assert config.metrics == ["accuracy"]
    assert config.hash() == load_config(_config_file(tmp_path), ["metrics=[accuracy]"]).hash()
    assert _refusal(tmp_path, "metrics=5").startswith("config key 'metrics': Input should be a valid list")


def test_metrics_joined_by_commas_read_as_the_list_of_them(tmp_path):
    """``--set metrics=accuracy,f1`` was "unknown metric 'accuracy,f1'; did you mean 'accuracy'?"."""
    config = load_config(_config_file(tmp_path), ["metrics=accuracy, f1"])
    assert config.metrics == ["accuracy", "f1"]
    assert config.hash() == load_config(_config_file(tmp_path), ["metrics=[accuracy, f1]"]).hash()
    assert "lists the metric 'f1' twice" in _refusal(tmp_path, "metrics=f1,f1")
    assert load_config(_config_file(tmp_path), ["metrics=f1,"]).metrics == ["f1"]


@pytest.mark.parametrize(("overrides", "said"), [
    (["strategy.schedule.gama=0.9"],
     "config key 'strategy.schedule.name' is required; the section holds gama, without the name of the schedule it "
     "is an option of (valid: constant, cosine, "),
    (["strategy.optimizer={lr: 0.1, momentum: 0.9}"],
     "config key 'strategy.optimizer.name' is required; the section holds lr, momentum, without the name of the "
     "optimizer they are options of (valid: adadelta, "),
    (["runtime.compile=maybe"], "config key 'runtime.compile': must be true or false; got 'maybe'"),
])
def test_a_section_without_its_name_and_a_word_for_a_boolean_say_what_is_valid(tmp_path, overrides, said):
    """A user trial: the first read "config key 'strategy.schedule.name' is required", naming neither the key given
    nor a schedule; the last pydantic's "Input should be a valid boolean, unable to interpret input"."""
    assert _refusal(tmp_path, *overrides).startswith(said)


def test_a_second_yaml_document_is_said_to_be_one(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(IRIS) + "---\nname: other\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).endswith("but found another document: a config file holds one YAML document; remove "
                                      "the '---' line and what follows it, or put it in a file of its own")


def test_a_yaml_word_read_as_a_boolean_where_text_is_wanted_says_to_quote_it(tmp_path):
    """A user's CSV column named `on`, listed as `categorical: [on]`, was refused as "got [True]", and a run named
    `on` as "Input should be a valid string; got True"."""
    path = tmp_path / "on.yaml"
    path.write_text(yaml.safe_dump(IRIS).replace("name: base", "name: on"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == ("config key 'name': must be text; got the boolean true: YAML reads on, yes and true "
                                 "unquoted so; quote the word")
    assert _refusal(tmp_path, "name=no").startswith("config key 'name': must be text; got the boolean false: YAML "
                                                    "reads off, no and false unquoted so")
    from trainlab.option_types import mismatch

    def source(categorical: list[str] | str | None = None) -> None:
        """A factory annotated as the csv source's categorical option is."""

    assert mismatch(source, {"categorical": ["age", True]}) == (
        "categorical", "a list of strings or a string or null; item 1 was read as the boolean true: YAML reads on, "
                       "yes and true unquoted so; quote the word")
    assert mismatch(source, {"categorical": ["age", "on"]}) is None
