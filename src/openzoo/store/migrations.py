"""Numbered, append-only catalog migrations, applied once each and recorded in ``_migrations``.

Never edit a migration that has shipped: add a new one. Each package that keeps tables in the catalog
(store, certify, audit, finetune, registry) defines its steps next to the code that uses them, as
:class:`Step` values; :data:`openzoo.schema.MIGRATIONS` lists every step in order, and the process's
:class:`~openzoo.services.Services` opens the catalog with that list, which applies what is missing once,
at start-up. Nothing registers itself on import. :data:`STORE` (this module's own steps) is what a bare
:class:`~openzoo.store.catalog.Catalog` applies.

The list is the same for SQLite and PostgreSQL: a migration writes the portable subset (see
:mod:`openzoo.store.db`) and gets the schema's types translated; where DDL truly differs (the
transparency log's append-only triggers) it branches on ``db.dialect`` and makes the same schema.
Migrations run under the writer lock, so servers starting together on one PostgreSQL catalog apply
each migration once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from openzoo.store.db import Database

__all__ = ["STORE", "Migration", "Step", "applied", "apply", "missing", "ordered", "run_script"]

Migration = Callable[[Database], None]


@dataclass(frozen=True, slots=True)
class Step:
    """One numbered migration: applied once per catalog and recorded in ``_migrations``."""

    number: int
    name: str
    run: Migration


def ordered(steps: Iterable[Step]) -> tuple[Step, ...]:
    """The steps by number; two steps with one number are a programming error."""
    result = tuple(sorted(steps, key=lambda step: step.number))
    numbers = [step.number for step in result]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise RuntimeError(f"migration {twice[0]} is listed twice")
    return result


def run_script(conn: Database, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (no ``;`` inside a statement)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


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


def _m006(conn: Database) -> None:
    conn.execute("CREATE TABLE catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO catalog_meta VALUES ('catalog_id', ?)", (uuid.uuid4().hex,))


STORE: tuple[Step, ...] = (
    Step(1, "models and blob references", _m001),
    Step(2, "manifest history per model name", _m002),
    Step(6, "catalog identity (which home's blobs it names)", _m006),
)

_TABLE = ("CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
          "applied_at REAL NOT NULL)")


def applied(db: Database) -> set[int]:
    """The migrations recorded in the catalog."""
    if not db.table_exists("_migrations"):
        return set()
    return {int(row[0]) for row in db.execute("SELECT id FROM _migrations")}


def missing(db: Database, steps: Sequence[Step]) -> list[int]:
    """The steps the catalog has not applied."""
    done = applied(db)
    return [step.number for step in steps if step.number not in done]


def apply(db: Database, steps: Sequence[Step]) -> list[int]:
    """Apply, in order, every step not yet recorded, each in its own transaction; return those applied.

    Cheap when there is nothing to do (one read, no lock).
    """
    pending = set(missing(db, steps))
    done = []
    for step in ordered(steps):
        if step.number not in pending:
            continue
        with db.transaction() as tx:
            tx.execute(_TABLE)
            if tx.execute("SELECT 1 FROM _migrations WHERE id = ?", (step.number,)).fetchone():
                continue  # another process applied it first
            step.run(tx)
            tx.execute("INSERT INTO _migrations VALUES (?, ?, ?)", (step.number, step.name, time.time()))
        done.append(step.number)
    return done
