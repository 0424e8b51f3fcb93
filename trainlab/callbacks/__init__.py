"""Built-in callbacks and the ``Callback`` base class users subclass (see :mod:`trainlab.callbacks.base`)."""

from trainlab.callbacks.base import Callback, CallbackList, Event

__all__ = ["Callback", "CallbackList", "Event"]
