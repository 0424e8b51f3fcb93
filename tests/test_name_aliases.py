"""Other frameworks' names pointed at trainlab's (trainlab/name_aliases.py): a Keras, PyTorch, Lightning or
Hugging Face habit (``--set epochs=3``, ``strategy.lr``, ``learning_rate``, ``sparse_categorical_crossentropy``)
is one line whose did-you-mean names trainlab's key, option or component."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)
import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)
from tests.test_config_value_messages import _refusal
from trainlab.config import Config
from trainlab.config_errors import _key_places
from trainlab.errors import ConfigError
from trainlab.losses import LOSSES, build_loss
from trainlab.name_aliases import KEY_NAMES, LOSS_NAMES, OPTIMIZER_NAMES
from trainlab.optim import OPTIMIZERS
from trainlab.registry import did_you_mean, factory_options

WINE_LIKE: dict[str, Any] = {
    "name": "base", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16, "epochs": 2},
    "runtime": {"num_threads": 1}, "output": {"progress": "off"},
}


def _config_file(tmp_path: Path, config: dict[str, Any] = WINE_LIKE) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- the tables

def test_every_alias_names_a_registered_loss_or_optimizer():
    assert set(LOSS_NAMES.values()) <= set(LOSSES.names())
    assert set(OPTIMIZER_NAMES.values()) <= set(OPTIMIZERS.names())


def test_every_key_alias_names_a_config_key_or_an_optimizer_option():
    schema_keys = {place[-1] for place in _key_places(Config)}
    options = {option for name in OPTIMIZERS.names() for option in factory_options(OPTIMIZERS.get(name), 1) or ()}
    assert set(KEY_NAMES.values()) <= schema_keys | options


def test_no_alias_shadows_a_name_trainlab_has():
    """An alias is looked up only for a name that is refused: one that is trainlab's own would never be."""
    assert not set(LOSS_NAMES) & set(LOSSES.names())
    assert not set(OPTIMIZER_NAMES) & set(OPTIMIZERS.names())
    assert not set(KEY_NAMES) & {place[-1] for place in _key_places(Config)}
    for table in (KEY_NAMES, LOSS_NAMES, OPTIMIZER_NAMES):
        assert all(key == key.casefold() for key in table)  # looked up with the name's case folded


def test_did_you_mean_prefers_the_alias_and_falls_back_when_its_target_is_no_choice():
    assert did_you_mean("learning_rate", ["lr", "betas", "eps"], {"learning_rate": "lr"}) == "; did you mean 'lr'?"
    assert did_you_mean("Learning_Rate", ["lr"], {"learning_rate": "lr"}) == "; did you mean 'lr'?"
    # the target is not among these choices: the plain did-you-mean (difflib's)
    assert did_you_mean("epoch", ["epochs", "seed"], {"epoch": "steps"}) == "; did you mean 'epochs'?"
    assert did_you_mean("learning_rate", ["lr"]) == ""  # without aliases, difflib finds nothing


# ----------------------------------------------------------------------------- config keys

@pytest.mark.parametrize(("override", "suggested"), [
    ("strategy.lr=0.1", "'strategy.optimizer.lr'"),  # a key one level deeper
    ("lr=0.1", "'strategy.optimizer.lr'"),
    ("epochs=3", "'strategy.epochs'"),  # a key of another section
    ("batch_size=8", "'strategy.batch_size'"),
    ("patience=3", "'strategy.early_stopping.patience'"),
    ("strategy.patience=3", "'strategy.early_stopping.patience'"),
    ("strategy.weight_decay=0.1", "'strategy.regularization.weight_decay'"),
    ("strategy.seed=1", "'seed'"),
    ("learning_rate=0.1", "'strategy.optimizer.lr'"),  # another framework's name, at another place
    ("num_train_epochs=3", "'strategy.epochs'"),
    ("per_device_train_batch_size=8", "'strategy.batch_size'"),
    ("strategy.max_epochs=3", "'epochs'"),  # another framework's name for a key of the same section
    ("strategy.gradient_accumulation_steps=2", "'grad_accum_steps'"),
    ("runtime.devise=cpu", "'device'"),  # a typo in its own section, as before
])
def test_an_unknown_key_points_to_where_the_key_is(tmp_path, override, suggested):
    key = override.split("=")[0]
    message = _refusal(tmp_path, override)
    assert message.startswith(f"unknown config key '{key}'; did you mean {suggested}? (valid: ")


def test_the_newcomers_set_strategy_lr_is_one_line_with_the_place_of_lr(tmp_path):
    path = _config_file(tmp_path)
    done = subprocess.run([sys.executable, "-m", "trainlab", "train", str(path), "--set", "strategy.lr=0.1",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: unknown config key 'strategy.lr'; did you mean 'strategy.optimizer.lr'? (valid: loss, optimizer, "
        "batch_size, epochs, max_steps, min_steps, time_budget_s, group_by_length, schedule, regularization, "
        "clip_grad_norm, clip_grad_value, grad_accum_steps, eval_every_n_steps, early_stopping, init, divergence, "
        "finetune, tta, weight_averaging)"]


def test_a_key_at_many_places_names_none(tmp_path):
    """strategy.name: loss, optimizer, schedule and init each have a name; naming them all says nothing."""
    assert _refusal(tmp_path, "strategy.name=x").startswith("unknown config key 'strategy.name' (valid: loss, ")


def test_an_optimizer_option_set_as_a_key_points_into_the_optimizer(tmp_path):
    sgd = _refusal(tmp_path, "strategy.optimizer.name=sgd", "momentum=0.9")
    assert sgd.startswith("unknown config key 'momentum'; did you mean 'strategy.optimizer.momentum'? (valid: ")
    # adam takes no momentum: the line says which optimizers do
    adam = _refusal(tmp_path, "strategy.momentum=0.9")
    assert "did you mean 'strategy.optimizer.momentum', an option of optimizers sgd, " in adam
    assert "(not of adam)? (valid: loss, " in adam
    assert _refusal(tmp_path, "momentun=0.9").startswith("unknown config key 'momentun' (valid: name, ")


def test_a_model_option_set_in_the_strategy_points_to_the_model(tmp_path):
    """Dropout is a strategy knob in the README's words but the model's option: strategy.dropout pointed to
    strategy.finetune.lora.dropout, which no MLP has."""
    mlp = _refusal(tmp_path, "strategy.dropout=0.2")
    assert mlp.startswith("unknown config key 'strategy.dropout'; did you mean 'model.dropout'? (valid: loss, ")
    linear = _refusal(tmp_path, "model={name: linear}", "strategy.dropout=0.2")
    assert "did you mean 'model.dropout', an option of models mlp, " in linear and "(not of linear)? (valid: " in linear
    assert "lora" not in mlp + linear


# ----------------------------------------------------------------------------- component names and options

def test_an_optimizer_option_by_another_frameworks_name_points_to_trainlabs():
    with pytest.raises(ConfigError) as caught:
        OPTIMIZERS.check_options("adam", {"learning_rate": 0.01}, skip=1)
    assert str(caught.value) == ("optimizer 'adam' has no option 'learning_rate'; did you mean 'lr'? (options: lr, "
                                 "betas, eps, weight_decay, amsgrad, fused)")
    with pytest.raises(ConfigError, match="has no option 'wd'; did you mean 'weight_decay'"):
        OPTIMIZERS.check_options("sgd", {"wd": 0.1}, skip=1)


@pytest.mark.parametrize(("name", "trainlabs"), [
    ("sparse_categorical_crossentropy", "cross_entropy"), ("categorical_crossentropy", "cross_entropy"),
    ("crossentropy", "cross_entropy"), ("binary_crossentropy", "bce"), ("mean_squared_error", "mse"),
    ("mean_absolute_error", "mae"), ("huber_loss", "huber"), ("CrossEntropyLoss", "cross_entropy"),
    ("BCEWithLogitsLoss", "bce"), ("BCELoss", "bce_prob"), ("MSELoss", "mse"), ("L1Loss", "mae"),
    ("NLLLoss", "nll"), ("KLDivLoss", "kl_div"), ("ce", "cross_entropy"),
])
def test_another_frameworks_loss_name_points_to_trainlabs(name, trainlabs):
    with pytest.raises(ConfigError) as caught:
        build_loss(name)
    assert str(caught.value).startswith(f"unknown loss '{name}'; did you mean '{trainlabs}'? (valid: adaptive, ")


@pytest.mark.parametrize("name", ["AdamW", "SGD", "RMSprop", "Adagrad", "Adam", "NAdam", "RAdam"])
def test_torch_and_keras_optimizer_class_names_are_trainlabs_case_aside(name):
    assert name in OPTIMIZERS
    assert OPTIMIZERS.get(name) is OPTIMIZERS.get(name.lower())


@pytest.mark.parametrize(("name", "trainlabs"), [("adamw_torch_fused", "adamw"), ("paged_adamw_8bit", "adamw"),
                                                 ("lion_32bit", "lion"), ("SparseAdam", "adam"), ("sgdm", "momentum")])
def test_hugging_face_optimizer_names_point_to_trainlabs(name, trainlabs):
    with pytest.raises(ConfigError) as caught:
        OPTIMIZERS.get(name)
    assert str(caught.value).startswith(f"unknown optimizer '{name}'; did you mean '{trainlabs}'? (valid: ")
