"""Reading YAML files safely: bounded, duplicate keys refused, alias bombs and deep nesting refused.

Config files, ``tune`` search spaces and ``compare`` strategies files are all read through
:func:`load_yaml_file`: a regular file of at most ``MAX_CONFIG_BYTES``, parsed by a SafeLoader
that refuses a repeated key (YAML keeps the last one silently), its tree checked by
:func:`check_tree`, and YAML aliases unshared so that ``--set`` changes one place. Every
failure is one :class:`~trainlab.errors.ConfigError` line; what the top level must hold is the
caller's to say.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from trainlab.bounded_read import FileTooLargeError, LinkError, NotRegularFileError, read_regular_file
from trainlab.config_fields import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES
from trainlab.errors import ConfigError


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{str(key)[:60]}' (first at line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def yaml_load(text: str) -> Any:
    """YAML text -> Python values, as ``yaml.safe_load`` but refusing duplicate keys."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass


def check_tree(raw: Any, origin: str = "config", where: str = "") -> None:
    """Refuse before validation what would blow up later: alias bombs, deep nesting, non-finite floats.

    The size counts every value with YAML aliases expanded (a shared list counts once per use), memoised
    per object, so a billion-laughs file is measured in time linear in its text, not in its expansion.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, path: str, depth: int) -> int:
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{origin} is nested deeper than {MAX_CONFIG_DEPTH} levels at '{path}'")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"config key '{path or 'config'}': must be a finite number; got {node}")
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


def _read_bounded(path: Path, follow_links: bool = True) -> str:
    """The file's text, refusing non-regular files (/dev/zero, FIFOs), files over MAX_CONFIG_BYTES and,
    unless ``follow_links``, symbolic links."""
    try:
        data = read_regular_file(path, MAX_CONFIG_BYTES, follow_links)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a file") from None
    except LinkError as exc:
        raise ConfigError(f"config file {exc}; a run folder's config.yaml is the file its run wrote") from None
    except NotRegularFileError:
        raise ConfigError(f"config file {path} is not a regular file") from None
    except FileTooLargeError:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a few "
                          "hundred lines") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def load_yaml_file(path: str | Path, what: str = "config", follow_links: bool = True) -> Any:
    """A YAML file's top level, whatever it is (None when empty): read bounded (:func:`_read_bounded`; a
    symbolic link refused unless ``follow_links``: pass False for a run folder's config.yaml), parsed
    refusing duplicate keys, checked by :func:`check_tree` as ``what``; one ConfigError line otherwise
    (also for an integer of more digits than Python converts, 4,300)."""
    path = Path(path)
    text = _read_bounded(path, follow_links)
    try:
        raw = yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to read") from None
    except ValueError as exc:  # PyYAML's int() of a number over sys.get_int_max_str_digits() digits
        raise ConfigError(f"malformed YAML in {path}: {str(exc).splitlines()[0][:200]}") from None
    if raw is None:
        return None
    check_tree(raw, f"{what} {path}")
    return _unshare(raw)
