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

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.atomic import write_json, write_jsonl, write_safetensors, write_text
from trainlab.builders import assemble, build_loss_for, prepare_model, run_scope
from trainlab.callbacks.base import Callback
from trainlab.config import Config, Strategy, read_yaml, validate
from trainlab.data import TASKS, targets_tensor
from trainlab.data.dataset import Dataset, Split, check_float32_range, infer_task
from trainlab.data.labels import read_class_labels
from trainlab.errors import ConfigError, DataError, folder_error
from trainlab.finetune import unfreeze_all
from trainlab.registry import did_you_mean
from trainlab.run_summary import summarize
from trainlab.time_budget import assemble_within_budget

Arrays = tuple[Any, Any]


@dataclass
class FitResult:
    """What :func:`fit` returns: the epoch records, the summary (val/test metrics) and the trained model."""

    history: list[dict[str, Any]]
    summary: dict[str, Any]
    model: torch.nn.Module


def _tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` (tensor, array, DataFrame, nested lists) as a tensor of numbers, or one DataError."""
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        tensor = _from_array(value, what)
    if tensor.ndim == 0:
        raise DataError(f"{what} is a single number; give one row per sample (an array or tensor)")
    if tensor.dtype in (torch.bfloat16, torch.float16):  # read as NumPy below (no bf16 there), trained in fp32
        tensor = tensor.float()
    return tensor


def _from_array(value: Any, what: str) -> torch.Tensor:
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise DataError(f"{what} does not make one array (rows of different lengths?)") from None
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        hint = (" (class names: encode them as 0..K-1, e.g. with sklearn's LabelEncoder, or train from a CSV "
                "config, which keeps the names)" if what.endswith(" y") else
                " (text or category columns: encode them first, or train from a CSV config, which one-hot "
                "encodes them)")
        raise DataError(f"{what} must hold numbers; got dtype {array.dtype}{hint}")
    if not array.flags.writeable:  # a pandas frame's read-only view: torch would warn of it, and may not share it
        array = array.copy()
    return torch.as_tensor(array)


def _stack(rows: list[Any], part: int, what: str) -> torch.Tensor:
    """Part ``part`` (0: x, 1: y) of a dataset's items stacked into one tensor, or one DataError."""
    items = []
    for i, row in enumerate(rows):
        if not (isinstance(row, tuple | list) and len(row) == 2):
            raise DataError(f"{what}: dataset items must be (x, y) pairs; item {i} is a {type(row).__name__}")
        value = row[part]
        if value is None or isinstance(value, str | bytes | tuple | dict):
            raise DataError(f"{what} of item {i} is a {type(value).__name__}; each must be a tensor, an array or "
                            "a number (encode class names as 0..K-1)")
        items.append(value if isinstance(value, torch.Tensor) else _from_array(value, f"{what} of item {i}"))
        if items[-1].shape != items[0].shape:
            raise DataError(f"{what} of item {i} is shaped {tuple(items[-1].shape)} but item 0's "
                            f"{tuple(items[0].shape)}; every item must have the same shape")
    return torch.stack(items)


def _check_finite(what: str, values: torch.Tensor) -> None:
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        bad = torch.nonzero(~torch.isfinite(values.reshape(len(values), -1)))[0].tolist()
        raise DataError(f"{what} has a non-finite value at row {bad[0]}, column {bad[1]} (counting from 0); "
                        "drop or impute such rows first")


def _as_split(data: Arrays | torch.utils.data.Dataset | None, name: str) -> Split | None:
    if data is None:
        return None
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = _tensor(data[0], f"{name} x"), _tensor(data[1], f"{name} y")
    elif isinstance(data, torch.utils.data.IterableDataset):
        raise DataError(f"{name} is an IterableDataset; fit takes a map-style Dataset of (x, y) pairs (with len "
                        "and [i]) or (x, y) tensors: collect its items into tensors first")
    elif isinstance(data, torch.utils.data.Dataset):
        if not hasattr(data, "__len__"):
            raise DataError(f"{name} dataset has no len(); fit takes a map-style Dataset with __len__ and "
                            "__getitem__, or (x, y) tensors")
        rows = [data[i] for i in range(len(data))]  # a map-style dataset of (x, y) pairs
        if not rows:
            raise DataError(f"{name} dataset is empty")
        first = rows[0]
        if not (isinstance(first, tuple | list) and len(first) == 2):
            what = (f"a dict with keys {', '.join(map(str, first))}" if isinstance(first, dict)
                    else f"a {type(first).__name__}")
            raise DataError(f"{name} dataset items must be (x, y) pairs; item 0 is {what}")
        x, y = _tensor(_stack(rows, 0, f"{name} x"), f"{name} x"), _tensor(_stack(rows, 1, f"{name} y"), f"{name} y")
    else:
        raise DataError(f"{name} must be (x, y) tensors or arrays, or a torch Dataset of (x, y) pairs; "
                        f"got {type(data).__name__}")
    if len(x) != len(y):
        raise DataError(f"{name}: x has {len(x)} rows but y has {len(y)}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # one target shaped (N, 1), as Keras' labels come: the task rule reads it as one column
    if len(x) == 0 and name == "train":
        raise DataError("train is empty (0 rows)")
    for what, values in ((f"{name} x", x), (f"{name} y", y)):
        _check_finite(what, values)
        if values.dtype == torch.float64:  # float32 training: a larger value would become inf
            check_float32_range(values.cpu().numpy(), lambda row, col, what=what:
                                f"{what} at row {row}, column {col} (counting from 0)")
    if x.is_floating_point() and x.dtype != torch.float32:
        x = x.float()
    return Split(x, y)


def _dataset(train: Split, val: Split | None, test: Split | None, task: str | None,
             class_names: list[str] | None) -> Dataset:
    """The splits with the data layer's task rule (``task``, else :func:`infer_task` on the training
    targets) and target types (multi-label targets stay float); the labels are read and checked by
    :func:`~trainlab.data.labels.read_class_labels`, as a config run's are (``class_names`` as
    ``data.class_names``)."""
    if task is not None and task not in TASKS:
        hint = did_you_mean(task, list(TASKS)) if isinstance(task, str) else ""
        raise ConfigError(f"task must be one of {', '.join(TASKS)} (or left out to infer it); got {task!r}{hint}")
    if class_names is not None and (isinstance(class_names, str) or not isinstance(class_names, Sequence)
                                    or not all(isinstance(name, str) for name in class_names)):
        raise ConfigError(f"class_names must be a list of strings, one per class; got {class_names!r}")
    task = task or infer_task(train.y.numpy())
    labels, y_train = read_class_labels(task, train.y.numpy(), None if class_names is None else list(class_names))  # as load_dataset reads a source's
    empty = Split(train.x[:0], train.y[:0])

    def given(name: str, split: Split) -> Split:
        if split.x.shape[1:] != train.x.shape[1:]:
            raise DataError(f"{name} x rows are shaped {tuple(split.x.shape[1:])} but train x rows "
                            f"{tuple(train.x.shape[1:])}")
        y = split.y.numpy()
        return Split(split.x, targets_tensor(y if task == "regression" else labels.given(f"{name} y", y, "class_names"), task))

    return Dataset(Split(train.x, targets_tensor(y_train, task)), given("val", val or empty),
                   given("test", test or empty), task=task, num_classes=labels.num_classes,
                   class_names=labels.class_names)


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
        runtime: dict[str, Any] | None = None, task: str | None = None, class_names: Sequence[str] | None = None,
        overwrite: bool = False) -> FitResult:
    """Train ``model`` on ``train`` with ``strategy``; evaluate on ``val`` each epoch and on val/test at the end.

    ``model`` is trained in place and stays on the run's device (``runtime={"device": ...}``; ``auto``
    is CUDA where present), as the Hugging Face Trainer leaves it: move it with ``.cpu()`` to use it
    with CPU tensors afterwards. ``task`` (``regression``, ``binary``, ``multiclass``, ``multilabel``)
    is ``data.task``: left out, it is inferred from the training targets as for a config run.
    ``class_names`` is ``data.class_names``: one name per class, for labels 0..K-1 (or the K sorted
    values of labels without a 0); it sets K when some classes are missing from ``train``. ``out``
    must be a new or empty folder (not the working directory), unless ``overwrite=True`` lets the
    records replace those of an earlier ``fit`` there. ``finetune.freeze`` freezes the backbone for the
    run only: afterwards every parameter it froze has ``requires_grad`` True again.
    """
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module; got {type(model).__name__} (wrap a function in a "
                          "Module whose forward calls it)")
    if out is not None:
        _check_out(Path(out), overwrite)
    splits = [_as_split(train, "train"), _as_split(val, "val"), _as_split(test, "test")]
    with _in_fit_terms():
        data = _dataset(*splits, task, class_names)
    config = validate({"name": "fit", "seed": seed, "data": {"source": "in_memory"},
                       "model": {"name": type(model).__name__}, "strategy": _strategy(strategy),
                       "metrics": metrics, "runtime": runtime or {}, "output": {"progress": "off"}})
    with run_scope(config):
        notes: dict[str, Any] = {}
        with _in_fit_terms():
            loss = build_loss_for(config, data, notes)
            model = prepare_model(config, data, model)  # strategy.init and finetune.lora, as a config run does
            built = assemble_within_budget(assemble, config, data, loss, model, notes, quiet=True)
        built.trainer.add_callbacks([callbacks] if isinstance(callbacks, Callback) else list(callbacks))
        try:
            built.trainer.fit()
        finally:  # finetune.freeze froze the user's backbone for the run: give it back trainable
            unfreeze_all(built.model)
        summary = summarize(built)
    if out is not None:
        _write_records(Path(out), built.config, built.trainer.state, summary, model)
    return FitResult(built.trainer.state.history, summary, built.model)


# the config keys the shared checks name, as fit's arguments name them
_FIT_TERMS = ((re.compile(r"data\.task: (\w+)"), r"task='\1'"), (re.compile(r"data\.task\b"), "task"),
              (re.compile(r"data\.class_names\b"), "class_names"))


@contextlib.contextmanager
def _in_fit_terms() -> Iterator[None]:
    """Re-raises a :class:`ConfigError` or :class:`DataError` of the checks a config run shares with
    fit with its config keys (``data.task: binary``) named as fit's arguments (``task='binary'``)."""
    try:
        yield
    except (ConfigError, DataError) as exc:
        message = str(exc)
        for pattern, term in _FIT_TERMS:
            message = pattern.sub(term, message)
        if message == str(exc):
            raise
        raise type(exc)(message) from None


FIT_RECORDS = ("metrics.jsonl", "summary.json", "strategy.yaml", "model.safetensors")


def _check_out(out: Path, overwrite: bool) -> None:
    """``out`` as the CLI's ``--out``, checked and created before training: a file, the working directory,
    a folder already holding files (without ``overwrite``), a folder holding anything but an earlier
    fit's records (:data:`FIT_RECORDS`, and the hidden temporaries of an interrupted write; even with
    ``overwrite``: a run folder or your own files are never written into), or a folder that cannot be
    created is refused."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out '{out}' is a file; give a folder for the records")
    if out.resolve() == Path.cwd().resolve():
        raise ConfigError(f"out '{out}' is the working directory; give a folder of its own for the records")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise ConfigError(f"out '{out}' already holds files; give a new folder, or overwrite=True to replace "
                          "the records of an earlier fit there")
    if others := [name for name in present if name not in FIT_RECORDS and not name.startswith(".")]:
        kind = "a trainlab run folder" if "run.json" in present else f"files that are not fit records ({others[0]!r})"
        raise ConfigError(f"out '{out}' holds {kind}; overwrite=True replaces only the records of an earlier "
                          f"fit ({', '.join(FIT_RECORDS)}): give a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(f"out '{out}': cannot create the folder", exc) from None


def _write_records(out: Path, config: Config, state: Any, summary: dict[str, Any], model: torch.nn.Module) -> None:
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "metrics.jsonl", [*state.history, *state.events])
    write_json(out / "summary.json", summary)
    write_text(out / "strategy.yaml", yaml.safe_dump({"strategy": config.to_dict()["strategy"]}, sort_keys=False))
    write_safetensors(out / "model.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()},
                      metadata={"trainlab": json.dumps({"format": "model"})})
