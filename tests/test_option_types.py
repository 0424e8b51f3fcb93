"""trainlab.option_types: a component option's value against its factory's annotation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import pytest

from trainlab.errors import ConfigError
from trainlab.option_types import mismatch


def factory(params: Any, lr: float, momentum: float = 0.0, steps: int = 5, nesterov: bool = False,
            betas: tuple[float, float] = (0.9, 0.999), widths: Sequence[int] = (8,), mode: str = "fan_in",
            kind: Literal["a", "b"] = "a", scale: float | str = 1.0, bound: float | None = None,
            extra: Any = None) -> None:
    """A factory annotated as the built-in ones are."""


@pytest.mark.parametrize("option, value", [
    ("momentum", 0.9), ("momentum", 1), ("momentum", "5e-4"), ("steps", 3), ("steps", 3.0),
    ("nesterov", True), ("betas", [0.8, 0.99]), ("betas", (0.8, 1)), ("widths", [4, 8, 16]), ("widths", []),
    ("mode", "fan_out"), ("kind", "b"), ("scale", "1/width"), ("scale", 2), ("bound", None), ("bound", 0.5),
    ("extra", object()),
])
def test_values_the_annotation_allows_pass(option, value):
    assert mismatch(factory, {option: value}) is None


@pytest.mark.parametrize("option, value, expected", [
    ("momentum", True, "a number"),  # YAML `true` is not 1.0
    ("momentum", "abc", "a number"),
    # PyYAML leaves 1e999 a string; it would be inf
    ("momentum", "1e999", "a number; 1e999 is not a finite number (a 64-bit float reads it as inf); write a finite "
                          "number"),
    ("momentum", [0.9], "a number"),
    # float() reads both (as 10 and 0.5); the config's own number fields refuse them: so do options now
    ("momentum", "1_0", "a number; 1_0 is no decimal number (the config's numbers are written with the digits 0-9, a "
                        "point and an exponent, e.g. 10, 0.5 or 1e-3)"),
    ("momentum", "\u0660.\u0665", "a number; \u0660.\u0665 is no decimal number (the config's numbers are written with "
                                "the digits 0-9, a point and an exponent, e.g. 10, 0.5 or 1e-3)"),
    ("steps", 2.5, "a whole number"),
    ("steps", "3", "a whole number"),
    ("nesterov", "yes", "true or false"),
    ("nesterov", 1, "true or false"),
    ("betas", [0.9], "a list of 2 numbers"),
    ("betas", 0.9, "a list of 2 numbers"),
    ("betas", [0.9, "x"], "a list of 2 numbers"),
    ("widths", [4, 8.5], "a list of whole numbers"),
    ("mode", 0, "a string"),
    ("mode", {"a": 1}, "a string"),
    ("kind", "c", "one of 'a', 'b'"),
    ("scale", [1], "a number or a string"),
    ("bound", "x", "a number or null"),
])
def test_values_the_annotation_rules_out_name_the_option_and_what_it_must_be(option, value, expected):
    assert mismatch(factory, {option: value}) == (option, expected)


@pytest.mark.parametrize("section, spec, message", [
    ("optimizer", {"name": "sgd", "lr": 0.1, "momentum": True}, "optimizer 'sgd': option 'momentum' must be a number; got True"),
    ("optimizer", {"name": "adam", "lr": 0.1, "betas": [0.9]}, "optimizer 'adam': option 'betas' must be a list of 2 numbers; got [0.9]"),
    ("optimizer", {"name": "adam", "lr": 0.1, "amsgrad": "yes"}, "optimizer 'adam': option 'amsgrad' must be true or false; got 'yes'"),
    ("model", {"name": "mlp", "hidden": [4], "activation": 0}, "model 'mlp': option 'activation' must be a string; got 0"),
    ("model", {"name": "mlp", "hidden": [4], "dropout": "abc"}, "model 'mlp': option 'dropout' must be a number; got 'abc'"),
])
def test_a_config_with_a_wrong_kind_of_option_is_one_line_before_training(tmp_path, capsys, section, spec, message):
    import yaml

    from trainlab.cli import main

    config = {"name": "t", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                           "epochs": 1}, "output": {"progress": "off"}}
    if section == "optimizer":
        config["strategy"]["optimizer"] = spec
    else:
        config["model"] = spec
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_the_registry_refuses_before_the_factory_runs():
    from trainlab.optim import OPTIMIZERS

    with pytest.raises(ConfigError, match="option 'nesterov' must be true or false; got 'no'"):
        OPTIMIZERS.build({"name": "sgd", "nesterov": "no"}, [], lr=0.1)  # no parameters: the factory never ran


@pytest.mark.parametrize("spec, message", [
    ({"name": "sgd", "momentum": 1.5}, "optimizer 'sgd': momentum must be in [0, 1); got 1.5"),
    ({"name": "sgd", "momentum": 1.0}, "optimizer 'sgd': momentum must be in [0, 1); got 1.0"),
    ({"name": "sgd", "momentum": 0.9, "dampening": 5}, "optimizer 'sgd': dampening must be in [0, 1]; got 5"),
    ({"name": "adam", "betas": [0.9, 1.0]}, "optimizer 'adam': betas[1] must be in [0, 1); got 1.0"),
    ({"name": "muon", "momentum": 2}, "optimizer 'muon': momentum must be in"),
    ({"name": "lbfgs", "history_size": 0}, "optimizer 'lbfgs': `history_size` must be >= 1"),
])
def test_optimizer_options_no_optimizer_can_use_are_refused(spec, message):
    import torch

    from trainlab.optim import OPTIMIZERS

    weight = torch.nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(ConfigError, match=re.escape(message)):
        OPTIMIZERS.build(spec, [{"params": [weight]}], lr=0.1)
