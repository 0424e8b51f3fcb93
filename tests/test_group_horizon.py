"""``strategy.optimizer.groups[i].train_epochs``: a group trains for its first epochs only, then stops.

The contract (trainlab.callbacks.lr_adapter.GroupHorizon): with ``T_g = ceil(E * steps_per_epoch)``
the group's lr is ``lr_g * schedule_{T_g}(t)`` for ``t < T_g`` (warmup_linear with no warmup:
``lr_g * (T_g - t) / T_g``, airbench's whitening-bias rule) and from step ``T_g`` on its parameters
do not move at all (no gradient, so no momentum or weight decay either).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from tests.resume_from_checkpoints import resumed_model_bytes, train_keeping_checkpoints
from tests.test_optim_routing import BASE as ROUTED
from trainlab.config import validate
from trainlab.engine.step import LRGroups
from trainlab.errors import ConfigError
from trainlab.optim.routing import build_routed_optimizer

# the routing tests' mnist1d CNN (tests/test_optim_routing.py) on 400 samples, with a horizon
BASE = copy.deepcopy(ROUTED)
BASE.update(name="horizon", seed=3)
BASE["data"]["num_samples"] = 400
BASE["strategy"].update(
    optimizer={"name": "nesterov", "lr": 0.05, "momentum": 0.85, "groups": [
        {"name": "norm_biases", "select": "norm_biases", "lr": 0.03, "weight_decay": 0.05, "train_epochs": 1.5},
        {"name": "head", "select": "head", "lr": 0.3, "weight_decay": 0.005},
    ]},
    # micro-batches of 16, two to an optimizer step: the horizon counts optimizer steps (8 an epoch)
    batch_size=16, grad_accum_steps=2, epochs=3,
    # the clip sees every gradient: a group that kept its gradients past its horizon would change the
    # clipped steps of the others, so the resume test below fails unless the group is stopped again
    clip_grad_norm=0.05,
)


def _norm_biases(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    norms = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)]
    assert norms
    return {f"{name}.bias": m.bias for name, m in norms}


def test_group_follows_its_own_linear_decay_then_stops_while_the_rest_trains_on():
    from trainlab.builders import build, run_scope

    config = validate(BASE)
    with run_scope(config):
        built = build(config, quiet=True)
        optimizer, model = built.step.optimizer, built.step.model
        steps_per_epoch, total = built.trainer.plan.steps_per_epoch, built.trainer.total_steps
        horizon = math.ceil(1.5 * steps_per_epoch)
        seen, frozen_at = [], {}
        inner_step = optimizer.step

        def recording_step(closure=None):
            k = len(seen)
            seen.append({g["route"]: g["lr"] for g in optimizer.param_groups})
            biases = _norm_biases(model)
            if k == horizon:  # the first stopped step: its gradients were never computed
                assert all(not p.requires_grad and p.grad is None for p in biases.values())
                frozen_at.update({n: p.detach().clone() for n, p in biases.items()})
            if k == horizon - 1:
                assert all(p.requires_grad and p.grad is not None for p in biases.values())
            return inner_step(closure)

        before = {n: p.detach().clone() for n, p in _norm_biases(model).items()}
        optimizer.step = recording_step
        built.trainer.fit()
    assert (steps_per_epoch, horizon, total) == (8, 12, 24) and len(seen) == total
    for k, lrs in enumerate(seen):  # closed forms: the run's decay over T, the group's over T_g
        assert lrs["head"] == pytest.approx(0.3 * (total - k) / total, rel=1e-12), k
        expected = 0.03 * (horizon - k) / horizon if k < horizon else 0.0
        assert lrs["norm_biases"] == pytest.approx(expected, rel=1e-12, abs=0.0), k
    final = _norm_biases(model)
    assert frozen_at and all(torch.equal(final[n], frozen_at[n]) for n in final)  # not moved after T_g
    assert all(not torch.equal(frozen_at[n], before[n]) for n in final)  # but trained before it
    assert all(p.requires_grad for p in final.values())  # given back at the end: the model trains on elsewhere


def test_resume_across_the_horizon_is_bit_identical(tmp_path):
    full, folders = train_keeping_checkpoints(BASE, tmp_path, every_n_steps=5)
    reference = (full / "model.safetensors").read_bytes()
    # 8 steps per epoch (256 training rows): the horizon is step 12; resume before it and after it
    assert max(folders) == 24
    for step in (10, 20):
        assert resumed_model_bytes(full, folders[step], tmp_path) == reference, step


def test_lr_groups_stop_a_route_and_give_it_back():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = build_routed_optimizer(net, {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                                       [{"name": "last", "match": "1.*", "lr": 0.4}])
    lrs = LRGroups([optimizer])
    by_route = lambda: {g["route"]: g["lr"] for g in optimizer.param_groups}  # noqa: E731
    net(torch.ones(1, 3)).sum().backward()
    assert lrs.set_factor(0.5, {"last": 0.25}) is False  # nothing stopped
    assert by_route() == {"rest": 0.05, "last": 0.1}
    assert lrs.set_factor(0.5, {"last": None}) is True
    assert by_route() == {"rest": 0.05, "last": 0.0}
    assert not net[1].weight.requires_grad and net[1].weight.grad is None and net[0].weight.requires_grad
    assert lrs.set_factor(0.5, {"last": None}) is False  # unchanged: nothing to do
    assert lrs.set_factor(0.5, {"last": 1.0}) is True  # a rollback to before the horizon trains it again
    assert net[1].weight.requires_grad and net[1].bias.requires_grad and by_route()["last"] == pytest.approx(0.4)


def test_bad_horizons_are_one_line_config_errors():
    from trainlab.builders import build, run_scope

    def changed(edit) -> dict:
        raw = copy.deepcopy(BASE)
        edit(raw["strategy"])
        return raw

    cases = [
        (lambda st: st["optimizer"]["groups"][0].update(train_epochs=0), r"groups\.0\.train_epochs"),
        (lambda st: st["optimizer"]["groups"][1].update(name="norm_biases"),
         r"groups\[1\]: groups\[0\] has the name 'norm_biases' too; give each group a name of its own"),
        (lambda st: st["optimizer"]["groups"][0].update(name="rest"), r"the name 'rest' is the top level's route"),
        # names are routes for every group, with train_epochs or without (the records' lr/<name>)
        (lambda st: st["optimizer"]["groups"][1].update(name="rest"), r"groups\[1\]: the name 'rest' is the top"),
        (lambda st: st["optimizer"]["groups"].append({"name": "head", "select": "biases"}),
         r"groups\[2\]: groups\[1\] has the name 'head' too"),
        (lambda st: st.update(schedule={"name": "reduce_on_plateau"}),
         r"'norm_biases' has train_epochs, which needs a schedule of the step"),
    ]
    for edit, message in cases:
        with pytest.raises(ConfigError, match=message) as caught:
            validate(changed(edit))
        assert "\n" not in str(caught.value)
    # every parameter stopped before the end: nothing would train
    config = validate(changed(lambda st: st["optimizer"].update(groups=[
        {"name": "all", "ndim_at_least": 0, "train_epochs": 1}])))
    with run_scope(config), pytest.raises(ConfigError, match=r"stops at step 8 of the run's 24: nothing would train"):
        build(config, quiet=True)
    # a misspelt group key: named as such, not as an unknown option of the group's optimizer
    config = validate(changed(lambda st: st["optimizer"]["groups"][0].update(train_epoch=2)))
    with run_scope(config), pytest.raises(ConfigError, match=r"groups\[0\]: unknown key 'train_epoch'; did you "
                                                             r"mean 'train_epochs'\?"):
        build(config, quiet=True)
    # the group's own schedule cannot be built over its steps: the message says why, with train_epochs
    config = validate(changed(lambda st: st.update(schedule={"name": "warmup_linear", "warmup_steps": 15})))
    with run_scope(config), pytest.raises(ConfigError, match=r"train_epochs=1\.5 is 12 steps, over which its "
                                                             r"schedule is built: .*warmup_steps"):
        build(config, quiet=True)


def test_a_step_with_the_one_argument_lr_contract_still_runs_under_the_adapter():
    from types import SimpleNamespace

    from trainlab.callbacks.base import TrainerView
    from trainlab.callbacks.lr_adapter import LRAdapter

    class OneArgumentStep:
        factors: list[float] = []

        def set_lr_factor(self, factor: float) -> None:
            self.factors.append(factor)

    step = OneArgumentStep()
    view = TrainerView(SimpleNamespace(step=step, state=SimpleNamespace(step=3, lr_scale=0.5)))
    LRAdapter(lambda t: 1.0 - t / 10).on_step_start(view)
    assert step.factors == [pytest.approx(0.35)]


def test_config_without_horizons_keeps_its_dump():
    raw = copy.deepcopy(BASE)
    del raw["strategy"]["optimizer"]["groups"][0]["train_epochs"]
    groups = validate(raw).to_dict()["strategy"]["optimizer"]["groups"]
    assert all("train_epochs" not in group for group in groups)
    assert validate(BASE).to_dict()["strategy"]["optimizer"]["groups"][0]["train_epochs"] == 1.5


def test_schedule_plan_and_plot_draw_the_group_to_its_horizon_then_zero(tmp_path, capsys):
    from trainlab.cli import main
    from trainlab.plots import schedule_figure
    from trainlab.schedule_plan import plan_schedule

    config = validate(BASE)
    plan = plan_schedule(config, 256)  # 256 training rows, 2 x 16 per step: 8 steps per epoch, 24 in all
    assert plan.total_steps == 24 and plan.horizons is not None and plan.horizons["norm_biases"][0] == 12
    figure = schedule_figure(plan.schedule, plan.total_steps, plan.base_lr, plan.steps_per_epoch,
                             group_lrs=plan.group_lrs, horizons=plan.horizons)
    lines = {line.get_gid(): line.get_ydata() for line in figure.axes[0].lines if line.get_gid()}
    expected = [0.03 * (12 - t) / 12 if t < 12 else 0.0 for t in range(24)]
    assert list(lines["lr:norm_biases"]) == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert list(lines["lr:head"]) == pytest.approx([0.3 * (24 - t) / 24 for t in range(24)], rel=1e-12)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert main(["schedule", str(path), "--plot", str(tmp_path / "lr.png")]) == 0
    assert "norm_biases lr 0.03 for its first 12 steps" in capsys.readouterr().out


def test_records_carry_each_groups_lr_next_to_the_first_groups(tmp_path):
    """Epoch and step records: ``lr`` (the first param group's, here the unselected parameters') and
    ``lr/<group>`` for every route, at the closed forms of the test above: a record at step t holds the
    lrs its last optimizer step (k = t - 1, counted from 0) ran with."""
    import json

    from trainlab.experiment import train

    config = validate({**BASE, "output": {**BASE["output"], "log_every_n_steps": 3}})
    _, run_dir = train(config, out=tmp_path / "run", quiet=True)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "val_loss" in r and r.get("scope") != "step"]
    steps = [r for r in records if r.get("scope") == "step" and "train_loss" in r]
    assert [r["step"] for r in epochs] == [8, 16, 24] and [r["step"] for r in steps][:3] == [3, 6, 9]
    total, horizon = 24, 12
    for record in epochs + steps:
        t = record["step"] - 1
        assert {k for k in record if k.startswith("lr")} == {"lr", "lr/rest", "lr/norm_biases", "lr/head"}
        assert record["lr"] == record["lr/rest"] == pytest.approx(0.05 * (total - t) / total, abs=1e-12), t
        assert record["lr/head"] == pytest.approx(0.3 * (total - t) / total, abs=1e-12), t
        own = 0.03 * (horizon - t) / horizon if t < horizon else 0.0
        assert record["lr/norm_biases"] == pytest.approx(own, abs=1e-12), t


def test_records_of_an_optimizer_without_groups_have_lr_alone(tmp_path):
    import json

    from trainlab.experiment import train

    plain = copy.deepcopy(BASE)
    plain["strategy"]["optimizer"] = {"name": "nesterov", "lr": 0.05, "momentum": 0.85}
    _, run_dir = train(validate(plain), out=tmp_path / "run", quiet=True)
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert [k for k in first if k.startswith("lr")] == ["lr"]
