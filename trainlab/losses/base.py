"""The loss contract every registered loss follows.

A loss is an ``nn.Module`` whose ``forward(pred, target, weight=None)`` returns a
scalar (``reduction='mean'``, the default), a sum (``'sum'``) or one value per
sample (``'none'``), and which declares what it expects:

- ``target_kind``:

  - ``"continuous"``: regression; pred and target have the same shape (N, d).
  - ``"distribution"``: target distributions (N, K), each row non-negative and summing
    to 1 (soft labels, a teacher's probabilities): ``kl_div``. The data is read as a
    regression task (float columns); class labels are refused with ``cross_entropy`` named.
  - ``"binary"``: one logit (or probability) per sample and int targets in {0, 1};
    a multi-label task passes (N, L) outputs and (N, L) 0/1 targets.
  - ``"class_index"``: K logits per sample and int64 targets in [0, K).
  - ``"pair"``: metric learning on pairs. pred packs two embeddings per row,
    ``[x1 | x2]`` of shape (N, 2 * embedding_dim) (or (N, 2, embedding_dim)); the
    target is the pair label, 1 = similar, 0 (or -1) = dissimilar. The data is a
    binary task; ``predict`` returns the 0/1 same-pair decision so binary metrics apply.
  - ``"embedding"``: self-supervised / triplet losses. pred packs ``num_views``
    embeddings per row (N, num_views * embedding_dim); the target is not used
    (any (N,) tensor: the engine passes the data's y). ``predict`` returns the
    embeddings as (N, num_views, embedding_dim).
  - ``"multitask"``: pred and target are dicts keyed by task name
    (:class:`trainlab.losses.composite.MultiTaskLoss`).

- ``output_dim(task, num_classes, target_dim)``: how many outputs the model needs
  (``task`` is ``"regression"``, ``"binary"``, ``"multiclass"`` or ``"multilabel"``; L
  for a multi-label task, which also sets ``multilabel`` so that ``predict`` and
  ``probabilities`` read the outputs as one logit per label).
- ``takes_multilabel``: whether the loss trains on multi-label data, one output per
  label. Every ``"binary"`` loss does; a ``"class_index"`` loss does only when it
  declares so (``focal``, whose sigmoid form is per label): the others are refused
  with the fix (class indices for one-hot rows, ``bce`` for several labels).
- ``takes_logits``: whether the model's outputs are unbounded scores the loss reads as
  such: logits it squashes itself (``bce``, ``cross_entropy``, ``focal``, ``kl_div`` with
  ``input="logits"``) or margins (the hinge losses). A model that ends in its own sigmoid
  or softmax trains such a loss on squashed scores (a second sigmoid, predictions from
  ``z > 0``) and reports wrong metrics, so a run refuses it
  (:func:`trainlab.probability_outputs.check_probability_outputs`). False for losses on
  probabilities (``bce_prob``), log-probabilities (``nll``) and values.
- ``check(pred, target)``: raises ``DataError`` with a one-line message before
  training starts when shapes or labels do not fit.
- ``constants_mismatch(pred, target)``: why the loss's per-class / per-label numbers
  from the config (class weights, focal alpha, pos_weight; the per-column parameters of
  ``num_dims``: ``gaussian_nll``'s learned variance, ``adaptive``'s alpha and scale) do not
  fit these outputs or targets, or None. ``check`` refuses them too; a run asks first and
  reports a ConfigError (exit 2), since the numbers are what to change.
- ``one_row_batch_problem``: why a batch of 1 row trains nothing with this loss (``nt_xent``: it holds
  no negatives, so the loss is 0 with no gradient), or None (every other built-in loss). A run refuses
  ``batch_size: 1`` for such a loss and warns when each epoch ends on a 1-row batch
  (:func:`trainlab.run_checks.check_loss_batch_rows`).
- ``predict(output)``: turns model output into predictions for the metrics: class
  indices (N,), 0/1 per sample (N,) or per label (N, L) (sigmoid(z) > 0.5, i.e. z > 0), or values.
- ``probabilities(output)``: the model's class probabilities for score-based metrics
  (ROC AUC, average precision, log-loss, top-k): softmax (N, K) for K logits, sigmoid
  P(label 1) as (N,) for one logit and (N, L) per label for multi-label data; ``None``
  where the output is not a probability model (regression, hinge, metric learning).

Per-class / per-label constants from the config (class weights, focal alpha, pos_weight)
are registered with :meth:`Loss.register_constant`: a buffer in the default dtype that
follows the module's dtype and device, re-rounded from the exact config numbers on every
dtype move, so a float64 run uses float64 weights (not float32 values widened).

Per-sample ``weight`` (shape (N,)) multiplies each sample's loss; the weighted
mean divides by the sum of the weights (of every element the weight covers).

- ``mean_denominator(target, weight=None)``: what the batch's ``mean`` divides the
  summed loss by, or ``None`` for the row count (a plain mean over rows). Gradient
  accumulation weights micro-batch i's mean by ``d_i / sum_j d_j`` so that the step
  follows the mean over all its rows, as one batch of them would: the row counts by
  default, the summed sample weights with ``weight``, and for ``cross_entropy`` / ``nll``
  with class weights (or a non-negative ``ignore_index``) the summed class weights of the
  kept labels, as PyTorch's weighted mean divides by. A batch that keeps nothing (every label
  ``ignore_index``) has a mean of 0 with no gradient, not PyTorch's 0 / 0 = NaN, and a denominator
  of the dtype's smallest normal number rather than 0 (:func:`zero_floored`): it weighs nothing.
Losses may own parameters (e.g. a learned scale); the engine gives them to the optimizer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from trainlab.config_fields import counted
from trainlab.data.dataset import MAX_INFERRED_CLASSES, SURE_CLASSES
from trainlab.errors import DataError

TargetKind = Literal["continuous", "distribution", "binary", "class_index", "pair", "embedding", "multitask"]
Reduction = Literal["mean", "sum", "none"]


def mean_or_zero(total: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``total / denominator``, and 0 with a 0 gradient where ``denominator`` is 0: the mean of a batch that
    keeps nothing (every label ``ignore_index``, every weight 0) is 0, not 0 / 0 = NaN, so such a batch adds
    nothing to a step or an epoch (where its weight, :func:`zero_floored`, is next to 0 as well). No host
    sync: both stay tensors."""
    empty = denominator == 0
    safe = torch.where(empty, torch.ones_like(denominator), denominator)  # no 0 / 0 in the unused branch either
    return torch.where(empty, torch.zeros_like(total), total / safe)


def sums_over_rows(loss: Any) -> bool:
    """Whether ``loss`` (a trainlab Loss, or any callable) is ``reduction: sum``: its value is the sum over the
    batch's rows, which the records give per row (the training step's report, the evaluation's loss)."""
    return getattr(loss, "reduction", "mean") == "sum"


def scored_rows(loss: Any, target: torch.Tensor) -> torch.Tensor | None:
    """The rows of class-index ``target`` whose label is not ``loss``'s ``ignore_index`` (cross_entropy, nll), as
    a bool mask; None where every row counts. They add nothing to the loss, and a run's metrics (and the
    report's confusion matrix) leave them out too, as torchmetrics' ``ignore_index`` does: a class the model is
    never taught would count as an error in every accuracy, recall and F1."""
    ignored = getattr(loss, "ignore_index", None)
    if ignored is None or target.ndim != 1:
        return None
    kept = target != ignored
    return None if bool(kept.all()) else kept


def zero_floored(denominator: torch.Tensor) -> torch.Tensor:
    """``denominator`` with 0 replaced by its dtype's smallest normal number, for :meth:`Loss.mean_denominator`:
    a batch whose mean is 0 because it keeps nothing (:func:`mean_or_zero`) still weighs next to nothing in an
    epoch's mean, and an accumulated step of only such micro-batches gets finite shares d_i / sum_j d_j
    (1 / k each, of losses and gradients that are 0) instead of 0 / 0."""
    if not denominator.is_floating_point():  # integer sample weights
        denominator = denominator.to(torch.get_default_dtype())
    tiny = torch.finfo(denominator.dtype).tiny
    return torch.where(denominator == 0, torch.full_like(denominator, tiny), denominator)


def reduce(values: torch.Tensor, reduction: str, weight: torch.Tensor | None = None,
           denominator: torch.Tensor | None = None) -> torch.Tensor:
    """Apply optional per-sample ``weight`` then mean/sum/none.

    ``mean`` is ``sum(w * v) / sum(w)`` with ``w`` broadcast over each sample's
    elements (plain ``v.mean()`` without weights). ``denominator`` overrides the
    divisor of ``mean`` (cross-entropy with class weights divides by the summed
    class weights of the targets, as PyTorch does). A divisor of 0 (nothing kept)
    gives a mean of 0 (:func:`mean_or_zero`).
    """
    if weight is not None:
        if weight.ndim != 1 or (values.ndim and weight.shape[0] != values.shape[0]):
            raise DataError(
                f"sample weight must have shape ({values.shape[0] if values.ndim else 1},); "
                f"got {tuple(weight.shape)}"
            )
        weight = weight.to(values.dtype).reshape(weight.shape + (1,) * (values.ndim - 1))
        values = values * weight
        if reduction == "mean" and denominator is None:
            return mean_or_zero(values.sum(), weight.expand_as(values).sum())
    if reduction == "mean":
        return mean_or_zero(values.sum(), denominator) if denominator is not None else values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def widen(output: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (probabilities near 0 or 1 need the mantissa); float64 stays."""
    return output if output.dtype == torch.float64 else output.float()


def check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    return reduction


def split_views(pred: torch.Tensor, views: int, name: str) -> list[torch.Tensor]:
    """(N, views * D) or (N, views, D) -> ``views`` tensors of shape (N, D)."""
    if pred.ndim == 3 and pred.shape[1] == views:
        return list(pred.unbind(1))
    if pred.ndim != 2 or pred.shape[1] % views:
        raise DataError(
            f"{name} expects {views} embeddings per row, shape (N, {views} * D) or (N, {views}, D); "
            f"got {tuple(pred.shape)}"
        )
    return list(pred.chunk(views, dim=1))


def columns(values: torch.Tensor) -> int:
    """The columns of (N, d) predictions or targets; 1 for (N,)."""
    return values.shape[-1] if values.ndim >= 2 else 1


def num_dims_mismatch(name: str, num_dims: int, width: int, shared: str, what: str = "targets") -> str | None:
    """Why a loss's ``num_dims`` per-column parameters (``shared``: what each column would get, e.g.
    ``"variance"``) do not fit ``what`` of ``width`` columns, or None: 1 is shared by every column and fits
    any width, d fits d columns. Any other number would broadcast or fail in torch's words."""
    if num_dims in (1, width):
        return None
    fix = f"1 (one {shared} shared by every column)" + (f" or {width} (one per column)" if width > 1 else "")
    return (f"{name}: num_dims is {num_dims} but the {what} have {counted(width, 'column')}; set num_dims to "
            f"{fix}")


def refuse_num_dims_mismatch(name: str, num_dims: int, pred: torch.Tensor, shared: str) -> None:
    """The forward's DataError for :func:`num_dims_mismatch` on ``pred``'s columns (a Python caller's
    predictions; a run is refused before training, as a ConfigError, from the targets)."""
    problem = num_dims_mismatch(name, num_dims, columns(pred), shared, what=f"predictions {tuple(pred.shape)}")
    if problem is not None:
        raise DataError(problem)


def binary_targets(target: torch.Tensor, name: str, allow_signed: bool = False) -> None:
    """Raise DataError unless every target is 0 or 1 (or -1/1 when ``allow_signed``)."""
    if not target.numel():
        return
    ok = (target == 0) | (target == 1)
    if allow_signed:
        ok |= target == -1
    if not torch.all(ok):
        bad = target[~ok][0].item()
        valid = "{0, 1} or {-1, 1}" if allow_signed else "{0, 1}"
        raise DataError(f"{name} expects binary targets in {valid}; got {bad:g}")


# why class labels became a regression task: the targets the data layer reads as classes without data.task
# (trainlab.data.dataset.infer_task; the text sources' rule is trainlab.data.text's)
REGRESSION_LABELS = (
    "set data.task: multiclass (or binary) if the targets are class labels (without data.task, targets are "
    f"classes when they are whole numbers exactly 0..K-1 with K <= {SURE_CLASSES} (K <= {MAX_INFERRED_CLASSES} "
    f"when every class holds at least 1/(5K) of the rows) or exactly -1 and 1, and text_tsv/text_csv labels "
    "whenever they are whole numbers; with data.task set, whole numbers such as 1..K are read as classes named "
    "by their values, and a text source reads any other label as a class named by its text)")


def one_hot_rows(target: torch.Tensor) -> bool:
    """Every row of the (N, L) ``target`` holds one 1 and 0s elsewhere: single-label classes written one-hot
    (Keras's ``to_categorical``), not L labels that may hold together."""
    if target.ndim != 2 or not len(target):
        return False
    values = target.float()
    return bool(torch.all((values == 0) | (values == 1)) and torch.all(values.sum(dim=1) == 1))


def single_label_on_multilabel(name: str, columns: int, target: torch.Tensor | None = None) -> str:
    """Why the class-index loss ``name`` refuses a multilabel task's ``columns`` 0/1 target columns, and the fix:
    the class indices for one-hot rows (:func:`one_hot_rows`), bce for rows with several labels. Without
    ``target`` (only the task and the widths are known) both fixes are given."""
    indices = ("pass the class indices instead: y.argmax(1) (a csv: one target column that holds the class; an "
               "npz: y saved as np.argmax(y, 1))")
    if target is not None and one_hot_rows(target):
        return (f"{name} takes one class index per row, but the targets are one-hot rows ({columns} columns with "
                f"a single 1 each, as Keras's to_categorical writes them); {indices}")
    head = f"{name} is a single-label classification loss but the data is a multilabel task ({columns} columns of 0/1)"
    if target is not None:
        return f"{head}; use bce (one sigmoid per label)"
    return (f"{head}; if each row is one-hot (a single 1, as Keras's to_categorical writes them), {indices}; "
            "for rows with several labels use bce (one sigmoid per label)")


def learned_names(loss: nn.Module) -> set[str]:
    """The ``state_dict`` keys of :func:`learned_state`: its tensors but the config's numbers."""
    constants = {f"{prefix}.{name}" if prefix else name
                 for prefix, module in loss.named_modules() for name in getattr(module, "_constants", {})}
    return {name for name, value in loss.state_dict().items() if isinstance(value, torch.Tensor)} - constants


def learned_state(loss: nn.Module) -> dict[str, torch.Tensor]:
    """The learned state of ``loss`` (any ``nn.Module``; a multitask loss's parts too), as detached copies
    on its device: its ``state_dict`` tensors (parameters, persistent buffers) but the config's numbers
    (:meth:`Loss.register_constant`: class weights, ``pos_weight``...), which the config rebuilds exactly.
    Empty for most losses. Load it back with ``loss.load_state_dict(state, strict=False)``."""
    names = learned_names(loss)
    return {name: value.detach().clone() for name, value in loss.state_dict().items() if name in names}


def regression_loss_on_classes(name: str, task: str, num_classes: int | None, named: str | None = None) -> str:
    """The refusal of regression loss ``name`` on a ``task`` classification task: the class-label loss to use and,
    unless the classes are ``named`` (one of their names, such as ``'setosa'``, which ``data.task: regression``
    refuses too), the task to set instead. Whole-number targets (ratings 0..4, 0/1 values) are read as classes
    unless the task says otherwise: either the loss or the task is the fix then (trainlab.fit words
    ``data.task`` as its ``task=`` argument)."""
    classes = f"{num_classes} classes" if num_classes else ""
    if named is not None:
        classes += f"{' ' if classes else ''}named such as {named!r}"
    use = "bce or cross_entropy" if task == "binary" else "bce" if task == "multilabel" else "cross_entropy"
    instead = "" if named is not None else (", or, if the targets are numbers to predict (such as whole-number "
                                            "ratings or 0/1 values), set data.task: regression")
    return (f"{name} is a regression loss but the data is a {task} classification task"
            f"{f' ({classes})' if classes else ''}; use {use} for class labels{instead}")


class Loss(nn.Module):
    """Base class: subclasses set ``target_kind`` and implement ``forward``.

    ``pair`` and ``embedding`` losses also set ``num_views`` (class) and
    ``embedding_dim`` (constructor argument).
    """

    target_kind: ClassVar[TargetKind] = "continuous"  # a placeholder: build_loss refuses a class not setting its own
    num_views: ClassVar[int] = 1
    multilabel: bool = False  # set by output_dim(task="multilabel"): outputs are one logit per label
    one_row_batch_problem: ClassVar[str | None] = None  # why a 1-row batch trains nothing (None: it trains)
    takes_logits: bool = False  # outputs are unbounded scores (logits or margins), not probabilities

    def __init__(self, reduction: Reduction = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)
        self._constants: dict[str, float | list[float]] = {}

    def register_constant(self, name: str, values: float | list[float] | None) -> None:
        """A buffer holding config numbers, kept exact in whatever floating dtype the module moves to."""
        if values is None:
            self.register_buffer(name, None)
            return
        self._constants[name] = values
        self.register_buffer(name, torch.tensor(values, dtype=torch.get_default_dtype()))

    def _apply(self, fn, recurse=True):  # .to(dtype), .double(), .float(), .cuda() ... all end here
        super()._apply(fn, recurse)
        for name, values in getattr(self, "_constants", {}).items():
            buffer = self._buffers.get(name)
            if buffer is not None and buffer.is_floating_point():
                # widening a float32 buffer would keep its float32 rounding: re-round from the config numbers
                self._buffers[name] = torch.tensor(values, dtype=buffer.dtype, device=buffer.device)
        return self

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    def mean_denominator(self, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor | None:
        """What ``reduction='mean'`` divides this batch's summed loss by, up to a factor common to every batch of
        the run (the elements per row), or None when that is the row count.

        Here: None without ``weight`` (a mean over rows), else the sum of the sample weights, as :func:`reduce`
        divides by (a sum of 0, whose mean is 0, as the dtype's smallest normal number: :func:`zero_floored`).
        A loss whose mean divides by something else that depends on the targets (PyTorch's
        class-weighted mean) overrides this. Whether it is None depends on the loss's config and ``weight``
        alone, never on the values of ``target``: the training step asks once per micro-batch of an accumulated
        step, and the unweighted case keeps its row shares with no tensor work."""
        return None if weight is None else zero_floored(weight.sum())

    def unweighted(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``(pred, target) -> loss`` for the step without sample weights: the module itself here.

        A loss whose unweighted case is a single torch function returns that function with its
        arguments bound, so the training step skips the module call (~3 us per step on a CPU)."""
        return self

    @property
    def takes_multilabel(self) -> bool:
        """Whether multi-label data (N, L) of 0/1 trains with this loss, one output per label: every binary
        loss; a class-index loss overrides this (``takes_multilabel = True``) when it has a per-label form."""
        return self.target_kind == "binary"

    def output_dim(self, task: str, num_classes: int | None, target_dim: int) -> int:
        if task == "multilabel" and self.target_kind in ("class_index", "binary") and self.takes_multilabel:
            self.multilabel = True
            return target_dim
        if self.target_kind == "class_index":
            if task == "multilabel":
                raise DataError(single_label_on_multilabel(self.name, target_dim))
            if task == "regression":
                raise DataError(f"{self.name} is a single-label classification loss but the data is a regression "
                                f"task; use a regression loss such as mse or huber, or {REGRESSION_LABELS}")
            return int(num_classes or 2)
        if self.target_kind == "binary":
            if task == "multilabel":  # a binary loss that declares takes_multilabel False
                raise DataError(f"{self.name} takes one 0/1 target per row but the data is a multilabel task "
                                f"({target_dim} columns of 0/1); use bce (one sigmoid per label)")
            if task != "binary":
                raise DataError(
                    f"{self.name} expects binary targets in {{0, 1}} but the data is a {task} task"
                    + (f" with {num_classes} classes; use cross_entropy" if num_classes else "")
                    + ("; if the targets are two class labels (such as 1/2 or -1/1), set data.task: binary (more than "
                       "two: data.task: multiclass with cross_entropy): labels without a 0 are read as a regression "
                       "target unless data.task says otherwise" if task == "regression" else "")
                )
            return 1
        if self.target_kind == "pair":
            if task != "binary":
                raise DataError(
                    f"{self.name} trains on pairs labelled 1 (similar) / 0 (dissimilar), a binary task; "
                    f"got a {task} task"
                )
            return self.num_views * int(self.embedding_dim)
        if self.target_kind == "embedding":
            return self.num_views * int(self.embedding_dim)
        if self.target_kind == "distribution" and task != "regression":
            raise DataError(
                f"{self.name} takes target distributions (each row K probabilities summing to 1, such as soft "
                f"labels or a teacher's outputs) but the data is a {task} classification task"
                + (f" ({target_dim} columns of 0/1 labels)" if task == "multilabel"
                   else f" ({num_classes} classes, one label per row)" if num_classes else "") + "; use "
                + ("bce (one sigmoid per label), or set data.task: regression if each row is a distribution"
                   if task == "multilabel" else "cross_entropy (KL divergence to one-hot labels is cross-entropy)")
            )
        if task != "regression":
            raise DataError(regression_loss_on_classes(self.name, task, num_classes))
        return target_dim

    def constants_mismatch(self, pred: torch.Tensor, target: torch.Tensor) -> str | None:
        """Why the loss's per-class or per-label numbers from the config (class weights, focal alpha,
        pos_weight) do not fit ``pred``'s outputs and ``target``, or None (also for shapes ``check`` refuses)."""
        return None

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if self.target_kind == "class_index" and target.ndim == 2 and target.shape[1] > 1:
            if one_hot_rows(target):
                raise DataError(single_label_on_multilabel(self.name, target.shape[1], target))
            raise DataError(
                f"{self.name} takes one class label per sample but the targets have {target.shape[1]} columns "
                "(a multi-label task); use bce (one sigmoid per label)"
            )
        if self.target_kind in ("class_index", "binary", "pair") and len(pred) != len(target):
            raise DataError(f"{self.name}: {len(pred)} predictions but {len(target)} targets")
        if self.target_kind == "class_index":
            # the class count is the outputs' width; outputs of another shape do not say it (a (N,) output's
            # only size is the batch's)
            num_classes = pred.shape[-1] if pred.ndim == 2 else "C"
            if target.is_floating_point():
                raise DataError(
                    f"{self.name} expects integer class labels in [0, {num_classes}); got float targets"
                )
            if target.ndim != 1 or pred.ndim != 2:
                flat = (": one number per row, where one column per class is needed (a model ending in "
                        ".squeeze(-1), or with one output?); give the model's last layer one output per class"
                        if pred.ndim == 1 and target.ndim == 1 else "")
                raise DataError(
                    f"{self.name} expects (N, {num_classes}) outputs and (N,) labels; "
                    f"got outputs {tuple(pred.shape)} and labels {tuple(target.shape)}{flat}"
                )
            ignore_index = getattr(self, "ignore_index", None)  # cross_entropy/nll skip these labels
            labels = target if ignore_index is None else target[target != ignore_index]
            if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
                raise DataError(
                    f"{self.name} expects integer class labels in [0, {num_classes}); "
                    f"got labels in [{int(labels.min())}, {int(labels.max())}]"
                )
        elif self.target_kind == "binary":
            if target.ndim == 2:
                if pred.shape != target.shape:
                    raise DataError(
                        f"{self.name}: multi-label outputs {tuple(pred.shape)} do not match targets "
                        f"{tuple(target.shape)}"
                    )
            elif (width := pred.reshape(len(pred), -1).shape[1]) != 1:
                raise DataError(f"{self.name}: expects one output per sample; got shape {tuple(pred.shape)}; give "
                                f"the model's last layer 1 output (one logit), or use cross_entropy for {width} "
                                "outputs (one score per class)")
            binary_targets(target, self.name, getattr(self, "signed_labels", False))
        elif self.target_kind == "pair":
            split_views(pred, self.num_views, self.name)
            binary_targets(target, self.name, allow_signed=True)
        elif self.target_kind == "embedding":
            split_views(pred, self.num_views, self.name)
        elif pred.shape != target.shape:
            raise DataError(
                f"{self.name}: prediction shape {tuple(pred.shape)} does not match target shape "
                f"{tuple(target.shape)}"
            )

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Class indices (argmax), 0/1 decisions (logit > 0, i.e. sigmoid > 0.5) or the values themselves."""
        if self.target_kind == "class_index":
            return output.argmax(dim=-1)
        if self.target_kind == "binary":
            if self.multilabel or (output.ndim == 2 and output.shape[1] > 1):  # one decision per label
                return (output > 0).long()
            return (output.reshape(len(output)) > 0).long()
        if self.target_kind == "embedding":
            return torch.stack(split_views(output, self.num_views, self.name), dim=1)
        return output

    @property
    def has_probabilities(self) -> bool:
        """Whether ``probabilities`` gives class probabilities (score-based metrics need them)."""
        return self.target_kind in ("class_index", "binary")

    def probabilities(self, output: torch.Tensor) -> torch.Tensor | None:
        """softmax over K logits (N, K); sigmoid of one logit (N,) or of each label's logit (N, L); else None."""
        output = widen(output)
        if self.target_kind == "class_index":
            return torch.softmax(output, dim=-1)
        if self.target_kind == "binary":
            if self.multilabel or (output.ndim == 2 and output.shape[1] > 1):
                return torch.sigmoid(output)
            return torch.sigmoid(output.reshape(len(output)))
        return None


def not_a_loss_module(reference: str, target: Any) -> str | None:
    """Why the loss reference ``reference`` (``badext:MSE``, ``torch.nn:MSELoss``) can never give a loss,
    whatever the code policy allows: its ``target`` is an ``nn.Module`` (a class, or an instance) that is no
    :class:`Loss`, as torch's own losses are. The line says to wrap it (and names trainlab's own loss of
    torch's name, ``mse`` for MSELoss); None for any other target (a Loss, a function: what a factory
    builds is checked when built). A type check: nothing of ``target`` runs."""
    cls = target if inspect.isclass(target) else type(target)
    if not issubclass(cls, nn.Module) or issubclass(cls, Loss):
        return None
    from trainlab.losses import WRAP  # the package imports this module
    from trainlab.name_aliases import LOSS_NAMES, trainlab_name

    from_torch = cls.__module__.split(".")[0] == "torch"
    what = f"torch's {cls.__name__}" if from_torch else cls.__name__
    if not inspect.isclass(target):
        what = f"an instance of {what}"
    own = trainlab_name(cls.__name__, LOSS_NAMES) if from_torch else None
    fix = f"use trainlab's own (loss: {own}), or {WRAP}" if own else WRAP
    return f"loss '{reference}' is {what}, an nn.Module but not a trainlab.losses.base.Loss: {fix}"
