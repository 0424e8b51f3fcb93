"""``--refit-seeds K`` when the best trial is the base config itself: the base is trained over the K seeds
once, with a line saying so, instead of ``tuned`` and ``base`` as two arms of the same runs whose paired
test says "indistinguishable p=1" of a config against itself."""

from __future__ import annotations

import json

import pytest

import trainlab.tune.refit as refit_module
from tests.test_tune import BASE, settings
from trainlab.cli import main
from trainlab.tune.refit import BEST_IS_BASE, best_is_base
from trainlab.tune.runner import tune

pytest.importorskip("trainlab.compare")

# the base (adam, lr 0.01) is trial 0 of a space holding it; with --trials 1 it is the best trial
SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}
SGD_BASE = {**BASE, "strategy": {**BASE["strategy"], "optimizer": {"name": "sgd", "lr": 0.05}}}


def test_best_is_base_compares_the_resolved_configs(tmp_path):
    tuned = settings(tmp_path, 1, space=SPACE)
    assert best_is_base(tuned, {"params": {"strategy.optimizer.lr": 0.01}})
    assert best_is_base(tuned, {"params": {"strategy.optimizer.lr": 1e-2, "strategy.batch_size": 32}})
    assert not best_is_base(tuned, {"params": {"strategy.optimizer.lr": 0.02}})
    assert not best_is_base(tuned, {"params": {"strategy.optimizer.name": "adamw"}})
    # an option set at its optimizer's default is the option left out: sgd trains the same with momentum 0
    plain_sgd = settings(tmp_path / "sgd", 1, base=SGD_BASE, space=SPACE)
    assert best_is_base(plain_sgd, {"params": {"strategy.optimizer.momentum": 0.0}})
    assert not best_is_base(plain_sgd, {"params": {"strategy.optimizer.momentum": 0.9}})


def test_the_base_as_best_trial_is_refit_once_and_said_so(tmp_path, capsys, monkeypatch):
    import trainlab.compare as compare_package  # refit imports compare where it calls it: the spy goes here

    arms = []
    real = compare_package.compare

    def spy(bases, strategies, *args, **kwargs):
        arms.append([strategy.name for strategy in strategies])
        return real(bases, strategies, *args, **kwargs)

    monkeypatch.setattr(compare_package, "compare", spy)
    base, space = settings(tmp_path, 1, space=SPACE).base, tmp_path / "space.yaml"
    out = tmp_path / "out"
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--refit-seeds", "2", "--out", str(out),
                 "--pruner", "none"]) == 0
    err = capsys.readouterr().err
    assert BEST_IS_BASE.format(seeds=2) + "\n" in err
    assert err.count("the best trial is the base config itself") == 1
    assert arms == [["base"]]  # one arm, not tuned and base
    best = json.loads((out / "best.json").read_text())
    assert best["trial"] == 0 and best["params"] == {"strategy.optimizer.lr": 0.01}
    assert best["refit"]["best_is_base"] is True
    assert [row["strategy"] for row in best["refit"]["rows"]] == ["base"]
    assert len(list((out / "refit").glob("runs/*/base/seed-*/summary.json"))) == 2
    assert not list((out / "refit").glob("runs/*/tuned"))
    assert "the best trial is the base config, trained alone" in (out / "report.html").read_text()


def test_a_tuned_config_other_than_the_base_is_refit_against_it(tmp_path, monkeypatch):
    """The best trial differs from the base: both arms, and no best_is_base in the record."""
    import trainlab.compare as compare_package

    arms = []

    def spy(bases, strategies, *args, **kwargs):
        arms.append(([strategy.name for strategy in strategies], kwargs["jobs"]))
        return {"rows": []}

    monkeypatch.setattr(compare_package, "compare", spy)
    monkeypatch.setattr("trainlab.compare.leaderboard_output.to_csv", lambda board: "strategy\n")
    tuned = settings(tmp_path, 1, space=SPACE, refit_seeds=2, jobs=2)
    record = refit_module.refit(tuned, {"params": {"strategy.optimizer.lr": 0.05}})
    assert arms == [(["tuned", "base"], 2)]  # tune's --jobs: the refit ran one run at a time whatever it was
    assert "best_is_base" not in record


def test_quiet_keeps_the_line_out_and_the_record_in(tmp_path, capsys):
    best = tune(settings(tmp_path, 1, space=SPACE, refit_seeds=1, pruner="none"))
    assert best["refit"]["best_is_base"] is True
    printed = capsys.readouterr()
    assert "the best trial is the base config itself" not in printed.err
    # the refit's leaderboard is its result: printed under quiet too (it was in best.json only), no line per run
    assert "ranked by test_accuracy" in printed.out + printed.err and "[1/" not in printed.out + printed.err
