"""The preflight (``trainlab schedule``, ``compare``, ``tune``) checks a schedule's options, never its length.

It built the schedule over a stand-in run of 100 steps, so ``warmup_steps: 150`` was refused on a run of 600
steps that ``trainlab train`` trains (``must be < total steps (100)``). The length rules are the run's, with
its real count (the schedule command counts the rows first).
"""

from __future__ import annotations

import math
import sys

import pytest
import yaml

from trainlab.cli import main
from trainlab.compare.strategies import NamedStrategy, validate_strategies
from trainlab.config import load_config, validate
from trainlab.data.counting import count_splits
from trainlab.errors import ConfigError
from trainlab.preflight import check_components

BASE = {"name": "sch", "seed": 0, "data": {"source": "wine"}, "model": {"name": "mlp", "hidden": [16]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 10,
                     "epochs": 50},
        "metrics": ["accuracy"], "runtime": {"num_threads": 1}}
WARMUP_SCHEDULES = ["warmup_cosine", "warmup_linear", "wsd"]


def _with_schedule(schedule: dict) -> dict:
    return {**BASE, "strategy": {**BASE["strategy"], "schedule": schedule}}


@pytest.fixture
def base_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def _run_steps(path) -> int:
    """The run's length worked out here: ceil(training rows / batch 10) steps per epoch, 50 epochs."""
    return math.ceil(count_splits(load_config(path, []).data).train / 10) * 50


@pytest.mark.parametrize("name", WARMUP_SCHEDULES)
def test_the_schedule_command_plots_a_warmup_longer_than_100_steps_of_a_600_step_run(base_yaml, capsys, name):
    assert _run_steps(base_yaml) == 600  # the tester's run: 120 training rows of wine
    code = main(["schedule", str(base_yaml), "--plot", "e.png", "--set", f"strategy.schedule.name={name}",
                 "--set", "strategy.schedule.warmup_steps=150"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote e.png (600 steps)" in out
    assert (base_yaml.parent / "e.png").stat().st_size > 0


@pytest.mark.parametrize("name", WARMUP_SCHEDULES)
def test_the_schedule_command_refuses_a_warmup_past_the_run_naming_its_real_length(base_yaml, capsys, name):
    code = main(["schedule", str(base_yaml), "--plot", "e.png", "--set", f"strategy.schedule.name={name}",
                 "--set", "strategy.schedule.warmup_steps=700"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: strategy.schedule.warmup_steps (700) ")
    assert "total steps (600)" in lines[0] and "(100)" not in lines[0]
    assert not (base_yaml.parent / "e.png").exists()


@pytest.mark.parametrize("name", WARMUP_SCHEDULES)
def test_compare_and_tune_preflight_accept_a_warmup_of_150_steps(name):
    check_components(validate(_with_schedule({"name": name, "warmup_steps": 150})))
    strategies = [NamedStrategy("long_warmup", {"strategy.schedule": {"name": name, "warmup_steps": 150}})]
    configs = validate_strategies({"wine": BASE}, strategies)
    assert configs["wine", "long_warmup"].strategy.schedule.spec()["warmup_steps"] == 150


@pytest.mark.parametrize(("schedule", "says"), [
    ({"name": "warmup_cosine", "warmup_steps": -1}, "strategy.schedule.warmup_steps (-1) must be an integer >= 0"),
    ({"name": "warmup_cosine", "warmup_steps": 150, "min_factor": 2},
     "strategy.schedule.min_factor (2) must be a number in [0, 1]"),
    ({"name": "wsd", "warmup_fraction": 1.5}, "strategy.schedule.warmup_fraction (1.5) must be a number in [0, 1)"),
    ({"name": "one_cycle", "pct_start": 0}, "strategy.schedule.pct_start (0) must be a number in (0, 1)"),
    ({"name": "warmup_cosine", "warmup_step": 150}, "warmup_step"),
    ({"name": "warmup_cosinus"}, "unknown schedule 'warmup_cosinus'"),
])
def test_the_preflight_still_refuses_what_the_options_alone_decide(schedule, says):
    with pytest.raises(ConfigError) as caught:
        check_components(validate(_with_schedule(schedule)))
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert "total steps" not in str(caught.value)


LENGTHY = '''
def needs_1000_steps(total_steps, steps_per_epoch, peak=1.0):
    if total_steps < 1000:
        raise ValueError(f"needs 1000 steps; got {total_steps}")
    return lambda step: peak
'''


def test_a_user_schedule_factory_is_checked_for_its_option_names_only(tmp_path, monkeypatch):
    """What a user's factory does with the length is its own: the preflight does not call it with a made-up one."""
    (tmp_path / "lengthy_t.py").write_text(LENGTHY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        check_components(validate(_with_schedule({"name": "lengthy_t:needs_1000_steps", "peak": 0.5})))
        with pytest.raises(ConfigError, match="peek"):
            check_components(validate(_with_schedule({"name": "lengthy_t:needs_1000_steps", "peek": 0.5})))
    finally:
        sys.modules.pop("lengthy_t", None)
