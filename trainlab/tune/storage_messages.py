"""What the --storage database's errors say: a URL that cannot be opened, and the database failing mid-study.

An RDB URL shows in messages with its password masked (:func:`masked_url`); one that cannot be opened is
refused with the fix (:func:`unopened_reason`, :func:`missing_driver`), and the database failing while the
study runs is one line naming the driver's own reason (:func:`storage_failed`: exit 5 for its connection,
:class:`StorageLostError`), raised inside :func:`storage_failures_said`.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator

import optuna

from trainlab.errors import EXIT_SYSTEM, TrainingError, TrainlabError

# --------------------------------------------------------------------------- what a URL's errors say

URL_EXAMPLE = "postgresql://user:password@host:5432/dbname"  # what a valid --storage URL looks like
# SQLAlchemy's dialects (``postgres`` is read as postgresql) and each one's common drivers (the ``+driver``)
DIALECT_DRIVERS = {"postgresql": ("psycopg", "psycopg2", "pg8000", "asyncpg", "psycopg2cffi"),
                   "postgres": ("psycopg", "psycopg2", "pg8000", "asyncpg", "psycopg2cffi"),
                   "mysql": ("mysqldb", "pymysql", "mysqlconnector", "mariadbconnector", "asyncmy", "aiomysql"),
                   "mariadb": ("mysqldb", "pymysql", "mysqlconnector", "mariadbconnector"),
                   "sqlite": ("pysqlite", "aiosqlite", "pysqlcipher"),
                   "oracle": ("oracledb", "cx_oracle"),
                   "mssql": ("pyodbc", "pymssql", "aioodbc")}
POSTGRES_EXTRA = "pip install 'trainlab[postgres]'"  # psycopg 3, which postgresql:// URLs use
# a driver module that is missing -> what installs it (the others: the package that provides the module)
DRIVER_INSTALLS = {
    "psycopg": POSTGRES_EXTRA,
    "psycopg2": f"pip install psycopg2-binary, or write postgresql:// to use psycopg 3, which {POSTGRES_EXTRA} installs",
    "MySQLdb": "pip install mysqlclient (the MySQLdb module), or pip install pymysql and write mysql+pymysql://",
    "pymysql": "pip install pymysql",
}


def masked_url(url: str) -> str:
    """``url`` with its password as ``***``: ``postgresql://tuner:***@host/db``, as SQLAlchemy's
    ``URL.render_as_string(hide_password=True)`` shows it, and a ``password=`` query parameter too. Every
    message that shows a --storage URL shows it so (an error line lands in logs and CI output).

    The userinfo runs to the last ``@``, so a password holding an unescaped ``@`` is hidden whole; a string
    that is no URL (``postgresql//u:pw@host/db``) is masked the same way past its scheme's slashes.

    >>> masked_url("postgresql://tuner:secret@localhost:5433/optuna?password=x&sslmode=require")
    'postgresql://tuner:***@localhost:5433/optuna?password=***&sslmode=require'
    """
    head, slashes, rest = url.partition("//")
    if slashes:
        address, query_mark, query = rest.partition("?")
        userinfo, at, host = address.rpartition("@")
        if at and ":" in userinfo and "/" not in userinfo.split(":", 1)[0]:
            rest = f"{userinfo.split(':', 1)[0]}:***@{host}{query_mark}{query}"
        url = head + slashes + rest
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def missing_driver(exc: ImportError) -> str:
    """What an ImportError opening the storage means: the driver module missing (Optuna's own message names
    none; its cause does) and what installs it (:data:`DRIVER_INSTALLS`)."""
    cause = exc if exc.name else (exc.__cause__ or exc.__context__ or exc)
    module = getattr(cause, "name", None)
    if module is None:
        return f"the database driver could not be imported ({driver_line(exc)})"
    install = DRIVER_INSTALLS.get(module, f"install the package that provides the module {module}")
    return f"the database driver is not installed (no module named '{module}'): {install}"


def unopened_reason(url: str, exc: Exception) -> str:
    """Why ``url`` could not be opened, with the fix: a URL SQLAlchemy cannot parse says what a valid one
    looks like; an unknown dialect or driver (``postgresq://``) names the close ones; otherwise the database
    driver's own first line (``database "optunaa" does not exist``)."""
    scheme = url.partition("://")[0] if "://" in url else None
    if scheme is None or type(exc).__name__ == "ArgumentError" and "parse" in str(exc):
        return f"not a database URL{_slashes_fixed(url)} (a valid one looks like {URL_EXAMPLE}, or sqlite:///path/study.db)"
    if type(exc).__name__ == "NoSuchModuleError":
        return _unknown_scheme(scheme)
    if isinstance(exc, ValueError) and "invalid literal for int()" in str(exc):  # SQLAlchemy's port: 'host:1:2'
        return f"its port is not a number ({driver_line(exc)}); a valid URL looks like {URL_EXAMPLE}"
    return f"cannot open it: {driver_line(exc)}"


def _slashes_fixed(url: str) -> str:
    """``; did you mean postgresql://host/db?`` for a URL whose ``://`` is cut short (``postgresql//host/db``,
    ``postgresql:/host/db``; ``sqlite:///`` for sqlite, whose path follows a third slash); else ""."""
    found = re.match(r"([A-Za-z][\w+]*):?/*(.*)", url, re.DOTALL)
    if found is None or not url[len(found[1]):].startswith((":", "/")):
        return ""
    scheme, rest = found[1], found[2]
    fixed = f"{scheme}:///{rest}" if scheme.partition("+")[0] == "sqlite" else f"{scheme}://{rest}"
    return f"; did you mean {masked_url(fixed)}?"


def _unknown_scheme(scheme: str) -> str:
    """An unknown ``dialect`` or ``dialect+driver`` of a URL's scheme, with the close known ones."""
    dialect, plus, driver = scheme.partition("+")
    if dialect not in DIALECT_DRIVERS:
        what, known = f"database '{dialect}'", list(DIALECT_DRIVERS)
        guess = difflib.get_close_matches(dialect, known, n=1)
    else:
        what, known = f"driver '{driver}' for {dialect}", list(DIALECT_DRIVERS[dialect])
        guess = [f"{dialect}+{close}" for close in difflib.get_close_matches(driver, known, n=1)]
    hint = f"did you mean {guess[0]}://? " if guess else ""
    return f"unknown {what} ({hint}known: {', '.join(known)}; e.g. {URL_EXAMPLE})"


# --------------------------------------------------------------------------- the database failing mid-study

class StorageLostError(TrainlabError):
    """The --storage database failed while the study ran: the connection lost or refused (the server
    stopped, the network gone), as a full disk is the system's fault, not the config's (exit 5). The
    message masks the URL's password, names the driver's own line and says the study can be continued."""

    exit_code = EXIT_SYSTEM


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions behind it, depth first, each one's ``__cause__`` before its ``__context__``."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__context__, current.__cause__) if e is not None]


def _from_sqlalchemy(exc: BaseException) -> bool:
    return type(exc).__module__.partition(".")[0] == "sqlalchemy"


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the RDB storage failing: Optuna's ``StorageInternalError`` (a commit failed) or
    an error of SQLAlchemy (a read failed, or the lock's connection)."""
    return isinstance(exc, optuna.exceptions.StorageInternalError) or _from_sqlalchemy(exc)


def is_connection_failure(exc: BaseException) -> bool:
    """Whether the database itself failed behind ``exc``: SQLAlchemy's ``OperationalError`` (the connection
    lost or refused, the server shutting down; a file database unreadable), ``InterfaceError`` or
    ``DisconnectionError`` anywhere in its chain; not a refused value (too long, a broken constraint), and not
    SQLite's ``database is locked`` (another worker writing the same file: a moment's wait, as a trial's
    own failure, not a lost database)."""
    names = ("OperationalError", "InterfaceError", "DisconnectionError")
    if "database is locked" in driver_line(exc):
        return False
    return any(_from_sqlalchemy(e) and type(e).__name__ in names for e in _chain(exc))


def driver_line(exc: BaseException) -> str:
    """The first line of the database driver's own exception behind ``exc`` (the ``orig`` of SQLAlchemy's
    first DBAPIError in its chain: ``connection failed: ... the database system is shutting down``), not the
    wrappers' (Optuna's "invalid data in the commit", SQLAlchemy's ``(psycopg.OperationalError)`` prefix)."""
    for cause in _chain(exc):
        if _from_sqlalchemy(cause) and getattr(cause, "orig", None) is not None:
            exc = cause.orig
            break
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return " ".join(first.split())[:300]


def storage_failed(url: str, exc: BaseException, during: str = "") -> TrainlabError:
    """The one line for the --storage database ``url`` failing mid-study (``during``: " during trial 3"): a
    :class:`StorageLostError` (exit 5) for its connection, which a rerun continues once the database is
    reachable; a TrainingError (exit 4) for a write it refused."""
    shown, line = masked_url(url), driver_line(exc)
    if is_connection_failure(exc):
        return StorageLostError(f"the connection to the --storage database {shown} was lost or refused{during} "
                                f"({line}); once the database is reachable, rerun the same trainlab tune "
                                "command to continue the study")
    return TrainingError(f"the --storage database {shown} refused a write{during}: {line}")


@contextlib.contextmanager
def storage_failures_said(url: str | None) -> Iterator[None]:
    """Inside: the RDB storage ``url`` failing (:func:`is_storage_failure`) is raised as
    :func:`storage_failed`'s one line. A no-op for the journal (``url`` None), whose failures are OSErrors."""
    try:
        yield
    except Exception as exc:
        if url is None or not is_storage_failure(exc):
            raise
        raise storage_failed(url, exc) from exc
