"""Numbered, append-only catalog migrations, applied once each and recorded in ``_migrations``.

Never edit a migration that has shipped: add a new one. Other packages (certify, audit, finetune) add
their tables here too, so one catalog holds one consistent schema history.

The list is the same for SQLite and PostgreSQL: a migration writes the portable subset (see
:mod:`openzoo.store.db`) and gets the schema's types translated; where DDL truly differs (the
transparency log's append-only triggers) it branches on ``db.dialect`` and makes the same schema.
Migrations run under the writer lock, so servers starting together on one PostgreSQL catalog apply
each migration once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from openzoo.store.db import Database

Migration = Callable[[Database], None]
MIGRATIONS: list[tuple[int, str, Migration]] = []


def migration(number: int, name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        if any(n == number for n, _, _ in MIGRATIONS):
            raise RuntimeError(f"migration {number} registered twice")
        MIGRATIONS.append((number, name, fn))
        MIGRATIONS.sort(key=lambda item: item[0])
        return fn

    return register


def run_script(conn: Database, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (no ``;`` inside a statement)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


@migration(1, "models and blob references")
def _m001(conn: Database) -> None:
    run_script(
        conn,
        """
        CREATE TABLE models (
            key TEXT PRIMARY KEY,
            display TEXT NOT NULL,
            manifest_digest TEXT NOT NULL,
            created_at REAL NOT NULL,
            modified_at REAL NOT NULL
        );
        CREATE INDEX models_manifest ON models(manifest_digest);
        CREATE TABLE blobs (
            digest TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            verified_at REAL
        );
        CREATE TABLE manifest_refs (
            manifest_digest TEXT NOT NULL,
            blob_digest TEXT NOT NULL REFERENCES blobs(digest),
            PRIMARY KEY (manifest_digest, blob_digest)
        );
        CREATE INDEX manifest_refs_blob ON manifest_refs(blob_digest);
        """
    )


@migration(2, "manifest history per model name")
def _m002(conn: Database) -> None:
    run_script(
        conn,
        """
        CREATE TABLE model_history (
            key TEXT NOT NULL,
            manifest_digest TEXT NOT NULL,
            replaced_at REAL NOT NULL,
            PRIMARY KEY (key, manifest_digest)
        );
        """,
    )


@migration(6, "catalog identity (which home's blobs it names)")
def _m006(conn: Database) -> None:
    conn.execute("CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO catalog_meta VALUES ('catalog_id', ?)", (uuid.uuid4().hex,))


_TABLE = ("CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
          "applied_at REAL NOT NULL)")


def applied(db: Database) -> set[int]:
    """The migrations recorded in the catalog."""
    if not db.table_exists("_migrations"):
        return set()
    return {int(row[0]) for row in db.execute("SELECT id FROM _migrations")}


def missing(db: Database) -> list[int]:
    """Registered migrations the catalog has not applied (a module imported after the catalog opened)."""
    done = applied(db)
    return [number for number, _, _ in MIGRATIONS if number not in done]


def apply(db: Database) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction; return those applied.

    Cheap when there is nothing to do (one read, no lock), so modules that register migrations call it
    when they start using the catalog.
    """
    pending = set(missing(db))
    done = []
    for number, name, fn in list(MIGRATIONS):
        if number not in pending:
            continue
        with db.transaction() as tx:
            tx.execute(_TABLE)
            if tx.execute("SELECT 1 FROM _migrations WHERE id = ?", (number,)).fetchone():
                continue  # another process applied it first
            fn(tx)
            tx.execute("INSERT INTO _migrations VALUES (?, ?, ?)", (number, name, time.time()))
        done.append(number)
    return done
