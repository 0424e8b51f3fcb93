"""The loop: determinism, accumulation, penalties, early stopping, init, L-BFGS, locks, the demo."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits

from tests.conftest import DIGITS_MLP, LINREG, least_squares
from trainlab.builders import build, fit_config, run_scope
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.cli import main
from trainlab.config import validate
from trainlab.engine.state import EpochSum
from trainlab.run_folder import RunDir


def _fit(config: dict):
    return fit_config(validate(config))


def _params(built) -> list[torch.Tensor]:
    return [p.detach().clone() for p in built.model.parameters()]


def test_same_seed_same_weights_other_seed_other_weights():
    a, b = _fit(DIGITS_MLP), _fit(DIGITS_MLP)
    c = _fit({**DIGITS_MLP, "seed": 1})
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(_params(a), _params(c), strict=True))


def test_grad_accumulation_equals_the_large_batch():
    """2 micro-batches of 16 with accumulation == one batch of 32 (mean loss, no dropout), also over
    each epoch's last, partial step (1,149 rows: 29 rows as micro-batches of 16 and 13, whose means are
    weighted 16/29 and 13/29; equal weights of 1/2 drifted from the large batch there)."""
    base = copy.deepcopy(DIGITS_MLP)
    base["model"]["dropout"] = 0.0
    base["strategy"].update(epochs=3, optimizer={"name": "sgd", "lr": 0.1})
    big = _fit({**base, "strategy": {**base["strategy"], "batch_size": 32}})
    small = _fit({**base, "strategy": {**base["strategy"], "batch_size": 16, "grad_accum_steps": 2}})
    assert big.trainer.state.step == small.trainer.state.step
    for x, y in zip(_params(big), _params(small), strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_penalties_are_logged_apart_from_the_data_loss():
    config = copy.deepcopy(DIGITS_MLP)
    config["strategy"]["regularization"] = {"l1": 1e-4, "l2": 1e-3}
    record = _fit(config).trainer.state.history[-1]
    assert record["train_penalty"] > 0 and record["train_loss"] > 0


def test_decoupled_weight_decay_spares_biases():
    config = copy.deepcopy(LINREG)
    config["strategy"].update(optimizer={"name": "sgd", "lr": 1e-9}, epochs=10,
                              regularization={"weight_decay": 1e6})  # lr * wd = 1e-3 per step
    with run_scope(validate(config)):
        built = build(validate(config), quiet=True)
        weight0, bias0 = (p.detach().clone() for p in built.model.parameters())
        built.trainer.fit()
    weight, bias = built.model.parameters()
    torch.testing.assert_close(weight.detach(), weight0 * (1 - 1e-3) ** 10, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(bias.detach(), bias0, rtol=1e-4, atol=1e-6)


class _Dummy:
    """A stand-in trainer for callbacks: no training, scripted metrics (Keras early_stopping_test)."""

    def __init__(self):
        from trainlab.engine.state import Control, TrainState

        self.control, self.state = Control(), TrainState()
        self.model = torch.nn.Linear(1, 1)

    def weights(self):
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def loss_weights(self):
        return {}  # a loss without learned state


@pytest.mark.parametrize("mode,values,stop_epoch", [
    ("min", [1.0, 0.9, 0.95, 0.96, 0.97], 4),
    ("max", [0.5, 0.6, 0.61, 0.6, 0.59, 0.58], 5),
    ("max", [0.5, 0.6, 0.7, 0.8], None),
    ("max", [0.5, 0.4, 0.3, 0.2], 3),
])
def test_early_stopping_decisions_on_scripted_metrics(mode, values, stop_epoch):
    callback = EarlyStopping(monitor="val_x", mode=mode, patience=2, min_delta=0.0)
    trainer = _Dummy()
    stopped_at = None
    for epoch, value in enumerate(values, start=1):
        callback.on_validation_end(trainer, {"epoch": epoch, "val_x": value})
        if trainer.control.should_stop and stopped_at is None:
            stopped_at = epoch
    assert stopped_at == stop_epoch


def test_early_stopping_restores_best_weights_and_reports_it(write_config, tmp_path):
    config = write_config(DIGITS_MLP, strategy__epochs=40, strategy__optimizer={"name": "adam", "lr": 0.05},
                          strategy__early_stopping={"monitor": "val_loss", "patience": 2})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] and "early stopping" in summary["stop_reason"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(records, key=lambda r: r["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["val"]["loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_zero_init_of_a_hidden_layer_cannot_break_symmetry():
    config = copy.deepcopy(DIGITS_MLP)
    config["model"] = {"name": "mlp", "hidden": [16]}
    config["strategy"]["init"] = "constant"  # every weight equal: the tutorials' symmetry lesson
    built = _fit(config)
    hidden = built.model[0].weight.detach()
    assert torch.allclose(hidden, hidden[0].expand_as(hidden))  # all 16 hidden units stay identical
    config["strategy"]["init"] = "kaiming_uniform"
    hidden = _fit(config).model[0].weight.detach()
    assert not torch.allclose(hidden, hidden[0].expand_as(hidden))


def test_lbfgs_full_batch_uses_the_closure_and_solves_least_squares():
    config = copy.deepcopy(LINREG)
    config["strategy"].update(optimizer={"name": "lbfgs", "lr": 1.0}, epochs=20)
    built = _fit(config)
    slope, intercept = least_squares()
    assert float(built.model.weight.detach()) == pytest.approx(slope, abs=1e-3)
    assert float(built.model.bias.detach()) == pytest.approx(intercept, abs=1e-3)


def test_reduce_on_plateau_lowers_the_logged_lr():
    config = copy.deepcopy(DIGITS_MLP)
    config["strategy"].update(epochs=8, optimizer={"name": "adam", "lr": 0.05},
                              schedule={"name": "reduce_on_plateau", "patience": 0, "factor": 0.5})
    lrs = [r["lr"] for r in _fit(config).trainer.state.history]
    assert lrs[-1] < lrs[0]


def test_a_live_lock_refuses_a_second_writer_and_a_stale_one_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = ("import sys, time; from trainlab.run_folder import RunLock; from pathlib import Path; "
              "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(30)")
    sleeper = subprocess.Popen([sys.executable, "-c", holder, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match=f"in use by process {sleeper.pid}"):
            RunDir.create(folder)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (folder / ".lock").read_text() == str(sleeper.pid)  # a killed owner leaves its lock file
    run = RunDir.create(folder)  # the owner is gone: its flock went with it
    assert (folder / ".lock").read_text() == str(os.getpid())
    run.close()


@pytest.mark.slow
def test_two_concurrent_trainings_into_one_folder(write_config, tmp_path):
    config = write_config(LINREG, strategy__epochs=200000, output={"progress": "off"})
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "trainlab.cli", "train", str(config), "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if (out / ".lock").exists():
                break
            import time

            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "trainlab.cli", "train", str(config), "--out", str(out),
                                 "--overwrite"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.strip().startswith("error: run folder") and "in use by process" in second.stderr
    finally:
        first.kill()
        first.wait()


def test_demo_adam_on_mnist1d_reaches_sixty_percent(tmp_path):
    from trainlab.demo import run_demo

    rows = run_demo(optimizers=["adam"], seeds=1, jobs=1, out=tmp_path / "demo", quiet=True)
    assert rows[0]["accuracy"] >= 0.60


@pytest.mark.parametrize("held", ["record", "task"])
def test_the_demo_into_another_comparisons_folder_is_refused_and_leaves_it_as_it_was(tmp_path, held):
    """The demo (a comparison of dicts, which compare takes into any folder without a record) replaced the
    leaderboard and report of a `trainlab compare` in its --out, exit 0; an empty --out trained into '.'."""
    from trainlab.compare.folder_identity import RECORD_FILE
    from trainlab.demo import run_demo
    from trainlab.errors import ConfigError

    out = tmp_path / "cmp"
    (out / "runs" / ("mnist1d" if held == "record" else "iris")).mkdir(parents=True)
    if held == "record":
        (out / RECORD_FILE).write_text('{"strategies_file": "/abs/strategies.yaml"}')
    (out / "leaderboard.json").write_text("{}")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(ConfigError, match=r"^--out .*cmp holds another comparison"):
        run_demo(optimizers=["adam"], seeds=1, jobs=1, epochs=1, out=out, quiet=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert (out / "leaderboard.json").read_text() == "{}"
    with pytest.raises(ConfigError, match="^out must be a path"):
        run_demo(optimizers=["adam"], seeds=1, jobs=1, epochs=1, out="", quiet=True)


def test_emulated_low_precision_on_a_cpu_gets_one_warning_line(monkeypatch, capsys, tmp_path):
    import trainlab.runtime as runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(runtime, "_cpu_has_flag", lambda *names: False)
    assert runtime.emulated_precision_warning("fp32", cpu) is None
    line = runtime.emulated_precision_warning("bf16", cpu)
    assert line.startswith("runtime.precision=bf16 on a CPU without native bf16") and "\n" not in line
    assert "emulated" in runtime.emulated_precision_warning("fp16", cpu)
    assert runtime.emulated_precision_warning("bf16", torch.device("cuda")) is None
    config = copy.deepcopy(DIGITS_MLP)
    config["runtime"] = {"precision": "bf16", "device": "cpu"}
    config["strategy"]["epochs"] = 1
    validated = validate(config)
    with run_scope(validated):
        build(validated)
    assert capsys.readouterr().err.count("warning: runtime.precision=bf16") == 1
    from trainlab.experiment import train

    for quiet in (True, False):  # a warning: `train --quiet` shows it too, once
        train(validated, out=tmp_path / f"run-{quiet}", quiet=quiet)
        assert capsys.readouterr().err.count("warning: runtime.precision=bf16") == 1
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.emulated_precision_warning("bf16", cpu) is None
    # fp16 was taken as fast where the CPU has avx512_fp16/amx_fp16: an airbench-like step ran 87x slower than
    # fp32 there without a word (its backward is emulated)
    monkeypatch.setattr(runtime, "_cpu_has_flag", lambda *names: True)
    assert runtime.emulated_precision_warning("fp16", cpu).startswith("runtime.precision=fp16 on a CPU (")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(precision):
    config = copy.deepcopy(DIGITS_MLP)
    config["runtime"] = {"precision": precision, "device": "cpu"}
    built = _fit(config)
    assert built.evaluator.evaluate(built.data.test)["accuracy"] > 0.8
    if precision == "fp16":
        tree = built.trainer.capture().tree
        assert tree["parts"]["step"]["scaler"]["scale"] > 0  # the loss scale is part of every checkpoint


def test_finetune_freeze_trains_only_the_head_and_unfreezes_on_schedule(write_config, tmp_path):
    config = copy.deepcopy(DIGITS_MLP)
    config["strategy"]["finetune"] = {"freeze": True}
    with run_scope(validate(config)):
        built = build(validate(config), quiet=True)
        before = {k: v.clone() for k, v in built.model.state_dict().items()}
        built.trainer.fit()
    after = built.model.state_dict()
    head = {"3.weight", "3.bias"}  # mlp hidden [32]: Linear(64,32) ReLU Dropout Linear(32,10)
    assert all(torch.equal(before[k], after[k]) for k in before if k not in head)
    assert all(not torch.equal(before[k], after[k]) for k in head)
    assert built.notes["parameters"] == {"total": 64 * 32 + 32 + 32 * 10 + 10, "trainable": 32 * 10 + 10}

    config["strategy"]["finetune"] = {"freeze": True, "unfreeze_after_epochs": 2}
    config["strategy"]["optimizer"]["lr"] = 0.003
    built = fit_config(validate(config))
    counts = [e for e in built.trainer.state.events if e["event"] == "parameters"]
    assert [c["backbone_frozen"] for c in counts] == [True, False]
    assert counts[1]["trainable"] == counts[1]["total"] and counts[1]["epoch"] == 3


def test_channels_last_trains_the_same_model_and_saves_plain_weights(tmp_path, write_config):
    """NHWC layout is a speed option only: same weights as NCHW (to float tolerance), loadable model file."""
    digits = load_digits()
    images = digits.images.reshape(-1, 1, 8, 8).astype("float32") / 16.0
    np.savez(tmp_path / "digits.npz", x=images, y=digits.target.astype("int64"))
    config = {
        "name": "digits-cnn", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "digits.npz")},
        "model": {"name": "cnn2d", "channels": [8, 16], "batch_norm": True},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                     "batch_size": 64, "epochs": None, "max_steps": 20},
        "metrics": ["accuracy"], "output": {"progress": "off"},
    }
    plain = _fit(config)
    nhwc_config = validate({**config, "runtime": {"channels_last": True},
                            "output": {"progress": "off", "dir": str(tmp_path / "run")}})
    with run_scope(nhwc_config):
        nhwc = build(nhwc_config, quiet=True)
        conv = [p for p in nhwc.model.parameters() if p.ndim == 4][-1]  # 16x8x3x3 (the 1-channel one is both)
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
        nhwc.trainer.fit()
    for a, b in zip(_params(plain), _params(nhwc), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert main(["train", "--quiet", "--out", str(tmp_path / "cli"), "--set", "runtime.channels_last=true",
                 str(write_config(config))]) == 0
    weights = load_file(tmp_path / "cli" / "model.safetensors")
    assert all(t.is_contiguous() for t in weights.values())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inside torch
def test_compile_trains_like_eager_and_saves_the_plain_module(tmp_path, write_config):
    """runtime.compile is a speed option only: the eager run's weights (to float tolerance: Inductor
    fuses and reorders float ops) and predictions, a model file with the module's own keys."""
    config = {**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], "epochs": None, "max_steps": 12,
                                          "batch_size": 50},
              "model": {"name": "mlp", "hidden": [32], "dropout": 0.0}}
    eager = _fit(config)
    compiled_config = {**config, "runtime": {"compile": True}}
    compiled = _fit(compiled_config)
    assert compiled.step._module is not compiled.model  # the forward passes did go through torch.compile
    for a, b in zip(_params(eager), _params(compiled), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    x = eager.data.test.x[:20].to(eager.step.device)
    torch.testing.assert_close(eager.step.predict(x), compiled.step.predict(x.to(compiled.step.device)), atol=1e-5,
                               rtol=1e-5)
    out = tmp_path / "cli"
    assert main(["train", "--quiet", "--out", str(out), str(write_config(compiled_config))]) == 0
    assert set(load_file(out / "model.safetensors")) == set(eager.model.state_dict())


def test_compile_without_a_cpp_compiler_is_one_config_error(monkeypatch, write_config, capsys):
    monkeypatch.setattr("trainlab.runtime.shutil.which", lambda name: None)
    config = write_config({**DIGITS_MLP, "runtime": {"device": "cpu", "compile": True}})
    assert main(["train", "--quiet", "--out", str(config.parent / "run"), str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: runtime.compile: true needs a C++ compiler")


def test_epoch_sum_is_the_float64_weighted_sum_and_resumes_in_the_same_order(monkeypatch):
    monkeypatch.setattr(EpochSum, "fold_every", 4)
    rng = np.random.default_rng(0)
    losses = rng.random(11).astype(np.float32) * 3
    sizes = rng.integers(1, 65, 11)
    whole = EpochSum(torch.device("cpu"))
    for value, size in zip(losses, sizes, strict=True):
        whole.add(torch.tensor(value), int(size))
    assert whole.value() == pytest.approx(float(np.sum(losses.astype(np.float64) * sizes)), rel=1e-14)
    assert len(whole.values) == 3  # 11 = 4 + 4 folded + 3 pending

    first = EpochSum(torch.device("cpu"))
    for value, size in zip(losses[:6], sizes[:6], strict=True):
        first.add(torch.tensor(value), int(size))
    resumed = EpochSum(torch.device("cpu"))
    resumed.load_state_dict(first.state_dict())
    for value, size in zip(losses[6:], sizes[6:], strict=True):
        resumed.add(torch.tensor(value), int(size))
    assert resumed.value() == whole.value()  # bit-identical, not approximately
    resumed.reset()
    assert resumed.value() == 0.0 and resumed.values == []


@pytest.mark.parametrize("shape, dtype", [((40, 3, 4, 4), torch.uint8), ((40, 2, 7), torch.int64), ((40, 5), torch.float32)])
def test_fetch_gathers_the_indexed_rows(shape, dtype):
    """TensorBatches.fetch (index_select) returns exactly the rows NumPy fancy indexing picks, in order."""
    from trainlab.data.dataset import Split
    from trainlab.engine.batching import TensorBatches

    rng = np.random.default_rng(0)
    x = rng.integers(0, 200, shape)
    y = rng.integers(0, 4, shape[0])
    batches = TensorBatches(Split(torch.tensor(x, dtype=dtype), torch.tensor(y)), None, 0, torch.device("cpu"))
    index = np.array([7, 0, 39, 7, 12])
    got_x, got_y = batches.fetch(torch.tensor(index), step=0)
    assert got_x.dtype == dtype and got_x.is_contiguous()
    np.testing.assert_array_equal(got_x.numpy(), x[index].astype(got_x.numpy().dtype))
    np.testing.assert_array_equal(got_y.numpy(), y[index])
