"""The catalog's database seam: one small interface over SQLite (embedded) and PostgreSQL (shared).

Why a seam of our own rather than an ORM: the catalog's SQL is a handful of plain statements written
once in a portable subset (``?`` placeholders, ``INSERT ... ON CONFLICT``, column types TEXT, INTEGER,
REAL, BLOB), and the only things that truly differ between the two databases are how a writer is
serialized and four words of SQL. Those differences live here and nowhere else:

* :meth:`Database.execute` runs one statement and returns its rows already fetched (:class:`Rows`:
  ``fetchone``, ``fetchall``, iteration, ``rowcount``), so no cursor outlives a lock or a pooled
  connection.
* :meth:`Database.transaction` is the one way to write. It serializes writers exactly as SQLite's
  one-writer rule does: SQLite takes ``BEGIN IMMEDIATE``; PostgreSQL takes
  ``pg_advisory_xact_lock`` as the transaction's first statement, so writers in *every* server sharing
  the database queue behind each other (the transparency log's append order depends on it) and each
  writer then sees everything committed before it. Nested calls are savepoints.
* :func:`to_postgres` is the whole dialect translation: ``?`` -> ``%s`` (and ``%`` -> ``%%``), BLOB ->
  BYTEA, REAL -> DOUBLE PRECISION, INTEGER -> BIGINT (type names are written in upper case). Bytes go
  in and come out as ``bytes`` on both.

Reads outside a transaction: SQLite shares its one connection under the writer's lock (a reader waits
for a transaction in progress instead of seeing it half done); PostgreSQL lends each read a pooled
autocommit connection, so it sees only committed data, also from other servers. The thread inside a
transaction reads through that transaction, seeing its own writes on both.

Driver errors become :class:`openzoo.errors.CatalogError` (or :class:`CatalogUnavailable` when the
database cannot be reached), so callers never import a driver.
"""

from __future__ import annotations

import abc
import functools
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

from openzoo.catalog_url import SQLITE_PREFIX, redact_url
from openzoo.errors import CatalogError, CatalogUnavailable

__all__ = ["Database", "Dialect", "Rows", "SqliteDatabase", "redact_url", "sqlite_path",
           "to_postgres"]

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]



class Rows:
    """The fetched result of one statement."""

    __slots__ = ("_next", "_rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Row]:
        rest, self._next = self._rows[self._next:], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class Database(abc.ABC):
    """One catalog database; safe to share between threads."""

    dialect: Dialect
    #: Where the database is, fit to print (a PostgreSQL password is masked).
    location: str

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """Run one statement written in the portable subset; write only inside :meth:`transaction`."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement per parameter row; return the rows changed in all."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Database]:
        """The one way to write: a serialized transaction (a savepoint when nested); yields this database."""

    @abc.abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether a table of that name exists (the migration table is looked for before it is made)."""

    @abc.abstractmethod
    def integrity_check(self) -> list[str]:
        """The database engine's own consistency problems; an empty list means none were found."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection; the object cannot be used afterwards."""


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (or a plain path); None for any other URL."""
    if url.startswith(SQLITE_PREFIX):
        return Path(url[len(SQLITE_PREFIX):])
    return None if "://" in url else Path(url)


_LITERAL = re.compile(r"('(?:[^']|'')*')")
_TYPES = re.compile(r"\b(BLOB|REAL|INTEGER)\b")
_PG_TYPES = {"BLOB": "BYTEA", "REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """Translate a statement of the portable subset to PostgreSQL (for psycopg's ``%s`` placeholders).

    Quoted literals keep their text (only ``%`` is doubled, as psycopg reads the whole query); outside
    them ``?`` becomes ``%s`` and the upper-case type names BLOB, REAL, INTEGER become BYTEA, DOUBLE
    PRECISION, BIGINT (SQLite integers are 64-bit; so are these).
    """
    out = []
    for i, part in enumerate(_LITERAL.split(sql)):
        part = part.replace("%", "%%")
        if i % 2 == 0:
            part = _TYPES.sub(lambda m: _PG_TYPES[m.group(1)], part.replace("?", "%s"))
        out.append(part)
    return "".join(out)


@contextmanager
def sqlite_errors() -> Iterator[None]:
    """Turn sqlite3's errors into the error tree (busy past the timeout: unavailable, try again)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "unable to open" in text or "busy" in text:
            raise CatalogUnavailable(f"catalog: {text}") from exc
        raise CatalogError(f"catalog: {text}") from exc
    except sqlite3.Error as exc:
        raise CatalogError(f"catalog: {exc}") from exc


class SqliteDatabase(Database):
    """A catalog file in WAL mode (readers in other processes carry on while one writes).

    One connection under one re-entrant lock: a statement or a whole transaction holds it, so a reader
    in another thread waits for a transaction to finish rather than seeing it half done.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.location = f"{SQLITE_PREFIX}{path}"
        self._lock = threading.RLock()
        self._depth = 0
        with sqlite_errors():
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=30000")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        with self._lock, sqlite_errors():
            cursor = self._conn.execute(sql, tuple(params))
            rows = cursor.fetchall() if cursor.description else []
            return Rows(rows, cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self._lock, sqlite_errors():
            return self._conn.executemany(sql, [tuple(r) for r in rows]).rowcount

    @contextmanager
    def transaction(self) -> Iterator[SqliteDatabase]:
        with self._lock:
            depth = self._depth
            savepoint = f"openzoo_sp{depth}"
            with sqlite_errors():
                self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                with sqlite_errors():
                    if depth == 0:
                        if self._conn.in_transaction:  # SQLite may have rolled back on its own
                            self._conn.execute("ROLLBACK")
                    else:
                        self._conn.execute(f"ROLLBACK TO {savepoint}")
                        self._conn.execute(f"RELEASE {savepoint}")
                raise
            self._depth -= 1
            with sqlite_errors():
                self._conn.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")

    def table_exists(self, name: str) -> bool:
        return self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    def integrity_check(self) -> list[str]:
        rows = self.execute("PRAGMA integrity_check").fetchall()
        problems = [] if rows == [("ok",)] else [str(r[0]) for r in rows]
        for table, rowid, parent, _ in self.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"{table} row {rowid} refers to a missing {parent} row")
        return problems

    def close(self) -> None:
        with self._lock:
            self._conn.close()
