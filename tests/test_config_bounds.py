"""Config loading refuses hostile or mistyped YAML with one line, fast and in bounded memory."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from tests.conftest import LINREG
from trainlab.config import load_config, read_yaml, validate
from trainlab.config_fields import MAX_CONFIG_NODES
from trainlab.errors import ConfigError

BASE = yaml.safe_dump(LINREG, sort_keys=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _bomb(key: str, levels: int = 9) -> str:
    lines = [f"{key}:", '  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  - &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("key", ["seed", "name", "metrics"])
def test_an_alias_bomb_is_one_line_fast_and_small(tmp_path, key):
    text = BASE.replace(f"{key}:", "old_" + key + ":", 1) if f"\n{key}:" in "\n" + BASE else BASE
    path = _write(tmp_path, text + _bomb(key))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="expands to more than") as caught:
        load_config(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 5 and peak < 50 * 2**20  # was ~50 s and 4 GB, then MemoryError
    assert "\n" not in str(caught.value)


def test_a_long_config_below_the_bound_still_loads(tmp_path):
    raw = {**LINREG, "metrics": ["mse"] * 5000}
    assert len(read_yaml(_write(tmp_path, yaml.safe_dump(raw)))["metrics"]) == 5000 < MAX_CONFIG_NODES


def test_duplicate_keys_name_the_key_and_both_lines(tmp_path):
    text = "name: a\nseed: 1\nname: b\n"
    with pytest.raises(ConfigError, match=r"duplicate key 'name' \(first at line 1\)") as caught:
        read_yaml(_write(tmp_path, text))
    assert "at line 3" in str(caught.value)


def test_merge_keys_are_not_duplicates(tmp_path):
    text = "defaults: &d {lr: 0.1, momentum: 0.9}\nopt:\n  <<: *d\n  lr: 0.2\n"
    assert read_yaml(_write(tmp_path, text))["opt"] == {"lr": 0.2, "momentum": 0.9}


def test_a_bare_off_policy_is_the_off_policy(tmp_path):
    text = BASE.replace("strategy:\n", "strategy:\n  divergence:\n    policy: off\n", 1)
    raw = yaml.safe_load(text)
    assert raw["strategy"]["divergence"]["policy"] is False  # the YAML 1.1 pitfall itself
    assert load_config(_write(tmp_path, text)).strategy.divergence.policy == "off"
    path = _write(tmp_path, BASE)
    assert load_config(path, ["strategy.divergence.policy=off"]).strategy.divergence.policy == "off"
    with pytest.raises(ConfigError, match="divergence.policy"):
        load_config(path, ["strategy.divergence.policy=on"])  # True is not a policy


@pytest.mark.parametrize("override", ["strategy.optimizer.lr=.inf", "strategy.regularization.weight_decay=.inf",
                                      "strategy.optimizer.momentum=.nan", "model.scale=-.inf",
                                      "data.noise=.nan", "strategy.loss.weights=[1.0, .inf]"])
def test_non_finite_floats_anywhere_are_refused(tmp_path, override):
    with pytest.raises(ConfigError, match="must be a finite number") as caught:
        load_config(_write(tmp_path, BASE), [override])
    assert override.split("=")[0] in str(caught.value)


@pytest.mark.parametrize("changes, fragment", [
    ({"seed": -1}, "seed"), ({"seed": 2**70}, "2**63"), ({"seed": True}, "boolean"),
    ({"runtime": {"num_threads": 10**12}}, "num_threads"),
    ({"model": {"name": "mlp", "hidden": [100_000_000]}}, "hidden"),
    ({"model": {"name": "mlp", "width": 10**9}}, "width"),
    ({"name": "a\0b"}, "NUL"), ({"name": "x" * 300}, "300 characters"), ({"name": "../../x"}, "'/'"),
    ({"name": "/abs/x"}, "'/'"), ({"name": ".."}, "'..'"), ({"name": "a\\b"}, "name"), ({"name": ""}, "name"),
])
def test_absurd_values_are_one_line(changes, fragment):
    with pytest.raises(ConfigError) as caught:
        validate({**LINREG, **changes})
    message = str(caught.value)
    assert fragment in message and "\n" not in message and len(message) < 400
    assert "disk" not in message


def test_a_torch_module_in_a_config_is_one_line_that_points_to_fit():
    """A multi-line repr (nn.Sequential's) stays on one line, and the error says where a module object goes."""
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    for changes in ({"model": net}, {"model": {"name": net}}):
        with pytest.raises(ConfigError) as caught:
            validate({**LINREG, **changes})
        message = str(caught.value)
        assert "\n" not in message and "Sequential(" in message and "trainlab.fit(model" in message


def test_sensible_extremes_are_accepted():
    config = validate({**LINREG, "seed": 2**63 - 1, "name": "r" * 200, "runtime": {"num_threads": 64},
                       "model": {"name": "mlp", "hidden": [4096, 4096]}})
    assert config.seed == 2**63 - 1


def test_the_error_formatter_never_reprs_a_huge_value():
    huge = list(range(90_000))
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        validate({**LINREG, "strategy": {**LINREG["strategy"], "batch_size": huge}})
    assert time.perf_counter() - started < 5 and len(str(caught.value)) < 400


def test_a_config_that_is_not_a_regular_file_or_too_big(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        read_yaml("/dev/zero")
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(64 * 2**20)
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml(big)


def test_an_unreadable_config_is_one_line_without_pythons_errno_text(tmp_path, monkeypatch):
    """It read 'cannot read config file c.yaml: [Errno 13] Permission denied: 'c.yaml'' (root reads any file:
    the refusal is raised as the read would raise it)."""
    import errno

    import trainlab.yaml_files

    def refused(path, *args):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(trainlab.yaml_files, "read_regular_file", refused)
    path = tmp_path / "c.yaml"
    with pytest.raises(ConfigError) as caught:
        read_yaml(path)
    assert str(caught.value) == f"cannot read config file {path}: Permission denied; make it readable to this user"


def test_aliases_are_unshared_so_a_set_changes_one_place(tmp_path):
    text = BASE + "anchors: &opt {name: sgd, lr: 0.01}\n"
    raw = read_yaml(_write(tmp_path, text.replace("anchors:", "x:") + "y: *opt\n"))
    assert raw["x"] == raw["y"] and raw["x"] is not raw["y"]


# ------------------------------------------------------------------ typos of keys outside the factory's signature

@pytest.mark.parametrize("override, fragments", [
    # keys every data source shares: suggested and listed beside the source's own options
    ("data.val_fracton=0.3", ["data source 'synthetic_linear' has no option 'val_fracton'; did you mean 'val_fraction'?",
                              "options: n, seed, n_val, n_test; shared data keys: source, task, val_fraction, "
                              "test_fraction, split_seed, nan_policy, standardize, standardize_target, positive_class)"]),
    ("data.nan_polcy=drop", ["has no option 'nan_polcy'; did you mean 'nan_policy'?"]),
    ("data.standardise=false", ["did you mean 'standardize'?"]),
    ("data.nn=3", ["has no option 'nn'; did you mean 'n'?"]),  # the source's own options still come first
    # the optimizer's lr is passed apart from its other options, but it is one of them
    ("strategy.optimizer.lrr=0.1", ["optimizer 'sgd' has no option 'lrr'; did you mean 'lr'?", "(options: lr, "]),
    ("strategy.optimizer.momentun=0.9", ["did you mean 'momentum'?"]),
    # a typo of the key that picks the factory is said to be one, not taken for one of the factory's options
    ("strategy.optimizer.nme=adam", ["optimizer 'sgd' has no option 'nme'; did you mean 'name' (which optimizer "
                                     "to use)? (options: lr, "]),
    ("strategy.loss.nmae=mae", ["loss 'mse' has no option 'nmae'; did you mean 'name' (which loss to use)?"]),
    ("data.sorce=csv", ["has no option 'sorce'; did you mean 'source'?"]),
])
def test_option_typos_suggest_shared_keys_and_lr(tmp_path, capsys, override, fragments):
    from trainlab.cli import main
    from trainlab.preflight import check_components

    config_path = _write(tmp_path, BASE)
    with pytest.raises(ConfigError) as caught:  # compare/tune's check before any run words it the same
        check_components(load_config(config_path, [override]))
    assert main(["train", str(config_path), "--set", override, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {caught.value}"
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "out").exists()


def test_set_tilde_key_deletes_a_key_and_names_what_is_there_when_it_is_missing():
    from trainlab.config_overrides import apply_overrides

    raw = {"data": {"source": "synthetic_linear", "n": 100}, "strategy": {"loss": "mse"}}
    apply_overrides(raw, ["~data.n", "data.source=csv"])
    assert raw["data"] == {"source": "csv"}  # the other source's option is gone, not null
    apply_overrides(raw, ["~strategy"])
    assert "strategy" not in raw
    with pytest.raises(ConfigError, match=r"^--set ~data.sourc: data has no key 'sourc'; did you mean 'source'\?$"):
        apply_overrides(raw, ["~data.sourc"])
    with pytest.raises(ConfigError, match=r"^--set ~data.source.x: data.source is a value, not a section$"):
        apply_overrides(raw, ["~data.source.x"])
    with pytest.raises(ConfigError, match="deletes a key"):
        apply_overrides(raw, ["~data.source=csv"])
    with pytest.raises(ConfigError, match=r"the config has no key 'model' \(keys: data\)"):
        apply_overrides(raw, ["~model"])
    weights = {"data": {"class_weights": {0: 1.0, 1: 3.0}, True: "yes"}}  # YAML's number and boolean keys
    apply_overrides(weights, ["~data.class_weights.1", "~data.True"])
    assert weights == {"data": {"class_weights": {0: 1.0}}}
    with pytest.raises(ConfigError, match=r"data.class_weights has no key '2' \(keys: 0\)"):
        apply_overrides(weights, ["~data.class_weights.2"])


@pytest.mark.parametrize("override, message", [
    ("strategy.optimizer.lr=true", "strategy.optimizer.lr': must be a number, not a boolean; got True"),
    ("strategy.optimizer.lr=inf", "strategy.optimizer.lr': must be a finite number; got inf"),
    ("strategy.optimizer.lr=1e999", "strategy.optimizer.lr': must be a finite number; got 1e999"),  # YAML: a string
    ("strategy.optimizer.lr=1.0e+300", "strategy.optimizer.lr': must be > 0 and at most 3.4e+38 (float32's largest); "
                                       "got 1e+300"),
    ("strategy.regularization.l1=true", "strategy.regularization.l1': must be a number, not a boolean; got True"),
    ("strategy.clip_grad_norm=.inf", "strategy.clip_grad_norm': must be a finite number; got inf"),
])
def test_a_float_setting_refuses_booleans_and_infinities(tmp_path, override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), [override])
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("override, reading", [
    ("model.name=foo:", """--set model.name=foo: was read as a mapping {foo: null}; quote it: --set 'model.name="foo:"'"""),
    ("name=", "--set name= was read as null (an empty value): give a value after '='"),
    ("name=yes", """--set name=yes was read as the boolean true; quote it: --set 'name="yes"'"""),
    # one of a key's words: quoting is the fix only where the quoted value is one of them
    ("output.checkpoint.keep_after_finish=true", "--set output.checkpoint.keep_after_finish=true was read as the "
                                                 "boolean true; give output.checkpoint.keep_after_finish one of "
                                                 "'none', 'last' or 'all'"),
    # a number's key: quoting would make a string, no number either
    ("strategy.epochs=[1, 2]", "--set strategy.epochs=[1, 2] was read as a list [1, 2]; give strategy.epochs one "
                               "number"),
    ("strategy.time_budget_s=[1]", "--set strategy.time_budget_s=[1] was read as a list [1]; give "
                                   "strategy.time_budget_s one number"),
])
def test_a_set_value_yaml_reads_as_another_kind_is_shown_as_typed_and_as_read(tmp_path, override, reading):
    """'Input should be a valid string' alone did not show that YAML read `foo:` as a mapping."""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), ["seed=1", override, "seed=2"])
    message = str(caught.value)
    assert message.startswith(f"config key '{override.partition('=')[0]}': ") and reading in message
    assert "\n" not in message


def test_a_set_value_read_as_a_string_or_number_gets_no_reading(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), ["strategy.optimizer.lr=abc"])
    assert str(caught.value).endswith("; got 'abc'")
    with pytest.raises(ConfigError) as caught:
        validate({**yaml.safe_load(BASE), "name": {"foo": None}})  # a file's own mapping: no --set to name
    assert "--set" not in str(caught.value)


@pytest.mark.parametrize("number, message", [
    ("9" * 5000, r"malformed YAML in .*config.yaml: Exceeds the limit"),
    ("0x" + "f" * 5000, r"config key 'seed': must be an integer in decimal digits .*not a string")])  # YAML 1.2: a string
def test_an_integer_of_more_digits_than_python_converts_is_one_line(tmp_path, number, message):
    """PyYAML's int() raised ValueError ('Exceeds the limit (4300 digits)'), and so did repr() of a hex one in
    the refusal's message: exit 4 with a bare exception."""
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(_write(tmp_path, BASE.replace("seed:", "old_seed:", 1) + f"seed: {number}\n"))
    assert "\n" not in str(caught.value)


def test_a_set_value_of_more_digits_than_python_converts_is_one_config_line(tmp_path):
    with pytest.raises(ConfigError, match=r"--set seed: a number of 5,000 characters is more than any config value"):
        load_config(_write(tmp_path, BASE), [f"seed={'9' * 5000}"])


def test_a_model_deeper_than_the_layer_bound_is_refused_as_the_config_loads_before_its_data(tmp_path, capsys):
    """hidden: [4] * 90000 was refused when the model was built, after the data was read: a config whose data
    path was also wrong got the data error (exit 3), and one with good data read all of it first."""
    from trainlab.cli import main

    config = {**LINREG, "data": {"source": "csv", "path": str(tmp_path / "missing.csv"), "target": "y"},
              "model": {"name": "mlp", "hidden": [4] * 3_000}}
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--quiet"]) == 2
    assert capsys.readouterr().err == ("error: config key 'model': option 'hidden' lists 3,000 layers ([4, 4, 4, "
                                       "4, ...]); trainlab builds at most 2,000 layers\n")
    config["model"]["hidden"] = [4] * 2_000  # at the bound: the config loads, and the data error is the one
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--quiet"]) == 3
    assert "missing.csv" in capsys.readouterr().err


@pytest.mark.parametrize("model, message", [
    ({"name": "MLP", "hidden": [4] * 2_001}, "option 'hidden' lists 2,001 layers ([4, 4, 4, 4, ...])"),
    ({"name": "resnet", "depth": 6 * 334 + 2}, "option 'depth' is 2,006 layers"),
    ({"name": "transformer_encoder", "layers": 90_000}, "option 'layers' is 90,000 layers")])
def test_the_layer_bound_is_one_config_line_without_torch(model, message):
    """The config checks the depth itself (config_fields.layer_count_problem): loading a config imports no torch."""
    import subprocess
    import sys

    with pytest.raises(ConfigError) as caught:
        validate({**LINREG, "model": model})
    assert str(caught.value) == f"config key 'model': {message}; trainlab builds at most 2,000 layers"
    raw = {**LINREG, "model": {"name": "mlp", "hidden": [4] * 2_001}}
    probe = (f"import sys; from trainlab.config import validate\ntry:\n    validate({raw!r})\n"
             "except Exception as exc:\n    print(type(exc).__name__, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "ConfigError False"


def test_a_users_model_keeps_its_own_meaning_of_long_options():
    validate({**LINREG, "model": {"name": "my_package.models:weighted", "class_weights": [1.0] * 5_000,
                                  "layers": 5_000}})
    validate({**LINREG, "model": {"name": "hf_pretrained", "layers": 5_000}})


def test_a_set_list_refused_for_an_element_gets_no_advice_to_quote_it(tmp_path):
    """output.loggers takes a list: `[csvv]` was refused for its unknown logger, and the line advised quoting
    the list into a string, which the key does not take either."""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), ["output.loggers=[csvv]"])
    message = str(caught.value)
    assert "unknown logger 'csvv'; did you mean 'csv'?" in message and "quote it" not in message


def test_numbers_with_an_exponent_and_no_dot_reach_the_components_as_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads `eps: 1e-8` as the string '1e-8'. The typed config fields (lr) took it, but the
    options handed to the factories (adam's eps, mlp's dropout, huber's delta, a schedule's threshold)
    failed in Python's words ('<=' not supported between 'float' and 'str'). The text stays as written in
    the config (its hash, names built from it); the factory gets the number."""
    from trainlab.experiment import train
    from trainlab.losses import build_loss

    raw = yaml.safe_load(BASE)
    raw["model"] = {"name": "mlp", "hidden": [8], "dropout": "DROPOUT"}
    raw["strategy"].update(optimizer={"name": "adam", "lr": "LR", "eps": "EPS", "betas": ["B1", 0.999]},
                           loss={"name": "huber", "delta": "DELTA"},
                           schedule={"name": "reduce_on_plateau", "threshold": "THRESHOLD"}, epochs=1)
    written = yaml.safe_dump(raw)
    for mark, number in (("DROPOUT", "1e-1"), ("LR", "1e-2"), ("EPS", "1E-8"), ("DELTA", "5e-1"),
                         ("THRESHOLD", "1e-4"), ("B1", "9e-1")):
        written = written.replace(f"'{mark}'", number).replace(mark, number)
    assert "eps: 1E-8" in written and "dropout: 1e-1" in written
    config = load_config(_write(tmp_path, written), ["strategy.optimizer.weight_decay=5e-4"])
    summary, _ = train(config, out=tmp_path / "run", quiet=True)
    assert summary["status"] == "finished"
    huber = build_loss({"name": "huber", "delta": "5e-1"})
    assert huber.delta == 0.5 and isinstance(huber.delta, float)
    with pytest.raises(ConfigError, match="must be a number"):  # text that is no number is still refused
        build_loss({"name": "huber", "delta": "half"})


def test_reduction_none_is_refused_for_a_run_with_the_losses_that_can_train(tmp_path):
    """It ended a run with exit 4: torch's 'grad can be implicitly created only for scalar outputs'."""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), ["strategy.loss.name=mse", "strategy.loss.reduction=none"])
    message = str(caught.value)
    assert message.startswith("config key 'strategy.loss': reduction 'none'") and "mean (the default) or sum" in message
    assert load_config(_write(tmp_path, BASE), ["strategy.loss.name=mse", "strategy.loss.reduction=sum"])


def test_a_numpy_integer_batch_size_is_an_int_as_a_numpy_seed_is():
    """batch_size=np.int64(16) (say len(x) // 4) was refused ('must be a positive int'), seed=np.int64 taken."""
    import numpy as np

    raw = yaml.safe_load(BASE)
    raw["strategy"]["batch_size"], raw["seed"] = np.int64(16), np.int64(3)
    config = validate(raw)
    assert config.strategy.batch_size == 16 and type(config.strategy.batch_size) is int
    raw["strategy"]["batch_size"] = np.float64(16.0)
    with pytest.raises(ConfigError, match="must be a positive int or 'full'"):
        validate(raw)


def test_set_extends_a_one_word_section_with_the_key_it_stands_for():
    """`weight_averaging: ema` is {kind: ema}, `loss: mse` {name: mse}: a later --set of an option keeps the word."""
    from trainlab.config_overrides import apply_overrides

    raw = {"strategy": {"loss": "huber"}}
    apply_overrides(raw, ["strategy.weight_averaging=ema", "strategy.weight_averaging.decay=0.9",
                          "strategy.loss.delta=2"])
    assert raw["strategy"] == {"weight_averaging": {"kind": "ema", "decay": 0.9},
                               "loss": {"name": "huber", "delta": 2}}
    raw = {**LINREG, "strategy": {**LINREG["strategy"], "weight_averaging": "ema"}}
    config = validate(apply_overrides(raw, ["strategy.weight_averaging.decay=0.9"]))
    assert config.strategy.weight_averaging.kind == "ema" and config.strategy.weight_averaging.decay == 0.9


def test_a_set_section_read_as_a_mapping_gets_no_quoting_tip(tmp_path):
    """--set 'strategy.finetune.lora={rank: 0}' was told to quote the mapping into a string, which a section
    can never be: the error is in what the mapping holds."""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), ["strategy.finetune.lora={rank: 0}"])
    message = str(caught.value)
    assert message.startswith("config key 'strategy.finetune.lora.rank': ") and "quote" not in message


def test_a_word_for_the_lr_names_auto(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, BASE), ["strategy.optimizer.lr=autoo"])
    assert str(caught.value) == ("config key 'strategy.optimizer.lr': must be a number (e.g. 0.5 or 1e-3) or 'auto' "
                                 "(an LR range test picks it); got 'autoo'; did you mean 'auto'?")


def test_a_set_inside_a_value_that_is_no_section_shows_the_value_and_the_whole_form(tmp_path):
    """`strategy.tta: true` then --set strategy.tta.translate=-1 said only "'tta' is not a section"."""
    raw = yaml.safe_load(BASE)
    raw["strategy"]["tta"] = True
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, yaml.safe_dump(raw)), ["strategy.tta.translate=2"])
    assert str(caught.value) == ("--set strategy.tta.translate=2: 'tta' is not a section (it holds true): set it "
                                 "whole instead, e.g. strategy.tta={translate: 2}")


@pytest.mark.parametrize("overrides", [5, {"strategy.epochs": 3}, [("strategy.epochs", 3)]])
def test_load_config_refuses_overrides_that_are_not_key_value_strings(tmp_path, overrides):
    """load_config(path, 5) was a bare TypeError; a dict's keys were read as overrides without values."""
    with pytest.raises(ConfigError, match=r"^overrides must be 'KEY=VALUE' or a list of them; got "):
        load_config(_write(tmp_path, BASE), overrides)


def test_one_item_written_without_its_list_is_told_to_wrap_it():
    """``groups: {name: h, select: head}`` got pydantic's "Input should be a valid list", naming neither the
    mapping received nor the fix."""
    raw = {**LINREG, "strategy": {**LINREG["strategy"], "optimizer": {"name": "sgd", "lr": 0.1,
                                                                    "groups": {"name": "h", "select": "head"}}}}
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    assert str(caught.value) == ("config key 'strategy.optimizer.groups' must be a list; got a mapping {'name': 'h', "
                                 "'select': 'head'}: for one item, write it as a list of one, e.g. groups: "
                                 "[{name: h, select: head}]")


def test_a_mapping_for_a_list_of_words_is_not_told_to_wrap_it():
    """metrics is a list of names: [{name: accuracy}] would be refused in turn, so no such example."""
    with pytest.raises(ConfigError) as caught:
        validate({**LINREG, "metrics": {"name": "accuracy"}})
    assert str(caught.value) == "config key 'metrics' must be a list; got a mapping {'name': 'accuracy'}"
