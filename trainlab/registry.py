"""Name -> factory registries for every pluggable component.

A registry maps a lower-case name to a factory (a class or function). ``build``
accepts a name, a ``{"name": ..., **kwargs}`` mapping, or an already-built
instance (Keras ``optimizers.get``). A user component is referenced as
``package.module:attribute`` and follows the same contract as a built-in.
Unknown names raise :class:`ConfigError` listing the valid choices, with a
did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from trainlab.errors import ConfigError

T = TypeVar("T", bound=Callable[..., Any])


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def import_reference(reference: str, kind: str) -> Any:
    """Import ``package.module:attribute``; the only way a config reaches user code."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{kind} reference '{reference}' must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's module, report it in one line
        raise ConfigError(
            f"cannot import module '{module_name}' for {kind} '{reference}': {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"module '{module_name}' has no attribute '{attribute}' (from {kind} '{reference}')")
        target = getattr(target, part)
    return target


class Registry(Generic[T]):
    """A named table of factories of one kind (losses, optimizers, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@LOSSES.register("mse")``."""

        def add(factory: T) -> T:
            key = name.lower()
            if key in self._entries:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._entries[key] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The factory for ``name`` (or a ``module:attr`` reference)."""
        if ":" in name:
            return import_reference(name, self.kind)
        key = name.lower()
        if key not in self._entries:
            valid = ", ".join(self.names())
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(key, self.names())} (valid: {valid})"
            )
        return self._entries[key]

    def build(self, spec: str | Mapping[str, Any] | Any, *args: Any, **extra: Any) -> Any:
        """Build from a name, a ``{"name": ..., **kwargs}`` mapping, or pass an instance through."""
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping):
            kwargs = dict(spec)
            name = kwargs.pop("name", None)
            if not isinstance(name, str):
                raise ConfigError(f"{self.kind} needs a 'name' (valid: {', '.join(self.names())})")
        else:
            return spec
        factory = self.get(name)
        self._check_options(name, factory, kwargs, skip=len(args) + len(extra))
        try:
            return factory(*args, **extra, **kwargs)
        except (ValueError, TypeError) as exc:  # a constructor rejecting a value: the config's fault
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{self.kind} '{name}': {first}") from exc

    def _check_options(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any], skip: int) -> None:
        """Unknown keyword options -> one line naming the option, a did-you-mean and the valid ones."""
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            return
        parameters = list(signature.parameters.values())
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return
        valid = [p.name for p in parameters[skip:] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        for option in kwargs:
            if option not in valid:
                raise ConfigError(
                    f"{self.kind} '{name}' has no option '{option}'{did_you_mean(option, valid)} "
                    f"(options: {', '.join(valid) or 'none'})"
                )
