"""A schedule-free run stopped by a signal mid-epoch, then resumed, ends bit-identical to one never stopped.

Schedule-free AdamW trains on y and evaluates x = (y - (1 - beta1) z) / beta1; its train/eval switch is a
``lerp`` each way, which is not an exact inverse in floating point. The checkpoint a signal leaves is written
in ``on_train_end``, after the Trainer put the step in eval mode: it held x, and the resumed run rebuilt y
from it (one rounding off in the last bits: train_loss 0.13932132272358877 against 0.1393213240052699). The
interrupt checkpoint must hold the training-mode state the loop ended with, while what the run's end sees
(its model.safetensors) stays the eval weights.

Reference: the same config never interrupted -- every epoch record and every tensor of model.safetensors
equal (``torch.equal``). The signal is a real SIGTERM the process sends itself as a chosen step starts
(SignalStop turns it into ``interrupted_by`` at that step's end), as in tests/test_signal_with_stop.py.
A checkpoint of the older kind (eval weights, ``train_mode`` false mid-epoch) still resumes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import trainlab
from tests.test_signal_with_stop import SigtermDuring
from trainlab.engine import checkpoint
from trainlab.errors import Interrupted
from trainlab.experiment import train
from trainlab.run_resume import resume

SCHEDULE_FREE = {"name": "schedule_free_adamw", "lr": 0.005}
# schedule-free AdamW for the nn.Linear weights, Adam for the biases (docs/param_groups.md)
AS_A_GROUP = {"name": "adam", "lr": 0.003,
              "groups": [{"name": "weights", "select": "linear_weights", "optimizer": "schedule_free_adamw", "lr": 0.005}]}
CONFIG = {
    "name": "schedule-free-interrupt",
    "seed": 12,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.2},
    "strategy": {"loss": "cross_entropy", "optimizer": SCHEDULE_FREE, "batch_size": 32, "epochs": 3},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 7, "keep_last": 5, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}
STEPS_PER_EPOCH = 36  # digits' 1149 training rows in batches of 32
AT = STEPS_PER_EPOCH + 10  # inside epoch 2, not on a periodic checkpoint's step (every 7)


def _config(optimizer: dict) -> dict:
    config = copy.deepcopy(CONFIG)
    config["strategy"]["optimizer"] = copy.deepcopy(optimizer)
    return config


def _records(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k != "elapsed_s"} for record in lines]


def _interrupted(config: dict, root: Path) -> Path:
    run = root / "interrupted"
    with pytest.raises(Interrupted):
        train(copy.deepcopy(config), out=run, quiet=True, callbacks=[SigtermDuring(AT)])
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    return run


def _interrupt_checkpoint(run: Path) -> Path:
    folder = run / "checkpoint" / checkpoint.folder_name(AT)
    assert folder.is_dir(), sorted(p.name for p in (run / "checkpoint").iterdir())
    return folder


def _assert_same_run(resumed: Path, reference: Path) -> None:
    assert _records(resumed) == _records(reference)
    got, expected = load_file(resumed / "model.safetensors"), load_file(reference / "model.safetensors")
    assert sorted(got) == sorted(expected)
    differing = {name: float((got[name] - expected[name]).abs().max()) for name in expected
                 if not torch.equal(got[name], expected[name])}
    assert not differing, differing


@pytest.mark.parametrize("optimizer", [SCHEDULE_FREE, AS_A_GROUP], ids=["optimizer", "param-group"])
def test_a_schedule_free_run_resumed_after_a_signal_ends_bit_identical(optimizer, tmp_path):
    config = _config(optimizer)
    _, reference = train(copy.deepcopy(config), out=tmp_path / "reference", quiet=True)
    run = _interrupted(config, tmp_path)
    state = json.loads((_interrupt_checkpoint(run) / checkpoint.STATE).read_text())["parts"]["step"]
    assert state["training"] is True  # the loop's own mode mid-epoch, not the eval switch of the run's end
    resume(run, quiet=True)
    _assert_same_run(run, reference)


def _z_of_each_weight(tree: dict, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's z of each model tensor, matched by shape (each of the MLP's four has its own)."""
    model = {key.removeprefix("parts.step.model."): value for key, value in tensors.items()
             if key.startswith("parts.step.model.")}
    zs = [value for key, value in tensors.items() if key.startswith("parts.step.optimizer.state.") and key.endswith(".z")]
    assert len({tuple(value.shape) for value in model.values()}) == len(model) == len(zs)
    return {name: next(z for z in zs if z.shape == value.shape) for name, value in model.items()}


class WeightsAtTheEnd(trainlab.Callback):
    """Keeps the weights ``on_train_end`` sees."""

    def __init__(self):
        self.weights: dict[str, torch.Tensor] | None = None

    def on_train_end(self, view) -> None:
        self.weights = {name: value.cpu() for name, value in view.weights().items()}  # a GPU run's too


def test_the_end_of_an_interrupted_run_sees_the_eval_weights_and_its_checkpoint_the_train_ones(tmp_path):
    """The checkpoint keeps y; ``on_train_end`` sees x = lerp(y, z, 1 - 1/beta1), as before the fix."""
    run, end = tmp_path / "interrupted", WeightsAtTheEnd()
    with pytest.raises(Interrupted):
        train(_config(SCHEDULE_FREE), out=run, quiet=True, callbacks=[SigtermDuring(AT), end])
    _, tree, tensors = checkpoint.load(_interrupt_checkpoint(run))
    (group,) = tree["parts"]["step"]["optimizer"]["param_groups"]
    assert group["train_mode"] is True
    beta1 = group["betas"]["__tuple__"][0]
    assert end.weights is not None
    for name, z in _z_of_each_weight(tree, tensors).items():
        y = tensors[f"parts.step.model.{name}"]
        assert not torch.equal(end.weights[name], y), name
        # bit-equal on a CPU; a GPU's lerp may round the last bit otherwise (x vs y differs far more)
        torch.testing.assert_close(end.weights[name], y.lerp(z, 1 - 1 / beta1), rtol=2e-7, atol=1e-8)


def _as_an_older_eval_mode_checkpoint(folder: Path) -> None:
    """Rewrite ``folder`` as trainlab wrote it before the fix: the eval switch applied (x in the model,
    ``train_mode`` and ``training`` false)."""
    manifest, tree, tensors = checkpoint.load(folder)
    step = tree["parts"]["step"]
    (group,) = step["optimizer"]["param_groups"]
    assert group["train_mode"] is True  # as the run wrote it: the switch below is applied once
    weight = 1 - 1 / group["betas"]["__tuple__"][0]
    for name, z in _z_of_each_weight(tree, tensors).items():
        key = f"parts.step.model.{name}"
        tensors[key] = tensors[key].lerp(z, weight)
    group["train_mode"] = False
    step["training"] = False
    info = {k: v for k, v in manifest.items() if k not in ("format", "files", "sizes")}
    checkpoint.save(folder.parent, folder.name, tree, tensors, info)


def test_an_older_eval_mode_interrupt_checkpoint_still_resumes(tmp_path):
    config = _config(SCHEDULE_FREE)
    _, reference = train(copy.deepcopy(config), out=tmp_path / "reference", quiet=True)
    run = _interrupted(config, tmp_path)
    _as_an_older_eval_mode_checkpoint(_interrupt_checkpoint(run))
    resume(run, quiet=True)
    got, expected = _records(run), _records(reference)
    assert [(r["epoch"], r["step"]) for r in got] == [(r["epoch"], r["step"]) for r in expected]
    # y rebuilt from x (a rounding off), not the same bits: the run goes on from nearly the same point
    for record, reference_record in zip(got, expected, strict=True):
        assert record["train_loss"] == pytest.approx(reference_record["train_loss"], rel=1e-4)
