"""What a user's callback's hooks must be, checked before training (:class:`~trainlab.callbacks.callback_list.CallbackList`).

- Each hook it overrides must take the arguments the loop passes, those of :class:`~trainlab.callbacks.base.Callback`'s
  (``*args``/``**kwargs`` and defaults accepted): :func:`hook_signature_problem` says why one cannot.
- A method named like a hook that is none (another framework's name, ``on_train_epoch_end``; a typo) is never
  called: :func:`warn_unknown_hooks` warns of it once, with the trainlab hook that does its work.
- A hook whose parameters are Keras's (``on_epoch_end(self, epoch, logs=None)``) is called, with the view where it
  expects an epoch: :func:`warn_keras_parameters` warns of it once.
"""

from __future__ import annotations

import inspect
import weakref

from trainlab.callbacks.base import Callback, Event, overrides
from trainlab.config_fields import short_repr
from trainlab.exception_origin import defined_at
from trainlab.notices import warn
from trainlab.registry import did_you_mean


def _without_annotations(signature: inspect.Signature) -> str:
    """``(self, view, record)``: ``signature`` as a reader compares parameters, annotations left out."""
    bare = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=inspect.Signature.empty))


def hook_signature_problem(callback: Callback, event: Event) -> str | None:
    """Why the loop cannot call ``callback``'s own ``event`` hook as it calls every hook, with the positional
    arguments of :class:`Callback`'s (``view`` and, for some, ``loss`` or ``record``; ``*args``/``**kwargs`` and
    defaults accepted, as by a call), naming the class, the hook, where it is defined and the parameters it
    must take; None when it can (or when its signature cannot be read: a builtin)."""
    kind, name = type(callback), event.value
    expected = inspect.signature(getattr(Callback, name))
    arguments = [None] * (len(expected.parameters) - 1)  # after self
    hook = getattr(callback, name)
    where = defined_at(hook) if callable(hook) else None
    said = f"callback {kind.__name__}'s {name}"
    if not callable(hook):
        return (f"{said} is {short_repr(hook)} (a {type(hook).__name__}), not a method; define it as "
                f"def {name}{_without_annotations(expected)}")
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read, the call tells
        return None
    try:
        signature.bind(*arguments)
    except TypeError:
        shown = _without_annotations(inspect.signature(getattr(kind, name)))
        return (f"{said}{shown}{f' (at {where})' if where else ''} cannot take the arguments trainlab calls it "
                f"with: define it as {name}{_without_annotations(expected)} (*args and **kwargs are accepted)")
    return None


HOOKS = tuple(event.value for event in Event)

# other frameworks' hook names (Keras, Lightning, the Hugging Face Trainer) that differ from trainlab's
# closest one by more than difflib sees, as the trainlab method that does their work
OTHER_FRAMEWORKS_HOOKS = {
    "on_train_begin": "on_train_start", "on_fit_start": "on_train_start", "on_fit_end": "on_train_end",
    "on_epoch_begin": "on_epoch_start", "on_train_epoch_start": "on_epoch_start",
    "on_train_epoch_end": "on_epoch_end",
    "on_batch_begin": "on_step_start", "on_train_batch_begin": "on_step_start",
    "on_train_batch_start": "on_step_start", "on_step_begin": "on_step_start",
    "on_batch_end": "on_step_end", "on_train_batch_end": "on_step_end",
    "on_validation_epoch_end": "on_validation_end", "on_test_end": "on_validation_end",
    "on_validation_start": "on_before_validation", "on_validation_epoch_start": "on_before_validation",
    "on_evaluate": "on_validation_end",
    "on_save_checkpoint": "state_dict", "on_load_checkpoint": "load_state_dict", "on_save": "on_before_save",
}

_WARNED: weakref.WeakKeyDictionary[type, set[str]] = weakref.WeakKeyDictionary()  # class -> methods warned of


def unknown_hooks(callback: Callback) -> list[str]:
    """The methods of ``callback``'s class named ``on_...`` that are no trainlab hook, so never called."""
    kind = type(callback)
    return [name for name in dir(kind) if name.startswith("on_") and name not in HOOKS
            and callable(getattr(kind, name, None))]


def warn_unknown_hooks(callback: Callback) -> None:
    """A warning (:func:`trainlab.notices.warn`), once per class and method, for each of :func:`unknown_hooks`,
    naming the trainlab hook that does its work (another framework's name, :data:`OTHER_FRAMEWORKS_HOOKS`)
    or the closest one."""
    kind = type(callback)
    warned = _WARNED.setdefault(kind, set())
    for name in unknown_hooks(callback):
        if name in warned:
            continue
        warned.add(name)
        closest = (f"; did you mean '{OTHER_FRAMEWORKS_HOOKS[name]}'?" if name in OTHER_FRAMEWORKS_HOOKS
                   else did_you_mean(name, list(HOOKS)))
        warn(f"callback {kind.__name__} has a method {name}, which is no trainlab hook and is never "
             f"called{closest} (the hooks: {', '.join(HOOKS)})")


def warn_keras_parameters(callback: Callback) -> None:
    """A warning (:func:`trainlab.notices.warn`), once per class and hook, for each hook ``callback`` overrides
    with Keras's parameters (:func:`_keras_parameters`)."""
    warned = _WARNED.setdefault(type(callback), set())
    for event in Event:
        if overrides(callback, event) and event.value not in warned and (line := _keras_parameters(callback, event)):
            warned.add(event.value)
            warn(line)


# the first parameter Keras's hooks take (on_epoch_end(self, epoch, logs=None), on_train_begin(self, logs=None)):
# trainlab passes the view there, which such a hook reads as an epoch number or a dict
KERAS_FIRST_PARAMETERS = frozenset({"epoch", "batch", "logs"})


def _keras_parameters(callback: Callback, event: Event) -> str | None:
    """The warning for a hook of ``callback`` whose first parameter is named as Keras's hooks name theirs
    (:data:`KERAS_FIRST_PARAMETERS`): it takes trainlab's arguments, so it is called, with the view where it
    expects an epoch or the logs; None for any other hook (or one whose signature cannot be read)."""
    try:
        parameters = list(inspect.signature(getattr(callback, event.value)).parameters)
    except (TypeError, ValueError):
        return None
    if not parameters or parameters[0] not in KERAS_FIRST_PARAMETERS:
        return None
    ours = inspect.signature(getattr(Callback, event.value))
    shown = _without_annotations(inspect.signature(getattr(type(callback), event.value)))
    logs = "; record holds the logs" if "record" in ours.parameters else ""
    return (f"callback {type(callback).__name__}'s {event.value}{shown} names its parameters as Keras's hooks do, "
            f"but trainlab calls it as {event.value}{_without_annotations(ours)}: its {parameters[0]!r} is the "
            f"trainer's view (view.state.epoch and view.state.step are the counts{logs})")
