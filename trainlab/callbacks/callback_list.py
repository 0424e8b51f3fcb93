"""The dispatch of the loop's events to its callbacks: :class:`CallbackList`, which checks the callbacks it is
given (instances, finite ``order``, one name each, hooks that take the loop's arguments), runs each event's hooks
in their order (:func:`hook_order`), a user's through :class:`~trainlab.callbacks.base.UserHook`, and saves and
restores their state by name. The events, the ``Callback`` contract and the view: :mod:`trainlab.callbacks.base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from trainlab.callbacks.base import (
    Callback,
    Event,
    TrainerView,
    UserHook,
    builtin_callback_names,
    callback_name,
    is_builtin,
    overrides,
)
from trainlab.callbacks.hook_rules import hook_signature_problem, warn_keras_parameters, warn_unknown_hooks
from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.notices import warn
from trainlab.records import plain_record


def _name_used_twice(name: str, callbacks: list[Callback]) -> str:
    """The message refusing two callbacks named ``name``: one of them a built-in callback, the name is told
    reserved (listing :func:`builtin_callback_names`); else each instance is told to take its own."""
    holders = [cb for cb in callbacks if callback_name(cb) == name]
    builtin = next((cb for cb in holders if is_builtin(cb)), None)
    twice = f"callback name {name!r} is used twice (callbacks: {', '.join(callback_name(cb) for cb in callbacks)})"
    if builtin is not None and not all(is_builtin(cb) for cb in holders):
        return (f"{twice}: it is the built-in callback {type(builtin).__name__}'s, and the built-in callbacks' names "
                f"are reserved ({', '.join(builtin_callback_names())}): give yours another (callback.name = '...')")
    return f"{twice}; a callback's state is saved under its name: give each instance its own (callback.name = '...')"


def _check_orders(callback: Callback) -> None:
    """ConfigError naming the callback when its ``order`` (or a ``train_end_order`` it sets) is not a finite
    number: sorting the callbacks by it would fail with a TypeError naming none."""
    for attribute in ("order", "train_end_order"):
        value = getattr(callback, attribute)
        if attribute == "train_end_order" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"callback {callback_name(callback)!r}: {attribute} must be a number (lower runs "
                              f"first; trainlab's own run from 5 to 95, a user's default is 50); got "
                              f"{short_repr(value)}")


def hook_order(callback: Callback, event: Event) -> int:
    """Where ``callback``'s hook for ``event`` runs (lower first): its ``order``, or for ``on_train_end`` its
    ``train_end_order`` where it sets one."""
    if event is Event.TRAIN_END and callback.train_end_order is not None:
        return callback.train_end_order
    return callback.order


class CallbackList:
    """Dispatches each event to the callbacks that override it, in ``order`` (:func:`hook_order`)."""

    def __init__(self, callbacks: list[Callback]):
        for callback in callbacks:
            if isinstance(callback, type) and issubclass(callback, Callback):
                raise ConfigError(f"callbacks must be trainlab.Callback instances; got the class {callback.__name__} "
                                  f"itself: pass an instance, {callback.__name__}()")
            if not isinstance(callback, Callback):
                raise ConfigError(f"callbacks must be trainlab.Callback instances (a class overriding the hooks it "
                                  f"needs); got {type(callback).__name__}")
            _check_orders(callback)
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        names = [callback_name(cb) for cb in self.callbacks]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ConfigError(_name_used_twice(twice[0], self.callbacks))
        for callback in self.callbacks:
            for event in Event:
                if overrides(callback, event) and (problem := hook_signature_problem(callback, event)):
                    raise ConfigError(problem)
            warn_unknown_hooks(callback)
            warn_keras_parameters(callback)
        self.hooks: dict[Event, list[Callable[..., None]]] = {
            event: [getattr(cb, event.value) if is_builtin(cb) else UserHook(cb, event)
                    for cb in sorted(self.callbacks, key=lambda cb: hook_order(cb, event)) if overrides(cb, event)]
            for event in Event
        }

    def fire(self, event: Event, view: TrainerView, *args: Any) -> None:
        for hook in self.hooks[event]:
            hook(view, *args)

    def fire_to_all(self, event: Event, view: TrainerView) -> Exception | None:
        """Fire ``event`` (``on_train_end``) to every hook, also after a user's hook failed, so that trainlab's
        own hooks still run (the checkpoint saver's last checkpoint, the recorder's records, early stopping's
        restore); the first user hook's failure (a :class:`CallbackError`, or what :class:`UserHook` lets pass)
        is returned (None: none failed), for the caller to raise. A failure of trainlab's own hooks is raised
        at once."""
        failure = None
        for hook in self.hooks[event]:
            try:
                hook(view)
            except Exception as exc:
                if not isinstance(hook, UserHook):
                    raise
                failure = failure or exc
        return failure

    def fire_record(self, event: Event, view: TrainerView, record: dict[str, Any]) -> None:
        """Fire ``event`` (``on_validation_end``, ``on_epoch_end``, ``on_log``) with ``record``, whose values are
        made JSON values after each hook (:func:`~trainlab.records.plain_record`): a value a callback put there
        that JSON cannot hold is a ConfigError at that hook, naming the key and the callback, and is taken out,
        so the records written so far (metrics.jsonl, checkpoints) stay writable."""
        for hook in self.hooks[event]:
            hook(view, record)
            owner = hook.callback if isinstance(hook, UserHook) else getattr(hook, "__self__", None)
            shown = callback_name(owner) if isinstance(owner, Callback) else getattr(hook, "__qualname__", repr(hook))
            plain_record(record, f"callback {shown!r} ({event.value})")

    def find(self, kind: type) -> list[Any]:
        return [cb for cb in self.callbacks if isinstance(cb, kind)]

    def state_dict(self) -> dict[str, Any]:
        return {callback_name(cb): cb.state_dict() for cb in self.callbacks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Give each callback the state saved under its name; one with none saved (added since) keeps its own.
        A callback whose ``load_state_dict`` fails on its saved state is a ConfigError naming it. A saved
        non-empty state that no callback takes (a resume not given the run's own callbacks) is one warning:
        what they would have stopped or recorded, the resumed run does without."""
        names = {callback_name(cb) for cb in self.callbacks}
        unclaimed = sorted(name for name, saved in state.items() if name not in names and saved)
        if unclaimed:
            listed, several = ", ".join(repr(name) for name in unclaimed), len(unclaimed) > 1
            warn(f"the checkpoint holds the state of callback{'s' * several} {listed}, which this run was not "
                 f"given: it goes on without {'them' if several else 'it'}, so it may stop or record otherwise than "
                 "the run that was interrupted; resume with the same callbacks (trainlab.run_resume.resume(..., "
                 "callbacks=[...]))")
        for cb in self.callbacks:
            name = callback_name(cb)
            if name not in state:
                continue
            try:
                cb.load_state_dict(state[name])
            except Exception as exc:  # noqa: BLE001 -- the user's code: said in one line, the traceback chained
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise ConfigError(f"callback {name!r} cannot load the state saved under its name in the checkpoint "
                                  f"({type(exc).__name__}: {first}); its load_state_dict must read what its "
                                  "state_dict returned, or give it another name (callback.name) to start it "
                                  "afresh") from exc
