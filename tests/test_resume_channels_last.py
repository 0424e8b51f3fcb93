"""A channels_last run with a stateful optimizer resumes bit-identically (the moments in their filters' layout)."""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

from tests.resume_from_checkpoints import resumed_model_bytes, train_keeping_checkpoints
from trainlab.engine.optimizer_state import in_parameter_layouts


def _images(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=192)
    x = rng.normal(size=(192, 3, 8, 8)).astype(np.float32) + y[:, None, None, None] * 0.5
    np.savez(tmp_path / "images.npz", x=x, y=y)
    return tmp_path / "images.npz"


def test_a_channels_last_adamw_run_resumes_bit_identically(tmp_path):
    """The checkpoint holds Adam's moments contiguous; loaded as they were, torch's fused CPU AdamW paired
    each NHWC filter element with another element's moments: the resumed run ended elsewhere."""
    config = {
        "name": "cl", "seed": 0,
        "data": {"source": "npz", "path": str(_images(tmp_path)), "val_fraction": 0.0, "test_fraction": 0.0},
        "model": {"name": "cnn2d", "channels": [4, 8], "hidden": 16},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": 0.01}, "batch_size": 32,
                     "epochs": 2},
        "runtime": {"precision": "fp32", "channels_last": True},
        "output": {"progress": "off"},
    }
    full, checkpoints = train_keeping_checkpoints(copy.deepcopy(config), tmp_path, every_n_steps=4)
    reference = (full / "model.safetensors").read_bytes()
    assert json.loads((full / "summary.json").read_text())["stop_reason"]
    assert resumed_model_bytes(full, checkpoints[4], tmp_path) == reference


def test_optimizer_state_is_put_back_in_its_parameters_layout():
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(conv.parameters(), lr=0.1)
    conv(torch.randn(2, 3, 5, 5)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    for slots in state["state"].values():  # as a checkpoint gives them back: contiguous
        for key, value in slots.items():
            slots[key] = value.contiguous() if isinstance(value, torch.Tensor) else value
    optimizer.load_state_dict(state)
    in_parameter_layouts(optimizer)
    moments = optimizer.state[conv.weight]
    assert moments["exp_avg"].stride() == conv.weight.stride() == moments["exp_avg_sq"].stride()
    assert moments["exp_avg"].is_contiguous(memory_format=torch.channels_last)
