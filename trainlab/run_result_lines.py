"""How ``train``, ``resume`` and ``eval`` print a run's result: the run line, the train line and the val/test
metric tables, one metric a line with the values lined up (the numbers are summary.json's)."""

from __future__ import annotations

import json
from pathlib import Path

METRIC_NAME_WIDTH = 12  # the names' column is at least this wide, and as wide as the longest name


def name_width(*tables: dict) -> int:
    """The width of the metric names' column for ``tables`` printed one under the other."""
    return max([METRIC_NAME_WIDTH, *(len(str(key)) for table in tables for key in table)])


def print_metrics(title: str, metrics: dict, class_names: list[str] | None = None, width: int | None = None,
                  held_in: str = "in summary.json") -> None:
    """One metric a line, names padded to ``width`` (None: :func:`name_width` of ``metrics``) so that the
    values line up; a ``*_per_class`` list is shown against the class names when the run has them; a list too
    large to read (a 1000-class confusion matrix) by its shape and where it is (``held_in``:
    :func:`~trainlab.run_summary.abbreviated_metric`). An empty split (``test_fraction: 0``) says so instead
    of an empty heading."""
    from trainlab.run_summary import abbreviated_metric

    if not metrics:
        print(f"{title} (no rows in this split)")
        return
    print(title)
    for key, value in metrics.items():
        abbreviated = abbreviated_metric(value, held_in)
        if isinstance(value, float):
            shown = f"{value:.6g}"
        elif abbreviated is not None:
            shown = abbreviated
        elif (key.endswith("_per_class") and class_names and isinstance(value, list)
              and len(value) == len(class_names)):
            shown = json.dumps({name: None if v is None else float(f"{v:.6g}")  # None: not finite
                                for name, v in zip(class_names, value, strict=True)}, ensure_ascii=False)
        else:
            shown = json.dumps(value, ensure_ascii=False)  # class names as written: 'bâteau', not 'b\u00e2teau'
        print(f"  {key:<{width or name_width(metrics)}} {shown}")


def run_length(summary: dict) -> str:
    """"9 epochs", or for a time-budgeted run that ended inside an epoch "23.14 epochs (1134 steps)"."""
    per_epoch = summary.get("notes", {}).get("time_budget", {}).get("steps_per_epoch")
    if per_epoch and summary.get("steps", 0) % per_epoch:
        return f"{summary['steps'] / per_epoch:.2f} epochs ({summary['steps']} steps)"
    from trainlab.config_fields import counted

    return counted(summary["epochs_run"], "epoch")


def evaluated_as(evaluation: dict | None) -> str:
    """" (TTA, 6 views)" where val/test were averaged over test-time augmentation's views (summary.json's
    ``evaluation.tta``), else "": the printed val then differs from the last epoch's single-view record."""
    tta = (evaluation or {}).get("tta")
    return f" (TTA, {tta['views']} views)" if isinstance(tta, dict) and tta.get("views") else ""


def recorded_evaluation(summary: dict | None) -> dict | None:
    """The ``evaluation`` of a finished run's ``summary`` (its summary.json: eval evaluates as the run's summary
    did), else None."""
    evaluation = (summary or {}).get("evaluation")
    return evaluation if isinstance(evaluation, dict) else None


def rows_text(summary: dict) -> str:
    """"; rows 78 train, 18 val, 24 test" from summary.json's ``rows`` (summaries before it: "")."""
    rows = summary.get("rows")
    if not isinstance(rows, dict) or any(rows.get(split) is None for split in ("train", "val", "test")):
        return ""
    return f"; rows {rows.get('train')} train, {rows.get('val')} val, {rows.get('test')} test"


def train_line(summary: dict, evaluated: str) -> str | None:
    """"train: loss 0.0312, accuracy 0.994 (the saved model, eval mode)": the numbers of summary.json's ``train``
    block on one line (lists such as a confusion matrix left to the file), the train side of the val/test
    tables printed under it; None for a summary without one (``output.evaluate_train: false``). "The saved
    model": the weights in model.safetensors (early stopping's restored ones, the averaged ones), not
    necessarily those of the last step (a user trial read "final weights" so after a restore)."""
    train = summary.get("train")
    if not isinstance(train, dict):
        return None
    numbers = [f"{key} {'null' if value is None else f'{value:.6g}'}" for key, value in train.items()
               if value is None or isinstance(value, int | float) and not isinstance(value, bool)]
    return f"train{evaluated}: {', '.join(numbers) or '(no rows in this split)'} (the saved model, eval mode)"


def restored_line(summary: dict) -> str | None:
    """Whose weights the saved model holds where early stopping decided it: ``model: epoch 14's weights, the best
    val_loss (early stopping's restore_best)``, or after an early stop with ``restore_best: false`` the last
    epoch's; None otherwise (a teacher's two runs, with and without restore_best, printed the same lines)."""
    restored = summary.get("restored_epoch")
    if isinstance(restored, int | float) and not isinstance(restored, bool):
        if restored == summary.get("epochs_run"):
            return None  # the best was the last validation: the weights training ended with
        monitor = str(summary.get("stop_reason") or "").removeprefix("early stopping: ").split(" did not", 1)[0]
        best = f", the best {monitor}" if summary.get("stopped_early") and monitor else ""
        return f"model: epoch {restored:g}'s weights{best} (early stopping's restore_best), not the last epoch's"
    reason = str(summary.get("stop_reason") or "")
    if summary.get("stopped_early") and reason.startswith("early stopping") and summary.get("best_epoch") is not None:
        # (no best epoch where no value was a number: nothing to restore, restore_best or not)
        return "model: the last epoch's weights (early_stopping.restore_best: false), not the best epoch's"
    return None


def print_run_result(summary: dict, path: Path) -> None:
    """The run's result on stdout; nothing for a finished run that a resume left as it was (its one line,
    ``notes["nothing_to_resume"]``, was said on stderr already)."""
    from trainlab.run_records import recorded_class_names

    if summary.get("notes", {}).get("nothing_to_resume"):
        return
    print(f"run {summary['name']}: {summary['stop_reason']} after {run_length(summary)} "
          f"({summary['train_time_s']:.2f} s, {summary['mode']}{rows_text(summary)})")
    restored = restored_line(summary)
    if restored:
        print(restored)
    names = recorded_class_names(path)
    width = name_width(summary["val"], summary["test"])  # one column for both tables
    evaluated = evaluated_as(summary.get("evaluation"))
    train = train_line(summary, evaluated)
    if train:
        print(train)
    print_metrics(f"val{evaluated}:", summary["val"], names, width)
    print_metrics(f"test{evaluated}:", summary["test"], names, width)
    print(f"saved to {path}")
