"""``--set`` into list items by index, and the crop_padding error's fix that keeps the other augment options.

A user test found: ``--set strategy.optimizer.groups.0.train_epochs=0.5`` (the key as the config's own errors
name it) refused with "'groups' is not a section" and no word of what is valid; and the reflect-padding error
proposing ``--set 'data.augment={crop_padding: 24, pad_mode: zero}'``, which replaced the augment mapping and
dropped its ``hflip: alternating``. The expected configs below are written out by hand.
"""

from __future__ import annotations

import copy
import shlex

import numpy as np
import pytest
import yaml

from trainlab.config import load_config
from trainlab.config_overrides import apply_overrides
from trainlab.data.augment import AlternatingFlip, CropAndFlip, RandomCrop, RandomFlip
from trainlab.data.transforms import image_transforms
from trainlab.errors import ConfigError

GROUPS = [{"name": "a", "match": "*", "train_epochs": 1},
          {"name": "b", "match": "0.*", "lr": 0.1}]
RAW = {"name": "g", "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [32, 16]},
       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01, "groups": GROUPS},
                    "epochs": 1}}


def _overridden(*texts: str) -> dict:
    return apply_overrides(copy.deepcopy(RAW), list(texts))


# --------------------------------------------------------------------------- list items by index


def test_an_index_sets_one_key_of_one_list_item_keeping_the_rest():
    raw = _overridden("strategy.optimizer.groups.0.train_epochs=0.5")
    assert raw["strategy"]["optimizer"]["groups"] == [{"name": "a", "match": "*", "train_epochs": 0.5},
                                                      {"name": "b", "match": "0.*", "lr": 0.1}]
    raw = _overridden("strategy.optimizer.groups.1.weight_decay=0.01", "model.hidden.1=8")
    assert raw["strategy"]["optimizer"]["groups"][1] == {"name": "b", "match": "0.*", "lr": 0.1, "weight_decay": 0.01}
    assert raw["strategy"]["optimizer"]["groups"][0] == GROUPS[0] and raw["model"]["hidden"] == [32, 8]
    assert RAW["strategy"]["optimizer"]["groups"][0]["train_epochs"] == 1  # the copy was changed, not the base


def test_an_index_reaches_the_validated_config(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(RAW))
    config = load_config(path, ["strategy.optimizer.groups.0.train_epochs=0.5"])
    groups = config.strategy.optimizer.groups
    assert [g.train_epochs for g in groups] == [0.5, None] and [g.name for g in groups] == ["a", "b"]


def test_an_index_deletes_a_list_item_or_a_key_inside_one():
    assert _overridden("~strategy.optimizer.groups.0")["strategy"]["optimizer"]["groups"] == [GROUPS[1]]
    raw = _overridden("~strategy.optimizer.groups.0.train_epochs")
    assert raw["strategy"]["optimizer"]["groups"][0] == {"name": "a", "match": "*"}


@pytest.mark.parametrize(("text", "message"), [
    ("strategy.optimizer.groups.2.train_epochs=0.5",
     "--set strategy.optimizer.groups.2.train_epochs=0.5: strategy.optimizer.groups has 2 items (index 0 to 1); "
     "there is no item 2 (to add one, set the list whole)"),
    ("model.hidden.7=8", "--set model.hidden.7=8: model.hidden has 2 items (index 0 to 1); there is no item 7 "
                         "(to add one, set the list whole)"),
    ("~strategy.optimizer.groups.5", "--set ~strategy.optimizer.groups.5: strategy.optimizer.groups has 2 items "
                                     "(index 0 to 1); there is no item 5"),
    ("strategy.optimizer.groups.train_epochs=0.5",
     "--set strategy.optimizer.groups.train_epochs=0.5: strategy.optimizer.groups is a list of 2 items, not a "
     "section: name an item by its index (0 to 1), e.g. strategy.optimizer.groups.0.train_epochs, or set the "
     "list whole"),
    ("model.hidden.width=8", "--set model.hidden.width=8: model.hidden is a list of 2 items, not a section: name "
                             "an item by its index (0 to 1), e.g. model.hidden.0, or set the list whole"),
    ("strategy.optimizer.groups.-1.lr=1", "--set strategy.optimizer.groups.-1.lr=1: strategy.optimizer.groups is "
                                          "a list of 2 items, not a section: name an item by its index (0 to 1), "
                                          "e.g. strategy.optimizer.groups.0.lr, or set the list whole"),
    # a word in the index's place: not kept in the example ("groups.0.first.lr" kept the bad segment) ...
    ("strategy.optimizer.groups.first.lr=1", "--set strategy.optimizer.groups.first.lr=1: strategy.optimizer.groups "
                                             "is a list of 2 items, not a section: name an item by its index (0 to "
                                             "1), e.g. strategy.optimizer.groups.0.lr, or set the list whole"),
    # ... and an item's name: that item's index
    ("strategy.optimizer.groups.b.lr=1", "--set strategy.optimizer.groups.b.lr=1: strategy.optimizer.groups is a "
                                         "list of 2 items, not a section: name an item by its index (0 to 1), e.g. "
                                         "strategy.optimizer.groups.1.lr (item 1 is named 'b'), or set the list "
                                         "whole"),
    # an unnamed group answers to the label its errors give it (group0), never to the word None
    ("strategy.optimizer.groups.None.lr=1", "--set strategy.optimizer.groups.None.lr=1: strategy.optimizer.groups "
                                            "is a list of 2 items, not a section: name an item by its index (0 to "
                                            "1), e.g. strategy.optimizer.groups.0.lr, or set the list whole"),
])
def test_an_index_outside_the_list_is_one_line_naming_its_length(text, message):
    with pytest.raises(ConfigError) as caught:
        _overridden(text)
    assert str(caught.value) == message


def test_an_index_into_a_one_item_list_and_an_empty_one():
    raw = copy.deepcopy(RAW)
    raw["strategy"]["optimizer"]["groups"] = [GROUPS[0]]
    with pytest.raises(ConfigError, match=r"groups has 1 item \(index 0\); there is no item 1 "):
        apply_overrides(raw, ["strategy.optimizer.groups.1.lr=1"])
    raw["model"]["hidden"] = []
    with pytest.raises(ConfigError, match=r"^--set model.hidden.0=4: model.hidden is an empty list: it has no "
                                          r"item '0' \(to add one, set the list whole\)$"):
        apply_overrides(raw, ["model.hidden.0=4"])


def test_an_index_into_a_list_that_is_not_set_names_it_and_shows_the_whole_list_to_set():
    # before: the index became a key of a new section and validation said only "Input should be a valid list"
    raw = copy.deepcopy(RAW)
    del raw["strategy"]["optimizer"]["groups"]
    with pytest.raises(ConfigError) as caught:
        apply_overrides(raw, ["strategy.optimizer.groups.0.lr=0.1"])
    assert str(caught.value) == ("--set strategy.optimizer.groups.0.lr=0.1: strategy.optimizer.groups is not set, "
                                 "so it has no item 0: set the list whole, e.g. strategy.optimizer.groups=[{lr: 0.1}]")
    with pytest.raises(ConfigError, match=r"no item 1: set the list whole, e.g. strategy.tta=\[\{a: \{b: 2\}\}\]$"):
        apply_overrides(raw, ["strategy.tta.1.a.b=2"])
    assert "groups" not in raw["strategy"]["optimizer"]


def test_a_string_item_is_its_one_word_form_when_a_key_is_set_in_it():
    # `init: [kaiming_normal, ...]`: kaiming_normal is {name: kaiming_normal}, as a section's one-word form is
    raw = copy.deepcopy(RAW)
    raw["strategy"]["init"] = ["kaiming_normal", "zeros"]
    apply_overrides(raw, ["strategy.init.0.mode=fan_out"])
    assert raw["strategy"]["init"] == [{"name": "kaiming_normal", "mode": "fan_out"}, "zeros"]


# --------------------------------------------------------------------------- the crop_padding error's fix


def _the_commands_fix(message: str) -> list[str]:
    """The argv words of the error's 'from the command line: ...' fix, as a shell splits them when pasted."""
    fix = message.split("from the command line: ", 1)[1]
    assert fix.endswith(")")
    return shlex.split(fix[:-1])


def _train_steps(augment) -> CropAndFlip:
    train, _ = image_transforms(np.zeros((4, 3, 24, 40), np.uint8), mean=0.5, std=0.5, augment=augment)
    return train.steps[0]


def test_the_reflect_padding_fix_sets_pad_mode_alone_keeping_the_other_augment_options():
    raw = copy.deepcopy(RAW)
    raw["data"]["augment"] = {"hflip": "alternating", "crop_padding": 2}
    apply_overrides(raw, ["data.augment.crop_padding=24"])  # 24 px on 24x40 images: too wide to reflect
    with pytest.raises(ConfigError) as caught:
        image_transforms(np.zeros((4, 3, 24, 40), np.uint8), mean=0.5, std=0.5, augment=raw["data"]["augment"])
    message = str(caught.value)
    assert message == ("data.augment.crop_padding=24 must be smaller than the image size (24, 40) for reflect "
                       "padding; use pad_mode: zero (from the command line: --set data.augment.pad_mode=zero)")
    words = _the_commands_fix(message)
    assert words == ["--set", "data.augment.pad_mode=zero"]
    # pasted after the crop_padding set of the same command: the alternating flip is kept
    apply_overrides(raw, ["data.augment.crop_padding=24", words[1]])
    assert raw["data"]["augment"] == {"hflip": "alternating", "crop_padding": 24, "pad_mode": "zero"}
    steps = _train_steps(raw["data"]["augment"])
    assert steps.crop == RandomCrop(24, "zero") and isinstance(steps.flip, AlternatingFlip)


def test_the_fix_for_augment_true_is_the_defaults_with_zero_padding():
    # `augment: true` holds no keys to set one in: the fix is the mapping of true's defaults but pad_mode
    raw = copy.deepcopy(RAW)
    raw["data"]["augment"] = True
    with pytest.raises(ConfigError) as caught:
        image_transforms(np.zeros((4, 3, 3, 3), np.uint8), mean=0.5, std=0.5, augment=True)
    words = _the_commands_fix(str(caught.value))
    assert words == ["--set", "data.augment={pad_mode: zero}"]
    apply_overrides(raw, [words[1]])
    train, _ = image_transforms(np.zeros((4, 3, 3, 3), np.uint8), mean=0.5, std=0.5, augment=raw["data"]["augment"])
    steps = train.steps[0]
    assert steps.crop == RandomCrop(4, "zero") and isinstance(steps.flip, RandomFlip)  # true's 4 px and random flip


def test_a_tune_key_naming_a_list_item_finds_the_base_configs_value_there():
    """tune's space key ``strategy.optimizer.groups.0.lr`` (the --set spelling) reads the base config's value at
    that item, so the base is the study's first point; an index past the list is no point (it sets none)."""
    from trainlab.tune.base_point import base_outside, base_values
    from trainlab.tune.space import parse_space

    base = {"data": {"source": "wine"}, "model": {"name": "mlp", "hidden": [8]},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1,
                                                                "groups": [{"select": "biases", "lr": 0.05}]},
                         "batch_size": 10, "epochs": 1}}
    inside = parse_space({"strategy.optimizer.groups.0.lr": {"low": 0.001, "high": 0.1, "log": True}})
    assert base_values(inside, base) == {"strategy.optimizer.groups.0.lr": 0.05}
    past = parse_space({"strategy.optimizer.groups.1.lr": {"low": 0.001, "high": 0.1, "log": True}})
    assert base_values(past, base) is None and "sets no strategy.optimizer.groups.1.lr" in base_outside(past, base)


def test_an_unnamed_group_is_named_by_the_label_its_errors_give_it():
    raw = copy.deepcopy(RAW)
    raw["strategy"]["optimizer"]["groups"] = [{"match": "*"}, {"name": None, "match": "0.*"}]
    with pytest.raises(ConfigError) as caught:
        apply_overrides(raw, ["strategy.optimizer.groups.group1.lr=1"])
    assert "e.g. strategy.optimizer.groups.1.lr (item 1 is named 'group1')" in str(caught.value)


@pytest.mark.parametrize(("override", "key", "example"), [
    ("strategy..epochs=1", "strategy..epochs", " (e.g. strategy.epochs)"),
    ("strategy.epochs.=1", "strategy.epochs.", " (e.g. strategy.epochs)"),
    (".name=x", ".name", " (e.g. name)"),
    ("~strategy..epochs", "strategy..epochs", " (e.g. strategy.epochs)"),
    ("..=1", "..", ""),
])
def test_a_key_with_an_empty_part_is_said_so(override, key, example):
    """'strategy..epochs=1' was "unknown config key 'strategy.'", '~strategy..epochs' "strategy has no key ''"."""
    with pytest.raises(ConfigError) as caught:
        apply_overrides({"strategy": {"epochs": 2}}, [override])
    assert str(caught.value) == (f"--set {override}: the key '{key}' has an empty part between its dots or at an end; "
                                 f"a key is names joined by single dots{example}")


def test_a_later_set_that_replaces_an_earlier_one_is_said(tmp_path, capsys):
    """A user's `--set strategy.optimizer.lr=0.5 --set 'strategy.optimizer={name: sgd}'` dropped the lr without a
    word, and a key set twice kept the last value silently."""
    from trainlab.config_overrides import replaced_overrides

    overrides = ["strategy.epochs=1", "strategy.optimizer.lr=0.5", "strategy.epochs=3",
                 "strategy.optimizer={name: sgd, lr: 0.1}", "strategy.optimizer.lr=0.2", "strategy.optimizer.lr=0.2",
                 "~strategy.schedule", "strategy.schedule.name=cosine"]
    assert replaced_overrides(overrides) == [("strategy.epochs=1", "strategy.epochs=3"),
                                             ("strategy.optimizer.lr=0.5", "strategy.optimizer={name: sgd, lr: 0.1}")]
    assert replaced_overrides(["a . b=1", "a.b=2"]) == []  # two keys, as --set reads them ('a ', ' b')
    assert replaced_overrides(["a.b = 1", "a.b=1"]) == []  # the same value, spaced otherwise
    assert replaced_overrides(["~a.b", "a.b=3"]) == []  # deleted, then set: meant
    assert replaced_overrides(["a.b=3", "~a"]) == [("a.b=3", "~a")]
    assert replaced_overrides(["model.hidden=[4]", "model.hidden_size=3"]) == []  # a prefix of the name only


def test_the_command_line_warns_of_a_replaced_set(tmp_path, capsys):

    from trainlab.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "t", "data": {"source": "iris"}, "model": {"name": "linear"}, "runtime": {"num_threads": 1},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 32,
                     "epochs": 1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "strategy.epochs=2", "--set", "strategy.epochs=1"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "--set" in line]
    assert warned == ["warning: --set strategy.epochs=1 replaces --set strategy.epochs=2, given before it: the "
                      "later one is used"]
