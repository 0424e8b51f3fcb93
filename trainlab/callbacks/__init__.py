"""Built-in callbacks and the ``Callback`` base class users subclass (see :mod:`trainlab.callbacks.base`)."""

from trainlab.callbacks.base import Callback, Event
from trainlab.callbacks.callback_list import CallbackList

__all__ = ["Callback", "CallbackList", "Event"]
