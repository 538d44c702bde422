"""A real PostgreSQL 15 for the tests: one server per session, a fresh catalog per test.

The server is Debian's ``postgresql`` package (``make test`` installs it). ``initdb`` and ``postgres``
refuse to run as root, so as root (CI) they run as the ``postgres`` user in a temp directory it owns;
the server listens on a free loopback port with trust authentication and is stopped at the end of the
session. Durability settings are off (``fsync``): the tests check SQL, locking and concurrency, not
crash safety.

Fresh catalogs: ``postgres_url`` is a new database (servers, tests of the advisory lock: things that
need a database of their own, 0.2-0.5 s each). ``catalog_url``, which runs the store, certification and
log unit tests a second time, gives each test a new *schema* of one session database instead (the URL
sets ``search_path``), as empty to the catalog as a new database (every table, trigger and function
lives in it) and a thousand times cheaper to make; that keeps the second run of those tests close to
the cost of the first.

Where the server cannot start (no binaries, no ``postgres`` user) the PostgreSQL tests are skipped
with the reason, except under ``CI=true``, where that is a failure: CI must test both catalogs.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from support.server import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be started here; the message says why."""


@dataclass
class PostgresServer:
    root: Path
    port: int
    as_user: list[str]
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; its name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_schema(self, database: str) -> str:
        """A fresh, empty schema in ``database``; the URL of a catalog in it (its ``search_path``)."""
        name = f"catalog_{next(self._names)}"
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return self.url(database) + f"?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        database, _, options = url.rpartition("/")[2].partition("?")
        name = options.rpartition("%3D")[2]
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb in a temp directory and start a server on a free loopback port; raise PostgresUnavailable."""
    if not (PG_BIN / "initdb").is_file():
        raise PostgresUnavailable(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb is missing; "
                                  "apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="openzoo-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, PermissionError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(f"running as root and cannot hand a data directory to 'postgres': {exc}") \
                from exc
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    init = subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                           "--encoding=UTF8", "--locale=C", "--no-sync"],
                          capture_output=True, text=True, timeout=120, check=False)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    last_error = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it
        server = PostgresServer(root, free_port(), as_user)
        options = (f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        started = subprocess.run([*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options,
                                  "-l", str(root / "server.log"), "-w", "-t", str(START_TIMEOUT_S), "start"],
                                 capture_output=True, text=True, timeout=START_TIMEOUT_S + 10, check=False)
        if started.returncode == 0 and _answers(server):
            return server
        last_error = (root / "server.log").read_text(errors="replace")[-800:] if (root / "server.log").exists() \
            else started.stderr
        server.stop()
        root.mkdir(exist_ok=True)
    raise PostgresUnavailable(f"postgres did not start: {last_error.strip()}")


def _answers(server: PostgresServer) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skipped, with the reason, where it cannot start outside CI)."""
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database, dropped after the test."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def postgres_catalogs(postgres: PostgresServer) -> str:
    """The session database that holds one schema per ``catalog_url`` test."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each catalog in turn: ``None`` (the SQLite file under the store's home) or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_schema(request.getfixturevalue("postgres_catalogs"))
    yield url
    server.drop_schema(url)
