"""module:attr references: the user's own code runs, the standard library, installed packages and a
run folder's planted references do not without --allow-code / TRAINLAB_ALLOW_CODE."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import yaml

from tests.conftest import LINREG
from trainlab.cli import main
from trainlab.code_policy import allow_local_modules, code_policy, command_code_policy
from trainlab.errors import ConfigError
from trainlab.user_code import import_reference

USER_MODULE = '''
import os
import torch.nn as nn
from shutil import rmtree


def net(input_shape, output_dim):
    return nn.Linear(input_shape[0], output_dim)


class Net(nn.Module):
    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.layer = nn.Linear(input_shape[0], output_dim)

    def forward(self, x):
        return self.layer(x)


helper = object()
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A config folder holding a user module, and a separate working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "usernet_cp.py").write_text(USER_MODULE)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("TRAINLAB_ALLOW_CODE", raising=False)
    yield folder
    sys.modules.pop("usernet_cp", None)


@pytest.mark.parametrize("reference", ["os:system", "subprocess:run", "os:remove", "builtins:eval",
                                       "shutil:rmtree", "importlib:import_module", "pickle:loads",
                                       "numpy:load", "torch:load", "trainlab.atomic:write_text",
                                       "trainlab.run_folder:clean_stale_temporaries"])
def test_references_outside_the_users_code_are_refused_before_import(reference):
    with command_code_policy(False), pytest.raises(ConfigError, match=f"config references '{reference}', which is "
                                                                      "outside your own code; pass --allow-code to run it"):
        import_reference(reference, "model")


def test_a_refusal_from_python_names_the_python_opt_in_not_the_cli_flag(project, tmp_path, monkeypatch):
    """trainlab.fit with a 'module:attr' outside the user's code said "pass --allow-code", a flag of the CLI
    that a Python caller cannot pass; the refusal names code_policy (load_run's allow_code for a run folder)."""
    import trainlab

    with pytest.raises(ConfigError) as raised:
        trainlab.fit(torch.nn.Linear(2, 1), (torch.randn(8, 2), torch.randn(8)),
                     {"loss": "mse", "optimizer": {"name": "torch.optim:SGD", "lr": 0.1}, "epochs": 1})
    assert str(raised.value) == ("config references 'torch.optim:SGD', which is outside your own code; from Python, "
                                 "'with trainlab.code_policy.code_policy(allow=True):' around the call runs it (or set "
                                 "TRAINLAB_ALLOW_CODE=1)")
    with code_policy(allow=True):  # what it says to do: the opt-in runs it
        result = trainlab.fit(torch.nn.Linear(2, 1), (torch.randn(8, 2), torch.randn(8)),
                              {"loss": "mse", "optimizer": {"name": "torch.optim:SGD", "lr": 0.1}, "epochs": 1})
    assert len(result.history) == 1
    out = _run_of_the_users_net(project, tmp_path)
    with pytest.raises(ConfigError) as raised:
        trainlab.load_run(out)
    assert "from Python, load_run(..., allow_code=True) or 'with trainlab.code_policy.code_policy(allow=True):'" \
        in str(raised.value) and "--allow-code" not in str(raised.value)
    with command_code_policy(False, run_dir=out), pytest.raises(ConfigError) as raised:  # a CLI command names its flag
        import_reference("usernet_cp:Net", "model")
    assert "pass --allow-code to run it" in str(raised.value) and "from Python" not in str(raised.value)


def test_the_users_module_beside_the_config_is_allowed(project):
    with allow_local_modules(project):
        assert import_reference("usernet_cp:net", "model").__name__ == "net"
        assert import_reference("usernet_cp:Net", "model").__name__ == "Net"


@pytest.mark.parametrize("reference, message", [
    ("usernet_cp:rmtree", "outside your own code"),  # a re-export of shutil.rmtree
    ("usernet_cp:os", "reaches the module 'os'"),
    ("usernet_cp:os.system", "reaches the module 'os'"),
    ("usernet_cp:helper", "not a class or function"),
    ("usernet_cp:__builtins__", "private attribute"),
    ("usernet_cp:net.__globals__", "private attribute"),
])
def test_a_user_module_is_no_door_to_other_code(project, reference, message):
    with allow_local_modules(project), pytest.raises(ConfigError, match=message):
        import_reference(reference, "model")


def test_a_run_folder_config_trusts_no_folder_without_the_opt_in(project):
    with allow_local_modules(project):
        with code_policy(local=False), pytest.raises(ConfigError, match="imports no code without the opt-in, not even your own modules"):
            import_reference("usernet_cp:net", "model")
        with code_policy(allow=True, local=False):
            assert import_reference("usernet_cp:net", "model").__name__ == "net"


def test_the_opt_in_still_checks_the_contracts_shape(monkeypatch):
    monkeypatch.setenv("TRAINLAB_ALLOW_CODE", "1")
    assert import_reference("shutil:rmtree", "model").__name__ == "rmtree"  # the user asked for it
    with pytest.raises(ConfigError, match="not a class or function"):
        import_reference("os:system", "model")  # a builtin is never a component factory


def test_trainlab_references_reach_registered_factories_only():
    import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)
    from trainlab.losses import LOSSES

    target = LOSSES.get("mse")
    reference = f"{target.__module__}:{target.__qualname__}"
    assert import_reference(reference, "loss") is target


def test_command_policy_trusts_the_config_folder_but_not_a_run_folder(project):
    with command_code_policy(False, config=project / "c.yaml"):
        assert import_reference("usernet_cp:net", "model")
    with command_code_policy(False, run_dir=project), pytest.raises(ConfigError, match="not even your own modules"):
        import_reference("usernet_cp:net", "model")


def test_train_with_a_user_model_then_eval_needs_the_opt_in(project, tmp_path, capsys):
    config = {**LINREG, "model": {"name": "usernet_cp:Net"}, "output": {"progress": "off"},
              "strategy": {**LINREG["strategy"], "epochs": 2}}
    path = project / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2  # someone else's run folder could have written that reference
    err = capsys.readouterr().err
    assert "imports no code without the opt-in, not even your own modules" in err
    assert "pass --allow-code to run it" in err and "from Python" not in err
    sys.modules.pop("usernet_cp", None)  # imported by the training: make eval find it again
    assert os.getcwd() != str(project)
    # the opt-in runs it from any directory: run.json records the folders the run was trained from
    assert str(project) in json.loads((out / "run.json").read_text())["code_folders"]
    assert main(["--allow-code", "eval", str(out)]) == 0
    assert "usernet_cp" in sys.modules
    assert str(project) not in sys.path  # only for the command
    sys.modules.pop("usernet_cp", None)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "code_folders": []}))  # a run from before the record
    assert main(["--allow-code", "eval", str(out)]) == 2
    assert "no module 'usernet_cp' in " in capsys.readouterr().err  # where it looked, not only Python's words
    os.chdir(project)  # then the working directory is where the opt-in imports from
    assert main(["--allow-code", "eval", str(out)]) == 0


def _run_of_the_users_net(project, tmp_path):
    """A finished run whose model is the project's own ``usernet_cp:Net``, the module then unloaded."""
    config = {**LINREG, "model": {"name": "usernet_cp:Net"}, "output": {"progress": "off"},
              "strategy": {**LINREG["strategy"], "epochs": 1}}
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["train", str(project / "config.yaml"), "--out", str(out), "--quiet"]) == 0
    sys.modules.pop("usernet_cp", None)
    return out


def test_load_run_imports_the_runs_own_code_only_with_allow_code(project, tmp_path):
    import trainlab

    out = _run_of_the_users_net(project, tmp_path)
    with pytest.raises(ConfigError, match="imports no code without the opt-in, not even your own modules"):
        trainlab.load_run(out)
    run = trainlab.load_run(out, allow_code=True)  # from tmp_path/work: found in the recorded folder
    assert type(run.model).__name__ == "Net"
    assert run.predict(torch.zeros(4, *run.input_shape)).shape == (4,)


def test_a_run_whose_code_folder_moved_says_where_it_looked_and_where_to_run_from(project, tmp_path, capsys):
    """The project folder renamed after training: the opt-in's import failed with a bare "ModuleNotFoundError:
    No module named 'usernet_cp'"; it names the recorded folder that is gone and what to do."""
    import trainlab

    out = _run_of_the_users_net(project, tmp_path)
    project.rename(tmp_path / "moved")
    with pytest.raises(ConfigError) as refused:
        trainlab.load_run(out, allow_code=True)
    assert str(refused.value).endswith(
        f"the run was trained with it from {project}, which no longer exists: run from the folder that holds "
        "usernet_cp.py (or the package usernet_cp/) now, or put that folder on PYTHONPATH")
    assert str(refused.value).startswith("cannot import module 'usernet_cp' for model 'usernet_cp:Net': no module "
                                         "'usernet_cp' in ")
    assert main(["--allow-code", "eval", str(out)]) == 2
    assert capsys.readouterr().err.count("which no longer exists: run from the folder") == 1
    os.chdir(tmp_path / "moved")  # as it says
    assert main(["--allow-code", "eval", str(out)]) == 0


def test_an_explicit_allow_code_false_wins_over_the_environment_variable(project, tmp_path, monkeypatch):
    """A service calling load_run(..., allow_code=False) imported a sent run's code when TRAINLAB_ALLOW_CODE=1
    was set anywhere up its process tree; docs/predict.md promises a run imports nothing without the opt-in."""
    import trainlab

    out = _run_of_the_users_net(project, tmp_path)
    monkeypatch.setenv("TRAINLAB_ALLOW_CODE", "1")
    with pytest.raises(ConfigError, match="imports no code without the opt-in, not even your own modules"):
        trainlab.load_run(out, allow_code=False)
    assert "usernet_cp" not in sys.modules
    with code_policy(allow=False), pytest.raises(ConfigError, match="outside your own code"):
        import_reference("shutil:rmtree", "model")
    assert import_reference("shutil:rmtree", "model").__name__ == "rmtree"  # undecided: the variable decides


def test_a_module_in_the_working_directory_is_yours(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    config = tmp_path / "elsewhere" / "config.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump({**LINREG, "model": {"name": "usernet_cp:net"}, "output": {"progress": "off"},
                                      "strategy": {**LINREG["strategy"], "epochs": 1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0


def test_planted_code_in_a_run_folder_never_runs_on_eval(project, tmp_path, capsys):
    config = {**LINREG, "output": {"progress": "off"}, "strategy": {**LINREG["strategy"], "epochs": 1}}
    path = project / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 0
    marker = tmp_path / "pwned"
    planted = yaml.safe_load((out / "config.yaml").read_text())
    planted["strategy"]["init"] = {"name": "os:system", "command": f"touch {marker}"}
    (out / "config.yaml").write_text(yaml.safe_dump(planted))
    capsys.readouterr()
    assert main(["eval", str(out)]) == 3  # the config no longer matches the hash run.json recorded
    assert "was changed after training" in capsys.readouterr().err
    info = json.loads((out / "run.json").read_text())
    del info["resolved_config_hash"]  # a run from before the hash was recorded: the code policy stops it
    (out / "run.json").write_text(json.dumps(info))
    assert main(["eval", str(out)]) == 2
    assert "os:system" in capsys.readouterr().err
    assert main(["resume", str(out)]) == 0  # a finished run: nothing to resume, nothing built
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert main(["resume", str(out)]) == 2  # one that builds its model refuses the planted code
    assert "os:system" in capsys.readouterr().err
    assert not marker.exists()


def test_compare_reports_runs_of_the_users_own_model_but_not_code_planted_in_them(project, tmp_path, capsys):
    config = {**LINREG, "model": {"name": "usernet_cp:Net"}, "output": {"progress": "off"},
              "strategy": {**LINREG["strategy"], "epochs": 2}}
    (project / "base.yaml").write_text(yaml.safe_dump(config))
    (project / "s.yaml").write_text("strategies:\n  plain:\n")
    out = tmp_path / "cmp"
    argv = ["compare", str(project / "base.yaml"), "--strategies", str(project / "s.yaml"), "--seeds", "1",
            "--jobs", "1", "--out", str(out), "--metric", "test_r2"]
    assert main(argv) == 0
    report = (out / "report.html").read_text()
    assert "could not rebuild" not in report and "outside your own code" not in report  # the user's own model
    capsys.readouterr()
    assert main(["report", str(out), "-o", str(tmp_path / "later.html")]) == 0  # a folder read later: opt-in
    assert "imports no code without the opt-in, not even your own modules" in (tmp_path / "later.html").read_text()

    run = out / "runs" / "base" / "plain" / "seed-0"
    marker = tmp_path / "pwned"
    planted = yaml.safe_load((run / "config.yaml").read_text())
    planted["strategy"]["init"] = {"name": "os:system", "command": f"touch {marker}"}
    (run / "config.yaml").write_text(yaml.safe_dump(planted))  # run.json unchanged: compare skips the run
    assert main(argv) == 0
    assert "was changed after training" in (out / "report.html").read_text()  # not rebuilt: not trained so
    info = json.loads((run / "run.json").read_text())
    del info["resolved_config_hash"]  # a run from before the hash was recorded: the code policy stops it
    (run / "run.json").write_text(json.dumps(info))
    assert main(["report", str(out), "-o", str(tmp_path / "planted.html")]) == 0
    assert "imports no code without the opt-in, not even your own modules" in (tmp_path / "planted.html").read_text()  # not trusted: it names other code
    assert not marker.exists()


def _reference_name_in_worker(reference: str) -> str:
    return import_reference(reference, "model").__name__


def test_a_spawned_compare_worker_keeps_the_parents_code_policy(project):
    """compare spawns its workers where CUDA is present: they start without the parent's ContextVar."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from trainlab.code_policy import current_policy
    from trainlab.compare.pool import _pin_worker

    with allow_local_modules(project):  # as for a base config in project/, run from another folder
        policy = current_policy()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn, initializer=_pin_worker, initargs=(1, policy)) as pool:
        assert pool.submit(_reference_name_in_worker, "usernet_cp:net").result() == "net"
        # the parent's own policy here trusts only the working directory, where usernet_cp is not
        with pytest.raises(ConfigError, match="cannot import module 'usernet_cp'"):
            _reference_name_in_worker("usernet_cp:net")
