"""Model registry. A model factory is ``factory(input_shape, output_dim, **kwargs) -> nn.Module``.

``input_shape`` excludes the batch dimension; ``output_dim`` is what the loss
needs (1 for regression with one target or a binary logit, K for K-class logits). A factory may carry
``check_values``, a function of its options (defaults filled in) that raises the ConfigError its call would
raise from them alone, whatever the input: ``compare`` and ``tune`` call it before their runs
(trainlab.preflight), so ``dropout: 1.5`` fails once, not in every run that reads the data first.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from trainlab.config_fields import COUNT_WORDS, layer_count_problem, short_repr
from trainlab.errors import ConfigError
from trainlab.registry import Registry

# said after a user's factory fails: a class whose first parameters are its own options (hidden, dropout) got the
# input shape and the output count in them ("dropout probability ... but got 3", 3 being the classes)
CONTRACT = ("a model factory is called as factory(input_shape, output_dim, **options): its first two parameters get "
            "the input shape (a tuple, e.g. (13,)) and the number of outputs, the config's model options the rest")
MODELS: Registry = Registry("model", contract=CONTRACT)


NAME_ATTRIBUTE = "trainlab_model_name"  # where build_model records the model.name it built (model_name reads it)
MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights (16 GB with Adam's moments and the gradients)
UNBOUNDED = frozenset({"hf_pretrained"})  # its size is the checkpoint's, read from a file the user chose


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """``MODELS.build(spec, input_shape, output_dim)``; a built-in model is first built on the meta device
    (no memory) and refused with a ConfigError when it would hold more than :data:`MAX_PARAMETERS`
    parameters: each size option is bounded alone (``config_fields.MAX_MODEL_SIZE``), but two hidden
    layers of 100,000 would make a 40 GB model that fails late, or is killed for memory without a word.
    Only specs that :func:`_may_be_large` are counted: the first meta build of a conv net or a
    transformer costs ~3 s (torch loads its meta kernels). A factory that returns anything but an
    ``nn.Module`` is a ConfigError naming it and what it returned. The model carries the name it was built
    by (:func:`model_name`), for the checks' messages."""
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)

    check_layer_counts(spec)
    name = str(spec.get("name", "")).lower()  # the registry's own lookup ignores case
    if name in MODELS.names() and name not in UNBOUNDED and _may_be_large(spec, input_shape):
        with torch.device("meta"):
            total = sum(p.numel() for p in MODELS.build(spec, input_shape, output_dim).parameters())
        if total > MAX_PARAMETERS:
            options = ", ".join(f"{k}={short_repr(v)}" for k, v in spec.items() if k != "name") or "none set"
            raise ConfigError(f"model '{name}' would have {total:,} parameters ({total * 4 / 1e9:,.0f} GB as "
                              f"float32); trainlab builds at most {MAX_PARAMETERS:,}: check the model's size "
                              f"options ({options})")
    model = MODELS.build(spec, input_shape, output_dim)
    if not isinstance(model, nn.Module):  # a user's module:attr factory: the config names the wrong thing
        shown = repr(model) if len(repr(model)) <= 60 else f"{repr(model)[:57]}..."
        raise ConfigError(f"model factory '{spec.get('name')}' returned {type(model).__name__} ({shown}), not a "
                          "torch.nn.Module: model.name must name a factory(input_shape, output_dim, **options) "
                          "that returns the model")
    # a registered name as the registry knows it (lower case), a user's module:attr as written
    with contextlib.suppress(AttributeError, TypeError):  # a user's module that refuses new attributes
        setattr(model, NAME_ATTRIBUTE, name if name in MODELS.names() else str(spec.get("name")))
    return model


def model_name(model: nn.Module) -> str:
    """The name the user gave ``model``, for messages (``model 'cnn2d' cannot take ...``): the config's
    ``model.name`` (a registered name, or the ``module:attr`` of their factory) that :func:`build_model`
    recorded on the module it built, else the class name (a module built in Python and passed to
    ``trainlab.fit``, which its caller knows by its class)."""
    name = getattr(model, NAME_ATTRIBUTE, None)
    return name if isinstance(name, str) and name else type(model).__name__


def positive_size(model: str, option: str, value: Any, allow_none: bool = False, note: str = "") -> int | None:
    """``value`` of size option ``option`` of model ``model`` as an int: a whole number >= 1 (``3.0`` is 3),
    or None when ``allow_none``; anything else (``note``, e.g. "1: no pooling", added in brackets) is a ConfigError ``model '<model>': <option> must be ...``.
    A size of 0 or below used to reach torch ("Trying to create tensor with negative dimension") or, where
    a factory tested it for truth, to switch the layer off without a word."""
    if value is None and allow_none:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value).is_integer() and value >= 1:
        return int(value)
    wanted = "a whole number >= 1" + (" or null" if allow_none else "") + (f" ({note})" if note else "")
    raise ConfigError(f"model '{model}': {option} must be {wanted}; got {option}={short_repr(value)}")


def dropout_rate(model: str, value: Any) -> float:
    """``value`` of model ``model``'s ``dropout`` option as a float in [0, 1) (0: none); anything else (a
    negative rate, 1 and above, which would zero every activation, or a non-number) is a ConfigError
    ``model '<model>': dropout must be in [0, 1) (0: none); got dropout=...``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value < 1.0:
        return float(value)
    raise ConfigError(f"model '{model}': dropout must be in [0, 1) (0: none); got dropout={short_repr(value)}")


def check_layer_counts(spec: dict[str, Any]) -> None:
    """A ConfigError ``model '<name>': <what>`` when a built-in model's options ask for more than
    ``config_fields.MAX_LAYERS`` layers (:func:`~trainlab.config_fields.layer_count_problem`: a list of layer
    sizes of more entries, or a layer count above it). Checked before anything is built: each layer is a
    module built in Python (and counted on the meta device first when the model may be large), so a long list
    of narrow layers took seconds to build and minutes an epoch while its parameters stayed far under
    :data:`MAX_PARAMETERS`. A config checks the same as it loads (``ModelConfig``), so this catches specs
    that did not come through one (``trainlab.models.build_model`` called directly)."""
    name = str(spec.get("name", ""))
    problem = layer_count_problem(name, spec)
    if problem is not None:
        raise ConfigError(f"model '{name.lower()}': {problem}")


LARGE_OPTION = 2048  # a size option (a width, a channel count) from which the total is counted
LARGE_INPUT = 1 << 20  # input elements per row from which the total is counted
LARGE_FIRST_LAYER = 100_000_000  # input elements x the largest option: a dense first layer's weights
LAYER_MARGIN = 16  # parameters per width^2 in one layer: a transformer block holds ~12 d^2, a 3x3 conv 9 c^2
KERNEL_WORD = "kernel"  # an option whose name holds this multiplies each layer by kernel^2 (2-d convolutions)


def _integers(value: Any) -> list[int]:
    """The integers in an option, lists and tuples flattened (bools are not sizes)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            found.append(item)
    return found


def _options_bound(spec: dict[str, Any]) -> int:
    """A cheap upper estimate of a built-in model's parameters from its options alone (the factory's integer
    defaults filled in): ``LAYER_MARGIN x (product of the layer counts) x (product of kernel^2) x (sum of
    width^2 over every other integer option)``. A stack of widths w_1..w_n holds sum w_i w_(i+1) <= sum w_i^2
    weights, so a long list of narrow layers (``hidden: [2047] * 300``: 1.26e9) is caught, which the largest
    option alone misses; a transformer's ``layers`` repeats its d_model^2 blocks."""
    import inspect

    options = dict(spec)
    try:
        signature = inspect.signature(MODELS.get(str(spec.get("name", ""))))
    except (TypeError, ValueError, ConfigError):
        signature = None
    if signature is not None:
        for key, parameter in signature.parameters.items():
            if key not in options and isinstance(parameter.default, int | list | tuple):
                options[key] = parameter.default
    count, widths = 1, 0
    for key, value in options.items():
        if key in ("name", "vocab_size"):
            continue
        numbers = _integers(value)
        if any(word in key for word in COUNT_WORDS):
            count *= math.prod(max(n, 1) for n in numbers)
        elif KERNEL_WORD in key:
            count *= math.prod(max(n, 1) ** 2 for n in numbers)
        else:
            widths += sum(n * n for n in numbers)
    return LAYER_MARGIN * count * widths


def _may_be_large(spec: dict[str, Any], input_shape: tuple[int, ...]) -> bool:
    """Whether to count a built-in model of ``spec`` before building it: some integer option (nested in
    lists too) other than ``vocab_size`` of at least :data:`LARGE_OPTION`, rows of at least
    :data:`LARGE_INPUT` elements, rows whose elements times the largest option reach
    :data:`LARGE_FIRST_LAYER` (an MLP of width 2,047 on 600,000 inputs: 1.2e9 weights in its first
    layer), or options whose :func:`_options_bound` reaches :data:`MAX_PARAMETERS` (many layers, each
    under :data:`LARGE_OPTION`). A screen for sizes typed with extra digits, not a proof. ``vocab_size``
    (set from the data's tokenizer) is left out: the embedding is vocab x ``d_model``, and counting costs
    a text model ~3 s (the meta build loads torch's meta kernels)."""
    largest = max([1, *(n for key, value in spec.items() if key != "vocab_size" for n in _integers(value))])
    inputs = math.prod(input_shape)
    return (largest >= LARGE_OPTION or inputs >= LARGE_INPUT or inputs * largest >= LARGE_FIRST_LAYER
            or _options_bound(spec) >= MAX_PARAMETERS)


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
