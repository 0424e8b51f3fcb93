"""SIGINT and SIGTERM held while a pool forks its workers (trainlab.signal_mask).

A forked worker ran the parent's handlers until its initializer replaced them: a SIGTERM the parent passed on
to a worker still starting (a Ctrl-C as the pool started) raised the parent's KeyboardInterrupt in it, and
before multiprocessing's start-up was inside its ``try`` the fork returned into the parent's code and ran on.
Now the workers start with both signals blocked, and their initializers unblock them once their own handlers
are in place.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

from tests.child_env import skip_where_compare_spawns
from tests.compare_configs import iris_base
from trainlab.compare import compare
from trainlab.compare.strategies import parse_strategies
from trainlab.signal_mask import HELD_SIGNALS, release_stop_signals, stop_signals_held

HELD = {int(s) for s in HELD_SIGNALS}


def _blocked() -> list[int]:
    return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []) if int(s) in HELD)


def test_a_signal_to_the_thread_inside_the_hold_reaches_the_handler_once_the_hold_ends():
    """Sent to this (the main) thread: one sent to the process may be taken by another thread (pytest-xdist's,
    torch's), whose C handler flags it for the main thread at once; the hold is for the forked children."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with stop_signals_held():
            assert _blocked() == sorted(HELD)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            assert received == []
        assert received == [signal.SIGTERM] and _blocked() == []
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_handler_raising_as_the_hold_begins_leaves_nothing_blocked():
    """A signal already due runs its handler inside the call that blocks: its KeyboardInterrupt left both
    signals blocked for good when the mask was saved by that same call."""
    real = signal.pthread_sigmask
    calls: list[tuple] = []

    def raising_on_block(how, mask):
        result = real(how, mask)
        calls.append((how, tuple(mask)))
        if how == signal.SIG_BLOCK and tuple(mask):
            raise KeyboardInterrupt
        return result

    signal.pthread_sigmask = raising_on_block
    try:
        with pytest.raises(KeyboardInterrupt), stop_signals_held():
            pass
    finally:
        signal.pthread_sigmask = real
    assert _blocked() == [] and len(calls) == 3


def test_release_unblocks_both_signals():
    with stop_signals_held():
        release_stop_signals()
        assert _blocked() == []
    assert _blocked() == []


def _recording(initializer, record: Path):
    """``initializer`` wrapped to append the blocked stop signals before and after it ran to ``record``."""

    def wrapped(*args) -> None:
        before = _blocked()
        initializer(*args)
        with open(record, "a") as handle:
            handle.write(json.dumps([before, _blocked()]) + "\n")

    return wrapped


def test_decoding_workers_start_with_the_stop_signals_held_and_release_them(tmp_path, monkeypatch):
    from PIL import Image

    import trainlab.data.image_decode as images

    folder, record = tmp_path / "images", tmp_path / "masks.jsonl"
    folder.mkdir()
    for i in range(images.POOL_MIN_FILES):
        Image.new("RGB", (4, 4), (i % 256, 0, 0)).save(folder / f"{i}.png")
    monkeypatch.setattr(images, "_quiet_worker", _recording(images._quiet_worker, record))
    files = sorted(folder.glob("*.png"))
    assert images.decode_images(files, (4, 4), "RGB", False, workers=2).shape == (len(files), 3, 4, 4)
    masks = [json.loads(line) for line in record.read_text().splitlines()]
    assert masks == [[sorted(HELD), []]] * 2
    assert _blocked() == []  # the parent's mask is back


def test_compare_workers_start_with_the_stop_signals_held_and_release_them(tmp_path, monkeypatch):
    from trainlab.compare import pool

    skip_where_compare_spawns("a patched pool._pin_worker")
    record = tmp_path / "masks.jsonl"
    monkeypatch.setattr(pool, "_pin_worker", _recording(pool._pin_worker, record))
    strategies = parse_strategies({"strategies": {"a": None, "b": None}})
    compare({"iris": iris_base(epochs=1)}, strategies, tmp_path / "cmp", seeds=1, jobs=2, live=False, quiet=True)
    masks = [json.loads(line) for line in record.read_text().splitlines()]
    assert masks == [[sorted(HELD), []]] * 2
    assert _blocked() == []


@pytest.mark.parametrize("held", [True, False])
def test_a_fork_inside_the_hold_starts_with_both_blocked_and_one_outside_it_with_neither(held):
    """The mechanism the pools rely on: a forked child inherits the mask of the thread that forked it."""
    import multiprocessing

    reader, writer = multiprocessing.get_context("fork").Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=lambda: writer.send(_blocked()))
    if held:
        with stop_signals_held():
            process.start()
    else:
        process.start()
    assert reader.recv() == (sorted(HELD) if held else [])
    process.join(30)
