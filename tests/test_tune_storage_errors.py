"""trainlab tune --storage URL: what its errors say (password masked, the driver's own reason, the fix), a
refused run leaving no --out behind, and the database lost while the study runs (exit 5, continued by a rerun)."""

from __future__ import annotations

import csv
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml

from tests.child_env import with_repo_first
from tests.postgres_server import postgres_url
from tests.test_tune import BASE
from trainlab.cli import main
from trainlab.errors import EXIT_SYSTEM
from trainlab.tune import TuneSettings, tune
from trainlab.tune.storage_messages import StorageLostError, masked_url
from trainlab.tune.workers import StopFlag, _run_pool

REPO = Path(__file__).resolve().parents[1]

SPACE = {"strategy.optimizer.name": {"choices": ["sgd", "adam"]},
         "strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.3, "log": True},
         "strategy.batch_size": {"choices": [8, 16, 32]}}
OTHER_SPACE = {**SPACE, "strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.2, "log": True}}


def write(folder: Path, space: dict = SPACE, base: dict = BASE) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    return folder / "base.yaml", folder / "space.yaml"


def run_cli(tmp_path: Path, capsys, storage: str, out: Path, space: dict = SPACE, *extra: str) -> tuple[int, str]:
    base, space_file = write(tmp_path / f"files-{len(list(tmp_path.glob('files-*')))}", space)
    code = main(["tune", str(base), "--space", str(space_file), "--trials", "1", "--out", str(out), "--quiet",
                 "--storage", storage, *extra])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- the password masked

@pytest.mark.parametrize("url", ["postgresql://tuner:secret@localhost:5433/optunaa",
                                 "postgresql+psycopg2://u:p%40ss@db.example.org/optuna?sslmode=require",
                                 "mysql+pymysql://root:hunter2@[::1]:3306/studies",
                                 "postgresql://tuner@localhost/optuna",
                                 "sqlite:////tmp/study.db"])
def test_masked_url_hides_the_password_as_sqlalchemy_renders_it(url):
    """The reference: SQLAlchemy's own URL.render_as_string(hide_password=True)."""
    assert masked_url(url) == sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def test_masked_url_hides_a_password_sqlalchemy_cannot_parse_and_one_in_the_query():
    assert masked_url("postgresql://tuner:p@ss@host/db") == "postgresql://tuner:***@host/db"
    assert masked_url("postgresql//tuner:secret@host/db") == "postgresql//tuner:***@host/db"
    assert masked_url("postgresql://host/db?user=tuner&password=secret&x=1") == \
        "postgresql://host/db?user=tuner&password=***&x=1"


def test_a_database_that_refuses_the_connection_is_named_without_its_password(tmp_path, capsys):
    """Port 1 of this host refuses at once: the driver's own reason, the URL with tuner:***@, exit 2."""
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg (trainlab[postgres]) is not installed")
    code, err = run_cli(tmp_path, capsys, "postgresql://tuner:secret@127.0.0.1:1/optunaa", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2
    assert "secret" not in err
    assert line.startswith("error: --storage postgresql://tuner:***@127.0.0.1:1/optunaa: cannot open it: ")
    assert "refused" in line.lower() and "(psycopg.OperationalError)" not in line  # the driver's line, unwrapped
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- drivers and URLs

def test_a_missing_psycopg2_names_it_and_both_ways_to_fix_it(tmp_path, capsys):
    if importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed here")
    code, err = run_cli(tmp_path, capsys, "postgresql+psycopg2://tuner:secret@localhost/db", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2 and "secret" not in err
    assert "'psycopg2'" in line and "pip install psycopg2-binary" in line and "postgresql://" in line


def test_a_missing_mysql_driver_names_mysqldb_and_pymysql(tmp_path, capsys):
    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("MySQLdb is installed here")
    code, err = run_cli(tmp_path, capsys, "mysql://u:p@host/db", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2
    assert "'MySQLdb'" in line and "pymysql" in line and "trainlab[postgres]" not in line


@pytest.mark.parametrize("url, expected", [
    ("postgresq://tuner:secret@h/db", "did you mean postgresql://?"),
    ("postgresql+pycopg://tuner:secret@h/db", "did you mean postgresql+psycopg://?"),
    ("postgresql//tuner:secret@host/db", "did you mean postgresql://tuner:***@host/db?"),
    ("sqlite:/study.db", "did you mean sqlite:///study.db?"),
])
def test_a_mistyped_url_gets_a_did_you_mean(tmp_path, capsys, url, expected):
    code, err = run_cli(tmp_path, capsys, url, tmp_path / "out")
    line = one_error_line(err)
    assert code == 2 and "secret" not in err
    assert expected in line
    assert "Can't load plugin" not in line and "Could not parse" not in line


def test_a_string_that_is_no_url_is_shown_what_one_looks_like(tmp_path, capsys):
    code, err = run_cli(tmp_path, capsys, "optuna-db", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2
    assert "postgresql://user:password@host:5432/dbname" in line


def test_a_port_that_is_no_number_is_said_so(tmp_path, capsys):
    """User trial: 'host:5432:5432' was "cannot open it: invalid literal for int() with base 10: '5432:5432'"."""
    code, err = run_cli(tmp_path, capsys, "postgresql://tuner:secret@localhost:5432:5432/optuna", tmp_path / "out")
    line = one_error_line(err)
    assert code == 2 and "secret" not in err
    assert "its port is not a number" in line and "a valid URL looks like postgresql://user:password@host:5432/dbname" in line


# --------------------------------------------------------------------------- a refused run leaves nothing behind

def test_a_refused_study_leaves_no_folder_and_claims_none(tmp_path, capsys):
    """Another space than the study's is refused (exit 2) and its new --out (and the parent made for it) is
    gone again: the next study on that --out is not refused as if the folder held the first one's trials."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    code, err = run_cli(tmp_path, capsys, storage, tmp_path / "first", SPACE, "--study", "s10")
    assert code == 0, err
    out = tmp_path / "new" / "p3"
    code, err = run_cli(tmp_path, capsys, storage, out, OTHER_SPACE, "--study", "s10")
    assert code == 2 and "another search space" in one_error_line(err)
    assert not (tmp_path / "new").exists()
    code, err = run_cli(tmp_path, capsys, storage, out, OTHER_SPACE, "--study", "s11")
    assert code == 0, err
    assert (out / ".tune.study").read_text().strip() == "s11"


def test_a_refusal_keeps_a_folder_that_existed(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    assert run_cli(tmp_path, capsys, storage, tmp_path / "first", SPACE, "--study", "s10")[0] == 0
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("kept\n")
    code, err = run_cli(tmp_path, capsys, storage, out, OTHER_SPACE, "--study", "s10")
    assert code == 2, err
    assert (out / "notes.txt").read_text() == "kept\n"
    assert not (out / ".tune.study").exists()


# --------------------------------------------------------------------------- the database lost mid-study

def _real_connection_failure() -> optuna.exceptions.StorageInternalError:
    """What Optuna raises when a commit meets a database that is gone: its StorageInternalError ("invalid
    data in the commit") from SQLAlchemy's OperationalError, here a real one (a SQLite file that cannot be
    opened), whose driver line is "unable to open database file"."""
    engine = sqlalchemy.create_engine("sqlite:////nonexistent-folder-of-trainlab-tests/x.db")
    try:
        engine.connect()
    except sqlalchemy.exc.OperationalError as exc:
        try:
            raise optuna.exceptions.StorageInternalError(
                "An exception is raised during the commit. This typically happens due to invalid data in the "
                "commit, e.g. exceeding max length. ") from exc
        except optuna.exceptions.StorageInternalError as wrapped:
            return wrapped
    raise AssertionError("the connection did not fail")


def test_the_database_lost_during_a_trial_stops_the_study_with_exit_5(tmp_path, monkeypatch):
    """The objective's pruning check meets the database gone (as a server stopped mid-trial does): the study
    stops at once with the driver's own line and how to go on, the password masked; it was counted as the
    trial's own failure (Optuna's "invalid data" line) and the study went on. Here the database is back
    by the time the trial is recorded, so the trial is recorded as interrupted, which does not count."""
    from trainlab.tune import objective

    def lost(trial):
        raise _real_connection_failure()

    monkeypatch.setattr(objective, "_should_prune", lost)
    base, space = write(tmp_path)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    settings = TuneSettings(base=base, space=space, trials=3, out=tmp_path / "out", storage=storage, quiet=True,
                            study_name="lost")
    with pytest.raises(StorageLostError) as raised:
        tune(settings)
    message = str(raised.value)
    assert raised.value.exit_code == EXIT_SYSTEM == 5
    assert f"the connection to the --storage database {storage} was lost or refused during trial 0" in message
    assert "(unable to open database file)" in message and "invalid data" not in message
    assert "once the database is reachable, rerun the same trainlab tune command to continue the study" in message
    study = optuna.load_study(study_name="lost", storage=storage)
    assert [(t.number, t.state.name, t.user_attrs.get("fail_kind")) for t in study.trials] == \
        [(0, "FAIL", "interrupted")]


def test_the_database_lost_between_trials_is_said_the_same_way(tmp_path, monkeypatch):
    """Claiming the next trial meets the database gone: the same one line (no trial named), not Optuna's
    wrapper reported as an unexpected error (exit 4)."""
    import trainlab.tune.study as study_module

    def lost(*args, **kwargs):
        raise _real_connection_failure()

    monkeypatch.setattr(study_module, "claim_trial", lost)
    base, space = write(tmp_path)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    with pytest.raises(StorageLostError, match=r"was lost or refused \(unable to open database file\); once the "
                                               "database is reachable, rerun the same trainlab tune command"):
        tune(TuneSettings(base=base, space=space, trials=2, out=tmp_path / "out", storage=storage, quiet=True))


def test_workers_stopped_by_the_database_say_so(tmp_path):
    """A --jobs worker that lost the database exits 5 (its own line says why); the tune process's line no
    longer says only that a file could not be written."""
    import multiprocessing

    base, space = write(tmp_path)
    settings = TuneSettings(base=base, space=space, trials=2, out=tmp_path / "out", jobs=2, quiet=True,
                            storage=f"sqlite:///{tmp_path / 'studies.db'}")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=sys.exit, args=(EXIT_SYSTEM,)) for _ in range(2)]
    with pytest.raises(Exception, match="the --storage database could not be reached") as raised:
        _run_pool(settings, workers, StopFlag(context))
    assert raised.value.exit_code == EXIT_SYSTEM


# --------------------------------------------------------------------------- PostgreSQL, through a proxy cut mid-study

class Proxy:
    """A TCP proxy to the PostgreSQL server: :meth:`cut` closes its port and every connection through it, as
    a server that stops (or a network that goes) does to its clients, without stopping the shared server."""

    def __init__(self, target: tuple[str, int], port: int = 0):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:  # the server refused: so does the proxy, and it takes the next one
                client.close()
                continue
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        # shutdown first: on Linux a close alone neither wakes the accept() blocked in _accept nor stops the port
        # listening (that accept holds the socket), so the next connection (a worker's reconnect) got through
        # the "cut" proxy, and the port stayed taken for the proxy made again below
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.mark.slow
def test_postgres_lost_mid_study_is_exit_5_and_a_rerun_continues(tmp_path):
    url = sqlalchemy.engine.make_url(postgres_url())
    if url.password is None:
        pytest.skip("the test server's URL has no password to mask")
    proxy = Proxy((url.host or "localhost", url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    base, space = write(tmp_path, base={**BASE, "strategy": {**BASE["strategy"], "epochs": 10}})
    out, study = tmp_path / "out", f"lost-{os.getpid()}-{time.time_ns()}"
    command = [sys.executable, "-m", "trainlab.cli", "tune", str(base), "--space", str(space), "--trials", "2",
               "--out", str(out), "--quiet", "--storage", through, "--study", study]
    env = {**os.environ, "PYTHONPATH": with_repo_first(REPO)}
    worker = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "trials" / "0").exists() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.05)
    proxy.cut()
    err = worker.communicate(timeout=120)[1]
    assert worker.returncode == EXIT_SYSTEM, err
    line = one_error_line(err)
    assert f":{url.password}@" not in err and ":***@127.0.0.1" in line
    assert "the connection to the --storage database" in line and "was lost or refused" in line
    assert "invalid data" not in line
    assert "once the database is reachable, rerun the same trainlab tune command to continue the study" in line
    Proxy((url.host or "localhost", url.port or 5432), proxy.port)  # the database reachable again
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows) == 2
    assert not [r for r in rows if r["state"] == "RUNNING"]


def test_sqlite_busy_is_no_lost_database_and_postgres_plus_a_driver_is_read_as_postgresql():
    """Review: SQLite's "database is locked" (another worker writing the same file) was said as a lost
    connection that stops the study; ``postgres+psycopg://`` got a did-you-mean repeating itself."""
    import sqlalchemy.exc

    from trainlab.tune.storage import storage_url
    from trainlab.tune.storage_messages import is_connection_failure

    locked = sqlalchemy.exc.OperationalError("INSERT ...", {}, Exception("database is locked"))
    gone = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    assert not is_connection_failure(locked) and is_connection_failure(gone)
    assert storage_url("postgres+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert storage_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"


def test_a_refusal_leaves_the_lock_another_tune_process_holds(tmp_path):
    """Review: a refused start removed a new --out's lock file under a process holding it."""
    import fcntl

    from trainlab.tune.identity import folder_removed_on_refusal

    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), folder_removed_on_refusal(out):
        out.mkdir(parents=True)
        held = os.open(out / ".tune.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process's FileLock (flock is per open file)
        raise RuntimeError("refused")
    assert (out / ".tune.lock").exists()
    os.close(held)
    with pytest.raises(RuntimeError), folder_removed_on_refusal(tmp_path / "other"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / ".tune.lock").touch()  # no one holds it
        raise RuntimeError("refused")
    assert not (tmp_path / "other").exists()


def test_optunas_sqlalchemy_fallback_warning_is_not_printed_before_the_error_line():
    """Optuna logs "Caught an error from sqlalchemy ... Falling back" (with the SQL) when a read fails: it
    came before the lost database's one error line (the PostgreSQL test above failed on it now and then)."""
    import io
    import logging

    from trainlab.tune.study import optuna_verbosity

    printed = io.StringIO()
    handler = logging.StreamHandler(printed)  # as Optuna's own handler on its library logger
    optuna.logging.get_logger("optuna").addHandler(handler)
    try:
        with optuna_verbosity():
            logger = optuna.logging.get_logger("optuna.storages._rdb.storage")
            logger.warning("Caught an error from sqlalchemy: (psycopg.OperationalError) ... Falling back")
            logger.warning("another warning")
    finally:
        optuna.logging.get_logger("optuna").removeHandler(handler)
    assert "Caught an error" not in printed.getvalue() and "another warning" in printed.getvalue()
