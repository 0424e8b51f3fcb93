"""A module named by a config comes from the folder trusted for that config, whatever an earlier config
imported under the same name: two folders, each with its own ``idnet.py``, give two models (load_run of
each, a comparison of both, its forked and spawned workers); an installed package keeps plain import."""

from __future__ import annotations

import inspect
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml
from safetensors.numpy import load_file

import trainlab
from trainlab.cli import main
from trainlab.code_policy import (
    allow_local_modules,
    code_policy,
    own_folder_policy,
    set_policy,
    using_policy,
)
from trainlab.errors import ConfigError
from trainlab.user_code import import_reference

NET = '''
import torch.nn as nn



def make_net(input_shape, output_dim, {option}):
    (features,) = input_shape
    return nn.Sequential(nn.Linear(features, {option}), nn.ReLU(), nn.Linear({option}, output_dim))
'''

WIDTH = "WIDTH = {hidden}\n\n\ndef width():\n    return WIDTH\n"  # no torch: a spawned worker starts in 0.3 s
HIDDEN = {"extA": 4, "extB": 9}  # each folder's own width: the reference every model is checked against
MODULES = ("idnet", "idwidth", "idpkg", "yaml")


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """extA/ and extB/, each with a base config and its own idnet.py / idwidth.py / idpkg package; the
    working directory holds none of them."""
    made = {}
    for name, hidden in HIDDEN.items():
        folder = tmp_path / name
        (folder / "idpkg").mkdir(parents=True)
        option = f"hidden_{name[-1].lower()}"  # each folder's make_net has its own option: validated against it
        (folder / "idnet.py").write_text(NET.format(option=option))
        (folder / "idwidth.py").write_text(WIDTH.format(hidden=hidden))
        (folder / "idpkg" / "__init__.py").write_text("")
        (folder / "idpkg" / "sizes.py").write_text(f"SIZE = {hidden}\n")
        (folder / "idpkg" / "api.py").write_text("from .sizes import SIZE\n\n\ndef size():\n    return SIZE\n")
        config = {"name": f"net-{name}", "seed": 0, "data": {"source": "iris"}, "model": {"name": "idnet:make_net", option: hidden},
                  "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                               "epochs": 1},
                  "runtime": {"num_threads": 1}, "output": {"progress": "off"}}
        (folder / "base.yaml").write_text(yaml.safe_dump(config))
        made[name] = folder
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("TRAINLAB_ALLOW_CODE", raising=False)
    before = set(sys.modules)
    yield made
    for name in set(sys.modules) - before:  # this test's modules, under their names of their own too
        if name.split(".")[0].split("__trainlab_")[0] in MODULES:
            sys.modules.pop(name, None)


def _hidden(run: Path) -> int:
    return int(load_file(str(run / "model.safetensors"))["0.weight"].shape[0])


def test_load_run_builds_each_runs_own_module_of_a_shared_name(folders, tmp_path):
    """load_run(A) then load_run(B) in one session built B from A's idnet (sys.modules): B's weights did
    not fit ("does not match the model"), or with equal shapes would have loaded into A's architecture.
    Training both in one process (the CLI's main, twice) had the same fault: B trained A's model."""
    runs = {name: tmp_path / f"run-{name}" for name in folders}
    for name, folder in folders.items():
        assert main(["train", str(folder / "base.yaml"), "--out", str(runs[name]), "--quiet"]) == 0
        assert _hidden(runs[name]) == HIDDEN[name]  # trained from its own folder's idnet.py
    for name in ("extA", "extB", "extA"):  # each load after the other's
        loaded = trainlab.load_run(runs[name], allow_code=True)
        assert loaded.model[0].out_features == HIDDEN[name]


def _width_of(folder: Path, other: Path) -> tuple[int, str]:
    """Under the policy of the config in ``folder`` among configs in ``folder`` and ``other``; sys.path
    holds both, extA first (as the CLI's command_code_policy puts a comparison's bases)."""
    with allow_local_modules(min(folder, other)), allow_local_modules(max(folder, other)):
        with using_policy(own_folder_policy(folder, [other])):
            function = import_reference("idwidth:width", "model")
            return function(), inspect.getfile(function)


def test_an_imported_module_of_another_folder_is_not_reused(folders):
    a, b = folders["extA"], folders["extB"]
    assert _width_of(a, b) == (4, str(a / "idwidth.py"))
    assert sys.modules["idwidth"].WIDTH == 4  # A's, imported under its plain name
    assert _width_of(b, a) == (9, str(b / "idwidth.py"))  # not A's from sys.modules
    assert sys.modules["idwidth"].WIDTH == 4  # A's module is left in place, not replaced
    assert _width_of(a, b) == (4, str(a / "idwidth.py"))
    assert _width_of(b, a) == (9, str(b / "idwidth.py"))  # the same module of its own again
    assert len([k for k in sys.modules if k.startswith("idwidth__trainlab_")]) == 1


def test_a_package_of_the_same_name_keeps_its_relative_imports(folders):
    a, b = folders["extA"], folders["extB"]
    for folder, other, size in ((a, b, 4), (b, a, 9), (a, b, 4)):
        with allow_local_modules(a), allow_local_modules(b), using_policy(own_folder_policy(folder, [other])):
            assert import_reference("idpkg.api:size", "model")() == size  # `from .sizes import SIZE` of its own


def test_an_installed_package_keeps_plain_import(folders):
    """A file named like an installed package (yaml.py) beside the config does not shadow it, under the
    opt-in either: the import is the installed one, as sys.path order makes it."""
    (folders["extB"] / "yaml.py").write_text("def safe_load(text):\n    return 'shadowed'\n")
    with allow_local_modules(folders["extB"]), code_policy(allow=True):
        target = import_reference("yaml:safe_load", "model")
    assert target is yaml.safe_load and target("a: 1") == {"a": 1}


def _resolve_in_worker(reference: str) -> tuple[int, str]:
    function = import_reference(reference, "model")
    return function(), inspect.getfile(function)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_worker_with_the_policy_of_one_config_imports_its_folders_module(folders, method):
    """compare's workers take their parent's policy (pool._pin_worker -> set_policy): a forked one has the
    other folder's idwidth in sys.modules, a spawned one finds it first on sys.path; both import their own."""
    a, b = folders["extA"], folders["extB"]
    assert _width_of(a, b)[0] == 4  # the parent holds A's module
    with allow_local_modules(a), allow_local_modules(b):  # sys.path: A before B, in the worker too
        policy = own_folder_policy(b, [a])
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method), initializer=set_policy,
                                   initargs=(policy,))
        with pool:
            assert pool.submit(_resolve_in_worker, "idwidth:width").result(timeout=120) == (9, str(b / "idwidth.py"))


def _strategies(tmp_path: Path) -> Path:
    path = tmp_path / "strategies.yaml"
    path.write_text(yaml.safe_dump({"strategies": {"adam": None}}))
    return path


@pytest.mark.parametrize("jobs", [1, 2])
def test_compare_of_two_folders_trains_each_tasks_own_module(folders, tmp_path, jobs, capsys):
    """`trainlab compare extA/base.yaml extB/base.yaml`: task base-2 (extB) trained extA's model, silently.
    Sequential (--jobs 1) and in forked workers (--jobs 2, spawned on a CUDA machine); the report rebuilds
    each model from its own module (predictions of a run without predictions file)."""
    out = tmp_path / "cmp"
    assert main(["compare", str(folders["extA"] / "base.yaml"), str(folders["extB"] / "base.yaml"),
                 "--strategies", str(_strategies(tmp_path)), "--seeds", "1", "--jobs", str(jobs),
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    for task, name in (("base", "extA"), ("base-2", "extB")):
        run = out / "runs" / task / "adam" / "seed-0"
        assert _hidden(run) == HIDDEN[name]
        recorded = json.loads((run / "run.json").read_text())["code_folders"]
        assert str(folders[name]) in recorded and str(folders[{"extA": "extB", "extB": "extA"}[name]]) not in recorded
    html = (out / "report.html").read_text()
    assert "could not rebuild" not in html  # the report's predictions: each model from its own module
    assert html.count("confusion matrix on the test split") == 2


def test_compare_files_from_python_trusts_each_base_folder(folders, tmp_path):
    from trainlab.compare import compare_files

    out = tmp_path / "py"
    board = compare_files([folders["extB"] / "base.yaml", folders["extA"] / "base.yaml"], _strategies(tmp_path),
                          out=out, seeds=1, jobs=1, quiet=True, live=False)
    assert set(board["tasks"]) == {"base", "base-2"}
    assert _hidden(out / "runs" / "base" / "adam" / "seed-0") == HIDDEN["extB"]
    assert _hidden(out / "runs" / "base-2" / "adam" / "seed-0") == HIDDEN["extA"]


def test_a_damaged_run_of_a_later_task_is_refused_before_any_run(folders, tmp_path, capsys):
    """With a task per folder the tasks run one group after another: a damaged run folder of the second
    is still refused before the first group trains anything (exit 3, nothing written)."""
    out = tmp_path / "cmp"
    damaged = out / "runs" / "base-2" / "adam" / "seed-0"
    damaged.mkdir(parents=True)
    (damaged / "run.json").write_text("{not json")
    code = main(["compare", str(folders["extA"] / "base.yaml"), str(folders["extB"] / "base.yaml"),
                 "--strategies", str(_strategies(tmp_path)), "--seeds", "1", "--jobs", "1", "--out", str(out)])
    assert code == 3
    assert capsys.readouterr().err.startswith(f"error: {damaged / 'run.json'} cannot be read")
    assert not (out / "runs" / "base").exists()


def test_a_module_that_cannot_live_beside_another_is_refused_in_one_line(folders, monkeypatch):
    """Only source (and bytecode) modules are imported under a name of their own; another loader (an
    extension module) is refused naming both files, instead of reusing the other folder's module."""
    from trainlab import user_code

    a, b = folders["extA"], folders["extB"]
    assert _width_of(a, b)[0] == 4
    real = user_code._own_spec

    def extension_spec(top, policy):
        spec = real(top, policy)
        spec.loader = object()  # stands for an ExtensionFileLoader: cannot run under another name
        return spec

    monkeypatch.setattr(user_code, "_own_spec", extension_spec)
    with pytest.raises(ConfigError, match=rf"module 'idwidth' is already imported from {a / 'idwidth.py'}, and "
                                          rf"{b / 'idwidth.py'} \(in the folder trusted now\) cannot be imported"):
        _width_of(b, a)


def test_load_run_takes_the_module_the_run_was_trained_with_before_one_of_that_name_here(folders, tmp_path,
                                                                                         monkeypatch):
    """load_run looked in the working directory first: a run of extA's idnet, loaded from extB (its own
    idnet.py of another width), was built from extB's module."""
    run = tmp_path / "run-extA"
    assert main(["train", str(folders["extA"] / "base.yaml"), "--out", str(run), "--quiet"]) == 0
    monkeypatch.chdir(folders["extB"])
    loaded = trainlab.load_run(run, allow_code=True)
    assert loaded.model[0].out_features == HIDDEN["extA"]


def test_compare_resumes_an_interrupted_run_of_the_users_own_code(folders, tmp_path, capsys):
    """A run of a module:attr model left interrupted was resumed under the policy of anyone's run folder
    (no folder trusted): refused, then trained again from scratch over its checkpoints."""
    out = tmp_path / "cmp"
    command = ["compare", str(folders["extA"] / "base.yaml"), "--strategies", str(_strategies(tmp_path)),
               "--seeds", "1", "--jobs", "1", "--out", str(out), "--set", "output.checkpoint.every_n_epochs=1"]
    assert main(command) == 0
    run = out / "runs" / "base" / "adam" / "seed-0"
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))  # as a kill leaves it
    capsys.readouterr()
    assert main(command) == 0
    printed = capsys.readouterr()
    assert "cannot resume" not in printed.err and "training it from scratch" not in printed.err
    assert "resuming base/adam/seed-0" in printed.out + printed.err
    assert json.loads((run / "run.json").read_text())["status"] == "finished" and _hidden(run) == HIDDEN["extA"]


def test_a_renamed_module_of_a_run_is_told_the_way_back_not_an_edit_the_run_refuses(folders, tmp_path):
    """'did you mean idnet_v2?' for a run folder: editing its config.yaml is refused (its hash is checked). The
    way back: the old name again, or a module of that name re-exporting the renamed one, which loads."""
    run = tmp_path / "run-extA"
    assert main(["train", str(folders["extA"] / "base.yaml"), "--out", str(run), "--quiet"]) == 0
    (folders["extA"] / "idnet.py").rename(folders["extA"] / "idnet_v2.py")
    for name in [name for name in sys.modules if name.split("__trainlab_")[0] == "idnet"]:
        sys.modules.pop(name)  # as a new process finds it: the training imported it here
    with pytest.raises(ConfigError) as caught:
        trainlab.load_run(run, allow_code=True)
    message = str(caught.value)
    assert message.endswith("; did you rename it to 'idnet_v2'? A run's config.yaml cannot be edited (its hash is "
                            "checked): give the module its name back, or add a idnet.py beside it holding "
                            "'from idnet_v2 import *'"), message
    (folders["extA"] / "idnet.py").write_text("from idnet_v2 import *\n")
    assert trainlab.load_run(run, allow_code=True).model[0].out_features == HIDDEN["extA"]
    # a close name that does not define make_net is no sign of a rename: no re-export that would not load
    (folders["extA"] / "idnet.py").unlink()
    (folders["extA"] / "idnet_v2.py").write_text("def other():\n    return 1\n")
    for name in [name for name in sys.modules if name.split("__trainlab_")[0] in ("idnet", "idnet_v2")]:
        sys.modules.pop(name)
    with pytest.raises(ConfigError) as caught:
        trainlab.load_run(run, allow_code=True)
    assert "no module 'idnet'" in str(caught.value) and "did you rename" not in str(caught.value), caught.value
