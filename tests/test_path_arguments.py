"""The Python API's path arguments: a value that is no path is one ConfigError naming the argument, as the
rest of the API refuses bad arguments (pathlib's TypeError came out of load_run(123), resume(123),
evaluate_run(123), train(out=123), write_report(5, ...), write_report(..., None))."""

from __future__ import annotations

import pytest

from trainlab.errors import ConfigError
from trainlab.experiment import train
from trainlab.inference import load_run
from trainlab.report import write_report
from trainlab.run_evaluation import evaluate_run
from trainlab.run_resume import resume


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: load_run(123), "load_run's path"),
    (lambda: resume(123), "resume's path"),
    (lambda: evaluate_run(None), "evaluate_run's path"),
    (lambda: train({"name": "x"}, out=123), "train's out"),
    (lambda: write_report(5, "r.html"), "write_report's paths"),
    (lambda: write_report([b"runs"], "r.html"), "write_report's paths"),
    (lambda: write_report("runs", None), "write_report's out"),
])
def test_a_path_argument_that_is_no_path_is_one_config_error_naming_it(call, argument):
    with pytest.raises(ConfigError) as refused:
        call()
    message = str(refused.value)
    assert message.startswith(argument) and "must be a path" in message and "\n" not in message


@pytest.mark.parametrize("given", ["yes", "false", 1])
def test_load_runs_allow_code_is_a_bool(given):
    """allow_code="false" was taken as true (any truthy value opted in to running the run's code)."""
    with pytest.raises(ConfigError, match="allow_code must be True, False or None"):
        load_run("runs/x", allow_code=given)
