"""``--set`` overrides of a raw config mapping: ``KEY=VALUE`` sets a dotted key (its VALUE read as YAML),
``~KEY`` deletes one, and :func:`override_reading` says how YAML read a VALUE that failed validation.

The config's schema and loading are :mod:`trainlab.config`; these work on the plain mapping before it
is validated, so ``compare``, ``tune`` and the CLI apply them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import yaml

from trainlab.errors import ConfigError
from trainlab.registry import did_you_mean
from trainlab.shell_command import command_line
from trainlab.yaml_files import RefusedYAMLError, check_tree, flow_yaml, yaml_load

# a --set VALUE's list or mapping closed, then more text ('[exp1]-baseline'): only quoting fixes it
CLOSED_AND_MORE = "more follows its closing bracket"


def override_key(text: str) -> str:
    """The dotted key a ``--set`` names: ``KEY`` of ``KEY=VALUE``, or of ``~KEY`` (a deletion)."""
    return (text[1:] if text.startswith("~") else text.partition("=")[0]).strip()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], VALUE read as YAML): ``0.01`` a number, ``[64, 32]`` a list,
    ``{name: adam}`` a mapping, ``yes`` a boolean, ``"yes"`` the string yes, an empty VALUE null.

    A VALUE holds no YAML comment: where YAML would read one (a ``#`` at its start or after a space, outside
    quotes) and drop the rest, VALUE is the string as written, stripped of surrounding spaces, read as
    nothing else (``data.path=data #1/w.csv`` is that path, ``name=it's #1: yes`` that name, ``color=#fff``
    the string ``#fff``). A command line has no comments here (Hydra's override grammar has none, and the
    shell drops its own before trainlab sees the argument), so a ``#`` in it is meant, not a note: read as a
    comment it cut the value short without a word (a run named ``it's``). A ``#`` with no space before it
    (``a#b``) starts no comment and needs no such rule. A VALUE that YAML cannot read is also the string as
    written, except one that opens a YAML list or mapping (``[`` or ``{``): ``{name: adam`` is a mapping left
    unclosed, refused naming YAML's complaint (as a string it was looked up as an optimizer named
    ``{name: adam``); quoted, it is that string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. strategy.optimizer.lr=0.01); got '{text}'")
    try:
        if _holds_yaml_comment(value):
            parsed = value.strip()  # a '#' on a command line is meant: see above
        else:
            parsed = yaml_load(value) if value.strip() else None
    except RefusedYAMLError as exc:  # {lr: 1, lr: 2} or 010 read as a plain string would be refused as something else
        raise ConfigError(f"--set {text}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        if value.strip()[:1] in ("[", "{"):
            raise _unreadable_collection(key.strip(), value.strip(), exc) from None
        parsed = value
    except RecursionError:
        parsed = value
    except ValueError:  # PyYAML's int() of a number of more digits than Python converts (4,300)
        raise ConfigError(f"--set {key.strip()}: a number of {len(value.strip()):,} characters is more than any "
                          "config value takes; give a number of ordinary size") from None
    check_tree(parsed, f"--set {key.strip()}", key.strip())
    return _dotted_parts(key.strip(), text), parsed


def _dotted_parts(key: str, text: str) -> list[str]:
    """``strategy.epochs`` -> ["strategy", "epochs"]; a key with an empty part (``strategy..epochs``, a dot at an
    end) is one ConfigError saying so (it was "unknown config key 'strategy.'")."""
    parts = key.split(".")
    if "" in parts:
        fixed = ".".join(part for part in parts if part)
        hint = f" (e.g. {fixed})" if fixed else ""
        raise ConfigError(f"--set {text}: the key '{key}' has an empty part between its dots or at an end; a key is "
                          f"names joined by single dots{hint}")
    return parts


def _unreadable_collection(key: str, value: str, exc: yaml.YAMLError) -> ConfigError:
    """The error for a ``--set`` VALUE that opens a YAML list or mapping YAML cannot read (``{name: adam``):
    YAML's complaint in a user's words, and the fix: close it, or quote it (for the shell, as
    :func:`override_reading` quotes) for the string as typed."""
    kind = "list" if value.startswith("[") else "mapping"
    problem = _flow_problem(str(getattr(exc, "problem", None) or "not YAML"))
    close = "" if problem == CLOSED_AND_MORE else "close it, or "  # '[exp1]-base': closed, then more text
    return ConfigError(f"--set {key}: {value!r} opens a YAML {kind} that does not read as one ({problem}); {close}"
                       f"quote the value for a string: {_quoted_set(key, _yaml_quoted(value))}")


def _flow_problem(problem: str) -> str:
    """PyYAML's complaint about an unreadable flow list or mapping in a user's words: its end of the input
    (``but got '<stream end>'``) the value's end; text after the closing bracket (``expected '<document
    start>'``) said as such."""
    if problem.startswith("expected '<document start>'"):
        return CLOSED_AND_MORE
    return problem.replace("but got '<stream end>'", "but the value ended").replace(
        "but found '<stream end>'", "but the value ended")


def _holds_yaml_comment(value: str) -> bool:
    """Whether YAML reads part of ``value`` as a comment: text that no token of YAML's scanner covers (it
    drops comments, and every other character, from a scalar's to a ``[`` or ``,``, is inside a token's
    marks). False for a ``value`` the scanner refuses (it is then the string as written anyway)."""
    if "#" not in value:
        return False
    try:
        tokens = list(yaml.scan(value, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return False
    covered = bytearray(len(value))  # 1 where a token is
    for token in tokens:
        start, end = token.start_mark.index, token.end_mark.index
        covered[start:end] = b"\x01" * (end - start)
    return any(char == "#" and not covered[index] for index, char in enumerate(value))


def override_reading(where: str, overrides: Sequence[str], wants_number: bool = False,
                     choices: str | None = None, fits: Callable[[str, Any], bool] | None = None) -> str:
    """For an invalid config key set by the last ``--set KEY=VALUE`` of ``overrides`` (or by one of a section
    above it), "; --set KEY=VALUE was read as ..." and the fix, when YAML read VALUE as something other than a
    plain string: ``foo:`` is a mapping, ``[1]`` a list, ``yes`` a boolean, ``123`` a number, an empty value null.

    The fix, in this order:

    - quoting (``--set 'KEY="VALUE"'``: the argument quoted for the shell by
      :func:`~trainlab.shell_command.command_line`, so that a VALUE holding a ``'`` pastes too), only where
      ``fits(KEY, "VALUE")`` says the quoted string validates at
      KEY: a string-typed key given ``yes`` or ``123`` (a name, a path). Quoting a list, a mapping, a boolean for
      a section (``early_stopping=true``) or a value refused for its number (``lr: -0.1`` in a list) gives a
      string the key refuses too; without ``fits`` there is no such advice;
    - for a value other than a number: "give KEY one number" when the key ``wants_number`` (a list or a
      boolean given to a number), "give KEY one of ..." when it takes one of ``choices`` (pydantic's words:
      ``'none', 'last' or 'all'``).

    "" when none applies (the error line already says what the key takes and what it got), for a mapping set to
    a section above the bad key (the error is in what it holds), and for a ``--set`` that does not parse."""
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
                   f"with {command_line('--set', '~' + key)}"
        if isinstance(parsed, str) or (isinstance(parsed, dict) and where != key):
            return ""
        read_as = f"; --set {text} was read as {_kind_of(parsed)}"
        quoted = _yaml_quoted(value)
        string = _quoted_value(quoted)  # what the quoted form sets
        if fits is not None and string is not None and fits(key, string):  # a shell word, whatever VALUE holds
            return f"{read_as}; quote it: {_quoted_set(key, quoted)}"
        if isinstance(parsed, int | float) and not isinstance(parsed, bool):
            return ""  # the line shows the number it got and what the key takes
        if wants_number:
            return f"{read_as}; give {key} one number"
        if choices is not None:
            return f"{read_as}; give {key} one of {choices}"
        return ""
    return ""


def _yaml_quoted(value: str) -> str:
    """``value`` escaped for a YAML double-quoted string (its backslashes and double quotes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _quoted_set(key: str, quoted: str) -> str:
    """``--set 'KEY="QUOTED"'``, one shell word whatever ``quoted`` holds (:func:`command_line`)."""
    return command_line("--set", key + '="' + quoted + '"')


def _quoted_value(quoted: str) -> str | None:
    """What ``--set 'KEY="QUOTED"'`` would set: the double-quoted YAML string; None where it does not parse."""
    try:
        value = yaml_load(f'"{quoted}"')
    except (yaml.YAMLError, RefusedYAMLError, ValueError):
        return None
    return value if isinstance(value, str) else None


def _kind_of(parsed: Any) -> str:
    """What YAML read a ``--set`` value as, with the value: ``the boolean true``, ``a list [1, 2]``."""
    if parsed is None:
        return "null"
    kinds = {bool: "the boolean", dict: "a mapping", list: "a list", int: "the number", float: "the number"}
    kind = next((name for type_, name in kinds.items() if isinstance(parsed, type_)), f"a {type(parsed).__name__}")
    return f"{kind} {flow_yaml(parsed)}"


# The key a section's one-word form stands for: `loss: mse` is {name: mse}, `weight_averaging: ema` {kind: ema}.
SHORTHAND_KEYS = {"weight_averaging": "kind"}


def set_dotted(raw: dict[str, Any], path: list[str], value: Any, label: str) -> None:
    """``raw[a][b][c] = value`` for ``path`` [a, b, c], creating sections; a part after a list is an item's
    index (``strategy.optimizer.groups.0.lr``: the config's errors name list items so), its other items and
    keys kept. ``label`` names it in errors."""
    node: Any = raw
    for depth, part in enumerate(path[:-1]):
        key = list_index(node, path, depth, label) if isinstance(node, list) else part
        child = node[key] if isinstance(node, list) else node.get(part)
        if isinstance(child, str):  # "loss: mse" then --set strategy.loss.delta=2
            child = {SHORTHAND_KEYS.get(part, "name"): child}
        if child is None and path[depth + 1].isascii() and path[depth + 1].isdigit():
            section, item = ".".join(path[:depth + 1]), value
            for key in reversed(path[depth + 2:]):
                item = {key: item}
            raise ConfigError(f"{label}: {section} is not set, so it has no item {path[depth + 1]}: set the list "
                              f"whole, e.g. {section}={flow_yaml([item])}")
        if child is None:
            child = {}
        if not isinstance(child, dict | list):
            section = ".".join(path[:depth + 1])
            whole = (f": set it whole instead, e.g. {section}={{{path[-1]}: {flow_yaml(value)}}}"
                     if depth == len(path) - 2 else "")
            raise ConfigError(f"{label}: '{part}' is not a section (it holds {flow_yaml(child)}){whole}")
        node[key] = child
        node = child
    node[list_index(node, path, len(path) - 1, label) if isinstance(node, list) else path[-1]] = value


def _item_label(item: Any, index: int, where: str) -> str | None:
    """What a list item answers to by name: its ``name``, else, in ``strategy.optimizer.groups``, the label the
    group's errors give it (``group{index}``); None for an item without either."""
    if isinstance(item, dict) and item.get("name") is not None:
        return str(item["name"])
    return f"group{index}" if isinstance(item, dict) and where.endswith("optimizer.groups") else None


def list_index(items: list[Any], path: list[str], depth: int, label: str, adding: str = " (to add one, set the "
               "list whole)") -> int:
    """The item of ``items`` (the list at ``path[:depth]``) that ``path[depth]`` names by its index, 0 to
    ``len(items) - 1``; anything else is a ConfigError naming the list's length (``adding``: how to add an item,
    where the caller sets one)."""
    where, part = ".".join(path[:depth]), path[depth]
    if not items:
        raise ConfigError(f"{label}: {where} is an empty list: it has no item {part!r}{adding}")
    count = f"{len(items)} item{'s' if len(items) > 1 else ''}"
    span = "0" if len(items) == 1 else f"0 to {len(items) - 1}"
    if not (part.isascii() and part.isdigit()):
        # an item's name (groups.filters.lr): that item's index in its place; a key of the items (groups.lr): the
        # index left out before it; a number out of range or any other word followed by a key: in its place
        named = [i for i, item in enumerate(items) if _item_label(item, i, where) == part]
        keys = {key for item in items if isinstance(item, dict) for key in item}
        in_place = bool(named) or part.lstrip("-").isdigit() or not isinstance(items[0], dict) or (
            part not in keys and depth + 1 < len(path))
        example = '.'.join([where, str(named[0]) if named else '0', *(path[depth + 1:] if in_place else path[depth:])])
        which = f" (item {named[0]} is named '{part}')" if named else ""
        raise ConfigError(f"{label}: {where} is a list of {count}, not a section: name an item by its index "
                          f"({span}), e.g. {example}{which}, or set the list whole")
    if int(part) >= len(items):
        raise ConfigError(f"{label}: {where} has {count} (index {span}); there is no item {int(part)}{adding}")
    return int(part)


def delete_dotted(raw: dict[str, Any], path: list[str], label: str) -> None:
    """``del raw[a][b][c]`` for ``path`` [a, b, c] (a part after a list an item's index, as :func:`set_dotted`'s);
    a key that is not there is an error naming the keys that are."""
    node: Any = raw
    for depth, part in enumerate(path):
        where = ".".join(path[:depth]) or "the config"
        if isinstance(node, list):
            index = list_index(node, path, depth, label, adding="")
            if depth == len(path) - 1:
                del node[index]
            else:
                node = node[index]
            continue
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


def replaced_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """The pairs (earlier, later) of a command line's ``--set`` list where the later one replaces what the earlier
    set: the same key again (``strategy.epochs=1`` then ``strategy.epochs=3``), or a section holding it
    (``strategy.optimizer.lr=0.5`` then ``strategy.optimizer={name: sgd}``, which drops the lr), or
    a later ``~KEY`` of either; the same key and value twice is no replacement, nor is a key set after its deletion.
    A key set inside a section set before it refines it (``strategy.optimizer={name: sgd}`` then
    ``strategy.optimizer.lr=0.1``): not listed. Keys are read as :func:`apply_overrides` reads them."""
    def key(text: str) -> str:
        return text.removeprefix("~").partition("=")[0].strip()

    def value(text: str) -> str:
        return text.partition("=")[2].strip()

    pairs = []
    for index, earlier in enumerate(overrides):
        if earlier.startswith("~"):
            continue  # deleted, then set again: meant
        for later in overrides[index + 1:]:
            same = key(later) == key(earlier) and value(later) == value(earlier) and not later.startswith("~")
            if not same and (key(earlier) + ".").startswith(key(later) + "."):
                pairs.append((earlier, later))
                break
    return pairs


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Each ``KEY=VALUE`` sets a dotted key (creating sections); ``~KEY`` (Hydra's spelling) deletes one."""
    for text in overrides:
        if text.startswith("~"):
            key = text[1:].strip()
            if not key or "=" in key:
                raise ConfigError(f"--set ~KEY deletes a key (e.g. --set ~data.n); got '{text}'")
            delete_dotted(raw, _dotted_parts(key, text), f"--set {text}")
            continue
        path, value = parse_override(text)
        set_dotted(raw, path, value, f"--set {text}")
    return raw
