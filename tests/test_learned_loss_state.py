"""A loss with learned parameters (``gaussian_nll`` with ``variance: learned``, ``adaptive`` with
``learn_alpha``/``learn_scale``) has its trained state saved beside the model (``loss.safetensors``),
so ``trainlab eval`` recomputes the loss ``summary.json`` reports, not the loss of its initial
parameters; the model file stays a plain state_dict, and runs written before the file still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file as load_numpy

import trainlab
from trainlab.cli import main
from trainlab.errors import DataError
from trainlab.experiment import train
from trainlab.run_evaluation import evaluate_run

GAUSSIAN = {"name": "gaussian_nll", "variance": "learned"}
ADAPTIVE = {"name": "adaptive", "learn_alpha": True, "learn_scale": True}


def regression_npz(path: Path, seed: int = 0) -> Path:
    """Noisy linear rows in explicit train/val/test arrays: the test split is known without trainlab."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("", 120), ("_val", 40), ("_test", 40)):
        x = rng.normal(size=(n, 3)).astype(np.float32)
        arrays[f"x{split}"] = x
        arrays[f"y{split}"] = (x @ np.array([1.5, -2.0, 0.5]) + 3 + rng.normal(scale=2.0, size=n)).astype(np.float32)
    np.savez(path, **arrays)
    return path


def config(tmp_path: Path, loss: dict, **strategy) -> dict:
    return {"name": "learned-loss", "seed": 0,
            "data": {"source": "npz", "path": str(regression_npz(tmp_path / "reg.npz"))},
            "model": {"name": "mlp", "hidden": [8]},
            "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 8,
                         **strategy},
            "metrics": ["mae"], "output": {"progress": "off", "checkpoint": {"keep_after_finish": "none"}}}


def trained(tmp_path: Path, loss: dict, **strategy) -> tuple[dict, Path]:
    return train(config(tmp_path, loss, **strategy), out=tmp_path / "run", quiet=True)


def forget_loss_state(run: Path) -> None:
    """Make ``run`` what a run written before loss.safetensors existed looks like."""
    (run / "loss.safetensors").unlink()
    info = json.loads((run / "run.json").read_text())
    del info["loss_sha256"]
    (run / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("strategy", [{}, {"weight_averaging": {"kind": "ema", "decay": 0.9}},
                                      {"early_stopping": {"monitor": "val_mae", "patience": 2}}],
                         ids=["plain", "ema", "restore_best"])
def test_eval_recomputes_the_summarys_gaussian_nll_with_the_learned_variance(tmp_path, strategy):
    summary, run = trained(tmp_path, GAUSSIAN, **strategy)
    if "early_stopping" in strategy:  # the best epoch's model went back in, with that epoch's loss state
        assert summary["best_epoch"] < summary["epochs_run"]
    log_var = load_numpy(str(run / "loss.safetensors"))["log_var"]
    assert abs(float(log_var[0])) > 0.05  # it moved from its initial 0: the test can tell the two apart
    evaluated = evaluate_run(run, "test")
    assert evaluated["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-6)
    assert evaluated["mae"] == pytest.approx(summary["test"]["mae"], rel=1e-6)

    # independently: the Gaussian NLL of the predictions under the saved variance, in NumPy
    arrays = np.load(tmp_path / "reg.npz")
    mean = trainlab.load_run(run).predict(arrays["x_test"]).astype(np.float64)
    var = np.exp(np.float64(log_var[0]))
    nll = np.mean(0.5 * (np.log(var) + (arrays["y_test"].astype(np.float64) - mean) ** 2 / var))
    assert summary["test"]["loss"] == pytest.approx(nll, rel=1e-5)


def test_the_cli_eval_prints_the_summarys_loss(tmp_path, capsys):
    summary, run = trained(tmp_path, GAUSSIAN)
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test"]) == 0
    printed = capsys.readouterr()
    assert f"loss         {summary['test']['loss']:.6g}" in printed.out
    assert printed.err == ""


@pytest.mark.parametrize("loss", [ADAPTIVE, {"name": "adaptive", "learn_scale": True, "alpha": 1.0},
                                  {"name": "adaptive", "learn_alpha": True}],
                         ids=["alpha-and-scale", "scale", "alpha"])
def test_eval_recomputes_the_summarys_adaptive_loss_with_the_learned_alpha_and_scale(tmp_path, loss):
    summary, run = trained(tmp_path, loss)
    for split in ("val", "test"):
        assert evaluate_run(run, split)["loss"] == pytest.approx(summary[split]["loss"], rel=1e-6)
    forget_loss_state(run)  # the initial alpha / scale give another loss: the saved state is what made them agree
    assert evaluate_run(run, "test")["loss"] != pytest.approx(summary["test"]["loss"], rel=1e-3)


def test_load_run_gives_the_trained_loss_and_the_model_file_stays_a_plain_state_dict(tmp_path):
    _, run = trained(tmp_path, ADAPTIVE)
    loaded = trainlab.load_run(run)
    saved = load_numpy(str(run / "loss.safetensors"))
    assert set(saved) == {"alpha_latent", "scale_latent"}
    for name, value in loaded.loss.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved[name])
    model_keys = set(load_numpy(str(run / "model.safetensors")))
    assert model_keys == set(loaded.model.state_dict())  # no loss entries: any state_dict loader reads it


def test_a_run_written_before_the_loss_file_evaluates_as_before_with_one_warning(tmp_path, capsys):
    summary, run = trained(tmp_path, GAUSSIAN)
    forget_loss_state(run)
    capsys.readouterr()
    evaluated = evaluate_run(run, "test")
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("warning: ") and "loss.safetensors" in warning
    assert evaluated["mae"] == pytest.approx(summary["test"]["mae"], rel=1e-6)
    arrays = np.load(tmp_path / "reg.npz")  # the initial variance, 1: half the mean squared error
    mean = trainlab.load_run(run).predict(arrays["x_test"]).astype(np.float64)
    assert evaluated["loss"] == pytest.approx(np.mean(0.5 * (arrays["y_test"] - mean) ** 2), rel=1e-5)


def test_a_changed_or_missing_loss_file_is_refused(tmp_path, capsys):
    _, run = trained(tmp_path, GAUSSIAN)
    path = run / "loss.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40  # a flipped bit in the float
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="loss.safetensors is not the loss state this run saved"):
        evaluate_run(run, "test")
    path.unlink()
    with pytest.raises(DataError, match="loss.safetensors is missing"):
        trainlab.load_run(run)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 3
    assert capsys.readouterr().err.startswith("error: ")


def test_a_loss_without_learned_state_writes_no_loss_file(tmp_path):
    """mse has no state; cross_entropy's class weights are the config's numbers, rebuilt from it."""
    _, run = trained(tmp_path, {"name": "mse"})
    assert not (run / "loss.safetensors").exists()
    assert "loss_sha256" not in json.loads((run / "run.json").read_text())
    weighted = {**config(tmp_path, {"name": "cross_entropy", "class_weights": [1.0, 2.0, 1.0]}),
                "data": {"source": "iris"}, "metrics": ["accuracy"]}
    summary, run = train(weighted, out=tmp_path / "weighted", quiet=True)
    assert not (run / "loss.safetensors").exists()
    assert evaluate_run(run, "test")["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-6)


def test_a_run_with_a_loss_file_can_be_overwritten(tmp_path):
    cfg = config(tmp_path, GAUSSIAN)
    _, run = train(cfg, out=tmp_path / "run", quiet=True)
    cfg["strategy"]["epochs"] = 2
    summary, again = train(cfg, out=run, overwrite=True, quiet=True)
    assert again == run and summary["epochs_run"] == 2
    assert evaluate_run(run, "test")["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-6)
    assert yaml.safe_load((run / "config.yaml").read_text())["strategy"]["epochs"] == 2


def test_the_saved_state_is_the_learned_one_also_inside_a_composite_loss():
    """Parameters and buffers are saved under their state_dict names; the config's numbers (here a sub-loss's
    class weights) are not, whatever module holds them."""
    from trainlab.losses import build_loss
    from trainlab.model_file import loss_state

    loss = build_loss({"name": "multitask", "learn_weights": True,
                       "losses": {"kind": {"name": "cross_entropy", "class_weights": [1.0, 3.0]},
                                  "size": {"name": "adaptive", "learn_scale": True}}})
    assert "tasks.kind.class_weights" in loss.state_dict()
    assert set(loss_state(loss)) == {"log_vars.kind", "log_vars.size", "tasks.size.scale_latent",
                                     "tasks.size.fixed_alpha"}


def test_restore_best_restores_the_loss_state_of_the_best_epoch_with_its_weights(tmp_path):
    """The summary's validation scores the best epoch's model with the loss it was validated with then: the
    best epoch's record (the independent reference, written at that epoch) has the same val_loss. Before,
    the final epoch's learned variance was kept (val loss 0.513 in the summary, 0.656 in the best record)."""
    summary, run = trained(tmp_path, GAUSSIAN, optimizer={"name": "adam", "lr": 0.3}, epochs=30,
                           early_stopping={"monitor": "val_mae", "patience": 3})
    assert summary["best_epoch"] < summary["epochs_run"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = next(r for r in records if r.get("scope") != "step" and r.get("epoch") == summary["best_epoch"])
    assert summary["val"]["mae"] == pytest.approx(best["val_mae"], rel=1e-6)  # the best weights
    assert summary["val"]["loss"] == pytest.approx(best["val_loss"], rel=1e-6)  # ... with the best loss state
    assert evaluate_run(run, "val")["loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_the_config_numbers_of_a_loss_are_no_learned_state_for_early_stopping_either():
    """One definition of a loss's learned state (losses.base.learned_state) for loss.safetensors and for
    restore_best: class weights come from the config, so a class-weighted run keeps none of them."""
    import torch

    from trainlab.engine.objective import Objective
    from trainlab.engine.step import StandardStep
    from trainlab.losses import build_loss
    from trainlab.model_file import loss_state

    model = torch.nn.Linear(2, 3)
    weighted = build_loss({"name": "cross_entropy", "class_weights": [1.0, 2.0, 3.0]})
    assert "class_weights" in weighted.state_dict()  # a buffer of the loss, but the config's
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.1), Objective(weighted))
    assert step.loss_weights() == {} == loss_state(weighted)
    learned = build_loss(GAUSSIAN)
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.1), Objective(learned))
    assert set(step.loss_weights()) == set(loss_state(learned)) == {"log_var"}
