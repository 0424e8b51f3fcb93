"""Whether a tune study's base config is a point of its search space, and which: the study's first trial.

A categorical key matches the choice the base holds as the config resolves it (``bce`` for ``loss: {name:
bce}``, ``focal`` for focal at its default gamma, ``null`` for a section left out); an optimizer option left
unset has the optimizer's own default. When the base is no point, :func:`base_outside` says why, for the
study's note.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.optim import default_option
from trainlab.tune.space import Param, SearchSpace, apply_values, encode_choice
from trainlab.yaml_files import flow_yaml


def base_values(space: SearchSpace, base_raw: dict[str, Any]) -> dict[str, Any] | None:
    """The base config's value of every key the space switches on for it, in Optuna's form; None when
    one lies outside the space (:func:`base_outside` says which)."""
    return _base_point(space, base_raw)[0]


def base_outside(space: SearchSpace, base_raw: dict[str, Any]) -> str | None:
    """Why the base config is no point of the space (``model.hidden [32] is outside its choices [16],
    [64]``), or None when it is one: then it is the study's first trial."""
    return _base_point(space, base_raw)[1]


def _base_point(space: SearchSpace, base_raw: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(values, None) or (None, the reason). An optimizer option the base config leaves unset has the
    optimizer's own default (sgd's momentum 0), except a weight_decay that
    strategy.regularization.weight_decay places there (setting both is refused). A categorical key takes
    the choice the base holds as the config resolves it (:func:`_base_choice`): ``bce`` for ``loss: {name:
    bce}``, ``null`` for a section the base leaves out."""
    resolved = validate(copy.deepcopy(base_raw)).to_dict()
    settled = functools.cache(lambda: settled_config(base_raw))  # only where a choice is no resolved value
    values: dict[str, Any] = {}
    for param in space.params:
        if not all(values.get(k) in allowed for k, allowed in param.when.items()):
            continue
        node: Any = resolved
        for part in param.key.split("."):  # a list's item by its index, as --set names it (groups.0.lr)
            node = (node.get(part) if isinstance(node, dict) else
                    node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else None)
        parts = param.key.split(".")
        decay = resolved["strategy"]["regularization"].get("weight_decay")
        placed = parts[-1] == "weight_decay" and bool(decay)
        if node is None and parts[:2] == ["strategy", "optimizer"] and len(parts) == 3 and not placed:
            # unset: the optimizer's own default, which regularization.weight_decay: 0 turns off
            node = 0.0 if parts[2] == "weight_decay" and decay == 0 else \
                default_option(resolved["strategy"]["optimizer"]["name"], parts[2])
        if param.kind == "categorical":
            found = _base_choice(param, node, base_raw, settled)
            if found is not None:
                values[param.key] = found[0]
                continue
        if node is None:
            return None, f"it sets no {param.key}"
        if not param.contains(node):
            shown = node["name"] if isinstance(node, dict) and list(node) == ["name"] else flow_yaml(node)
            return None, f"its {param.key} {shown} is outside the space's {param.describe()}"
        values[param.key] = node
    return {key: encode_choice(value) for key, value in values.items()}, None


def _base_choice(param: Param, node: Any, base_raw: dict[str, Any],
                 settled: Callable[[], dict[str, Any] | None]) -> tuple[Any] | None:
    """``(choice,)``: the choice of categorical ``param`` the base config holds, or None. ``node`` is the
    base's resolved value (a number, a name, a list) and matches the choice equal to it; else the choice
    that, set on the base, resolves to the same config (``settled()``, the base's :func:`settled_config`) is it: the
    one-word ``focal`` for ``{name: focal, gamma: 2}`` (focal's default gamma), a ``{name: cosine}``
    mapping for ``schedule: cosine``, ``null`` for ``weight_averaging`` left out."""
    if node is not None:
        for choice in param.choices:
            if encode_choice(choice) == encode_choice(node):
                return (choice,)
    for choice in param.choices:
        if settled() is not None and settled_config(apply_values(base_raw, {param.key: choice})) == settled():
            return (choice,)
    return None


# the strategy sections that name a factory and pass it keyword options: an option given at the factory's
# own default is the same setting as the option left out ({name: focal, gamma: 2.0} is focal)
FACTORY_SECTIONS = ("loss", "optimizer", "schedule")


def settled_config(raw: dict[str, Any]) -> dict[str, Any] | None:
    """``raw`` validated, as JSON data without the options of a :data:`FACTORY_SECTIONS` section that sit at
    their factory's default (numbers compared as numbers, lists as tuples): two configs that train the
    same way are equal. None when ``raw`` is refused."""
    from trainlab.compare.loss_scale import canonical  # here: importing trainlab.compare loads its statistics

    try:
        resolved = validate(copy.deepcopy(raw)).to_dict()
    except ConfigError:
        return None
    for section in FACTORY_SECTIONS:
        spec = resolved["strategy"].get(section)
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            defaults = factory_defaults(section, spec["name"])
            resolved["strategy"][section] = {k: canonical(v) for k, v in spec.items()
                                             if not (k in defaults and canonical(v) == canonical(defaults[k]))}
    return resolved


def factory_defaults(section: str, name: str) -> dict[str, Any]:
    """The keyword defaults of the factory that strategy ``section`` (loss, optimizer, schedule) ``name``
    builds (:meth:`trainlab.registry.Registry.defaults`); ``{}`` for ``module:attr`` code or an unknown name."""
    if section == "loss":
        import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)
        from trainlab.losses import LOSSES as registry
    elif section == "optimizer":
        import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)
        from trainlab.optim import OPTIMIZERS as registry
    else:
        from trainlab.schedules import SCHEDULES as registry
    return registry.defaults(name)
