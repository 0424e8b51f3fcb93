"""Test-split predictions of a finished run, for the confusion matrix or the residual plot.

Read from ``predictions.npz`` in the run folder when present (arrays ``y_true``, ``y_pred`` and
optionally ``class_names``), else recomputed: the run's config is rebuilt with
:func:`trainlab.experiment.build` (the same split and preprocessing, as ``trainlab eval`` does),
``model.safetensors`` is loaded, and the loss's own ``predict`` turns outputs into predictions.
Class names come from the run's ``labels.json``, else from the data source, else are the indices.
When neither works the report says why instead of a figure (:class:`Unavailable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PREDICTIONS_FILE = "predictions.npz"
LABELS_FILE = "labels.json"  # class names the run recorded (issue 14); preferred over the data source's


@dataclass
class Predictions:
    """Targets and predictions on the test split; ``class_names`` for classification, else None."""

    task: str  # "regression" or "classification"
    y_true: np.ndarray
    y_pred: np.ndarray
    class_names: list[str] | None


@dataclass
class Unavailable:
    reason: str


def _from_file(path: Path) -> Predictions:
    with np.load(path, allow_pickle=False) as arrays:
        y_true, y_pred = np.asarray(arrays["y_true"]), np.asarray(arrays["y_pred"])
        names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else None
    classification = names is not None or (np.issubdtype(y_true.dtype, np.integer)
                                           and np.issubdtype(y_pred.dtype, np.integer))
    if classification and names is None:
        names = [str(i) for i in range(int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)]
    return Predictions("classification" if classification else "regression", y_true, y_pred, names)


def _recompute(run: Path) -> Predictions:
    import torch
    from safetensors.torch import load_file

    from trainlab.builders import build, run_scope
    from trainlab.config import load_config
    from trainlab.registry import code_policy

    with code_policy(local=False):  # a run folder's config imports no code without the opt-in
        config = load_config(run / "config.yaml")
        with run_scope(config):
            built = build(config, quiet=True)
    built.model.load_state_dict(load_file(run / "model.safetensors"))
    split = built.data.test if len(built.data.test) else built.data.val
    with torch.no_grad():
        output = built.evaluator.outputs(split)
        predicted = built.loss.predict(output)
    y_true = split.y.cpu().numpy()
    y_pred = predicted.cpu().numpy() if isinstance(predicted, torch.Tensor) else np.asarray(predicted)
    if built.data.task == "regression":
        return Predictions("regression", y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1), None)
    k = built.data.num_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    names = list(_recorded_class_names(run, k) or built.data.class_names or [str(i) for i in range(k)])
    return Predictions("classification", y_true.astype(int).reshape(-1), y_pred.astype(int).reshape(-1), names)


def _recorded_class_names(run: Path, count: int) -> list[str] | None:
    """Class names from the run folder's labels.json (a list, or {"class_names": [...]}) when it has ``count``."""
    import json

    try:
        recorded = json.loads((run / LABELS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(recorded, dict):
        recorded = recorded.get("class_names")
    if isinstance(recorded, list) and len(recorded) == count:
        return [str(name) for name in recorded]
    return None


def load_predictions(run: Path) -> Predictions | Unavailable:
    """The run's test predictions, or the reason they cannot be had."""
    run = Path(run)
    if (run / PREDICTIONS_FILE).is_file():
        try:
            return _from_file(run / PREDICTIONS_FILE)
        except (OSError, KeyError, ValueError) as exc:
            return Unavailable(f"{run / PREDICTIONS_FILE} is unreadable ({exc})")
    if not (run / "model.safetensors").is_file():
        return Unavailable(f"{run} has no model.safetensors (the run did not finish) and no {PREDICTIONS_FILE}")
    try:
        return _recompute(run)
    except Exception as exc:  # a report must still be written when the data moved or the code changed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return Unavailable(f"could not rebuild {run} to predict ({type(exc).__name__}: {first})")


def confusion_matrix(predictions: Predictions) -> np.ndarray:
    """counts[i, j] = test samples of true class i predicted as class j (sklearn's convention)."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    k = len(predictions.class_names or [])
    return sk_confusion(predictions.y_true, predictions.y_pred, labels=list(range(k)))
