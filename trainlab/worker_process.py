"""What a worker process of ``compare --jobs`` and ``tune --jobs`` sets up before its first run.

Both pools' workers run trainlab runs for a parent that decides on interrupts: each takes its share of
the cores (torch threads), the parent's code policy (a spawned interpreter starts without it), says each
warning once with the pool's other workers (``notices.shared_once``), takes a repeated signal as the same stop (``SignalStop.escalates`` off: a group-wide signal
and the one the parent passes on are one stop, with its checkpoint), and dies with the parent
(``PR_SET_PDEATHSIG`` on Linux, with the signal the pool asks for). Each pool then installs its own
handlers for signals between runs (:mod:`trainlab.compare.pool`, :mod:`trainlab.tune.workers`).
"""

from __future__ import annotations

import contextlib
import sys

from trainlab.code_policy import CodePolicy, set_policy
from trainlab.notices import each_once_from_now


def start_worker(threads: int, policy: CodePolicy | None, death_signal: int, said: str | None = None) -> None:
    """Set up this worker process (the module docstring); ``death_signal`` reaches it when its parent dies;
    ``said``: the pool's folder of the warnings said (``notices.shared_once``)."""
    import torch

    from trainlab.callbacks.signal_stop import SignalStop

    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, death_signal)  # 1 = PR_SET_PDEATHSIG
    torch.set_num_threads(threads)
    each_once_from_now(said)  # as the parent's runs: each warning once, by all the pool's workers together
    if policy is not None:
        set_policy(policy)
    SignalStop.escalates = False
