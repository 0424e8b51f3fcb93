"""An optimizer's state as a checkpoint stores it and a resume loads it back.

:func:`check_checkpointable` refuses, after the first step, an optimizer whose state a checkpoint cannot store
(a value :func:`~trainlab.engine.serialize.split_state` refuses: a set) or torch's ``Optimizer.load_state_dict``
cannot load back (:data:`UNLOADABLE`: a NumPy array, a string). On resume, :func:`check_group_options` refuses
another optimizer's param groups, :func:`in_parameter_layouts` gives the loaded moments their parameters'
memory layouts, and :class:`OptimizerStateMismatch` carries any refusal so a resume names the optimizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from trainlab.engine.serialize import UnserialisableState, split_state
from trainlab.errors import ConfigError
from trainlab.optim.routing import RoutedOptimizer


class OptimizerStateMismatch(ValueError):
    """A checkpoint's optimizer state that the optimizer as built cannot load (:meth:`StandardStep._load_optimizer`):
    ``reason`` is the error that said so (torch's, or :func:`check_group_options`'s). A ValueError, as a
    mismatched checkpoint's errors are; its own type lets a resume say that the optimizer, not the model,
    does not match."""

    def __init__(self, reason: Exception):
        self.reason = reason
        super().__init__(f"{type(reason).__name__}: {reason}")


# an optimizer state's values that torch's Optimizer.load_state_dict cannot load back -> the fix. It rebuilds
# every iterable but a tensor or dict as type(value)(generator): a NumPy array refuses that (a TypeError: the run
# cannot be resumed), a string becomes "<generator object ...>" without a word
UNLOADABLE = {
    "a NumPy array": "keep a torch tensor there instead: torch.from_numpy(array)",
    "a string": "keep it in the optimizer's param groups or as an attribute of the optimizer instead",
}
OPTIMIZER_STATE = "tensors, numbers, None, and lists, tuples and dicts of these"  # what may be in it


class UnloadableValue(NamedTuple):
    """Where :func:`unloadable_state` found a value torch cannot load back, and what it is."""

    parameter: int | str  # the parameter's index in the optimizer's state dict (param_groups order)
    key: str  # the state key, dotted into a list or dict: 'hist', 'history.2'
    what: str  # a key of UNLOADABLE: 'a NumPy array'


def unloadable_state(state_dict: Any) -> UnloadableValue | None:
    """The first value of an optimizer state dict's per-parameter ``state`` (``{index: {key: value}}``; a
    :class:`~trainlab.optim.routing.RoutedOptimizer`'s inner ones under ``optimizers``) that torch's
    ``Optimizer.load_state_dict`` cannot load back (:data:`UNLOADABLE`); None when there is none."""
    if not isinstance(state_dict, Mapping):
        return None
    inner_states = state_dict.get("optimizers")
    for inner in inner_states if isinstance(inner_states, list) else ():
        found = unloadable_state(inner)
        if found is not None:
            return found
    per_parameter = state_dict.get("state")
    for parameter, slots in (per_parameter.items() if isinstance(per_parameter, Mapping) else ()):
        for key, value in (slots.items() if isinstance(slots, Mapping) else ()):
            found = _unloadable_value(value, str(key))
            if found is not None:
                return UnloadableValue(parameter, *found)
    return None


def _unloadable_value(value: Any, key: str) -> tuple[str, str] | None:
    """(key, what) of the first value in ``value`` (a state slot, walked into lists, tuples and dicts) that
    :data:`UNLOADABLE` names, ``key`` dotted into the place; None when there is none."""
    if isinstance(value, np.ndarray):
        return key, "a NumPy array"
    if isinstance(value, str):
        return key, "a string"
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list | tuple) \
        else ()
    for name, inner in items:
        found = _unloadable_value(inner, f"{key}.{name}")
        if found is not None:
            return found
    return None


def loads_with_torch(optimizer: torch.optim.Optimizer) -> bool:
    """Whether each optimizer owning ``optimizer``'s state (:func:`state_owners`) loads it with torch's own
    ``Optimizer.load_state_dict``, the one that cannot load :data:`UNLOADABLE` values back (an optimizer that
    overrides it may)."""
    return all(type(owner).load_state_dict is torch.optim.Optimizer.load_state_dict
               for owner in state_owners(optimizer))


def state_owners(optimizer: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """The optimizers that own ``optimizer``'s state: a :class:`~trainlab.optim.routing.RoutedOptimizer`'s inner
    ones (its ``state`` is a merged view, built anew on each read), else ``optimizer`` itself."""
    return list(optimizer.optimizers) if isinstance(optimizer, RoutedOptimizer) else [optimizer]


def check_checkpointable(optimizer: torch.optim.Optimizer) -> None:
    """Refuse (ConfigError) an optimizer whose state a checkpoint cannot store or a resume cannot load back:
    a value none of :data:`~trainlab.engine.serialize.SERIALISABLE` (a user's optimizer keeping a set), found
    by walking its ``state_dict()`` as a checkpoint does (:func:`~trainlab.engine.serialize.split_state`;
    nothing copied); then, for an optimizer loading with torch's own ``Optimizer.load_state_dict``, a NumPy
    array or a string (:data:`UNLOADABLE`), which a checkpoint stores but torch cannot load back (a resume
    failed on a TypeError, blaming the model; a string came back as ``'<generator object ...>'``). Called
    after the first step, when the state exists: before, a set surfaced at the first checkpoint, after a
    whole epoch, as a TypeError."""
    kind = type(optimizer)
    name = f"{kind.__module__}.{kind.__qualname__}"
    try:
        split_state(optimizer.state_dict(), "optimizer")
    except UnserialisableState as exc:
        raise ConfigError(f"optimizer {name} keeps a {exc.type_name} in its state (at '{exc.key}'), which a "
                          f"checkpoint cannot store without pickle; an optimizer's state may hold only "
                          f"{OPTIMIZER_STATE} (a set as a sorted list, say)") from None
    found = unloadable_state(optimizer.state_dict()) if loads_with_torch(optimizer) else None
    if found is not None:
        raise ConfigError(f"optimizer {name} keeps {found.what} in its state ('{found.key}' of parameter "
                          f"{found.parameter}), which a checkpoint stores but torch's Optimizer.load_state_dict "
                          f"cannot load back: the run could never be resumed; {UNLOADABLE[found.what]}; an "
                          f"optimizer's state may hold only {OPTIMIZER_STATE}")


def check_group_options(optimizer: torch.optim.Optimizer, built: list[set[str]]) -> None:
    """ValueError unless every loaded param group holds each option its group held as built (``built``):
    torch loads another optimizer's groups without a word (Adam's into SGD, a config.yaml edited before a
    resume), and its first step then failed on a KeyError ('momentum'). The groups as built, not the
    optimizer's ``defaults``: an optimizer may keep in its defaults what its groups never hold (Lion's
    ``differentiable``), and its own checkpoints were refused."""
    for index, (group, options) in enumerate(zip(optimizer.param_groups, built, strict=False)):
        missing = sorted(options - set(group))
        if missing:
            raise ValueError(f"the checkpoint's parameter group {index} has no {', '.join(missing)} of "
                             f"{type(optimizer).__name__}: it was saved by another optimizer")


def in_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Each per-element state tensor (Adam's moments, a momentum buffer) in its parameter's memory layout.

    A checkpoint stores tensors contiguous; ``Optimizer.load_state_dict`` keeps that layout, so the moments
    of a channels_last conv filter came back NCHW. torch's fused CPU Adam/AdamW walks a parameter and its
    state as if their strides agreed: each element was updated with another element's moments (a resumed
    channels_last run ended 0.06 away from the uninterrupted one, not bit-identical)."""
    for parameter, slots in optimizer.state.items():
        if not isinstance(parameter, torch.Tensor):
            continue
        for key, value in slots.items():
            if isinstance(value, torch.Tensor) and value.shape == parameter.shape \
                    and value.stride() != parameter.stride():
                slots[key] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
