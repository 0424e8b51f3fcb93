"""``--set`` overrides of a raw config mapping: ``KEY=VALUE`` sets a dotted key (its VALUE read as YAML),
``~KEY`` deletes one, and :func:`override_reading` says how YAML read a VALUE that failed validation.

The config's schema and loading are :mod:`trainlab.config`; these work on the plain mapping before it
is validated, so ``compare``, ``tune`` and the CLI apply them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from trainlab.errors import ConfigError
from trainlab.registry import did_you_mean
from trainlab.yaml_files import RefusedYAMLError, check_tree, flow_yaml, yaml_load


def override_key(text: str) -> str:
    """The dotted key a ``--set`` names: ``KEY`` of ``KEY=VALUE``, or of ``~KEY`` (a deletion)."""
    return (text[1:] if text.startswith("~") else text.partition("=")[0]).strip()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. strategy.optimizer.lr=0.01); got '{text}'")
    try:
        parsed = yaml_load(value) if value.strip() else None
    except RefusedYAMLError as exc:  # {lr: 1, lr: 2} or 010 read as a plain string would be refused as something else
        raise ConfigError(f"--set {text}: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError):
        parsed = value
    except ValueError:  # PyYAML's int() of a number of more digits than Python converts (4,300)
        raise ConfigError(f"--set {key.strip()}: a number of {len(value.strip()):,} characters is more than any "
                          "config value takes; give a number of ordinary size") from None
    check_tree(parsed, f"--set {key.strip()}", key.strip())
    return key.strip().split("."), parsed


def override_reading(where: str, overrides: Sequence[str], wants_number: bool = False,
                     choices: str | None = None) -> str:
    """For an invalid config key set by the last ``--set KEY=VALUE`` of ``overrides`` (or by one of a section
    above it), "; --set KEY=VALUE was read as ..." and the fix, when YAML read VALUE as something other than a
    plain string or number: ``foo:`` is a mapping, ``[1`` a list, ``yes`` a boolean, an empty value null.
    The fix is quoting, unless the key ``wants_number`` (a quoted value is a string: no number either) or
    takes one of ``choices`` (pydantic's words: ``'none', 'last' or 'all'``) that the quoted value is not
    (``true``: the fix is one of them; ``off`` is one: quoting is the fix). "" otherwise (the error line
    already shows a string or number it got)."""
    for text in reversed(overrides):
        key, sep, value = text.partition("=")
        key = key.strip()
        if text.startswith("~") or not sep or not (where == key or where.startswith(key + ".")):
            continue
        try:
            parsed = parse_override(text)[1]
        except ConfigError:
            return ""
        if parsed is None and not value.strip():
            return f"; --set {text} was read as null (an empty value): give a value after '=', or delete the key " \
                   f"with --set '~{key}'"
        if parsed is not None and not isinstance(parsed, dict | list | bool):
            return ""
        if isinstance(parsed, dict) and where != key:  # a section, read as one: the error is in what it holds
            return ""
        kinds = {dict: "a mapping", list: "a list", bool: "the boolean"}
        kind = next((name for type_, name in kinds.items() if isinstance(parsed, type_)), "null")
        shown = "" if parsed is None else " " + flow_yaml(parsed)
        if wants_number:
            return f"; --set {text} was read as {kind}{shown}; give {key} one number"
        if choices is not None and f"'{value.strip()}'" not in choices:
            return f"; --set {text} was read as {kind}{shown}; give {key} one of {choices}"
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        return f"; --set {text} was read as {kind}{shown}; quote it: --set '{key}=\"{quoted}\"'"
    return ""


# The key a section's one-word form stands for: `loss: mse` is {name: mse}, `weight_averaging: ema` {kind: ema}.
SHORTHAND_KEYS = {"weight_averaging": "kind"}


def set_dotted(raw: dict[str, Any], path: list[str], value: Any, label: str) -> None:
    """``raw[a][b][c] = value`` for ``path`` [a, b, c], creating sections; ``label`` names it in errors."""
    node = raw
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if isinstance(child, str):  # "loss: mse" then --set strategy.loss.delta=2
            child = {SHORTHAND_KEYS.get(part, "name"): child}
        if child is None:
            child = {}
        if not isinstance(child, dict):
            section = ".".join(path[:depth + 1])
            whole = (f": set it whole instead, e.g. {section}={{{path[-1]}: {flow_yaml(value)}}}"
                     if depth == len(path) - 2 else "")
            raise ConfigError(f"{label}: '{part}' is not a section (it holds {flow_yaml(child)}){whole}")
        node[part] = child
        node = child
    node[path[-1]] = value


def delete_dotted(raw: dict[str, Any], path: list[str], label: str) -> None:
    """``del raw[a][b][c]`` for ``path`` [a, b, c]; a key that is not there is an error naming the keys that are."""
    node: Any = raw
    for depth, part in enumerate(path):
        where = ".".join(path[:depth]) or "the config"
        if not isinstance(node, dict):
            raise ConfigError(f"{label}: {where} is a value, not a section")
        keys = {str(key): key for key in node}  # YAML keys may be numbers or booleans (`0: 1.0`, `on:`)
        if part not in keys:
            names = sorted(keys)
            hint = did_you_mean(part, names) or f" (keys: {', '.join(names) or 'none'})"
            raise ConfigError(f"{label}: {where} has no key '{part}'{hint}")
        if depth == len(path) - 1:
            del node[keys[part]]
        else:
            node = node[keys[part]]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Each ``KEY=VALUE`` sets a dotted key (creating sections); ``~KEY`` (Hydra's spelling) deletes one."""
    for text in overrides:
        if text.startswith("~"):
            key = text[1:].strip()
            if not key or "=" in key:
                raise ConfigError(f"--set ~KEY deletes a key (e.g. --set ~data.n); got '{text}'")
            delete_dotted(raw, key.split("."), f"--set {text}")
            continue
        path, value = parse_override(text)
        set_dotted(raw, path, value, f"--set {text}")
    return raw
