"""trainlab.exception_origin: an exception's one-line text, and the file:line of the user's own code that
raised it (the innermost frame outside trainlab, installed packages and the standard library)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trainlab.exception_origin import exception_line, first_line, raised_at

USER_CODE = '''import json


def parse(text):
    return json.loads(text)


def fails():
    raise KeyError("late boom")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The module ``eo_user`` in ``tmp_path/code`` (the working directory is ``tmp_path``)."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "eo_user.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    import eo_user

    yield eo_user
    sys.modules.pop("eo_user", None)


def _raised(call, *args) -> BaseException:
    with pytest.raises(Exception) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize(("message", "first"), [("boom", "boom"), ("\n  \n  boom \nsecond line", "boom"), ("", ""),
                                                (" \n ", "")])
def test_first_line_is_the_first_non_blank_line_stripped(message, first):
    assert first_line(RuntimeError(message)) == first


def test_exception_line_is_the_type_and_the_first_line_or_the_type_alone():
    assert exception_line(RuntimeError("boom\nmore")) == "RuntimeError: boom"
    assert exception_line(KeyError("late boom")) == "KeyError: 'late boom'"  # a KeyError's str quotes its key
    assert exception_line(StopIteration()) == "StopIteration"


def test_raised_at_is_the_users_line_relative_to_the_working_directory(user_module):
    assert raised_at(_raised(user_module.fails)) == "code/eo_user.py:9"


def test_raised_at_skips_the_library_frames_under_the_users_call(user_module):
    """json.loads raised, in the standard library: the user's line that called it is named."""
    assert raised_at(_raised(user_module.parse, "{")) == "code/eo_user.py:5"


def test_raised_at_is_an_absolute_path_outside_the_working_directory(user_module, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert raised_at(_raised(user_module.fails)) == f"{(tmp_path / 'code' / 'eo_user.py').resolve()}:9"


def test_raised_at_is_none_when_every_frame_is_library_code():
    """Raised and caught in the standard library (a thread pool's worker calling json.loads): no user's line."""
    with ThreadPoolExecutor(1) as pool:
        exc = pool.submit(json.loads, "{").exception()
    assert isinstance(exc, ValueError) and exc.__traceback__ is not None
    assert raised_at(exc) is None
    assert raised_at(RuntimeError("never raised")) is None  # no traceback at all


def test_a_test_files_own_frame_counts_as_the_users(tmp_path):
    """Code outside trainlab, site-packages and the standard library is the user's: this file's line."""
    line = test_a_test_files_own_frame_counts_as_the_users.__code__.co_firstlineno + 4
    with pytest.raises(ZeroDivisionError) as caught:
        1 / 0  # noqa: B018
    assert raised_at(caught.value).endswith(f"{Path(__file__).name}:{line}")
