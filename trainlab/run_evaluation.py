"""Evaluating a run folder: :func:`evaluate_run` reloads a finished run's ``model.safetensors`` and
``loss.safetensors`` (or a checkpoint's weights) and recomputes its metrics on one split. It
happens inside :func:`trainlab.builders.run_scope`, so runs can follow one another in one process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainlab.builders import build, run_scope
from trainlab.code_policy import run_code_policy
from trainlab.config import Config
from trainlab.config_fields import counted, path_argument, short_repr
from trainlab.data.fingerprint import named_files
from trainlab.errors import ConfigError, DataError
from trainlab.inference import refuse_gone_checkpoint, run_config_path
from trainlab.notices import evaluating_split, warn
from trainlab.records import read_record_text
from trainlab.run_records import (
    LABELS_RECORD,
    check_record_digests,
    load_trained_config,
    recorded_class_names,
)
from trainlab.run_resume import warn_if_data_changed
from trainlab.run_weights import load_trained_state, read_trained_state


def _refuse_moved_data(path: Path, config: Config) -> None:
    """Refuse a run whose data files (``data.path``/``train``/``val``/``test``) are no longer where its
    config.yaml says: training recorded them as absolute paths, which ``--data-dir`` does not move, and
    the config is fixed by its hash, so the one way to evaluate it is to put the data back there."""
    data = config.data.model_dump()
    for key, file in named_files(data).items():
        if key != "tokenizer_path" and file.is_absolute() and not file.exists():  # tokenizer_path: maybe a package
            raise DataError(f"the data of run {path} is gone from where it was trained: data.{key} {file} does not "
                            "exist (an absolute path in the run's config.yaml, which --data-dir does not change); "
                            "put the data back there to evaluate the run")


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(short_repr(name) for name in names[:most]) + (", ..." if len(names) > most else "")


def _refuse_other_classes(path: Path, now: list[str] | None) -> None:
    """Refuse evaluating a run on data whose classes ``now`` (the dataset built from it) are not those its
    labels.json names: a label added to the data since training made the model built for it one output wider,
    and loading the weights failed as if the run's model.safetensors were another run's."""
    trained = recorded_class_names(path)  # None without a labels.json (regression) or of another shape
    if trained is None or now is None or list(now) == trained:
        return
    added, dropped = [c for c in now if c not in trained], [c for c in trained if c not in now]
    change = "; ".join(part for part in (
        f"{counted(len(added), 'class', 'classes')} the run never trained on ({_names(added)})" if added else "",
        f"none of {_names(dropped)}" if dropped else "") if part) or "its classes in another order"
    raise DataError(f"the data of run {path} has changed since it trained: it now holds {change}, where the run's "
                    f"model scores the {len(trained)} classes of {path / LABELS_RECORD} ({_names(trained)}); "
                    "evaluate it on data of those classes, or train a new run on the data as it is now")


def evaluate_run(path: str | Path, split: str = "test", checkpoint: str | None = None) -> dict[str, Any]:
    """Reload a finished run's ``model.safetensors`` (and ``loss.safetensors``, the learned state of its
    loss) and recompute its metrics on ``split``. ``checkpoint`` (``eval --checkpoint``: ``best``, ``last``, a
    ``step-*`` folder) evaluates the weights of that checkpoint of the run instead, those the run's own
    evaluation at that step used (:func:`trainlab.run_weights.checkpoint_state`)."""
    path = path_argument(path, "evaluate_run's path")
    with run_code_policy(path):
        return _evaluate_run(path, split, checkpoint)


def _evaluate_run(path: str | Path, split: str, checkpoint: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be one of train, val, test (eval's --split); got {split!r}")
    config_path = run_config_path(path)
    trained = read_trained_state(path, checkpoint)
    check_record_digests(path)  # as predict: eval prints per-class numbers under labels.json's class names
    config = load_trained_config(path, config_path)
    try:
        info = json.loads(read_record_text(path / "run.json"))
    except (OSError, ValueError, RecursionError):
        info = {}
    refuse_gone_checkpoint(path, config)  # what predict says of it (trainlab.inference), before the data's
    _refuse_moved_data(path, config)  # before the "changed" warning: missing files are the news, not a change
    warn_if_data_changed(path, info if isinstance(info, dict) else {}, config, "since it was trained",
                          f"evaluating on them as they are now (the {split} split may hold other rows)")
    with run_scope(config), evaluating_split(split):  # a test split's missing class is no news to --split val
        built = build(config, quiet=True, training=False)
        _refuse_other_classes(path, built.data.class_names)
        # the model's weights and the loss's learned state (a learned variance, alpha ...)
        load_trained_state(built.model, built.loss, trained, path, config_path, config_path, warn=warn)
        return built.evaluator.evaluate(getattr(built.data, split))
