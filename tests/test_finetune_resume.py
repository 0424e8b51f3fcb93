"""A text fine-tune with dynamic padding, length grouping and a step budget resumes bit-identically.

Tiny BERT (2 layers, hidden 16) saved with its tokenizer to a tmp folder; sentences of 2 to 12 words
padded to max_length 16, so every batch is cut to a different length; ``min_steps`` stretches the one
epoch to several. Resumed from a mid-epoch and an epoch-boundary checkpoint, the final weights and the
loss history equal the uninterrupted run's byte for byte.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from tests.tiny_bert import WORDS


def _texts(folder, rows: int = 48) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    lines = ["sentence\tlabel"]
    for i in range(rows):
        words = rng.choice(WORDS[5:], size=int(rng.integers(2, 13)))
        lines.append(" ".join(words) + f"\t{int('good' in words) if i % 3 else i % 2}")
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")


def _losses(folder) -> list[float]:
    records = map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
    return [record["train_loss"] for record in records if "train_loss" in record]


@pytest.mark.slow  # three CLI runs that load transformers: about 15 s of CPU
def test_dynamic_padding_with_a_step_budget_resumes_bit_identically(tmp_path, tiny_bert_dir):
    from trainlab.cli import main

    _texts(tmp_path / "data")
    config = {
        "name": "text-resume", "seed": 1,
        "data": {"source": "text_tsv", "path": str(tmp_path / "data"), "train": "train.tsv", "val_fraction": 0.125,
                 "test_fraction": 0.125, "tokenizer": "hf", "tokenizer_path": str(tiny_bert_dir), "max_length": 16},
        "model": {"name": "hf_pretrained", "path": str(tiny_bert_dir), "dropout": 0.1},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
                     "batch_size": 8, "epochs": 1, "min_steps": 12, "clip_grad_norm": 1.0, "group_by_length": True,
                     "schedule": {"name": "warmup_linear", "warmup_fraction": 0.1}},
        "output": {"progress": "off", "checkpoint": {"every_n_steps": 2, "keep_last": 100, "every_seconds": None,
                                                     "keep_after_finish": "all"}},
        "runtime": {"num_threads": 1},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    full = tmp_path / "full"
    assert main(["train", str(path), "--out", str(full), "--quiet"]) == 0
    summary = json.loads((full / "summary.json").read_text())
    assert summary["steps"] == 15 and summary["epochs_run"] == 3  # 36 rows / 8 -> 5 steps; ceil(12 / 5) = 3 epochs
    reference = (full / "model.safetensors").read_bytes()
    for step in (4, 10):  # mid-epoch, and the end of epoch 2
        copy_dir = tmp_path / f"from-{step}"
        shutil.copytree(full, copy_dir, ignore=shutil.ignore_patterns("model.safetensors", "best"))
        for other in (copy_dir / "checkpoint").glob("step-*"):
            if int(other.name.split("-")[1]) != step:
                shutil.rmtree(other)
        assert len(list((copy_dir / "checkpoint").glob("step-*"))) == 1
        info = json.loads((copy_dir / "run.json").read_text())
        (copy_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
        assert main(["resume", str(copy_dir), "--quiet"]) == 0
        assert (copy_dir / "model.safetensors").read_bytes() == reference, step
        assert _losses(copy_dir) == _losses(full), step
