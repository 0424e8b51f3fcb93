"""compare and tune check ``strategy.optimizer.groups`` and ``data.augment`` before any run.

A strategy whose group named an unknown optimizer (``adamm``) or preset (``headd``), or whose augmentation
said ``hflip: alternate``, passed the preflight: every one of its runs trained its data reading and failed
(``compare`` then exited 0 with the failures in the leaderboard, or 4: "no run finished"). The preflight
refuses them now with the run's own line; what depends on the model (a group that takes no parameter) is
still the run's to say.
"""

from __future__ import annotations

import pytest
import yaml

from trainlab.cli import main
from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.preflight import check_components

BASE = {"name": "pre", "seed": 0, "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 64,
                     "epochs": 1},
        "metrics": ["accuracy"], "runtime": {"num_threads": 1}, "output": {"progress": "off"}}
IMAGES = {**BASE, "data": {"source": "idx", "path": "not-read", "augment": {"crop_padding": 2}}}


def _with_groups(*groups: dict) -> dict:
    optimizer = {**BASE["strategy"]["optimizer"], "groups": list(groups)}
    return {**BASE, "strategy": {**BASE["strategy"], "optimizer": optimizer}}


def _with_augment(augment) -> dict:
    return {**IMAGES, "data": {**IMAGES["data"], "augment": augment}}


@pytest.mark.parametrize(("config", "message"), [
    (_with_groups({"name": "h", "select": "head", "optimizer": "adamm"}),
     "strategy.optimizer.groups[0]: unknown optimizer 'adamm'; did you mean 'adam'?"),
    (_with_groups({"name": "h", "select": "headd"}),
     "strategy.optimizer.groups[0]: unknown select preset 'headd'; did you mean 'head'?"),
    (_with_groups({"name": "h", "select": "head", "optimizer": "muon_conv", "ns_stepz": 3}),
     "strategy.optimizer.groups 'h': optimizer 'muon_conv' has no option 'ns_stepz'; did you mean 'ns_steps'?"),
    (_with_groups({"name": "h", "select": "head"}, {"name": "b", "match": "*.bias", "optimizer": "adam",
                                                    "betas": [0.9, 1.5]}),
     "strategy.optimizer.groups 'b': optimizer 'adam': betas[1] must be in [0, 1); got 1.5"),
    (_with_groups({"name": "h", "regex": "head("}), "strategy.optimizer.groups[0]: regex 'head(' does not compile"),
    (_with_augment({"crop_padding": 2, "hflip": "alternate"}),
     "data.augment.hflip must be true, false or 'alternating'; got 'alternate'; did you mean 'alternating'?"),
    (_with_augment({"crop_pading": 2}), "unknown data.augment key 'crop_pading'; did you mean 'crop_padding'?"),
    (_with_augment({"translate": 2}),
     "unknown data.augment key 'translate': airbench's random translate by r pixels is crop_padding: r with "
     "pad_mode: reflect"),
    (_with_augment({"pad_mode": "zeros"}), "data.augment.pad_mode must be one of reflect, zero; got 'zeros'"),
])
def test_the_preflight_refuses_what_every_run_would(config, message):
    with pytest.raises(ConfigError) as raised:
        check_components(validate(config))
    assert str(raised.value).startswith(message)


def test_what_depends_on_the_model_is_left_to_the_run():
    """conv_filters on an MLP takes nothing (the run says so, naming the parameters); the preflight, which
    has no model, lets it through, as it does a good augmentation."""
    check_components(validate(_with_groups({"name": "f", "select": "conv_filters", "optimizer": "muon_conv",
                                            "lr": 0.02})))
    check_components(validate(_with_augment({"crop_padding": 2, "pad_mode": "reflect", "hflip": "alternating"})))


def test_compare_refuses_a_bad_group_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"strategies": {
        "plain": {}, "routed": {"strategy.optimizer.groups": [{"name": "h", "select": "head", "optimizer": "adamm"}]}}}))
    assert main(["compare", "base.yaml", "--strategies", "s.yaml", "--seeds", "2", "--out", "out"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: strategy 'routed': strategy.optimizer.groups[0]: unknown optimizer 'adamm'")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "runs").exists()  # refused before the first run (the plain one too)


def moons(n: int = 60, augment: str = "none", seed: int = 0):
    """A data source of the user's whose own ``augment`` option means something else (not data.augment's)."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.3 if augment == "jitter" else 0.1, random_state=seed)
    return x.astype("float32"), y


class ConvOnly(__import__("torch").optim.SGD):
    """A user's optimizer for conv kernels only: it refuses any other shape, as a 2-D dummy weight is."""

    def __init__(self, params, lr: float = 0.01):
        params = list(params)
        for group in params:
            for p in group["params"] if isinstance(group, dict) else [group]:
                if p.ndim != 3:
                    raise ValueError(f"ConvOnly takes 3-D conv kernels; got a {p.ndim}-D parameter")
        super().__init__(params, lr=lr)


def test_a_custom_sources_own_augment_option_is_not_read_as_images():
    config = {**BASE, "data": {"source": f"{__name__}:moons", "augment": "jitter"}}
    check_components(validate(config))  # was: "data.augment must be true, false or a mapping ...; got 'jitter'"


def test_a_custom_group_optimizer_is_not_built_on_a_dummy_its_options_are_checked():
    """Built on the 2-D dummy, a conv-only optimizer of the user's refused what the run (on conv kernels)
    accepts; its option names are still checked."""
    reference = f"{__name__}:ConvOnly"
    check_components(validate(_with_groups({"name": "f", "select": "conv_filters", "optimizer": reference})))
    with pytest.raises(ConfigError, match="has no option 'momentun'"):
        check_components(validate(_with_groups({"name": "f", "select": "conv_filters", "optimizer": reference,
                                                "momentun": 0.9})))


def test_every_lr_an_optimizer_trains_at_is_checked_not_only_its_first_groups():
    """adadelta_zeiler has no lr (1.0 only): a group at 0.5 behind the rest's 1.0 trained at 0.5 unrefused."""
    import torch

    from trainlab.optim.routing import build_routed_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    with pytest.raises(ConfigError, match=r"groups 'rest', 'w'.*lr=0\.5"):
        build_routed_optimizer(model, {"name": "adadelta_zeiler", "lr": 1.0},
                               [{"name": "w", "match": "1.weight", "lr": 0.5}])
    build_routed_optimizer(model, {"name": "adadelta_zeiler", "lr": 1.0}, [{"name": "w", "match": "1.weight"}])


def test_a_metric_name_no_task_has_is_refused_before_the_data_is_read(tmp_path, capsys):
    """metrics: [acuracy] on a CSV with a missing cell gave the data's error (exit 3); with the data fixed, the
    metric's (exit 2). A name no task has is refused first; one of another task ('r2' for classes) waits for
    the data, which tells the task."""
    rows = ["x,y"] + [f"{i},{'ab'[i % 2]}" for i in range(20)]
    rows[5] = ",a"  # a missing feature: the data's error, were the data read first
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    config = {**BASE, "data": {"source": "csv", "path": str(tmp_path / "d.csv"), "target": "y"},
              "metrics": ["accuracy", "acuracy"]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown metric 'acuracy'; did you mean 'accuracy'? (valid: accuracy, ")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()
    check_components(validate({**BASE, "metrics": ["accuracy", "r2"]}), before_data=True)
    with pytest.raises(ConfigError, match=r"^unknown metric 'f1_macr'; did you mean 'f1_macro'\?"):
        check_components(validate({**BASE, "data": {"source": "digits", "task": "multiclass"}, "metrics": ["f1_macr"]}))
