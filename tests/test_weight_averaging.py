"""strategy.weight_averaging: EMA and lookahead against NumPy, evaluation and saving on the averaged weights,
kill-and-resume bit-identical, config errors.

The formula tests drive :class:`AveragedStep` with a scripted inner step (each step adds a scripted
increment to the weights, no training, as Keras tests callbacks with a DummyModel) and compare with
the published rules written out in NumPy float64 here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from tests.conftest import DIGITS_MLP
from trainlab.builders import build, fit_config, run_scope
from trainlab.callbacks.base import Callback
from trainlab.config import validate
from trainlab.engine import checkpoint
from trainlab.engine.serialize import join_state, split_state
from trainlab.engine.state import TrainState
from trainlab.engine.step import StepOutput
from trainlab.engine.weight_averaging import AveragedStep, AveragingRule, averaging_updates, start_share
from trainlab.errors import ConfigError
from trainlab.experiment import train
from trainlab.run_evaluation import evaluate_run
from trainlab.run_resume import resume
from trainlab.step_builders import first_step_after

# ---------------------------------------------------------------------------------------------- scripted steps


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    return model


def _float_names(model: nn.Module) -> list[str]:
    return [k for k, v in model.state_dict().items() if v.is_floating_point()]


class ScriptedStep:
    """A stand-in Step: step t adds ``increments[t]`` to every float entry of the state (and 1 to int buffers)."""

    def __init__(self, model: nn.Module, increments: list[dict[str, torch.Tensor]]):
        self.model, self.device, self.increments = model, torch.device("cpu"), increments
        self.training: bool | None = None

    def train_step(self, batches, state: TrainState) -> StepOutput:
        with torch.no_grad():
            for name, value in self.model.state_dict().items():
                value.add_(self.increments[state.step][name] if value.is_floating_point() else 1)
        return StepOutput({"loss": torch.zeros(())}, 1)

    def set_mode(self, training: bool) -> None:
        self.training = training

    def predict(self, x):
        return self.model(x)

    def lr(self) -> float:
        return 0.1

    def set_lr_factor(self, factor: float) -> None: ...

    def weights(self):
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights) -> None:
        self.model.load_state_dict(weights)

    def parameters_changed(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "training": self.training}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.training = state["training"]


def _increments(model: nn.Module, steps: int, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [{k: torch.randn(v.shape, generator=generator) * 0.1 for k, v in model.state_dict().items()
             if v.is_floating_point()} for _ in range(steps)]


def _flat(model_or_dict, names: list[str]) -> np.ndarray:
    state = model_or_dict.state_dict() if isinstance(model_or_dict, nn.Module) else model_or_dict
    return np.concatenate([state[n].detach().double().numpy().ravel() for n in names])


def _drive(step: AveragedStep, first: int, last: int, steps_per_epoch: int) -> None:
    """Optimizer steps first+1 .. last, as the loop runs them (batch_in_epoch = position in the epoch)."""
    state = TrainState(step=first)
    step.set_mode(training=True)
    for _ in range(first, last):
        state.batch_in_epoch = state.step % steps_per_epoch + 1
        step.train_step([], state)
        state.step += 1


def _numpy_reference(w0: np.ndarray, deltas: list[np.ndarray], *, kind: str, decay: float, every: int = 1,
                     start: int = 0, power: float = 0.0, warmup: bool = False, total: int = 1,
                     steps_per_epoch: int = 10**9) -> tuple[np.ndarray, np.ndarray | None]:
    """(raw, averaged) after len(deltas) steps, airbench94's LookaheadState / timm ModelEma written out."""
    raw, shadow, k = w0.copy(), None, 0
    for t, delta in enumerate(deltas, start=1):
        raw = raw + delta
        if t > start and t % every == 0:
            if shadow is None:
                shadow = raw.copy()  # LookaheadState(net): a copy of the weights
            else:
                rho = decay ** every * (t / total) ** power
                if warmup:
                    rho = min(rho, (1 + k) / (10 + k))
                shadow = rho * shadow + (1 - rho) * raw
                k += 1
                if kind == "lookahead":
                    raw = shadow.copy()
        if kind == "lookahead" and shadow is not None and t % steps_per_epoch == 0:
            raw = shadow.copy()  # airbench: update(decay=1.0) after each epoch
    return raw, shadow


def _run_scripted(rule: AveragingRule, steps: int, steps_per_epoch: int = 10**9):
    model = _model()
    names = _float_names(model)
    increments = _increments(model, steps)
    w0 = _flat(model, names)
    step = AveragedStep(ScriptedStep(model, increments), rule, micro_batches=steps_per_epoch)
    _drive(step, 0, steps, steps_per_epoch)
    deltas = [_flat(inc, names) for inc in increments]
    return step, names, w0, deltas


def test_ema_matches_the_closed_form_of_a_constant_decay():
    """shadow_N = d^(N-1) w_1 + sum_{t=2..N} (1 - d) d^(N-t) w_t (the shadow starts as w_1)."""
    decay, steps = 0.9, 25
    step, names, w0, deltas = _run_scripted(AveragingRule("ema", decay), steps)
    weights = w0 + np.cumsum(deltas, axis=0)  # w_1 .. w_N
    expected = decay ** (steps - 1) * weights[0]
    for t in range(2, steps + 1):
        expected = expected + (1 - decay) * decay ** (steps - t) * weights[t - 1]
    np.testing.assert_allclose(_flat(step.averaged_weights(), names), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(step.raw_weights(), names), weights[-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [
    {"every_n_steps": 3, "start_step": 6},
    {"every_n_steps": 5, "decay_power": 3.0, "total_steps": 40},  # airbench94's schedule
    {"warmup": True},
    {"every_n_steps": 2, "warmup": True, "decay_power": 1.0, "total_steps": 40, "start_step": 7},
])
def test_ema_schedules_match_numpy(options):
    rule = AveragingRule("ema", 0.97, **options)
    step, names, w0, deltas = _run_scripted(rule, 40)
    raw, shadow = _numpy_reference(w0, deltas, kind="ema", decay=0.97, every=rule.every_n_steps,
                                   start=rule.start_step, power=rule.decay_power, warmup=rule.warmup,
                                   total=rule.total_steps)
    np.testing.assert_allclose(_flat(step.averaged_weights(), names), shadow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(step.raw_weights(), names), raw, rtol=1e-5, atol=1e-6)


def test_lookahead_matches_airbench_with_its_epoch_end_reset():
    rule = AveragingRule("lookahead", 0.95, every_n_steps=5, start_step=10, decay_power=3.0, total_steps=43)
    step, names, w0, deltas = _run_scripted(rule, 43, steps_per_epoch=12)
    raw, slow = _numpy_reference(w0, deltas, kind="lookahead", decay=0.95, every=5, start=10, power=3.0,
                                 total=43, steps_per_epoch=12)
    np.testing.assert_allclose(_flat(step.averaged_weights(), names), slow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(step.raw_weights(), names), raw, rtol=1e-5, atol=1e-6)
    assert not np.allclose(raw, slow)  # 43 is mid-epoch and not an update step: fast moved on since


def test_lookahead_resets_at_an_epoch_whose_last_step_a_rollback_skipped():
    """An epoch of 12 steps whose last batch a divergence rollback skipped ends at its 11th step: the loop
    calls no 12th, so the epoch's end reset (fast <- slow) comes after the 11th. It never came."""
    rule = AveragingRule("lookahead", 0.8, every_n_steps=4)
    model = _model()
    names = _float_names(model)
    increments = _increments(model, 11)
    w0 = _flat(model, names)
    step = AveragedStep(ScriptedStep(model, increments), rule, micro_batches=12)
    state = TrainState(skipped_batches=[[0, 11]])
    step.set_mode(training=True)
    for position in range(1, 12):  # batches 0..10 of epoch 0
        state.batch_in_epoch = position
        step.train_step([], state)
        state.step += 1
    raw, slow = _numpy_reference(w0, [_flat(inc, names) for inc in increments], kind="lookahead", decay=0.8,
                                 every=4, steps_per_epoch=11)
    np.testing.assert_allclose(_flat(step.averaged_weights(), names), slow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(step.raw_weights(), names), raw, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(raw, slow)


def test_weights_loaded_in_eval_mode_are_the_averaged_weights_a_checkpoint_then_holds():
    """Early stopping's restore_best loads the best weights in eval mode, where the model shows the shadow: they
    become the shadow too, so a state captured after it holds one set of evaluated weights, not the best model
    beside the last average (which checkpoint_state puts over the model)."""
    model = _model()
    names = _float_names(model)
    step = AveragedStep(ScriptedStep(model, _increments(model, 6)), AveragingRule("ema", 0.5), micro_batches=100)
    _drive(step, 0, 6, 100)
    step.set_mode(training=False)
    best = {name: torch.full_like(value, 0.25) if value.is_floating_point() else value
            for name, value in model.state_dict().items()}
    step.load_weights(best)
    state = step.state_dict()
    expected = np.full(len(_flat(best, names)), 0.25)
    np.testing.assert_array_equal(_flat(state["weight_averaging"]["shadow"], names), expected)
    np.testing.assert_array_equal(_flat(state["model"], names), expected)


def test_lookahead_is_slow_plus_alpha_times_fast_minus_slow():
    """Zhang et al. (2019): every k steps slow += alpha (fast - slow), fast = slow, with alpha = 1 - decay**k."""
    k, decay = 4, 0.8
    step, names, w0, deltas = _run_scripted(AveragingRule("lookahead", decay, every_n_steps=k), 20)
    alpha = 1 - decay ** k
    fast, slow = w0.copy(), None
    for t, delta in enumerate(deltas, start=1):
        fast = fast + delta
        if t % k == 0:
            slow = fast.copy() if slow is None else slow + alpha * (fast - slow)
            fast = slow.copy()
    np.testing.assert_allclose(_flat(step.averaged_weights(), names), slow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(step.raw_weights(), names), fast, rtol=1e-5, atol=1e-6)


def test_eval_mode_shows_the_average_and_training_gets_its_raw_weights_back():
    step, names, _, _ = _run_scripted(AveragingRule("ema", 0.9), 12)
    model = step.model
    raw_before = {k: v.clone() for k, v in model.state_dict().items()}
    step.set_mode(training=False)
    shown = model.state_dict()
    for name in names:
        assert torch.equal(shown[name], step.shadow[name])
        assert not torch.equal(shown[name], raw_before[name])
    # integer buffers are not averaged: the live count stays
    assert torch.equal(shown["1.num_batches_tracked"], raw_before["1.num_batches_tracked"])
    assert step.weights()["0.weight"].equal(step.shadow["0.weight"])  # what early stopping would keep
    step.set_mode(training=False)  # twice: still the raw weights aside, not the average
    step.set_mode(training=True)
    assert all(torch.equal(model.state_dict()[k], raw_before[k]) for k in raw_before)


def test_before_averaging_begins_evaluation_uses_the_raw_weights():
    step, _, _, _ = _run_scripted(AveragingRule("ema", 0.9, start_step=100), 12)
    raw = {k: v.clone() for k, v in step.model.state_dict().items()}
    step.set_mode(training=False)
    assert step.shadow is None and all(torch.equal(step.model.state_dict()[k], raw[k]) for k in raw)


@pytest.mark.parametrize("captured_in_eval_mode", [False, True])
def test_state_dict_round_trip_continues_bit_identically(captured_in_eval_mode):
    rule = AveragingRule("lookahead", 0.9, every_n_steps=3, decay_power=1.0, total_steps=30)
    increments = _increments(_model(), 30)
    reference = AveragedStep(ScriptedStep(_model(), increments), rule, micro_batches=8)
    _drive(reference, 0, 30, 8)

    first = AveragedStep(ScriptedStep(_model(), increments), rule, micro_batches=8)
    _drive(first, 0, 13, 8)
    first.set_mode(training=not captured_in_eval_mode)
    tree, tensors = split_state(first.state_dict())
    saved = join_state(json.loads(json.dumps(tree)), {k: v.clone() for k, v in tensors.items()})
    resumed = AveragedStep(ScriptedStep(_model(seed=5), increments), rule, micro_batches=8)
    resumed.load_state_dict(saved)
    _drive(resumed, 13, 30, 8)
    for name, value in reference.shadow.items():
        assert torch.equal(resumed.shadow[name], value)
    assert all(torch.equal(resumed.raw_weights()[k], v) for k, v in reference.raw_weights().items())
    assert resumed.updates == reference.updates


def test_rule_validation_names_the_value():
    with pytest.raises(ValueError, match="decay must be in"):
        AveragingRule("ema", 1.0)
    with pytest.raises(ValueError, match="kind must be one of ema, lookahead"):
        AveragingRule("swa", 0.9)


# ---------------------------------------------------------------------------------------------- real runs


def _config(**averaging: Any) -> dict[str, Any]:
    config = copy.deepcopy(DIGITS_MLP)
    config["model"]["dropout"] = 0.0
    config["strategy"].update(batch_size=64, epochs=2, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9})
    config["strategy"]["weight_averaging"] = averaging or {"kind": "ema", "decay": 0.9}
    config["output"] = {"progress": "off", "checkpoint": {"every_n_steps": 5, "keep_last": 50,
                                                          "keep_after_finish": "all"}}
    return config


def _val_loss_by_hand(model_weights: dict[str, torch.Tensor], built) -> float:
    """Cross-entropy of a plain copy of the model with ``model_weights`` on the validation split."""
    model = copy.deepcopy(built.model).eval()
    model.load_state_dict(model_weights)
    device = next(model.parameters()).device
    x = built.data.val.x.to(device)
    if built.data.eval_transform is not None:
        x = built.data.eval_transform(x, None)
    with torch.no_grad():
        return float(F.cross_entropy(model(x.float()), built.data.val.y.to(device)))


def test_validation_and_the_model_use_the_averaged_weights():
    built = fit_config(validate(_config()))
    step = built.step
    assert isinstance(step, AveragedStep)
    full = {k: v.clone() for k, v in built.model.state_dict().items()}
    averaged, raw = step.averaged_weights(), step.raw_weights()
    assert all(torch.equal(full[k], v) for k, v in averaged.items())  # after fit: the averaged weights
    assert any(not torch.allclose(raw[k], averaged[k], atol=1e-3) for k in raw)
    raw_full = {**full, **raw}
    recorded = built.trainer.state.history[-1]["val_loss"]
    assert recorded == pytest.approx(_val_loss_by_hand(full, built), rel=1e-5)
    assert abs(recorded - _val_loss_by_hand(raw_full, built)) > 1e-3  # the raw weights evaluate otherwise
    assert built.notes["weight_averaging"]["kind"] == "ema"


def test_lookahead_ends_each_epoch_on_the_slow_weights():
    built = fit_config(validate(_config(kind="lookahead", decay=0.9, every_n_steps=5)))
    averaged, raw = built.step.averaged_weights(), built.step.raw_weights()
    assert all(torch.equal(raw[k], v) for k, v in averaged.items())  # the run ended at an epoch's end


def test_the_run_folder_saves_the_averaged_model_and_keeps_the_raw_weights_in_the_checkpoint(tmp_path):
    summary, out = train(validate(_config()), out=tmp_path / "run", quiet=True)
    assert summary["notes"]["weight_averaging"]["evaluated"] == "averaged weights"
    saved = load_file(out / "model.safetensors")
    folder, _, tree, tensors = checkpoint.latest(out / "checkpoint")
    parts = join_state(tree["parts"], tensors)["step"]
    averaging = parts["weight_averaging"]
    for name, value in averaging["shadow"].items():
        assert torch.equal(saved[name], value)
    assert averaging["raw"] is not None and averaging["training"] is False  # written in eval mode
    assert any(not torch.equal(averaging["raw"][k], saved[k]) for k in averaging["raw"])
    # `trainlab eval` reloads model.safetensors as it is: the summary's metrics come back
    assert evaluate_run(out, "test") == pytest.approx(summary["test"])
    assert evaluate_run(out, "val") == pytest.approx(summary["val"])


def test_restore_best_puts_back_the_best_epochs_averaged_weights():
    config = _config()
    config["strategy"].update(epochs=6, optimizer={"name": "sgd", "lr": 0.3, "momentum": 0.9},
                              early_stopping={"monitor": "val_loss", "patience": 2, "restore_best": True})
    config["strategy"]["weight_averaging"] = {"kind": "ema", "decay": 0.8}
    with run_scope(validate(config)):
        built = build(validate(config), quiet=True)
        built.trainer.fit()
        history = built.trainer.state.history
        best = min(history, key=lambda r: r["val_loss"])
        assert best is not history[-1]  # else restoring would change nothing
        assert built.evaluator.evaluate(built.data.val)["loss"] == pytest.approx(best["val_loss"], rel=1e-6)


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing of the run's ending runs."""


class KillAtStep(Callback):
    order = 95  # after the checkpoint saver (90)
    name = "kill_at_step"

    def __init__(self, at: int, at_epoch_end: bool = False):
        self.at, self.at_epoch_end = at, at_epoch_end

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at and not self.at_epoch_end:
            raise _Killed

    def on_epoch_end(self, view, record) -> None:
        if view.state.step == self.at and self.at_epoch_end:
            raise _Killed  # after the epoch's checkpoint, written with the averaged weights swapped in


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in lines]


@pytest.mark.parametrize("kind", ["ema", "lookahead"])
def test_kill_and_resume_is_bit_identical(kind, tmp_path):
    config = _config(kind=kind, decay=0.9, every_n_steps=2, warmup=True, decay_power=1.0, start_epochs=0.5)
    config["output"]["checkpoint"]["every_n_epochs"] = 1
    reference_summary, reference = train(validate(config), out=tmp_path / "reference", quiet=True)
    steps_per_epoch = reference_summary["steps"] // 2
    out = tmp_path / "killed"
    with pytest.raises(_Killed):  # mid-epoch, from the step-15 checkpoint (train mode)
        train(validate(config), out=out, quiet=True, callbacks=[KillAtStep(17)])
    with pytest.raises(_Killed):  # at the first epoch's end, from its checkpoint (eval mode: raw set aside)
        resume(out, quiet=True, callbacks=[KillAtStep(steps_per_epoch, at_epoch_end=True)])
    summary, _ = resume(out, quiet=True)
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert _records(out) == _records(reference)
    for key in ("steps", "val", "test"):
        assert summary[key] == reference_summary[key]
    raws = [join_state(tree["parts"], tensors)["step"]["weight_averaging"]["raw"]
            for _, _, tree, tensors in (checkpoint.latest(folder / "checkpoint") for folder in (out, reference))]
    assert all(torch.equal(raws[0][k], raws[1][k]) for k in raws[1])


@pytest.mark.parametrize(("start_epochs", "steps_per_epoch", "first"), [
    (0.5, 3, 2), (0.4, 4, 2), (1.5, 1, 2), (0.7, 10, 8), (3, 97, 292), (0, 5, 1), (0.29, 100, 30), (2.5, 2, 6)])
def test_averaging_starts_at_the_first_step_past_start_epochs_as_the_docs_say(start_epochs, steps_per_epoch, first):
    """docs/weight_averaging.md: due at the first step t (t % n == 0) with t > start_epochs x steps_per_epoch,
    the product in exact arithmetic (``first`` worked out by hand: 0.29 x 100 is 29, so step 30). round() of
    the product started a step late wherever it rounded up (0.5 x 3 = 1.5: step 3)."""
    rule = AveragingRule("ema", 0.9, 1, start_step=first_step_after(start_epochs * steps_per_epoch))
    assert next(t for t in range(1, 1000) if rule.due(t)) == first


# ---------------------------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(("averaging", "expected"), [
    ({"kind": "emma"}, "strategy.weight_averaging.kind"),
    ({"kind": "ema", "decay": 1.0}, "strategy.weight_averaging.decay"),
    ({"kind": "ema", "every_n_steps": 0}, "strategy.weight_averaging.every_n_steps"),
    ({"kind": "ema", "decai": 0.9}, "did you mean 'decay'"),
    ({"decay": 0.9}, "strategy.weight_averaging.kind' is required"),
    ("swa", "strategy.weight_averaging.kind"),
])
def test_config_errors_are_one_line(averaging, expected):
    config = _config()
    config["strategy"]["weight_averaging"] = averaging
    with pytest.raises(ConfigError) as error:
        validate(config)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_shorthand_names_the_kind():
    assert validate({**_config(), "strategy": {**_config()["strategy"], "weight_averaging": "lookahead"}}) \
        .strategy.weight_averaging.kind == "lookahead"


def test_name_picks_the_kind_as_it_picks_every_other_component():
    """`{name: ema}` (as loss, optimizer, schedule and init are picked) was "'kind' is required"."""
    def averaging(value):
        return validate({**_config(), "strategy": {**_config()["strategy"], "weight_averaging": value}}) \
            .strategy.weight_averaging

    ema = averaging({"name": "ema", "decay": 0.8})
    assert (ema.kind, ema.decay) == ("ema", 0.8)
    assert averaging({"name": "lookahead"}).every_n_steps == 5  # lookahead's own defaults follow the name
    for kinds in (("ema", "lookahead"), ("ema", "ema")):  # both keys: refused, not guessed, and not as unknown
        with pytest.raises(ConfigError, match=rf"^config key 'strategy.weight_averaging': name \('{kinds[0]}'\) and "
                                              rf"kind \('{kinds[1]}'\) are the same key \(name is read as kind\): "
                                              "give one$"):
            averaging({"name": kinds[0], "kind": kinds[1]})


def test_lookahead_defaults_are_the_papers_not_emas():
    """`weight_averaging: lookahead` took EMA's decay 0.999 every step: each step pulled the weights back to
    0.1% of the way from their start, and a digits run ended at 6% test accuracy. Lookahead's alpha 0.5
    every k = 5 steps now, where not given; EMA keeps its defaults."""
    def averaging(value):
        return validate({**_config(), "strategy": {**_config()["strategy"], "weight_averaging": value}}) \
            .strategy.weight_averaging

    lookahead = averaging("lookahead")
    assert lookahead.every_n_steps == 5 and lookahead.decay == pytest.approx(0.8706, abs=1e-4)
    assert 1 - lookahead.decay ** lookahead.every_n_steps == pytest.approx(0.5, abs=1e-12)  # alpha
    assert (averaging({"kind": "lookahead", "decay": 0.95}).decay, averaging({"kind": "lookahead", "decay": 0.95})
            .every_n_steps) == (0.95, 5)
    assert averaging({"kind": "lookahead", "every_n_steps": 1}).every_n_steps == 1
    ema = averaging("ema")
    assert (ema.every_n_steps, ema.decay) == (1, 0.999)


def test_a_lookahead_that_holds_training_back_says_so(capsys):
    fit_config(validate(_config(kind="lookahead", decay=0.999, every_n_steps=1)))  # 36 steps of digits
    _warning_line = [line for line in capsys.readouterr().err.splitlines() if "starting weights" in line]
    assert len(_warning_line) == 1 and "each update pulls training back towards where averaging began: the " \
        "model hardly trains; lower the decay" in _warning_line[0]


def test_schedule_free_optimizers_are_refused():
    config = _config()
    config["strategy"]["optimizer"] = {"name": "schedule_free_adamw", "lr": 0.01}
    with run_scope(validate(config)), pytest.raises(ConfigError) as error:
        build(validate(config), quiet=True)
    assert "schedule_free_adamw" in str(error.value) and "\n" not in str(error.value)


def test_routed_groups_average_unless_a_group_is_schedule_free():
    config = _config()  # airbench's combination: lookahead over SGD groups (the routed optimizer has eval())
    config["strategy"]["optimizer"] = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "groups": [
        {"name": "head", "select": "head", "lr": 0.1}]}
    with run_scope(validate(config)):
        built = build(validate(config), quiet=True)
    assert isinstance(built.step, AveragedStep)
    config["strategy"]["optimizer"]["groups"][0]["optimizer"] = "schedule_free_adamw"
    with run_scope(validate(config)), pytest.raises(ConfigError, match="evaluates its own averaged weights"):
        build(validate(config), quiet=True)


def test_weight_averaging_changes_the_config_hash():
    config = copy.deepcopy(DIGITS_MLP)
    with_it = validate({**config, "strategy": {**config["strategy"], "weight_averaging": "ema"}})
    assert with_it.hash() != validate(config).hash()


def test_the_share_of_the_starting_weights_is_the_product_of_the_decays_and_a_stale_average_is_warned_of(capsys):
    """The first due step copies the weights; each later update multiplies the copy's share by its d_k."""
    rule = AveragingRule("ema", 0.999, 1, total_steps=24)
    assert averaging_updates(rule, 24) == 24 and start_share(rule, 24) == pytest.approx(0.999 ** 23)
    warm = AveragingRule("ema", 0.999, 1, total_steps=24, warmup=True)
    assert start_share(warm, 24) == pytest.approx(np.prod([min(0.999, (1 + k) / (10 + k)) for k in range(23)]))
    every = AveragingRule("lookahead", 0.5, 5, start_step=3, total_steps=24)  # due after steps 5, 10, 15, 20
    assert averaging_updates(every, 24) == 4 and start_share(every, 24) == pytest.approx((0.5 ** 5) ** 3)
    late = AveragingRule("ema", 0.9, 1, start_step=40, total_steps=36)
    assert averaging_updates(late, 36) == 0 and start_share(late, 36) == 1.0
    fit_config(validate(_config(kind="ema", decay=0.999)))  # 2 epochs of digits at batch 64: 36 steps
    assert "decay 0.999 keeps 96.6% of its starting weights over the 35 averaging update(s)" in capsys.readouterr().err
    fit_config(validate(_config(kind="ema", decay=0.9)))
    assert "starting weights" not in capsys.readouterr().err
    late_run = fit_config(validate(_config(kind="ema", decay=0.9, start_epochs=3)))  # after the run's 2 epochs
    assert "nothing is averaged and the raw weights are evaluated; lower start_epochs" in capsys.readouterr().err
    from trainlab.experiment import summarize

    # the summary says what was evaluated: the raw weights, not "averaged weights"
    assert summarize(late_run)["notes"]["weight_averaging"]["evaluated"] == "raw weights (averaging never began)"
    assert summarize(fit_config(validate(_config(kind="ema", decay=0.9))))["notes"]["weight_averaging"][
        "evaluated"] == "averaged weights"
