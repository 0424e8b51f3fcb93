"""STRATEGIES.yaml: named strategies and grids of overrides on a base config.

::

    strategies:                      # name -> {dotted config key: value}
      sgd:  {strategy.optimizer: {name: sgd, lr: 0.1}}
      adam: {strategy.optimizer: {name: adam, lr: 0.001}}
    grid:                            # cross product; each point named by its values
      strategy.optimizer.name: [sgd, adam]
      strategy.batch_size: [32, 256]

A key is the same dotted path ``--set`` takes; the value replaces what the base
config holds there (a mapping replaces the whole section, as ``--set`` does). Grid
points are named ``optimizer.name=sgd,batch_size=32`` (the last key part, or the last
two where the last is ``name``); values that would name points alike once a path's separators are
flattened (``data.path: [sets/a.csv, sets_a.csv]``) are told apart by ``~2`` (``path=sets_a.csv~2``:
:func:`_value_names`). Names that read alike (equal once Unicode-normalised and stripped of surrounding
spaces) or that are blank are refused (:func:`check_strategies`). Every strategy is validated against every base
config before any run: an unknown key, a value the schema or a component refuses,
a duplicate name, or a key the comparison sets itself (``seed``: seed k of --seeds;
``name``: ``<task>-<strategy>``) is one ConfigError; so is a name too long for its runs' names
(:func:`check_run_names`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.code_policy import CodePolicy, using_policy
from trainlab.config import Config, validate
from trainlab.config_fields import MAX_NAME_CHARS, short_repr
from trainlab.config_overrides import set_dotted
from trainlab.errors import ConfigError, DataError
from trainlab.option_types import YAML_TEXT_NUMBER
from trainlab.preflight import check_components
from trainlab.records import DataTasks
from trainlab.registry import did_you_mean
from trainlab.yaml_files import YAML_BOOLS, load_yaml_file

SECTIONS = ("strategies", "grid")
SHOWN_NAME_CHARS = 40  # a name too long to be a run's is shown by its start in the refusal
MAX_STRATEGIES = 1_000  # x seeds x tasks runs: beyond, a grid is a search (trainlab tune), not a comparison
SHAPE = "'strategies: {name: {config key: value}}' and/or 'grid: {config key: [values]}'"
# keys the comparison sets in every run itself, so a strategy's value would be silently replaced
SET_BY_COMPARE = {
    "seed": "each run's seed is k of --seeds (0..N-1, the same for every strategy, so runs pair); "
            "pass --seeds N, or data.split_seed to change the data split",
    "name": "each run is named <task>-<strategy>; the strategy's own name is its label",
}


MAX_NAME_BYTES = 255  # NAME_MAX of ext4, XFS, APFS, NTFS: the longest folder name, in bytes of UTF-8
NAME_RULE = ("a strategy name is the folder of its runs (runs/<task>/<strategy>/), so it must not be empty or "
             "blank, start with '.', or hold '/', '\\' or a control character (NUL, tab, newline), and is at most "
             f"{MAX_NAME_BYTES} bytes in UTF-8; any other character is kept as written (grid names such as "
             "'optimizer.name=sgd,batch_size=32' are valid)")


def folder_name_problem(name: str) -> str | None:
    """What keeps ``name`` from being a strategy's folder (:data:`NAME_RULE`), worded to follow the name
    (``is empty``, ``holds '/'``), or None where it can be one.

    Refused: what POSIX refuses in a file name ('/', NUL) or gives another meaning (``.`` and ``..``,
    a name over NAME_MAX bytes), a hidden folder (a leading '.'), the Windows separator '\\' (a folder
    copied there would split), control characters, which split a log line or a terminal row, and a
    name of only spaces, which a table shows as a blank cell. Spaces,
    quotes, '<' and '&' are valid folder names; the table, CSV and report show them as written.
    """
    if not name:
        return "is empty"
    if name.startswith("."):
        return "starts with '.'"
    separator = next((c for c in name if c in "/\\"), None)
    if separator:
        return f"holds '{separator}'"
    control = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if control is not None:
        return f"holds the control character {control!r}"
    if not name.strip():
        return "is blank (only spaces)"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes in UTF-8"
    return None


@dataclass(frozen=True)
class NamedStrategy:
    """One arm of a comparison: a name and its overrides ``{dotted key: value}``."""

    name: str
    overrides: dict[str, Any]


def apply_strategy(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each dotted key set to its value (``--set`` semantics)."""
    raw = copy.deepcopy(base)
    for dotted, value in overrides.items():
        set_dotted(raw, str(dotted).split("."), copy.deepcopy(value), f"key '{dotted}'")
    return raw


def _grid_label(key: str, keys: list[str]) -> str:
    parts = key.split(".")
    label = ".".join(parts[-2:]) if parts[-1] == "name" and len(parts) > 1 else parts[-1]
    clashes = [k for k in keys if k != key and _short(k) == _short(key)]
    return key if clashes else label


def _short(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[-2:]) if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _format_value(value: Any) -> str:
    """A grid value as it appears in its point's name: a path's separators as '_' (``data.path: [d/a.csv]``
    names ``path=d_a.csv``: a name is a folder, which '/' would nest)."""
    if isinstance(value, dict):
        return "-".join(f"{k}={_format_value(v)}" for k, v in value.items())
    return str(value).replace("/", "_").replace("\\", "_")


def _number(value: Any) -> float | None:
    """``value`` as the number a config key reads it as: a number (not a bool), or the exponent form YAML 1.1
    leaves a string (``1e-3``, which has no dot); None for anything else, quoted numerals included (``"01"`` and
    ``"1"`` may be two column names). ``[1e-3, 0.001]`` are one learning rate."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and YAML_TEXT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _value_names(key: str, values: list[Any], source: str) -> list[str]:
    """Each of grid key ``key``'s ``values`` as its points' names show it (:func:`_format_value`), no two
    alike (:func:`alike_key`). A value listed twice is refused (ConfigError naming it). Values that differ
    but read alike once flattened (``sets/a.csv`` and ``sets_a.csv``) are told apart by ``~2``, ``~3``:
    a value its name shows as written keeps the plain name, the others (in the file's order) take the
    first free suffix."""
    for index, value in enumerate(values):
        for earlier in values[:index]:
            alike = type(value) is type(earlier) and value == earlier
            if alike or _number(value) is not None and _number(value) == _number(earlier):
                spelt = "" if alike else f" (as {short_repr(earlier)} and {short_repr(value)})"
                raise ConfigError(f"{source}: grid key '{key}' lists {short_repr(value)} twice{spelt}; list each "
                                  "value once")
    texts = [_format_value(value) for value in values]
    as_written = [text == str(value) for text, value in zip(texts, values, strict=True)]
    names: list[str] = [""] * len(values)
    taken: set[str] = set()
    for index in sorted(range(len(values)), key=lambda i: not as_written[i]):  # stable: file order within each
        name, number = texts[index], 2
        while alike_key(name) in taken:
            name, number = f"{texts[index]}~{number}", number + 1
        names[index] = name
        taken.add(alike_key(name))
    return names


def grid_strategies(grid: dict[str, Any], source: str) -> list[NamedStrategy]:
    """The cross product of ``grid``'s value lists, in the file's key order; each point named by its keys'
    labels and its values' names (:func:`_value_names`)."""
    keys = list(grid)
    if not keys:
        return []
    for key in keys:
        values = grid[key]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid key '{key}' needs a non-empty list of values; got {values!r}")
    points = math.prod(len(grid[k]) for k in keys)
    if points > MAX_STRATEGIES:
        sizes = " x ".join(str(len(grid[k])) for k in keys)
        raise ConfigError(f"{source}: the grid makes {points:,} strategies ({sizes} values); a comparison runs at "
                          f"most {MAX_STRATEGIES:,} (each x its seeds): compare fewer values, or search the space "
                          "with 'trainlab tune'")
    named = {key: list(zip(grid[key], _value_names(key, grid[key], source), strict=True)) for key in keys}
    out = []
    for combination in itertools.product(*(named[k] for k in keys)):
        name = ",".join(f"{_grid_label(k, keys)}={shown}" for k, (_, shown) in zip(keys, combination, strict=True))
        out.append(NamedStrategy(name, {k: value for k, (value, _) in zip(keys, combination, strict=True)}))
    return out


def parse_strategies(raw: Any, source: str = "strategies file") -> list[NamedStrategy]:
    """Named strategies then grid points; checks the file's shape, name uniqueness and :data:`SET_BY_COMPARE`."""
    if raw is None:
        raise ConfigError(f"{source} is empty; a strategies file holds {SHAPE}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping with {SHAPE}; got {type(raw).__name__}")
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError(f"{source}: unknown section '{unknown[0]}'{did_you_mean(str(unknown[0]), list(SECTIONS))} "
                          f"(valid: {', '.join(SECTIONS)})")
    if not raw.get("strategies") and not raw.get("grid"):
        raise ConfigError(f"{source} defines no strategies: add 'strategies: {{name: {{key: value}}}}' or a 'grid'")
    named = raw.get("strategies") or {}
    if not isinstance(named, dict):
        raise ConfigError(f"{source}: 'strategies' must map names to overrides; got {type(named).__name__}")
    out: list[NamedStrategy] = []
    for name, overrides in named.items():
        if isinstance(name, bool) or name is None:  # YAML 1.1 read `no:` as false, `~:` as null: never a name
            words = "~ or null" if name is None else "{}, {} or {}".format(*YAML_BOOLS[name])
            raise ConfigError(f"{source}: a strategy is named {words}, which YAML reads as "
                              f"{'null' if name is None else str(name).lower()}, not as text: quote the name as you "
                              "wrote it (e.g. 'no': ...)")
        if overrides is None:
            overrides = {}  # the base config itself, under this name
        if not isinstance(overrides, dict):
            raise ConfigError(f"{source}: strategy '{name}' must map config keys to values; got {overrides!r}")
        out.append(NamedStrategy(str(name), dict(overrides)))
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{source}: 'grid' must map config keys to lists of values; got {type(grid).__name__}")
    points = grid_strategies(grid, source)
    named_by_key = {alike_key(strategy.name): strategy.name for strategy in out}
    for point in points:
        if alike_key(point.name) in named_by_key:
            named = named_by_key[alike_key(point.name)]
            spelled = "" if named == point.name else f" {_spelled(named)}"
            raise ConfigError(f"{source}: duplicate strategy name {_spelled(point.name)}: a strategy{spelled} is "
                              "named as a grid point (grid points are named by their values); rename that strategy")
    check_strategies(out + points, source)
    return out + points


def alike_key(name: str) -> str:
    """What two strategy names that read alike share: the name in Unicode NFC (``café`` typed as one
    character or as ``e`` and a combining accent), without surrounding whitespace (``adam`` and
    ``"adam "``). Names alike show as one in a table, and NFC-equal ones share a folder on APFS."""
    return unicodedata.normalize("NFC", name).strip()


def _spelled(name: str) -> str:
    """``name`` quoted, and where its quoted form shows characters that are not ASCII, its code points too
    (``'café' ('cafe\\u0301')``): two spellings that read alike are told apart."""
    shown, escaped = repr(name), ascii(name)
    return shown if shown == escaped else f"{shown} ({escaped})"


def check_strategies(strategies: list[NamedStrategy], source: str) -> None:
    """Their number, unique names that can be folder names (:func:`folder_name_problem`) and do not read
    alike (:func:`alike_key`), and no key of :data:`SET_BY_COMPARE`."""
    if len(strategies) > MAX_STRATEGIES:
        raise ConfigError(f"{source} defines {len(strategies):,} strategies; a comparison runs at most "
                          f"{MAX_STRATEGIES:,}")
    seen: dict[str, str] = {}  # alike_key -> the name as first written
    for strategy in strategies:
        earlier = seen.get(alike_key(strategy.name))
        if earlier == strategy.name:
            raise ConfigError(f"{source}: duplicate strategy name '{strategy.name}'; give each strategy its own name")
        problem = folder_name_problem(strategy.name)
        if problem:
            shown = short_repr(strategy.name) if strategy.name.strip() else ascii(strategy.name)  # each space
            raise ConfigError(f"{source}: strategy name {shown} {problem}; {NAME_RULE}")
        if earlier is not None:
            raise ConfigError(f"{source}: strategy names {_spelled(earlier)} and {_spelled(strategy.name)} read "
                              "alike (equal once Unicode-normalised to NFC and stripped of surrounding spaces), so "
                              "tables could not tell them apart; rename one")
        for key in strategy.overrides:
            if key in SET_BY_COMPARE:
                raise ConfigError(f"{source}: strategy '{strategy.name}' sets '{key}', which compare sets for "
                                  f"every run: {SET_BY_COMPARE[key]}")
        seen[alike_key(strategy.name)] = strategy.name


def check_run_names(tasks: list[str], strategies: list[NamedStrategy]) -> None:
    """Each run's name, ``<task>-<strategy>`` (:data:`SET_BY_COMPARE`), within a config's
    :data:`~trainlab.config_fields.MAX_NAME_CHARS`: else one ConfigError naming the strategy (its first
    :data:`SHOWN_NAME_CHARS` characters), its length and the most the longest task leaves it, before any
    run, not the config's own refusal of a ``name`` the user never wrote."""
    longest = max(tasks, key=len)
    room = MAX_NAME_CHARS - len(longest) - 1
    for strategy in strategies:
        if len(strategy.name) > room:
            shown = strategy.name[:SHOWN_NAME_CHARS] + ("..." if len(strategy.name) > SHOWN_NAME_CHARS else "")
            limit = (f"at most {room} with task '{longest}'" if room > 0
                     else f"task '{longest}' leaves no room: give its config file a shorter name")
            raise ConfigError(f"strategy '{shown}': name too long ({len(strategy.name)} characters); {limit} "
                              f"(each run is named <task>-<strategy>, at most {MAX_NAME_CHARS} characters)")


def as_strategies(value: Any) -> list[NamedStrategy]:
    """``compare``'s ``strategies`` argument as a list: a list (or tuple) of :class:`NamedStrategy`, or a
    mapping, either a strategies file's content (``{"strategies": {...}, "grid": {...}}``, as
    :func:`parse_strategies` reads it) or its ``strategies`` section (``{name: {config key: value}}``).
    Anything else is one ConfigError naming what is valid."""
    valid = ("a list of NamedStrategy(name, {config key: value}), or a mapping {name: {config key: value}} "
             "(a strategies file's content works too)")
    if isinstance(value, Mapping):
        raw = dict(value) if value and set(value) <= set(SECTIONS) else {"strategies": dict(value)}
        return parse_strategies(raw, "strategies")
    if not isinstance(value, list | tuple) or not value:
        got = "an empty list" if isinstance(value, list | tuple) else f"{type(value).__name__} {short_repr(value)}"
        raise ConfigError(f"strategies must be {valid}; got {got}")
    for item in value:
        if not isinstance(item, NamedStrategy) or not isinstance(item.name, str) or not isinstance(
                item.overrides, Mapping):
            raise ConfigError(f"strategies must be {valid}; got an item {short_repr(item)} "
                              f"({type(item).__name__})")
    strategies = [NamedStrategy(item.name, dict(item.overrides)) for item in value]
    check_strategies(strategies, "strategies")
    return strategies


def load_strategies(path: str | Path, file: str = "strategies file") -> list[NamedStrategy]:
    """The strategies of a STRATEGIES.yaml file (:func:`parse_strategies`); ConfigError (one line) otherwise:
    a missing, unreadable, oversized or malformed file, a duplicate key (YAML would keep the last),
    an empty file or one that is not a mapping (described as a strategies file). ``file`` names the file
    where it cannot be read (``--strategies file not found: s.yaml``)."""
    return parse_strategies(load_yaml_file(path, "strategies file", file=file), str(path))


def _fails_alike(base: dict[str, Any], message: str) -> bool:
    """Whether ``base`` alone is refused with ``message``: then a strategy only inherited the fault."""
    try:
        check_components(validate(copy.deepcopy(base)))
    except ConfigError as exc:
        return str(exc) == message
    return False


def _loss_name(raw: dict[str, Any]) -> Any:
    """The loss a raw config names (``strategy.loss`` as a name or ``{name: ...}``), before validation."""
    loss = (raw.get("strategy") or {}).get("loss") if isinstance(raw.get("strategy"), dict) else None
    return loss.get("name") if isinstance(loss, dict) else loss


def _check_loss_fits_task(config: Config, tasks: DataTasks) -> None:
    """A strategy that swaps the base's loss for another must suit the task of the data (``mse`` on a
    classification set fails every run); the data is read for its task, once per data section, when
    ``data.task`` does not say it."""
    from trainlab.losses import build_loss

    loss = build_loss(config.strategy.loss.spec())
    if hasattr(loss, "output_dims"):  # multitask: its heads are checked by the run
        return
    try:
        task = tasks(config)
    except (DataError, ConfigError, OSError):
        return  # the data itself is the problem: every run reports it
    try:
        loss.output_dim(task, None, 1)
    except DataError as exc:
        raise ConfigError(str(exc).strip().splitlines()[0]) from None


def validate_strategies(bases: dict[str, dict[str, Any]], strategies: list[NamedStrategy],
                        policies: Mapping[str, CodePolicy] | None = None) -> dict[tuple[str, str], Config]:
    """Every strategy on every base must give a valid config; else one ConfigError naming both.

    ``policies``: each task's code policy (its ``module:attr`` code from its own config's folder,
    :func:`trainlab.code_policy.own_folder_policy`); None: the one in force for all.
    Returns the validated configs by ``(task, strategy name)``.
    """
    configs = {}
    shared = DataTasks()
    for task, base in bases.items():
        base_loss = _loss_name(base)
        # a task of its own policy reads its data apart: 'mydata:load' may be another file in another folder
        tasks = shared if policies is None else DataTasks()
        with contextlib.nullcontext() if policies is None else using_policy(policies[task]):
            for strategy in strategies:
                try:
                    config = validate(apply_strategy(base, strategy.overrides))
                    check_components(config)
                    if config.strategy.loss.name not in (base_loss, "auto"):
                        _check_loss_fits_task(config, tasks)
                except ConfigError as exc:
                    where = f"strategy '{strategy.name}'" + (f" on task '{task}'" if len(bases) > 1 else "")
                    if _fails_alike(base, str(exc)):  # the base itself (or a --set on it), not the strategy
                        where = f"the base config of task '{task}' (with any --set)"
                    raise ConfigError(f"{where}: {exc}") from None
                configs[task, strategy.name] = config
    return configs
