"""``strategy.regularization.weight_decay``'s placement (trainlab.optim.weight_decay): the optimizer's name and
option types are checked before anything is placed, and every refusal's advice can be followed, for every
optimizer in the registry."""

from __future__ import annotations

import copy
import re

import pytest
import torch

import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers, for the parametrisation)
from tests.conftest import LINREG
from trainlab.builders import fit_config
from trainlab.cli import main
from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS, default_lr
from trainlab.optim.routing import build_routed_optimizer
from trainlab.optim.weight_decay import place_weight_decay
from trainlab.preflight import check_components

WD = 0.01


def _config(optimizer: dict, regularization: dict | None = None) -> dict:
    config = copy.deepcopy(LINREG)
    config["strategy"].update(optimizer=optimizer, epochs=2)
    if regularization:
        config["strategy"]["regularization"] = regularization
    return config


def _accepted(config: dict) -> None:
    """The config's components build as a run builds them (regularization.weight_decay placed, the optimizer
    built on a 2-D weight: matrices-only optimizers such as muon_conv accept it), without a ConfigError."""
    check_components(validate(config))


# --------------------------------------------------------------------------- checked before placed


@pytest.mark.parametrize("value,expected", [
    ("abc", "option 'weight_decay' must be a number; got 'abc'"),
    ([1, 2], "option 'weight_decay' must be a number; got [1, 2]"),
])
def test_an_own_weight_decay_of_the_wrong_type_is_the_option_type_error(write_config, capsys, value, expected):
    """Not ``ValueError: Unknown format code 'g'`` (exit 4): the registry's line naming the option, exit 2."""
    config = write_config(_config({"name": "adamw", "lr": 0.01, "weight_decay": value}, {"weight_decay": WD}))
    assert main(["train", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: optimizer 'adamw': {expected}"]


def test_a_numeric_string_weight_decay_is_shown_as_a_number_in_the_set_twice_refusal():
    with pytest.raises(ConfigError, match=r"strategy.optimizer.weight_decay=0.0005 \('adamw'\)"):
        place_weight_decay({"name": "adamw", "lr": 0.01, "weight_decay": "5e-4"}, WD)


def test_an_unknown_optimizer_is_the_unknown_name_error_not_a_refusal_to_place(write_config, capsys):
    config = write_config(_config({"name": "adamx", "lr": 0.01}, {"weight_decay": WD}))
    assert main(["train", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown optimizer 'adamx'; did you mean"), err
    assert "has no home" not in err[0]


def test_an_unknown_option_is_named_before_the_placement():
    with pytest.raises(ConfigError, match="optimizer 'lbfgs' has no option 'weight_decay'"):
        place_weight_decay({"name": "lbfgs", "weight_decay": 0.1}, WD)


def test_the_optimizer_name_is_matched_in_any_case_as_the_registry_matches_it():
    placed = place_weight_decay({"name": "AdamW", "lr": 0.01}, WD)
    assert placed["weight_decay"] == WD
    assert place_weight_decay({"name": "NAdam", "lr": 0.01}, WD)["decoupled_weight_decay"] is True


# --------------------------------------------------------------------------- every refusal can be followed


def _follow(message: str, optimizer: dict) -> list[tuple[str, dict]]:
    """Each piece of advice in a refusal, as (what it says, the config that follows it)."""
    name = optimizer["name"]
    advice = []
    for key in set(re.findall(r"strategy\.[\w.]+", message)) - {"strategy.regularization.weight_decay"}:
        if key == "strategy.optimizer.weight_decay":  # the optimizer's own (L2) decay instead
            advice.append((key, _config({**optimizer, "weight_decay": WD})))
        elif key == "strategy.regularization.l2":
            advice.append((key, _config(optimizer, {"l2": WD})))
        else:
            raise AssertionError(f"advice names {key}, which the test does not know how to follow: {message}")
    alternatives = re.search(r"decoupled decay \((.*?); valid: (.*?)\)", message)
    if alternatives is not None:  # another optimizer (from its defaults), regularization.weight_decay kept
        listed = re.sub(r"\([^)]*\)", "", f"{alternatives.group(1)}, {alternatives.group(2)}")
        named = {item.split()[0] for item in re.split(r", | or ", listed) if item.strip()}  # "sgd without .."
        for other in sorted(named & set(OPTIMIZERS.names())):
            advice.append((other, _config(_plain(other), {"weight_decay": WD})))
    assert advice, f"the refusal for '{name}' gives no advice: {message}"
    return advice


def _plain(name: str) -> dict:
    """Optimizer ``name`` as its defaults have it; lr 0.01 where it has no default lr."""
    return {"name": name} if default_lr(name) is not None else {"name": name, "lr": 0.01}


@pytest.mark.parametrize("optimizer", [_plain(name) for name in OPTIMIZERS.names()]
                         + [{"name": "sgd", "lr": 0.01, "momentum": 0.9},
                            {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True}],
                         ids=lambda spec: "-".join(str(v) for k, v in spec.items() if k != "lr"))
def test_regularization_weight_decay_is_placed_or_refused_with_advice_that_works(optimizer):
    """Placed: accepted. Refused: every option and optimizer the line names is accepted when set."""
    _accepted(_config(optimizer))  # without weight decay: the optimizer itself is fine
    config = _config(optimizer, {"weight_decay": WD})
    try:
        _accepted(config)
    except ConfigError as exc:
        message = str(exc)
        assert "has no home" in message, message
        for said, followed in _follow(message, optimizer):
            try:
                _accepted(followed)
            except ConfigError as again:
                raise AssertionError(f"'{optimizer['name']}': following '{said}' fails: {again}") from None


def test_lbfgs_is_not_advised_an_option_it_does_not_have():
    with pytest.raises(ConfigError) as refused:
        place_weight_decay({"name": "lbfgs"}, WD)
    assert "strategy.optimizer.weight_decay" not in str(refused.value)
    assert "strategy.regularization.l2" in str(refused.value)


def test_an_l2_optimizer_whose_own_weight_decay_is_set_is_told_to_keep_it_not_to_set_it():
    """adam with weight_decay 0.1 and regularization.weight_decay: the advice said to set the option it has."""
    with pytest.raises(ConfigError) as refused:
        place_weight_decay({"name": "adam", "weight_decay": 0.1}, WD)
    said = str(refused.value)
    assert "for the L2 form" not in said.split("keep strategy.optimizer.weight_decay=0.1")[0]
    assert "drop it and keep strategy.optimizer.weight_decay=0.1" in said
    assert place_weight_decay({"name": "adam", "weight_decay": 0.1}, 0) == {"name": "adam", "weight_decay": 0.1}


def test_a_decoupled_optimizer_takes_the_decay_into_its_decay_group_only():
    placed = place_weight_decay({"name": "lion", "lr": 1e-3}, WD)
    fitted = fit_config(validate(_config(placed)))
    decay = {g["group"]: g["weight_decay"] for g in fitted.step.optimizer.param_groups}
    assert decay == {"decay": WD, "no_decay": 0.0}


def decay_of(config: dict) -> dict[str, float]:
    built = fit_config(validate(config))
    return {g["group"]: g["weight_decay"] for g in built.step.optimizer.param_groups}


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_an_explicit_zero_turns_the_optimizers_own_default_decay_off(name):
    """`regularization.weight_decay: 0.0` with adamw kept adamw's default 0.01 (0 was read as unset): a
    compare grid [0.0, 0.01] trained the same run twice. Unset (null) keeps the optimizer's default."""
    def decay(regularization):
        return decay_of(_config({"name": name, "lr": 1e-3}, regularization))

    assert decay({"weight_decay": 0.0}) == {"all": 0.0}  # no decay group left to split off
    assert decay(None) == {"decay": 0.01, "no_decay": 0.0}  # the optimizer's own default
    assert decay({"weight_decay": 0.03}) == {"decay": 0.03, "no_decay": 0.0}
    assert place_weight_decay({"name": "adam", "lr": 1e-3}, 0.0) == {"name": "adam", "lr": 1e-3}  # L2: none
    # the optimizer's own decay is kept beside a 0: run folders of earlier versions hold this 0 for every
    # run (the sst2 fine-tune recipe's adamw weight_decay 0.01 among them) and must still evaluate and resume
    assert place_weight_decay({"name": name, "lr": 1e-3, "weight_decay": 0.05}, 0.0)["weight_decay"] == 0.05
    recipe = _config({"name": name, "lr": 1e-3, "weight_decay": 0.05}, {"weight_decay": 0.0})
    assert decay_of(recipe) == {"decay": 0.05, "no_decay": 0.0}


def test_an_explicit_zero_reaches_a_routed_group_on_another_optimizer():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    routed = build_routed_optimizer(model, {"name": "sgd", "lr": 0.01},
                                    [{"match": "2.*", "optimizer": "adamw"}], weight_decay=0.0)
    decays = [g["weight_decay"] for inner in routed.optimizers for g in inner.param_groups]
    assert decays and all(d == 0.0 for d in decays)


# --------------------------------------------------------------------------- routed groups


def test_a_routed_groups_refusal_names_the_group_and_its_own_weight_decay_key():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ConfigError) as refused:
        build_routed_optimizer(model, {"name": "adamw", "lr": 0.01, "weight_decay": WD},
                               [{"match": "2.*", "optimizer": "adam"}], weight_decay=WD)
    message = str(refused.value)
    assert message.startswith("strategy.optimizer.groups[0]: strategy.regularization.weight_decay (decoupled) "
                              "has no home in optimizer 'adam'")
    assert "strategy.optimizer.groups[0].weight_decay for the L2 form of 'adam'" in message
    # followed: the group's own weight_decay
    build_routed_optimizer(model, {"name": "adamw", "lr": 0.01, "weight_decay": WD},
                           [{"match": "2.*", "optimizer": "adam", "weight_decay": WD}], weight_decay=WD)


def test_a_routed_groups_option_of_the_wrong_type_is_named_with_the_group():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ConfigError, match=r"^strategy.optimizer.groups\[0\]: optimizer 'lion': option 'betas' "):
        build_routed_optimizer(model, {"name": "adamw", "lr": 0.01, "weight_decay": WD},
                               [{"match": "2.*", "optimizer": "lion", "betas": "x"}], weight_decay=WD)


def test_an_explicit_coupled_setting_is_refused_not_overridden_and_the_advice_works():
    """nadam with decoupled_weight_decay: false asked for the L2 form; placing the decoupled decay used to
    turn it to true silently."""
    optimizer = {"name": "nadam", "lr": 0.01, "decoupled_weight_decay": False}
    with pytest.raises(ConfigError) as refused:
        _accepted(_config(optimizer, {"weight_decay": WD}))
    message = str(refused.value)
    assert "strategy.optimizer.decoupled_weight_decay: true" in message and "set to false" in message
    _accepted(_config({"name": "nadam", "lr": 0.01}, {"weight_decay": WD}))  # leave it out
    _accepted(_config({**optimizer, "weight_decay": WD}))  # or the optimizer's own weight_decay
    assert place_weight_decay({**optimizer, "decoupled_weight_decay": True}, WD)["weight_decay"] == WD


# --------------------------------------------------------------------------- run folders written before null


def test_a_run_folder_written_when_zero_meant_unset_resumes_bit_identical(tmp_path):
    """config.yaml of runs before null took 'unset' held weight_decay: 0.0 for every run; read as 'decay off',
    an adamw run's two param groups merged into one and its resume failed (exit 3, group count mismatch)."""
    from tests.conftest import DIGITS_MLP
    from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints
    from trainlab.config import WRITTEN_MARK, load_config

    config = copy.deepcopy({**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], "epochs": 1,
                                                       "optimizer": {"name": "adamw", "lr": 0.003}}})
    full, checkpoints = train_keeping_checkpoints(config, tmp_path, every_n_steps=10)
    written = (full / "config.yaml").read_text()
    assert written.startswith(WRITTEN_MARK + "\n") and "weight_decay: null" in written
    (full / "config.yaml").write_text(written.split("\n", 1)[1].replace("weight_decay: null", "weight_decay: 0.0"))
    old = load_config(full / "config.yaml", follow_links=False)
    assert old.strategy.regularization.weight_decay is None  # as that run read it: adamw's own 0.01
    resumed = resume_a_copy(full, checkpoints[min(checkpoints)], tmp_path)
    assert (resumed / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()
    # a config of one's own (and a run folder's config written since) keeps 0 as 'decay off'
    assert load_config(full / "config.yaml").strategy.regularization.weight_decay == 0.0


def test_unset_keeps_the_old_hash_and_decay_off_is_another_run():
    base = _config({"name": "adamw", "lr": 1e-3})
    unset, off = validate(base), validate(_config({"name": "adamw", "lr": 1e-3}, {"weight_decay": 0.0}))
    legacy = unset.results_dict()
    assert legacy["strategy"]["regularization"]["weight_decay"] == 0.0  # as configs recorded before null hashed
    assert unset.hash() != off.hash()  # they train differently (adamw's 0.01 against none)
