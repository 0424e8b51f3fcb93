"""Name -> factory registries for every pluggable component.

A registry maps a lower-case name to a factory (a class or function). ``build``
accepts a name, a ``{"name": ..., **kwargs}`` mapping, or an already-built
instance (Keras ``optimizers.get``). A user component is referenced as
``package.module:attribute`` and follows the same contract as a built-in; it is imported under the code
policy by :func:`trainlab.user_code.import_reference` (the rules: :mod:`trainlab.code_policy`).
Unknown names raise :class:`ConfigError` listing the valid choices, with a
did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from trainlab.code_policy import current_policy
from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, passes_user_code
from trainlab.exception_origin import failure_text, first_line
from trainlab.name_aliases import KEY_NAMES, NAMES_BY_KIND, trainlab_name
from trainlab.option_types import mismatch, numbers_read
from trainlab.user_code import admit_factories, import_reference

T = TypeVar("T", bound=Callable[..., Any])


def did_you_mean(name: str, choices: list[str], aliases: Mapping[str, str] | None = None) -> str:
    """Return ``"; did you mean 'x'?"`` for :func:`closest_choice`, or ``""`` where there is none."""
    close = closest_choice(name, choices, aliases)
    return f"; did you mean '{close}'?" if close is not None else ""


def value_hint(value: object, choices: Iterable[object]) -> str:
    """:func:`did_you_mean` for a config value of a fixed set (``tokenizer: wrod``: "; did you mean 'word'?"),
    ``""`` for a value that is not a string (``5``), which no choice is a spelling of."""
    return did_you_mean(value, [str(choice) for choice in choices]) if isinstance(value, str) else ""


def closest_choice(name: str, choices: list[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The choice ``name`` most likely meant, or None: the choice ``aliases`` gives for ``name`` (another
    framework's name for it, :mod:`trainlab.name_aliases`: ``learning_rate``: ``lr``), else the one choice
    that differs from ``name`` in letter case only (``Y1``: ``y1``, which difflib rates 0.5), else the one choice
    ``name`` writes with two neighbouring letters swapped (``lgo``: ``log``, which difflib rates no closer than
    ``low``), else difflib's closest (similarity 0.6 or more), else the one choice ``name`` abbreviates
    (:func:`_abbreviated`)."""
    alias = trainlab_name(name, aliases or {})
    twin = case_twin(name, choices)
    swapped = [choice for choice in choices if _one_swap(name, choice)]
    close = ([alias] if alias in choices else []) or ([twin] if twin is not None else []) \
        or (swapped if len(swapped) == 1 else []) \
        or difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or _abbreviated(name, choices)
    return close[0] if close else None


def _one_swap(name: str, choice: str) -> bool:
    """Whether ``name`` is ``choice`` with two neighbouring letters swapped (a transposition typo)."""
    if len(name) != len(choice) or name == choice:
        return False
    differ = [i for i, (a, b) in enumerate(zip(name, choice, strict=True)) if a != b]
    return len(differ) == 2 and differ[1] == differ[0] + 1 and name[differ[0]] == choice[differ[1]] \
        and name[differ[1]] == choice[differ[0]]


def case_twin(name: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` that equals ``name`` but for letter case (``Y1``: ``y1``); None for none or several."""
    twins = [choice for choice in choices if choice.casefold() == name.casefold()]
    return twins[0] if len(twins) == 1 else None


def _abbreviated(name: str, choices: list[str]) -> list[str]:
    """The one choice ``name`` (3 letters or more) begins, or whose ``_``-separated words it abbreviates in
    order (``bal_acc``: ``balanced_accuracy``); none when several do. difflib misses these: 'acc' is 0.55
    similar to 'accuracy' (the cut-off is 0.6)."""
    if len(name) < 3:
        return []
    words = name.split("_")
    found = [choice for choice in choices if choice.startswith(name) or (
        len(words) == len(choice.split("_")) and all(c.startswith(w) for w, c in zip(words, choice.split("_"), strict=True)))]
    return found if len(found) == 1 else []


# Keys a config section reads itself next to its factory's options, by registry kind: ``data.val_fraction``
# sits beside the csv source's ``delimiter``. The config module that defines the section declares them
# (:func:`declare_section_keys`), so that a typo of one gets the same did-you-mean as a typo of an option.
_SECTION_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {}


def declare_section_keys(kind: str, section: str, keys: Iterable[str]) -> None:
    """Every ``kind`` factory's section (e.g. ``data``) also takes ``keys``; unknown-option errors list them."""
    _SECTION_KEYS[kind] = (section, tuple(keys))


def _removal_hint(section: str, option: str) -> str:
    """How to drop the key ``section.option`` a factory does not take: in a CLI command (the code policy's
    ``cli``, :func:`trainlab.code_policy.command_code_policy`) with ``--set '~KEY'``, which deletes a key of
    the config file (:func:`trainlab.config_overrides.apply_overrides`); from Python, by editing the mapping."""
    if current_policy().cli:
        return f"remove it with --set '~{section}.{option}'"
    return f"remove the key '{option}' from {section}"


def factory_options(factory: Callable[..., Any], skip: int = 0) -> list[str] | None:
    """The keyword options ``factory`` takes: its parameters after the ``skip`` positional arguments its
    caller supplies (``*args`` aside); None when it takes any (``**kwargs``) or its signature cannot be read."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters[skip:] if p.kind is not inspect.Parameter.VAR_POSITIONAL]


class Registry(Generic[T]):
    """A named table of factories of one kind (losses, optimizers, ...)."""

    def __init__(self, kind: str, check: Callable[[str, dict[str, Any]], None] | None = None,
                 selector: str = "name", hint: Callable[[str, dict[str, Any]], str] | None = None,
                 contract: str | None = None):
        """``check(name, options)``, when given, raises ConfigError for option values the annotations allow
        but no factory of this kind can use (an optimizer's momentum of 1.5). ``selector``: the config
        section's key that picks the factory (``name``; a data section's ``source``), read before the
        factory's options, so that a typo of it (``nme``) is said to be one, not an unknown option.
        ``hint(name, options)``, when given, is added to the line refusing an option factory ``name`` does
        not take: where it is taken instead (another optimizer); "" for nothing to add. ``contract``, when
        given, is how a factory of this kind is called and what it returns, appended (``"; " + contract``)
        to the line of a user's ``module:attr`` factory that raises (:meth:`_factory_failed`): a schedule
        factory written as a torch ``lr_scheduler`` fails in its own code, and the contract says why."""
        self.kind = kind
        self.check = check
        self.selector = selector
        self.hint = hint
        self.contract = contract
        self._entries: dict[str, T] = {}
        admit_factories(self._entries)  # a trainlab...:attr reference reaches these, as their names do

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

    def defaults(self, name: str) -> dict[str, Any]:
        """The keyword defaults of the factory registered as ``name``, read from its signature (nothing is
        built); ``{}`` for a name not registered here (a ``module:attr`` reference is not imported) or a
        factory whose signature cannot be read."""
        if name not in self:
            return {}
        try:
            parameters = inspect.signature(self._entries[name.lower()]).parameters.values()
        except (TypeError, ValueError):
            return {}
        return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}

    def get(self, name: str) -> T:
        """The factory for ``name`` (or a ``module:attr`` reference)."""
        if ":" in name:
            return import_reference(name, self.kind)
        key = name.lower()
        if key not in self._entries:
            valid = ", ".join(self.names())
            hint = did_you_mean(key, self.names(), NAMES_BY_KIND.get(self.kind))  # Keras's, PyTorch's names too
            module, _, attribute = name.rpartition(".")
            if not hint and module and all(part.isidentifier() for part in [*module.split("."), attribute]):
                # mymodels.make_net: a Python dotted path, where a reference puts a colon before the attribute
                hint = f"; did you mean '{module}:{attribute}'? (a module's function or class is named module:attribute)"
            raise ConfigError(f"unknown {self.kind} {short_repr(name)}{hint} (valid: {valid})")
        return self._entries[key]

    def build(self, spec: str | Mapping[str, Any] | Any, *args: Any, **extra: Any) -> Any:
        """Build from a name, a ``{"name": ..., **kwargs}`` mapping, or pass an instance through.

        Raises:
            ConfigError: an unknown name or option, a value of the wrong type, a built-in factory rejecting
                a value (ValueError, TypeError), and any failure of a user's ``module:attr`` factory, on one
                line (:meth:`_factory_failed`). trainlab's own errors and the machine's (OSError,
                MemoryError) pass as raised, and so does any other failure of a built-in factory: a bug in
                trainlab or torch's out-of-memory (a RuntimeError) is not the config's fault.
        """
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
        kwargs = self._checked(name, factory, kwargs, extra, skip=len(args))
        try:
            return factory(*args, **extra, **kwargs)
        except Exception as exc:
            if passes_user_code(exc):  # trainlab's own, the machine's: the CLI names the file or the memory
                raise
            if isinstance(exc, ValueError | TypeError):  # a constructor rejecting a value: the config's fault
                raise self._factory_failed(name, exc, ":" in name) from exc
            if ":" not in name:  # a built-in's bug: the CLI's one line, exit 4
                raise
            raise self._factory_failed(name, exc, True) from exc

    def _checked(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any], extra: dict[str, Any],
                 skip: int) -> dict[str, Any]:
        """``kwargs`` as :meth:`build` passes them to ``factory`` (numbers YAML 1.1 left as text read as numbers:
        :func:`~trainlab.option_types.numbers_read`), after every check it makes before the call: option names,
        required options (``extra``: those the caller passes by keyword), types, the registry's own check."""
        self._check_options(name, factory, kwargs, skip=skip)
        self._check_required(name, factory, {**extra, **kwargs}, skip=skip)
        self._check_types(name, factory, kwargs)
        kwargs = numbers_read(factory, kwargs)  # '1e-4' (YAML 1.1 text) -> 0.0001 where a number is taken
        if self.check is not None:
            self.check(name, kwargs)
        return kwargs

    def check_unbuilt(self, name: str, options: Mapping[str, Any], skip: int = 0) -> None:
        """The ConfigError :meth:`build` would give for ``options`` of factory ``name`` from them alone, without
        building anything: its checks before the call (:meth:`_checked`), then the factory's own
        ``check_values``, a function of its options with its defaults filled in that refuses what the factory
        refuses whatever its other input (the files a data source reads, a model's input shape: ``dropout:
        1.5``), a ValueError or TypeError in the build's words. ``skip``: the positional arguments the caller
        supplies (a model's ``input_shape, output_dim``). A class's attribute of that name is its own method,
        not called."""
        factory = self.get(name)
        kwargs = self._checked(name, factory, dict(options), {}, skip)
        check = getattr(factory, "check_values", None)
        if check is None or inspect.isclass(factory):
            return
        bound = inspect.Signature(list(inspect.signature(factory).parameters.values())[skip:]).bind_partial(**kwargs)
        bound.apply_defaults()
        try:
            check(bound.arguments)
        except (ValueError, TypeError) as exc:
            raise self._factory_failed(name, exc, ":" in name) from None

    def _factory_failed(self, name: str, exc: Exception, user: bool) -> ConfigError:
        """The one line for factory ``name`` raising ``exc``. A user's ``module:attr`` factory: ``model
        factory 'mymodels:broken' raised RuntimeError: boom (at mymodels.py:16)``, the place from
        :func:`~trainlab.exception_origin.raised_at`, then ``; <contract>`` for a registry given one. A
        built-in one rejecting a value (ValueError, TypeError, the only failures of a built-in :meth:`build`
        wraps): ``model 'mlp': <its message>``."""
        if not user:
            return ConfigError(f"{self.kind} '{name}': {first_line(exc) or type(exc).__name__}")
        return ConfigError(f"{self.kind} factory '{name}' raised {failure_text(exc)}"
                           f"{f'; {self.contract}' if self.contract else ''}")

    def takes_option(self, name: str, option: str, skip: int = 0) -> bool:
        """Whether ``name``'s factory takes the keyword ``option`` (:meth:`check_options` would pass it)."""
        try:
            self.check_options(name, {option: None}, skip)
        except ConfigError:
            return False
        return True

    def check_options(self, name: str, options: Mapping[str, Any], skip: int = 0) -> None:
        """The one-line ConfigError :meth:`build` gives for an option ``name``'s factory does not take
        (``skip``: the positional arguments the caller supplies), without building anything."""
        self._check_options(name, self.get(name), dict(options), skip)

    def check_types(self, name: str, options: Mapping[str, Any]) -> None:
        """The one-line ConfigError :meth:`build` gives for an option value of the wrong type (the factory's
        annotations, :func:`trainlab.option_types.mismatch`), without building anything."""
        self._check_types(name, self.get(name), dict(options))

    def _check_types(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        wrong = mismatch(factory, kwargs)
        if wrong is not None:
            option, expected = wrong
            note = getattr(factory, "option_notes", {}).get(option)  # a factory's hint for this option
            if callable(note):  # a hint for some wrong values only (a mapping where a list goes)
                note = note(kwargs[option])
            raise ConfigError(f"{self.kind} '{name}': option '{option}' must be {expected}; "
                              f"got {short_repr(kwargs[option])}{f' ({note})' if note else ''}")

    def _check_required(self, name: str, factory: Callable[..., Any], given: dict[str, Any], skip: int) -> None:
        """A required option the config left out -> one line naming it (not Python's "missing 1 required
        positional argument"); a data source's is a ``data.`` key."""
        try:
            parameters = list(inspect.signature(factory).parameters.values())[skip:]
        except (TypeError, ValueError):
            return
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        missing = [p.name for p in parameters
                   if p.kind in kinds and p.default is inspect.Parameter.empty and p.name not in given]
        if missing:
            section = _SECTION_KEYS.get(self.kind, ("", ()))[0]
            keys = ", ".join(f"{section}.{option}" if section else f"'{option}'" for option in missing)
            raise ConfigError(f"{self.kind} '{name}' needs {keys} (not set)")

    def _check_options(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any], skip: int) -> None:
        """Unknown keyword options -> one line naming the option, a did-you-mean and the valid ones.

        The options are the factory's parameters after the ``skip`` positional arguments the caller supplies,
        including those it passes by keyword from the same config section (the optimizer's ``lr``), then
        the section's own keys (:func:`declare_section_keys`).
        """
        options = factory_options(factory, skip)
        if options is None:
            return
        section, shared = _SECTION_KEYS.get(self.kind, ("", ()))
        shared = [key for key in shared if key not in options]
        for option in kwargs:
            if option not in options:
                listed = f"options: {', '.join(options) or 'none'}"
                if shared:
                    listed += f"; shared {section} keys: {', '.join(shared)}"
                suggestion = did_you_mean(option, options + shared, KEY_NAMES)  # learning_rate: lr
                elsewhere = self.hint(name, kwargs) if self.hint is not None else ""
                elsewhere = f"; {elsewhere}" if elsewhere else ""
                if not suggestion and did_you_mean(option, [self.selector]):
                    raise ConfigError(f"{self.kind} '{name}' has no option '{option}'; did you mean "
                                      f"'{self.selector}' (which {self.kind} to use)? ({listed}){elsewhere}")
                # no close name: likely a key left from another source (--set data.source=...), so say how to drop it
                removal = f"; {_removal_hint(section, option)}" if section and not suggestion else ""
                raise ConfigError(f"{self.kind} '{name}' has no option '{option}'{suggestion} ({listed}){removal}"
                                  f"{elsewhere}")


def strategy_registries() -> dict[str, Registry]:
    """The strategy keys that name a component, and the registry each name is looked up in (their built-in
    components registered: imports torch)."""
    import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)
    import trainlab.optim.builtins  # noqa: F401  (registers the built-in optimizers)
    from trainlab.initializers import INITIALIZERS
    from trainlab.losses import LOSSES
    from trainlab.optim import OPTIMIZERS
    from trainlab.schedules import SCHEDULES

    return {"loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "init": INITIALIZERS}


def section_registry(section: str) -> Registry | None:
    """The registry whose names the config section ``section`` (``model``, ``strategy.optimizer``) picks by its
    ``name``; None for any other section."""
    if section == "model":
        import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
        from trainlab.models import MODELS

        return MODELS
    kind = section.removeprefix("strategy.")
    return strategy_registries().get(kind) if section.startswith("strategy.") else None
