"""A Config read by load_config(PATH) remembers PATH's folder (Config.source_folder): train(load_config(PATH,
overrides)) runs the module:attr code of that folder as train(PATH) does, under the same policy; a config built
in Python has no folder, and a missing module's line names the folders that were searched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import LINREG
from trainlab.builders import build_data
from trainlab.config import dump_yaml, load_config, read_yaml, validate
from trainlab.errors import ConfigError
from trainlab.experiment import train

USER_CODE = '''
import numpy as np
import torch.nn as nn

from trainlab.data import RawData


def net(input_shape, output_dim):
    return nn.Linear(input_shape[0], output_dim)


def line(n=64):
    x = np.linspace(-1.0, 1.0, n)[:, None]
    return RawData(x, 2.0 * x[:, 0] + 1.0)
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A config folder holding the user's module and a config naming it; the working directory elsewhere."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "usercode_cf.py").write_text(USER_CODE)
    config = {**LINREG, "data": {"source": "usercode_cf:line"}, "model": {"name": "usercode_cf:net"},
              "output": {"progress": "off"}, "strategy": {**LINREG["strategy"], "epochs": 3}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("TRAINLAB_ALLOW_CODE", raising=False)
    yield folder
    for name in [name for name in sys.modules if name.startswith("usercode_cf")]:
        sys.modules.pop(name)


def test_load_config_remembers_its_folder_outside_the_config(project):
    path = project / "config.yaml"
    config = load_config(path, ["strategy.epochs=2"])
    assert config.source_folder == project.resolve()
    built_in_python = validate({**read_yaml(path), "strategy": {**read_yaml(path)["strategy"], "epochs": 2}})
    assert built_in_python.source_folder is None
    # not part of what the config holds: its dict (config.yaml), its hash; == tells the folders apart (the same
    # module:attr names may be other code in another folder)
    assert config.to_dict() == built_in_python.to_dict() and dump_yaml(config) == dump_yaml(built_in_python)
    assert "source_folder" not in dump_yaml(config) and str(project) not in dump_yaml(config)
    assert config.hash() == built_in_python.hash() and config != built_in_python
    assert config.model_copy(update={"seed": 3}).source_folder == project.resolve()  # a copy keeps it
    # a run folder's config.yaml (read so) is someone else's: no folder trusted
    assert load_config(path, follow_links=False).source_folder is None


def test_train_of_a_loaded_config_runs_the_code_of_its_folder_as_train_of_the_path(project, tmp_path):
    path = project / "config.yaml"
    summary, run = train(load_config(path, ["strategy.epochs=2"]), out=tmp_path / "loaded", quiet=True)
    assert summary["status"] == "finished" and summary["steps"] == 2  # the override applied
    assert str(project) in json.loads((run / "run.json").read_text())["code_folders"]
    assert str(project) not in sys.path  # only for the call
    by_path, _ = train(path, out=tmp_path / "by_path", quiet=True)
    assert by_path["status"] == "finished"
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))  # killed after its last checkpoint
    for name in [name for name in sys.modules if name.startswith("usercode_cf")]:
        sys.modules.pop(name)  # resuming imports the user's code again
    resumed, _ = train(load_config(path, ["strategy.epochs=2"]), out=run, quiet=True, resume_if_exists=True)
    assert resumed["status"] == "finished" and resumed["steps"] == 2


def test_a_loaded_config_gets_no_more_trust_than_its_path(project, tmp_path):
    """Code outside the user's own folders is refused for train(load_config(PATH)) exactly as for train(PATH):
    same line, nothing trained."""
    raw = read_yaml(project / "config.yaml")
    (project / "stdlib.yaml").write_text(yaml.safe_dump({**raw, "model": {"name": "shutil:rmtree"}}))
    messages = []
    for config in (project / "stdlib.yaml", load_config(project / "stdlib.yaml")):
        with pytest.raises(ConfigError) as raised:
            train(config, out=tmp_path / "refused", quiet=True)
        messages.append(str(raised.value))
    assert messages[0] == messages[1] and "which is outside your own code" in messages[0]
    assert not (tmp_path / "refused").exists()


def test_a_config_built_in_python_says_which_folders_were_searched(project, tmp_path):
    with pytest.raises(ConfigError) as raised:
        train(validate(read_yaml(project / "config.yaml")), out=tmp_path / "run", quiet=True)
    message = str(raised.value)
    assert "config's folder" not in message and "no config file's folder was searched" in message  # it has none
    assert f"no module 'usercode_cf' in {Path.cwd().resolve()} (the working directory) or the installed packages" \
        in message
    assert "train(load_config(PATH)) search PATH's folder too" in message


def test_a_loaded_config_whose_module_is_gone_names_its_folder(project, tmp_path):
    (project / "usercode_cf.py").unlink()
    with pytest.raises(ConfigError) as raised:
        train(load_config(project / "config.yaml"), out=tmp_path / "run", quiet=True)
    message = str(raised.value)
    assert (f"no module 'usercode_cf' in {Path.cwd().resolve()} (the working directory), {project.resolve()} or the "
            "installed packages") in message and "no config file's folder" not in message


def test_build_data_of_a_loaded_config_reads_the_users_source(project):
    """docs/advisor.md: build_data(load_config(PATH)) from another working directory."""
    data = build_data(load_config(project / "config.yaml"))
    assert data.task == "regression" and len(data.train.y) > 0


def test_tune_from_python_runs_the_code_of_its_base_configs_folder(project, tmp_path):
    """TuneSettings(base=PATH) from another working directory trusts PATH's folder, as trainlab tune does."""
    from trainlab.tune import TuneSettings, tune

    (project / "space.yaml").write_text(yaml.safe_dump({"strategy.optimizer.lr": {"low": 0.01, "high": 0.1,
                                                                                  "log": True}}))
    best = tune(TuneSettings(base=project / "config.yaml", space=project / "space.yaml", trials=2,
                             out=tmp_path / "study", metric="val_loss", quiet=True))
    assert best["trial"] in (0, 1) and (tmp_path / "study" / "best.yaml").is_file()


def test_every_component_of_a_loaded_config_is_built_from_its_folder(project):
    """build(load_config(PATH)) found the data source there but refused the model of the same folder."""
    from trainlab.builders import build, run_scope

    config = load_config(project / "config.yaml")
    with run_scope(config):
        built = build(config, quiet=True)
    assert type(built.model).__name__ == "Linear"

