"""Weight initializers, applied to a built model: per-layer fills and whole-model initializers.

Two kinds of factory share the registry ``INITIALIZERS``:

- a *weight fill*, ``factory(**kwargs) -> fn(weight_tensor)``, fills one weight in place;
  it is applied to every Linear / Conv / Embedding weight, and their biases are set to 0
  (normalisation layers keep weight 1, bias 0). A fill that reaches no weight of the model (raw
  ``nn.Parameter`` weights, only ConvTranspose layers) is a ConfigError; one that leaves some weights
  (:func:`trainlab.optim.decay_split.weight_ids`) of other layer kinds as they were says so in one warning;
- a :class:`ModelInitializer`, ``factory(**kwargs) -> init`` with ``init(model, images)``,
  sets whatever it chooses (``dirac``: the identity in every conv; ``patch_whitening``: the
  first conv from the training images). ``init.images_needed`` says how many training
  inputs it reads (0: none, and ``images`` is None); the builder passes the first that many
  training inputs, normalised as the model sees them (the dataset's ``eval_transform``).

``strategy.init`` is one spec or a list of specs applied in order, so the initializers
compose: ``[kaiming_normal, dirac, {name: patch_whitening}]`` is He-init everywhere, then
the identity in every conv's first filters, then the whitened first conv.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from trainlab.config_fields import FLOAT32_MAX  # a fill beyond it: torch's "cannot be converted" error
from trainlab.errors import ConfigError
from trainlab.models import model_name
from trainlab.notices import warn
from trainlab.optim.decay_split import weight_ids
from trainlab.patch_whitening import layer_inputs, whiten_conv_
from trainlab.registry import Registry, did_you_mean

Initializer = Callable[[torch.Tensor], Any]
InitSpec = str | Mapping[str, Any]
KAIMING = ("kaiming_uniform", "kaiming_normal")


def torch_option_hint(name: str, options: Mapping[str, Any]) -> str:
    """The registry's ``hint`` for an option an initializer lacks: torch's ``a`` of ``kaiming_*_`` is
    ``negative_slope`` here (``""`` for anything else)."""
    if name.lower() not in KAIMING or "a" not in options:
        return ""
    return (f"torch's kaiming a (leaky_relu's negative slope) is negative_slope here: {{name: {name.lower()}, "
            f"nonlinearity: leaky_relu, negative_slope: {options['a']}}}")


INITIALIZERS: Registry = Registry("initializer", hint=torch_option_hint)

# the gains torch.nn.init.calculate_gain knows, and the fan He's formula divides by
Nonlinearity = Literal["relu", "leaky_relu", "selu", "tanh", "sigmoid", "linear", "conv1d", "conv2d", "conv3d",
                       "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
FanMode = Literal["fan_in", "fan_out"]

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)  # the layers a weight fill fills
_WEIGHTED_NAMES = "Linear, Conv1d/Conv2d/Conv3d, Embedding"
MAX_SKIPPED_NAMED = 4  # layers named in the warning of weights a fill leaves as they were
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class ModelInitializer(abc.ABC):
    """Initialises a whole model in place: ``init(model, images)``.

    Subclasses set ``images_needed`` (how many training inputs they read; 0: none) and
    implement ``__call__``. ``images`` holds at most that many inputs (fewer when the
    training set is smaller), normalised as the model sees them; None when 0 are needed.
    """

    images_needed: int = 0

    @abc.abstractmethod
    def __call__(self, model: nn.Module, images: torch.Tensor | None) -> None:
        """Initialise ``model`` in place (``images``: see the class docstring)."""


class PerLayer(ModelInitializer):
    """A weight fill applied to every Linear / Conv / Embedding weight, with their biases set to 0.

    A model with none of those layers is a ConfigError naming the initializer (as for ``dirac``): there the
    fill would do nothing, silently. Weights of other layers (:func:`trainlab.optim.decay_split.weight_ids`:
    ConvTranspose, LSTM, MultiheadAttention's ``in_proj_weight``, raw ``nn.Parameter`` weights) keep their
    values, said in one warning naming them.
    """

    def __init__(self, fill: Initializer, name: str = "weight fill"):
        self.fill, self.name = fill, name

    @torch.no_grad()
    def __call__(self, model: nn.Module, images: torch.Tensor | None) -> None:
        layers = [module for module in model.modules() if isinstance(module, _WEIGHTED)]
        skipped = _weights_outside(model, layers)
        if not layers:
            theirs = f" (its weights: {', '.join(skipped)})" if skipped else ""
            raise ConfigError(f"initializer '{self.name}' needs a model with a layer whose weight it fills "
                              f"({_WEIGHTED_NAMES}); model '{model_name(model)}' has none{theirs}: remove "
                              f"{self.name} from strategy.init, or set those weights in the model's own code")
        for module in layers:
            self.fill(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        if skipped:
            more = len(skipped) - MAX_SKIPPED_NAMED
            shown = ", ".join(skipped[:MAX_SKIPPED_NAMED]) + (f" and {more} more" if more > 0 else "")
            warn(f"initializer '{self.name}' fills the weights of {_WEIGHTED_NAMES} layers only; it leaves "
                 f"{shown} in model '{model_name(model)}' as they were")


def _weights_outside(model: nn.Module, layers: Sequence[nn.Module]) -> list[str]:
    """The weights of ``model`` (:func:`~trainlab.optim.decay_split.weight_ids`) that are not the weight of one
    of ``layers``, each as ``'up.weight' of a ConvTranspose2d``; one on the model itself as ``'weight' of the
    model itself``."""
    filled = {id(module.weight) for module in layers}
    weights, seen, out = weight_ids(model), set(), []
    for module_name, module in model.named_modules():
        for attribute, parameter in module.named_parameters(recurse=False):
            if id(parameter) in weights and id(parameter) not in filled and id(parameter) not in seen:
                seen.add(id(parameter))
                owner = f"a {type(module).__name__}" if module_name else "the model itself"
                out.append(f"'{module_name + '.' if module_name else ''}{attribute}' of {owner}")
    return out


# ---------------------------------------------------------------------------
# Weight fills
# ---------------------------------------------------------------------------


def _check_float32(option: str, value: float) -> None:
    """ValueError unless ``|value|`` is at most float32's largest (the weights' type: torch would fill inf)."""
    if not abs(value) <= FLOAT32_MAX:
        raise ValueError(f"{option} must be a number within ±{FLOAT32_MAX:.4g} (float32's range); "
                         f"got {option}={value}")


def _check_gain(gain: float) -> None:
    """ValueError unless 0 < gain <= float32's largest: a gain scales the weights' spread (torch's uniform_
    refuses a negative one in a RuntimeError; 0 would be ``zeros``)."""
    if not gain > 0:
        raise ValueError(f"gain must be > 0; got gain={gain}")
    _check_float32("gain", gain)


@INITIALIZERS.register("zeros")
def zeros() -> Initializer:
    """w = 0 (a hidden layer initialised so cannot break symmetry: every unit learns the same)."""
    return nn.init.zeros_


@INITIALIZERS.register("constant")
def constant(value: float = 0.01) -> Initializer:
    """w = value (``|value|`` at most float32's largest, the weights' type)."""
    _check_float32("value", value)
    return lambda w: nn.init.constant_(w, value)


@INITIALIZERS.register("normal")
def normal(mean: float = 0.0, std: float = 0.01) -> Initializer:
    """w ~ N(mean, std^2); ``mean`` and ``std`` within float32's range."""
    if not std >= 0:
        raise ValueError(f"std must be >= 0; got std={std}")
    _check_float32("mean", mean)
    _check_float32("std", std)
    return lambda w: nn.init.normal_(w, mean, std)


@INITIALIZERS.register("uniform")
def uniform(low: float = -0.05, high: float = 0.05) -> Initializer:
    """w ~ U(low, high); ``low``, ``high`` and ``high - low`` within float32's range (torch's own limit)."""
    _check_float32("low", low)
    _check_float32("high", high)
    if not low <= high:
        raise ValueError(f"low must be <= high; got low={low}, high={high}")
    if not high - low <= FLOAT32_MAX:
        raise ValueError(f"high - low must be at most {FLOAT32_MAX:.4g} (float32's largest); got low={low}, "
                         f"high={high}")
    return lambda w: nn.init.uniform_(w, low, high)


@INITIALIZERS.register("xavier_uniform")
def xavier_uniform(gain: float = 1.0) -> Initializer:
    """Glorot: w ~ U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)); gain > 0."""
    _check_gain(gain)
    return lambda w: nn.init.xavier_uniform_(w, gain)


@INITIALIZERS.register("xavier_normal")
def xavier_normal(gain: float = 1.0) -> Initializer:
    """Glorot: w ~ N(0, gain^2 2 / (fan_in + fan_out)); gain > 0."""
    _check_gain(gain)
    return lambda w: nn.init.xavier_normal_(w, gain)


def _kaiming_slope(nonlinearity: str, negative_slope: float | None) -> float:
    """torch's ``a`` for He's gain sqrt(2 / (1 + a^2)): ``negative_slope``, which only ``leaky_relu`` takes;
    unset, 0 (torch's default, so ``leaky_relu`` alone has ReLU's gain sqrt(2))."""
    if negative_slope is None:
        return 0.0
    if nonlinearity != "leaky_relu":
        raise ValueError(f"negative_slope is leaky_relu's slope for x < 0 and is used with nonlinearity: "
                         f"leaky_relu only; got negative_slope={negative_slope} with nonlinearity: {nonlinearity}")
    _check_float32("negative_slope", negative_slope)
    return float(negative_slope)


@INITIALIZERS.register("kaiming_uniform")
def kaiming_uniform(nonlinearity: Nonlinearity = "relu", mode: FanMode = "fan_in",
                    negative_slope: float | None = None) -> Initializer:
    """He: w ~ U(-b, b), b = gain sqrt(3 / fan), gain = sqrt(2) for ReLU, sqrt(2 / (1 + negative_slope^2))
    for leaky_relu (``negative_slope``: torch's ``a``, default 0); ``fan`` is ``mode``'s."""
    slope = _kaiming_slope(nonlinearity, negative_slope)
    return lambda w: nn.init.kaiming_uniform_(w, a=slope, mode=mode, nonlinearity=nonlinearity)


@INITIALIZERS.register("kaiming_normal")
def kaiming_normal(nonlinearity: Nonlinearity = "relu", mode: FanMode = "fan_in",
                   negative_slope: float | None = None) -> Initializer:
    """He: w ~ N(0, gain^2 / fan), gain = sqrt(2) for ReLU, sqrt(2 / (1 + negative_slope^2)) for leaky_relu
    (``negative_slope``: torch's ``a``, default 0); ``fan`` is ``mode``'s."""
    slope = _kaiming_slope(nonlinearity, negative_slope)
    return lambda w: nn.init.kaiming_normal_(w, a=slope, mode=mode, nonlinearity=nonlinearity)


@INITIALIZERS.register("orthogonal")
def orthogonal(gain: float = 1.0) -> Initializer:
    """w = gain Q, Q from the QR decomposition of a Gaussian matrix (Saxe et al. 2014); gain > 0."""
    _check_gain(gain)
    return lambda w: nn.init.orthogonal_(w, gain)


# ---------------------------------------------------------------------------
# Whole-model initializers
# ---------------------------------------------------------------------------


@torch.no_grad()
def dirac_first_filters_(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Make a conv the identity on its first channels, in place; the other filters keep their values.

    weight is (out, in / groups, *kernel). Within each group g, filter g * out_g + o for
    o < min(out_g, in_g) becomes the Dirac delta at the kernel's centre on input channel o
    of the group (out_g = out / groups, in_g = in / groups), so with "same" padding and
    stride 1, conv(x) reproduces x on those channels (airbench's "implicit residual":
    ``dirac_(w[:w.size(1)])``).
    """
    out_per_group = weight.shape[0] // groups
    identity = min(out_per_group, weight.shape[1])
    for group in range(groups):
        first = group * out_per_group
        nn.init.dirac_(weight[first:first + identity])
    return weight


class Dirac(ModelInitializer):
    """Every Conv1d/2d/3d starts as the identity on its first min(out, in) channels (per group).

    A model with no conv is a ConfigError (as for ``patch_whitening``): there it would do nothing, silently.
    """

    name = "dirac"

    @torch.no_grad()
    def __call__(self, model: nn.Module, images: torch.Tensor | None) -> None:
        convs = [module for module in model.modules() if isinstance(module, _CONVS)]
        if not convs:
            raise ConfigError(f"initializer 'dirac' needs a model with a Conv1d/Conv2d/Conv3d layer; model "
                              f"'{model_name(model)}' has none: remove dirac from strategy.init")
        for module in convs:
            dirac_first_filters_(module.weight, module.groups)


@INITIALIZERS.register("dirac")
def dirac() -> ModelInitializer:
    """Identity init of every conv's first min(out, in) filters; the rest keep their init (compose it)."""
    return Dirac()


class PatchWhitening(ModelInitializer):
    """The first Conv2d (or the one named ``layer``) becomes the whitening of the patches it receives when the
    model runs on training images (:func:`~trainlab.patch_whitening.layer_inputs`): the images' own for a stem.

    See :mod:`trainlab.patch_whitening` for the formula.
    """

    def __init__(self, eps: float, images: int, freeze: bool, layer: str | None):
        self.eps, self.images_needed, self.freeze, self.layer = eps, images, freeze, layer
        self.whitened: tuple[str, torch.Tensor, torch.Tensor] | None = None  # (layer name, weight, its values)

    def __call__(self, model: nn.Module, images: torch.Tensor | None) -> None:
        if images is None:
            raise ConfigError("initializer 'patch_whitening' needs training images; pass images= to initialize()")
        name, conv = self._conv(model)
        whiten_conv_(conv, layer_inputs(model, conv, images), self.eps, self.freeze, name)
        self.whitened = (name, conv.weight, conv.weight.detach().clone())  # for apply_initializers' check

    def _conv(self, model: nn.Module) -> tuple[str, nn.Conv2d]:
        convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
        if not convs:
            raise ConfigError(f"initializer 'patch_whitening' needs a model with a Conv2d layer; "
                              f"model '{model_name(model)}' has none")
        if self.layer is None:
            return next(iter(convs.items()))  # the first registered: the stem, in every built-in model
        if self.layer not in convs:
            raise ConfigError(f"initializer 'patch_whitening': no Conv2d named '{self.layer}'"
                              f"{did_you_mean(self.layer, list(convs))} (Conv2d layers: {', '.join(list(convs)[:8])})")
        return self.layer, convs[self.layer]


@INITIALIZERS.register("patch_whitening")
def patch_whitening(eps: float = 5e-4, images: int = 5000, freeze: bool = True,
                    layer: str | None = None) -> ModelInitializer:
    """The first conv's filters whiten the k x k patches of its inputs on ``images`` training images.

    Args:
        eps: added to each eigenvalue of the patch second-moment matrix (airbench: 5e-4).
        images: how many training inputs to estimate it from (airbench: 5000).
        freeze: keep the whitened weight fixed in training (airbench: true).
        layer: the Conv2d to whiten, by module name (default: the model's first Conv2d).
    """
    if isinstance(eps, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
        with contextlib.suppress(ValueError):
            eps = float(eps)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
        raise ValueError(f"eps must be a number > 0; got eps={eps!r}")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be a positive integer; got images={images!r}")
    if not isinstance(freeze, bool):
        raise ValueError(f"freeze must be true or false; got freeze={freeze!r}")
    return PatchWhitening(float(eps), images, freeze, layer)


SYMMETRIC_INITS = ("zeros", "constant")  # initializers that give every unit of a layer the same weights


SHAPED_INITS = ("dirac", "patch_whitening")  # initializers of some layers only: no fill of every weight


def symmetric_init(init: Any) -> str | None:
    """The name of the weight fill ``strategy.init`` ends with (one :class:`~trainlab.config_strategy.InitConfig`,
    or the last of a list, as each fill overwrites every weight the ones before it filled; the initializers of
    some layers, :data:`SHAPED_INITS`, are passed over) where it starts every unit of a layer alike
    (:data:`SYMMETRIC_INITS`), else None: ``[zeros, kaiming_normal]`` ends with kaiming's weights."""
    names = [getattr(one, "name", None) for one in (init if isinstance(init, list) else [init])]
    fills = [name for name in names if name not in SHAPED_INITS]
    return fills[-1] if fills and fills[-1] in SYMMETRIC_INITS else None


# ---------------------------------------------------------------------------
# Building and applying
# ---------------------------------------------------------------------------


def build_initializers(spec: InitSpec | Sequence[InitSpec]) -> list[ModelInitializer]:
    """One spec or a list of specs -> model initializers, in order (weight fills wrapped in PerLayer)."""
    specs = [spec] if isinstance(spec, str | Mapping) else list(spec)
    chain = []
    for one in specs:
        built = INITIALIZERS.build(one)
        if isinstance(built, ModelInitializer):
            chain.append(built)
        elif callable(built):
            chain.append(PerLayer(built, one if isinstance(one, str) else str(one.get("name"))))
        else:
            raise ConfigError(f"initializer {one!r} built a {type(built).__name__}, not a weight fill "
                              "(fn(weight)) or a ModelInitializer")
    return chain


def images_needed(chain: Sequence[ModelInitializer]) -> int:
    """How many training inputs the chain reads (the most any of its initializers asks for)."""
    return max((int(getattr(init, "images_needed", 0)) for init in chain), default=0)


@torch.no_grad()
def apply_initializers(chain: Sequence[ModelInitializer], model: nn.Module, images: torch.Tensor | None) -> None:
    """Run the chain on ``model`` in order; each initializer gets the first ``images_needed`` of ``images``.

    An initializer after ``patch_whitening`` that changes the whitened conv's weight is a ConfigError: the
    data's whitening filters would be lost, and with ``freeze`` the overwritten weight (He noise, a delta in
    its first filter that breaks the W / -W pairs) would stay fixed through training, said nowhere.
    ``[kaiming_normal, patch_whitening]`` keeps both (the fill everywhere, then the whitened stem)."""
    whitened: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # layer name: (its weight, the filters)
    for init in chain:
        needed = int(getattr(init, "images_needed", 0))
        init(model, images[:needed] if needed and images is not None else None)
        if isinstance(init, PatchWhitening) and init.whitened is not None:
            name, weight, values = init.whitened
            whitened[name] = (weight, values)  # a layer whitened again: its latest filters
            continue
        for name, (weight, values) in whitened.items():
            if not torch.equal(weight, values):
                raise ConfigError(
                    f"strategy.init: '{getattr(init, 'name', type(init).__name__)}' after patch_whitening "
                    f"overwrites the whitened conv "
                    f"'{name}' (its weight is no longer the whitening filters); put patch_whitening after it, "
                    "last in strategy.init")


def initialize(model: nn.Module, spec: InitSpec | Sequence[InitSpec], images: torch.Tensor | None = None) -> None:
    """Apply ``spec`` (one initializer or a list, in order) to ``model`` in place.

    ``images``: normalised training inputs for initializers that read data (patch_whitening).
    """
    apply_initializers(build_initializers(spec), model, images)
