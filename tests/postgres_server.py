"""The PostgreSQL server the tune tests use: TRAINLAB_TEST_POSTGRES_URL, else the one .ci/setup-postgres.sh
starts (installing Debian's postgresql when missing, as root); the test is skipped, saying why, when none can.
The variable set but empty is `make test` saying the script found none: no test worker tries again (the
workers' scripts would race for apt's lock, each for minutes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def postgres_url() -> str:
    url = os.environ.get("TRAINLAB_TEST_POSTGRES_URL")
    if url:
        return url
    if url is not None:  # set but empty: `make test` ran the script already and it started none
        pytest.skip("no PostgreSQL server: TRAINLAB_TEST_POSTGRES_URL is empty (.ci/setup-postgres.sh, run by "
                    "make test, started none; run it alone to see why)")
    script = REPO / ".ci" / "setup-postgres.sh"
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=240)  # within pytest-timeout's 300 s
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no PostgreSQL server: {script} could not run: {exc}")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no PostgreSQL server: {script} failed: {reason}")
    return done.stdout.strip().splitlines()[-1]
