"""The events of the loop, the ``Callback`` base class, and the narrow view callbacks get of the Trainer.

The loop fires, in this order::

    on_train_start(view)
    per epoch:  on_epoch_start(view)                  # skipped when resuming mid-epoch
                per optimizer step: on_step_start(view), (the Step runs), on_step_end(view, loss)
                    [on_before_validation(view), on_validation_end(view, step record)]  # a mid-epoch
                                                      # validation (eval_every_n_steps)
                on_before_validation(view)            # before every validation pass (see below)
                on_validation_end(view, record)       # record: epoch, step, lr, train_loss, val_* ...
                on_epoch_end(view, record)
    on_train_end(view)                                # always, in a finally block; every callback's runs
    on_before_save(view)                              # before any checkpoint is written (see below)
    on_log(view, record)                              # a step record (log_every_n_steps, eval_every_n_steps)

``on_validation_end`` fires once per validation pass: an epoch that a stop or the step limit ends at the
step of a mid-epoch validation takes that validation's val_* for its record and gets ``on_epoch_end`` alone.

Callbacks see a :class:`TrainerView`, not the Trainer: the progress state
(``view.state``), the control flags (``view.control``: ``stop(reason)``,
``rollback(snapshot)``) and a few readers. ``on_before_save`` lets a callback
that checks things lazily (the divergence guard reads the loss every few steps)
clear every pending check before a checkpoint is written: a checkpoint is never
written from a state a guard has not cleared. ``on_before_validation`` does the same before each validation
pass: a rollback asked there replaces the validation (the loop restores instead), so no validation, and no
``on_validation_end`` (a tuner's pruner reporting to Optuna), sees weights a guard has not cleared.

Each callback has an ``order`` (lower runs first; ``train_end_order``, where set, places its ``on_train_end``
alone) and may keep resumable state
via ``state_dict``/``load_state_dict`` (tensors allowed anywhere in the tree).
Only the hooks a callback overrides are called, so an unused hook costs nothing. A method named like a
hook that is none (``on_train_epoch_end``, ``on_batch_end``: another framework's names) would never be
called: it is warned of once, with the trainlab hook that does its work (:func:`~trainlab.callbacks.hook_rules.unknown_hooks`; a hook with Keras's parameters too).

A callback may add its own values to the records its hooks get (``record["val_auc"] = auc``, as Keras'
``logs``): after each hook the record's values are made JSON values (a NumPy scalar or a 0-d tensor becomes a
Python number), and one that cannot be (a set, an array) is a ConfigError naming the key and the callback,
raised at that hook (:meth:`~trainlab.callbacks.callback_list.CallbackList.fire_record`), so the run's records are never unwritable. What a
user's callback gives ``view.log`` is a step record of the current step (:func:`user_step_record`).

A user's callback is held to the contract before training and while it runs:

- each hook it overrides must take the arguments the loop passes (those of :class:`Callback`'s;
  ``*args``/``**kwargs`` and defaults accepted): one that cannot (``on_epoch_end(self, view)``) is a
  ConfigError naming the class, the hook, its file:line and the parameters to take, when the
  :class:`~trainlab.callbacks.callback_list.CallbackList` is made, so before any file is written (:func:`~trainlab.callbacks.hook_rules.hook_signature_problem`);
- an exception its hook raises is one :class:`CallbackError` line naming the callback, the hook, the step
  and the user's file:line (:class:`UserHook`), as a user's schedule or metric that raises is;
- one that fails in ``on_train_end`` does not keep the built-in callbacks' ``on_train_end`` from running
  (the last checkpoint, the records): its failure is raised after them (:meth:`~trainlab.callbacks.callback_list.CallbackList.fire_to_all`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import torch

from trainlab.config_fields import counted, short_repr
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.state import Control, TrainState
from trainlab.engine.step import loss_weights_of, lr_columns
from trainlab.errors import ConfigError, passes_user_code
from trainlab.exception_origin import exception_line, raised_at
from trainlab.records import plain_record

if TYPE_CHECKING:  # the list imports this module
    from trainlab.callbacks.callback_list import CallbackList


class Event(StrEnum):
    TRAIN_START = "on_train_start"
    EPOCH_START = "on_epoch_start"
    STEP_START = "on_step_start"
    STEP_END = "on_step_end"
    VALIDATION_END = "on_validation_end"
    EPOCH_END = "on_epoch_end"
    TRAIN_END = "on_train_end"
    BEFORE_SAVE = "on_before_save"
    BEFORE_VALIDATION = "on_before_validation"
    LOG = "on_log"


class _Viewed(Protocol):
    """What the view reads of the Trainer (a Protocol, so that this module never imports the loop)."""

    state: TrainState
    control: Control
    plan: Any
    limits: Any
    step: Any
    callbacks: CallbackList
    total_steps: int

    def elapsed(self) -> float: ...

    def end_at_step(self, step: int, reason: str) -> None: ...

    def capture(self) -> Snapshot: ...


class TrainerView:
    """What a callback may read and ask of the Trainer, and nothing more."""

    def __init__(self, trainer: _Viewed):
        self._trainer = trainer
        self._running: UserHook | None = None  # the user's hook now running (set by UserHook); None in trainlab's code

    @property
    def state(self) -> TrainState:
        return self._trainer.state

    @property
    def control(self) -> Control:
        return self._trainer.control

    @property
    def steps_per_epoch(self) -> int:
        return self._trainer.plan.steps_per_epoch

    @property
    def total_steps(self) -> int:
        return self._trainer.total_steps

    @property
    def epochs(self) -> int:
        """The epochs this run trains, ``ceil(total_steps / steps_per_epoch)``: fewer than
        ``strategy.epochs`` when ``max_steps`` ends it first."""
        return -(-self.total_steps // max(self.steps_per_epoch, 1))

    @property
    def elapsed_s(self) -> float:
        """Training wall time so far, summed over resumes (``train_time_s``)."""
        return self._trainer.elapsed()

    def end_at_step(self, step: int, reason: str) -> None:
        """End training at optimizer step ``step``, for ``reason`` (the time budget's planner is the one caller)."""
        self._trainer.end_at_step(step, reason)

    @property
    def model(self) -> torch.nn.Module | None:
        """The step's model (None for steps that train several)."""
        return self._trainer.step.model

    @property
    def lr(self) -> float:
        return self._trainer.step.lr()

    def lrs(self) -> dict[str, Any]:
        """``{"lr": the strategy's base LR as scheduled (the head's under layer-wise decay), "lr/<group>": each
        routed group's LR}``: a record's LR columns (:func:`trainlab.engine.step.lr_columns`)."""
        return lr_columns(self._trainer.step)

    def set_lr_factor(self, factor: float, routes: Mapping[str, float | None] | None = None) -> None:
        """LR of every param group = its base LR x ``factor``, a routed group named in ``routes`` its own
        factor (None: stopped); the LR adapter is the only caller."""
        if routes is None:  # a Step written to the one-argument contract keeps working
            self._trainer.step.set_lr_factor(factor)
        else:
            self._trainer.step.set_lr_factor(factor, routes)

    def loss_weight(self) -> torch.Tensor | None:
        """What the last step's data-loss mean divided by where that is not its sample count (a class-weighted
        loss's summed label weights: :class:`trainlab.engine.step.StepOutput`'s ``weight``); None otherwise."""
        return getattr(self._trainer, "last_loss_weight", None)

    def grad_norm(self) -> float | None:
        """The global L2 norm of the last step's gradients (before clipping), when the step measured it."""
        norm = getattr(self._trainer.step, "last_grad_norm", None)
        return None if norm is None else float(norm)

    def parameters_changed(self) -> None:
        """Tell the step that parameters were frozen or unfrozen (a Step without ``parameters_changed``, optional
        in the contract, keeps no state of which parameters train)."""
        changed = getattr(self._trainer.step, "parameters_changed", None)
        if changed is not None:
            changed()

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the model's weights as they are now: during training hooks (``on_step_end``, ...) the
        weights the optimizer updates; under ``strategy.weight_averaging`` the averaged ones only while the
        model is in eval mode (evaluation), as :meth:`trainlab.engine.weight_averaging.AveragedStep.weights`."""
        return self._trainer.step.weights()

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self._trainer.step.load_weights(weights)

    def loss_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the state of a loss that learns (a learned variance, alpha...); empty for most losses."""
        return loss_weights_of(self._trainer.step)

    def load_loss_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self._trainer.step.load_loss_weights(weights)

    def capture(self) -> Snapshot:
        """Everything needed to resume from here (references, not copies: write it out at once)."""
        return self._trainer.capture()

    def snapshot(self) -> Snapshot:
        """A deep copy of :meth:`capture` to keep while training goes on."""
        return self._trainer.capture().clone()

    def log(self, record: dict[str, Any]) -> None:
        """Keep a step record (metrics.jsonl, checkpoints) and hand it to the ``on_log`` hooks (loggers); its
        values are made JSON values first (a 0-d tensor becomes a number; see :func:`~trainlab.records.plain_record`).

        A record a user's callback logs is a step record of the current step (:func:`user_step_record`:
        ``"scope": "step"`` and ``step`` filled in, trainlab's own keys refused), so that it is never read as
        an epoch record nor written out of step order."""
        hook = self._running
        if hook is not None:
            try:
                record = user_step_record(record, self._trainer.state.step, hook.shown)
            except ConfigError as exc:  # said of the hook that called: not said again by it (UserHook)
                raise CallbackError(str(exc), hook.callback, hook.event) from None
        plain_record(record, "the record given to view.log")
        self._trainer.state.step_records.append(record)
        self._trainer.callbacks.fire_record(Event.LOG, self, record)

    def prepare_save(self) -> bool:
        """Fire ``on_before_save``; False when a callback asked for a rollback (then do not save)."""
        self._trainer.callbacks.fire(Event.BEFORE_SAVE, self)
        return self._trainer.control.rollback_to is None


class Callback:
    """No-op hooks; subclasses override what they need (``view`` is a :class:`TrainerView`)."""

    order: int = 50
    # where on_train_end runs among the others' when not at ``order`` (the checkpoint saver's last checkpoint
    # comes before early stopping's restore_best: it holds the weights training ended with)
    train_end_order: int | None = None
    name: str = ""  # unique per run (the built-in callbacks' names are reserved); defaults to the class name

    def on_train_start(self, view: TrainerView) -> None: ...
    def on_epoch_start(self, view: TrainerView) -> None: ...
    def on_step_start(self, view: TrainerView) -> None: ...
    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None: ...
    def on_validation_end(self, view: TrainerView, record: dict[str, Any]) -> None: ...
    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None: ...
    def on_train_end(self, view: TrainerView) -> None: ...
    def on_before_save(self, view: TrainerView) -> None: ...
    def on_before_validation(self, view: TrainerView) -> None: ...
    def on_log(self, view: TrainerView, record: dict[str, Any]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def callback_name(callback: Callback) -> str:
    return callback.name or type(callback).__name__


def overrides(callback: Callback, event: Event) -> bool:
    return getattr(type(callback), event.value) is not getattr(Callback, event.value)


class CallbackError(ConfigError):
    """A user's callback failed in its hook ``event`` (its code raised, or it gave trainlab what it cannot
    take): one line naming the callback and the hook; ``callback`` is the instance."""

    def __init__(self, message: str, callback: Callback, event: Event):
        super().__init__(message)
        self.callback, self.event = callback, event


# the keys of trainlab's own records (docs/records.md), besides ``lr/<group>``: a user's record logged with
# one of them would be read as another kind of record (an epoch record, an event) or as trainlab's own curve
TRAINLAB_RECORD_KEYS = ("scope", "step", "epoch", "event", "lr", "train_loss", "val_loss", "grad_norm",
                        "samples_per_s", "elapsed_s")


def _says(value: Any, wanted: Any) -> bool:
    """Whether ``value`` (a user's) is ``wanted`` (a bool is no step number; a tensor of several values is not)."""
    try:
        return not isinstance(value, bool) and bool(value == wanted)
    except (TypeError, ValueError, RuntimeError):
        return False


def user_step_record(record: Any, step: int, who: str) -> dict[str, Any]:
    """``record``, logged by ``who`` (``callback 'L' (on_step_end)``) with ``view.log``, as the step record it
    makes: ``{"scope": "step", "step": step, **record}``. A key of :data:`TRAINLAB_RECORD_KEYS` (or
    ``lr/<group>``) is trainlab's: a ConfigError naming it (``"scope": "step"`` and ``"step": step`` say what
    trainlab fills in, and are taken), as is a record that is no dict."""
    if not isinstance(record, Mapping):
        raise ConfigError(f"{who} gave view.log {short_repr(record)} (a {type(record).__name__}); a record is a "
                          "dict of values, e.g. view.log({'my_loss': value})")
    for key, value in record.items():
        if key == "scope" and _says(value, "step") or key == "step" and _says(value, step):
            continue
        if key == "step":
            raise ConfigError(f"{who} logged a record with 'step': {short_repr(value)} at step {step}; view.log "
                              "records at the current step, which trainlab fills in: leave 'step' out (a step "
                              "number of yours goes under a name of its own, e.g. 'my_step')")
        if key in TRAINLAB_RECORD_KEYS or isinstance(key, str) and key.startswith("lr/"):
            raise ConfigError(f"{who} logged a record with the key {short_repr(key)}, which is trainlab's own: "
                              "a logged record is a step record of the current step, whose scope and step "
                              f"trainlab fills in (its keys {', '.join(TRAINLAB_RECORD_KEYS)} and lr/<group> "
                              f"are trainlab's); log the value under a name of its own, e.g. 'my_{key}'")
    return {"scope": "step", "step": step, **{k: v for k, v in record.items() if k not in ("scope", "step")}}


class UserHook:
    """A hook of a user's callback as the loop calls it (trainlab's own hooks are called bare).

    While it runs, the view knows whose it is (:meth:`TrainerView.log` checks what the user's code gives
    it). An exception the user's code raises becomes one :class:`CallbackError` naming the callback, the
    hook, the step and the place in the user's files (:func:`~trainlab.exception_origin.raised_at`), e.g.
    ``callback 'Boom' (on_step_end) raised ValueError: my callback failed at step 5 (at raiser.py:6)``, the
    exception chained. A ConfigError trainlab raised in the hook's call (a value ``view.log`` cannot write) is
    told as the hook's (``callback 'L' (on_step_end) at step 4: record key ...``); trainlab's other errors (a
    TrainingError, Interrupted) and the machine's (OSError, MemoryError) pass as raised, as for a user's
    schedule or metric."""

    __slots__ = ("callback", "event", "method")

    def __init__(self, callback: Callback, event: Event):
        self.callback, self.event = callback, event
        self.method: Callable[..., None] = getattr(callback, event.value)

    @property
    def shown(self) -> str:
        return f"callback {callback_name(self.callback)!r} ({self.event.value})"

    def __call__(self, view: TrainerView, *args: Any) -> None:
        outer = getattr(view, "_running", None)  # a user's hook that fired this one (view.log -> on_log)
        view._running = self
        try:
            self.method(view, *args)
        except CallbackError:
            raise
        except ConfigError as exc:
            raise CallbackError(f"{self.shown}{self._at(view)}: {exc}", self.callback, self.event) from exc
        except Exception as exc:
            if passes_user_code(exc):  # trainlab's own, the machine's (a full disk, memory running out)
                raise
            where = raised_at(exc)
            raise CallbackError(f"{self.shown} raised {exception_line(exc)}{self._at(view)}"
                                f"{f' (at {where})' if where else ''}", self.callback, self.event) from exc
        finally:
            view._running = outer

    @staticmethod
    def _at(view: TrainerView) -> str:
        step = getattr(getattr(view, "state", None), "step", None)
        return "" if step is None else f" at step {step}"


def user_callbacks(callbacks: Callback | Iterable[Callback] | None) -> list[Callback]:
    """``callbacks=`` as ``trainlab.fit`` takes it: one Callback instance, an iterable of them, or None (none).
    Anything else (a dict, a str, a number) is one ConfigError naming it; the elements are checked by
    :class:`~trainlab.callbacks.callback_list.CallbackList`."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if isinstance(callbacks, Mapping):
        raise ConfigError(f"callbacks must be a trainlab.Callback instance or a list of them; got a "
                          f"{type(callbacks).__name__} (of {counted(len(callbacks), 'item')}): give "
                          "its callbacks as a list, e.g. list(callbacks.values())")
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Iterable):
        shown = callbacks.__name__ if isinstance(callbacks, type) else type(callbacks).__name__
        raise ConfigError(f"callbacks must be a trainlab.Callback instance or a list of them; got {shown}")
    return list(callbacks)


def is_builtin(callback: Callback) -> bool:
    """Whether ``callback`` is one of trainlab's own (its class defined in a trainlab module), not the user's."""
    return type(callback).__module__.split(".")[0] == "trainlab"


def builtin_callback_names() -> list[str]:
    """The names trainlab's own callbacks run under (those of the modules of :mod:`trainlab.callbacks`, and of
    any other trainlab module loaded, such as tune's pruning callback): reserved, as a callback of yours with
    one of them clashes with the built-in one in each run that has it."""
    import importlib
    import pkgutil

    import trainlab.callbacks as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    kinds, names = [Callback], set()
    while kinds:
        kind = kinds.pop()
        kinds.extend(kind.__subclasses__())
        if kind.__module__.split(".")[0] == "trainlab" and vars(kind).get("name"):
            names.add(kind.name)
    return sorted(names)
