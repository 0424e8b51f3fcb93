"""Config-fuzz findings: null keep_after_finish, duplicate flow keys, YAML 1.1 numbers, output.dir, advise's
seed and data errors, a misspelt required key, Literal typos, batch_size's bound, duplicate metrics, union locs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainlab.config import CheckpointConfig, dump_yaml, load_config, validate
from trainlab.errors import ConfigError
from trainlab.yaml_files import yaml_load

BASE = """name: t
data: {source: digits}
model: {name: mlp, hidden: [8]}
strategy: {loss: cross_entropy, optimizer: {name: adam, lr: 0.003}, batch_size: 32, epochs: 1}
"""


def _write(tmp_path: Path, text: str = BASE) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, overrides: list[str], text: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


# 1 ------------------------------------------------------------------ keep_after_finish: null

@pytest.mark.parametrize("override", ["output.checkpoint.keep_after_finish=", "output.checkpoint.keep_after_finish=null"])
def test_null_keep_after_finish_is_the_default_not_none(tmp_path, override):
    """null used to map to "none", which deletes every checkpoint once the run ends."""
    config = load_config(_write(tmp_path), [override])
    assert config.output.checkpoint.keep_after_finish == "last" == CheckpointConfig().keep_after_finish


@pytest.mark.parametrize("value, kept", [("none", "none"), ("false", "none"), ("off", "none"), ("all", "all")])
def test_keep_after_finish_none_and_false_still_keep_nothing(tmp_path, value, kept):
    config = load_config(_write(tmp_path), [f"output.checkpoint.keep_after_finish={value}"])
    assert config.output.checkpoint.keep_after_finish == kept


# 2 ------------------------------------------------------------------ duplicate keys

def test_a_duplicate_key_in_a_flow_mapping_is_refused(tmp_path):
    text = BASE.replace("{name: adam, lr: 0.003}", "{name: adam, lr: 0.003, lr: 0.1}")
    with pytest.raises(ConfigError, match=r"line 4, column \d+: duplicate key 'lr' \(first at line 4\)"):
        load_config(_write(tmp_path, text))


def test_keys_that_read_as_the_same_value_are_duplicates():
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'true' \(first at line 1, read as the same key True "
                                             r"as 'yes'\)"):
        yaml_load("{yes: 1, true: 2}")


def test_a_duplicate_key_in_a_set_value_is_refused_naming_it(tmp_path):
    message = _error(tmp_path, ["strategy.optimizer={name: adam, lr: 1, lr: 2}"])
    assert message == "--set strategy.optimizer={name: adam, lr: 1, lr: 2}: duplicate key 'lr' (first at line 1)"


def test_merge_keys_overridden_explicitly_are_no_duplicates():
    text = "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, x: 3}\n"
    assert yaml_load(text) == {"a": {"x": 1}, "b": {"x": 1, "y": 2}, "c": {"x": 3, "y": 2}}


# 3 ------------------------------------------------------------------ YAML 1.1 numbers

@pytest.mark.parametrize("value, message", [
    ("010", "max_steps: 010 has a leading zero; write 10 or 8 (octal, as YAML 1.1 reads it)"),
    ("09", "max_steps: 09 has a leading zero; write 9"),
    ("0b101", "config key 'strategy.max_steps': must be an integer in decimal digits (e.g. 10), not a string; "
              "got '0b101'"),
    ("1:30", "config key 'strategy.max_steps': must be an integer in decimal digits (e.g. 10), not a string; "
             "got '1:30'"),
    ("1_0", "config key 'strategy.max_steps': must be an integer in decimal digits (e.g. 10), not a string; "
            "got '1_0'"),
])
def test_yaml_1_1_integers_are_refused_naming_the_key(tmp_path, value, message):
    text = BASE.replace("epochs: 1}", f"epochs: 1, max_steps: {value}}}")
    assert message in _error(tmp_path, [], text)


def test_a_float_that_underflows_to_zero_is_refused_naming_the_key(tmp_path):
    text = BASE.replace("lr: 0.003}", "lr: 0.003, eps: 1.0e-400}")
    assert "eps: 1.0e-400 is too small for a 64-bit float (it would read as 0.0)" in _error(tmp_path, [], text)
    text = BASE.replace("lr: 0.003}", "lr: 1e-400}")  # no dot: YAML's string, which the schema's Float reads
    assert "strategy.optimizer.lr': 1e-400 is too small for a 64-bit float" in _error(tmp_path, [], text)


@pytest.mark.parametrize("override, message", [
    ("strategy.max_steps=010", "--set strategy.max_steps=010: 010 has a leading zero; write 10 or 8"),
    ("strategy.optimizer.eps=1.0e-400", "--set strategy.optimizer.eps=1.0e-400: 1.0e-400 is too small"),
    ("strategy.max_steps=1_0", "config key 'strategy.max_steps': must be an integer in decimal digits"),
])
def test_set_values_go_through_the_same_reading(tmp_path, override, message):
    assert message in _error(tmp_path, [override])


def test_numbers_read_as_decimals_and_floats_as_yaml_1_1_writes_them():
    """Decimal integers only; floats need a dot and a signed exponent, as in YAML 1.1: 1e-3 stays the string
    every earlier trainlab read (a run's config hash covers component options as written)."""
    assert yaml_load("[10, -0, +12, 1e-3, 1E5, 1.0e-3, .5, 5., 0.0e-400, 0x10, 1_0, yes, off]") == \
        [10, 0, 12, "1e-3", "1E5", 0.001, 0.5, 5.0, 0.0, "0x10", "1_0", True, False]


def test_a_run_trained_before_keeps_its_config_hash():
    """config.yaml of a run trained before the stricter reader, with an optimizer option written 1e-8: the hash
    recorded then (PyYAML's reading, eps the string '1e-8') is the one the file has now, so eval, load_run,
    resume and compare still take the run as it was trained."""
    import yaml

    text = BASE.replace("lr: 0.003}", "lr: 1e-3, eps: 1e-8}")
    old = validate(yaml.safe_load(text))  # what trainlab read before
    assert old.to_dict()["strategy"]["optimizer"]["eps"] == "1e-8"
    assert validate(yaml_load(text)).hash() == old.hash()


def test_a_dumped_config_reads_back_as_written(tmp_path):
    """A string that reads as another type is written quoted, so that it reads back as written."""
    config = load_config(_write(tmp_path), ["name='1e5'"])
    assert config.name == "1e5"
    assert yaml_load(dump_yaml(config))["name"] == "1e5"


# 4 ------------------------------------------------------------------ output.dir

@pytest.mark.parametrize("value", ['""', "' '"])
def test_a_blank_output_dir_is_refused(tmp_path, value):
    assert "config key 'output.dir': must be a folder path, or left out" in _error(tmp_path, [f"output.dir={value}"])


def test_output_dir_expands_the_home_folder(tmp_path):
    config = load_config(_write(tmp_path), ["output.dir=~/somewhere"])
    assert config.output.dir == os.path.join(os.path.expanduser("~"), "somewhere")


# 5 ------------------------------------------------------------------ advise

def _advise(tmp_path: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "trainlab", "advise", str(_write(tmp_path))]
    for text in sets:
        args += ["--set", text]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("override, message", [
    ("seed=abc", "error: config key 'seed': must be an integer in decimal digits (e.g. 10), not a string; got 'abc'"),
    ("seed=yes", "error: config key 'seed': must be an integer, not a boolean; got True"),
    ("data.val_fraction=yes", "error: config key 'data.val_fraction': must be a number, not a boolean; got True"),
    ("data.nan_policy=ignor", "error: config key 'data.nan_policy': Input should be 'error' or 'drop'; got 'ignor'"),
])
def test_advise_validates_seed_and_data_as_a_run_does(tmp_path, override, message):
    result = _advise(tmp_path, override)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == message


# 6 ------------------------------------------------------------------ a misspelt required key

@pytest.mark.parametrize("overrides, message", [
    (["~model.name", "model.naem=mlp"], "config key 'model.name' is required; 'model.naem' is given: did you mean "
                                        "'model.name'?"),
    (["strategy.loss={naem: mse}"], "config key 'strategy.loss.name' is required; 'strategy.loss.naem' is given: "
                                    "did you mean 'strategy.loss.name'?"),
    (["data={soucre: digits}"], "config key 'data.source' is required; 'data.soucre' is given: did you mean "
                                "'data.source'?"),
    (["strategy.schedule={naem: cosine}"], "config key 'strategy.schedule.name' is required; "
                                           "'strategy.schedule.naem' is given: did you mean 'strategy.schedule.name'?"),
    (["~strategy", "stratgy={loss: mse, optimizer: sgd}"], "config key 'strategy' is required; 'stratgy' is "
                                                          "given: did you mean 'strategy'?"),
    (["strategy.init={}"], "config key 'strategy.init.name' is required"),
])
def test_a_misspelt_required_key_is_named(tmp_path, overrides, message):
    assert _error(tmp_path, overrides) == message


# 7 ------------------------------------------------------------------ Literal typos

@pytest.mark.parametrize("override, hint", [
    ("output.progress=of", "got 'of'; did you mean 'off'?"),
    ("runtime.precision=auot", "got 'auot'; did you mean 'auto'?"),
    ("strategy.divergence.policy=rollbak", "got 'rollbak'; did you mean 'rollback'?"),
    ("output.checkpoint.keep_after_finish=alll", "got 'alll'; did you mean 'all'?"),
    ("data.task=multiclas", "got 'multiclas'; did you mean 'multiclass'?"),
    ("runtime.device=CPU", "got 'CPU'; did you mean 'cpu'?"),
])
def test_a_misspelt_choice_gets_a_did_you_mean(tmp_path, override, hint):
    assert _error(tmp_path, [override]).endswith(hint)


@pytest.mark.parametrize("override, hint", [
    ("runtime.device=gpu", "got 'gpu'; did you mean 'cuda'?"),  # was 'cpu', the closest spelling
    ("runtime.device=cuda:1", "got 'cuda:1'; did you mean 'cuda'?"),
    ("runtime.precision=bfloat16", "got 'bfloat16'; did you mean 'bf16'?"),
    ("runtime.precision=bf16-mixed", "got 'bf16-mixed'; did you mean 'bf16'?"),
    ("runtime.precision=16", "got 16; did you mean 'fp16'?"),  # Lightning's precision=16
    ("runtime.precision=float32", "got 'float32'; did you mean 'fp32'?"),
])
def test_a_choice_written_as_pytorch_or_lightning_names_it_gets_trainlabs_name(tmp_path, override, hint):
    assert _error(tmp_path, [override]).endswith(hint)


# 8 ------------------------------------------------------------------ bounds and duplicates

def test_batch_size_has_the_int64_bound(tmp_path):
    message = _error(tmp_path, [f"strategy.batch_size={2**63}"])
    assert message.startswith("config key 'strategy.batch_size': must be an integer of magnitude below 2**63")


def test_a_metric_listed_twice_is_refused(tmp_path):
    assert _error(tmp_path, ["metrics=[accuracy, f1, accuracy]"]) == \
        "config key 'metrics': lists the metric 'accuracy' twice; got ['accuracy', 'f1', 'accuracy']"


def test_the_location_leaves_out_union_branch_names(tmp_path):
    assert "InitConfig" not in _error(tmp_path, ["strategy.init={}"])
