"""What a comparison refuses before any run, what ``train --resume`` names as the change, and the thread
count a comparison's run records.

* A strategy every run refuses from its config alone (``strategy.weight_averaging`` over schedule-free,
  fine-tuning's param groups without ``optimizer.lr`` or with ``optimizer.groups``) was run seed by seed,
  each marked failed, exit 0; it is one ``error:`` line naming the strategy, exit 2, nothing written, with
  the run's own words (:func:`trainlab.preflight.check_components`).
* ``train --resume`` into a run of the same config but another ``runtime.num_threads`` named two config
  hashes; it names the key, as it did for ``seed``.
* A comparison's run of a base that leaves ``runtime.num_threads`` unset wrote ``num_threads: null`` in its
  config.yaml though it ran with the threads compare gave it; training that config.yaml alone ran with
  another count. It now records the count, and its finished runs recorded without one are not trained again.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

import trainlab.compare.runner as runner
from tests.conftest import DIGITS_MLP
from tests.test_compare import BASE
from tests.test_compare_checks import _compare, _one_error_line
from trainlab.cli import main
from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.preflight import check_components

SCHEDULE_FREE = {"strategy.optimizer": {"name": "schedule_free_adamw", "lr": 0.003},
                 "strategy.schedule": "constant", "strategy.weight_averaging": "ema"}
AVERAGING_LINE = ("strategy.weight_averaging cannot be combined with optimizer 'schedule_free_adamw', which "
                  "evaluates its own averaged weights; remove one of them")
FINETUNE_LR_LINE = ("strategy.optimizer.lr is required with finetune.layerwise_lr_decay / unfreeze_after_epochs "
                    "(the head's learning rate)")
FINETUNE_GROUPS_LINE = ("strategy.optimizer.groups cannot be combined with finetune.layerwise_lr_decay / "
                        "unfreeze_after_epochs (both set the param groups); use one of them")


def _with(base: dict, **strategy) -> dict:
    raw = copy.deepcopy(base)
    raw["strategy"].update(strategy)
    return raw


# --------------------------------------------------------------------------- 1. refused before any run


CONFIG_ONLY_REFUSALS = {
    "averaging over schedule-free": (SCHEDULE_FREE, AVERAGING_LINE),
    "layerwise decay without lr": ({"strategy.optimizer": {"name": "adam"},
                                    "strategy.finetune": {"layerwise_lr_decay": 0.5}}, FINETUNE_LR_LINE),
    "unfreezing with groups": ({"strategy.optimizer.groups": [{"match": "*", "lr": 0.1}],
                                "strategy.finetune": {"freeze": True, "unfreeze_after_epochs": 1}},
                               FINETUNE_GROUPS_LINE),
}


@pytest.mark.parametrize("case", list(CONFIG_ONLY_REFUSALS))
def test_a_strategy_every_run_refuses_is_one_line_before_any_run_in_the_run_s_words(tmp_path: Path, capsys, case):
    """It ran every seed as failed (a compare-error.json with a traceback each) and exited 0; ``train``
    refuses the same config at once: the comparison's line is the run's, after the strategy's name."""
    overrides, words = CONFIG_ONLY_REFUSALS[case]
    code, out = _compare(tmp_path, BASE, {"strategies": {"base": None, "bad": overrides}})
    assert (code, out.exists()) == (2, False)
    assert _one_error_line(capsys) == f"error: strategy 'bad': {words}"
    arm = tmp_path / "arm.yaml"  # the strategy's config, trained alone
    config = yaml.safe_load((tmp_path / "base.yaml").read_text())
    for dotted, value in overrides.items():
        node = config
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    arm.write_text(yaml.safe_dump(config))
    assert main(["train", str(arm), "--out", str(tmp_path / "alone"), "--quiet"]) == 2
    assert _one_error_line(capsys) == f"error: {words}"


def test_a_group_on_a_schedule_free_optimizer_is_refused_under_weight_averaging():
    """Every group takes a parameter (or the run refuses it), so its optimizer is certainly built."""
    raw = _with(BASE, weight_averaging="ema",
                optimizer={"name": "adam", "lr": 0.01,
                           "groups": [{"select": "biases", "optimizer": "schedule_free_adamw", "lr": 0.003}]})
    with pytest.raises(ConfigError, match="^strategy.weight_averaging cannot be combined with optimizer 'adam'"):
        check_components(validate(raw))


def test_a_schedule_free_top_level_that_groups_take_everything_from_is_left_to_the_run(tmp_path: Path, capsys):
    """Whether the top-level optimizer gets any parameter depends on the model: preflight must not refuse
    what the run accepts (here every parameter goes to an adam group, and the run trains)."""
    raw = _with(BASE, weight_averaging="ema", epochs=1,
                optimizer={"name": "schedule_free_adamw", "lr": 0.003,
                           "groups": [{"match": "*", "optimizer": "adam", "lr": 0.01}]})
    check_components(validate(raw))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0, capsys.readouterr().err


# --------------------------------------------------------------------------- 2. train --resume's line


def test_resume_with_another_thread_count_names_the_key(write_config, tmp_path: Path, capsys):
    config = write_config(DIGITS_MLP, strategy__epochs=1, runtime={"num_threads": 1})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--resume", "--set", "runtime.num_threads=2"]) == 2
    assert _one_error_line(capsys).startswith(
        f"error: --resume: {out} holds a finished run of another config (runtime.num_threads: was 1, now 2), ")


def test_resume_of_an_lr_auto_run_names_the_key_not_what_auto_resolved_to(write_config, tmp_path: Path, capsys):
    """config.yaml holds the lr the range test found; the asked ``auto`` is not the change."""
    config = write_config(DIGITS_MLP, strategy__epochs=1, strategy__optimizer={"name": "adam", "lr": "auto"},
                          runtime={"num_threads": 1})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["strategy"]["optimizer"]["lr"] != "auto"
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--resume", "--set", "runtime.num_threads=2"]) == 2
    assert "(runtime.num_threads: was 1, now 2)" in _one_error_line(capsys)


# --------------------------------------------------------------------------- 3. the thread count recorded


def _threadless_base() -> dict:
    base = copy.deepcopy(BASE)
    del base["runtime"]
    base["strategy"]["epochs"] = 2
    return base


ONE_ARM = {"strategies": {"base": None}}


def _run_folder(out: Path) -> Path:
    return out / "runs" / "base" / "base" / "seed-0"


def test_a_compare_run_s_config_yaml_holds_the_threads_it_ran_with_and_reproduces_it(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runner, "threads_per_worker", lambda jobs: 3)  # not this process's count
    code, out = _compare(tmp_path, _threadless_base(), ONE_ARM)
    assert code == 0
    run = _run_folder(out)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["environment"]["threads"] == 3
    assert yaml.safe_load((run / "config.yaml").read_text())["runtime"]["num_threads"] == 3
    assert main(["train", str(run / "config.yaml"), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["environment"]["threads"] == 3 and again["test"] == summary["test"]


def test_a_base_s_own_thread_count_is_kept(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runner, "threads_per_worker", lambda jobs: 3)
    base = {**_threadless_base(), "runtime": {"num_threads": 1}}
    assert _compare(tmp_path, base, ONE_ARM)[0] == 0
    assert yaml.safe_load((_run_folder(tmp_path / "out") / "config.yaml").read_text())["runtime"]["num_threads"] == 1


def test_finished_runs_recorded_without_a_thread_count_or_with_another_are_not_trained_again(
        tmp_path: Path, monkeypatch, capsys):
    """An earlier version recorded ``num_threads: null``; a rerun with another ``--jobs`` gives its runs
    another count: neither is a change of the run (the run identity leaves the thread count out)."""
    with monkeypatch.context() as earlier:
        earlier.setattr(runner, "with_threads_given", lambda raw: raw)  # as an earlier version trained it
        assert _compare(tmp_path, _threadless_base(), ONE_ARM)[0] == 0
    summary = _run_folder(tmp_path / "out") / "summary.json"
    written = summary.read_bytes(), summary.stat().st_mtime_ns
    for threads in (2, 5):
        monkeypatch.setattr(runner, "threads_per_worker", lambda jobs, threads=threads: threads)
        capsys.readouterr()
        assert _compare(tmp_path, _threadless_base(), ONE_ARM)[0] == 0
        assert "1 of 1 runs already done in their folders: skipped" in capsys.readouterr().out
        assert (summary.read_bytes(), summary.stat().st_mtime_ns) == written


def test_a_failed_run_is_skipped_as_failed_whatever_the_thread_count(tmp_path: Path, monkeypatch, capsys):
    """Its compare-error.json is matched by the plan's config hash, which holds no thread count of compare's."""
    nothing = {"strategies": {"base": None,  # (every run refused on its config: exit 2, the base's ranked)
                              "none": {"strategy.optimizer.groups": [{"select": "conv_filters", "lr": 0.1}]}}}
    monkeypatch.setattr(runner, "threads_per_worker", lambda jobs: 1)
    assert _compare(tmp_path, _threadless_base(), nothing)[0] == 2
    error = tmp_path / "out" / "runs" / "base" / "none" / "seed-0" / runner.ERROR_FILE
    written = error.read_bytes()
    monkeypatch.setattr(runner, "threads_per_worker", lambda jobs: 2)
    capsys.readouterr()
    assert _compare(tmp_path, _threadless_base(), nothing)[0] == 2
    assert "failed in an earlier invocation: skipped" in capsys.readouterr().out
    assert error.read_bytes() == written


def test_a_failed_run_without_its_error_record_is_still_skipped_as_failed(tmp_path: Path, monkeypatch, capsys):
    """run.json's status 'failed' with the thread count compare wrote into config.yaml is the plan's exact
    config: skipped as failed (its compare-error.json lost: a kill between the two writes), not resumed."""
    raising = {"strategies": {"base": None, "boom": {"strategy.epochs": 3}}}

    class Boom(Exception):
        pass

    monkeypatch.setattr(runner, "threads_per_worker", lambda jobs: 1)
    import trainlab.engine.loop as loop

    original = loop.Trainer.run_epoch

    def run_epoch(self):
        if self.limits.epochs == 3:
            raise Boom("a bug in the run")
        return original(self)

    monkeypatch.setattr(loop.Trainer, "run_epoch", run_epoch)
    _compare(tmp_path, _threadless_base(), raising)
    folder = tmp_path / "out" / "runs" / "base" / "boom" / "seed-0"
    assert json.loads((folder / "run.json").read_text())["status"] == "failed"
    (folder / runner.ERROR_FILE).unlink()
    capsys.readouterr()
    _compare(tmp_path, _threadless_base(), raising)
    out = capsys.readouterr().out
    assert "resuming" not in out and "skipped" in out, out
