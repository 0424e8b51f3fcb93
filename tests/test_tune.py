"""trainlab tune: space checks, sampling, seeding, pruning, failures, totals across processes, restart, PostgreSQL."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from tests.child_env import iris_on_file, with_repo_first
from tests.postgres_server import postgres_url
from trainlab.cli import main
from trainlab.config import load_config, read_yaml
from trainlab.errors import ConfigError, Interrupted
from trainlab.tune import TuneSettings, tune
from trainlab.tune.claims import ATTR_BASE, claim_trial
from trainlab.tune.refit import _typed
from trainlab.tune.space import check_space, parse_space
from trainlab.tune.storage import FileLock
from trainlab.tune.study import build_pruner
from trainlab.yaml_files import flow_yaml

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "name": "iris",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                 "epochs": 2},
    "metrics": ["accuracy"],
    "runtime": {"num_threads": 1},
    "output": {"progress": "off", "checkpoint": {"every_seconds": None}},
}

SPACE = {
    "strategy.optimizer.name": {"choices": ["sgd", "adam"]},
    "strategy.optimizer.lr": {"low": 1.0e-4, "high": 0.5, "log": True},
    "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.name": "sgd"}},
    "strategy.batch_size": {"choices": [16, 32]},
}


def write(folder: Path, base: dict = BASE, space: dict = SPACE) -> tuple[Path, Path]:
    """base.yaml and space.yaml in ``folder``; iris is read from an npz file (:func:`iris_on_file`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(iris_on_file(base)))
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    return folder / "base.yaml", folder / "space.yaml"


def read_trials(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def settings(tmp_path: Path, trials: int, **changes) -> TuneSettings:
    base, space = write(tmp_path, changes.pop("base", BASE), changes.pop("space", SPACE))
    return TuneSettings(base=base, space=space, trials=trials, out=changes.pop("out", tmp_path / "out"), quiet=True,
                        **changes)


# --------------------------------------------------------------------------- the space

BAD_SPACES = [
    ({"strategy.optimizer.lrr": {"low": 1e-3, "high": 0.1}}, "no option 'lrr'"),
    ({"strategy.optimiser.lr": {"low": 1e-3, "high": 0.1}}, "unknown config key 'strategy.optimiser'"),
    ({"model.hiden": {"choices": [[8], [16]]}}, "did you mean 'hidden'"),
    # a model option's type and value, refused before a trial (each trial failed at its model's build)
    ({"model.hidden": {"low": 8, "high": 32}},
     "space key 'model.hidden': the config refuses model.hidden=8: model 'mlp': option 'hidden' must be a list of "
     "whole numbers; got 8; 'model.hidden' takes a list: search lists as its choices (model.hidden: "
     "{choices: [<a list>, <another>]})"),
    ({"strategy.optimizer.betas": {"low": 0.8, "high": 0.99}},
     "'strategy.optimizer.betas' takes a list: search lists as its choices (strategy.optimizer.betas: "
     "{choices: [<a list>, <another>]})"),
    ({"model.dropout": {"low": 0.0, "high": 1.5}},
     "the config refuses model.dropout=1.5: model 'mlp': dropout must be in [0, 1) (0: none); got dropout=1.5"),
    ({"strategy.optimizer.lr": {"low": 0.1, "high": 0.001}}, "low (0.1) > high (0.001)"),
    ({"strategy.optimizer.lr": {"low": 0.0, "high": 0.1, "log": True}}, "log needs low > 0"),
    ({"strategy.optimizer.lr": {"low": -1.0, "high": 0.1}}, "must be > 0"),
    ({"strategy.batch_size": {"low": 0, "high": 8}}, "strategy.batch_size=0"),
    ({"strategy.optimizer.name": {"choices": ["sgd", "adamm"]}}, "did you mean 'adam'"),
    ({"strategy.optimizer.name": {"choices": ["sgd", "adam"]},
      "strategy.optimizer.momentum": {"low": -0.5, "high": 0.9, "when": {"strategy.optimizer.name": "sgd"}}},
     "momentum=-0.5"),
    ({"strategy.optimizer.lr": {"low": 1e-3, "high": 0.1, "when": {"strategy.optimizer.nam": "sgd"}}},
     "'when' names 'strategy.optimizer.nam'"),
    ({"strategy.optimizer.name": {"choices": ["sgd", "adam"]},
      "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.name": "lion"}}},
     "'when' value 'lion' is not a choice"),
    ({"strategy.optimizer.lr": {"lo": 1e-3, "high": 0.1}}, "unknown field 'lo'; did you mean 'low'"),
    ({"strategy": {"batch_size": {"choices": [16, 32]}}},
     "space key 'strategy': unknown field 'batch_size'; a space names each setting by its dotted key: "
     "'strategy.batch_size': {...}, not nested"),
    ({"strategy": {"optimizer": {"lr": {"low": 1e-4, "high": 0.1}}}},
     "a space names each setting by its dotted key: 'strategy.optimizer.lr': {...}, not nested"),
    ({"strategy.optimizer.lr": {"low": 1e-3, "high": 0.1, "log": True, "step": 0.01}}, "cannot be combined"),
    ({"strategy.optimizer.lr": 0.01}, "needs a mapping"),
    ({"strategy.epochs": {"low": 5, "high": 20, "step": 100}}, "step (100) is larger than high - low (15)"),
    # one value: every trial the same run (as a step larger than the range)
    ({"strategy.optimizer.lr": {"low": 0.01, "high": 0.01}}, "low and high are both 0.01, so the key would take one"),
    # the did-you-mean of a condition offers keys with choices only (a condition needs one)
    ({"strategy.optimizer.lr": {"low": 1e-3, "high": 0.1},
      "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.nam": "sgd"}}},
     "'when' names 'strategy.optimizer.nam', which is not a key of the space; add it as a key with 'choices'"),
    ({"strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.name": "sgd"}}},
     "which is not a key of the space; add it as a key with 'choices'"),
    # placed as training places it: Adam's weight_decay is an L2 term, not the decoupled decay
    ({"strategy.regularization.weight_decay": {"low": 0.0, "high": 0.1}}, "has no home in optimizer 'adam'"),
    # a float range on a whole-number key: its bounds pass, every value sampled between them would fail
    ({"strategy.epochs": {"low": 2, "high": 6, "type": "float"}},
     "space key 'strategy.epochs': the config refuses strategy.epochs=3.2: config key 'strategy.epochs': must be "
     "a whole number; got 3.2; 'strategy.epochs' takes whole numbers: "
     "search it as an int range (integer low and high, without type: float)"),
    ({"strategy.epochs": {"low": 2.0, "high": 3.0, "step": 0.5}}, "the config refuses strategy.epochs=2.5"),
    # keys that change nothing a trial scores: every trial would repeat another
    ({"name": {"choices": ["a", "b"]}}, "space key 'name': every trial is named <base name>-trial<number> "
                                        "whatever it sets, so its trials would repeat each other; remove it"),
    ({"output.progress": {"choices": ["on", "off"]}}, "space key 'output.progress': the output section says how "
                                                      "a run is recorded, not what it scores"),
    ({"runtime.num_threads": {"low": 1, "high": 2}}, "space key 'runtime.num_threads': the number of threads"),
    # choices that the config reads alike: compared as the trials would set them, not as written
    ({"strategy.clip_grad_norm": {"choices": ["1", 1.0]}},
     "space key 'strategy.clip_grad_norm': the choices '1' and 1.0 set the same config "
     "(strategy.clip_grad_norm: 1.0), so their trials would repeat each other; keep one of them"),
    ({"strategy.clip_grad_norm": {"choices": [None, 1, 1.0, "1"]}}, "the choices 1 and 1.0 set the same config"),
    ({"strategy.loss": {"choices": ["cross_entropy", {"name": "cross_entropy"}]}},
     "the choices 'cross_entropy' and {name: cross_entropy} set the same config"),
    # fine alone with the base's Adam, refused together with momentum SGD
    ({"strategy.optimizer.name": {"choices": ["adam", "sgd"]},
      "strategy.regularization.weight_decay": {"low": 0.0, "high": 0.1},
      "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.name": "sgd"}}},
     "has no home in optimizer 'adam'"),
]


@pytest.mark.parametrize("space,expected", BAD_SPACES, ids=[str(i) for i in range(len(BAD_SPACES))])
def test_bad_space_fails_in_one_line_before_any_trial(tmp_path, capsys, space, expected):
    base, space_file = write(tmp_path, space=space)
    code = main(["tune", str(base), "--space", str(space_file), "--trials", "3", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert not (tmp_path / "out" / "trials").exists()


def test_two_keys_fine_alone_but_not_together_are_refused_with_the_when_that_avoids_it(tmp_path, capsys):
    base = {**BASE, "strategy": {**BASE["strategy"], "optimizer": {"name": "adamw", "lr": 0.01}}}
    space = {"strategy.optimizer.name": {"choices": ["adam", "adamw"]},
             "strategy.regularization.weight_decay": {"low": 0.0, "high": 0.1}}
    base_file, space_file = write(tmp_path, base=base, space=space)
    code = main(["tune", str(base_file), "--space", str(space_file), "--trials", "3", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "space keys 'strategy.optimizer.name' and 'strategy.regularization.weight_decay'" in err
    assert "strategy.optimizer.name=adam, strategy.regularization.weight_decay=0.1" in err
    assert "when: {strategy.optimizer.name: [adamw]}" in err
    assert not (tmp_path / "out").exists()
    space["strategy.regularization.weight_decay"]["when"] = {"strategy.optimizer.name": "adamw"}
    check_space(parse_space(space), base)



def test_conditions_of_a_point_are_intersected_whatever_the_key_order():
    """A key conditioned on A in {x, y} meets one conditioned on A = y at A = y, in either order; a key
    whose conditions allow no common value can never be sampled and is refused with one line."""
    space = parse_space({"strategy.optimizer.name": {"choices": ["sgd", "adam"]},
                         "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9,
                                                         "when": {"strategy.optimizer.name": "sgd"}},
                         "strategy.batch_size": {"choices": [16, 32],
                                                 "when": {"strategy.optimizer.name": ["adam", "sgd"]}}})
    for values in ({"strategy.optimizer.momentum": 0.5, "strategy.batch_size": 16},
                   {"strategy.batch_size": 16, "strategy.optimizer.momentum": 0.5}):
        assert space.point(values) == {**values, "strategy.optimizer.name": "sgd"}
    assert space.point({"strategy.optimizer.momentum": 0.5, "strategy.optimizer.name": "adam"}) is None
    conflicting = parse_space({
        "strategy.optimizer.name": {"choices": ["sgd", "adam"]},
        "strategy.batch_size": {"choices": [16, 32], "when": {"strategy.optimizer.name": "sgd"}},
        "strategy.optimizer.lr": {"low": 0.001, "high": 0.1,
                                  "when": {"strategy.optimizer.name": "adam", "strategy.batch_size": 16}}})
    assert conflicting.point({"strategy.optimizer.lr": 0.01}) is None
    with pytest.raises(ConfigError, match="space key 'strategy.optimizer.lr' can never be sampled") as info:
        check_space(conflicting, BASE)
    assert "\n" not in str(info.value)

def _docs_space() -> dict:
    text = (REPO / "docs" / "tune.md").read_text().split("## The search space", 1)[1]
    return yaml.safe_load(text.split("```yaml", 1)[1].split("```", 1)[0])


@pytest.mark.parametrize("space", ["example", "docs"])
def test_the_shipped_spaces_pass_the_checks_on_the_example_base(space):
    raw = read_yaml(REPO / "examples" / "tune_mnist1d_space.yaml") if space == "example" else _docs_space()
    check_space(parse_space(raw), read_yaml(REPO / "examples" / "tune_mnist1d.yaml"))


@pytest.mark.parametrize("text,expected", [("", "is empty; it maps config keys"), ("# nothing\n", "is empty"),
                                           ("- strategy.optimizer.lr\n", "got a list"),
                                           ("0.1\n", "got a float")])
def test_an_empty_or_non_mapping_space_file_is_refused_as_a_space(tmp_path, capsys, text, expected):
    base, space = write(tmp_path)
    space.write_text(text)
    code = main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: space file {space} ") and expected in err
    assert "config keys to a range or choices" in err and "sections" not in err


def test_the_wilcoxon_pruner_is_built_without_optunas_experimental_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_pruner("wilcoxon")


def test_conditional_key_is_sampled_exactly_when_its_condition_holds():
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        values = space.sample(study.ask())
        assert ("strategy.optimizer.momentum" in values) == (values["strategy.optimizer.name"] == "sgd")
        assert 1e-4 <= values["strategy.optimizer.lr"] <= 0.5
        seen.add(values["strategy.optimizer.name"])
    assert seen == {"sgd", "adam"}


def test_list_choices_and_float_values_survive_the_override_text():
    space = parse_space({"model.hidden": {"choices": [[8], [16, 16]]}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {tuple(space.sample(study.ask())["model.hidden"]) for _ in range(20)}
    assert drawn == {(8,), (16, 16)}
    for value in [1e-05, 0.1, 3, "adam", [16, 16], True]:
        assert yaml.safe_load(flow_yaml(value)) == value  # PyYAML reads a bare 1e-05 as a string
    check_space(space, BASE)


@pytest.mark.parametrize("value", ["09", "010", "0x10", "yes", "1e-8", "null"])
def test_a_string_choice_that_reads_as_another_type_goes_through_set_as_the_same_string(value):
    """A choice '09' was written --set a=09, which the config reader refuses (a leading zero)."""
    from trainlab.config_overrides import apply_overrides

    assert apply_overrides({}, [f"a={flow_yaml(value)}"]) == {"a": value}


def test_a_float_step_that_spans_the_range_up_to_rounding_is_accepted():
    param = parse_space({"strategy.optimizer.momentum": {"low": 0.1, "high": 0.3, "step": 0.2}}).params[0]
    assert (param.low, param.high, param.step) == (0.1, 0.3, 0.2)  # 0.3 - 0.1 = 0.19999999999999998


def test_a_bound_yaml_reads_as_text_is_the_number_written():
    space = parse_space(yaml.safe_load("strategy.optimizer.lr: {low: 1e-4, high: 1e-1, log: true}"))  # YAML 1.1: str
    assert (space.params[0].low, space.params[0].high, space.params[0].kind) == (1e-4, 0.1, "float")
    with pytest.raises(ConfigError, match="'low' must be a number; got 'tiny'"):
        parse_space({"strategy.optimizer.lr": {"low": "tiny", "high": 0.1}})


def test_int_step_and_float_step_ranges_parse_with_their_kinds():
    space = parse_space({"strategy.epochs": {"low": 1, "high": 7, "step": 2},
                         "strategy.regularization.weight_decay": {"low": 0.0, "high": 0.1, "step": 0.03}})
    epochs, decay = space.params
    assert (epochs.kind, decay.kind) == ("int", "float")
    assert epochs.extremes() == [1, 7]
    assert decay.extremes()[1] == pytest.approx(0.09)  # the last grid point <= high
    with pytest.raises(ConfigError, match="type int needs an integer"):
        parse_space({"strategy.epochs": {"low": 1, "high": 7.5, "type": "int"}})


# --------------------------------------------------------------------------- studies

def test_same_seed_gives_the_same_trials_and_results_are_written(tmp_path):
    first = tune(settings(tmp_path / "a", 5, seed=3, pruner="none"))
    second = tune(settings(tmp_path / "b", 5, seed=3, pruner="none"))
    other = tune(settings(tmp_path / "c", 5, seed=4, pruner="none"))
    rows = [read_trials(tmp_path / d / "out") for d in "abc"]
    params = [[{k: r[k] for k in SPACE} for r in table] for table in rows]
    assert params[0] == params[1]
    assert params[0] != params[2]
    assert first["params"] == second["params"] and first["value"] == second["value"]
    assert other["trial"] in range(5)

    out = tmp_path / "a" / "out"
    best = json.loads((out / "best.json").read_text())
    values = [float(r["value"]) for r in rows[0] if r["state"] == "COMPLETE"]
    assert best["value"] == max(values)
    config = load_config(out / "best.yaml")  # ready for trainlab train
    assert config.strategy.optimizer.lr == pytest.approx(best["params"]["strategy.optimizer.lr"])
    assert config.name == "iris-tuned"
    trial_config = load_config(out / "trials" / str(best["trial"]) / "config.yaml")
    assert config.strategy == trial_config.strategy
    report = (out / "report.html").read_text()
    assert report.count("data-figure=") >= 3 and report.count('id="plotly-js-gzip-base64"') == 1
    assert "<script src=" not in report  # plotly.js is inline: no network request
    assert len(report) < 3_000_000  # compressed once, as compare's report (4.9 MB with plotly.js as shipped)
    assert "importances" in best or "note" in best


def test_one_trial_runs_the_queued_base_config(tmp_path):
    best = tune(settings(tmp_path, 1, pruner="none"))
    rows = read_trials(tmp_path / "out")
    assert [(r["state"], r["strategy.optimizer.name"], float(r["strategy.optimizer.lr"])) for r in rows] == \
        [("COMPLETE", "adam", 0.01)]
    assert best["trial"] == 0 and (tmp_path / "out" / "best.yaml").exists()


def test_a_study_that_completes_no_trial_is_an_error_without_claiming_a_best_yaml(tmp_path, capfd):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    code = main(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out), "--timeout", "1e-9"])
    err = capfd.readouterr().err
    assert code == 4
    assert err.splitlines()[-1].startswith("error: no trial of study 'trainlab-base' completed"), err
    assert "results in" not in err and not (out / "best.yaml").exists()
    assert (out / "trials.csv").exists() and (out / "report.html").exists()
    assert "[W " not in err, err  # Optuna's plots log "There are no complete trials." where the report says so


def test_a_study_whose_every_trial_fails_still_writes_its_report(tmp_path, capfd):
    """docs/tune.md: a study that ends without a complete trial writes trials.csv, best.json and report.html;
    a study stopped by its failures (StudyExhausted, raised by a worker) skipped the report."""
    base, space = write(tmp_path, space={"strategy.optimizer.lr": {"low": 1.0e7, "high": 1.0e8, "log": True}})
    out = tmp_path / "out"
    code = main(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out),
                 "--set", "strategy.optimizer.name=sgd", "--pruner", "none"])
    err = capfd.readouterr().err
    assert code == 4 and "error: 2 trials failed (as many as --trials)" in err, err
    assert [r["state"] for r in read_trials(out)] == ["FAIL", "FAIL"]
    assert (out / "report.html").exists() and (out / "best.json").exists()


def _study_with_lock(tmp_path: Path, trials: int) -> tuple[optuna.Study, TuneSettings, FileLock]:
    study = optuna.create_study(direction="maximize")
    return study, settings(tmp_path, trials), FileLock(tmp_path / ".tune.lock")


def test_a_waiting_trial_is_claimed_while_finished_and_running_ones_are_below_the_total(tmp_path):
    study, tune_settings, lock = _study_with_lock(tmp_path, 1)
    study.enqueue_trial({"strategy.optimizer.lr": 0.02})  # e.g. a heartbeat retry's copy
    first = claim_trial(study, tune_settings, lock)
    assert first.number == 0 and first.suggest_float("strategy.optimizer.lr", 1e-4, 0.5) == 0.02
    assert claim_trial(study, tune_settings, lock) is None  # 1 running: the total is claimed


@pytest.mark.parametrize("kind,requeued", [("interrupted", True), ("stale", True), (None, True),
                                           ("diverged", False), ("error", False)])
def test_the_base_config_is_queued_again_only_when_its_trial_was_cut_short(tmp_path, kind, requeued):
    study, tune_settings, lock = _study_with_lock(tmp_path, 3)
    base = {"strategy.optimizer.lr": 0.01}
    first = claim_trial(study, tune_settings, lock, base)
    assert first.user_attrs[ATTR_BASE] and first.suggest_float("strategy.optimizer.lr", 1e-4, 0.5) == 0.01
    if kind is not None:
        first.set_user_attr("fail_kind", kind)
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    second = claim_trial(study, tune_settings, lock, base)
    assert bool(second.user_attrs.get(ATTR_BASE)) == requeued
    claim_trial(study, tune_settings, lock, base)
    assert sum(bool(t.user_attrs.get(ATTR_BASE)) for t in study.trials) == 1 + requeued


def test_a_trial_whose_pid_a_new_process_reuses_is_failed_as_dead(tmp_path):
    """A tune killed as pid 1 of a container, rerun as pid 1 again: the killed trial's pid is alive (it is
    the new worker's own) but names another process, so it is failed, not waited for without end."""
    from optuna.trial import TrialState

    from trainlab.run_lock import process_start, same_process
    from trainlab.tune.claims import fail_dead_workers

    own, start = os.getpid(), process_start(os.getpid())
    assert start is not None and process_start(own) == start and same_process(own, start)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_start(child.pid) not in (None, start) and not same_process(own, process_start(child.pid))
    finally:
        child.kill()
        child.wait()
    study, tune_settings, lock = _study_with_lock(tmp_path, 3)
    claimed = claim_trial(study, tune_settings, lock)
    assert claimed.user_attrs["pid"] == own and claimed.user_attrs["pid_start"] == start
    assert fail_dead_workers(study) == []  # this process: alive
    study._storage.set_trial_user_attr(claimed._trial_id, "pid_start", start - 1)  # an earlier process, same pid
    assert fail_dead_workers(study) == [claimed.number]
    assert study.trials[claimed.number].state == TrialState.FAIL


# a fixed token (another process's draw): a random one would give each pytest-xdist worker another test id
@pytest.mark.parametrize("token", [None, "5857ca39d3144119a8e31fabe8c15d07"], ids=["no-token", "another-token"])
def test_a_running_trial_naming_this_process_that_it_did_not_claim_is_failed_as_dead(tmp_path, token):
    """The pid (and start) a killed worker recorded can match a rerun's own, where /proc says too little to
    tell them apart: a trial this process did not claim (no claim token, or one another process drew) is
    then no trial it runs, so it is failed. The study before this one in the process claimed a trial of the
    same id in a storage whose id() this one's can reuse: what marks a claim is its token, not the ids."""
    import socket

    from optuna.trial import TrialState

    from trainlab.run_lock import process_start
    from trainlab.tune.claims import fail_dead_workers

    earlier, earlier_settings, earlier_lock = _study_with_lock(tmp_path, 3)
    assert claim_trial(earlier, earlier_settings, earlier_lock)._trial_id == 0
    del earlier
    study, tune_settings, lock = _study_with_lock(tmp_path, 3)
    left = study.ask()  # as a killed worker left it: RUNNING, naming this host, pid and start
    attrs = {"host": socket.gethostname(), "pid_start": process_start(os.getpid()), "pid": os.getpid()}
    for key, value in (({"claim": token} if token else {}) | attrs).items():
        left.set_user_attr(key, value)
    claimed = claim_trial(study, tune_settings, lock)
    assert study.trials[left.number].state == TrialState.FAIL
    assert study.trials[claimed.number].state == TrialState.RUNNING
    assert fail_dead_workers(study) == []  # the one it claimed runs here


def test_a_base_config_whose_worker_dies_twice_is_not_queued_a_third_time(tmp_path):
    study, tune_settings, lock = _study_with_lock(tmp_path, 6)
    base = {"strategy.optimizer.lr": 0.01}
    kinds = []
    for kind in ("interrupted", "stale", "interrupted", "stale"):
        trial = claim_trial(study, tune_settings, lock, base)
        kinds.append(bool(trial.user_attrs.get(ATTR_BASE)))
        trial.set_user_attr("fail_kind", kind)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert kinds == [True, True, True, True]  # interruptions never count; the first death does not stop it
    assert not claim_trial(study, tune_settings, lock, base).user_attrs.get(ATTR_BASE)  # died twice: sampled


def test_an_interrupted_base_trial_is_run_again_and_not_sent_to_trainlab_resume(tmp_path, monkeypatch):
    import trainlab.experiment

    real_train = trainlab.experiment.train

    def interrupted(config, out, **kwargs):
        out.mkdir(parents=True)
        raise Interrupted(f"SIGTERM received: stopped at step 3 after writing a checkpoint; continue with: "
                          f"trainlab resume {out}", 15)

    monkeypatch.setattr(trainlab.experiment, "train", interrupted)
    with pytest.raises(Interrupted, match="during trial 0"):
        tune(settings(tmp_path, 3, pruner="none"))
    monkeypatch.setattr(trainlab.experiment, "train", real_train)
    best = tune(settings(tmp_path, 3, pruner="none"))
    rows = read_trials(tmp_path / "out")
    assert rows[0]["state"] == "FAIL" and "trainlab resume" not in rows[0]["fail_reason"]
    assert "SIGTERM received" in rows[0]["fail_reason"]
    again = rows[1]  # the base config, queued again before any sampled trial
    assert (again["state"], again["strategy.optimizer.name"], float(again["strategy.optimizer.lr"]),
            int(again["strategy.batch_size"])) == ("COMPLETE", "adam", 0.01, 32)
    assert best["value"] >= float(again["value"])
    assert len(_finished(rows)) == 3


def test_a_studys_record_leaves_out_keys_added_later_at_their_default(tmp_path):
    """A study recorded before a config key existed must match after the upgrade: such keys at their
    default are not part of the record (as they are not part of a run's hash)."""
    from trainlab.config import ADDED_OPTIONAL_KEYS
    from trainlab.tune.identity import made_with

    settings = TuneSettings(base=str(tmp_path / "base.yaml"), space=str(tmp_path / "space.yaml"),
                            out=str(tmp_path / "out"), trials=2)  # strings from Python: paths as from the CLI
    assert settings.out == tmp_path / "out" and settings.name == "trainlab-base"
    record = made_with(settings, parse_space(SPACE), BASE)
    for section, key in ADDED_OPTIONAL_KEYS:
        assert key not in record["base"][section]
    assert "name" not in record["base"] and "output" not in record["base"]

def test_a_study_refuses_another_space_base_config_or_metric_and_keeps_its_results(tmp_path, capsys):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    command = ["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out), "--pruner", "none"]
    assert main(command) == 0
    before = (out / "trials.csv").read_text(), (out / "best.json").read_text()
    other_space = tmp_path / "other_space.yaml"
    other_space.write_text(yaml.safe_dump({**SPACE, "strategy.optimizer.lr": {"low": 1.0e-4, "high": 0.1,
                                                                               "log": True}}))
    other_base = tmp_path / "other" / "base.yaml"
    other_base.parent.mkdir()
    other_base.write_text(yaml.safe_dump(iris_on_file({**BASE, "strategy": {**BASE["strategy"], "epochs": 3}})))
    capsys.readouterr()
    refusals = [([*command[:3], str(other_space), command[4], "4", *command[6:]],  # --trials 4
                 "another search space (strategy.optimizer.lr.high: was 0.5, now 0.1)"),
                ([command[0], str(other_base), *command[2:]], "another base config (strategy.epochs: was 2, now 3)"),
                ([*command, "--metric", "val_loss", "--direction", "maximize"],
                 "tunes val_accuracy, not --metric val_loss"),
                # val_loss's own direction (minimize) was refused first, as if --direction had been given
                ([*command, "--metric", "val_loss"], "tunes val_accuracy, not --metric val_loss")]
    for args, expected in refusals:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err and "another --out" in err, err
    assert ((out / "trials.csv").read_text(), (out / "best.json").read_text()) == before


def test_one_out_folder_holds_one_study(tmp_path, capsys):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    command = ["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(out), "--pruner", "none"]
    assert main(command) == 0
    before = (out / "trials.csv").read_text()
    capsys.readouterr()
    assert main([*command, "--study", "other"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{out} holds the trials of study 'trainlab-base'; study 'other' needs another --out" in err
    assert (out / "trials.csv").read_text() == before
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    assert optuna.get_all_study_names(storage) == ["trainlab-base"]


@pytest.mark.parametrize("storage, advice", [(None, "rerun with another --out"),
                                              ("sqlite", "rerun with another --study name (and --out)")])
def test_another_direction_is_refused_with_advice_that_works_for_the_storage(tmp_path, capsys, storage, advice):
    """The journal (the default) holds one study per --out, which refuses another --study: the refusal
    advised --study there too."""
    base, space = write(tmp_path)
    command = ["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out"),
               "--pruner", "none", "--quiet"]
    if storage:
        command += ["--storage", f"sqlite:///{tmp_path / 'study.db'}"]
    assert main(command) == 0
    capsys.readouterr()
    store = tmp_path / ("study.db" if storage else "out/study.journal")
    before = store.read_bytes()
    assert main([*command, "--direction", "minimize"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: study 'trainlab-base' exists and is to maximize; --direction minimize needs a new "
                   f"study: {advice}\n"), err
    assert store.read_bytes() == before  # the refused command appended a creation of the study to its journal


def test_a_study_folder_that_cannot_be_made_is_one_error_line_with_train_s_exit_code(tmp_path, capsys):
    base, space = write(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    for out, code in ((tmp_path / "file" / "study", 2), (tmp_path / "missing" / "x", 0)):
        assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(out),
                     "--pruner", "none"]) == code
        err = capsys.readouterr().err
        if code:
            assert err == f"error: cannot create study folder {out}: Not a directory\n", err


def test_a_study_made_before_the_record_is_refused_when_its_trials_lie_outside_the_space(tmp_path, capsys):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.create_study(study_name="trainlab-base", storage=storage, direction="maximize")
    study.add_trial(optuna.create_trial(params={"strategy.optimizer.lr": 0.9}, value=0.5, distributions={
        "strategy.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}))
    assert main(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out)]) == 2
    assert "its trial 0 has strategy.optimizer.lr=0.9, not a point of" in capsys.readouterr().err


def test_hopeless_learning_rates_are_pruned_with_their_epoch(tmp_path):
    space = {"strategy.optimizer.lr": {"low": 1.0e-7, "high": 0.05, "log": True}}
    base = {**BASE, "strategy": {**BASE["strategy"], "epochs": 4}}
    result = tune(settings(tmp_path, 12, space=space, base=base, pruner="median", seed=0))
    rows = read_trials(tmp_path / "out")
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned, rows
    for row in pruned:
        epoch = int(row["pruned_at_epoch"])
        assert 1 <= epoch < 4
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert summary["epochs_run"] == epoch and "pruned" in summary["stop_reason"]
    # median pruning, written out: the trial's best value so far is below the median of the
    # earlier complete trials' values at that epoch (one worker: "earlier" = lower number)
    study = optuna.load_study(study_name=result["study"], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "study.journal"))))
    for row in pruned:
        trial = study.trials[int(row["number"])]
        epoch = int(row["pruned_at_epoch"])
        complete = [t for t in study.trials[:trial.number] if t.state.name == "COMPLETE"]
        assert len(complete) >= 5  # the pruner's startup trials
        median = float(np.median([t.intermediate_values[epoch] for t in complete]))
        assert max(v for s, v in trial.intermediate_values.items() if s <= epoch) < median
    assert len(rows) == 12


def test_diverging_trials_fail_with_their_reason_and_the_study_goes_on(tmp_path):
    base = {**BASE, "data": {"source": "diabetes"}, "metrics": ["mse"],
            "strategy": {**BASE["strategy"], "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}}}
    space = {"strategy.optimizer.lr": {"choices": [0.001, 0.002, 0.003, 1.0e+6]}}
    result = tune(settings(tmp_path, 4, space=space, base=base, pruner="none", metric="val_mse",
                           direction="minimize"))
    rows = read_trials(tmp_path / "out")
    failed = [r for r in rows if r["state"] == "FAIL"]
    done = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]
    assert len(done) == 4
    assert failed and all(float(r["strategy.optimizer.lr"]) == 1e6 for r in failed)
    assert all("non-finite" in r["fail_reason"] or "diverg" in r["fail_reason"] for r in failed), failed
    assert result["params"]["strategy.optimizer.lr"] < 1


def test_every_trial_failing_stops_the_study_with_an_error(tmp_path):
    base = {**BASE, "data": {"source": "diabetes"}, "metrics": ["mse"],
            "strategy": {**BASE["strategy"], "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}}}
    space = {"strategy.optimizer.lr": {"low": 1.0e+6, "high": 1.0e+7, "log": True}}
    with pytest.raises(Exception, match="trials failed"):
        tune(settings(tmp_path, 2, space=space, base=base, pruner="none", metric="val_mse",
                      direction="minimize"))
    assert [r["state"] for r in read_trials(tmp_path / "out")] == ["FAIL", "FAIL"]


# --------------------------------------------------------------------------- processes

def _command(base: Path, space: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trainlab.cli", "tune", str(base), "--space", str(space), "--trials", str(trials),
            "--out", str(out), "--quiet", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": with_repo_first(REPO)}


def _running_trials(out: Path) -> str:
    """The study's RUNNING trials and whether the pid each names is alive: why a worker would wait for them."""
    from trainlab.run_lock import pid_alive, process_start

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage)
    return "; ".join(f"trial {t.number} {t.user_attrs} alive={pid_alive(int(t.user_attrs.get('pid', 0)))} "
                     f"start now={process_start(int(t.user_attrs.get('pid', 0)))}"
                     for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,))) or "none running"


def _finished(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]


@pytest.mark.slow
def test_two_processes_on_one_folder_end_with_exactly_the_total(tmp_path):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    commands = [_command(base, space, out, 7, "--jobs", "2"), _command(base, space, out, 7)]  # 3 workers
    workers = [subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True) for command in commands]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    rows = read_trials(out)
    numbers = [int(r["number"]) for r in rows]
    assert len(_finished(rows)) == 7 and len(rows) == 7
    assert sorted(numbers) == list(range(7))


@pytest.mark.slow
def test_allow_code_reaches_the_jobs_workers(tmp_path):
    """A spawned worker starts with the default code policy: --allow-code (and the base config's folder as
    the user's code) must be handed to it, or every trial of a config naming installed code is refused."""
    base_config = {**BASE, "strategy": {**BASE["strategy"], "epochs": 1,
                                        "optimizer": {"name": "torch.optim:SGD", "lr": 0.05}}, "runtime": {}}
    base, space = write(tmp_path, base=base_config, space={"strategy.optimizer.lr": {"low": 0.01, "high": 0.1}})
    out = tmp_path / "out"
    command = _command(base, space, out, 2, "--jobs", "2")
    done = subprocess.run([*command[:3], "--allow-code", *command[3:]], env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["state"] for r in read_trials(out)] == ["COMPLETE", "COMPLETE"]
    # each worker trains with the cores shared out, as compare's workers (it took torch's default, all of
    # them: 6x slower trials on 2 cores); the base config sets no runtime.num_threads
    from trainlab.runtime import cores, threads_per_worker

    threads = {json.loads(p.read_text())["environment"]["threads"] for p in out.glob("trials/*/summary.json")}
    assert threads == {threads_per_worker(2)} and (cores() < 2 or threads == {cores() // 2})


@pytest.mark.slow
def test_sigkill_then_rerun_continues_to_the_total(tmp_path):
    slow = {**BASE, "strategy": {**BASE["strategy"], "epochs": 3}}
    base, space = write(tmp_path, base=slow)
    out = tmp_path / "out"
    worker = subprocess.Popen(_command(base, space, out, 8, "--pruner", "none"), env=_env(),
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "trials" / "3").exists() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not (out / "trials.csv").exists()  # killed mid-study, before the results
    try:
        rerun = subprocess.run(_command(base, space, out, 8, "--pruner", "none"), env=_env(), capture_output=True,
                               text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the rerun did not end: {_running_trials(out)}; its stderr: {exc.stderr!r}")
    assert rerun.returncode == 0, rerun.stderr
    rows = read_trials(out)
    assert len(_finished(rows)) == 8
    stale = [r for r in rows if r["state"] == "FAIL"]
    assert len(stale) <= 1 and all("died" in r["fail_reason"] for r in stale)
    assert not [r for r in rows if r["state"] == "RUNNING"]


@pytest.mark.slow
def test_postgres_two_workers_share_one_study(tmp_path):
    url = postgres_url()
    base, space = write(tmp_path)
    study = f"test-{uuid.uuid4().hex[:12]}"
    workers = [subprocess.Popen(_command(base, space, tmp_path / f"out{i}", 8, "--storage", url, "--study", study),
                                env=_env(), stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    loaded = optuna.load_study(study_name=study, storage=url.replace("postgresql://", "postgresql+psycopg://"))
    states = [t.state.name for t in loaded.trials]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 8 and len(states) == 8
    assert sorted(t.number for t in loaded.trials) == list(range(8))
    # each worker's run folders are in its own --out; both wrote results of the whole study
    run_folders = sorted(int(p.parent.name) for p in tmp_path.glob("out*/trials/*/summary.json"))
    assert run_folders == [t.number for t in loaded.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(read_trials(tmp_path / "out0")) == len(read_trials(tmp_path / "out1")) == 8
    assert not math.isnan(loaded.best_value)


def test_refit_says_missing_compare_only_for_compare_itself(monkeypatch):
    """Any ImportError was reported as "this installation lacks trainlab.compare", hiding its cause (a
    module failing to import mid-edit, a missing dependency of compare)."""
    import builtins

    from trainlab.tune import refit

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "trainlab.compare":
            raise ModuleNotFoundError("No module named 'scipy'", name="scipy")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        refit.check_available()
    monkeypatch.setattr(builtins, "__import__", real_import)
    monkeypatch.setitem(sys.modules, "trainlab.compare", None)  # the package without it
    with pytest.raises(ConfigError, match="--refit-seeds needs trainlab.compare"):
        refit.check_available()


def test_refit_seeds_without_trainlab_compare_is_refused_before_any_trial(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trainlab.compare", None)  # import trainlab.compare: ImportError
    with pytest.raises(ConfigError, match="--refit-seeds needs trainlab.compare"):
        tune(settings(tmp_path, 2, refit_seeds=2))
    assert not (tmp_path / "out").exists()


def test_refit_seeds_compares_tuned_with_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the base (batch_size 8) is no point of the space, so the best trial is no base config: tuned vs base
    off_space = {**BASE, "strategy": {**BASE["strategy"], "batch_size": 8}}
    best = tune(settings(tmp_path, 3, base=off_space, refit_seeds=2, pruner="none", out=Path("out")))  # --out relative
    assert best["params"]["strategy.batch_size"] != 8
    refit = best["refit"]
    assert refit["metric"] == "test_accuracy"
    assert refit["dir"] == str((tmp_path / "out" / "refit").resolve())  # absolute, as run_dir is
    on_disk = json.loads((tmp_path / "out" / "best.json").read_text())["refit"]["rows"]
    assert sorted(row["rank"] for row in on_disk) == [1, 2]  # numbers, not the CSV's text
    assert all(isinstance(row["mean"], float) and isinstance(row["runs"], int) for row in on_disk)
    assert sorted(row["strategy"] for row in refit["rows"]) == ["base", "tuned"]
    tuned_runs = sorted((tmp_path / "out" / "refit").glob("runs/*/tuned/seed-*/summary.json"))
    assert len(tuned_runs) == 2
    tuned = load_config(tuned_runs[0].parent / "config.yaml")
    assert tuned.strategy.optimizer.lr == pytest.approx(best["params"]["strategy.optimizer.lr"])
    assert "Refit over seeds" in (tmp_path / "out" / "report.html").read_text()


def test_refit_rows_keep_numbers_typed_and_names_as_text():
    cells = {"task": "123", "rank": "1", "mean": "0.93", "p": "", "verdict": "better", "target_reached": "True",
             "strategy": "tuned"}
    assert {k: _typed(k, v) for k, v in cells.items()} == {
        "task": "123", "rank": 1, "mean": 0.93, "p": None, "verdict": "better", "target_reached": True,
        "strategy": "tuned"}


def test_the_base_config_is_the_first_trial_when_it_lies_in_the_space(tmp_path, capsys):
    best = tune(settings(tmp_path / "in", 3, pruner="none"))
    rows = read_trials(tmp_path / "in" / "out")
    first = rows[0]
    assert (first["strategy.optimizer.name"], float(first["strategy.optimizer.lr"]),
            int(first["strategy.batch_size"]), first["strategy.optimizer.momentum"]) == ("adam", 0.01, 32, "")
    assert best["value"] >= float(first["value"])
    outside = {**SPACE, "strategy.batch_size": {"choices": [8, 16]}}  # the base's 32 is not a point
    told = settings(tmp_path / "out", 2, pruner="none", space=outside)
    tune(dataclasses.replace(told, quiet=False))
    assert read_trials(tmp_path / "out" / "out")[0]["strategy.batch_size"] in ("8", "16")
    assert ("note: the base config is no point of the space (its strategy.batch_size 32 is outside the space's "
            "choices 8, 16), so it is not trial 0: the best trial may score below it") in capsys.readouterr().err
    # plain sgd with momentum unset: torch's default momentum 0 lies in [0, 0.9], so the base is trial 0
    sgd = {**BASE, "strategy": {**BASE["strategy"], "optimizer": {"name": "sgd", "lr": 0.01}}}
    tune(settings(tmp_path / "sgd", 1, pruner="none", base=sgd))
    first = read_trials(tmp_path / "sgd" / "out")[0]
    assert (first["strategy.optimizer.name"], float(first["strategy.optimizer.momentum"])) == ("sgd", 0.0)
    assert float(first["strategy.optimizer.lr"]) == 0.01


def test_a_metric_the_base_config_does_not_compute_is_refused_before_any_trial(tmp_path, capsys):
    base, space = write(tmp_path)
    code = main(["tune", str(base), "--space", str(space), "--trials", "2", "--metric", "val_f1",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--metric 'val_f1' is not recorded by" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_metrics_that_are_not_one_number_are_left_out_of_the_best_trial_lines(tmp_path, capsys):
    base, space = write(tmp_path, {**BASE, "metrics": ["accuracy", "confusion_matrix", "f1_per_class"]})
    code = main(["tune", str(base), "--space", str(space), "--trials", "2", "--seed", "0",
                 "--out", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert code == 0 and (tmp_path / "out" / "report.html").is_file()
    lines = (printed.out + printed.err).splitlines()
    test_line = next(line for line in lines if line.strip().startswith("test:"))
    assert re.fullmatch(r"  test: loss [0-9.e-]+, accuracy [0-9.e-]+", test_line)
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert len(best["test"]["confusion_matrix"]) == 3  # the record keeps them
    from trainlab.tune.results import numbers_line
    assert numbers_line({"loss": None, "accuracy": 0.5, "flag": True}) == "loss nan, accuracy 0.5"


@pytest.mark.parametrize(("metrics", "metric", "valid"), [
    (["accuracy", "confusion_matrix"], "val_confusion_matrix", "val_loss, val_accuracy"),  # not one number
    (None, "val_r2", "val_loss, val_accuracy, val_precision, val_recall, val_f1"),  # iris' own defaults
])
def test_tune_train_and_compare_apply_one_rule_for_the_metrics_a_run_records(tmp_path, capsys, metrics, metric,
                                                                             valid):
    base, space = write(tmp_path, {**BASE, "metrics": metrics})
    code = main(["tune", str(base), "--space", str(space), "--trials", "2", "--metric", metric,
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"--metric '{metric}' is not recorded by" in err and f"(its validation metrics: {valid})" in err
    assert not (tmp_path / "out").exists()
    assert main(["train", str(base), "--target", f"{metric}=0.5", "--out", str(tmp_path / "run")]) == 2
    assert f"(its validation metrics: {valid})" in capsys.readouterr().err
    (tmp_path / "one.yaml").write_text(yaml.safe_dump({"strategies": {"adam": None}}))
    assert main(["compare", str(base), "--strategies", str(tmp_path / "one.yaml"), "--seeds", "1",
                 "--target", f"{metric}=0.5", "--out", str(tmp_path / "cmp")]) == 2
    assert f"--target '{metric}' is not recorded by the runs of task 'base'" in capsys.readouterr().err


def test_a_validation_metric_without_a_validation_split_is_refused_before_anything_runs(tmp_path, capsys):
    base, space = write(tmp_path, {**BASE, "data": {"source": "iris", "val_fraction": 0.0}})
    for argv in (["tune", str(base), "--space", str(space), "--trials", "1", "--metric", "val_loss",
                  "--out", str(tmp_path / "out")],
                 ["train", str(base), "--target", "val_accuracy=0.9", "--out", str(tmp_path / "run")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "needs validation records, but" in err and "has no validation split: set data.val_fraction > 0" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_set_overrides_the_base_config_of_every_trial_and_of_best_yaml(tmp_path, capsys):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    args = ["tune", str(base), "--space", str(space), "--trials", "2", "--pruner", "none", "--out", str(out)]
    assert main([*args, "--set", "strategy.epochs=1", "--set", "model.hidden=[5]"]) == 0
    for trial in (out / "trials").iterdir():
        config = load_config(trial / "config.yaml")
        assert config.strategy.epochs == 1 and config.model.model_dump()["hidden"] == [5]
    best = load_config(out / "best.yaml")
    assert best.strategy.epochs == 1
    capsys.readouterr()
    assert main([*args, "--set", "strategy.epochs=3", "--set", "model.hidden=[5]"]) == 2  # another base config
    assert "(strategy.epochs: was 1, now 3); rerun with the study's own (base file and --set)" \
        in capsys.readouterr().err
    assert main([*args, "--set", "strategy.epoch=3"]) == 2
    assert "unknown config key 'strategy.epoch'; did you mean 'epochs'?" in capsys.readouterr().err


def test_best_params_hold_config_values_so_a_list_choice_is_a_list(tmp_path):
    space = {"model.hidden": {"choices": [[8], [4, 4]]}}
    base, space_file = write(tmp_path, space=space)
    best = tune(TuneSettings(base=base, space=space_file, trials=2, out=tmp_path / "out", pruner="none", quiet=True))
    assert best["params"]["model.hidden"] in ([8], [4, 4])
    saved = json.loads((tmp_path / "out" / "best.json").read_text())
    assert saved["params"]["model.hidden"] == best["params"]["model.hidden"]
    header = (tmp_path / "out" / "best.yaml").read_text().splitlines()[1]  # was '"[4, 4]"', Optuna's stored text
    assert header == f"# params: {json.dumps({'model.hidden': best['params']['model.hidden']})}"


def test_a_journal_cut_off_by_a_crash_is_repaired_and_the_study_reads_on(tmp_path):
    """A torn last line (a crash mid-append) and a line glued onto one: moved aside; Optuna reads the rest."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from trainlab.tune.storage import repair_journal

    journal = tmp_path / "study.journal"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(storage=storage, study_name="s")
    for value in (3.0, 1.0, 2.0):
        trial = study.ask()
        study.tell(trial, value)
    intact = journal.read_bytes()
    glued = b'{"op_code": 5, "worker' + b'{"op_code": 0, "study_name": "s2"}\n'  # a rerun appended onto a torn tail
    journal.write_bytes(intact + glued + b'{"op_code": 4, "trial_id": 9, "sta')  # and its own append torn
    assert repair_journal(journal) == 2
    assert journal.read_bytes() == intact
    aside = list(tmp_path.glob("study.journal.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == glued + b'{"op_code": 4, "trial_id": 9, "sta'
    reread = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert [t.value for t in reread.trials] == [3.0, 1.0, 2.0] and reread.best_value == 1.0
    assert repair_journal(journal) == 0 and repair_journal(tmp_path / "none.journal") == 0


def test_an_append_after_a_killed_writers_fragment_sets_the_fragment_aside_and_keeps_its_own_record(tmp_path):
    """A worker SIGKILLed mid-append left a line without its newline; a live worker's next append under the
    lock moves that fragment aside and writes its record whole. Before, the record was glued onto the
    fragment and the next open's repair moved the whole line aside: a finished trial lost."""
    from optuna.storages.journal import JournalStorage

    from trainlab.tune.storage import WholeRecordJournal, journal_lock, repair_journal

    journal = tmp_path / "study.journal"
    storage = JournalStorage(WholeRecordJournal(str(journal), lock_obj=journal_lock(journal)))
    study = optuna.create_study(storage=storage, study_name="s")
    study.tell(study.ask(), 1.0)
    fragment = b'{"op_code":4,"worker_id":"dead","trial_id":'
    with journal.open("ab") as torn:
        torn.write(fragment)
    study.tell(study.ask(), 0.5)
    assert journal.read_bytes().endswith(b"\n") and fragment not in journal.read_bytes()
    assert [path.read_bytes() for path in tmp_path.glob("study.journal.damaged-*")] == [fragment]
    assert repair_journal(journal) == 0
    reread = optuna.load_study(study_name="s", storage=JournalStorage(WholeRecordJournal(str(journal))))
    assert [t.value for t in reread.trials] == [1.0, 0.5]


def test_a_second_tune_in_one_process_after_its_out_folder_was_deleted_starts_a_new_study(tmp_path):
    """The storage is opened once per process, but not past its file: a notebook that deletes the out folder
    and tunes again got the first study's storage, reading a journal that was gone (FileNotFoundError)."""
    import shutil

    first = tune(settings(tmp_path, 1))
    shutil.rmtree(tmp_path / "out")
    second = tune(settings(tmp_path, 1))
    assert second["trial"] == 0 and second["params"] == first["params"]
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    reread = JournalStorage(JournalFileBackend(str(tmp_path / "out" / "study.journal")))
    study = optuna.load_study(study_name="trainlab-base", storage=reread)  # the new file holds the second study
    assert [t.value for t in study.trials] == [second["value"]]


def test_the_journal_is_opened_by_its_absolute_path_so_a_dead_workers_lock_can_be_broken(tmp_path, monkeypatch):
    """Optuna's journal lock is a symlink to the path it is given, and its stale-lock check follows the link
    from the journal's folder: a relative --out (the default tunes/<stem>) left a lock nothing could break."""
    from optuna.storages.journal import JournalFileSymlinkLock

    from trainlab.tune import storage as storage_module

    monkeypatch.chdir(tmp_path)
    relative = settings(Path("rel"), 1)  # base and space written under rel/, --out rel/out
    opened = storage_module._open_storage(relative)
    path = Path(opened._backend._file_path)
    assert path.is_absolute() and path == tmp_path / "rel" / "out" / "study.journal"
    lock = JournalFileSymlinkLock(str(path))
    assert lock.acquire()
    target = Path(os.readlink(str(path) + ".lock"))
    assert (path.parent / target).exists()  # what the stale check stats: it resolves, so a dead holder's lock ages out
    lock.release()


def test_the_journal_lock_of_a_killed_worker_is_free_at_once(tmp_path):
    """A worker killed while appending to the journal holds its lock no longer (Optuna's default symlink
    lock held the next worker 30 seconds); while its holder lives, another acquire waits."""
    import threading

    from trainlab.tune.storage import journal_lock

    journal = tmp_path / "study.journal"
    journal.touch()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from trainlab.tune.storage import journal_lock\n"
                               "lock = journal_lock(Path(sys.argv[1]))\nlock.acquire(); print('held', flush=True); time.sleep(60)",
                               str(journal)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock, got = journal_lock(journal), threading.Event()
        waiter = threading.Thread(target=lambda: (lock.acquire(), got.set()), daemon=True)
        waiter.start()
        assert not got.wait(1.0)  # held by the live process
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert got.wait(5.0)  # free as soon as its holder died
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_worker_waiting_for_another_hosts_trial_says_which_it_waits_for(tmp_path, capsys):
    """With the total claimed, a worker waits for the running trials (one may fail and free a slot) and
    names them, their pid and host, once; here until its deadline, as the trial's host is another machine."""
    from trainlab.tune.study import prepare, run_trials, study_for

    tune_settings = dataclasses.replace(settings(tmp_path, 1), quiet=False)
    space, base_raw = prepare(tune_settings)
    elsewhere = study_for(tune_settings).ask()
    for key, value in (("host", "other-machine"), ("pid_start", 1), ("pid", 4242)):
        elsewhere.set_user_attr(key, value)
    started = time.time()
    run_trials(tune_settings, space, base_raw, deadline=time.time() + 2.5)
    assert time.time() - started >= 2.0  # waited: a trial of a live worker on another host
    waits = [line for line in capsys.readouterr().err.splitlines() if "waiting for" in line]
    assert waits == [f"no trial to claim for now; waiting for trial {elsewhere.number} (pid 4242 on other-machine)"]


def test_a_trial_whose_worker_died_between_recording_its_pid_and_its_host_is_failed(tmp_path):
    """A worker killed mid-claim can leave a RUNNING trial with a pid but no host: it is this host's (a
    worker records the pid last now), so its dead pid fails it; read as another host's, a rerun waited
    for it without end."""
    from optuna.trial import TrialState

    study, tune_settings, lock = _study_with_lock(tmp_path, 2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = study.ask()
    left.set_user_attr("pid", dead.pid)
    claimed = claim_trial(study, tune_settings, lock)
    assert study.trials[left.number].state == TrialState.FAIL
    assert "died" in study.trials[left.number].user_attrs["fail_reason"]
    assert claimed is not None and study.trials[claimed.number].state == TrialState.RUNNING


@pytest.mark.slow
def test_ctrl_c_while_the_jobs_workers_start_up_is_one_error_line_and_results_that_match_the_study(tmp_path):
    """A Ctrl-C (SIGINT to the whole process group) while the spawned workers import: they are born with
    SIGINT blocked, so it reaches each in its entry point, not in Python's start-up (a traceback per
    worker); the tune process says it once, and trials.csv agrees with the journal."""
    base, space = write(tmp_path, {**BASE, "strategy": {**BASE["strategy"], "epochs": 500}})
    out = tmp_path / "out"
    tune = subprocess.Popen(_command(base, space, out, 4, "--jobs", "2", "--pruner", "none"), env=_env(),
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    children = Path(f"/proc/{tune.pid}/task/{tune.pid}/children")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and tune.poll() is None and len(children.read_text().split()) < 2:
            time.sleep(0.01)  # until both workers are spawned
        assert tune.poll() is None and len(children.read_text().split()) >= 2, (
            tune.stderr.read() if tune.poll() is not None else "its two workers did not start within 120 s")
        os.killpg(tune.pid, signal.SIGINT)
        _, err = tune.communicate(timeout=120)
    finally:  # a tune left running by a failure is killed with its workers (its stderr read then cannot block)
        if tune.poll() is None:
            os.killpg(tune.pid, signal.SIGKILL)
            print(tune.communicate()[1], file=sys.stderr)
    assert tune.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    rows = read_trials(out) if (out / "trials.csv").exists() else []
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.load_study(study_name="trainlab-base", storage=storage)
    assert [row["state"] for row in rows] == [t.state.name for t in study.trials]
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)


@pytest.mark.parametrize("marker, what", [("leaderboard.json", "a comparison (trainlab compare)"),
                                          ("run.json", "a trainlab run folder (trainlab train)")])
def test_tune_refuses_an_out_holding_another_commands_results(tmp_path, capsys, marker, what):
    """compare and tune each write report.html: pointed at the other's folder, tune replaced its report."""
    base, space = write(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / marker).write_text("{}")
    (out / "report.html").write_text("the comparison's")
    code = main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(out)])
    assert code == 2 and capsys.readouterr().err.strip() == (
        f"error: --out {out} holds {what}; trainlab tune writes its own results (and report.html) there: give "
        "another --out")
    assert sorted(p.name for p in out.iterdir()) == sorted([marker, "report.html"])
    assert (out / "report.html").read_text() == "the comparison's"


def test_the_best_trials_damaged_summary_leaves_its_figures_out_of_best_json(tmp_path):
    """best.json took the best trial's val/test from its summary.json, read unbounded, and a damaged one
    (a torn write, a link) raised out of the study's results: now the figures are left out."""
    from trainlab.tune.results import write_results

    run = tmp_path / "trial-0"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**BASE, "name": "base-trial0"}))
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.create_trial(params={"strategy.optimizer.lr": 0.1}, value=0.9, user_attrs={"run_dir": str(run)},
                                        distributions={"strategy.optimizer.lr": optuna.distributions.FloatDistribution(0.01, 0.5)}))
    for damage in ('{"val": {"accuracy": 0.9', '[1, 2]', None):
        (run / "summary.json").unlink(missing_ok=True)
        if damage is None:
            (run / "summary.json").symlink_to(tmp_path / "trial-0" / "config.yaml")
        else:
            (run / "summary.json").write_text(damage)
        best = write_results(study, tmp_path, ["strategy.optimizer.lr"], "val_accuracy", 0)
        assert best["trial"] == 0 and best["val"] is None and best["test"] is None
        assert (tmp_path / "best.yaml").exists()


def test_the_results_files_come_from_one_reading_of_the_study(tmp_path, monkeypatch):
    """Each results file read the study itself: a trial that another worker (another machine on the same
    storage) finished between the reads was RUNNING in trials.csv and the best trial in best.json. Now the
    four come from one reading."""
    from trainlab.tune.results import write_results

    lr = optuna.distributions.FloatDistribution(0.01, 0.5)
    study = optuna.create_study(direction="maximize")
    for number, value in ((0, 0.5), (1, None)):
        run = tmp_path / f"trial-{number}"
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({**BASE, "name": f"base-trial{number}"}))
        state = optuna.trial.TrialState.RUNNING if value is None else optuna.trial.TrialState.COMPLETE
        study.add_trial(optuna.create_trial(state=state, params={"strategy.optimizer.lr": 0.1}, value=value,
                                            distributions={"strategy.optimizer.lr": lr},
                                            user_attrs={"run_dir": str(run)}))
    reads = []
    read = optuna.Study.get_trials

    def finishing_meanwhile(self, *args, **kwargs):  # the other worker tells trial 1 after the first read
        trials = read(self, *args, **kwargs)
        if self is study and not reads:
            reads.append(1)
            study._storage.set_trial_state_values(study.trials[1]._trial_id, optuna.trial.TrialState.COMPLETE,
                                                  [0.9])
        return trials

    monkeypatch.setattr(optuna.Study, "get_trials", finishing_meanwhile)
    best = write_results(study, tmp_path, ["strategy.optimizer.lr"], "val_accuracy", 0)
    with open(tmp_path / "trials.csv") as handle:
        states = [row["state"] for row in csv.DictReader(handle)]
    assert states == ["COMPLETE", "RUNNING"] and best["trial"] == 0 and best["value"] == 0.5
    assert best["counts"]["RUNNING"] == 1 and (tmp_path / "best.yaml").read_text().startswith("# best trial 0 ")


def test_the_results_of_a_study_holding_an_out_of_range_trial_are_written(tmp_path):
    """Review: the one-reading snapshot re-validated every trial, and a trial Optuna let in out of its range
    (an enqueue by another tool: a warning only) stopped every results file from being written."""
    from trainlab.tune.results import write_results

    run = tmp_path / "trial-0"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**BASE, "name": "base-trial0"}))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"strategy.optimizer.lr": 5.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's own out-of-range warning
        trial = study.ask()
        trial.suggest_float("strategy.optimizer.lr", 0.01, 0.5)
        trial.set_user_attr("run_dir", str(run))
        study.tell(trial, 0.9)
    best = write_results(study, tmp_path, ["strategy.optimizer.lr"], "val_accuracy", 0)
    assert best["trial"] == 0 and best["params"] == {"strategy.optimizer.lr": 5.0}
    assert (tmp_path / "trials.csv").read_text().splitlines()[1].endswith(",5.0")


def test_two_fragments_set_aside_within_a_second_are_both_kept(tmp_path):
    """Review: the set-aside file was named by the second alone, so a second fragment overwrote the first."""
    from trainlab.tune.storage import repair_journal

    journal = tmp_path / "study.journal"
    journal.write_bytes(b'{"op_code": 0, "study_name": "s"}\n{"op_code": 4, "tr')
    assert repair_journal(journal) == 1
    journal.write_bytes(journal.read_bytes() + b'{"op_code": 5, "wo')
    assert repair_journal(journal) == 1
    assert sorted(p.read_bytes() for p in tmp_path.glob("study.journal.damaged-*")) == [
        b'{"op_code": 4, "tr', b'{"op_code": 5, "wo']
