"""Reading YAML files safely: bounded, duplicate keys refused, alias bombs and deep nesting refused.

Config files, ``tune`` search spaces and ``compare`` strategies files are all read through
:func:`load_yaml_file`: a regular file of at most ``MAX_CONFIG_BYTES``, parsed by a SafeLoader
that refuses a repeated key (YAML keeps the last one silently), its tree checked by
:func:`check_tree`, and YAML aliases unshared so that ``--set`` changes one place. Every
failure is one :class:`~trainlab.errors.ConfigError` line; what the top level must hold is the
caller's to say.
"""

from __future__ import annotations

import errno
import math
import re
from pathlib import Path
from typing import Any

import yaml

from trainlab.bounded_read import FileTooLargeError, LinkError, NotRegularFileError, read_regular_file
from trainlab.config_fields import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES, underflow_problem
from trainlab.errors import ConfigError
from trainlab.shell_command import utf8_conversion

# what PyYAML reads as true or false unquoted (its YAML 1.1 words; not y/n)
YAML_BOOLS = {True: ("yes", "true", "on"), False: ("no", "false", "off")}


def bool_words(flag: bool) -> str:
    """``on, yes and true`` (True) or ``off, no and false`` (False): the words YAML 1.1 reads as ``flag``, for a
    message saying why a name or text came out a boolean."""
    first, second, third = YAML_BOOLS[flag]
    return f"{third}, {first} and {second}"


class RefusedYAMLError(yaml.constructor.ConstructorError):
    """YAML that parses but that a config refuses: two keys of one mapping that construct equal, a number
    with a leading zero, a nonzero number that reads as 0.0; ``problem`` says which and where."""


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# Decimal numbers only. PyYAML follows YAML 1.1, which also reads 010 as octal 8, 0b101 as 5, 1:30 as 90
# (base 60) and 1_0 as 10: those are refused (010) or text here. Floats keep YAML 1.1's form (a dot, and a
# signed exponent): 1e-3 stays the string '1e-3', as PyYAML and every trainlab before it read it, because a
# run's config hash covers component options as written (optimizer eps: 1e-8 hashed as '1e-8'); read as
# a float, every such run folder would read as changed after training. The schema's Float fields read
# such strings as numbers (trainlab.config_fields.Float), and components' options as their type says.
_DECIMAL_INT = re.compile(r"^[-+]?[0-9]+$")
_DECIMAL_FLOAT = re.compile(r"^(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?|\.[0-9]+(?:[eE][-+][0-9]+)?"
                            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def _number_problem(node: yaml.Node) -> str | None:
    """Why a scalar the loader reads as a number is refused (``010``: octal in YAML 1.1, decimal in 1.2;
    ``1.0e-400``: a nonzero number that reads as 0.0); None when it is not."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    text = node.value
    if node.tag == _INT_TAG and not _DECIMAL_INT.match(text):  # !!int 0x1f
        return f"{text} is not a decimal integer"
    if node.tag == _INT_TAG:
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            decimal = int(text, 10)
            octal = int(text, 8) if set(digits) <= set("01234567") else decimal
            also = f" or {octal} (octal, as YAML 1.1 reads it)" if octal != decimal else ""
            return f"{text} has a leading zero; write {decimal}{also}"
    if node.tag == _FLOAT_TAG and _DECIMAL_FLOAT.match(text) and "n" not in text.lower():  # not .inf, .nan
        return underflow_problem(text)
    return None


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML silently keeps the last one) and reads numbers as
    decimals (:data:`_DECIMAL_INT`, :data:`_DECIMAL_FLOAT`: YAML 1.1's floats), refusing :func:`_number_problem`'s."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        problem = _number_problem(node)
        if problem:
            raise RefusedYAMLError(None, None, problem, node.start_mark)
        return int(node.value)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        problem = _number_problem(node)
        if problem:
            raise RefusedYAMLError(None, None, problem, node.start_mark)
        return super().construct_yaml_float(node)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # checked here, on the node's keys as written: SafeLoader flattens a mapping before constructing it
        # (and a mapping merged with `<<:` as part of the one that merges it), rewriting node.value to hold
        # the merged keys, which an explicit key may override
        checked = self.__dict__.setdefault("_checked_nodes", set())
        if id(node) not in checked:
            checked.add(id(node))
            self._refuse_duplicates(node)
        super().flatten_mapping(node)

    def _refuse_duplicates(self, node: yaml.MappingNode) -> None:
        """A ConstructorError at the second of two keys that construct equal (``lr`` twice on one line of a
        flow mapping, ``yes`` and ``true``); the message names the line of the first."""
        first_seen: dict[Any, tuple[str, int]] = {}  # key -> (as written, line)
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            written = str(key_node.value if isinstance(key_node, yaml.ScalarNode) else key)[:60]
            try:
                first = first_seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            problem = _number_problem(value_node)
            if problem:  # checked here, where the key is known, to name it
                raise RefusedYAMLError(None, None, f"{written}: {problem}", value_node.start_mark)
            if first is not None:
                same = "" if first[0] == written else f", read as the same key {key!r} as '{first[0]}'"
                raise RefusedYAMLError(
                    None, None, f"duplicate key '{written}' (first at line {first[1]}{same})", key_node.start_mark)
            first_seen[key] = (written, key_node.start_mark.line + 1)


# int first: a float's pattern also matches 10
for _tag, _pattern in ((_INT_TAG, _DECIMAL_INT), (_FLOAT_TAG, _DECIMAL_FLOAT)):
    _ConfigLoader.add_implicit_resolver(_tag, _pattern, list("-+0123456789."))
_ConfigLoader.add_constructor(_INT_TAG, _ConfigLoader.construct_yaml_int)
_ConfigLoader.add_constructor(_FLOAT_TAG, _ConfigLoader.construct_yaml_float)


class _ConfigDumper(yaml.SafeDumper):
    """SafeDumper that quotes a string which either YAML 1.1 or :class:`_ConfigLoader` reads as a number, so
    that what it writes reads back as written by both (the loader's numbers are a subset of YAML 1.1's today;
    the dumper keeps the pair in step if they part)."""


for _tag, _pattern in ((_INT_TAG, _DECIMAL_INT), (_FLOAT_TAG, _DECIMAL_FLOAT)):
    _ConfigDumper.add_implicit_resolver(_tag, _pattern, list("-+0123456789."))


def yaml_dump(data: Any, **options: Any) -> str:
    """``yaml.safe_dump(data, **options)``, quoting what :func:`yaml_load` would read as another type."""
    return yaml.dump(data, Dumper=_ConfigDumper, **options)


def flow_yaml(value: Any) -> str:
    """``value`` as one line of flow YAML that :func:`yaml_load` reads back as the same value (``--set`` text,
    a printed parameter set): the string '09' stays quoted, a scalar loses YAML's ``...`` document end."""
    return yaml_dump(value, default_flow_style=True, width=1 << 20).removesuffix("\n...\n").strip()


def yaml_load(text: str) -> Any:
    """YAML text -> Python values, as ``yaml.safe_load`` but refusing duplicate keys and reading only decimal
    numbers (:class:`_ConfigLoader`: 010 refused, 0x10 text); floats and yes/no/on/off as in YAML 1.1."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass


def check_tree(raw: Any, origin: str = "config", where: str = "", keys: str = "config key") -> None:
    """Refuse before validation what would blow up later: alias bombs, deep nesting, non-finite floats.

    The size counts every value with YAML aliases expanded (a shared list counts once per use), memoised
    per object, so a billion-laughs file is measured in time linear in its text, not in its expansion.
    ``keys`` names a non-finite value's key (``config key 'strategy.optimizer.lr'``; a space file's own).
    """
    sizes: dict[int, int] = {}

    def size(node: Any, path: str, depth: int) -> int:
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{origin} is nested deeper than {MAX_CONFIG_DEPTH} levels at '{path}'")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"{keys} '{path or 'config'}': must be a finite number; got {node}")
        if not isinstance(node, dict | list):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_CONFIG_NODES + 1  # a cycle (a self-referencing alias) is unbounded
        items = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1
        for key, child in items:
            total += size(child, f"{path}.{key}" if path else str(key), depth + 1)
            if total > MAX_CONFIG_NODES:
                break
        sizes[id(node)] = total
        if total > MAX_CONFIG_NODES:
            raise ConfigError(f"{origin} expands to more than {MAX_CONFIG_NODES:,} values at '{path or 'config'}' "
                              "(YAML aliases repeated many times?); a config is a few hundred values")
        return total

    size(raw, where, 0)


def _unshare(node: Any) -> Any:
    """A copy in which no two places share a dict or list (a YAML alias), so --set changes one place."""
    if isinstance(node, dict):
        return {key: _unshare(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_unshare(value) for value in node]
    return node


def _read_bounded(path: Path, follow_links: bool = True, file: str = "config file") -> str:
    """The file's text, refusing non-regular files (/dev/zero, FIFOs), files over MAX_CONFIG_BYTES and,
    unless ``follow_links``, symbolic links; ``file`` names it in each refusal (``--space file``)."""
    try:
        data = read_regular_file(path, MAX_CONFIG_BYTES, follow_links)
    except FileNotFoundError:
        raise ConfigError(f"{file} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{file} {path} is a folder, not a file") from None
    except LinkError as exc:
        raise ConfigError(f"{file} {exc}; a run folder's config.yaml is the file its run wrote") from None
    except NotRegularFileError:
        raise ConfigError(f"{file} {path} is not a regular file") from None
    except FileTooLargeError:
        raise ConfigError(f"{file} {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a few "
                          "hundred lines") from None
    except OSError as exc:
        fix = "; make it readable to this user" if exc.errno in (errno.EACCES, errno.EPERM) else ""
        raise ConfigError(f"cannot read {file} {path}: {exc.strerror or exc}{fix}") from None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:  # a Latin-1 export (é: 0xe9): its line and how to convert it, as a CSV's
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ConfigError(f"{file} {path} is saved as UTF-16: save it as UTF-8") from None
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{file} {path} is not UTF-8 (line {line} has the byte 0x{data[exc.start]:02x}): "
                          f"{utf8_conversion(path)}") from None


def load_yaml_file(path: str | Path, what: str = "config", follow_links: bool = True,
                   file: str = "config file") -> Any:
    """A YAML file's top level, whatever it is (None when empty): read bounded (:func:`_read_bounded`; a
    symbolic link refused unless ``follow_links``: pass False for a run folder's config.yaml), parsed
    refusing duplicate keys, checked by :func:`check_tree` as ``what``; one ConfigError line otherwise
    (also for an integer of more digits than Python converts, 4,300). ``file`` names the file where it
    cannot be read (not found, a folder...): a command's other file says which argument gave it
    (``--space file not found: nope.yaml``), not the words of a missing base config."""
    path = Path(path)
    text = _read_bounded(path, follow_links, file)
    try:
        raw = yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if "another document" in problem:  # a second document after a '---' line
            kind = what.removesuffix(" file")  # "strategies file" is a what too
            problem += (f": a {kind} file holds one YAML document; remove the '---' line and what follows it, or "
                        "put it in a file of its own")
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to read") from None
    except ValueError as exc:  # PyYAML's int() of a number over sys.get_int_max_str_digits() digits
        raise ConfigError(f"malformed YAML in {path}: {str(exc).splitlines()[0][:200]}") from None
    if raw is None:
        return None
    # a config's keys are config keys; a space or strategies file's are that file's own
    check_tree(raw, f"{what} {path}", keys="config key" if what == "config" else f"{what} {path}: key")
    return _unshare(raw)
