"""Classification losses: binary (one logit per sample or per label) and multi-class (K logits).

Everything that can be is computed from ``logsigmoid`` / ``log_softmax`` so that
logits of +-1e4 give finite losses and gradients. Binary losses also accept
multi-label data: (N, L) outputs with (N, L) 0/1 targets, one loss per label.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainlab.config_fields import INT_LIMIT, short_repr
from trainlab.errors import ConfigError, DataError
from trainlab.losses import LOSSES
from trainlab.losses.base import Loss, binary_targets, reduce, widen, zero_floored
from trainlab.registry import value_hint


def _binary_view(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1) / (N,) logits with (N,) targets, or (N, L) with (N, L): same-shape float pair."""
    if target.ndim <= 1:
        pred = pred.reshape(len(pred))
    return pred, target.to(pred.dtype)


def _per_class(values: list[float] | None, name: str, what: str) -> list[float] | None:
    """Validate a non-empty list of non-negative per-class numbers, not all 0 (kept as Python floats: exact
    in any dtype). All 0 weighs every sample 0: the weighted mean is 0 / 0, NaN from the first step."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} {what} must be a list of non-negative numbers; got {short_repr(values)}")
    bad = np.flatnonzero(~(array >= 0))  # NaN too
    if len(bad):  # named by position: a long list's short form may cut the bad value off
        raise ValueError(f"{name} {what} must be a list of non-negative numbers; got {values[bad[0]]!r} at index "
                         f"{bad[0]} of {short_repr(values)}")
    if array.size == 0 or not np.any(array > 0):
        raise ValueError(f"{name} {what} must hold one number >= 0 per class, at least one of them > 0; "
                         f"got {short_repr(values)}")
    return array.tolist()


#: the order a per-class list's numbers go in, said where one is given as a mapping by class name (Keras'
#: class_weight is a dict)
CLASS_ORDER = ("in the order of the class indices: the sorted labels, or data.class_names' order; a run's "
               "labels.json lists it")


def _mapping_note(takes: str) -> Callable[[Any], str | None]:
    """An ``option_notes`` hint (trainlab.option_types) for a per-class option given a mapping: ``takes`` and
    :data:`CLASS_ORDER`; None for other wrong values (a quoted number: its own message says it)."""
    return lambda value: f"{takes}, {CLASS_ORDER}" if isinstance(value, Mapping) else None


INT64_RANGE = (-INT_LIMIT, INT_LIMIT - 1)  # labels are int64: an ignore_index beyond it cannot be compared


def _label_index(value: int, name: str) -> int:
    """``ignore_index`` as an int within :data:`INT64_RANGE` (torch's OverflowError "int too big to convert")."""
    if not INT64_RANGE[0] <= int(value) <= INT64_RANGE[1]:
        raise ValueError(f"{name} ignore_index must be a whole number within int64's range "
                         f"({INT64_RANGE[0]}..{INT64_RANGE[1]}; usually -100 or a class id); got {short_repr(value)}")
    return int(value)


def _width_mismatch(loss: Loss, pred: torch.Tensor, table: torch.Tensor | None, what: str,
                    one_broadcasts: bool = False) -> str | None:
    """Why the per-class (per-label) list ``what`` does not fit the model's ``pred.shape[-1]`` outputs, or None.
    A list of one number fits any width only where it ``one_broadcasts`` (bce's pos_weight); a class-weight
    list has one entry per class (torch's "weight tensor should be defined either for all 10 classes")."""
    if table is not None and table.ndim == 1 and not (one_broadcasts and table.numel() == 1) \
            and table.numel() != pred.shape[-1]:
        return (f"{loss.name}: {what} has {table.numel()} entries but the model outputs {pred.shape[-1]}; give "
                f"{what} one number per output")
    return None


def _refuse_constants(loss: Loss, pred: torch.Tensor, target: torch.Tensor) -> None:
    """``check``'s DataError for :meth:`Loss.constants_mismatch` (a run reports it first, as a ConfigError)."""
    problem = loss.constants_mismatch(pred, target)
    if problem is not None:
        raise DataError(problem)


# --------------------------------------------------------------------------- binary


@LOSSES.register("bce")
class BCEWithLogits(Loss):
    """Binary cross-entropy from logits z: -[p y log s(z) + (1 - y) log(1 - s(z))], p = pos_weight.

    Computed as ``F.binary_cross_entropy_with_logits`` (log-sum-exp form: stable for |z| large).
    ``pos_weight`` is a number, or one number per label for multi-label data; n_neg / n_pos
    balances the classes' total weight.
    """

    target_kind = "binary"
    takes_logits = True

    def __init__(self, pos_weight: float | list[float] | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        if pos_weight is not None:
            values = np.asarray(pos_weight, dtype=np.float64)
            if values.ndim > 1 or not np.all(values > 0):
                raise ValueError(f"bce pos_weight must be > 0 (a number or a list per label); got {pos_weight}")
            pos_weight = values.tolist()
        self.register_constant("pos_weight", pos_weight)

    def constants_mismatch(self, pred: torch.Tensor, target: torch.Tensor) -> str | None:
        return _width_mismatch(self, pred, self.pos_weight, "pos_weight", one_broadcasts=True)

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().check(pred, target)
        _refuse_constants(self, pred, target)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        pred, target = _binary_view(pred, target)
        pos_weight = None if self.pos_weight is None else self.pos_weight.to(pred.dtype)
        if weight is None and self.reduction != "none":
            return F.binary_cross_entropy_with_logits(pred, target, reduction=self.reduction, pos_weight=pos_weight)
        values = F.binary_cross_entropy_with_logits(pred, target, reduction="none", pos_weight=pos_weight)
        return reduce(values, self.reduction, weight)


@LOSSES.register("bce_prob")
class BCEFromProbabilities(Loss):
    """Binary cross-entropy from probabilities p: -[y log p + (1 - y) log(1 - p)], p clamped to [eps, 1 - eps].

    The textbook (Keras) clamp keeps log finite when a sigmoid saturates to exactly 0
    or 1; every term is then at most -log(eps) (16.1 for eps = 1e-7) and the gradient
    at most 1/eps, and it is 0 outside the clamp, never NaN. log(1 - p) is computed as
    log1p(-p), exact for small p. (``torch.nn.BCELoss`` instead clamps each log at -100,
    which differs only where p < eps or p > 1 - eps.) Prefer ``bce`` on logits: it needs no clamp.
    """

    target_kind = "binary"

    def __init__(self, eps: float = 1e-7, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 < eps < 0.5:
            raise ValueError(f"bce_prob eps must be in (0, 0.5); got {eps}")
        self.eps = float(eps)

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().check(pred, target)
        if pred.numel() and (pred.min() < 0 or pred.max() > 1):
            # the model's last layer and the loss do not fit (exit 2, as a sigmoid before bce is): not the data's
            raise ConfigError(
                f"bce_prob expects probabilities in [0, 1]; got outputs in [{float(pred.min()):.3g}, "
                f"{float(pred.max()):.3g}] (end the model with a sigmoid: model.output_activation: sigmoid for "
                "linear and mlp; or use bce on logits)"
            )

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        prob, target = _binary_view(pred, target)
        prob = prob.clamp(self.eps, 1.0 - self.eps)
        values = -(target * torch.log(prob) + (1.0 - target) * torch.log1p(-prob))
        return reduce(values, self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        if self.multilabel or (output.ndim == 2 and output.shape[1] > 1):
            return (output > 0.5).long()
        return (output.reshape(len(output)) > 0.5).long()

    def probabilities(self, output: torch.Tensor) -> torch.Tensor | None:
        """The outputs are the probabilities already."""
        output = widen(output)
        return output if self.multilabel or (output.ndim == 2 and output.shape[1] > 1) else output.reshape(len(output))


class _Hinge(Loss):
    target_kind = "binary"
    takes_logits = True  # margins: a score squashed into [0, 1] is always "class 1" (z > 0)
    signed_labels = True  # check() accepts {-1, 1} as well as {0, 1}
    power = 1

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not margin > 0:  # named as the config names the loss (registered_name), not by its class
            raise ValueError(f"{self.name} margin must be > 0; got {margin}")
        self.margin = float(margin)

    has_probabilities = False

    def probabilities(self, output: torch.Tensor) -> None:
        """Margin scores are not probabilities: score-based metrics (roc_auc, log_loss ...) do not apply."""
        return None

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        score, target = _binary_view(pred, target)
        sign = torch.where(target > 0, 1.0, -1.0).to(score.dtype)  # 0 and -1 are the negative class
        values = F.relu(self.margin - sign * score)
        return reduce(values if self.power == 1 else values.square(), self.reduction, weight)


@LOSSES.register("hinge")
class HingeLoss(_Hinge):
    """Hinge (SVM): max(0, margin - t z), t = +1 for label 1 and -1 for label 0 or -1."""

    registered_name = "hinge"  # its name before build_loss sets it (the margin error, a direct HingeLoss())


@LOSSES.register("squared_hinge")
class SquaredHingeLoss(_Hinge):
    """Squared hinge (L2-SVM): max(0, margin - t z)^2, t = +1 for label 1 and -1 for label 0 or -1."""

    registered_name = "squared_hinge"
    power = 2


# --------------------------------------------------------------------------- multi-class


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Softmax cross-entropy with class weights w, label smoothing e and ignore_index.

    Per sample, with log-probabilities l = log_softmax(z) over K classes:
    (1 - e) * w_y * (-l_y) + (e / K) * sum_k w_k (-l_k); samples whose label is
    ``ignore_index`` contribute 0. The mean divides by sum_i s_i w_{y_i} over the
    non-ignored samples (s = sample weights, 1 by default), as ``F.cross_entropy`` does; ``mean_denominator``
    gives that divisor, so an accumulated step weights its micro-batches by it. A batch with nothing kept
    (every label ``ignore_index``) has a mean of 0 and no gradient, where ``F.cross_entropy`` gives 0 / 0 = NaN.
    """

    target_kind = "class_index"
    takes_logits = True
    option_notes = {"class_weights": _mapping_note("a list of one number per class")}

    def __init__(self, class_weights: list[float] | None = None, label_smoothing: float = 0.0,
                 ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = _label_index(ignore_index, "cross_entropy")
        self.register_constant("class_weights", _per_class(class_weights, "cross_entropy", "class_weights"))

    def constants_mismatch(self, pred: torch.Tensor, target: torch.Tensor) -> str | None:
        return _width_mismatch(self, pred, self.class_weights, "class_weights")

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().check(pred, target)
        _refuse_constants(self, pred, target)

    def mean_denominator(self, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor | None:
        return _counted_denominator(self, target, weight)

    def unweighted(self):
        """``F.cross_entropy`` itself where no batch can keep nothing: no class weights and a negative
        ``ignore_index``, which no training label matches (the data layer refuses negative labels); a class id
        as ``ignore_index`` can empty a batch, whose mean :meth:`forward` makes 0 rather than torch's NaN."""
        if self.class_weights is not None or self.reduction == "none" or \
                (self.ignore_index >= 0 and self.reduction == "mean"):
            return self
        return functools.partial(F.cross_entropy, ignore_index=self.ignore_index,
                                 label_smoothing=self.label_smoothing, reduction=self.reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if weight is None and self.class_weights is None and (  # the lean common case: no 0 / 0 possible
                self.reduction == "sum" or (self.reduction == "mean" and self.ignore_index < 0)):
            return F.cross_entropy(pred, target, ignore_index=self.ignore_index,
                                   label_smoothing=self.label_smoothing, reduction=self.reduction)
        class_weights = None if self.class_weights is None else self.class_weights.to(pred.dtype)
        values = F.cross_entropy(pred, target, weight=class_weights, ignore_index=self.ignore_index,
                                 label_smoothing=self.label_smoothing, reduction="none")
        return reduce(values, self.reduction, weight, _mean_denominator(target, class_weights,
                                                                        self.ignore_index, weight, pred.dtype))


def _counted_denominator(loss: Loss, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | None:
    """:meth:`Loss.mean_denominator` of cross_entropy / nll: their mean divides by the summed class weights of the
    kept labels (times the sample weights), or None when that is the row count: no class weights, no sample
    weights and a negative ``ignore_index``, which no label reaching training matches (the data layer refuses
    negative class labels; code that feeds such labels to an accumulated step gets row shares). A batch that
    keeps nothing (mean 0) gets the dtype's smallest normal number, not 0 (:func:`zero_floored`)."""
    if loss.class_weights is None and weight is None and loss.ignore_index < 0:
        return None
    dtype = loss.class_weights.dtype if loss.class_weights is not None else torch.get_default_dtype()
    return zero_floored(_mean_denominator(target, loss.class_weights, loss.ignore_index, weight, dtype))


def _mean_denominator(target, class_weights, ignore_index, weight, dtype) -> torch.Tensor:
    """sum over non-ignored samples of sample_weight * class_weight[label] (in ``dtype``)."""
    kept = target != ignore_index
    per_sample = kept.to(dtype)
    if class_weights is not None:
        per_sample = per_sample * class_weights[torch.where(kept, target, 0)]
    if weight is not None:
        per_sample = per_sample * weight.to(dtype)
    return per_sample.sum()


@LOSSES.register("nll")
class NLLLoss(Loss):
    """Negative log-likelihood of log-probabilities l (e.g. from ``nn.LogSoftmax``): -w_y l_y.

    Same class weights, ``ignore_index`` and mean denominator as ``cross_entropy`` (a batch with nothing
    kept: 0); the model must output log-probabilities (``check`` refuses positive values).
    """

    target_kind = "class_index"
    option_notes = {"class_weights": _mapping_note("a list of one number per class")}

    def __init__(self, class_weights: list[float] | None = None, ignore_index: int = -100,
                 reduction: str = "mean"):
        super().__init__(reduction)
        self.ignore_index = _label_index(ignore_index, "nll")
        self.register_constant("class_weights", _per_class(class_weights, "nll", "class_weights"))

    def constants_mismatch(self, pred: torch.Tensor, target: torch.Tensor) -> str | None:
        return _width_mismatch(self, pred, self.class_weights, "class_weights")

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().check(pred, target)
        _refuse_constants(self, pred, target)
        if pred.numel() and pred.max() > 1e-4:
            raise ConfigError(  # the model's last layer, not the data (exit 2)
                f"nll expects log-probabilities (<= 0); got outputs up to {float(pred.max()):.3g} "
                "(end the model with log_softmax: model.output_activation: log_softmax for linear and mlp; "
                "or use cross_entropy on logits)"
            )

    def mean_denominator(self, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor | None:
        return _counted_denominator(self, target, weight)

    def probabilities(self, output: torch.Tensor) -> torch.Tensor:
        """The outputs are log-probabilities: their exp (a softmax would renormalise what is normalised)."""
        return torch.exp(widen(output))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        class_weights = None if self.class_weights is None else self.class_weights.to(pred.dtype)
        values = F.nll_loss(pred, target, weight=class_weights, ignore_index=self.ignore_index, reduction="none")
        return reduce(values, self.reduction, weight, _mean_denominator(target, class_weights,
                                                                        self.ignore_index, weight, pred.dtype))


@LOSSES.register("focal")
class FocalLoss(Loss):
    """Focal loss (Lin et al., ICCV 2017): -a_t (1 - p_t)^gamma log p_t, p_t = probability of the true class.

    Sigmoid form, used for binary data (one output) and multi-label data ((N, L) outputs
    and 0/1 targets, one term per label): p = sigmoid(z), a_t = alpha for label 1 and
    1 - alpha for label 0, exactly the paper's alpha-balanced form: ``alpha`` weights the
    positive class. The paper's best detector uses gamma = 2 with alpha = 0.25 for the rare
    positive class (alpha < 0.5 down-weights the positives: the (1 - p_t)^gamma factor has
    already removed most of the easy negatives' weight). ``alpha`` is a number in [0, 1]
    (None = no weighting), or for multi-label data one number per label.
    Softmax form, for multi-class data (K outputs): p = softmax(z), a_t = alpha[y]
    (``alpha`` a list of K non-negative class weights or None).
    log p_t comes from logsigmoid / log_softmax, and log(1 - p_t) from logsigmoid(-z)
    (sigmoid form) or log(-expm1(log p_t)) (softmax form), so saturated logits give
    finite values and gradients. gamma = 0 and no alpha is (binary) cross-entropy. The
    loss is not normalised by the number of positives (a detector's convention);
    ``mean`` averages over samples (and labels).
    """

    target_kind = "class_index"
    takes_logits = True
    option_notes = {"alpha": _mapping_note("one number in [0, 1], or a list of one number per class (per label "
                                           "column on multi-label data)")}
    takes_multilabel = True  # the sigmoid form, one term per label (run_checks lets multi-label data through)

    def __init__(self, gamma: float = 2.0, alpha: float | list[float] | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        if not gamma >= 0:
            raise ValueError(f"focal gamma must be >= 0; got {gamma}")
        self.gamma = float(gamma)
        if alpha is not None:
            values = np.asarray(alpha, dtype=np.float64)
            if values.ndim > 1 or not np.all(values >= 0) or (values.ndim == 0 and values > 1):
                raise ValueError(f"focal alpha must be a number in [0, 1] (binary) or a list of "
                                 f"non-negative class weights; got {alpha}")
            alpha = values.tolist()
        self.register_constant("alpha", alpha)

    @staticmethod
    def _sigmoid_form(pred: torch.Tensor, target: torch.Tensor) -> bool:
        """One logit per sample (binary) or (N, L) outputs with (N, L) targets (multi-label)."""
        return pred.ndim == 2 and (pred.shape[1] == 1 or target.ndim == 2)

    def output_dim(self, task: str, num_classes: int | None, target_dim: int) -> int:
        """1 logit for binary data (the sigmoid form), L for multi-label data (``takes_multilabel``: the base
        sets ``multilabel``, so predict/probabilities take a sigmoid per label), else one logit per class."""
        if task == "binary":
            return 1
        return super().output_dim(task, num_classes, target_dim)

    def constants_mismatch(self, pred: torch.Tensor, target: torch.Tensor) -> str | None:
        """alpha's form against the outputs: one number for one logit (binary); one number or one per label in
        [0, 1] for (N, L) multi-label outputs; a list of K class weights for K logits."""
        if self.alpha is None or pred.ndim != 2:
            return None
        if pred.shape[1] == 1 and target.ndim == 1:
            if self.alpha.ndim == 1:
                return f"focal on one logit (binary) needs alpha as one number in [0, 1]; got {self._constants['alpha']}"
            return None
        if target.ndim == 2:
            if self.alpha.ndim == 1 and (self.alpha.numel() != target.shape[1] or bool((self.alpha > 1).any())):
                return (f"focal on {target.shape[1]} labels needs alpha as one number in [0, 1] or "
                        f"{target.shape[1]} numbers in [0, 1]; got {self._constants['alpha']}")
            return None
        if self.alpha.ndim == 0:
            return (f"focal on {pred.shape[-1]} classes needs alpha as a list of {pred.shape[-1]} class weights; "
                    f"got one number ({self._constants['alpha']}), the form for binary and multi-label data")
        return _width_mismatch(self, pred, self.alpha, "alpha")

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.ndim == 2 and pred.shape[1] == 1 and target.ndim == 1:  # binary: one logit, labels {0, 1}
            Loss.check(self, torch.zeros(len(pred), 2), target)
        elif target.ndim == 2:  # multi-label
            if pred.shape != target.shape:
                raise DataError(f"focal: multi-label outputs {tuple(pred.shape)} do not match targets "
                                f"{tuple(target.shape)}")
            binary_targets(target, self.name)
        else:
            super().check(pred, target)
        _refuse_constants(self, pred, target)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if self._sigmoid_form(pred, target):
            logit = pred if target.ndim == 2 else pred.reshape(len(pred))
            positive = target.to(torch.bool)
            log_p_true = torch.where(positive, F.logsigmoid(logit), F.logsigmoid(-logit))
            log_p_other = torch.where(positive, F.logsigmoid(-logit), F.logsigmoid(logit))
            alpha = None if self.alpha is None else self.alpha.to(pred.dtype)
            alpha_t = None if alpha is None else torch.where(positive, alpha, 1.0 - alpha)
        else:
            log_p_true = F.log_softmax(pred, dim=-1).gather(1, target.reshape(-1, 1)).squeeze(1)
            # log(1 - p) with p -> 1: clamp away from log(0) so (1 - p)^gamma has a finite gradient
            tiny = torch.finfo(pred.dtype).tiny
            log_p_other = torch.log((-torch.expm1(log_p_true)).clamp_min(tiny))
            alpha_t = None if self.alpha is None else self.alpha.to(pred.dtype)[target]
        values = -torch.exp(self.gamma * log_p_other) * log_p_true
        if alpha_t is not None:
            values = alpha_t * values
        return reduce(values, self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return (output > 0).long()
        if output.ndim == 2 and output.shape[1] == 1:
            return (output.reshape(len(output)) > 0).long()
        return output.argmax(dim=-1)

    def probabilities(self, output: torch.Tensor) -> torch.Tensor | None:
        output = widen(output)
        if self.multilabel:
            return torch.sigmoid(output)
        if output.ndim == 2 and output.shape[1] == 1:
            return torch.sigmoid(output.reshape(len(output)))
        return torch.softmax(output, dim=-1)


@LOSSES.register("multiclass_hinge")
class MulticlassHingeLoss(Loss):
    """Multi-class hinge with margin m on scores z and label y.

    ``variant="crammer_singer"`` (default): max(0, m + max_{j != y} z_j - z_y).
    ``variant="weston_watkins"``: sum_{j != y} max(0, m + z_j - z_y).
    (``torch.nn.MultiMarginLoss`` is Weston-Watkins divided by K.)
    """

    target_kind = "class_index"
    takes_logits = True  # margins between class scores
    VARIANTS = ("crammer_singer", "weston_watkins")

    def __init__(self, variant: str = "crammer_singer", margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if variant not in self.VARIANTS:
            raise ValueError(f"multiclass_hinge variant must be one of {', '.join(self.VARIANTS)}; got {variant!r}"
                             f"{value_hint(variant, self.VARIANTS)}")
        if not margin > 0:
            raise ValueError(f"multiclass_hinge margin must be > 0; got {margin}")
        self.variant, self.margin = variant, float(margin)

    has_probabilities = False

    def probabilities(self, output: torch.Tensor) -> None:
        """Margin scores are not probabilities: score-based metrics do not apply."""
        return None

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        true_score = pred.gather(1, target.reshape(-1, 1))
        margins = F.relu(self.margin + pred - true_score)
        is_true = F.one_hot(target, pred.shape[1]).to(torch.bool)
        margins = margins.masked_fill(is_true, 0.0)  # j = y is excluded
        values = margins.amax(dim=1) if self.variant == "crammer_singer" else margins.sum(dim=1)
        return reduce(values, self.reduction, weight)
