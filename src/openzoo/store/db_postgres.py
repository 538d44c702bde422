"""PostgreSQL behind the catalog seam (:mod:`openzoo.store.db`), so several servers share one catalog.

Writers: one dedicated connection per process runs transactions one at a time (a process lock), and
each transaction's first statement is ``pg_advisory_xact_lock(WRITER_LOCK)``, held until commit or
rollback. So across every server on the database there is one writer at a time, as with SQLite's
``BEGIN IMMEDIATE``; and since PostgreSQL's READ COMMITTED gives each statement a fresh snapshot, a
writer sees everything committed before it got the lock (the transparency log re-reads its size there
and appends after whatever another server appended).

Readers: a small pool of autocommit connections; a read outside a transaction borrows one for the one
statement, so it never sees another thread's uncommitted writes and never blocks on the writer.

A lost connection (database restarted, network cut) is dropped and replaced at the next use; the call
that met it fails with :class:`openzoo.errors.CatalogUnavailable` (503), never with a half-done write.
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

from openzoo.errors import CatalogError, CatalogUnavailable
from openzoo.store.db import Database, Dialect, Rows, redact_url, to_postgres

__all__ = ["WRITER_LOCK", "PostgresDatabase"]

#: The advisory lock every catalog writer holds (a 64-bit key derived from a fixed name).
WRITER_LOCK = int.from_bytes(hashlib.sha256(b"openzoo catalog writer").digest()[:8], "big", signed=True)
#: Most connections one process opens for reads at once (plus one for writes).
POOL_SIZE = 8
CONNECT_TIMEOUT_S = 10
BORROW_TIMEOUT_S = 60.0

Connection = psycopg.Connection[tuple[Any, ...]]


class _NumericLoader(Loader):
    """NUMERIC results (``SUM`` of integers) as int when whole, else float, the way SQLite answers."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode("ascii")
        try:
            return int(text)
        except ValueError:
            return float(text)


class PostgresDatabase(Database):
    """A catalog in a PostgreSQL database, reached with a ``postgresql://`` URL."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self._url = url
        self._secrets = _secrets(url)
        self.location = redact_url(url)
        self._lock = threading.RLock()  # one transaction at a time in this process
        self._writer: Connection | None = None
        self._tx_conn: Connection | None = None
        self._tx_thread: int | None = None
        self._idle: list[Connection] = []
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._idle.append(self._connect())  # a wrong URL or a stopped server fails here, at start-up

    # -- connections -----------------------------------------------------------------------------
    def _connect(self) -> Connection:
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name="openzoo")
        except psycopg.Error as exc:
            raise CatalogUnavailable(f"cannot connect to the catalog at {self.location}: {self._scrub(exc)}",
                                     hint="check OPENZOO_CATALOG_URL and that PostgreSQL is running") from exc
        conn.adapters.register_loader("numeric", _NumericLoader)
        return conn

    @contextmanager
    def _borrow(self) -> Iterator[Connection]:
        if not self._slots.acquire(timeout=BORROW_TIMEOUT_S):
            raise CatalogUnavailable("every catalog connection stayed busy for a minute")
        conn: Connection | None = None
        try:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed or conn.broken:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                if conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.close()
                else:
                    with self._idle_lock:
                        self._idle.append(conn)
            self._slots.release()

    def _writer_conn(self) -> Connection:
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = self._connect()
        return self._writer

    # -- the seam --------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        query = to_postgres(sql)
        if self._tx_thread == threading.get_ident() and self._tx_conn is not None:
            return self._run(self._tx_conn, query, params)
        with self._borrow() as conn:
            return self._run(conn, query, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """One statement over many rows, pipelined by psycopg (the log appends thousands this way)."""
        query, params = to_postgres(sql), [tuple(r) for r in rows]
        if not params:
            return 0
        if self._tx_thread == threading.get_ident() and self._tx_conn is not None:
            return self._run_many(self._tx_conn, query, params)
        with self._borrow() as conn:
            return self._run_many(conn, query, params)

    def _run_many(self, conn: Connection, query: str, params: list[tuple[Any, ...]]) -> int:
        with self._errors(), conn.cursor() as cursor:
            cursor.executemany(query, params)
            return max(0, cursor.rowcount)

    def _run(self, conn: Connection, query: str, params: Sequence[Any]) -> Rows:
        with self._errors():
            cursor = conn.execute(query, tuple(params))
            rows = cursor.fetchall() if cursor.description else []
            return Rows(rows, cursor.rowcount)

    @contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        if self._tx_thread == threading.get_ident() and self._tx_conn is not None:
            with self._errors(), self._tx_conn.transaction():  # nested: a savepoint
                yield self
            return
        with self._lock:
            conn = self._writer_conn()
            self._tx_conn, self._tx_thread = conn, threading.get_ident()
            try:
                with self._errors(), conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
                    yield self
            finally:
                self._tx_conn = self._tx_thread = None

    def table_exists(self, name: str) -> bool:
        row = self.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                           "AND table_name = ?", (name,)).fetchone()
        return row is not None

    def integrity_check(self) -> list[str]:
        problems = [f"index {r[0]} is invalid (rebuild it with REINDEX)"
                    for r in self.execute("SELECT indexrelid::regclass::text FROM pg_index i "
                                          "JOIN pg_class c ON c.oid = i.indrelid "
                                          "WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace")]
        problems += [f"constraint {r[0]} on {r[1]} is not validated"
                     for r in self.execute("SELECT conname, conrelid::regclass::text FROM pg_constraint "
                                           "WHERE NOT convalidated AND connamespace = current_schema()::regnamespace")]
        return problems

    def close(self) -> None:
        with self._lock, self._idle_lock:
            for conn in [*self._idle, *([self._writer] if self._writer else [])]:
                conn.close()
            self._idle.clear()
            self._writer = None

    # -- errors ----------------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.OperationalError as exc:
            raise CatalogUnavailable(f"catalog at {self.location}: {self._scrub(exc)}",
                                     hint="check that PostgreSQL is running, then try again") from exc
        except psycopg.Error as exc:
            raise CatalogError(f"catalog: {self._scrub(exc)}") from exc

    def _scrub(self, exc: BaseException) -> str:
        """The driver's message without the password, should it quote the connection string."""
        diag = getattr(exc, "diag", None)
        text = " ".join(((diag.message_primary if diag is not None else None) or str(exc)).split())  # one line
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _secrets(url: str) -> list[str]:
    """The URL's passwords (user part, ``password=`` option) as written and decoded, longest first."""
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.password or "", *urllib.parse.parse_qs(parts.query).get("password", [])]
    except ValueError:
        return []
    secrets = {s for p in found if p for s in (p, urllib.parse.unquote(p), urllib.parse.quote(p, safe=""))}
    return sorted(secrets, key=len, reverse=True)
