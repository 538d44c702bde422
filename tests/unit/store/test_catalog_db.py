"""The catalog's database seam on both catalogs: translation, transactions, writers serialized across
connections (as across servers), errors, URLs, and catalogs users already have on disk.

``data/home-7c609fd`` is an OPENZOO_HOME made by the code of commit 7c609fd (before this seam): a tiny
model certified with a seal (policy, request, approvals, log with signed heads), a fine-tuning job row.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import openzoo.audit.jobs
import openzoo.finetune.dequant
import openzoo.finetune.jobs  # noqa: F401  (their migrations belong to every catalog)
from openzoo import config
from openzoo.certify.log import TransparencyLog
from openzoo.certify.service import Certification
from openzoo.errors import CatalogError, CatalogUnavailable, Conflict, InvalidRequest
from openzoo.schema import MIGRATIONS, open_store
from openzoo.store import migrations
from openzoo.store.connect import open_database
from openzoo.store.db import Database, redact_url, to_postgres
from openzoo.store.store import Store
from support.postgres import PostgresServer

OLD_HOME = Path(__file__).parent / "data" / "home-7c609fd"
Connect = Callable[[], Database]


@pytest.fixture
def connect(tmp_path: Path, catalog_url: str | None) -> Iterator[Connect]:
    """Opens one more connection to the test's catalog database (each like another server's)."""
    opened: list[Database] = []

    def one() -> Database:
        opened.append(open_database(catalog_url or str(tmp_path / "catalog.sqlite")))
        migrations.apply(opened[-1], MIGRATIONS)
        return opened[-1]

    yield one
    for db in opened:
        db.close()


def test_to_postgres_translates_only_what_it_must() -> None:
    assert to_postgres("SELECT a FROM t WHERE b = ? AND c LIKE 'pin:%' AND d = '?'") == \
        "SELECT a FROM t WHERE b = %s AND c LIKE 'pin:%%' AND d = '?'"
    assert to_postgres("CREATE TABLE t (a INTEGER PRIMARY KEY, b REAL, c BLOB, integer_count TEXT)") == \
        "CREATE TABLE t (a BIGINT PRIMARY KEY, b DOUBLE PRECISION, c BYTEA, integer_count TEXT)"
    assert to_postgres("SELECT 'it''s ? REAL'") == "SELECT 'it''s ? REAL'"


def test_rows_and_types_round_trip(connect: Connect) -> None:
    db = connect()
    with db.transaction():
        db.execute("CREATE TABLE kinds (n INTEGER, x REAL, b BLOB, s TEXT)")
        db.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?)",
                       [(2**40, 0.1, b"\x00\xff", "é"), (-1, 1e300, b"", "")])
    rows = db.execute("SELECT n, x, b, s FROM kinds ORDER BY n").fetchall()
    assert rows == [(-1, 1e300, b"", ""), (2**40, 0.1, b"\x00\xff", "é")]
    assert all(isinstance(r[2], bytes) for r in rows)
    result = db.execute("SELECT SUM(n), COUNT(*) FROM kinds")
    assert result.fetchone() == (2**40 - 1, 2) and result.fetchone() is None
    assert [r[0] for r in db.execute("SELECT n FROM kinds ORDER BY n")] == [-1, 2**40]
    with db.transaction():
        assert db.execute("UPDATE kinds SET s = ? WHERE n > ?", ("z", 0)).rowcount == 1
    assert db.table_exists("kinds") and not db.table_exists("nothing")


def test_nested_transaction_rolls_back_alone(connect: Connect) -> None:
    db = connect()
    with db.transaction():
        db.execute("CREATE TABLE t (v INTEGER)")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(CatalogError), db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
            db.execute("INSERT INTO no_such_table VALUES (3)")
        db.execute("INSERT INTO t VALUES (4)")
    assert [r[0] for r in db.execute("SELECT v FROM t ORDER BY v")] == [1, 4]
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO t VALUES (5)")
        raise RuntimeError("the caller fails")
    assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (2,)


def test_other_threads_never_read_an_unfinished_transaction(connect: Connect) -> None:
    db = connect()
    with db.transaction():
        db.execute("CREATE TABLE t (v INTEGER)")
    read: list[int] = []

    def count() -> None:
        row = db.execute("SELECT COUNT(*) FROM t").fetchone()
        read.append(row[0] if row else -1)

    reader = threading.Thread(target=count)
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)  # the writer sees its own write
        reader.start()
        if db.dialect == "postgresql":
            reader.join(30)
            assert read == [0]  # answered from the last commit, at once
        else:
            reader.join(0.5)
            assert read == []  # waits for the transaction (it shares the one connection)
    reader.join(30)
    assert read == ([0] if db.dialect == "postgresql" else [1])


def test_writers_on_separate_connections_take_turns(connect: Connect, catalog_url: str | None) -> None:
    """Two connections (two servers) appending to one log from several threads: one gapless log."""
    logs = [TransparencyLog(connect()) for _ in range(2)]
    errors: list[BaseException] = []

    def append(log: TransparencyLog, worker: int) -> None:
        try:
            for i in range(15):
                log.append("key", {"worker": worker, "i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(logs[w % 2], w)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert logs[0].head() == logs[1].head() and logs[0].size() == 60
    bodies = sorted((e.body["worker"], e.body["i"]) for e in logs[1].entries(0, 100))
    assert bodies == sorted((w, i) for w in range(4) for i in range(15))
    from openzoo.certify.keys import generate_key

    key = generate_key("zoo")
    logs[0].sign_head(key)
    report = logs[1].verify_log([key.public])
    assert report.ok, report.problems


def test_postgres_writer_lock_holds_other_servers_back(postgres_url: str) -> None:
    """While one server's transaction is open, another's waits on the advisory lock (seen in pg_locks)."""
    first, second, watcher = (open_database(postgres_url) for _ in range(3))
    got_in = threading.Event()

    def write() -> None:
        with second.transaction():
            got_in.set()

    with first.transaction():
        thread = threading.Thread(target=write)
        thread.start()
        waiting = False
        for _ in range(200):
            row = watcher.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if row.fetchone() == (1,):
                waiting = True
                break
            time.sleep(0.05)
        assert waiting and not got_in.is_set()
    thread.join(30)
    assert got_in.is_set()
    for db in (first, second, watcher):
        db.close()


def test_unreachable_postgres_is_unavailable_and_keeps_the_password() -> None:
    from support.server import free_port

    url = f"postgresql://zoo:s3cr%40t-pw@127.0.0.1:{free_port()}/catalog"
    with pytest.raises(CatalogUnavailable) as caught:
        open_database(url)
    text = f"{caught.value} {caught.value.hint}"
    assert "s3cr" not in text and "***" in text and "OPENZOO_CATALOG_URL" in text


def test_catalog_url_setting() -> None:
    home = Path("/srv/zoo")
    assert config.load({"OPENZOO_HOME": str(home)}).catalog == "sqlite:////srv/zoo/catalog.sqlite"
    url = "postgresql://zoo:hunter2@db.example:5432/zoo?sslmode=require&password=hunter2"
    cfg = config.load({"OPENZOO_HOME": str(home), "OPENZOO_CATALOG_URL": url})
    assert cfg.catalog == url and "hunter2" not in repr(cfg)
    assert redact_url(url) == "postgresql://zoo:***@db.example:5432/zoo?sslmode=require&password=***"
    assert redact_url("postgresql:///zoo?host=/run/pg&password=hunter2") == "postgresql:///zoo?host=/run/pg&password=***"
    assert redact_url("postgresql://zoo@db/zoo") == "postgresql://zoo@db/zoo"
    with pytest.raises(InvalidRequest, match="neither sqlite") as caught:
        config.load({"OPENZOO_CATALOG_URL": "mysql://zoo:hunter2@db/zoo"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(CatalogError, match="unsupported catalog URL"):
        open_database("mysql://db/zoo")


def test_integrity_check_names_broken_rules(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    assert store.catalog.integrity_check() == []
    with store.catalog.transaction() as tx:
        tx.execute("INSERT INTO models VALUES ('k', 'k:1', 'sha256:feed', 0, 0)")
    problems = store.catalog.integrity_check()
    assert problems == ["model k points at manifest sha256:feed, whose blobs are not recorded"]
    assert [c.detail for c in store.verify() if not c.ok] == problems
    store.close()


def _schema(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return {name: sql for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")}


def test_a_catalog_made_before_the_seam_opens_and_keeps_its_schema(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(OLD_HOME, home)
    before = _schema(home / "catalog.sqlite")
    store = open_store(home, config.load({"OPENZOO_HOME": str(home)}).catalog)  # as openzoo serve opens it
    cert = Certification(store)
    assert cert.verify("tiny:1").ok  # seal, quorum, log inclusion: all read from the old catalog
    report = cert.log.verify_log(cert.zoo_keys())
    assert report.ok and report.size > 0, report.problems
    assert store.catalog.integrity_check() == []
    assert all(check.ok for check in store.verify())
    job = store.catalog.connection.execute("SELECT name, status FROM finetune_jobs WHERE id = 'job1'").fetchone()
    assert job == ("tiny-ft:1", "succeeded")
    cert.revoke("tiny:1", "testing an old catalog")  # and it takes new writes, log included
    assert cert.log.verify_log(cert.zoo_keys()).ok
    store.close()

    after = _schema(home / "catalog.sqlite")
    assert {name: after[name] for name in before} == before  # nothing that existed changed
    assert {"catalog_meta", "audit_jobs", "audit_jobs_created", "audit_jobs_model", "audit_jobs_owner",
            "audit_job_events"} <= {n for n in after if n not in before}  # new migrations' tables only
    applied = {r[0] for r in sqlite3.connect(home / "catalog.sqlite").execute("SELECT id FROM _migrations")}
    assert {1, 2, 5, 6, 100, 200, 300, 301} <= applied
    assert (home / "catalog.id").read_text().strip() == Store(home).catalog.identity()  # the home is now bound


def test_a_new_sqlite_catalog_has_the_schema_old_ones_have(tmp_path: Path) -> None:
    """The migrations, now written for both databases, still make exactly the SQLite schema they made."""
    store = open_store(tmp_path)
    Certification(store).log.size()
    store.close()
    old = _schema(OLD_HOME / "catalog.sqlite")
    new = _schema(tmp_path / "catalog.sqlite")
    assert {name: new.get(name) for name in old} == old


def test_a_home_serves_one_catalog(tmp_path: Path, postgres: PostgresServer, postgres_catalogs: str) -> None:
    """A home opened with another catalog than its own is refused before anything could be swept."""
    shared, first, second = tmp_path / "shared", postgres.create_schema(postgres_catalogs), \
        postgres.create_schema(postgres_catalogs)
    Store(shared, first).close()
    blobs = Store(shared, first)
    kept = blobs.blobs.put_bytes(b"a blob only the shared catalog knows")
    blobs.close()
    with pytest.raises(Conflict, match="belongs to a catalog elsewhere"):
        Store(shared)  # a shared home opened without OPENZOO_CATALOG_URL
    assert not (shared / "catalog.sqlite").exists()
    with pytest.raises(Conflict, match="belongs to another catalog"):
        Store(shared, second)
    assert Store(shared, first).blobs.exists(kept.digest)

    own = tmp_path / "own"
    Store(own).close()
    (own / "catalog.id").unlink()  # as a home made before homes were bound
    with pytest.raises(Conflict, match="has a catalog of its own"):
        Store(own, second)
    for url in (first, second):
        postgres.drop_schema(url)
