"""What a search space must not search, beyond what the config accepts (:func:`trainlab.tune.space.check_space`).

Refused before any trial, one :class:`ConfigError` line each, as their trials would repeat each other:

- a key that changes nothing a trial scores: ``name`` (every trial is named ``<base name>-trial<number>``),
  a key of ``output`` (how a run is recorded) and ``runtime.num_threads`` (how fast it runs), the parts
  of the base config that a study's record leaves out too (:mod:`trainlab.tune.identity`);
- two choices of one key that set the same config (``"1"`` and ``1.0`` for a number, ``focal`` and ``{name:
  focal, gamma: 2}``): each choice is set on the base config as a trial sets it and the resolved configs are
  compared (:func:`trainlab.tune.base_point.settled_config`), unless a ``when:`` tells the two apart.

Refused too, as its trials' values would not be comparable: ``data.positive_class`` chosen by the space where
the metric scores class 1 alone (``val_f1``: f1 of one class against f1 of the other;
:func:`refuse_positive_class_choice`).

Warned about (the study runs, but its values are not comparable): ``seed`` (the study would also pick the
luckiest seed) and the keys that decide the data split (``data.val_fraction``, ``data.test_fraction``,
``data.split_seed``: each trial would be scored on other validation examples). Also warned about: an int
range written with integer bounds on a key that takes fractions (:func:`integer_range_warnings`), and a key of
one choice that every trial takes (:func:`one_choice_warnings`).
"""

from __future__ import annotations

import itertools
from typing import Any

from trainlab.config import validate
from trainlab.data.positive_class import both_classes_metrics, scores_class_one
from trainlab.errors import ConfigError
from trainlab.shell_command import command_line
from trainlab.tune.base_point import settled_config
from trainlab.tune.space import Param, SearchSpace, apply_values, check_point
from trainlab.yaml_files import flow_yaml

SPLIT_KEYS = ("data.val_fraction", "data.test_fraction", "data.split_seed")


def _idle_reason(key: str) -> str | None:
    """Why searching ``key`` changes nothing a trial scores; None when it may."""
    if key == "name":
        return "every trial is named <base name>-trial<number> whatever it sets"
    if key == "output" or key.startswith("output."):
        return "the output section says how a run is recorded, not what it scores"
    if key == "runtime.num_threads":
        return "the number of threads changes how fast a trial runs, not what it scores"
    return None


def _sets_positive_class(param: Param) -> bool:
    """Whether the choices of a key above ``data.positive_class`` (``data``: whole sections) set it unlike
    each other (one choice sets it, another leaves it out, or two set other classes)."""
    if param.key != "data" or param.kind != "categorical":
        return False
    return len({str(choice.get("positive_class")) if isinstance(choice, dict) else None
                for choice in param.choices}) > 1


def refuse_positive_class_choice(space: SearchSpace, metric: str) -> None:
    """ConfigError where the space chooses ``data.positive_class`` (the key, or ``data`` sections that set it
    unlike each other) and ``metric`` scores class 1 alone (``val_f1``: the rule ``trainlab compare`` refuses
    mixed strategies by, :func:`~trainlab.data.positive_class.scores_class_one`): the study would rank f1 of one
    class against f1 of the other."""
    if not scores_class_one(metric):
        return
    for param in space.params:
        if param.key == "data.positive_class" or _sets_positive_class(param):
            what = "chooses" if param.key == "data.positive_class" else "sets data.positive_class unlike in its " \
                "choices, choosing"
            raise ConfigError(f"space key '{param.key}' {what} which class the metrics call positive, so --metric "
                              f"{metric} would rank a figure of one class against the other's; remove it from the "
                              "space (--set data.positive_class=... sets it for every trial), or tune by a metric of "
                              f"both classes ({both_classes_metrics('val')})")


def refuse_idle_keys(space: SearchSpace) -> None:
    """ConfigError for the first key of the space that changes nothing a trial scores."""
    for param in space.params:
        reason = _idle_reason(param.key)
        if reason is not None:
            where = "" if param.key == "name" else f" (--set {param.key}=... sets it for every trial)"
            raise ConfigError(f"space key '{param.key}': {reason}, so its trials would repeat each other; remove it "
                              f"from the space{where}")


def integer_range_warnings(space: SearchSpace, base_raw: dict[str, Any]) -> list[str]:
    """One warning per int range written with integer bounds (no ``type: int``, no ``step``) on a key that takes fractions
    too (the config accepts the key at ``low + 0.5``): ``lr: {low: 1, high: 3}`` tries 1, 2 and 3 only, and
    ``momentum: {low: 0, high: 1}`` 0 and 1, where a float range was likely meant (the opposite slip, a float
    range on a key of whole numbers, is refused by :func:`~trainlab.tune.space.check_space`)."""
    messages = []
    for param in space.params:
        # a step is a grid the user chose (a float range with it samples the same points)
        point = space.point({param.key: param.low + 0.5}) if param.int_inferred and param.step is None else None
        if point is None:
            continue
        try:
            check_point(base_raw, point)
        except ConfigError:  # a key of whole numbers: the int range is what it takes
            continue
        messages.append(f"space key '{param.key}': {{low: {param.low}, high: {param.high}}} is an int range (its "
                        f"trials take whole numbers only), but the key takes fractions too ({param.key}="
                        f"{param.low + 0.5} is accepted); for a float range write low: {float(param.low)}, or add "
                        "type: float (type: int keeps the int range without this warning)")
    return messages


def one_choice_warnings(space: SearchSpace) -> list[str]:
    """One warning per key whose ``choices`` hold one value and that neither has a ``when:`` nor is named by
    another key's: every trial takes that value, as the base config would give it, and the study searches
    nothing there (a warning, not a refusal as ``low`` equal to ``high`` is: a study made with such a key is
    continued with its own space). A one-value key under ``when:`` sets its value only where the condition
    holds (``nesterov: true`` for sgd alone), and one that a ``when:`` names is what that condition reads."""
    named = {key for param in space.params for key in param.when}
    messages = []
    for param in space.params:
        if param.kind == "categorical" and len(param.choices) == 1 and not param.when and param.key not in named:
            value = flow_yaml(param.choices[0])
            messages.append(f"space key '{param.key}': 'choices' holds one value, {value}, so every trial takes it "
                            "and the study searches nothing there; add choices, or set it in the base config "
                            f"({command_line('--set', f'{param.key}={value}')}) and leave it out of the space")
    return messages


def incomparable_key_warnings(space: SearchSpace, metric: str) -> list[str]:
    """One warning message per searched key that makes the trials' values incomparable: ``seed``, and the
    keys that decide the data split."""
    messages = []
    for key in space.keys():
        if key == "seed":
            messages.append(f"space key 'seed' makes each trial train from other random draws: the study then "
                            f"also picks the luckiest seed, and the best {metric} is biased upward; keep one seed "
                            "in the base config and compare over seeds with --refit-seeds K")
        elif key in SPLIT_KEYS:
            messages.append(f"space key '{key}' changes the data split from trial to trial, so each trial's "
                            f"{metric} is measured on other validation examples and the values are not "
                            f"comparable; set it in the base config (--set {key}=...) instead")
    return messages


def refuse_repeated_choices(space: SearchSpace, base_raw: dict[str, Any]) -> None:
    """ConfigError when two choices of a categorical key set the same config on the base config (with the
    conditions that switch the key on) and no ``when:`` of the space tells them apart."""
    for param in space.params:
        if param.kind != "categorical" or len(param.choices) < 2:
            continue
        settled = []
        for choice in param.choices:
            point = space.point({param.key: choice})
            settled.append(None if point is None else settled_config(apply_values(base_raw, point)))
        for (i, first), (j, second) in itertools.combinations(enumerate(param.choices), 2):
            if settled[i] is None or settled[i] != settled[j] or _told_apart(space, param, first, second):
                continue
            raise ConfigError(f"space key '{param.key}': the choices {_shown(first)} and {_shown(second)} set the "
                              f"same config{_resolved(base_raw, space, param, first)}, so their trials would "
                              "repeat each other; keep one of them")


def _told_apart(space: SearchSpace, param: Param, first: Any, second: Any) -> bool:
    """Whether a ``when:`` on ``param`` switches a key on for one of the two choices and not the other."""
    return any((first in allowed) != (second in allowed)
               for other in space.params for key, allowed in other.when.items() if key == param.key)


def _shown(choice: Any) -> str:
    return f"'{choice}'" if isinstance(choice, str) else flow_yaml(choice)


def _resolved(base_raw: dict[str, Any], space: SearchSpace, param: Param, choice: Any) -> str:
    """`` (KEY: VALUE)``, the value the config resolves the choice to; "" where the key has no single value."""
    node: Any = validate(apply_values(base_raw, space.point({param.key: choice}) or {})).to_dict()
    for part in param.key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    return f" ({param.key}: {flow_yaml(node)})"
