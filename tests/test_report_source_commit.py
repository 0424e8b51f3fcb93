"""The report's "trainlab source" commit is the trainlab checkout's own, never that of a repository an
installed package happens to sit in (a project with its virtualenv inside it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from trainlab.report.sections import _git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _repository(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    run = {"cwd": folder, "check": True, "capture_output": True, "text": True}
    subprocess.run(["git", "init", "-q", "."], **run)
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=u", "commit", "-q", "--allow-empty", "-m", "x"],
                   **run)
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], **run).stdout.strip()


def test_a_package_folder_inside_another_repository_has_no_commit(tmp_path):
    _repository(tmp_path / "project")
    site_packages = tmp_path / "project" / ".venv" / "lib" / "site-packages"
    site_packages.mkdir(parents=True)
    assert _git_commit(site_packages) is None


def test_the_checkout_itself_gives_its_commit(tmp_path):
    commit = _repository(tmp_path / "trainlab-checkout")
    assert _git_commit(tmp_path / "trainlab-checkout") == commit


def test_a_folder_in_no_repository_has_no_commit(tmp_path):
    assert _git_commit(tmp_path) is None
