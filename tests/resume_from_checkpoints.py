"""Train a config keeping every checkpoint, then resume copies of the run from chosen ones (bit-identity tests)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml


def train_keeping_checkpoints(config: dict[str, Any], tmp_path: Path, every_n_steps: int) -> tuple[Path, dict[int, Path]]:
    """Train ``config`` into ``tmp_path/full`` with a checkpoint every ``every_n_steps`` steps, all kept;
    returns the run folder and its checkpoints by step."""
    from trainlab.cli import main

    config = copy.deepcopy(config)
    config["output"]["checkpoint"] = {"every_n_steps": every_n_steps, "keep_last": 100, "every_seconds": None,
                                      "keep_after_finish": "all"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    full = tmp_path / "full"
    assert main(["train", str(path), "--out", str(full), "--quiet"]) == 0
    return full, {int(f.name.split("-")[1]): f for f in (full / "checkpoint").glob("step-*")}


def resume_a_copy(full: Path, checkpoint: Path, tmp_path: Path) -> Path:
    """Copy the run without its model, keep only ``checkpoint``, mark it interrupted and resume it; returns
    the resumed copy's folder."""
    from trainlab.cli import main

    copy_dir = tmp_path / f"from-{checkpoint.name}"
    shutil.copytree(full, copy_dir, ignore=shutil.ignore_patterns("model.safetensors", "best"))
    for other in (copy_dir / "checkpoint").glob("step-*"):
        if other.name != checkpoint.name:
            shutil.rmtree(other)
    info = json.loads((copy_dir / "run.json").read_text())
    (copy_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert main(["resume", str(copy_dir), "--quiet"]) == 0
    return copy_dir


def resumed_model_bytes(full: Path, checkpoint: Path, tmp_path: Path) -> bytes:
    """:func:`resume_a_copy`'s model.safetensors."""
    return (resume_a_copy(full, checkpoint, tmp_path) / "model.safetensors").read_bytes()
