"""``trainlab.fit``: train your own ``nn.Module`` on your own tensors with a strategy, in a few lines.

>>> import torch, trainlab
>>> x, y = torch.randn(256, 4), torch.randint(0, 3, (256,))
>>> result = trainlab.fit(torch.nn.Linear(4, 3), train=(x, y), val=(x[:64], y[:64]),
...                       strategy={"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
...                                 "batch_size": 32, "epochs": 2})
>>> len(result.history), sorted(result.summary["val"])[:2]
(2, ['accuracy', 'f1'])

The strategy is the ``strategy:`` section of a config (a dict, a path to a YAML
file holding one, or a :class:`trainlab.config.Strategy`); ``callbacks`` are
:class:`trainlab.Callback` subclasses, run beside the built-in ones. With ``out``,
the records (metrics.jsonl, summary.json, model.safetensors, strategy.yaml) are
written there; resumable run folders come from config-driven runs (``trainlab train``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.atomic import write_json, write_jsonl, write_safetensors, write_text
from trainlab.builders import assemble, build_loss_for, run_scope
from trainlab.callbacks.base import Callback
from trainlab.config import Config, Strategy, read_yaml, validate
from trainlab.data import targets_tensor
from trainlab.data.dataset import Dataset, Split, infer_task
from trainlab.errors import ConfigError, DataError
from trainlab.experiment import summarize

Arrays = tuple[Any, Any]


@dataclass
class FitResult:
    """What :func:`fit` returns: the epoch records, the summary (val/test metrics) and the trained model."""

    history: list[dict[str, Any]]
    summary: dict[str, Any]
    model: torch.nn.Module


def _as_split(data: Arrays | torch.utils.data.Dataset | None, name: str) -> Split | None:
    if data is None:
        return None
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in data)
    elif isinstance(data, torch.utils.data.Dataset):
        rows = [data[i] for i in range(len(data))]  # a map-style dataset of (x, y) pairs
        if not rows:
            raise DataError(f"{name} dataset is empty")
        x = torch.stack([torch.as_tensor(r[0]) for r in rows])
        y = torch.stack([torch.as_tensor(r[1]) for r in rows])
    else:
        raise DataError(f"{name} must be (x, y) tensors or arrays, or a torch Dataset of (x, y) pairs; "
                        f"got {type(data).__name__}")
    if len(x) != len(y):
        raise DataError(f"{name}: x has {len(x)} rows but y has {len(y)}")
    if x.is_floating_point() and x.dtype != torch.float32:
        x = x.float()
    return Split(x, y)


def _dataset(train: Split, val: Split | None, test: Split | None) -> Dataset:
    """The splits with the data layer's task inference and target types (multi-label targets stay float)."""
    task = infer_task(train.y.numpy())
    empty = Split(train.x[:0], train.y[:0])
    splits = [Split(s.x, targets_tensor(s.y.numpy(), task)) for s in (train, val or empty, test or empty)]
    y = splits[0].y
    num_classes = {"regression": None, "binary": 2, "multilabel": int(y.shape[-1])}.get(task, int(y.max()) + 1)
    return Dataset(splits[0], splits[1], splits[2], task=task, num_classes=num_classes)


def _strategy(strategy: dict[str, Any] | str | Path | Strategy) -> dict[str, Any]:
    if isinstance(strategy, Strategy):
        return strategy.model_dump(mode="json")
    if isinstance(strategy, str | Path):
        raw = read_yaml(strategy)
        return raw.get("strategy", raw)
    if isinstance(strategy, dict):
        return dict(strategy)
    raise ConfigError(f"strategy must be a dict, a YAML path or a trainlab.config.Strategy; "
                      f"got {type(strategy).__name__}")


def fit(model: torch.nn.Module, train: Arrays | torch.utils.data.Dataset,
        strategy: dict[str, Any] | str | Path | Strategy, val: Arrays | torch.utils.data.Dataset | None = None,
        test: Arrays | torch.utils.data.Dataset | None = None, callbacks: Sequence[Callback] = (),
        metrics: list[str] | None = None, seed: int = 0, out: str | Path | None = None,
        runtime: dict[str, Any] | None = None) -> FitResult:
    """Train ``model`` on ``train`` with ``strategy``; evaluate on ``val`` each epoch and on val/test at the end.

    ``model`` is trained in place and stays on the run's device (``runtime={"device": ...}``; ``auto``
    is CUDA where present), as the Hugging Face Trainer leaves it: move it with ``.cpu()`` to use it
    with CPU tensors afterwards.
    """
    splits = [_as_split(train, "train"), _as_split(val, "val"), _as_split(test, "test")]
    data = _dataset(*splits)
    config = validate({"name": "fit", "seed": seed, "data": {"source": "in_memory"},
                       "model": {"name": type(model).__name__}, "strategy": _strategy(strategy),
                       "metrics": metrics, "runtime": runtime or {}, "output": {"progress": "off"}})
    with run_scope(config):
        notes: dict[str, Any] = {}
        loss = build_loss_for(config, data, notes)
        built = assemble(config, data, loss, model, notes, quiet=True)
        built.trainer.add_callbacks(list(callbacks))
        built.trainer.fit()
        summary = summarize(built)
    if out is not None:
        _write_records(Path(out), built.config, built.trainer.state, summary, model)
    return FitResult(built.trainer.state.history, summary, built.model)


def _write_records(out: Path, config: Config, state: Any, summary: dict[str, Any], model: torch.nn.Module) -> None:
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "metrics.jsonl", [*state.history, *state.events])
    write_json(out / "summary.json", summary)
    write_text(out / "strategy.yaml", yaml.safe_dump({"strategy": config.to_dict()["strategy"]}, sort_keys=False))
    write_safetensors(out / "model.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()},
                      metadata={"trainlab": json.dumps({"format": "model"})})
