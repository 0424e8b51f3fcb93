"""The suite's guard against a forked child that returns into pytest (tests/conftest.py).

CI ended in an xdist INTERNALERROR (``list.remove(x): x not in list`` in the worksteal scheduler) after
"1 failed": a forked child whose ``os._exit`` an exception skipped ran on as a second copy of its test
process, reporting the same test through the same channel. The copy is now stopped at its first report.
"""

from __future__ import annotations

import os


def test_a_forked_child_that_returns_into_pytest_is_stopped_with_exit_70():
    pid = os.fork()
    if pid == 0:
        os.write = lambda fd, data: len(data)  # this copy's own module: the guard's line stays out of the output
        raise RuntimeError("this child skips its os._exit: the guard must end it at its report")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 70
