"""The search space of ``trainlab tune``: SPACE.yaml parsed, checked, and sampled.

SPACE.yaml maps a dotted config key (the ``--set`` form) to a range or a list::

    strategy.optimizer.name: {choices: [sgd, adam, adamw]}
    strategy.optimizer.lr: {low: 1.0e-5, high: 1.0, log: true}      # float, log-uniform
    strategy.optimizer.momentum: {low: 0.0, high: 0.99, when: {strategy.optimizer.name: sgd}}
    strategy.regularization.weight_decay: {low: 0.0, high: 0.1, step: 0.01,  # float on a grid
                                           when: {strategy.optimizer.name: adamw}}  # decoupled decay only
    strategy.batch_size: {choices: [32, 64, 128, 256]}
    strategy.epochs: {low: 2, high: 8}                               # int (both bounds integers)

Kinds: ``choices`` is categorical; ``low``/``high`` give an int when both are
integers (``type: float`` forces a float), else a float; ``log`` samples
log-uniformly (low > 0), ``step`` on the grid low, low + step, ... <= high.
``when: {KEY: VALUE or [VALUES]}`` makes a key conditional on a categorical
key of the space: it is sampled, and set, only when that key took one of the
values. Every rule is checked before any trial (:func:`check_space`), each
failure one :class:`ConfigError` line naming the key (or the two keys that
cannot be combined).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainlab.config import validate
from trainlab.config_errors import NUMBER_WORDING
from trainlab.config_overrides import SHORTHAND_KEYS, apply_overrides
from trainlab.errors import ConfigError
from trainlab.notices import warn
from trainlab.preflight import check_components
from trainlab.registry import did_you_mean, value_hint
from trainlab.tune.arguments import named
from trainlab.yaml_files import flow_yaml, load_yaml_file

SPEC_FIELDS = ["low", "high", "log", "step", "choices", "when", "type"]
# the keys whose string values name a registered component, read whatever their case (registry.Registry.get)
CASELESS_KEYS = frozenset({"name", "loss", "schedule", "init", "source"})
# Optuna's distribution names (its suggest_* and the old distributions), said as trainlab's fields
OPTUNA_TYPES = {"loguniform": "type: float with log: true", "uniform": "type: float",
                "discrete_uniform": "type: float with step", "discreteuniform": "type: float with step",
                "int_uniform": "type: int", "intuniform": "type: int", "int_log_uniform": "type: int with log: true",
                "intloguniform": "type: int with log: true", "suggest_float": "type: float",
                "suggest_int": "type: int", "suggest_categorical": "choices: [...]"}
TYPES = ["float", "int", "categorical"]
# how the config refuses a number with a fractional part where it takes whole numbers: pydantic's int_from_float
# as config_errors words it (also a component's int option, a schedule's, a model's size: "must be a whole
# number >= 1"), and strategy.batch_size's own validator ("must be a positive int or 'full'; got 16.5")
FRACTION_REFUSALS = (NUMBER_WORDING["int_from_float"], "must be a positive int")


@dataclass(frozen=True)
class Param:
    """One searched config key.

    ``kind`` is float, int or categorical; ``when`` maps a categorical key of
    the space to the values that switch this key on (empty: always on); ``int_inferred``: an int range
    because both bounds are integers, not because of ``type: int``.
    """

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    int_inferred: bool = False

    def extremes(self) -> list[Any]:
        """The values a config must accept: both bounds, or every choice."""
        if self.kind == "categorical":
            return list(self.choices)
        high = self.high
        if self.step is not None:  # Optuna's grid stops at the last point <= high
            high = self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step
            high = int(high) if self.kind == "int" else float(high)
        return [self.low, high]

    def inside(self) -> list[float]:
        """A float range's point strictly between its bounds that is no whole number (none for another kind,
        or where the grid has none): the bounds of ``{low: 2, high: 6, type: float}`` pass a key that takes
        whole numbers, and every value Optuna samples between them is refused."""
        if self.kind != "float" or self.high <= self.low:
            return []
        if self.step is None:
            points = [self.low + (self.high - self.low) * share for share in (0.5, 0.3, 0.1)]
        else:
            count = math.floor((self.high - self.low) / self.step + 1e-9)
            points = [self.low + k * self.step for k in range(1, min(count, 20) + 1)]
        return [float(p) for p in points if self.low < p < self.high and not float(p).is_integer()][:1]

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this key's range or one of its choices."""
        if self.kind == "categorical":
            return encode_choice(value) in [encode_choice(c) for c in self.choices]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.kind == "int" and value != int(value):
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-9

    def describe(self) -> str:
        """``choices [16], [64]``, ``range [1e-05, 0.1]`` or ``range [1, 9] in steps of 2``."""
        if self.kind == "categorical":
            return "choices " + ", ".join(json.dumps(c) if not isinstance(c, str) else c for c in self.choices)
        return f"range [{self.low:g}, {self.high:g}]" + (f" in steps of {self.step:g}" if self.step else "")

    def suggest(self, trial: Any) -> Any:
        """Sample this key on an Optuna trial (the Optuna parameter name is the key)."""
        if self.kind == "categorical":
            encoded = [encode_choice(c) for c in self.choices]
            return _decode(trial.suggest_categorical(self.key, encoded), self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def encode_choice(choice: Any) -> Any:
    """Optuna stores None/bool/int/float/str choices; a list or mapping travels as its JSON text."""
    return choice if choice is None or isinstance(choice, (bool, int, float, str)) else json.dumps(choice)


def _decode(value: Any, choices: tuple[Any, ...]) -> Any:
    for choice in choices:
        if encode_choice(choice) == value:
            return choice
    return value


@dataclass(frozen=True)
class SearchSpace:
    """The parameters in sampling order: a conditional key comes after the keys it depends on."""

    params: tuple[Param, ...]

    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def sample(self, trial: Any) -> dict[str, Any]:
        """``{key: value}`` for the keys switched on by the values sampled before them."""
        values: dict[str, Any] = {}
        for param in self.params:
            if _active(param, values):
                values[param.key] = param.suggest(trial)
        return values

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Optuna's stored parameters -> config values (a list choice is stored as its JSON text)."""
        by_key = {p.key: p for p in self.params}
        return {key: _decode(value, by_key[key].choices) if key in by_key else value for key, value in params.items()}

    def point(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """``values`` plus a value for every condition that switches one of them on (directly or through
        other conditions) and is not set: the first value every key conditioned on it allows. None when
        no such value exists or a set value is not allowed (then ``values`` is not a point of the space)."""
        by_key = {p.key: p for p in self.params}
        allowed: dict[str, list[Any]] = {}  # unset condition key -> the values all its dependants allow
        pending = list(values)
        while pending:
            for condition, options in by_key[pending.pop()].when.items():
                if condition in values:
                    if values[condition] not in options:
                        return None
                    continue
                if condition not in allowed:
                    pending.append(condition)
                allowed[condition] = [v for v in allowed.get(condition, options) if v in options]
        if any(not options for options in allowed.values()):
            return None
        return {**values, **{condition: options[0] for condition, options in allowed.items()}}

    def to_dict(self) -> dict[str, Any]:
        """The parsed space as JSON data, each key's fields without their defaults (what a study
        records to recognise its space; ``int_inferred`` left out: how a range was written, not what it samples)."""
        fields = {p.key: {k: v for k, v in asdict(p).items()
                          if k not in ("key", "int_inferred") and v is not None and v is not False and v not in ((), {})}
                  for p in self.params}
        return json.loads(json.dumps(fields))


def _active(param: Param, values: dict[str, Any]) -> bool:
    return all(condition in values and values[condition] in allowed for condition, allowed in param.when.items())


# --------------------------------------------------------------------------- parsing

def _number(key: str, name: str, value: Any) -> float | int:
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no '.') as text: the number the user wrote
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"space key '{key}': '{name}' must be a number; got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"space key '{key}': '{name}' must be finite; got {value!r}")
    return value


def _parse_param(key: str, spec: Any) -> Param:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"space key '{key}' needs a mapping such as {{low: 1.0e-4, high: 0.1, log: true}} "
                          f"or {{choices: [a, b]}}; got {spec!r}")
    for name in spec:
        if name not in SPEC_FIELDS:
            hint = did_you_mean(str(name), SPEC_FIELDS, {"q": "step"})  # Optuna's old discretisation step
            if not hint and isinstance(spec[name], Mapping):  # a section written nested: say its dotted key
                dotted, inner = f"{key}.{name}", spec[name]
                while isinstance(inner, Mapping) and len(inner) == 1 and not set(inner) & set(SPEC_FIELDS):
                    (child, inner), = inner.items()
                    dotted = f"{dotted}.{child}"
                hint = f"; a space names each setting by its dotted key: '{dotted}': {{...}}, not nested"
            raise ConfigError(f"space key '{key}': unknown field '{name}'{hint} (valid: {', '.join(SPEC_FIELDS)})")
    kind = spec.get("type")
    if kind is not None and kind not in TYPES:
        optuna = OPTUNA_TYPES.get(str(kind).casefold()) if isinstance(kind, str) else None
        hint = f"; Optuna's {kind} is {optuna} here" if optuna else value_hint(kind, TYPES)
        raise ConfigError(f"space key '{key}': type must be one of {', '.join(TYPES)}; got {kind!r}{hint}")
    when = _parse_when(key, spec.get("when"))
    if "choices" in spec:
        return _parse_choices(key, spec, kind, when)
    if kind == "categorical":
        raise ConfigError(f"space key '{key}': type categorical needs 'choices'")
    missing = [name for name in ("low", "high") if name not in spec]
    if missing:
        raise ConfigError(f"space key '{key}' needs 'low' and 'high' (or 'choices'); '{missing[0]}' is missing")
    low, high = _number(key, "low", spec["low"]), _number(key, "high", spec["high"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"space key '{key}': 'log' must be true or false; got {log!r}")
    step = None if spec.get("step") is None else _number(key, "step", spec["step"])
    inferred = kind is None
    if kind is None:
        kind = "int" if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)) \
            else "float"
    if kind == "int":
        for name, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and value != int(value):
                raise ConfigError(f"space key '{key}': type int needs an integer '{name}'; got {value!r}")
        low, high, step = int(low), int(high), None if step is None else int(step)
    else:
        low, high = float(low), float(high)
    if low > high:
        raise ConfigError(f"space key '{key}': low ({low}) > high ({high}); swap them")
    if low == high:  # every trial would take that one value, as a step larger than the range would make it
        raise ConfigError(f"space key '{key}': low and high are both {low}, so the key would take one value; widen "
                          f"the range, or set the value in the base config (--set {key}={low}) and leave it out of "
                          "the space")
    if log and low <= 0:
        raise ConfigError(f"space key '{key}': log needs low > 0; got low={low}")
    if step is not None:
        high = _grid_high(key, low, high, _checked_step(key, kind, low, high, step, log))
    return Param(key, kind, low, high, log, step, when=when, int_inferred=inferred and kind == "int")


def _parse_choices(key: str, spec: Mapping[str, Any], kind: Any, when: dict[str, tuple[Any, ...]]) -> Param:
    """A ``choices`` key: a non-empty list of distinct values, nothing of a range beside it; a component's name
    (:data:`CASELESS_KEYS`) not given twice in two cases."""
    extra = [name for name in ("low", "high", "log", "step") if name in spec]
    if extra or kind not in (None, "categorical"):
        raise ConfigError(f"space key '{key}': 'choices' cannot be combined with "
                          f"'{extra[0] if extra else 'type: ' + str(kind)}'")
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"space key '{key}': 'choices' must be a non-empty list; got {choices!r}")
    encoded = [encode_choice(c) for c in choices]
    if len(set(map(json.dumps, encoded))) != len(encoded):
        raise ConfigError(f"space key '{key}': 'choices' repeats a value; got {choices!r}")
    if key.rpartition(".")[2] in CASELESS_KEYS:  # a component's name: Adam is adam
        folded = [c.casefold() if isinstance(c, str) else c for c in choices]
        twin = next((c for i, c in enumerate(choices) if folded.index(folded[i]) != i), None)
        if twin is not None:
            raise ConfigError(f"space key '{key}': 'choices' names {choices[folded.index(twin.casefold())]!r} "
                              f"and {twin!r}, one component (names are read whatever their case); keep one")
    return Param(key, "categorical", choices=tuple(choices), when=when)


def _checked_step(key: str, kind: str, low: float | int, high: float | int, step: float | int,
                  log: bool) -> float | int:
    """``step`` when it is > 0, no larger than the range, and not beside ``log`` (but an int's step of 1)."""
    if step <= 0:
        raise ConfigError(f"space key '{key}': step must be > 0; got {step}")
    if high > low and step - (high - low) > 1e-9 * max(abs(high), abs(low), 1.0):  # float rounding aside
        raise ConfigError(f"space key '{key}': step ({step}) is larger than high - low ({high - low}), so the "
                          "key would take one value; use a smaller step")
    if log and (kind == "float" or step != 1):
        raise ConfigError(f"space key '{key}': 'log' and 'step' cannot be combined (Optuna samples a "
                          "log range continuously); drop one")
    return step


def _grid_high(key: str, low: float | int, high: float | int, step: float | int) -> float | int:
    """``high`` moved down to the last point of the grid low, low + step, ... where ``step`` does not divide
    high - low, with one warning: Optuna moves it so itself, with a UserWarning of its own (a file path and a
    source line) once per trial, under --quiet too. Computed as Optuna does (decimal arithmetic on the numbers
    as written), so that the grid it is given divides exactly."""
    import decimal

    span, grid = decimal.Decimal(str(high)) - decimal.Decimal(str(low)), decimal.Decimal(str(step))
    if span % grid == 0:
        return high
    moved = (span // grid) * grid + decimal.Decimal(str(low))
    moved_high = int(moved) if isinstance(high, int) else float(moved)
    warn(f"space key '{key}': step {step:g} does not divide high - low ({high:g} - {low:g}), so its grid stops at "
         f"{moved_high:g}, the last point up to high: the range searched is [{low:g}, {moved_high:g}]")
    return moved_high


def _parse_when(key: str, when: Any) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(f"space key '{key}': 'when' must map a categorical key to its value(s), e.g. "
                          f"{{strategy.optimizer.name: sgd}}; got {when!r}")
    return {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}


def _order(params: dict[str, Param]) -> tuple[Param, ...]:
    """Conditions first: depth-first over ``when``; a cycle is an error."""
    ordered: list[Param] = []
    state: dict[str, str] = {}

    def visit(param: Param) -> None:
        if state.get(param.key) == "done":
            return
        if state.get(param.key) == "visiting":
            raise ConfigError(f"space key '{param.key}': its 'when' conditions form a cycle")
        state[param.key] = "visiting"
        for condition in param.when:
            visit(params[condition])
        state[param.key] = "done"
        ordered.append(param)

    for param in params.values():
        visit(param)
    return tuple(ordered)


def parse_space(raw: Any) -> SearchSpace:
    """SPACE.yaml's mapping -> :class:`SearchSpace`; every malformed entry is one ConfigError line."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"the search space must be a non-empty mapping of config keys; got {raw!r}")
    params = {str(key): _parse_param(str(key), spec) for key, spec in raw.items()}
    for outer, param in params.items():
        for inner in (key for key in params if key.startswith(f"{outer}.")):
            _refuse_choice_under_key(param, params[inner])
    for param in params.values():
        for condition, allowed in param.when.items():
            target = params.get(condition)
            if target is None:
                # only a key with choices can be a condition: a range key is no did-you-mean
                others = [other for other, kept in params.items() if other != param.key and kept.kind == "categorical"]
                raise ConfigError(f"space key '{param.key}': 'when' names '{condition}', which is not a key of the "
                                  f"space{did_you_mean(condition, others)}; add it as a key with 'choices' "
                                  f"(keys: {', '.join(params)})")
            if target.kind != "categorical":
                raise ConfigError(f"space key '{param.key}': 'when' needs a key with 'choices'; "
                                  f"'{condition}' is a {target.kind} range")
            for value in allowed:
                if value not in target.choices:
                    raise ConfigError(f"space key '{param.key}': 'when' value {value!r} is not a choice of "
                                      f"'{condition}' (choices: {', '.join(map(str, target.choices))})")
    return SearchSpace(_order(params))


def _refuse_choice_under_key(section: Param, inner: Param) -> None:
    """Refuse a space whose key ``inner`` lies inside the key ``section`` (``strategy.optimizer.lr`` in
    ``strategy.optimizer``) where a choice of the section sets that key itself (:func:`choice_holds`): the
    section is set first and the key after it (:func:`apply_values`), so the trial trains with the key's value
    while trials.csv shows the choice's; and where a null choice leaves no section for the key (a trial that
    fails), unless a ``when:`` keeps the key off for it. Choices that leave the key out are refined by it."""
    rest = inner.key[len(section.key) + 1:].split(".")
    holding = [choice for choice in section.choices if choice_holds(choice, section.key.split(".")[-1], rest)]
    if holding:
        raise ConfigError(f"space keys '{section.key}' and '{inner.key}' both set {inner.key} (the choice "
                          f"{flow_yaml(holding[0])} holds it): each trial would train with the value of '{inner.key}', "
                          f"not the one its '{section.key}' choice holds, while trials.csv shows that choice; leave "
                          f"{'.'.join(rest)} out of the choices of '{section.key}', or '{inner.key}' out of the space")
    allowed = inner.when.get(section.key)
    if None in section.choices and (allowed is None or None in allowed):
        raise ConfigError(f"space key '{inner.key}' lies inside '{section.key}', one of whose choices is null (no "
                          f"{section.key}): those trials would have nothing for it to set; give '{inner.key}' "
                          f"when: {{{section.key}: [...]}} naming the other choices")


def choice_holds(choice: Any, name: str, rest: list[str]) -> bool:
    """Whether ``choice``, the value of a section named ``name``, holds the key ``rest`` (a dotted path below it):
    through mappings, list items by index or by name, and a component's one-word form (``huber`` is
    ``{name: huber}``, as ``--set`` reads it)."""
    node: Any = choice
    for part in rest:
        if isinstance(node, str):
            node = {SHORTHAND_KEYS.get(name, "name"): node}
        if isinstance(node, Mapping):
            if part not in node:
                return False
            node = node[part]
        elif isinstance(node, list):
            named = [item for item in node if isinstance(item, Mapping) and item.get("name") == part]
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif named:
                node = named[0]
            else:
                return False
        else:
            return False
        name = part
    return True


def load_space(path: str | Path) -> SearchSpace:
    """SPACE.yaml -> :class:`SearchSpace`; an empty or non-mapping file is refused as a space, not a config,
    and one that cannot be read (not found, a folder) as the ``--space`` file (``space`` from Python)."""
    example = "e.g. 'strategy.optimizer.lr: {low: 1.0e-4, high: 0.1, log: true}'"
    raw = load_yaml_file(path, "space file", file=f"{named('space')} file")
    if raw is None:
        raise ConfigError(f"space file {path} is empty; it maps config keys to a range or choices, {example}")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"space file {path} must map config keys to a range or choices, {example}; "
                          f"got a {type(raw).__name__}")
    return parse_space(raw)


# --------------------------------------------------------------------------- configs

def apply_values(base_raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the base config's mapping with ``values`` set through ``--set`` overrides, a section before
    the keys inside it (``strategy.optimizer``'s choice, then ``strategy.optimizer.lr``), whatever the space's
    order: a section set after would drop the key."""
    ordered = sorted(values.items(), key=lambda item: item[0].count("."))  # stable: keys of one depth as given
    overrides = [f"{key}={flow_yaml(value)}" for key, value in ordered]
    return apply_overrides(copy.deepcopy(base_raw), overrides)


def check_point(base_raw: dict[str, Any], values: dict[str, Any]) -> None:
    """ConfigError unless the base config with ``values`` set passes the schema and :func:`check_components`."""
    check_components(validate(apply_values(base_raw, values)))


def _extreme_points(space: SearchSpace) -> Iterator[tuple[tuple[str, ...], dict[str, Any] | None]]:
    """``(searched keys, point)``: each key at each extreme (None: its conditions conflict) and, for a float
    range, at a point between them that is no whole number (:meth:`Param.inside`), then each pair of keys
    at each pair of extremes (with the conditions that switch them on; pairs that their conditions never
    let meet are skipped)."""
    for param in space.params:
        for value in [*param.extremes(), *param.inside()]:
            yield (param.key,), space.point({param.key: value})
    for first, second in itertools.combinations(space.params, 2):
        for a, b in itertools.product(first.extremes(), second.extremes()):
            point = space.point({first.key: a, second.key: b})
            if point is not None:
                yield (first.key, second.key), point


def _passes(base_raw: dict[str, Any], values: dict[str, Any] | None) -> bool:
    """Whether ``values`` is a point of the space (not None) that :func:`check_point` accepts."""
    if values is None:
        return False
    try:
        check_point(base_raw, values)
    except ConfigError:
        return False
    return True


def _when_hint(space: SearchSpace, base_raw: dict[str, Any], keys: tuple[str, ...]) -> str:
    """A ``when:`` that would keep a refused key away from the values it cannot take, if one exists:
    the choices of a categorical key (for a pair: the other one, the later key conditioned on the
    earlier first) under which every extreme of the key passes."""
    by_key = {p.key: p for p in space.params}
    for key in reversed(keys):
        others = [k for k in keys if k != key] or [p.key for p in space.params if p.key != key]
        for condition in [by_key[k] for k in others if by_key[k].kind == "categorical"]:
            works = [choice for choice in condition.choices
                     if all(_passes(base_raw, space.point({condition.key: choice, key: value}))
                            for value in by_key[key].extremes())]
            if 0 < len(works) < len(condition.choices):
                return (f"; search '{key}' only where it works: when: {{{condition.key}: "
                        f"{flow_yaml(works)}}}")
    return "; make one of them conditional (when:) so they are never sampled together" if len(keys) > 1 else ""


def check_space(space: SearchSpace, base_raw: dict[str, Any]) -> None:
    """Fail before any trial if the base config is refused by the config schema or a component factory
    with any searched key at one of its extremes, or any two searched keys at a pair of their extremes
    (the conditions that switch them on set too). The error names the key or the two keys and, where
    one exists, the ``when:`` condition that would avoid the refused values."""
    check_components(validate(copy.deepcopy(base_raw)))
    for keys, point in _extreme_points(space):
        if point is None:  # a single key whose conditions ask for values no key can hold at once
            raise ConfigError(f"space key '{keys[0]}' can never be sampled: the conditions that switch it on "
                              f"(its when: and theirs) allow no common value")
        try:
            check_point(base_raw, point)
        except ConfigError as exc:
            shown = ", ".join(f"{k}={flow_yaml(v)}" for k, v in point.items())
            where = f"space key '{keys[0]}'" if len(keys) == 1 else f"space keys '{keys[0]}' and '{keys[1]}'"
            hint = _int_hint(point, keys, str(exc)) or _list_hint(point, keys, str(exc)) \
                or _when_hint(space, base_raw, keys)
            raise ConfigError(f"{where}: the config refuses {shown}: {exc}{hint}") from None


def _list_hint(point: dict[str, Any], keys: tuple[str, ...], refusal: str) -> str:
    """For a single key searched as a number range and refused because the option takes a list (mlp's
    ``hidden``, the option type check's ``must be a list``): the advice to search lists as choices; else ""."""
    value = point[keys[0]]
    if len(keys) > 1 or isinstance(value, bool) or not isinstance(value, int | float) or "must be a list" not in refusal:
        return ""
    return f"; '{keys[0]}' takes a list: search lists as its choices ({keys[0]}: {{choices: [<a list>, <another>]}})"


def _int_hint(point: dict[str, Any], keys: tuple[str, ...], refusal: str) -> str:
    """For a single float key refused *because* it is not an int (a fraction; or a whole float such as 8.0, which
    ``strategy.batch_size``'s own validator refuses too): the advice to search whole numbers; else "". The
    cause is read from the refusal, which names the key (its last part: ``epochs``, ``option 'T_mult'``) and says it must be a whole number (:data:`FRACTION_REFUSALS`).
    A refusal for another reason (Adam's ``weight_decay=0.01``, which has no home in the optimizer) gets no
    such advice, even where the value rounded (0) would pass."""
    value = point[keys[0]]
    if len(keys) > 1 or not isinstance(value, float):
        return ""
    names_key = keys[0].rsplit(".", 1)[-1] in refusal
    if not names_key or not any(wording in refusal for wording in FRACTION_REFUSALS):
        return ""
    return (f"; '{keys[0]}' takes whole numbers: search it as an int range (integer low and high, without "
            "type: float)")
