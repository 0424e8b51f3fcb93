"""What tune's results say about where things are: trials.csv's and best.json's ``run_dir``, the lease
files a killed tune leaves, and the fail_reason of a trial whose worker met a full disk.

``run_dir`` was ``/tmp/x/tune/../tune_k9/trials/3`` for ``--out ../tune_k9``, and named a folder that
never existed for a trial stopped before its run folder was made. The expected paths are built here by
hand (``tmp_path / ...``) and checked against the file system, not against trainlab's own path helpers.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import optuna
import pytest

import trainlab.experiment
from tests.test_tune import read_trials, settings
from tests.test_tune_recovery import _forked_tune, _kill_at_tell
from trainlab.errors import Interrupted
from trainlab.tune import tune
from trainlab.tune.claims import RERUN, abandon
from trainlab.tune.leases import LEASES
from trainlab.tune.run_dirs import absolute_path

NO_SPACE = os.strerror(errno.ENOSPC)


def _study_trials(tune_settings) -> list[optuna.trial.FrozenTrial]:
    from trainlab.tune.storage import open_storage

    return optuna.load_study(study_name=tune_settings.name, storage=open_storage(tune_settings)).trials


# --------------------------------------------------------------------------- run_dir: normalised, or empty

def test_run_dir_of_an_out_given_with_dot_dot_is_written_without_it(tmp_path, monkeypatch):
    (tmp_path / "tune").mkdir()
    monkeypatch.chdir(tmp_path / "tune")
    tune_settings = settings(tmp_path, 2, out=Path("../tune_k9"), pruner="none")
    best = tune(tune_settings)
    rows = read_trials(tmp_path / "tune_k9")
    assert len(rows) == 2
    for row in rows:
        expected = tmp_path / "tune_k9" / "trials" / row["number"]
        assert row["run_dir"] == str(expected) and expected.is_dir() and ".." not in row["run_dir"], row
    written = json.loads((tmp_path / "tune_k9" / "best.json").read_text())
    assert written["run_dir"] == best["run_dir"] == str(tmp_path / "tune_k9" / "trials" / str(written["trial"]))
    for trial in _study_trials(tune_settings):  # where it ran, as recorded: absolute, without ".." too
        assert trial.user_attrs["run_path"] == str(tmp_path / "tune_k9" / "trials" / str(trial.number))


def test_a_trial_stopped_before_its_run_folder_was_made_has_no_run_dir(tmp_path, monkeypatch):
    """Its worker stopped after the trial recorded trials/0, before train made the folder: trials.csv named
    <out>/trials/0, which does not exist."""
    def stopped_before_the_folder(*args, **kwargs):
        raise Interrupted("SIGINT received", signal.SIGINT)

    monkeypatch.setattr(trainlab.experiment, "train", stopped_before_the_folder)
    tune_settings = settings(tmp_path, 2, pruner="none")
    with pytest.raises(Interrupted):
        tune(tune_settings)
    assert not (tune_settings.out / "trials" / "0").exists()
    [row] = read_trials(tune_settings.out)
    assert (row["state"], row["run_dir"]) == ("FAIL", "")
    assert _study_trials(tune_settings)[0].user_attrs["run_dir"] == "trials/0"  # the record itself is kept


def test_a_dot_dot_after_a_link_names_the_folder_the_kernel_finds(tmp_path):
    """``link/..`` is the parent of the link's target to the kernel; folding it as text named another folder."""
    (tmp_path / "deep" / "inner").mkdir(parents=True)
    (tmp_path / "deep" / "k9" / "trials" / "3").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "deep" / "inner")
    through_link = tmp_path / "link" / ".." / "k9" / "trials" / "3"
    assert through_link.is_dir()  # the kernel's reading
    assert absolute_path(through_link) == os.path.realpath(tmp_path / "deep" / "k9" / "trials" / "3")
    assert absolute_path(tmp_path / "link") == str(tmp_path / "link")  # a link is kept as named
    assert absolute_path(tmp_path / "gone" / ".." / "x") == str(tmp_path / "x")


# --------------------------------------------------------------------------- leases after a SIGKILL

@pytest.mark.slow
def test_the_lease_a_killed_tune_leaves_is_removed_by_the_next_tune(tmp_path):
    """docs/tune.md: a process killed outright cannot remove its lease file; the next tune on DIR does."""
    tune_settings = settings(tmp_path, 1, pruner="none")
    code = _forked_tune(tune_settings, _kill_at_tell(lambda values, state: values is not None), tmp_path / "child.log")
    assert code == -9, (tmp_path / "child.log").read_text()
    assert len(list((tune_settings.out / LEASES).iterdir())) == 1  # the killed worker's
    tune(tune_settings)
    assert not (tune_settings.out / LEASES).exists()


# --------------------------------------------------------------------------- a claim cut short by the disk

@pytest.mark.parametrize("error, said", [
    (OSError(errno.ENOSPC, NO_SPACE, "/out/.tune.leases/0123"), f"cannot write (/out/.tune.leases/0123): {NO_SPACE}"),
    (OSError(errno.EIO, os.strerror(errno.EIO), "/out/study.journal"),
     f"cannot read or write (/out/study.journal): {os.strerror(errno.EIO)}"),
    (OSError(errno.ENOSPC, NO_SPACE), f"cannot write: {NO_SPACE}"),  # a write on a descriptor names no file
    (ValueError("boom\nmore"), "ValueError: boom"),
])
def test_a_trial_given_up_on_an_os_error_says_it_as_the_cli_does(error, said):
    """An OSError was said as its repr: "(OSError: [Errno 28] No space left on device: '...')"."""
    study = optuna.create_study()
    trial = study.ask()
    abandon(study, trial._trial_id, error, "claimed it")
    frozen = study.trials[0]
    assert frozen.state == optuna.trial.TrialState.FAIL and frozen.user_attrs["fail_kind"] == "stale"
    assert frozen.user_attrs["fail_reason"] == f"its worker failed while it claimed it ({said}); {RERUN}"
    assert "Errno" not in frozen.user_attrs["fail_reason"]
