"""Shared fixtures: tiny configs written into tmp folders."""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml

# On a GPU machine (benchmarks/gpu/check.sh runs this suite with runtime.device auto = cuda) fp32 must
# mean fp32: TF32 convolutions and matmuls would loosen every comparison with a float32/64 reference.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


# A forked child that returns into pytest (an exception escaping its ``os._exit``) runs on as a copy of this
# test process: under pytest-xdist it reports through the worker's channel too, and the controller's
# duplicate "test complete" ended CI in an INTERNALERROR (worksteal's list.remove) that named no test. Such
# a copy is stopped at its first report, exit 70, and says where: its parent's test sees that exit code.
_TEST_PROCESS = os.getpid()


def _stop_an_escaped_fork(where: str) -> None:
    if os.getpid() != _TEST_PROCESS:
        os.write(2, f"a forked child of test process {_TEST_PROCESS} returned into pytest ({where}): exit 70\n".encode())
        os._exit(70)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item, call):
    _stop_an_escaped_fork(f"{item.nodeid}, {call.when}")


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo):
    _stop_an_escaped_fork("KeyboardInterrupt")


@pytest.hookimpl(tryfirst=True)
def pytest_internalerror(excrepr, excinfo):
    _stop_an_escaped_fork("internal error")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    _stop_an_escaped_fork("session finish")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Started in the background by a shell without job control (`make test &`, `nohup ... &`), the test process
# inherits SIGINT ignored (POSIX), and every test that interrupts a run with SIGINT saw nothing happen: 23
# failed with "DID NOT RAISE Interrupted". trainlab rightly leaves an ignored SIGINT ignored; the tests need
# Python's own handler, as a terminal or CI gives it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _stop_signals_as_found(request):
    """Every test leaves SIGINT and SIGTERM as it found them: unblocked in this thread, with the same handlers.
    A test that left one blocked (or ignored) made every later test in its worker that interrupts a run fail
    with "DID NOT RAISE Interrupted", naming none of the cause; it fails itself now, and the next test starts
    clean."""
    blocked = set(signal.pthread_sigmask(signal.SIG_BLOCK, ()))
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    left = [signum for signum in STOP_SIGNALS if signum in set(signal.pthread_sigmask(signal.SIG_BLOCK, ()))
            and signum not in blocked]
    changed = [signum for signum in STOP_SIGNALS if signal.getsignal(signum) != handlers[signum]]
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    for signum in changed:
        signal.signal(signum, handlers[signum])
    if left or changed:
        pytest.fail(f"{request.node.nodeid} left {', '.join(signal.Signals(s).name for s in left)} blocked"
                    if left else f"{request.node.nodeid} changed the handler of "
                    f"{', '.join(signal.Signals(s).name for s in changed)}", pytrace=False)


@pytest.fixture(autouse=True)
def _one_thread():
    """Test tensors are tiny: a second intra-op thread only adds contention on a 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _data_dir_env(monkeypatch):
    """Every test starts without TRAINLAB_DATA_DIR, and what it set is undone: ``trainlab --data-dir`` sets the
    variable for the rest of the process (a CLI run ends with it), and ``main([... "--data-dir", ...])`` in
    one test must not change the data paths of the tests after it."""
    monkeypatch.setenv("TRAINLAB_DATA_DIR", "")  # records the value before the test, restored after it
    monkeypatch.delenv("TRAINLAB_DATA_DIR")


LINREG = {
    "name": "linreg-gd",
    "seed": 0,
    "data": {"source": "synthetic_linear", "n": 100},
    "model": {"name": "linear"},
    "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": "full", "epochs": 5000},
    "metrics": ["mse", "mae", "r2"],
}

DIGITS_MLP = {
    "name": "digits-mlp",
    "seed": 0,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.1},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 32,
                 "epochs": 3},
    "metrics": ["accuracy", "precision", "recall", "f1"],
    "output": {"progress": "off"},
}


def least_squares(n: int = 100, seed: int = 0):
    import numpy as np

    np.random.seed(seed)
    x = np.linspace(0, 9, n).reshape(-1, 1)
    y = 2 * x + 1 + np.random.normal(size=(n, 1))
    slope, intercept = np.linalg.lstsq(np.hstack([x, np.ones_like(x)]), y, rcond=None)[0].ravel()
    return slope, intercept


@pytest.fixture
def write_config(tmp_path: Path):
    def write(base: dict, name: str = "config.yaml", **changes) -> Path:
        config = copy.deepcopy(base)
        for dotted, value in changes.items():
            node = config
            *parents, last = dotted.split("__")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """tests/tiny_bert.py's 2-layer BERT and tokenizer, saved once per session."""
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    from tests.tiny_bert import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
