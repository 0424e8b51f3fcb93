"""Is a model's output probabilities where its loss expects logits? A model ending in a sigmoid or softmax
before ``bce`` or ``cross_entropy`` trains on a squashed-twice scale and reports wrong metrics without an
error; :func:`check_probability_outputs` refuses it before training, from the probe batch's output
(:func:`trainlab.run_checks.check_loss_fits`) and the forward's autograd graph (:func:`final_squash`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

from trainlab.errors import ConfigError
from trainlab.losses.base import Loss


@contextlib.contextmanager
def in_eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode (no dropout drawn, no BatchNorm statistics moved), each module's own mode
    restored after (a frozen backbone's BatchNorm that a fine-tune keeps in eval stays so)."""
    modes = [module.training for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in zip(model.modules(), modes, strict=True):
            module.training = training



MIN_PROBABILITY_ROWS = 8  # rows summing to 1 are read as a softmax's from this many probe rows on
# the autograd nodes of the functions that squash scores into probabilities, and the names the errors give them
SQUASHES = {"Sigmoid": "sigmoid", "Hardsigmoid": "hardsigmoid", "Softmax": "softmax"}
# nodes that only reshape, select, copy or cast their one input: a squash before them is still the output's
SHAPE_ONLY = frozenset({"View", "UnsafeView", "ReshapeAlias", "Squeeze", "Unsqueeze", "Clone", "ToCopy", "Alias",
                        "Expand", "Permute", "Transpose", "T", "Slice", "Select"})


def final_squash(model: torch.nn.Module, x: torch.Tensor) -> str | None:
    """The squash (``"sigmoid"``, ``"hardsigmoid"``, ``"softmax"``) that ``model``'s forward of ``x`` ends
    in, or None: read from the output's autograd graph (a forward in eval mode, with gradients), which
    names the last operation whether the model is an ``nn.Sequential`` ending in ``nn.Sigmoid`` or calls
    ``torch.sigmoid`` in its own forward; reshapes, slices and casts after it (:data:`SHAPE_ONLY`) are
    looked through. None also when no graph is built (no parameter requires a gradient) or the forward
    fails. A sigmoid written out (``1 / (1 + exp(-z))``) is not recognised."""
    try:
        with in_eval_mode(model), torch.enable_grad():
            output = model(x)
    except Exception:  # noqa: BLE001  (the no-grad probe ran; a failure here only leaves the question open)
        return None
    node = output.grad_fn if isinstance(output, torch.Tensor) else None
    while node is not None:
        kind = re.sub(r"Backward\d*$", "", type(node).__name__)
        if kind in SQUASHES:
            return SQUASHES[kind]
        if kind not in SHAPE_ONLY:
            return None
        node = next((fn for fn, _ in node.next_functions if fn is not None), None)
    return None


def _rows_sum_to_one(output: torch.Tensor) -> bool:
    """Every row of the (N, K) ``output`` (K > 1, N >= :data:`MIN_PROBABILITY_ROWS`) is non-negative and
    sums to 1 (to 1e-4, or the dtype's eps for half precision), and not every row is the same. Measured on
    freshly initialised Linear and MLP models (1 to 3 layers, 1 to 100 standardised features, 2000 seeds,
    8 and 64 rows): never, where all outputs lie in [0, 1] for 10% of 3-layer one-output MLPs on 64 rows
    (19% on 8: a bias-dominated output), which is why a sigmoid is read from the graph (:func:`final_squash`)."""
    if output.ndim != 2 or output.shape[1] < 2 or len(output) < MIN_PROBABILITY_ROWS:
        return False
    tolerance = max(1e-4, torch.finfo(output.dtype).eps)  # each probability rounds by eps / 2 of itself at most
    values = output.double()
    return bool((values >= 0).all() and ((values.sum(dim=1) - 1).abs() <= tolerance).all()
                and (values - values[0]).abs().amax() > 0)


def check_probability_outputs(loss: Loss, model: torch.nn.Module, x: torch.Tensor, output: torch.Tensor,
                              task: str, remove_fix: str, chosen_by_auto: bool = False) -> None:
    """Refuse, with a ConfigError, a model whose outputs on the probe batch ``x`` are probabilities when
    ``loss`` takes logits (``loss.takes_logits``): such a loss squashes them again (bce: a second sigmoid,
    cross_entropy: a second softmax) or reads them as margins, and a binary loss predicts ``output > 0``
    (every row class 1), so the run trains on the wrong scale and reports wrong metrics without an error
    (val accuracy 0.50 for a sigmoid model that separates the classes at 0.93).

    The evidence, either of which refuses: all outputs in [0, 1] and the forward ends in a sigmoid or
    softmax (:func:`final_squash`, certain, as the graph names the operation); or, for several outputs
    per row read as one softmax (a class-index loss, kl_div), non-negative rows that sum to 1
    (:func:`_rows_sum_to_one`; never seen from a model of logits). The fix is to remove the squash
    (``remove_fix``, with ``{squash}`` to name it: a config run's or fit's words, :class:`trainlab.run_checks.InputFixes`), or to keep a sigmoid and use ``bce_prob`` (binary and multi-label
    data), or to end in log_softmax for ``nll`` (classes) or ``kl_div`` with ``input: log_probs``."""
    if not getattr(loss, "takes_logits", False) or not output.is_floating_point() or not output.numel():
        return
    per_row_softmax = output.ndim == 2 and output.shape[1] > 1 and not loss.multilabel \
        and loss.target_kind in ("class_index", "distribution")
    summing = per_row_softmax and _rows_sum_to_one(output)
    in_unit = bool(((output >= 0) & (output <= 1)).all())
    squash = final_squash(model, x) if in_unit else None
    if squash is None and not summing:
        return
    if summing:
        evidence = f"all {len(output)} rows are non-negative and sum to 1" \
            + (f", and its last operation is a {squash}" if squash else "")
    else:
        evidence = f"its last operation is a {squash}, and all {output.numel()} outputs lie in [0, 1]"
    squash = squash or "softmax"
    chosen = f" (chosen by loss: auto for these {task} targets)" if chosen_by_auto else ""
    fix = remove_fix.format(squash=squash)
    if squash != "softmax" and task in ("binary", "multilabel"):
        fix += ", or keep it and use loss bce_prob, which takes probabilities"
    elif per_row_softmax and loss.target_kind == "class_index" and squash == "softmax":
        fix += ", or end it with log_softmax and use loss nll, which takes log-probabilities"
    elif per_row_softmax and loss.target_kind == "distribution" and squash == "softmax":
        fix += ", or end it with log_softmax and give kl_div input: log_probs"
    raise ConfigError(f"the model's outputs look like probabilities ({evidence}), but loss '{loss.name}'{chosen} "
                      "expects logits (unbounded scores), so its training and metrics would be wrong; " + fix)
