"""What a finished run keeps of its checkpoints: output.checkpoint.keep_after_finish."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainlab.config import validate
from trainlab.engine import checkpoint
from trainlab.errors import ConfigError


def _checkpoints(root: Path, steps: list[int], best: bool = True) -> None:
    for step in steps:
        checkpoint.save(root, checkpoint.folder_name(step), {"step": step}, {"w": torch.zeros(2)}, {"step": step})
    if best:
        checkpoint.save(root, checkpoint.BEST, {"step": steps[0]}, {"w": torch.zeros(2)}, {"step": steps[0]})
    (root / ".step-000000099.tmp-123").mkdir()  # an interrupted write


def _names(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_last_keeps_best_and_the_newest_step(tmp_path):
    _checkpoints(tmp_path, [10, 20, 30])
    kept = checkpoint.prune_after_finish(tmp_path, "last")
    assert _names(tmp_path) == {"step-000000030", "best"}
    assert [p.name for p in kept] == ["step-000000030", "best"]
    checkpoint.load(tmp_path / "step-000000030")  # what is kept still verifies


def test_none_deletes_every_checkpoint_and_all_deletes_nothing(tmp_path):
    _checkpoints(tmp_path / "a", [1, 2])
    assert checkpoint.prune_after_finish(tmp_path / "a", "none") == []
    assert _names(tmp_path / "a") == set()
    _checkpoints(tmp_path / "b", [1, 2])
    before = _names(tmp_path / "b")
    assert len(checkpoint.prune_after_finish(tmp_path / "b", "all")) == 3
    assert _names(tmp_path / "b") == before


def test_last_without_best_and_a_missing_root(tmp_path):
    _checkpoints(tmp_path, [5, 7], best=False)
    (tmp_path / "notes.txt").write_text("mine")  # not a checkpoint: never touched
    assert [p.name for p in checkpoint.prune_after_finish(tmp_path, "last")] == ["step-000000007"]
    assert _names(tmp_path) == {"step-000000007", "notes.txt"}
    assert checkpoint.prune_after_finish(tmp_path / "absent", "last") == []
    with pytest.raises(ValueError, match="keep must be one of none, last, all"):
        checkpoint.prune_after_finish(tmp_path, "some")


def test_config_field_defaults_to_last_and_refuses_others():
    raw = {"data": {"source": "iris"}, "model": {"name": "mlp"},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1}}
    assert validate(raw).output.checkpoint.keep_after_finish == "last"
    # null is the default, as everywhere in a config; false (YAML's off/no) keeps nothing, as "none"
    assert validate({**raw, "output": {"checkpoint": {"keep_after_finish": None}}}).output.checkpoint \
        .keep_after_finish == "last"
    assert validate({**raw, "output": {"checkpoint": {"keep_after_finish": False}}}).output.checkpoint \
        .keep_after_finish == "none"
    with pytest.raises(ConfigError, match="keep_after_finish"):
        validate({**raw, "output": {"checkpoint": {"keep_after_finish": "best"}}})
    # recording choices leave the config hash (and so resume's check) unchanged
    changed = validate({**raw, "output": {"checkpoint": {"keep_after_finish": "all"}, "loggers": ["csv"]}})
    assert changed.hash() == validate(raw).hash()
