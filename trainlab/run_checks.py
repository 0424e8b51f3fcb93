"""Checks of a run's model, loss and data, made before training: does the model's output fit the loss and
the data (and is it logits where the loss expects logits: :mod:`trainlab.probability_outputs`), will an
epoch end on a 1-row batch BatchNorm cannot take (or a loss trains nothing on: nt_xent), and targets of a
large scale left unstandardised.
Refusals raise one-line errors; the rest are ``warning:`` lines (:func:`trainlab.notices.warn`). The
strategy's settings that would do little on this data and length: :mod:`trainlab.plan_warnings`.
A fix that depends on how the data was given (a config's ``data.standardize``, or the arrays a caller
of ``trainlab.fit`` prepares) is worded by the dataset's :class:`InputFixes`.
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.config_fields import counted, short_repr
from trainlab.data import Dataset
from trainlab.engine.batching import BatchPlan
from trainlab.errors import ConfigError, DataError, TrainingError, TrainlabError
from trainlab.exception_origin import failure_text, raised_by_own_statement
from trainlab.losses.base import Loss, single_label_on_multilabel
from trainlab.models import model_name
from trainlab.notices import warn
from trainlab.out_of_memory import is_out_of_memory
from trainlab.probability_outputs import check_probability_outputs, in_eval_mode
from trainlab.runtime import cpu_model, op_without_deterministic_kernel, resolve_precision
from trainlab.token_inputs import check_token_inputs, takes_token_ids, token_ids_refusal


@dataclass(frozen=True)
class InputFixes:
    """The words of the fixes the checks give for inputs and targets at a scale or shape the model cannot
    use as they are, and for a model that squashes its outputs: a config run names its data and model keys
    (:data:`CONFIG_FIXES`), ``trainlab.fit``, which has no such keys, what its caller does to the arrays
    and the model (:data:`FIT_FIXES`). A dataset carries its own in ``Dataset.extras[FIXES_KEY]``
    (:func:`input_fixes`)."""

    integer_features: str  # integer (N, F) features a model that takes no token ids cannot multiply
    integer_images: str  # integer images (N, C, H, W) and other integer inputs of more dimensions
    one_feature: str  # 1-D x: each row a single number, which a model of (N, F) rows reads as one long row
    raw_targets: str  # regression targets far from unit scale (warn_if_raw_scale_targets)
    raw_features: str  # tabular features far from unit scale, named after a divergence (trainlab.divergence_advice)
    final_squash: str  # a final sigmoid / softmax before a loss on logits; {squash} names it (check_probability_outputs)
    no_val: str  # how a run without validation data is said, and what gives it some (warn_if_nothing_validated)
    diverged: str  # what to try after a run diverged (trainlab.divergence_advice)
    diverged_clipped: str  # ... after a run that clipped at {clip} diverged


CONFIG_FIXES = InputFixes(
    integer_features="to read them as numbers set data.standardize: true, or save the features as float32",
    integer_images="convert x to float32 before saving it (x / 255 for images), or use an image source "
                   "(data.source: image_folder or idx), which scales the pixels itself",
    one_feature="1-D x: save x shaped (N, 1) for one feature",
    raw_targets="set data.standardize_target: true (metrics and predictions stay in the original units)",
    raw_features="set data.standardize: true",
    final_squash="remove the final {squash} from the model (linear and mlp: leave out model.output_activation)",
    no_val="the run has no validation split: nothing is validated (its step records hold no val_* values); set "
           "data.val_fraction > 0 (or give the source a val split)",
    diverged="try a lower learning rate ('trainlab lr-find') or gradient clipping (strategy.clip_grad_norm)",
    diverged_clipped="try a lower learning rate ('trainlab lr-find') or a strategy.clip_grad_norm smaller than the "
                     "{clip} this run clipped at")
FIT_FIXES = InputFixes(
    integer_features="to read them as numbers pass float32 x (x.astype('float32'); a tensor: x.float())",
    integer_images="pass float32 x (images: x / 255)",
    one_feature="1-D x: pass x.reshape(-1, 1) for one feature",
    raw_targets="standardise y yourself before fit, per column ((y - y.mean(0)) / y.std(0)), and map the "
                "predictions back (pred * std + mean); metrics are then in standardised units",
    raw_features="standardise x yourself before fit, per column ((x - x.mean(0)) / x.std(0) with the training "
                 "rows' mean and std), and the rows you predict on alike",
    final_squash="remove the final {squash} from the model",
    no_val="fit was given no val data: nothing is validated (its step records hold no val_* values); pass val=",
    diverged="try a lower learning rate (lr: 'auto' in the strategy runs an LR range test) or gradient clipping "
             "(clip_grad_norm: 1.0 in the strategy)",
    diverged_clipped="try a lower learning rate (lr: 'auto' in the strategy runs an LR range test) or a "
                     "clip_grad_norm smaller than the {clip} this run clipped at")
RAW_TARGETS_WARNED = "raw_targets_warned"  # Dataset.extras: warn_if_raw_scale_targets named the targets' fix
FIXES_KEY = "input_fixes"  # Dataset.extras: the InputFixes of the dataset's origin (trainlab.fit sets FIT_FIXES)


def outlier_remedy(task: str, loss: Any) -> str | None:
    """The loss setting that weighs an outlying row less, for the divergence guard's advice on small steps:
    huber for a regression, label smoothing for cross-entropy (a mislabelled row's pull capped); None else."""
    if task == "regression":
        return "a robust loss (strategy.loss: huber)"
    if getattr(loss, "name", None) == "cross_entropy":
        return "label smoothing (strategy.loss.label_smoothing: 0.1)"
    return None


def input_fixes(data: Dataset) -> InputFixes:
    """The fixes to name for ``data``: its own (``extras[FIXES_KEY]``), else a config run's."""
    fixes = data.extras.get(FIXES_KEY)
    return fixes if isinstance(fixes, InputFixes) else CONFIG_FIXES


def refuse_meta_tensors(model: torch.nn.Module) -> None:
    """A ConfigError naming the model's first parameter or buffer that holds no values yet: one of a lazy
    module (``nn.LazyLinear``, ``nn.LazyConv2d``: its shape comes with its first forward, and torch's own error
    at the first use of it names no fix), or one on the meta device (a shape without values, as
    ``torch.device("meta")`` or a lazy-init library builds), which no device move can fill: torch's own
    ``Cannot copy out of meta tensor`` names neither the tensor nor the fix."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if torch.nn.parameter.is_lazy(tensor):
            owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            raise ConfigError(f"the model's {name} is not initialised yet ({type(owner).__name__}: a lazy module "
                              "takes its shape from its first input); run one batch through the model before "
                              "training, e.g. model(x[:2]) under torch.no_grad(), or give the layer its input size")
        if tensor.is_meta:
            raise ConfigError(f"the model's {name} is on the meta device (a shape without values); materialise "
                              "the model first: model.to_empty(device='cpu'), then initialise its weights "
                              "(each layer's reset_parameters(), or load_state_dict)")


def check_loss_fits(loss: Loss, model: torch.nn.Module, data: Dataset, device: torch.device,
                    chosen_by_auto: bool = False, batch_rows: int | None = None, precision: str = "fp32") -> None:
    """Run the model on a few training rows and check its output against the loss and the targets:
    one tensor (not a tuple or dict), a loss that suits the task, the width the loss asks for (a
    class-index loss: exactly one score per class), then the loss's own shape check, and last that a
    loss on logits is not given probabilities (:func:`check_probability_outputs`). A loss that
    ``loss: auto`` chose (``chosen_by_auto``) is named as its choice when the outputs do not fit it.

    A token-id model (one declaring ``vocab_size``) is first checked against every split's ids
    (:func:`check_token_inputs`). The probe batch is ``min(batch_rows, 64)`` rows (``batch_rows``: the
    run's micro-batch), so a run is never refused for a batch larger than it uses. Any exception of the
    model's forward on it becomes a one-line DataError naming the model, the input shape and the error
    (and, for integer or 1-D inputs, the fix of :func:`input_fixes`): a problem of the inputs, whatever
    chose the loss.

    Under a reduced ``precision`` (the run's resolved ``runtime.precision``: bf16 or fp16) a few of those
    rows are run again under autocast, so that a layer with no kernel of that dtype on this CPU is a
    ConfigError naming ``runtime.precision`` before training starts (:func:`check_precision_kernels`).
    With ``batch_rows``, a loss that trains nothing on 1-row batches is checked against it
    (:func:`check_loss_batch_rows`).
    """
    check_token_inputs(model, data)
    x, output = _probe(model, data, device, batch_rows)
    check_precision_kernels(model, x, device, precision)
    y = data.train.y[:len(x)].to(device)
    try:
        _check_output_fits(loss, model, output, y, data)
    except DataError as exc:
        if not chosen_by_auto:
            raise
        width = loss.output_dim(data.task, data.num_classes, data.target_dim)
        raise DataError(f"{exc} (loss: auto chose '{loss.name}' for these {data.task} targets, which takes "
                        f"{width} output(s) per sample; name a loss that fits the model's outputs, e.g. "
                        "cross_entropy for one output per class)") from None
    check_probability_outputs(loss, model, x, output, data.task, input_fixes(data).final_squash, chosen_by_auto)
    if batch_rows is not None:
        check_loss_batch_rows(loss, len(data.train), batch_rows)


def check_loss_batch_rows(loss: Loss, rows: int, batch_size: int) -> None:
    """For a loss that trains nothing on a batch of 1 row (``Loss.one_row_batch_problem``: nt_xent, whose
    1-row batch holds no negatives): refuse ``batch_size`` 1 (a ConfigError; a DataError for a training set
    of 1 row), where every step would train on a constant 0; warn once when each epoch's last micro-batch
    has 1 row (``rows % batch_size == 1``), naming the nearest batch sizes that leave none. That batch's
    step is taken (a 0 loss, no gradient: decoupled weight decay and momentum still move the weights), and
    its 0 counts in the epoch's train_loss as a row's."""
    problem = getattr(loss, "one_row_batch_problem", None)
    if problem is None or (batch_size != 1 and rows % batch_size != 1):
        return
    if rows == 1:
        raise DataError(f"the training set has 1 row, and for loss '{loss.name}' {problem}; give it at least "
                        "2 rows")
    if batch_size == 1:
        raise ConfigError(f"strategy.batch_size is 1, and for loss '{loss.name}' {problem}: every step would "
                          "train on a constant 0; use batch_size 2 or more")
    sizes = " or ".join(str(size) for size in _sizes_without_one_row(rows, batch_size))
    warn(f"each epoch ends on a batch of 1 row ({rows} training rows at batch_size {batch_size}), and for loss "
         f"'{loss.name}' {problem}: that step trains nothing, and its 0 counts in train_loss; batch_size {sizes} "
         "leaves no such batch")


def _probe_rows(data: Dataset, device: torch.device, k: int) -> torch.Tensor:
    """The first ``k`` training rows on ``device`` as the run's forward sees them (its eval transform)."""
    x = data.train.x[:k].to(device)
    return x if data.eval_transform is None else data.eval_transform(x, None)


def _probe(model: torch.nn.Module, data: Dataset, device: torch.device,
           batch_rows: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe batch ``x`` (:func:`check_loss_fits`) and the model's output on it, a tensor; an exception
    of the forward or an output of another type is a one-line DataError, except memory running out
    (:func:`~trainlab.out_of_memory.is_out_of_memory`: the machine's, not the inputs', which the CLI says as
    such, exit 5) and an op without a deterministic kernel (the setting's), raised as they are."""
    k = min(len(data.train), 64, batch_rows or 64)
    x = _probe_rows(data, device, k)
    try:
        with in_eval_mode(model), torch.no_grad():
            output = model(x)
    except TrainlabError:
        raise  # the model's own one-line error (a ConfigError of a zoo model's shape check)
    except Exception as exc:  # noqa: BLE001  (whatever a model raises on these inputs: one line, exit 3)
        if op_without_deterministic_kernel(exc):
            raise  # not the inputs: runtime.deterministic's block names the op and the setting
        if is_out_of_memory(exc):
            raise  # not the inputs either: the machine's (trainlab.out_of_memory)
        raise _forward_error(model, x, data, exc) from None
    if not isinstance(output, torch.Tensor):
        raise DataError(f"model '{model_name(model)}' returned a {type(output).__name__}; its forward(x) must "
                        "return one tensor shaped (N, outputs) (return the logits, or wrap the model)")
    return x, output


def _check_output_fits(loss: Loss, model: torch.nn.Module, output: torch.Tensor, y: torch.Tensor,
                       data: Dataset) -> None:
    """The model's ``output`` on the probe batch against the loss and the targets ``y`` (the batch's)."""
    if hasattr(loss, "output_dims"):  # multitask: one head per task, checked by the loss itself
        loss.check(output, y)
        return
    class_index = getattr(loss, "target_kind", None) == "class_index"
    if class_index and data.task == "multilabel" and not getattr(loss, "takes_multilabel", False):
        # the loss declares whether it has a per-label form (focal); the targets tell which fix (one-hot or not)
        raise DataError(single_label_on_multilabel(loss.name, data.target_dim, data.train.y))
    needed = loss.output_dim(data.task, data.num_classes, data.target_dim)  # refuses a loss the task does not suit
    if class_index and data.task != "multilabel" and data.num_classes and output.ndim == 2 \
            and not needed <= output.shape[1] <= max(needed, data.num_classes):  # (focal: 1 logit or K)
        # one logit of a two-class task: bce takes it as it is
        bce = " or use loss bce (one logit: P(class 1))" if data.task == "binary" and output.shape[1] == 1 else ""
        raise DataError(f"the model outputs {counted(output.shape[1], 'score')} per row but the "
                        f"data has {data.num_classes} classes ({_labels_read(data)}); give its last layer "
                        f"{needed} outputs{bce} (or, when classes are missing from the training labels, name them all "
                        "in data.class_names)")
    if data.task == "regression" and output.ndim == 1 and needed == 1:
        raise DataError(f"model '{model_name(model)}' returns shape (N,); a regression model returns (N, 1) for "
                        "one target (drop a final .squeeze())")
    if class_index and output.ndim == 1 and data.num_classes and needed == data.num_classes > 1:
        # one score per class asked for: the loss's own check would call the batch size a class count
        raise DataError(f"model '{model_name(model)}' returns shape (N,); for {data.num_classes} classes "
                        f"({_labels_read(data)}) loss '{loss.name}' takes (N, {needed}), one score per class "
                        "(drop a final .squeeze(), give the last layer one output per class)")
    if (data.preprocessing or {}).get("target") and getattr(loss, "name", "").startswith("poisson"):
        # "poisson_nll expects counts >= 0; got a target of -1.13": a z-score the run made, not a count in the data
        raise ConfigError(f"loss '{loss.name}' takes counts >= 0 as they are, and data.standardize_target: true "
                          "z-scores the targets (about half of them below 0 then): set data.standardize_target: false")
    # a per-class number list of the loss's config that does not fit the data's classes or labels: the config's
    # numbers are what to change (exit 2), as with a batch_size that leaves a 1-row batch
    problem = loss.constants_mismatch(output, y)
    if problem is not None:
        raise ConfigError(f"strategy.loss: {problem}{_output_order(data, output)}")
    loss.check(output, y)


def _named_classes(data: Dataset, most: int) -> list[str] | None:
    """The class (label) names in index order, the first ``most`` and a count past them, where they are not
    the indices themselves (``0``, ``1``, ...); None otherwise."""
    names = data.class_names
    if not names or names == [str(i) for i in range(len(names))]:
        return None
    return [str(name) for name in names[:most]] + ([f"... {len(names)} in all"] if len(names) > most else [])


def _labels_read(data: Dataset) -> str:
    """The classes as the data names them and the indices the model's outputs stand for: ``labels 0..3``, or
    ``1, 2, 3, 4, read as indices 0..3`` (labels of other values, sorted and mapped to 0..K-1, or
    ``data.class_names`` naming 0..K-1)."""
    indices = f"0..{data.num_classes - 1}"
    names = _named_classes(data, 10)
    return f"labels {indices}" if names is None else f"{', '.join(names)}, read as indices {indices}"


def _output_order(data: Dataset, output: torch.Tensor) -> str:
    """The classes (a multi-label task's labels) a per-class list's numbers go to, in order, where they have
    names other than their indices and the model gives one output each (not bce's one logit of two classes):
    ``(the outputs' classes, in order: high, low, mid)``; empty otherwise."""
    names = _named_classes(data, 20)
    if names is None or output.ndim != 2 or output.shape[1] != len(data.class_names or ()):
        return ""
    kind = "labels" if data.task == "multilabel" else "classes"
    return f" (the outputs' {kind}, in order: {', '.join(names)})"


#: torch's words when a forward fails on its inputs' dtype ("expected scalar type Float but found Long", "Input
#: type (unsigned char) and bias type (float) should be the same", "addmm_impl_cpu_ not implemented for 'Long'")
DTYPE_WORDS = re.compile(r"dtype|scalar type|type \(|not implemented for|\b(?:Long|Byte|Int|Short|Char)\b")


def _forward_error(model: torch.nn.Module, x: torch.Tensor, data: Dataset, exc: Exception) -> TrainlabError:
    """The one-line error for an exception of the model's forward on the probe batch ``x``; integer and
    1-D inputs (``x`` shaped (N,): one number per row) are told the fix of :func:`input_fixes`; integer inputs
    are told it without torch's words ("Input type (unsigned char) and bias type (float) should be the same"),
    which name neither the data nor the fix. The model is named as the user named it (:func:`model_name`).
    An exception of a ``raise`` statement in the model's own code
    (:func:`~trainlab.exception_origin.raised_by_own_statement`) is its code's refusal, said as such with its
    place, exit 4 as a forward's error mid-run: not a DataError claiming the inputs' shape."""
    name = model_name(model)
    first = (str(exc).strip().splitlines() or [""])[0] or type(exc).__name__
    dtype = str(x.dtype).removeprefix("torch.")
    if raised_by_own_statement(exc):
        return TrainingError(f"model '{name}' raised {failure_text(exc)} in its forward, on a batch of {len(x)} "
                             f"training rows shaped {tuple(x.shape[1:])} ({dtype})")
    fixes = input_fixes(data)
    one_feature = f"; {fixes.one_feature}" if x.ndim == 1 else ""
    if isinstance(exc, RuntimeError) and not takes_token_ids(model):
        if data.extras.get("tokenizer") and not x.is_floating_point():
            return token_ids_refusal(name, x)
        weights = next((p.dtype for p in model.parameters()), None)
        if x.dtype == torch.float32 and weights is not None and weights.is_floating_point and weights != x.dtype:
            # floating inputs are the data's, read as float32 (docs/data.md): the model's dtype is what differs
            return DataError(f"model '{name}' has {str(weights).removeprefix('torch.')} weights, but trainlab "
                             f"trains in {dtype} (floating inputs, yours too, are read as {dtype}) ({first}); "
                             f"call model.float() (or build it after torch.set_default_dtype(torch.float32))"
                             f"{one_feature}")
        if not x.is_floating_point() and DTYPE_WORDS.search(first):
            # integer features reach the model as they are (token ids): name the data's fix, not model.float();
            # another failure (a model that casts x itself, then mis-sized: "mat1 and mat2 shapes ...") keeps
            # torch's line below, as the dtype is not what failed
            fix = fixes.integer_features if x.ndim <= 2 else fixes.integer_images
            return DataError(f"model '{name}' cannot take {dtype} inputs: x is {dtype}, and integer inputs are kept "
                             f"as they are, for token-id models; {fix}{one_feature}")
        if "dtype" in first or "scalar type" in first:
            return DataError(f"model '{name}' cannot take {dtype} inputs"
                             + (f" with {str(weights).removeprefix('torch.')} weights" if weights else "")
                             + f" ({first}); give float32 inputs and a float32 model (model.float()){one_feature}")
    kind = "" if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: "
    return DataError(f"model '{name}' cannot take inputs shaped {tuple(x.shape[1:])} ({dtype}, a batch of "
                     f"{len(x)} rows): {kind}{first}{one_feature}")


#: oneDNN's words (torch's CPU kernel library) when it has no kernel of a layer for the dtype asked for: "could
#: not create a primitive descriptor for the LSTM forward propagation primitive" (nn.LSTM under a bf16 or fp16
#: autocast on a CPU without avx512_bf16, as an AVX2-only AMD EPYC, with torch 2.13; nn.GRU runs there)
NO_ONEDNN_KERNEL = "could not create a primitive descriptor"
ONEDNN_LAYER = re.compile(r"primitive descriptor for (?:the |an? )?(\w+) (?:forward|backward)")
PROBE_ROWS_UNDER_AUTOCAST = 4  # a missing kernel is missing at any batch size: a few rows tell


def check_precision_kernels(model: torch.nn.Module, x: torch.Tensor, device: torch.device, precision: str) -> None:
    """Run ``model`` on the first rows of the probe batch ``x`` under the autocast of ``precision`` (bf16 or
    fp16; fp32 runs nothing), in eval mode without gradients, as the run's step computes its forward
    (trainlab.engine.step). A layer oneDNN has no kernel for in that dtype on this CPU (:data:`NO_ONEDNN_KERNEL`)
    is a ConfigError (:func:`_precision_kernel_error`); any other failure is left to the run, whose error
    it would be anyway (the fp32 probe has already passed)."""
    if precision not in ("bf16", "fp16"):
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    try:
        with in_eval_mode(model), torch.no_grad(), torch.autocast(device.type, dtype=dtype):
            model(x[:PROBE_ROWS_UNDER_AUTOCAST])
    except Exception as exc:  # noqa: BLE001  (only oneDNN's missing kernel is told here)
        error = _precision_kernel_error(model, device, precision, exc)
        if error is not None:
            raise error from None


def _precision_kernel_error(model: torch.nn.Module, device: torch.device, precision: str,
                            exc: BaseException) -> ConfigError | None:
    """The one-line ConfigError for oneDNN's "could not create a primitive descriptor" under a reduced
    ``precision``, naming the layer kind oneDNN names (``LSTM``) and the model's modules of that kind, the
    CPU and the fix: ``runtime.precision: fp32`` (and ``auto`` where it picks fp32 on this device); None
    for any other exception."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if not isinstance(exc, RuntimeError) or NO_ONEDNN_KERNEL not in first:
        return None
    found = ONEDNN_LAYER.search(first)
    kind = found.group(1) if found else None
    modules = [path for path, module in model.named_modules()
               if kind and path and type(module).__name__.lower() == kind.lower()]
    where = f" ({', '.join(modules[:3])}{', ...' if len(modules) > 3 else ''})" if modules else ""
    layer = f"the {kind} layer{where}" if kind else "a layer"
    auto = " (or auto, which picks fp32 on this CPU)" if resolve_precision("auto", device) == "fp32" else ""
    return ConfigError(f"runtime.precision is {precision}, but {layer} of model '{model_name(model)}' has no "
                       f"{precision} kernel on this CPU ({cpu_model()}; oneDNN: {first.rstrip('.').split('. ')[0]});"
                       f" use runtime.precision: fp32{auto}")


RAW_SCALE = 100.0  # regression targets whose mean or spread exceeds this are warned of when not standardised
TINY_SCALE = 0.01  # ... and those whose mean and spread are both below this
# a tabular feature whose |mean| or std exceeds this scales the loss's curvature by about its square (x3 of
# mean 5, std 3: 34 x that of a unit-scale one), so plain SGD's largest stable lr shrinks by as much
FEATURE_SCALE = 3.0
# the reach warning's floor: a target mean the model cannot get to costs R^2 about mean^2 / variance; below this
# share (mean 0.026, std 0.88: 0.09%) the targets are as good as standardised, and "not standardised" misleads
UNREACHED_MEAN_SHARE = 0.05
#: Optimizers whose step moves each weight by at most about ``lr`` whatever the gradient's size: the Adam
#: family divides the first moment by the root of the second (|m_hat / sqrt(v_hat)| is about 1 at most, and
#: exactly 1 for a gradient of steady sign, as a bias far from its target gets), Adamax by the largest
#: |g| seen, Adagrad by sqrt(sum of g^2) >= |g|, Lion takes the sign. In ``steps`` steps at a peak ``lr``
#: a weight, the output bias among them, moves at most about ``lr x steps``. Not here: sgd and its momentum
#: kin and lbfgs (the step is the gradient's size), radam (its first steps, before the variance is
#: tractable, are momentum SGD's), rmsprop (up to 1 / sqrt(1 - alpha) = 10 x lr while its average fills), lamb and adafactor (steps that grow with the weights), prodigy and adadelta (they learn
#: their own step size), muon (its own scale per matrix).
LR_BOUNDED_STEP = frozenset({"adam", "adamw", "adam_textbook", "nadam", "adamax", "adagrad", "schedule_free_adamw",
                             "lion"})


def lr_bounding_the_step(optimizer: dict[str, Any] | None) -> float | None:
    """The ``lr`` of ``optimizer`` (a spec) when it is one of :data:`LR_BOUNDED_STEP` (None: the factory's
    default), so that a weight moves at most about ``lr x steps`` in the run; None for any other optimizer,
    or an ``lr: auto`` not yet resolved."""
    if not optimizer or optimizer.get("name") not in LR_BOUNDED_STEP:
        return None
    lr = optimizer.get("lr")
    if lr is None:
        from trainlab.optim import default_lr

        lr = default_lr(optimizer["name"])
    try:
        return float(lr)
    except (TypeError, ValueError):
        return None


def linear_reach(model: torch.nn.Module | None, x: torch.Tensor, lr: float, steps: int) -> float | None:
    """How far a one-layer (affine) ``model``'s mean output can move in ``steps`` steps that move each weight by
    at most ``lr``: ``lr x steps x (1 + sum_j |mean x_j|)`` (the bias, and each weight times its input's mean);
    None for a model of more layers, whose hidden units add reach no simple bound gives."""
    if model is None or sum(1 for p in model.parameters() if p.requires_grad and p.ndim >= 2) != 1 or x.ndim != 2:
        return None
    return lr * steps * (1.0 + float(x.double().mean(dim=0).abs().sum()))


def standardizing_applies(loss_name: str, standardized: bool) -> bool:
    """Whether ``data.standardize_target`` is a fix for a regression run: its targets trained as they are, under
    a loss that takes standardised ones (not a Poisson loss, whose targets are counts >= 0)."""
    return not standardized and not loss_name.startswith("poisson")


def column_scales(columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per column of the (N, C) float64 ``columns``: ``(means, stds, scales)``, a scale being the larger of
    |mean| and std (stds 0 for a single row)."""
    means = columns.mean(dim=0)
    spreads = columns.std(dim=0) if len(columns) > 1 else torch.zeros_like(means)
    return means, spreads, torch.maximum(means.abs(), spreads)


def targets_off_unit_scale(y: torch.Tensor) -> tuple[str, int] | None:
    """How regression targets ``y`` are far from unit scale, as ``(size, column)``: ``"large"`` (a column's
    |mean| or std above :data:`RAW_SCALE`; the largest), ``"tiny"`` (a varying column with both below
    :data:`TINY_SCALE`; the first); None when neither. The test of :func:`warn_if_raw_scale_targets` and of
    the divergence advice (:func:`trainlab.divergence_advice.divergence_advice`)."""
    if not len(y):
        return None
    _, spreads, scales = column_scales(y.double().reshape(len(y), -1))
    tiny = ((spreads > 0) & (scales < TINY_SCALE)).nonzero().flatten()
    if float(scales.max()) > RAW_SCALE:
        return "large", int(scales.argmax())
    return ("tiny", int(tiny[0])) if len(tiny) else None


def feature_off_unit_scale(x: torch.Tensor) -> tuple[int, float, float] | None:
    """The first column of tabular float features ``x`` (N, F) whose |mean| or std exceeds
    :data:`FEATURE_SCALE`, as ``(column, mean, std)``; None when every column is near unit scale, or ``x``
    is no table of floats (images, token ids)."""
    if x.ndim != 2 or not x.is_floating_point() or not len(x):
        return None
    means, spreads, scales = column_scales(x.double())
    far = (scales > FEATURE_SCALE).nonzero().flatten()
    if not len(far):
        return None
    column = int(far[0])
    return column, float(means[column]), float(spreads[column])


#: set while the LR range test builds a run around a placeholder lr (its start lr: trainlab.lr_find_run): no lr
#: of the run's to judge the model's reach by
PLACEHOLDER_LR: ContextVar[bool] = ContextVar("placeholder_lr", default=False)


def warn_if_raw_scale_targets(data: Dataset, loss: Loss, standardized: bool,
                              optimizer: dict[str, Any] | None = None, total_steps: int | None = None,
                              model: torch.nn.Module | None = None) -> None:
    """One warning for regression targets far from unit scale trained as they are. Large ones (house
    prices ~1e6): a learning rate fit for unit-scale outputs barely moves them (test R^2 -25 where
    standardised gives 0.98). Tiny ones (std 3.5e-4): the same learning rate's steps are far larger
    than the outputs to learn (diabetes scaled down: R^2 0.27, standardised 0.52, least squares 0.52).
    Out of reach (``optimizer``, the run's spec, is one of :data:`LR_BOUNDED_STEP`, ``model`` is one affine
    layer, and the targets' |mean| exceeds its :func:`linear_reach`): the model's mean output cannot get to
    the targets' mean in the run, however moderate their scale (mean 50, std 18 under adam at lr 0.05 for 480 steps, a
    reach of 24: test R^2 0.77, standardised 0.995), unless that mean is small beside their spread (a missed mean
    costs R^2 about mean^2 / variance: :data:`UNREACHED_MEAN_SHARE`). The fix named is the dataset's
    (:func:`input_fixes`).

    The mean and std said are those of the float32 targets the model trains on. A config run's data is
    refused before this when the cast rounded away more than 1% of a column's variance
    (:mod:`trainlab.data.regression_targets`: 1e12 + 1e3 x noise became one value, which said "std 0"), so
    they are the float64 targets' to within about half a percent."""
    if data.task != "regression" or not standardizing_applies(loss.name, standardized):
        return
    y = data.train.y.double().reshape(len(data.train.y), -1)  # one column per target
    means, spreads, _ = column_scales(y)
    fix = input_fixes(data).raw_targets
    names = data.extras.get("target_names")
    off_scale = targets_off_unit_scale(y)
    if off_scale is not None:
        size, column = off_scale
    else:
        lr = None if PLACEHOLDER_LR.get() else lr_bounding_the_step(optimizer)
        reach = None if lr is None or not optimizer or not total_steps else \
            linear_reach(model, data.train.x, lr, total_steps)
        column = int(means.abs().argmax())
        mean, spread = float(means[column]), float(spreads[column])
        if reach is not None and abs(mean) > reach and mean ** 2 > UNREACHED_MEAN_SHARE * spread ** 2:
            data.extras[RAW_TARGETS_WARNED] = True  # (trivial_outcome says the fix no second time)
            warn(f"the regression targets ({_column(column, y, names)}mean {mean:.4g}, std {spread:.4g}) "
                 f"are not standardised, and optimizer '{optimizer['name']}' moves a weight at most about lr per "
                 f"step, so this one-layer model's mean output moves at most {reach:.4g} (lr x steps x (1 + sum of "
                 f"the inputs' |means|) = {lr:g} x {total_steps} x {reach / (lr * total_steps):.4g}) from its "
                 f"start, short of the mean {mean:.4g}; {fix}")
        return
    data.extras[RAW_TARGETS_WARNED] = True
    warn(f"the regression targets are {size} ({_column(column, y, names)}mean {float(means[column]):.4g}, std "
         f"{float(spreads[column]):.4g}) and not standardised, so the model must learn outputs of that size; {fix}")


def _column(index: int, y: torch.Tensor, names: list[str] | None = None) -> str:
    """``"column 'price', 2 of 3: "`` for a target of several columns (``names``: theirs, ``data.target``'s),
    ``"column 2 of 3: "`` without names (counting from 1, as a user counts them: "column 1" was read as the
    first where it was the second), else nothing."""
    if y.shape[1] <= 1:
        return ""
    if names and len(names) == y.shape[1]:
        return f"column {short_repr(str(names[index]))}, {index + 1} of {y.shape[1]}: "
    return f"column {index + 1} of {y.shape[1]}: "


def one_row_stops_batch_norm(model: torch.nn.Module, x: torch.Tensor, training_only: bool = False) -> bool:
    """Whether training on the 1-row batch ``x`` would give a BatchNorm of ``model`` (with ``training_only``,
    one in train mode now; else any, as the run may train each) a single value per channel, which torch
    refuses ("Expected more than 1 value per channel when training"). BatchNorm over (1, C) features does;
    over (1, C, L) signals or (1, C, H, W) images it normalises over the L or H x W positions of the row and
    trains. Found by an eval-mode forward of ``x`` (no running statistics move, no dropout is drawn) that
    records each BatchNorm's input shape; every module's mode is restored after it. A forward that fails
    on one row counts as stopping it (the batch breaks the model either way)."""
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and (m.training or not training_only)]
    if not norms:
        return False
    single: list[bool] = []

    def record(module: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
        shape = inputs[0].shape  # torch's rule (_verify_batch_size): N x (positions) values per channel
        single.append(shape[0] * math.prod(shape[2:]) == 1)

    handles = [norm.register_forward_pre_hook(record) for norm in norms]
    try:
        with in_eval_mode(model), torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001  (whatever a model raises on one row: it cannot train on it)
        return True
    finally:
        for handle in handles:
            handle.remove()
    return any(single)


def check_batch_norm_remainder(model: torch.nn.Module, data: Dataset, device: torch.device, plan: BatchPlan,
                               trained_steps: int) -> None:
    """Refuse a run that would train on a micro-batch of 1 row that a BatchNorm of the model cannot
    normalise (:func:`one_row_stops_batch_norm`): at batch_size 1 every micro-batch (a ConfigError; a
    DataError for a training set of 1 row), else each epoch's last one when ``n % batch_size == 1``
    (a ConfigError naming the nearest batch sizes that leave no such row).

    ``trained_steps`` is the run's total optimizer steps (a time budget's calibration trains no more:
    trainlab.time_budget.time_steps): the 1-row micro-batch is trained on from step 1 at batch_size 1,
    else from the epoch's last step (``steps_per_epoch``); a run that ``max_steps`` ends before it is
    accepted (the LR range test, which sweeps on past the run's end, skips it: trainlab.lr_finder).
    """
    if plan.batch_size == 1:
        first_step_with_it = 1
    elif plan.n % plan.batch_size == 1:
        first_step_with_it = plan.steps_per_epoch
    else:
        return
    if trained_steps < first_step_with_it:
        return
    if not one_row_stops_batch_norm(model, _probe_rows(data, device, 1)):
        return
    reason = "which the model's BatchNorm cannot normalise in training (one value per channel)"
    if plan.n == 1:
        raise DataError(f"the training set has 1 row, {reason}; give it at least 2 rows")
    if plan.batch_size == 1:
        raise ConfigError(f"batch_size 1 trains on batches of 1 row, {reason}; use batch_size 2 or more")
    sizes = " or ".join(str(size) for size in _sizes_without_one_row(plan.n, plan.batch_size))
    raise ConfigError(f"each epoch ends on a batch of 1 row ({plan.n} training rows at batch_size "
                      f"{plan.batch_size}), {reason}; training reaches it at step {first_step_with_it} "
                      f"(of {trained_steps}); use batch_size {sizes}")


def _sizes_without_one_row(n: int, batch_size: int) -> list[int]:
    """The nearest batch sizes above and below ``batch_size`` (2..n) whose last batch of ``n`` rows is not 1 row."""
    above = next(size for size in range(batch_size + 1, n + 1) if n % size != 1)  # n itself at the latest
    below = next((size for size in range(batch_size - 1, 1, -1) if n % size != 1), None)
    return [above] if below is None else [above, below]
