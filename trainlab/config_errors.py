"""How a pydantic ValidationError of the run config becomes one ConfigError line.

:func:`one_line` words the first of the error's problems, naming the key by its dotted place in the config as
written (:func:`location`; pydantic's union-branch names such as ``int`` or ``InitConfig`` are left out):

- an unknown key: ``unknown config key 'runtime.devise'; did you mean 'device'? (valid: ...)``, the
  valid keys being the fields of the section it sits in; a key that sits elsewhere in the config is named
  by its place (``epochs``: ``did you mean 'strategy.epochs'?``, ``strategy.lr``: 'strategy.optimizer.lr'),
  and another framework's name by trainlab's (``max_epochs``: 'epochs', :data:`~trainlab.name_aliases.KEY_NAMES`;
  ``save_steps``: 'output.checkpoint.every_n_steps', and what its values mean where they differ:
  ``evaluation_strategy`` takes 'steps' or 'epoch', :data:`~trainlab.name_aliases.KEY_PLACES`);
  :func:`_unknown_key_hint` states the order;
- a missing key: ``config key 'model.name' is required``, plus ``; 'model.naem' is given: did you mean
  'model.name'?`` when the section holds a key close to it;
- any other: ``config key 'runtime.device': <pydantic's or the validator's message>; got 'gpu'; did you mean
  'cuda'?``. A number an integer key cannot take is worded as the config's own checks word it
  (``strategy.epochs: 2.5``: ``must be a whole number; got 2.5``; :data:`NUMBER_WORDING`). The message is cut
  to 300 characters; the ``got`` part is left out when the message already says what it got or the value is
  a section; the did-you-mean names the closest choice of a ``Literal``
  (:data:`CHOICE_SYNONYMS` maps PyTorch's and Lightning's spellings onto trainlab's). A ``torch.nn.Module``
  given as a value adds where a model object goes instead;
- a section given no mapping: ``config key 'strategy.early_stopping': must be a mapping of its options (e.g.
  {patience: 10}, or {} for the defaults); got 5`` (:func:`_mapping_wanted`), not pydantic's "valid
  dictionary or instance of EarlyStoppingConfig", whose class the config never names.

The config's loader (:func:`trainlab.config.validate`) raises the line; this module does not import it.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from trainlab.config_fields import Named, short_repr
from trainlab.name_aliases import KEY_MEANINGS, KEY_NAMES, KEY_PLACES, trainlab_name
from trainlab.registry import did_you_mean, section_registry
from trainlab.yaml_files import bool_words, flow_yaml


def location(loc: tuple[Any, ...], raw: Any = None) -> str:
    """The dotted config key of a pydantic error location. Pydantic puts union-branch names into locs
    ("int", "literal['full']", "InitConfig" of ``InitConfig | list[InitConfig]``): with ``raw``, the config as
    given, a part that is no key at its place in ``raw`` is such a name and is dropped (but the last, which may
    be a missing key); without it, those holding "[" and the plain type names."""
    parts: list[str] = []
    node = raw
    for index, part in enumerate(loc):
        if isinstance(part, str) and ("[" in part or part in {"int", "float", "str"}):
            continue
        missing_key = index == len(loc) - 1 and isinstance(node, dict)  # a required key is named though absent
        if raw is not None and isinstance(part, str) and part[:1].isupper() and not missing_key \
                and not (isinstance(node, dict) and part in node):  # a model class's name, not a config key
            continue
        parts.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return ".".join(parts)


def _section_at(raw: Any, path: list[str]) -> Any:
    """The value at dotted ``path`` in ``raw`` (list items by index), None where there is none."""
    for part in path:
        if isinstance(raw, dict):
            raw = raw.get(part)
        elif isinstance(raw, list) and part.isdigit() and int(part) < len(raw):
            raw = raw[int(part)]
        else:
            return None
    return raw


def _misspelt_key(raw: Any, where: str) -> str:
    """For a missing required key ``where``: "; 'model.naem' is given: did you mean 'model.name'?" when its
    section holds a key close to it (a section that takes options, like ``model``, accepts the typo as one);
    "" otherwise. The one-word form (``loss: mse``) stays the same. (A top-level section spelt ``stratgy``
    read "did you mean 'strategy' (the section has 'stratgy')": no section had it.)"""
    path = where.split(".")
    section = _section_at(raw, path[:-1])
    if not isinstance(section, dict):
        return ""
    for key in section:
        if isinstance(key, str) and key != path[-1] and did_you_mean(key, [path[-1]]):
            return f"; '{'.'.join([*path[:-1], key])}' is given: did you mean '{where}'?"
    return ""


def _nameless_options(raw: Any, where: str) -> str:
    """For a component section given options but no ``name`` (``--set strategy.schedule.gama=0.9`` where the
    config has no schedule, read "config key 'strategy.schedule.name' is required" naming neither the key given
    nor a schedule): ``; the section holds gama, without the name of the schedule it is an option of (valid:
    ...)``; "" otherwise."""
    path = where.split(".")
    section = _section_at(raw, path[:-1])
    if path[-1] != "name" or not isinstance(section, dict) or not section:
        return ""
    registry = section_registry(".".join(path[:-1]))  # imports torch: an error path only
    if registry is None:
        return ""
    keys = [str(key) for key in section]
    they = "it is an option" if len(keys) == 1 else "they are options"
    return (f"; the section holds {', '.join(keys)}, without the name of the {registry.kind} {they} of "
            f"(valid: {', '.join(registry.names())})")


def _section_model(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The model of the section at ``path`` below ``model`` (``X`` of a field ``X | None``), or None."""
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    section = _section_model(model, path)
    return [] if section is None else list(section.model_fields)


def _list_of_sections(schema: type[BaseModel], path: list[str]) -> bool:
    """Whether the field at ``path`` is a list of sections (each item a mapping: ``strategy.optimizer.groups``),
    not of words (``metrics``), so that a mapping given in its place is one item that lost its list."""
    parent = _section_model(schema, path[:-1])
    field = None if parent is None else parent.model_fields.get(path[-1])
    pending = [] if field is None else [field.annotation]
    while pending:  # list[X] | None -> X: a model or a mapping
        annotation = pending.pop()
        if get_origin(annotation) is list:
            return any(get_origin(item) is dict or (isinstance(item, type) and issubclass(item, BaseModel | dict))
                       for item in get_args(annotation))
        pending.extend(get_args(annotation))
    return False


MAX_PLACES_NAMED = 3  # a key found at more places than this (``name``) says nothing of which was meant


def _unknown_key_hint(schema: type[BaseModel], raw: Any, path: list[str]) -> str:
    """The did-you-mean of the unknown key at ``path`` (its dotted parts), first found of:

    0. the place another framework's key is pointed to as a whole (``save_steps``:
       'output.checkpoint.every_n_steps', ``evaluation_strategy``: 'strategy.eval_every_n_steps' and what its
       values mean; :data:`~trainlab.name_aliases.KEY_PLACES`, :func:`_pointer_hint`);
    1. the key of its own section that another framework's name for it stands for (``strategy.max_epochs``:
       'epochs'; :data:`~trainlab.name_aliases.KEY_NAMES`);
    2. the other places in the config of a key of that name (``strategy.lr``: 'strategy.optimizer.lr';
       ``epochs``: 'strategy.epochs'; ``learning_rate``: 'strategy.optimizer.lr'), those in the key's own
       top section first, named only when at most :data:`MAX_PLACES_NAMED` are left
       (:func:`_places_named`); else an optimizer's option, which the schema does not hold
       (``momentum``: 'strategy.optimizer.momentum', saying which optimizers take it when the config's
       does not: :func:`_component_option`);
    3. a key of its own section close to it (``runtime.devise``: 'device'; :func:`did_you_mean`).

    Before 2, an option of the config's own model outside ``model`` (``strategy.dropout``: 'model.dropout',
    :func:`_model_option`): a model's options are not in the schema, and dropout is the model's.

    "" when none is found."""
    section, key = path[:-1], path[-1]
    valid = _fields_at(schema, section)
    pointer = _pointer_hint(raw, section, key)
    if pointer:
        return pointer
    wanted = trainlab_name(key, KEY_NAMES) or key
    if wanted != key and wanted in valid:
        return f"; did you mean '{wanted}'?"
    if section and section[0] != "model":
        model_option = _model_option(raw, wanted)
        if model_option:
            return model_option
    places = _places_named(schema, wanted, section)
    if places:
        shown = [f"'{place}'" for place in places]
        return f"; did you mean {' or '.join([', '.join(shown[:-1]), shown[-1]] if shown[:-1] else shown)}?"
    return _component_option(raw, wanted, "optimizer") or did_you_mean(key, valid)


def _pointer_hint(raw: Any, section: list[str], key: str) -> str:
    """For another framework's key listed in :data:`~trainlab.name_aliases.KEY_PLACES`: "; did you mean
    'PLACE'?", the place named from the key's own section (its last part where it sits there, as
    :func:`_unknown_key_hint`'s step 1 names it), with what the key's values mean besides trainlab's in
    parentheses where :data:`~trainlab.name_aliases.KEY_MEANINGS` says; a component's option
    ('strategy.schedule.warmup_fraction') worded by :func:`_component_option` (which components take it).
    "" for any other key."""
    place = trainlab_name(key, KEY_PLACES)
    if place is None:
        return ""
    *parent, name = place.split(".")
    if parent[:1] == ["strategy"] and parent[1:] in (["optimizer"], ["schedule"]):
        other = "optimizer" if parent[1] == "schedule" else "schedule"
        if _own_component_takes(raw, name, other):  # warmup_steps: schedule_free_adamw's own option
            return f"; did you mean 'strategy.{other}.{name}'?"
        return _component_option(raw, name, parent[1])
    shown = name if parent == section else place
    meaning = trainlab_name(key, KEY_MEANINGS)
    return f"; did you mean '{shown}'{f' ({meaning})' if meaning else ''}?"


def _places_named(schema: type[BaseModel], key: str, section: list[str]) -> list[str]:
    """The dotted places of the schema's keys named ``key`` (its case aside) outside ``section``: those under
    ``section``'s top part when there are any there, else all; none when more than :data:`MAX_PLACES_NAMED`."""
    found = [".".join(place) for place in _key_places(schema)
             if place[-1].casefold() == key.casefold() and list(place[:-1]) != section]
    near = [place for place in found if section and place.startswith(section[0] + ".")]
    found = near or found
    return found if len(found) <= MAX_PLACES_NAMED else []


@functools.cache
def _key_places(schema: type[BaseModel]) -> tuple[tuple[str, ...], ...]:
    """Every key of ``schema`` as its path of parts: its fields, then the fields of the sections they hold,
    at any depth (through ``X | None`` and other unions; not into a list's items, which a ``--set`` key
    reaches by index only)."""
    places: list[tuple[str, ...]] = []
    pending: list[tuple[tuple[str, ...], type[BaseModel]]] = [((), schema)]
    while pending:
        prefix, model = pending.pop(0)
        for name, field in model.model_fields.items():
            places.append((*prefix, name))
            annotation = field.annotation
            for candidate in (annotation, *get_args(annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel) and len(prefix) < 8:
                    pending.append(((*prefix, name), candidate))
    return tuple(places)


MAX_OPTIMIZERS_NAMED = 4  # of those that take an option the config's optimizer (schedule, model) does not


def _component_takers(key: str, component: str) -> list[str]:
    """The registered ``component`` s (``optimizer``, ``schedule``) that take option ``key``, shortest names first
    (the plain optimizer, sgd, before its variants, momentum_textbook, muon_conv)."""
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)
    from trainlab.optim import OPTIMIZERS
    from trainlab.schedules import SCHEDULES

    # the positional arguments each factory is called with: the parameters; total_steps, steps_per_epoch
    registry, skip = {"optimizer": (OPTIMIZERS, 1), "schedule": (SCHEDULES, 2)}[component]
    return sorted((name for name in registry.names() if registry.takes_option(name, key, skip=skip)),
                  key=lambda name: (len(name), name))


def _own_component(raw: Any, component: str) -> Any:
    """The name of the config's ``strategy.<component>`` (a string, or whatever else was written)."""
    spec = _section_at(raw, ["strategy", component])
    return spec.get("name") if isinstance(spec, dict) else spec


def _own_component_takes(raw: Any, key: str, component: str) -> bool:
    """Whether the config's own ``strategy.<component>`` is a registered one that takes option ``key``."""
    own = _own_component(raw, component)
    return isinstance(own, str) and own.lower() in _component_takers(key, component)


def _component_option(raw: Any, key: str, component: str) -> str:
    """For a key that is an option of registered ``component`` s, ``optimizer`` or ``schedule``
    (``momentum``, ``warmup_fraction``): "; did you mean 'strategy.optimizer.momentum'?" when the config's
    component takes it, else the same naming those that do ("..., an option of optimizers momentum, nesterov,
    rmsprop, sgd (not of adam)?"); "" when none does. No user code is imported to find out (a ``module:attr``
    component counts as taking none)."""
    takers = _component_takers(key, component)
    if not takers:
        return ""
    own = _own_component(raw, component)
    if isinstance(own, str) and own.lower() in takers:
        return f"; did you mean 'strategy.{component}.{key}'?"
    shown = ", ".join(takers[:MAX_OPTIMIZERS_NAMED]) + (", ..." if takers[MAX_OPTIMIZERS_NAMED:] else "")
    mine = f" (not of {own})" if isinstance(own, str) else ""
    return f"; did you mean 'strategy.{component}.{key}', an option of {component}s {shown}{mine}?"


def _model_option(raw: Any, key: str) -> str:
    """For a key that is an option of registered models (``dropout``, ``hidden``): "; did you mean
    'model.dropout'?" when the config's model takes it, else the same naming the models that do ("...,
    an option of models cnn2d, mlp, ... (not of linear)?"); "" when none does. No user code is imported (a
    ``module:attr`` model counts as taking none)."""
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
    from trainlab.models import MODELS

    takers = sorted((name for name in MODELS.names() if MODELS.takes_option(name, key, skip=2)),
                    key=lambda name: (len(name), name))
    if not takers:
        return ""
    spec = raw.get("model") if isinstance(raw, dict) else None
    own = spec.get("name") if isinstance(spec, dict) else spec
    if isinstance(own, str) and own in takers:
        return f"; did you mean 'model.{key}'?"
    shown = ", ".join(takers[:MAX_OPTIMIZERS_NAMED]) + (", ..." if takers[MAX_OPTIMIZERS_NAMED:] else "")
    mine = f" (not of {own})" if isinstance(own, str) else ""
    return f"; did you mean 'model.{key}', an option of models {shown}{mine}?"


def _is_torch_module(value: Any) -> bool:
    """Whether ``value`` is a ``torch.nn.Module``, without importing torch for the config's own checks."""
    nn = sys.modules.get("torch.nn")
    return nn is not None and isinstance(value, nn.Module)


# pydantic's words for a number an integer key cannot take, said as the config's own checks say it
# (trainlab.config_fields, a schedule's options: "must be a whole number; got 1.5"): int_from_float's
# "Input should be a valid integer, got a number with a fractional part" names no value (and holds "got",
# so one_line would add none), int_parsing_size's calls a YAML float such as 1e+19 an "input string"
NUMBER_WORDING = {"int_from_float": "must be a whole number",
                  "int_parsing_size": "must be an integer of magnitude below 2**63",
                  # "Input should be a valid boolean, unable to interpret input" lists no value it takes
                  "bool_parsing": "must be true or false", "bool_type": "must be true or false"}


def one_line(error: ValidationError, raw: dict[str, Any], schema: type[BaseModel]) -> str:
    """The first of ``error``'s problems as one line; ``raw``: the config as validated, ``schema``: its model
    (:class:`trainlab.config.Config`), whose fields an unknown key's did-you-mean is drawn from."""
    first = error.errors()[0]
    where = location(first["loc"], raw)
    if first["type"] == "extra_forbidden":
        path = where.split(".")
        valid = _fields_at(schema, path[:-1])
        return f"unknown config key '{where}'{_unknown_key_hint(schema, raw, path)} (valid: {', '.join(valid)})"
    if first["type"] == "missing":
        return f"config key '{where}' is required{_misspelt_key(raw, where) or _nameless_options(raw, where)}"
    message = NUMBER_WORDING.get(first["type"], first["msg"].removeprefix("Value error, "))
    if first["type"] == "model_type":  # "...or instance of EarlyStoppingConfig": a class the config never names
        message = _mapping_wanted(_model_named(schema, (first.get("ctx") or {}).get("class_name")))
    if len(message) > 300:
        message = message[:297] + "..."
    got = first.get("input")
    if first["type"] == "list_type" and isinstance(got, dict):
        line = f"config key '{where}' must be a list; got a mapping {short_repr(got)}"
        if not _list_of_sections(schema, where.split(".")):
            return line
        shown = flow_yaml(got)  # one item written without its list
        return (f"{line}: for one item, write it as a list of one, e.g. {where.rsplit('.', 1)[-1]}: "
                f"[{shown if len(shown) <= 80 else '{...}'}]")
    if _is_torch_module(got):
        message += (" (a config names each component by its registry name or 'module:attr', not an object; "
                    "a model object goes to trainlab.fit(model, train, strategy))")
    if isinstance(got, bool) and first["type"] == "string_type":  # `name: on` read as true by YAML 1.1
        return (f"config key '{where}': must be text; got the boolean {str(got).lower()}: YAML reads {bool_words(got)} "
                "unquoted so; quote the word")
    if isinstance(got, dict) or "got" in message:
        return f"config key '{where or 'config'}': {message}"
    return f"config key '{where or 'config'}': {message}; got {short_repr(got)}{_closest_choice(first)}"


def _model_named(schema: type[BaseModel], name: Any) -> type[BaseModel] | None:
    """The model class called ``name`` among those ``schema``'s fields hold, at any depth (None if none is)."""
    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [schema]
    while pending:
        annotation = pending.pop()
        pending.extend(get_args(annotation))  # X | None, list[X], Literal[...] (whose strings are no classes)
        if not isinstance(annotation, type) or not issubclass(annotation, BaseModel) or annotation in seen:
            continue
        if annotation.__name__ == name:
            return annotation
        seen.add(annotation)
        pending.extend(field.annotation for field in annotation.model_fields.values())
    return None


def _mapping_wanted(model: type[BaseModel] | None) -> str:
    """What a section takes, for a value that is no mapping (pydantic: "Input should be a valid dictionary or
    instance of EarlyStoppingConfig"), in the config's words: "must be a mapping of its options (e.g. {patience:
    10}, or {} for the defaults)". The example is the section's required keys (a ``Literal`` by its first
    choice), else its first option with a number for default (else with any plain default, else its first).
    A section that takes one word for its required choice (``weight_averaging: ema``) lists those words; a
    component (``loss``) says it takes its registered name."""
    if model is None:
        return "must be a mapping of its options"
    if issubclass(model, Named):
        return "must be a registered name, or a mapping of name and its options (e.g. {name: NAME, OPTION: VALUE})"
    fields = model.model_fields
    required = {key: field for key, field in fields.items() if field.is_required()}
    if required:
        shown = {key: (get_args(field.annotation) or ["..."])[0] if get_origin(field.annotation) is Literal
                 else "..." for key, field in required.items()}
        example = "{" + ", ".join(f"{key}: {value}" for key, value in shown.items()) + "}"
        words = _one_word_choices(model, required)
        start = f"must be one of {', '.join(repr(word) for word in words)} or" if words else "must be"
        return f"{start} a mapping of its options (e.g. {example})"
    plain = {key: field.default for key, field in fields.items() if isinstance(field.default, str | int | float)}
    numbers = [key for key, default in plain.items() if not isinstance(default, bool | str)]
    key = next(iter(numbers or plain or fields), None)
    value = flow_yaml(plain[key]) if key in plain else "..."
    example = f"{{{key}: {value}}}, or {{}} for the defaults" if key else "{} for the defaults"
    return f"must be a mapping of its options (e.g. {example})"


def _one_word_choices(model: type[BaseModel], required: dict[str, Any]) -> tuple[Any, ...]:
    """The choices of a section's one required ``Literal`` key when the section takes one of them as a single
    word (``weight_averaging: ema`` is ``{kind: ema}``); () otherwise."""
    if len(required) != 1:
        return ()
    field = next(iter(required.values()))
    choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
    try:
        model.model_validate(choices[0]) if choices else None
    except ValidationError:
        return ()
    return choices


# what users of PyTorch and Lightning write for a choice that trainlab names otherwise (device: gpu, cuda:0;
# precision: bfloat16, bf16-mixed, 16-mixed, float32)
CHOICE_SYNONYMS = {"gpu": "cuda", "bfloat16": "bf16", "bf16-mixed": "bf16", "bf16-true": "bf16", "float16": "fp16",
                   "half": "fp16", "16-mixed": "fp16", "16": "fp16", "float32": "fp32", "float": "fp32", "32": "fp32",
                   "32-true": "fp32"}


def _closest_choice(error: Any) -> str:
    """For a value outside a Literal's choices (``progress: of``, ``device: CPU``), "; did you mean 'off'?"
    naming the closest (case aside), or the choice a synonym stands for (``device: gpu`` -> 'cuda',
    :data:`CHOICE_SYNONYMS`; ``cuda:1`` -> 'cuda'); "" otherwise."""
    got = error.get("input")
    if isinstance(got, int) and not isinstance(got, bool):
        got = str(got)  # Lightning's precision=16
    if error["type"] != "literal_error" or not isinstance(got, str):
        return ""
    choices = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
    key = got.strip().lower()
    synonym = "cuda" if re.fullmatch(r"cuda:\d+", key) else CHOICE_SYNONYMS.get(key)
    if synonym in choices:
        return f"; did you mean '{synonym}'?"
    return did_you_mean(got, choices) or did_you_mean(got.lower(), choices)
