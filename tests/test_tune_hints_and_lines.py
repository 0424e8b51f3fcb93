"""trainlab tune's words: the whole-numbers hint of a refused space key only where the value was refused for
being a fraction, the --timeout line last in the summary, and the results line naming the files written."""

from __future__ import annotations

import pytest

from tests.test_tune import BASE, write
from trainlab.cli import main
from trainlab.errors import ConfigError
from trainlab.tune.results import results_line
from trainlab.tune.space import check_space, parse_space

HINT = "takes whole numbers: search it as an int range"


def refusal(space: dict, base: dict = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        check_space(parse_space(space), base)
    return str(caught.value)


def test_a_float_refused_for_another_reason_gets_no_whole_numbers_hint():
    """Adam has no home for decoupled weight decay: 0.01 is refused for the optimizer, and 0 (0.01 rounded)
    passes only because no decay is no decay. The hint used to follow from that rounded value passing."""
    message = refusal({"strategy.regularization.weight_decay": {"low": 0.01, "high": 0.1}})
    assert "the config refuses strategy.regularization.weight_decay=0.01" in message
    assert "has no home in optimizer 'adam'" in message
    assert HINT not in message, message


@pytest.mark.parametrize("space,refused", [
    ({"strategy.epochs": {"low": 2, "high": 6, "type": "float"}},
     "config key 'strategy.epochs': must be a whole number; got 3.2"),
    ({"strategy.early_stopping.patience": {"low": 2, "high": 6, "type": "float"}},
     "config key 'strategy.early_stopping.patience': must be a whole number; got 3.2"),
    # a component's option, checked against its factory's annotation, not by the schema
    ({"strategy.schedule.T_mult": {"low": 1, "high": 3, "type": "float"}},
     "option 'T_mult' must be a whole number; got 1.6"),
    # the config's own validator, in its own words
    ({"strategy.batch_size": {"low": 15.5, "high": 31.5}},
     "config key 'strategy.batch_size': must be a positive int or 'full'; got 15.5"),
    # ... which refuses a whole float too: {low: 8, high: 64.5} is a float range, refused at its low 8.0 (the
    # hint was left out there)
    ({"strategy.batch_size": {"low": 8, "high": 64.5}},
     "config key 'strategy.batch_size': must be a positive int or 'full'; got 8.0"),
], ids=["schema", "nested-schema", "component-option", "own-validator", "own-validator-whole-float"])
def test_a_float_refused_for_being_a_fraction_gets_the_whole_numbers_hint(space, refused):
    base = BASE
    if "strategy.schedule.T_mult" in space:
        base = {**BASE, "strategy": {**BASE["strategy"], "schedule": {"name": "cosine_restarts", "T_0": 2}}}
    message = refusal(space, base)
    key = next(iter(space))
    assert message.endswith(f"'{key}' {HINT} (integer low and high, without type: float)"), message
    assert refused in message, message


def test_the_results_line_names_every_results_file_written(tmp_path):
    """The files in docs/tune.md's table that DIR holds, importances.json included; best.yaml only if written."""
    for name in ["best.json", "trials.csv", "importances.json", "report.html"]:
        (tmp_path / name).write_text("{}")
    assert results_line(tmp_path) == f"results in {tmp_path}: best.json, trials.csv, importances.json, report.html"
    (tmp_path / "best.yaml").write_text("name: x\n")
    assert results_line(tmp_path) == \
        f"results in {tmp_path}: best.yaml, best.json, trials.csv, importances.json, report.html"


def _timed_out_study(tmp_path, capfd) -> tuple[str, str]:
    """A study of 1 complete trial continued to 3 with a --timeout that passes before the next trial starts."""
    base, space = write(tmp_path)
    out = tmp_path / "out"
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(out)]) == 0
    capfd.readouterr()
    assert main(["tune", str(base), "--space", str(space), "--trials", "3", "--out", str(out),
                 "--timeout", "1e-9"]) == 0
    captured = capfd.readouterr()
    return captured.out, captured.err


def test_the_timeout_line_is_the_summarys_last_line(tmp_path, capfd):
    """docs/tune.md: the summary (stderr) ends with the --timeout line; the results line follows on stdout."""
    out, err = _timed_out_study(tmp_path, capfd)
    assert err.splitlines()[-1].startswith("--timeout 1e-09 s passed: no further trial was started, and the "
                                           "study has 1 of its 3 trials; rerun"), err
    assert out.splitlines()[-1].startswith(f"results in {tmp_path / 'out'}: "), out


def test_the_command_names_importances_json_among_its_results(tmp_path, capfd):
    out, _ = _timed_out_study(tmp_path, capfd)
    assert out.splitlines()[-1] == \
        f"results in {tmp_path / 'out'}: best.yaml, best.json, trials.csv, importances.json, report.html", out


def test_parallel_coordinates_axes_name_each_key_apart():
    """Optuna cuts an axis label to 17 characters and '...': strategy.optimizer.lr and strategy.optimizer.name
    both read 'strategy.optimize...' in the tune report. Each is its shortest distinct ending now."""
    import optuna

    from trainlab.tune.report import readable_axes

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = iter([0.3, 0.9, 0.5, 0.7])

    def objective(trial):
        trial.suggest_float("strategy.optimizer.lr", 1e-3, 1, log=True)
        trial.suggest_categorical("strategy.optimizer.name", ["adam", "sgd"])
        trial.suggest_int("strategy.epochs", 1, 5)
        return next(values)

    study.optimize(objective, n_trials=4)
    figure = optuna.visualization.plot_parallel_coordinate(study)
    assert list(figure.layout.xaxis.ticktext)[2:] == ["strategy.optimize...", "strategy.optimize..."]  # Optuna's
    keys = list(study.trials[0].params)
    assert list(readable_axes(figure, keys).layout.xaxis.ticktext) == [
        "Objective Value", "strategy.epochs", "optimizer.lr", "optimizer.name"]
    other = optuna.visualization.plot_parallel_coordinate(study)
    assert readable_axes(other, ["model.hidden"]) is other and list(other.layout.xaxis.ticktext)[3] == \
        "strategy.optimize..."  # laid out otherwise than the keys given: left as it is


def test_a_step_that_does_not_divide_the_range_is_one_warning_and_optuna_says_nothing(capsys):
    """Optuna's own UserWarning (a site-packages path and a source line) came once per trial, under --quiet too."""
    import warnings

    import optuna

    from trainlab.tune.space import _parse_param

    param = _parse_param("strategy.optimizer.lr", {"low": 0.001, "high": 0.1, "step": 0.03})
    assert (param.low, param.high) == (0.001, 0.091)  # Optuna's grid: 0.001 + 3 x 0.03
    assert capsys.readouterr().err == (
        "warning: space key 'strategy.optimizer.lr': step 0.03 does not divide high - low (0.1 - 0.001), so its grid "
        "stops at 0.091, the last point up to high: the range searched is [0.001, 0.091]\n")
    assert _parse_param("strategy.epochs", {"low": 3, "high": 9, "step": 4}).high == 7
    capsys.readouterr()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "range is not divisible by step" would raise here
        study.optimize(lambda trial: param.suggest(trial), n_trials=3)
    assert _parse_param("strategy.optimizer.lr", {"low": 0.0, "high": 0.1, "step": 0.01}).high == 0.1
    assert capsys.readouterr().err == ""  # a step that divides: nothing said


@pytest.mark.parametrize(("key", "spec", "says"), [
    ("strategy.optimizer.name", {"choices": ["adam", "Adam"]},
     "'choices' names 'adam' and 'Adam', one component (names are read whatever their case); keep one"),
    ("strategy.optimizer.lr", {"type": "loguniform", "low": 1e-4, "high": 1.0},
     "got 'loguniform'; Optuna's loguniform is type: float with log: true here"),
    ("strategy.optimizer.lr", {"low": 1e-4, "high": 1.0, "q": 0.1}, "unknown field 'q'; did you mean 'step'?"),
    # two letters swapped: 'log', which difflib rated no closer than 'low'
    ("strategy.optimizer.lr", {"low": 1e-4, "high": 1.0, "lgo": True}, "unknown field 'lgo'; did you mean 'log'?"),
])
def test_optuna_words_and_case_twins_in_a_space_are_told_trainlabs(key, spec, says):
    from trainlab.tune.space import _parse_param

    with pytest.raises(ConfigError) as info:
        _parse_param(key, spec)
    assert says in str(info.value)


def test_optunas_pruner_names_get_trainlabs():
    from trainlab.arguments import choice
    from trainlab.tune.study import OPTUNA_PRUNERS, PRUNERS

    for given, meant in (("successive_halving", "hyperband"), ("nop", "none"), ("MedianPruner", "median")):
        with pytest.raises(ConfigError) as info:
            choice("--pruner", given, PRUNERS, OPTUNA_PRUNERS)
        assert f"did you mean '{meant}'?" in str(info.value)


def test_a_study_folder_whose_journal_lost_its_study_is_refused_not_numbered_over(tmp_path, capfd, monkeypatch):
    """An emptied study.journal started a new study from trial 0 over the old trials/<n> folders: every reused
    number failed ('output folder ... already exists', naming an --overwrite tune has not)."""
    base, space = write(tmp_path)
    out = tmp_path / "out"
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(out)]) == 0
    results = (out / "trials.csv").read_bytes()
    (out / "study.journal").write_text("")
    from trainlab.tune import storage

    monkeypatch.setattr(storage, "_STORAGES", {})  # as a new process opens it (this one's holds the old study)
    capfd.readouterr()
    assert main(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out)]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"error: {out} holds the run folders of 1 trial ({out / 'trials'}/0) of a study its "
                          "storage does not have (study 'trainlab-base'; "), err
    assert (out / "trials.csv").read_bytes() == results and (out / "study.journal").read_text() == ""
