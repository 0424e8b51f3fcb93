"""benchmarks/__main__.py, the suite's driver: its members (finetune_speed among them), the skipped members
listed with reason and fix, the exit status, warnings said once, and mfu's speedrun row config. No benchmark
runs here: the members that would run are stand-ins, the real ones are skipped for want of data."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from trainlab.config import read_yaml
from trainlab.data import DATA_SOURCES
from trainlab.notices import warn

SPEEDRUN_YAML = Path(__file__).resolve().parents[1] / "examples" / "cifar10_speedrun.yaml"


@pytest.fixture
def suite():
    """``benchmarks.__main__``, with the data sources its members register (mfu, overhead) removed after the
    test: the docs test lists every registered source and would find these undocumented."""
    import trainlab.data.builtins  # noqa: F401  (registered once per process: never removed below)

    entries = DATA_SOURCES._entries
    module = importlib.import_module("benchmarks.__main__")
    mfu, overhead = importlib.import_module("mfu"), importlib.import_module("overhead")
    added = {mfu.CIFAR_SOURCE: mfu.cifar_shaped, overhead.SOURCE: overhead.mnist_shaped}
    entries.update(added)
    yield module
    for name in added:
        entries.pop(name, None)


def stand_in(suite, ratios=None, packages=(), data=(), effect=None):
    """A member that needs ``packages`` and ``data`` and returns ``ratios`` (after calling ``effect``)."""
    def run(args):
        if effect is not None:
            effect()
        return dict(ratios or {})
    return suite.Member("a stand-in", tuple(packages), tuple(data), run)


def test_finetune_speed_is_a_member_skipped_with_the_data_fix_when_sst2_is_missing(suite, tmp_path, capsys):
    status = suite.main(["--only", "finetune_speed", "--data-dir", str(tmp_path), "--threads", "0", "--no-write"])
    out = capsys.readouterr().out
    assert "finetune_speed" in suite.MEMBERS
    assert status == suite.EXIT_MEMBER_SKIPPED == 2
    skipped = out.split("== skipped")[1]
    installed = suite.why_skipped(suite.MEMBERS["finetune_speed"]._replace(data=()), tmp_path) is None
    # skipped for the data where its packages are installed (the tests' environment has them or not)
    expected = f"no sst2/train.tsv under {tmp_path}; fix: {suite.DATA_FIX}" if installed else suite.BENCH_INSTALL
    assert "finetune_speed" in skipped and expected in skipped


def test_every_skipped_member_is_listed_at_the_end_with_its_reason_and_fix(suite, tmp_path, capsys):
    status = suite.main(["--only", "hf_trainer", "finetune_speed", "data_loading", "--data-dir", str(tmp_path),
                         "--threads", "0", "--no-write"])
    out = capsys.readouterr().out
    assert status == 2
    listed = [line for line in out.split("== skipped")[1].splitlines()[1:] if line.strip()]
    assert [line.split()[0] for line in listed] == ["hf_trainer", "finetune_speed", "data_loading"]
    assert all("; fix: " in line for line in listed)
    data_loading = listed[-1]  # needs no package: skipped for its data, whose fix names both ways to give it
    assert str(tmp_path) in data_loading and "--data-dir" in data_loading and "TRAINLAB_DATA_DIR" in data_loading


@pytest.mark.parametrize(("ratio", "skip", "status"), [(1.0, False, 0), (1.2, False, 1), (1.0, True, 2), (1.2, True, 3)])
def test_exit_status_adds_one_for_a_missed_target_and_two_for_a_skipped_member(suite, monkeypatch, capsys,
                                                                                tmp_path, ratio, skip, status):
    members = {"timed": stand_in(suite, {"trainlab/raw b64": ratio})}
    if skip:
        members["absent"] = stand_in(suite, packages=["no_such_package_for_trainlab_tests"])
    monkeypatch.setattr(suite, "MEMBERS", members)
    assert suite.main(["--data-dir", str(tmp_path), "--threads", "0", "--no-write"]) == status
    out = capsys.readouterr().out
    assert ("MISSED" in out) == (ratio > 1.03)
    assert ("== skipped" in out) == skip


def test_finetune_speed_ratios_are_printed_without_a_verdict(suite):
    for label in ("dynamic/padded L64", "dynamic/padded L256", "bf16/fp32 L64", "bf16/fp32 L256"):
        assert suite.meets(label, 2.0) is None
    assert suite.meets("trainlab/hf-trainer b32 dynamic", 0.9)[0] is False


def test_the_data_folder_defaults_to_trainlab_data_dir(suite, monkeypatch, tmp_path, capsys):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text("sentence\tlabel\n")
    monkeypatch.setenv("TRAINLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(suite, "MEMBERS", {"reads_sst2": stand_in(suite, {"x": 1.0}, data=["sst2/train.tsv"])})
    assert suite.main(["--threads", "0", "--no-write"]) == 0
    assert "skipped" not in capsys.readouterr().out


def test_a_warning_repeated_by_the_members_is_said_once(suite, monkeypatch, tmp_path, capsys):
    def twice():
        warn("texts cut at data.max_length=64 tokens: 1 of 1805 training")
        warn("texts cut at data.max_length=64 tokens: 1 of 1805 training")
    monkeypatch.setattr(suite, "MEMBERS", {"a": stand_in(suite, effect=twice), "b": stand_in(suite, effect=twice)})
    assert suite.main(["--data-dir", str(tmp_path), "--threads", "0", "--no-write"]) == 0
    assert capsys.readouterr().err.count("texts cut at") == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_mfu_times_the_speedrun_configs_own_step(suite, precision):
    mfu = importlib.import_module("mfu")
    config = mfu.step_config("speedrun", None, precision)
    raw = read_yaml(SPEEDRUN_YAML)
    strategy = config.strategy
    assert config.model.name == raw["model"]["name"] == "airbench_muon"
    assert strategy.init.name == "patch_whitening"
    assert (strategy.batch_size, strategy.grad_accum_steps) == (raw["strategy"]["batch_size"],
                                                               raw["strategy"]["grad_accum_steps"]) == (250, 4)
    groups = {group.label(i): group.optimizer or strategy.optimizer.name
              for i, group in enumerate(strategy.optimizer.groups)}
    assert groups == {group["name"]: group.get("optimizer", raw["strategy"]["optimizer"]["name"])
                      for group in raw["strategy"]["optimizer"]["groups"]}
    assert groups["filters"] == "muon_conv"
    assert strategy.clip_grad_norm == raw["strategy"]["clip_grad_norm"]
    assert config.runtime.channels_last is True and config.runtime.precision == precision
    assert config.data.source == mfu.CIFAR_SOURCE and strategy.time_budget_s is None
