"""Test-split predictions of a finished run, for the confusion matrices or the residual plot.

Read from ``predictions.npz`` in the run folder when present (arrays ``y_true``, ``y_pred`` and
optionally ``class_names``; regression values in the data's own units; integer (N, L) arrays are
multi-label 0/1 decisions), else recomputed: the run's config is rebuilt with
:func:`trainlab.builders.build` (the same split and preprocessing, as ``trainlab eval`` does),
``model.safetensors`` is loaded, and the loss's own ``predict`` turns outputs into predictions.
Regression targets and predictions are put back in the data's units with
:func:`trainlab.data.preprocessing.inverse_target` (``y = y_std * scale + mean``, as the metrics
are), so a ``data.standardize_target`` run is not plotted in standardised units.
Class and label names come from the run's ``labels.json``, else from the data source, else are the
indices; regression outputs are named by ``data.target``, else ``output i``.
When neither works the report says why instead of a figure (:class:`Unavailable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab.bounded_read import regular_file_info
from trainlab.errors import DataError
from trainlab.npz_archive import open_npz

PREDICTIONS_FILE = "predictions.npz"


@dataclass
class Predictions:
    """Targets and predictions on the test split, by ``task``:

    - "classification": class indices, shaped (N,); ``names`` are the classes;
    - "multilabel": 0/1 per label, shaped (N, L); ``names`` are the L labels;
    - "regression": values in the data's own units, shaped (N, d); ``names`` are the d target columns.
    """

    task: str
    y_true: np.ndarray
    y_pred: np.ndarray
    names: list[str] | None


@dataclass
class Unavailable:
    reason: str


def _from_file(path: Path) -> Predictions:
    """The run's saved predictions, read as any run-folder record of someone else's may need: a symbolic
    link refused, each array's size checked from its header before it is decompressed (open_npz)."""
    regular_file_info(path, follow_links=False)  # a link or a FIFO: LinkError / ValueError
    arrays = open_npz(path, "y_true", "y_pred")
    y_true, y_pred = np.asarray(arrays["y_true"]), np.asarray(arrays["y_pred"])
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else None
    classification = names is not None or (np.issubdtype(y_true.dtype, np.integer)
                                           and np.issubdtype(y_pred.dtype, np.integer))
    if not classification:
        y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
        return Predictions("regression", y_true, y_pred, _output_names(None, y_true.shape[1]))
    if y_true.ndim == 2:
        labels = y_true.shape[1]
        names = names if names is not None and len(names) == labels else [str(i) for i in range(labels)]
        return Predictions("multilabel", y_true.astype(int), y_pred.astype(int), names)
    if names is None:
        names = [str(i) for i in range(int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)]
    return Predictions("classification", y_true, y_pred, names)


def _output_names(target: object, count: int) -> list[str]:
    """Regression output names: ``data.target`` (a column or a list of ``count``), else ``output i``."""
    if isinstance(target, str) and count == 1:
        return [target]
    if isinstance(target, list) and len(target) == count:
        return [str(name) for name in target]
    return ["target"] if count == 1 else [f"output {i}" for i in range(count)]


def _recompute(run: Path) -> Predictions | Unavailable:
    import torch

    from trainlab.builders import build, run_scope
    from trainlab.code_policy import run_code_policy
    from trainlab.data.preprocessing import inverse_target
    from trainlab.losses.base import scored_rows
    from trainlab.model_file import load_weights, read_model
    from trainlab.notices import held_back
    from trainlab.run_records import check_record_digests, load_trained_config, recorded_class_names

    check_record_digests(run)  # a labels.json changed or deleted since training names no matrix's classes (as eval)
    with run_code_policy(run):  # a run folder's config imports no code without the opt-in
        config = load_trained_config(run)
        with run_scope(config), held_back():  # the runs just said what their builds warn of: not twice
            built = build(config, quiet=True)
    load_weights(built.model, read_model(run), run, run / "config.yaml")
    split = built.data.test if len(built.data.test) else built.data.val
    if not len(split):
        return Unavailable(f"{run} has no test or validation split to predict on")
    with torch.no_grad():
        output = built.evaluator.outputs(split)
        predicted = built.loss.predict(output)
    y_true = split.y.cpu().numpy()
    y_pred = predicted.cpu().numpy() if isinstance(predicted, torch.Tensor) else np.asarray(predicted)
    kept = scored_rows(built.loss, split.y)
    if kept is not None:  # the rows of the loss's ignore_index: out of the matrix as of the run's metrics
        y_true, y_pred = y_true[kept.cpu().numpy()], y_pred[kept.cpu().numpy()]
    if built.data.task == "regression":  # the model may predict standardised targets: back to the data's units
        y_true, y_pred = (inverse_target(built.data.preprocessing or {}, y.reshape(len(y), -1))
                          for y in (y_true, y_pred))
        return Predictions("regression", y_true, y_pred,
                           _output_names(config.data.source_kwargs().get("target"), y_true.shape[1]))
    multilabel = built.data.task == "multilabel"
    k = (y_true.shape[1] if multilabel
         else (built.data.num_classes or int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1))
    names = list(recorded_class_names(run, k) or built.data.class_names or [str(i) for i in range(k)])
    if multilabel:  # one 0/1 decision per label, not a class index: kept (N, L)
        return Predictions("multilabel", y_true.astype(int), y_pred.astype(int).reshape(y_true.shape), names)
    return Predictions("classification", y_true.astype(int).reshape(-1), y_pred.astype(int).reshape(-1), names)


def load_predictions(run: Path) -> Predictions | Unavailable:
    """The run's test predictions, or the reason they cannot be had."""
    run = Path(run)
    if (run / PREDICTIONS_FILE).is_file():
        try:
            return _from_file(run / PREDICTIONS_FILE)
        except (OSError, KeyError, ValueError, DataError) as exc:
            return Unavailable(f"{run / PREDICTIONS_FILE} is unreadable ({exc})")
    if not (run / "model.safetensors").is_file():
        from trainlab.model_file import why_no_model

        return Unavailable(f"{run} has no model.safetensors ({why_no_model(run)}) and no {PREDICTIONS_FILE}")
    try:
        return _recompute(run)
    except Exception as exc:  # a report must still be written when the data moved or the code changed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        first = first if len(first) <= 600 else first[:600] + "..."
        return Unavailable(f"could not rebuild {run} to predict ({type(exc).__name__}: {first})")


def confusion_matrix(predictions: Predictions) -> np.ndarray:
    """counts[i, j] = test samples of true class i predicted as class j (sklearn's convention).

    Multi-label: one 2x2 matrix per label, shaped (L, 2, 2), ``[[TN, FP], [FN, TP]]`` (rows: the
    label absent/present, columns: predicted absent/present), as sklearn's multilabel_confusion_matrix.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion

    if predictions.task == "multilabel":
        true, predicted = predictions.y_true.astype(bool), predictions.y_pred.astype(bool)
        cells = [[~true & ~predicted, ~true & predicted], [true & ~predicted, true & predicted]]
        return np.array([[cell.sum(axis=0) for cell in row] for row in cells]).transpose(2, 0, 1)
    k = len(predictions.names or [])
    return sk_confusion(predictions.y_true, predictions.y_pred, labels=list(range(k)))
