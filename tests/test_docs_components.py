"""docs/components.md against the registries: every registered schedule, model, data source and loss has its
section, listing exactly the options its factory takes, each with the default and a type that fit the
factory's signature; and every registered metric is named in docs/metrics.md.

A factory's options are its parameters after the positional arguments its caller supplies (what
``Registry.check_options`` reads with ``skip``): a schedule gets ``(total_steps, steps_per_epoch)``
(``schedules.build_schedule``), a model ``(input_shape, output_dim)`` (``models.build_model``), a data source
and a loss nothing. A documented default is a YAML value in backticks, read as a config would read it
(``null`` is None, ``[128, 64]`` the tuple ``(128, 64)``), or the word ``required``.
"""

from __future__ import annotations

import collections.abc
import inspect
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trainlab.data.builtins  # noqa: F401  (registers the built-in sources)
import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)
import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
from trainlab.data import DATA_SOURCES
from trainlab.losses import LOSSES
from trainlab.metrics import METRICS
from trainlab.models import MODELS
from trainlab.option_types import option_hints
from trainlab.registry import Registry
from trainlab.schedules import SCHEDULES
from trainlab.yaml_files import yaml_load

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE = DOCS / "components.md"

# page section -> (registry, the positional arguments its caller supplies before the options)
SECTIONS: dict[str, tuple[Registry, tuple[str, ...]]] = {
    "Schedules": (SCHEDULES, ("total_steps", "steps_per_epoch")),
    "Models": (MODELS, ("input_shape", "output_dim")),
    "Data sources": (DATA_SOURCES, ()),
    "Losses": (LOSSES, ()),
}
REQUIRED = "required"
PIPE = re.compile(r"(?<!\\)\|")  # a cell boundary; a pipe inside a cell is written \|


@dataclass(frozen=True)
class Row:
    """One option row of a component's table."""

    type: str
    default: str
    meaning: str


def parse(text: str) -> dict[str, dict[str, dict[str, Row]]]:
    """section -> component -> option -> row, from ``## Section`` / ``### `component` `` headings and the
    ``| option | type | default | what it does |`` tables under them. Raises AssertionError for a row that
    cannot be read, an option listed twice, or a table outside a component's heading."""
    page: dict[str, dict[str, dict[str, Row]]] = {}
    section: str | None = None
    component: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section, component = line[3:].strip(), None
            if section in SECTIONS:
                page[section] = {}
            continue
        if line.startswith("### ") and section in SECTIONS:
            heading = re.fullmatch(r"### `([^`]+)`", line.strip())
            assert heading, f"line {number}: a heading under '{section}' must be ### `name`: {line!r}"
            component = heading.group(1)
            assert component not in page[section], f"line {number}: '{component}' documented twice"
            page[section][component] = {}
            continue
        if section not in SECTIONS or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in PIPE.split(line.strip().strip("|"))]
        if cells[0] == "option" or set("".join(cells)) <= set("-: "):
            continue  # the header row and the separator row
        assert component is not None, f"line {number}: an option row outside a component's section: {line!r}"
        assert len(cells) == 4, f"line {number}: expected | option | type | default | what it does |: {line!r}"
        option = re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[0])
        assert option, f"line {number}: the option cell must be `name`: {cells[0]!r}"
        options = page[section][component]
        assert option.group(1) not in options, f"line {number}: option '{option.group(1)}' of {component} listed twice"
        options[option.group(1)] = Row(*cells[1:])
    return page


def options_of(factory: Any, supplied: tuple[str, ...]) -> dict[str, inspect.Parameter]:
    """The factory's options: its parameters after the ``supplied`` positional ones (``*args``/``**kwargs``
    are no option a config can name)."""
    parameters = list(inspect.signature(factory).parameters.values())
    given = tuple(p.name for p in parameters[:len(supplied)])
    assert given == supplied, f"{factory.__qualname__} takes {given} first, where its caller supplies {supplied}"
    return {p.name: p for p in parameters[len(supplied):]
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}


def same(documented: Any, default: Any) -> bool:
    """Equal values of the same kind (2 is not 2.0, false is not 0); a tuple default equals the list."""
    if isinstance(documented, list) and isinstance(default, list | tuple):
        return len(documented) == len(default) and all(same(a, b) for a, b in zip(documented, default, strict=True))
    return type(documented) is type(default) and documented == default


def kinds(hint: Any) -> set[str]:
    """The words the type cell must hold for an annotation: ``float | None`` -> {number, null}."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    simple = {bool: "bool", int: "integer", float: "number", str: "string", type(None): "null"}
    if hint in simple:
        return {simple[hint]}
    if origin is typing.Literal:
        return {simple[type(arg)] for arg in args}
    if origin in (typing.Union, types.UnionType):
        return set().union(*(kinds(arg) for arg in args))
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        return {"list"}
    if origin is collections.abc.Mapping or hint is collections.abc.Mapping:
        return {"mapping"}
    return set()


def drift(text: str) -> list[str]:
    """Every way the page ``text`` differs from the registries, one line each (none: the page is right)."""
    problems = []
    page = parse(text)
    for section, (registry, supplied) in SECTIONS.items():
        documented = page.get(section)
        if documented is None:
            problems.append(f"no '## {section}' section")
            continue
        problems += [f"{section}: '{name}' is documented but not registered" for name in documented
                     if name not in registry.names()]
        for name in registry.names():
            if name not in documented:
                problems.append(f"{section}: '{name}' is registered but not documented")
                continue
            factory = registry.get(name)
            options, rows, hints = options_of(factory, supplied), documented[name], option_hints(factory)
            problems += [f"{name}: documents option '{option}', which the factory does not take"
                         for option in rows if option not in options]
            for option, parameter in options.items():
                row = rows.get(option)
                if row is None:
                    problems.append(f"{name}: option '{option}' is not documented")
                    continue
                problems += _row_problems(f"{name}.{option}", row, parameter, hints.get(option))
    return problems


def _row_problems(where: str, row: Row, parameter: inspect.Parameter, hint: Any) -> list[str]:
    problems = []
    if parameter.default is inspect.Parameter.empty:
        if row.default != REQUIRED:
            problems.append(f"{where}: the factory has no default; the page says {row.default!r}, not '{REQUIRED}'")
    else:
        value = re.fullmatch(r"`([^`]*)`", row.default)
        if value is None:
            problems.append(f"{where}: default {row.default!r} is not one `value` (the factory's: "
                            f"{parameter.default!r})")
        elif not same(yaml_load(value.group(1)), parameter.default):
            problems.append(f"{where}: the page's default {row.default} reads as {yaml_load(value.group(1))!r}; "
                            f"the factory's is {parameter.default!r}")
    missing = sorted(word for word in kinds(hint) if word not in row.type)
    if missing or not row.type:
        problems.append(f"{where}: type {row.type!r} does not say {', '.join(missing) or 'anything'} "
                        f"(annotation {hint})")
    if not row.meaning:
        problems.append(f"{where}: says nothing of what it does")
    return problems


def test_every_component_option_is_documented_with_its_default():
    problems = drift(PAGE.read_text(encoding="utf-8"))
    assert not problems, "docs/components.md differs from the factories:\n" + "\n".join(problems)


def _drift_of_change(old: str, new: str) -> list[str]:
    """What :func:`drift` finds on a copy of the page with ``old`` replaced by ``new``, beyond what it finds on
    the page itself (so that this test tells only whether the check works)."""
    text = PAGE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"expected one {old!r} on the page"
    before = drift(text)
    return [problem for problem in drift(text.replace(old, new)) if problem not in before]


def test_the_check_finds_a_missing_option_a_wrong_default_an_extra_option_and_a_missing_component():
    """The comparison itself, on copies of the page that drifted: an option row deleted, a default changed,
    an option the factory does not take, a registered component without its section."""
    mlp_hidden = "| `hidden` | list of integers | `[128, 64]` |"
    row = next(line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith(mlp_hidden))
    assert _drift_of_change(row + "\n", "") == ["mlp: option 'hidden' is not documented"]
    assert _drift_of_change(mlp_hidden, "| `hidden` | list of integers | `[128, 32]` |") == [
        "mlp.hidden: the page's default `[128, 32]` reads as [128, 32]; the factory's is (128, 64)"]
    assert _drift_of_change("| `gamma` | number | `0.95` |", "| `gamma` | number | `0.9` |") == [
        "exponential.gamma: the page's default `0.9` reads as 0.9; the factory's is 0.95"]
    assert _drift_of_change("| `delta` | number | `1.0` |", "| `delta` | number | `1` |") == [
        "huber.delta: the page's default `1` reads as 1; the factory's is 1.0"]
    assert _drift_of_change("| `T_0` | integer | `10` |", "| `T_0` | number | `10` |") == [
        "cosine_restarts.T_0: type 'number' does not say integer (annotation <class 'int'>)"]
    assert _drift_of_change(row, row + "\n| `width` | integer | `3` | made up |") == [
        "mlp: documents option 'width', which the factory does not take"]
    assert _drift_of_change("### `nt_xent`", "### `nt_xent_typo`") == [
        "Losses: 'nt_xent_typo' is documented but not registered", "Losses: 'nt_xent' is registered but not documented"]
    assert _drift_of_change("| `path` | string | required | the CSV file |", "| `path` | string | `data.csv` | x |") == [
        "csv.path: the factory has no default; the page says '`data.csv`', not 'required'"]


def test_every_registered_metric_is_named_in_the_metrics_page_and_the_page_links_the_other_catalogs():
    metrics_page = (DOCS / "metrics.md").read_text(encoding="utf-8")
    assert [name for name in METRICS.names() if f"`{name}`" not in metrics_page] == []
    text = PAGE.read_text(encoding="utf-8")
    for page in ("optimizers.md", "initialization.md", "metrics.md", "data.md"):
        assert f"]({page})" in text and (DOCS / page).is_file(), page
