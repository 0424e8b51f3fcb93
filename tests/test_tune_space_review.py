"""What a search space must not search beyond what the config accepts (trainlab.tune.space_review).

The refusals (a key that changes no score, choices the config reads alike, a float range on a whole-number
key) are lines of tests/test_tune.py's BAD_SPACES; here: the warnings for keys that make trials
incomparable, and the choices a ``when:`` tells apart.
"""

from __future__ import annotations

import pytest

from tests.test_tune import BASE, write
from trainlab.cli import main
from trainlab.tune.space import parse_space
from trainlab.tune.space_review import incomparable_key_warnings, one_choice_warnings, refuse_repeated_choices


@pytest.mark.parametrize("key, spec, expected", [
    ("seed", {"low": 0, "high": 3}, "space key 'seed' makes each trial train from other random draws: the study "
                                     "then also picks the luckiest seed, and the best val_accuracy is biased "
                                     "upward; keep one seed in the base config and compare over seeds with "
                                     "--refit-seeds K"),
    ("data.val_fraction", {"low": 0.1, "high": 0.3}, "space key 'data.val_fraction' changes the data split from "
                                                     "trial to trial, so each trial's val_accuracy is measured on "
                                                     "other validation examples and the values are not comparable; "
                                                     "set it in the base config (--set data.val_fraction=...) instead"),
    ("data.split_seed", {"choices": [0, 1]}, "space key 'data.split_seed' changes the data split"),
    ("data.test_fraction", {"low": 0.1, "high": 0.3}, "space key 'data.test_fraction' changes the data split"),
])
def test_a_key_that_makes_trials_incomparable_is_one_warning_and_the_study_runs(tmp_path, capsys, key, spec,
                                                                                  expected):
    base, space = write(tmp_path, space={key: spec, "strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}})
    code = main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out"),
                 "--pruner", "none", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: space key")]
    assert len(warnings) == 1 and expected in warnings[0], err


def test_a_key_of_one_choice_is_warned_of_unless_a_when_gives_it_a_meaning(tmp_path, capsys):
    """One choice was accepted with no word (every trial took it). Under a when: it sets its value where the
    condition holds (nesterov for sgd alone), and a key a when: names is the condition: neither is warned of.
    A warning, not a refusal: a study made with such a key goes on with its own space."""
    space = parse_space({"model.hidden": {"choices": [[8, 8]]}, "strategy.optimizer.name": {"choices": ["sgd"]},
                         "strategy.optimizer.nesterov": {"choices": [True], "when": {"strategy.optimizer.name": "sgd"}},
                         "strategy.optimizer.momentum": {"low": 0.5, "high": 0.9,
                                                         "when": {"strategy.optimizer.name": "sgd"}}})
    assert one_choice_warnings(space) == [
        "space key 'model.hidden': 'choices' holds one value, [8, 8], so every trial takes it and the study "
        "searches nothing there; add choices, or set it in the base config (--set 'model.hidden=[8, 8]') and leave "
        "it out of the space"]
    base, space_file = write(tmp_path, space={"strategy.optimizer.amsgrad": {"choices": [True]},
                                              "strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}})
    assert main(["tune", str(base), "--space", str(space_file), "--trials", "1", "--out", str(tmp_path / "out"),
                 "--pruner", "none", "--quiet"]) == 0
    assert ("warning: space key 'strategy.optimizer.amsgrad': 'choices' holds one value, true, so every trial takes "
            "it") in capsys.readouterr().err


def test_keys_that_keep_trials_comparable_are_not_warned_about():
    space = parse_space({"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}, "data.standardize": {
        "choices": [True, False]}, "strategy.batch_size": {"choices": [16, 32]}})
    assert incomparable_key_warnings(space, "val_loss") == []


def test_choices_read_alike_are_kept_when_a_when_tells_them_apart():
    """"1" switches the learning rate on and 1.0 does not: two searches, not one trial twice."""
    space = parse_space({"strategy.clip_grad_norm": {"choices": ["1", 1.0]},
                         "strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "when": {"strategy.clip_grad_norm": "1"}}})
    refuse_repeated_choices(space, BASE)


def test_distinct_choices_pass():
    space = parse_space({"strategy.clip_grad_norm": {"choices": [None, 1.0, "2"]}, "model.hidden": {
        "choices": [[8], [8, 8]]}, "strategy.optimizer.name": {"choices": ["sgd", "adam"]}})
    refuse_repeated_choices(space, BASE)


def test_a_direction_against_the_metrics_own_is_one_warning_and_the_study_runs(tmp_path, capsys):
    """A user trial: --metric val_loss --direction max named the trial of the highest loss best, without a word."""
    from types import SimpleNamespace

    from trainlab.tune.runner import direction_warning

    base, space = write(tmp_path, space={"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}})
    code = main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out"),
                 "--pruner", "none", "--quiet", "--metric", "val_loss", "--direction", "max"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        "warning: --direction maximize on val_loss, of which lower is better: the best trial will be the one of the "
        "highest val_loss; leave --direction out (minimize) unless that is meant"]
    for metric, direction in (("val_loss", "minimize"), ("val_accuracy", "maximize"), ("val_mse", "minimize")):
        assert direction_warning(SimpleNamespace(metric=metric, direction=direction)) is None


@pytest.mark.parametrize("key, spec, warned", [
    ("strategy.optimizer.lr", {"low": 1, "high": 3}, True),
    ("strategy.clip_grad_norm", {"low": 1, "high": 5}, True),
    ("strategy.clip_grad_norm", {"low": 1, "high": 5, "step": 2}, False),  # a grid chosen: 1, 3, 5 either way
    ("strategy.optimizer.lr", {"low": 1, "high": 3, "type": "int"}, False),  # said to be meant
    ("strategy.optimizer.lr", {"low": 1.0, "high": 3}, False),  # a float range
    ("strategy.epochs", {"low": 1, "high": 3}, False),  # whole numbers only: the int range is right
    ("strategy.batch_size", {"low": 8, "high": 32, "step": 8}, False),
])
def test_an_int_range_written_on_a_key_that_takes_fractions_is_one_warning(key, spec, warned):
    """User trial: lr: {low: 1, high: 3} tried 1, 2 and 3 without a word, where the opposite slip (a float
    range on strategy.epochs) is refused."""
    import copy

    from trainlab.tune.space_review import integer_range_warnings

    messages = integer_range_warnings(parse_space({key: spec}), copy.deepcopy(BASE))
    assert len(messages) == int(warned), messages
    if key == "strategy.optimizer.lr" and warned:
        assert messages[0] == ("space key 'strategy.optimizer.lr': {low: 1, high: 3} is an int range (its trials "
                               "take whole numbers only), but the key takes fractions too (strategy.optimizer.lr=1.5 "
                               "is accepted); for a float range write low: 1.0, or add type: float (type: int keeps "
                               "the int range without this warning)")


def test_a_section_whose_choice_holds_a_key_of_the_space_is_refused():
    """A user's space tuned strategy.optimizer's choices, each with its lr, and strategy.optimizer.lr: trials.csv
    showed trial 1 as {name: sgd, lr: 0.1}, which trained with lr 0.01507, the key's value. Choices without the
    key refine as before, the section set first whatever the space's order (a review: the narrower rule)."""
    from trainlab.errors import ConfigError
    from trainlab.tune.space import apply_values

    with pytest.raises(ConfigError) as caught:
        parse_space({"strategy.optimizer": {"choices": [{"name": "adam", "lr": 0.01}, {"name": "sgd", "lr": 0.1}]},
                     "strategy.optimizer.lr": {"low": 0.001, "high": 0.1}})
    assert str(caught.value).startswith("space keys 'strategy.optimizer' and 'strategy.optimizer.lr' both set "
                                        "strategy.optimizer.lr (the choice {lr: 0.01, name: adam} holds it): each "
                                        "trial would train with the value of 'strategy.optimizer.lr'")
    space = parse_space({"strategy.optimizer.lr": {"low": 0.001, "high": 0.1},
                         "strategy.optimizer": {"choices": [{"name": "adam"}, {"name": "sgd"}]}})
    assert len(space.keys()) == 2
    values = {"strategy.optimizer.lr": 0.02, "strategy.optimizer": {"name": "sgd"}}  # the key first, as listed
    raw = apply_values({"strategy": {"optimizer": {"name": "adam", "lr": 0.5}}}, values)
    assert raw["strategy"]["optimizer"] == {"name": "sgd", "lr": 0.02}


@pytest.mark.parametrize("space", [
    {"strategy.loss": {"choices": ["mse", "huber"]}, "strategy.loss.name": {"choices": ["mse", "l1"]}},
    {"strategy.optimizer.groups": {"choices": [[{"params": "head", "lr": 0.1}]]},
     "strategy.optimizer.groups.0.lr": {"low": 0.01, "high": 0.1}},
])
def test_a_one_word_or_list_choice_holding_the_key_is_refused_too(space):
    """A review: a choice written as one word (`huber`, which --set reads as {name: huber}) or a list whose item
    holds the key slipped past a check of mappings alone."""
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="holds it\\): each trial would train with the value of"):
        parse_space(space)


def test_a_null_choice_under_a_key_needs_a_when_and_a_sibling_refines():
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="one of whose choices is null"):
        parse_space({"strategy.schedule": {"choices": [None, {"name": "cosine"}]},
                     "strategy.schedule.warmup_epochs": {"low": 0, "high": 2}})
    parse_space({"strategy.schedule": {"choices": [None, {"name": "cosine"}]},
                 "strategy.schedule.warmup_epochs": {"low": 0, "high": 2,
                                                     "when": {"strategy.schedule": [{"name": "cosine"}]}}})
    parse_space({"strategy.optimizer": {"choices": [{"name": "sgd", "betas": {"x": 1}}]},  # a sibling: refined
                 "strategy.optimizer.betas.y": {"low": 0.1, "high": 0.2}})
