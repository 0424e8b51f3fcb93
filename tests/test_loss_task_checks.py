"""Which loss a run's data and model can take, and what a refusal says: focal on multi-label data (its
sigmoid form), nll behind a model ending in log_softmax, the loss config's per-class numbers against the
data's classes (a config error, exit 2), kl_div's target distributions, and the weight-averaging warning
for a plan that (almost) never averages. References are NumPy formulas, not the code under test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.cli import main
from trainlab.data.dataset import Dataset, Split
from trainlab.engine.weight_averaging import AveragingRule
from trainlab.errors import ConfigError, DataError
from trainlab.inference import load_run
from trainlab.losses import build_loss
from trainlab.models import build_model
from trainlab.plan_warnings import warn_if_stale
from trainlab.run_checks import check_loss_fits

CPU = torch.device("cpu")
LABELS, CLASSES, FEATURES = 3, 4, 5


def _write_csv(path: Path, rows: int = 120, multilabel: bool = False, seed: int = 0) -> Path:
    """Features f0..f4 and either 3 label columns t0..t2 of 0/1 (each a sign of a feature mix) or one class
    column y in 0..3 (the argmax of 4 feature mixes): learnable, so a run's loss falls."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES))
    if multilabel:
        targets = (x @ rng.normal(size=(FEATURES, LABELS)) > 0).astype(int)
        header = [f"t{j}" for j in range(LABELS)]
    else:
        targets = (x @ rng.normal(size=(FEATURES, CLASSES))).argmax(1)[:, None]
        header = ["y"]
    lines = [",".join([f"f{j}" for j in range(FEATURES)] + header)]
    lines += [",".join([f"{v:.6f}" for v in row] + [str(int(t)) for t in label]) for row, label in zip(x, targets, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(csv: Path, loss, multilabel: bool = False, **model) -> dict:
    return {"name": "t", "seed": 0,
            "data": {"source": "csv", "path": str(csv),
                     "target": [f"t{j}" for j in range(LABELS)] if multilabel else "y",
                     **({"task": "multilabel"} if multilabel else {})},
            "model": {"name": "mlp", "hidden": [16], **model},
            "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 4},
            "runtime": {"num_threads": 1, "device": "cpu"}, "output": {"progress": "off"}}


def _train(tmp_path: Path, config: dict, name: str = "run") -> tuple[int, Path]:
    import yaml

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / name
    return main(["train", str(path), "--out", str(out), "--quiet"]), out


def _np_focal(z: np.ndarray, y: np.ndarray, gamma: float, alpha) -> np.ndarray:
    """Lin et al. 2017 per label: -alpha_t (1 - p_t)^gamma log p_t, p = sigmoid(z), p_t = p for label 1 and
    1 - p for label 0, alpha_t = alpha for label 1 and 1 - alpha for label 0 (alpha None: 1)."""
    p = 1.0 / (1.0 + np.exp(-z))
    p_t = np.where(y == 1, p, 1.0 - p)
    alpha_t = 1.0 if alpha is None else np.where(y == 1, alpha, 1.0 - np.asarray(alpha))
    return -alpha_t * (1.0 - p_t) ** gamma * np.log(p_t)


# --------------------------------------------------------------------------- focal on multi-label data


@pytest.mark.parametrize("loss", ["focal", {"name": "focal", "gamma": 2.0, "alpha": 0.25}])
def test_focal_trains_on_multilabel_data_and_its_loss_is_the_papers_per_label_mean(tmp_path, loss):
    """Was refused ("focal is a single-label classification loss ... use bce", exit 3) before the loss's
    takes_multilabel declared its sigmoid form; the run's loss is the per-label focal loss averaged
    over rows and labels (docs/losses.md), as NumPy computes it on the trained model's outputs."""
    code, out = _train(tmp_path, _config(_write_csv(tmp_path / "ml.csv", multilabel=True), loss, multilabel=True))
    assert code == 0
    run = load_run(out)
    assert run.task == "multilabel" and run.loss.name == "focal" and run.loss.multilabel
    x = torch.tensor(np.random.default_rng(1).normal(size=(16, FEATURES)), dtype=torch.float32)
    y = torch.tensor(np.random.default_rng(2).integers(0, 2, (16, LABELS)), dtype=torch.float32)
    z = run.outputs(x)
    assert z.shape == (16, LABELS)
    alpha = None if loss == "focal" else 0.25
    expected = _np_focal(z.double().numpy(), y.numpy(), 2.0, alpha).mean()
    assert float(run.loss.double()(z.double(), y)) == pytest.approx(expected, rel=1e-12)
    # predictions and probabilities are per label: sigmoid(z) and sigmoid(z) > 0.5
    np.testing.assert_allclose(run.predict_proba(x), 1 / (1 + np.exp(-z.double().numpy())), rtol=1e-6)
    assert np.array_equal(run.predict(x), (z.numpy() > 0).astype(int))


def test_focal_alpha_as_one_number_weights_every_label_alike_on_multilabel_data():
    """docs/losses.md: one number weights label 1 by alpha and label 0 by 1 - alpha, in every column; the same
    as the list of that number once per label."""
    rng = np.random.default_rng(3)
    z = torch.tensor(3 * rng.normal(size=(12, LABELS)))
    y = torch.tensor(rng.integers(0, 2, (12, LABELS)), dtype=torch.float64)
    one = build_loss({"name": "focal", "alpha": 0.25, "reduction": "none"}).double()
    assert one.output_dim("multilabel", LABELS, LABELS) == LABELS
    per_label = build_loss({"name": "focal", "alpha": [0.25] * LABELS, "reduction": "none"}).double()
    np.testing.assert_allclose(one(z, y).numpy(), _np_focal(z.numpy(), y.numpy(), 2.0, 0.25), rtol=1e-9)
    torch.testing.assert_close(one(z, y), per_label(z, y), rtol=0, atol=0)
    mixed = build_loss({"name": "focal", "alpha": [0.1, 0.5, 0.9], "reduction": "none"}).double()
    np.testing.assert_allclose(mixed(z, y).numpy(), _np_focal(z.numpy(), y.numpy(), 2.0, np.array([0.1, 0.5, 0.9])),
                               rtol=1e-9)  # the naive 1 - p_t loses digits where p_t ~ 1


def test_the_multilabel_refusal_is_the_losses_own_declaration():
    """cross_entropy (no per-label form) is still refused with the bce advice; a class-index loss that declares
    takes_multilabel is let through to its output_dim."""
    y = torch.tensor(np.random.default_rng(0).integers(0, 2, (20, LABELS)), dtype=torch.float32)
    y[0] = torch.tensor([1.0, 1.0, 0.0])  # several labels in a row: not one-hot
    data = Dataset(Split(torch.randn(20, FEATURES), y), Split(torch.randn(0, FEATURES), y[:0]),
                   Split(torch.randn(0, FEATURES), y[:0]), "multilabel", num_classes=LABELS)
    model = build_model({"name": "mlp", "hidden": [4]}, (FEATURES,), LABELS)
    with pytest.raises(DataError, match="cross_entropy is a single-label classification loss .* use bce"):
        check_loss_fits(build_loss("cross_entropy"), model, data, CPU)
    assert not build_loss("cross_entropy").takes_multilabel and build_loss("bce").takes_multilabel
    focal = build_loss("focal")
    assert focal.takes_multilabel
    check_loss_fits(focal, model, data, CPU)
    assert focal.multilabel


# --------------------------------------------------------------------------- nll behind log_softmax


def _np_log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def test_nll_trains_behind_an_mlp_ending_in_log_softmax_and_equals_cross_entropy_on_its_logits(tmp_path):
    """nll's advice "end the model with log_softmax" can be followed: model.output_activation: log_softmax
    (refused as an unknown activation before). For the trained weights, nll of the log-probabilities is
    cross_entropy of the logits before the last layer, both the NumPy mean of -(z_y - logsumexp(z))."""
    config = _config(_write_csv(tmp_path / "multi.csv"), "nll", output_activation="log_softmax")
    code, out = _train(tmp_path, config)
    assert code == 0
    run = load_run(out)
    assert isinstance(run.model[-1], torch.nn.LogSoftmax)
    x = torch.tensor(np.random.default_rng(4).normal(size=(32, FEATURES)), dtype=torch.float32)
    y = torch.tensor(np.random.default_rng(5).integers(0, CLASSES, 32))
    run.model.double()  # the same weights in float64: the references are exact to rounding
    with torch.no_grad():
        logits, log_probs = run.model[:-1](x.double()), run.model(x.double())
    expected = -_np_log_softmax(logits.numpy())[np.arange(32), y.numpy()].mean()
    assert float(run.loss.double()(log_probs, y)) == pytest.approx(expected, rel=1e-10)
    assert float(build_loss("cross_entropy").double()(logits, y)) == pytest.approx(expected, rel=1e-10)
    # probabilities for the metrics and predict --proba: exp of the log-probabilities, rows summing to 1
    run.model.float()
    probabilities = run.predict_proba(x)
    softmax = np.exp(_np_log_softmax(logits.numpy()))
    np.testing.assert_allclose(probabilities, softmax, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-6)
    assert np.array_equal(run.predict(x), softmax.argmax(1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val"]["loss"] < math.log(CLASSES)  # trained: below the uniform guess's cross-entropy


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_log_softmax_is_an_output_activation_over_the_classes_of_every_model_that_takes_one(name):
    x = torch.randn(6, FEATURES, dtype=torch.float64)
    torch.manual_seed(0)
    plain = build_model({"name": name}, (FEATURES,), CLASSES).double()
    torch.manual_seed(0)
    ending = build_model({"name": name, "output_activation": "log_softmax"}, (FEATURES,), CLASSES).double()
    with torch.no_grad():
        np.testing.assert_allclose(ending(x).numpy(), _np_log_softmax(plain(x).numpy()), rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match="log_softmax over 1 output is 0 for every input"):
        build_model({"name": name, "output_activation": "log_softmax"}, (FEATURES,), 1)
    with pytest.raises(ConfigError, match=r"unknown model.activation 'log_softmax'"):  # a hidden layer's: no
        build_model({"name": "mlp", "activation": "log_softmax"}, (FEATURES,), CLASSES)


# --------------------------------------------------------------------------- config or data: exit 2 or 3


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize("loss, message", [
    ({"name": "focal", "alpha": 0.25}, "error: strategy.loss: focal on 4 classes needs alpha as a list of 4 class "
                                       "weights; got one number (0.25)"),
    ({"name": "cross_entropy", "class_weights": [1.0, 2.0]},
     "error: strategy.loss: cross_entropy: class_weights has 2 entries but the model outputs 4; give class_weights "
     "one number per output"),
    ({"name": "nll", "class_weights": [1.0, 2.0, 3.0]}, "error: strategy.loss: nll: class_weights has 3 entries"),
])
def test_per_class_numbers_of_the_loss_config_that_do_not_fit_the_classes_are_config_errors(tmp_path, capsys, loss,
                                                                                           message):
    """The config's numbers are what to change (exit 2), as a batch_size that leaves a 1-row batch is; exit 3
    before. The loss's own check of tensors still says DataError (the library contract)."""
    model = {"output_activation": "log_softmax"} if loss["name"] == "nll" else {}
    code, out = _train(tmp_path, _config(_write_csv(tmp_path / "multi.csv"), loss, **model))
    assert code == 2 and _error_line(capsys).startswith(message)
    with pytest.raises(DataError):
        build_loss(loss).check(torch.full((4, CLASSES), -1.0), torch.tensor([0, 1, 2, 3]))


def test_per_class_numbers_for_named_classes_say_the_order_they_go_in(tmp_path, capsys):
    """Text labels are indexed in sorted order (high, low, mid), which a class_weights list cannot show; a
    mapping by class name (Keras' class_weight is a dict) is refused with that order's rule."""
    rows = ["a,b,level"] + [f"{i % 3},{i % 5},{('low', 'mid', 'high')[i % 3]}" for i in range(60)]
    (tmp_path / "levels.csv").write_text("\n".join(rows) + "\n")
    config = _config(tmp_path / "levels.csv", {"name": "cross_entropy", "class_weights": [1.0, 2.0]})
    config["data"]["target"] = "level"
    assert _train(tmp_path, config)[0] == 2
    assert _error_line(capsys) == ("error: strategy.loss: cross_entropy: class_weights has 2 entries but the model "
                                  "outputs 3; give class_weights one number per output (the outputs' classes, in "
                                  "order: high, low, mid)")
    config["strategy"]["loss"]["class_weights"] = {"low": 1, "mid": 2, "high": 5}
    assert _train(tmp_path, config, "mapping")[0] == 2
    assert _error_line(capsys).endswith("got {'high': 5, 'low': 1, 'mid': 2} (a list of one number per class, in the "
                                        "order of the class indices: the sorted labels, or data.class_names' order; "
                                        "a run's labels.json lists it)")


def test_focal_alpha_of_the_wrong_length_on_multilabel_data_is_a_config_error(tmp_path, capsys):
    csv = _write_csv(tmp_path / "ml.csv", multilabel=True)
    code, _ = _train(tmp_path, _config(csv, {"name": "focal", "alpha": [0.1, 0.2]}, multilabel=True))
    assert code == 2
    assert _error_line(capsys) == ("error: strategy.loss: focal on 3 labels needs alpha as one number in [0, 1] or 3 "
                                   "numbers in [0, 1]; got [0.1, 0.2] (the outputs' labels, in order: t0, t1, t2)")


def test_kl_div_on_class_labels_names_the_target_distributions_it_takes(tmp_path, capsys):
    """kl_div is no regression loss: it compares target distributions, and class labels are data it does not fit
    (exit 3, as every loss-and-task mismatch); the advice is cross_entropy."""
    code, _ = _train(tmp_path, _config(_write_csv(tmp_path / "multi.csv"), "kl_div"))
    line = _error_line(capsys)
    assert code == 3 and "regression loss" not in line
    assert line == ("error: kl_div takes target distributions (each row K probabilities summing to 1, such as soft "
                    "labels or a teacher's outputs) but the data is a multiclass classification task (4 classes, one "
                    "label per row); use cross_entropy (KL divergence to one-hot labels is cross-entropy)")
    code, _ = _train(tmp_path, _config(_write_csv(tmp_path / "ml.csv", multilabel=True), "kl_div", multilabel=True),
                     "ml")
    assert code == 3 and "(3 columns of 0/1 labels); use bce" in _error_line(capsys)
    assert build_loss("kl_div").output_dim("regression", None, CLASSES) == CLASSES  # distributions: a float table


def test_kl_div_trains_on_target_distributions(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(80, FEATURES))
    logits = x @ rng.normal(size=(FEATURES, 3))
    t = np.exp(logits - logits.max(1, keepdims=True))
    t /= t.sum(1, keepdims=True)
    lines = ["f0,f1,f2,f3,f4,t0,t1,t2"] + [",".join(f"{v:.8f}" for v in row) for row in np.hstack([x, t])]
    csv = tmp_path / "soft.csv"
    csv.write_text("\n".join(lines) + "\n")
    config = _config(csv, "kl_div", multilabel=True)
    config["data"]["task"] = "regression"
    config["metrics"] = ["mse"]
    code, _ = _train(tmp_path, config)
    assert code == 0


# --------------------------------------------------------------------------- weight averaging that never averages


def _warning(capsys, rule: AveragingRule, total_steps: int, decay: float) -> str:
    warn_if_stale(rule, total_steps, rule.kind, decay)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ")
    return lines[0]


def test_averaging_with_only_its_first_copy_blames_the_schedule_not_the_decay(capsys):
    """The sweep's plan: 12 steps, start after step 6, every 5 steps: step 10 copies the weights and nothing
    follows. It was told "keeps 100.0% of its starting weights over the 0 averaging update(s) ... lower the
    decay (about 0.05)", which no decay fixes."""
    rule = AveragingRule("lookahead", 0.8706, 5, start_step=6, decay_power=3, total_steps=12)
    line = _warning(capsys, rule, 12, 0.8706)
    assert line == ("warning: strategy.weight_averaging lookahead is due every 5 step(s) after step 6 (start_epochs): "
                    "in this run's 12 step(s) only step 10 is due, which copies the weights, and no averaging update "
                    "follows, so the evaluated and saved model is the weights of step 10 (not the final ones) "
                    "whatever the decay; lower start_epochs, or every_n_steps to 2 or less")
    assert "lower the decay" not in line  # every 2 steps after step 6: steps 8, 10, 12 (a copy and 2 updates)
    # due only at the last step: the average is the final weights, and averaging did nothing; start_epochs is 0
    line = _warning(capsys, AveragingRule("ema", 0.9, 12, total_steps=12), 12, 0.9)
    assert line.endswith("is the final weights whatever the decay; lower every_n_steps to 4 or less")
    line = _warning(capsys, AveragingRule("ema", 0.9, 2, total_steps=2), 2, 0.9)
    assert line.endswith("whatever the decay; 2 step(s) are too few to average: train longer, or remove "
                         "weight_averaging")


def test_averaging_with_one_update_after_its_copy_blames_the_schedule_not_the_decay(capsys):
    """Due at steps 15 and 20 of 24 (after step 12): one update of d = 0.999^5 keeps 99.5% of the copy."""
    rule = AveragingRule("ema", 0.999, 5, start_step=12, total_steps=24)
    line = _warning(capsys, rule, 24, 0.999)
    assert line == ("warning: strategy.weight_averaging ema is due every 5 step(s) after step 12 (start_epochs): in "
                    "this run's 24 step(s) it copies the weights at step 15 and averages 1 time(s) after, keeping 99.5% "
                    "of that copy; too few updates to average, whatever the decay; lower start_epochs, or "
                    "every_n_steps to 4 or less")
    # a low decay over the one update: the average is the later weights, nothing to warn of
    warn_if_stale(AveragingRule("ema", 0.5, 5, start_step=12, total_steps=24), 24, "ema", 0.5)
    assert capsys.readouterr().err == ""


def test_averaging_that_never_starts_names_what_to_lower(capsys):
    late = _warning(capsys, AveragingRule("ema", 0.9, 1, start_step=40, total_steps=36), 36, 0.9)
    assert late == ("warning: strategy.weight_averaging is due every 1 step(s) after step 40 (start_epochs), but the "
                    "run has 36 steps: nothing is averaged and the raw weights are evaluated; lower start_epochs")
    sparse = _warning(capsys, AveragingRule("ema", 0.9, 20, start_step=0, total_steps=12), 12, 0.9)
    assert sparse.endswith("nothing is averaged and the raw weights are evaluated; lower every_n_steps to 12 or "
                           "less")
    both = _warning(capsys, AveragingRule("ema", 0.9, 10, start_step=3, total_steps=8), 8, 0.9)
    assert both.endswith("; lower start_epochs, or every_n_steps to 5 or less")  # due at 5 after step 3 of 8


def test_many_updates_with_a_decay_too_close_to_one_still_advise_the_decay(capsys):
    line = _warning(capsys, AveragingRule("ema", 0.999, 1, total_steps=24), 24, 0.999)
    assert "keeps 97.7% of its starting weights over the 23 averaging update(s)" in line
    assert "so the evaluated and saved model is mostly where averaging began" in line
    assert line.endswith(f"lower the decay (about {0.05 ** (1 / 23):.3g}) or set warmup: true")
    # 0.96 over 35 updates keeps 0.96^35 = 24%: "mostly" overstated it
    line = _warning(capsys, AveragingRule("ema", 0.96, 1, total_steps=36), 36, 0.96)
    assert f"keeps {0.96 ** 35:.1%} of its starting weights" in line
    assert "so the evaluated and saved model is partly where averaging began" in line



@pytest.mark.parametrize("task", [None, "regression"])
def test_a_config_run_with_soft_targets_and_bce_is_told_they_are_no_class_labels(tmp_path, capsys, task):
    """A CSV run with probabilities as targets and loss bce was told to set data.task: binary (which then
    refuses fractional labels), 'labels without a 0 are read as a regression target'."""
    rng = np.random.default_rng(0)
    x, soft = rng.normal(size=(60, 3)), rng.uniform(0.05, 0.95, size=60)
    rows = "\n".join(",".join(f"{v:.4f}" for v in (*features, target)) for features, target in zip(x, soft, strict=True))
    (tmp_path / "soft.csv").write_text("a,b,c,t\n" + rows + "\n")
    data = {"source": "csv", "path": str(tmp_path / "soft.csv"), "target": "t", **({"task": task} if task else {})}
    config = {"name": "soft", "data": data, "model": {"name": "mlp", "hidden": [4]},
              "strategy": {"loss": "bce", "optimizer": "adam", "epochs": 1}, "output": {"progress": "off"}}
    (tmp_path / "soft.yaml").write_text(json.dumps(config))
    assert main(["train", str(tmp_path / "soft.yaml"), "--out", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: bce trains on 0/1 class labels, but the targets hold fractional values in [0, 1]")
    assert "labels without a 0" not in err and err.count("\n") == 1


def test_a_config_runs_regression_target_is_not_said_to_be_shaped_n_by_1(tmp_path, capsys):
    """One float target column with cross_entropy was told 'the targets are shaped (38, 1)' (the data layer's
    (N, d) form, and the train split's rows): the loss's own explanation is the line."""
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a:.3f},{b:.3f},{10 * t:.3f}" for a, b, t in rng.normal(size=(60, 3)))
    (tmp_path / "reg.csv").write_text("a,b,t\n" + rows + "\n")
    config = {"name": "r", "data": {"source": "csv", "path": str(tmp_path / "reg.csv"), "target": "t"},
              "model": {"name": "mlp", "hidden": [4]}, "output": {"progress": "off"},
              "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1}}
    (tmp_path / "reg.yaml").write_text(json.dumps(config))
    assert main(["train", str(tmp_path / "reg.yaml"), "--out", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert "shaped" not in err and "use a regression loss such as mse" in err and err.count("\n") == 1
