"""What a user coming from the Hugging Face Trainer or PyTorch Lightning is told (trainlab/name_aliases.py's
KEY_NAMES, KEY_PLACES and KEY_MEANINGS; trainlab.api's unknown-key hints; trainlab.fit_inputs; plan_warnings).

A migrating user found: ``--set strategy.eval_steps=5`` answered "did you mean 'max_steps'?", which capped the
run at 5 steps; fit's ``strategy={"log_every_n_steps": 2}`` pointed to 'output.log_every_n_steps', and
``strategy={"output": ...}`` back to 'output', though fit has no output argument; all-zero targets under mse
said only that a binary classifier needs two classes; ``epochs=2, max_steps=100`` trained 16 steps without a
word. The expected pointers and step counts below are written out by hand (8 steps an epoch: 64 rows in
batches of 8), and each pointer is followed to check that the key it names takes the value.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab
from trainlab.callbacks.base import Callback
from trainlab.cli import main
from trainlab.config import load_config
from trainlab.errors import ConfigError, DataError

ROWS, BATCH = 64, 8  # synthetic_linear trains on exactly n rows: 8 steps an epoch
LINEAR = {"name": "migrant", "seed": 0, "data": {"source": "synthetic_linear", "n": ROWS},
          "model": {"name": "linear"},
          "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": BATCH, "epochs": 2},
          "output": {"progress": "off"}}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(LINEAR, sort_keys=False))
    return path


def _refused(tmp_path: Path, capsys, *overrides: str) -> str:
    """The one error line of ``trainlab train c.yaml --set ...`` (exit 2), without its "(valid: ...)" list."""
    arguments = ["train", str(_config(tmp_path)), "--out", str(tmp_path / "run")]
    for override in overrides:
        arguments += ["--set", override]
    assert main(arguments) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0].removeprefix("error: ").split(" (valid: ")[0]


# ----------------------------------------------------------------------------- 1. the CLI's pointers

@pytest.mark.parametrize(("override", "pointer", "followed"), [
    ("strategy.eval_steps=5", "'eval_every_n_steps'", "strategy.eval_every_n_steps=5"),
    ("output.save_total_limit=3", "'output.checkpoint.keep_last'", "output.checkpoint.keep_last=3"),
    ("output.checkpoint.save_total_limit=3", "'keep_last'", "output.checkpoint.keep_last=3"),
    ("output.save_steps=100", "'output.checkpoint.every_n_steps'", "output.checkpoint.every_n_steps=100"),
    # not weight averaging's every_n_steps, the strategy's own key of that name
    ("strategy.save_steps=100", "'output.checkpoint.every_n_steps'", "output.checkpoint.every_n_steps=100"),
    ("strategy.logging_steps=2", "'output.log_every_n_steps'", "output.log_every_n_steps=2"),
    ("strategy.restore_best_weights=true", "'strategy.early_stopping.restore_best'",
     "strategy.early_stopping.restore_best=true"),
])
def test_another_frameworks_key_points_to_trainlabs_key_of_the_same_meaning(tmp_path, capsys, override, pointer,
                                                                             followed):
    key = override.split("=")[0]
    assert _refused(tmp_path, capsys, override) == f"unknown config key '{key}'; did you mean {pointer}?"
    load_config(_config(tmp_path), [followed])  # the key pointed to takes the value


def test_warmup_ratio_points_into_the_schedules_that_take_warmup_fraction(tmp_path, capsys):
    message = _refused(tmp_path, capsys, "strategy.warmup_ratio=0.1")
    assert message == ("unknown config key 'strategy.warmup_ratio'; did you mean 'strategy.schedule.warmup_fraction', "
                       "an option of schedules wsd, warmup_cosine, warmup_linear?")
    cosine = _refused(tmp_path, capsys, "strategy.schedule=cosine", "strategy.warmup_ratio=0.1")
    assert cosine.endswith("warmup_linear (not of cosine)?")
    warm = _refused(tmp_path, capsys, "strategy.schedule=warmup_cosine", "strategy.warmup_ratio=0.1")
    assert warm == "unknown config key 'strategy.warmup_ratio'; did you mean 'strategy.schedule.warmup_fraction'?"
    config = load_config(_config(tmp_path), ["strategy.schedule={name: warmup_cosine, warmup_fraction: 0.1}"])
    assert config.strategy.schedule.spec() == {"name": "warmup_cosine", "warmup_fraction": 0.1}


@pytest.mark.parametrize("override", ["strategy.warmup_steps=10", "strategy.num_warmup_steps=10",
                                      "output.warmup_steps=10"])
def test_warmup_steps_outside_the_schedule_points_into_the_schedules_that_take_it(tmp_path, capsys, override):
    """Not 'max_steps' (difflib's nearest), nor schedule_free_adamw's option of that name."""
    key = override.split("=")[0]
    assert _refused(tmp_path, capsys, override) == (
        f"unknown config key '{key}'; did you mean 'strategy.schedule.warmup_steps', an option of schedules wsd, "
        "warmup_cosine, warmup_linear?")
    config = load_config(_config(tmp_path), ["strategy.schedule={name: warmup_linear, warmup_steps: 10}"])
    assert config.strategy.schedule.spec() == {"name": "warmup_linear", "warmup_steps": 10}


def test_warmup_steps_points_to_the_optimizers_own_option_where_the_config_s_optimizer_takes_it(tmp_path, capsys):
    """schedule_free_adamw takes warmup_steps itself: that is the place, not the schedules'."""
    message = _refused(tmp_path, capsys, "strategy.optimizer={name: schedule_free_adamw, lr: 0.01}",
                       "strategy.warmup_steps=10")
    assert message == "unknown config key 'strategy.warmup_steps'; did you mean 'strategy.optimizer.warmup_steps'?"


@pytest.mark.parametrize(("override", "pointer", "meaning"), [
    ("strategy.check_val_every_n_epoch=2", "'eval_every_n_steps'",
     "Lightning's check_val_every_n_epoch skips epochs' validations; trainlab validates after every epoch"),
    ("strategy.evaluation_strategy=steps", "'eval_every_n_steps'",
     "Hugging Face's evaluation_strategy picks 'steps' or 'epoch'; trainlab validates after every epoch"),
    ("strategy.eval_strategy=epoch", "'eval_every_n_steps'",
     "Hugging Face's eval_strategy picks 'steps' or 'epoch'; trainlab validates after every epoch"),
    ("evaluation_strategy=steps", "'strategy.eval_every_n_steps'", "picks 'steps' or 'epoch'"),
    ("strategy.val_check_interval=0.25", "'eval_every_n_steps'",
     "Lightning's val_check_interval counts batches, or a fraction of an epoch; eval_every_n_steps counts "
     "optimizer steps"),
    ("strategy.load_best_model_at_end=true", "'strategy.early_stopping.restore_best'",
     "early stopping's, on by default: set strategy.early_stopping"),
])
def test_a_key_whose_values_mean_otherwise_is_refused_with_the_pointer_and_what_differs(tmp_path, capsys, override,
                                                                                       pointer, meaning):
    key = override.split("=")[0]
    message = _refused(tmp_path, capsys, override)
    assert message.startswith(f"unknown config key '{key}'; did you mean {pointer} (") and message.endswith(")?")
    assert meaning in message


# ----------------------------------------------------------------------------- 2. fit's own places

SIGNS_BASE = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": BATCH, "epochs": 2}


def _signs(n: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _fit_refusal(strategy_changes: dict, error: type[Exception] = ConfigError, **arguments) -> str:
    with pytest.raises(error) as caught:
        trainlab.fit(torch.nn.Linear(3, 2), train=_signs(), strategy={**SIGNS_BASE, **strategy_changes}, **arguments)
    message = str(caught.value)
    assert "\n" not in message
    return message.split(" (valid: ")[0]


STEP_LOSSES = ("in fit, a Callback's on_step_end(view, loss) can log each step's loss, e.g. "
               "view.log({'my_loss': float(loss)}), into FitResult.step_records")


@pytest.mark.parametrize(("changes", "key"), [({"log_every_n_steps": 2}, "strategy.log_every_n_steps"),
                                              ({"logging_steps": 2}, "strategy.logging_steps")])
def test_fits_step_logging_key_says_fit_has_no_output_and_what_to_do_instead(changes, key):
    assert _fit_refusal(changes) == (
        f"unknown config key '{key}'; fit takes no output settings: output.log_every_n_steps is a config run's "
        f"(`trainlab train CONFIG --set output.log_every_n_steps=N`); {STEP_LOSSES}")


def test_fits_output_section_in_the_strategy_no_longer_points_back_to_output():
    message = _fit_refusal({"output": {"log_every_n_steps": 2}})
    assert message == ("unknown config key 'strategy.output'; fit takes no output settings: output is a config run's "
                       f"(an output: section of a config, `trainlab train CONFIG`); {STEP_LOSSES}")
    # the alternative the message names works: one record per optimizer step, ceil(64 / 8) x 2 of them
    result = trainlab.fit(torch.nn.Linear(3, 2), train=_signs(), strategy=SIGNS_BASE, callbacks=[_StepLosses()])
    logged = [record for record in result.step_records if "my_loss" in record]
    assert [record["step"] for record in logged] == list(range(1, 2 * math.ceil(ROWS / BATCH) + 1))
    assert all(np.isfinite(record["my_loss"]) for record in logged)


class _StepLosses(Callback):
    def on_step_end(self, view, loss):
        view.log({"my_loss": float(loss)})


@pytest.mark.parametrize(("changes", "said"), [
    ({"seed": 1}, "did you mean fit's seed= argument?"),
    ({"metrics": ["f1"]}, "did you mean fit's metrics= argument?"),
    ({"device": "cpu"}, "did you mean fit's runtime={'device': ...}?"),
    ({"dir": "runs/x"}, "did you mean fit's out= argument?"),
    ({"save_steps": 5}, "fit takes no output settings: output.checkpoint.every_n_steps is a config run's "
                        "(`trainlab train CONFIG --set output.checkpoint.every_n_steps=N`)"),
])
def test_fits_key_of_another_section_is_named_by_fits_argument(changes, said):
    assert _fit_refusal(changes) == f"unknown config key 'strategy.{next(iter(changes))}'; {said}"


# ----------------------------------------------------------------------------- 3. one value under a regression loss

def _zeros_refusal(loss: str, **arguments) -> str:
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(3, 1), train=(x, torch.zeros(20, 1)),
                     strategy={"loss": loss, "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 8,
                               "epochs": 1}, **arguments)
    return str(caught.value)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile"])
def test_one_value_under_a_regression_loss_names_the_regression_task(loss):
    assert _zeros_refusal(loss) == (
        "the training targets hold one class ('0' in all 20 rows); a classifier needs rows of at least two "
        f"classes; nor can {loss}, a regression loss, learn from them: task='regression' reads them as numbers, "
        "which are the same in every row (is y the column to predict?)")
    # the message's claim: as numbers the targets are refused as well; a class-label loss gets no such hint
    assert "is 0 in all 20 training rows" in _zeros_refusal(loss, task="regression")
    assert "task=" not in _zeros_refusal("bce")


# ----------------------------------------------------------------------------- 4. max_steps the epochs never reach

def _trained(tmp_path: Path, capsys, *overrides: str) -> tuple[list[str], list[dict]]:
    """The warning lines about max_steps and the epoch records of ``trainlab train c.yaml --set ...``."""
    arguments = ["train", str(_config(tmp_path)), "--out", str(tmp_path / "run")]
    for override in overrides:
        arguments += ["--set", override]
    assert main(arguments) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning:") and "max_steps" in line]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [record for record in map(json.loads, lines) if "train_loss" in record and "scope" not in record]
    return warnings, records


def test_max_steps_beyond_the_epochs_is_warned_of_naming_both_values(tmp_path, capsys):
    warnings, records = _trained(tmp_path, capsys, "strategy.epochs=2", "strategy.max_steps=100")
    assert records[-1]["step"] == 2 * (ROWS // BATCH) == 16  # the claim: the epochs end the run at step 16
    assert warnings == [
        "warning: strategy.max_steps=100 is never reached: strategy.epochs=2 of 8 steps each end the run at step 16, "
        "and the first limit reached ends it (the Hugging Face Trainer's max_steps would override the epochs); to "
        "train 100 steps, leave strategy.epochs out, else remove max_steps"]
    # a max_steps the run reaches (at its last step, or before the epochs end), or none, is not warned of
    for overrides, last in [(("strategy.max_steps=16",), 16), (("strategy.max_steps=10",), 10), ((), 16)]:
        shutil.rmtree(tmp_path / "run")
        warnings, records = _trained(tmp_path, capsys, "strategy.epochs=2", *overrides)
        assert warnings == [] and records[-1]["step"] == last, overrides


# ----------------------------------------------------------------------------- the table of whole places

def test_every_place_pointed_to_is_a_config_key_or_a_schedule_option():
    from trainlab.config import Config
    from trainlab.config_errors import _key_places
    from trainlab.name_aliases import KEY_MEANINGS, KEY_NAMES, KEY_PLACES
    from trainlab.schedules import SCHEDULES

    places = {".".join(place) for place in _key_places(Config)}
    schedule_options = {f"strategy.schedule.{option}" for name in SCHEDULES.names()
                        for option in SCHEDULES.defaults(name)}
    assert set(KEY_PLACES.values()) <= places | schedule_options
    assert set(KEY_MEANINGS) <= set(KEY_PLACES)
    # looked up for a refused key only, its case folded; one table per name
    assert not set(KEY_PLACES) & ({place.rsplit(".", 1)[-1] for place in places} | set(KEY_NAMES))
    assert all(key == key.casefold() for key in KEY_PLACES)
