"""Numbered, append-only catalog migrations, applied once each and recorded in ``_migrations``.

Never edit a migration that has shipped: add a new one. Other packages (certify, audit, finetune) add
their tables here too, so one catalog file holds one consistent schema history.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[int, str, Migration]] = []


def migration(number: int, name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        if any(n == number for n, _, _ in MIGRATIONS):
            raise RuntimeError(f"migration {number} registered twice")
        MIGRATIONS.append((number, name, fn))
        MIGRATIONS.sort(key=lambda item: item[0])
        return fn

    return register


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (``executescript`` would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


@migration(1, "models and blob references")
def _m001(conn: sqlite3.Connection) -> None:
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
def _m002(conn: sqlite3.Connection) -> None:
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


def apply(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction; return those applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT id FROM _migrations")}
    applied = []
    for number, name, fn in MIGRATIONS:
        if number in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM _migrations WHERE id = ?", (number,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            fn(conn)
            conn.execute("INSERT INTO _migrations VALUES (?, ?, ?)", (number, name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(number)
    return applied
