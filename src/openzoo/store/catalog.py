"""The catalog: model names → manifest digests, and which blobs each manifest needs.

The catalog owns reference counts, so garbage collection is a query, not a scan of every manifest.
It lives in a :class:`~openzoo.store.db.Database`: the embedded SQLite file by default, or PostgreSQL
when several servers share one catalog (``OPENZOO_CATALOG_URL``). Every write is one serialized
transaction (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's advisory writer lock); a crash at any point
leaves either the old or the new state, never a mix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from openzoo.errors import Conflict, ModelNotFound, StoreCorrupt
from openzoo.names import ModelName
from openzoo.store import migrations
from openzoo.store.connect import open_database
from openzoo.store.db import Database


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    key: str
    display: str
    manifest_digest: str
    created_at: float
    modified_at: float


class Catalog:
    """One catalog database; safe to share between threads (writes are serialized)."""

    def __init__(self, db: Database, steps: Sequence[migrations.Step] = migrations.STORE) -> None:
        """Open the catalog in ``db`` and apply what ``steps`` (the schema, in order) has not yet applied."""
        self._db = db
        self._steps = tuple(steps)
        migrations.apply(db, self._steps)

    @classmethod
    def open(cls, url: str, steps: Sequence[migrations.Step] = migrations.STORE) -> Catalog:
        """The catalog at ``sqlite:///PATH`` (or a plain path) or ``postgresql://...``."""
        return cls(open_database(url), steps)

    @property
    def connection(self) -> Database:
        """The database, for domain packages that keep their own tables in the catalog.

        Read through it freely; write only inside :meth:`transaction`.
        """
        return self._db

    @property
    def location(self) -> str:
        """Where the catalog is, fit to print (no password)."""
        return self._db.location

    def identity(self) -> str:
        """The catalog's own random id (migration 6): a home records it to tell its catalog from others."""
        row = self._db.execute("SELECT value FROM catalog_meta WHERE key = 'catalog_id'").fetchone()
        if row is None:
            raise StoreCorrupt("the catalog has no identity (catalog_meta)")
        return str(row[0])

    def close(self) -> None:
        self._db.close()

    def transaction(self) -> AbstractContextManager[Database]:
        """The one way to write: a serialized transaction (a savepoint inside another one)."""
        return self._db.transaction()

    # names

    def get(self, name: ModelName) -> CatalogEntry:
        row = self._db.execute(
            "SELECT key, display, manifest_digest, created_at, modified_at FROM models WHERE key = ?",
            (name.key,),
        ).fetchone()
        if row is None:
            raise ModelNotFound(name.display)
        return CatalogEntry(*row)

    def find(self, name: ModelName) -> CatalogEntry | None:
        try:
            return self.get(name)
        except ModelNotFound:
            return None

    def entries(self) -> list[CatalogEntry]:
        """Every model, newest first."""
        rows = self._db.execute(
            "SELECT key, display, manifest_digest, created_at, modified_at FROM models "
            "ORDER BY modified_at DESC, key"
        ).fetchall()
        return [CatalogEntry(*row) for row in rows]

    def tag(self, name: ModelName, manifest_digest: str, blobs: Sequence[tuple[str, int]], *,
            keep_history: bool = False) -> None:
        """Point ``name`` at a manifest, recording every blob it needs (the manifest's own included).

        All blobs must already be on disk; this is the moment a model becomes visible. With
        ``keep_history`` the manifest it replaces stays stored (and its blobs referenced) in
        ``model_history`` until the name is removed: edits such as a new card never lose the old one.
        """
        now = time.time()
        with self.transaction() as conn:
            if keep_history:
                conn.execute(
                    "INSERT INTO model_history(key, manifest_digest, replaced_at) "
                    "SELECT key, manifest_digest, ? FROM models WHERE key = ? AND manifest_digest != ? "
                    "ON CONFLICT (key, manifest_digest) DO NOTHING",
                    (now, name.key, manifest_digest))
            for digest, size in blobs:
                conn.execute("INSERT INTO blobs(digest, size) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
                             (digest, size))
                conn.execute("INSERT INTO manifest_refs VALUES (?, ?) "
                             "ON CONFLICT (manifest_digest, blob_digest) DO NOTHING", (manifest_digest, digest))
            conn.execute(
                "INSERT INTO models(key, display, manifest_digest, created_at, modified_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "manifest_digest = excluded.manifest_digest, display = excluded.display, "
                "modified_at = excluded.modified_at",
                (name.key, name.display, manifest_digest, now, now),
            )
            self._forget_unreferenced(conn)

    def copy(self, source: ModelName, destination: ModelName) -> None:
        entry = self.get(source)
        if source.key == destination.key:
            raise Conflict(f'"{source.display}" and "{destination.display}" are the same model')
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO models(key, display, manifest_digest, created_at, modified_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "manifest_digest = excluded.manifest_digest, modified_at = excluded.modified_at",
                (destination.key, destination.display, entry.manifest_digest, now, now),
            )
            self._forget_unreferenced(conn)

    def delete(self, name: ModelName) -> list[str]:
        """Remove a name; return the blobs no remaining model needs (already forgotten here).

        The caller unlinks those files after this transaction commits; if it crashes first, the
        start-up sweep removes them, since no catalog row refers to them any more.
        """
        with self.transaction() as conn:
            if conn.execute("DELETE FROM models WHERE key = ?", (name.key,)).rowcount == 0:
                raise ModelNotFound(name.display)
            conn.execute("DELETE FROM model_history WHERE key = ?", (name.key,))
            return self._forget_unreferenced(conn)

    def drop_pins(self, prefix: str) -> list[str]:
        """Drop the pinned references (``pin:...`` rows) starting with ``prefix``; return the blobs no row
        refers to any more (already forgotten here; the caller unlinks their files)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM manifest_refs WHERE manifest_digest LIKE ?", (prefix + "%",))
            return self._forget_unreferenced(conn)

    def _forget_unreferenced(self, conn: Database) -> list[str]:
        conn.execute(
            "DELETE FROM manifest_refs WHERE manifest_digest NOT IN (SELECT manifest_digest FROM models) "
            "AND manifest_digest NOT IN (SELECT manifest_digest FROM model_history) "
            "AND manifest_digest NOT LIKE 'pin:%'"  # pinned caches (e.g. finetune's dequantized weights)
        )
        gone = [row[0] for row in conn.execute(
            "SELECT digest FROM blobs WHERE digest NOT IN (SELECT blob_digest FROM manifest_refs)"
        )]
        conn.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in gone])
        return gone

    def names_for(self, manifest_digest: str) -> list[str]:
        """Names pointing at ``manifest_digest`` now, then names it was replaced under (edits such as a
        seal or a card keep the earlier manifest in the history): how lineage digests become names."""
        now = self._db.execute("SELECT display FROM models WHERE manifest_digest = ? ORDER BY key",
                               (manifest_digest,)).fetchall()
        before = self._db.execute(
            "SELECT m.display FROM model_history h JOIN models m ON m.key = h.key "
            "WHERE h.manifest_digest = ? ORDER BY m.key", (manifest_digest,)).fetchall()
        return list(dict.fromkeys(str(row[0]) for row in [*now, *before]))

    def history(self, name: ModelName) -> list[tuple[str, float]]:
        """Earlier manifests of a name (newest first) with when each was replaced."""
        rows = self._db.execute(
            "SELECT manifest_digest, replaced_at FROM model_history WHERE key = ? ORDER BY replaced_at DESC",
            (name.key,)).fetchall()
        return [(str(d), float(t)) for d, t in rows]

    # blobs

    def referenced_blobs(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT digest FROM blobs")}

    def blob_refcount(self, digest: str) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM manifest_refs r JOIN models m ON m.manifest_digest = r.manifest_digest "
            "WHERE r.blob_digest = ?", (digest,)
        ).fetchone()
        return int(row[0]) if row else 0

    def verified_at(self, digest: str) -> float | None:
        row = self._db.execute("SELECT verified_at FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_verified(self, digest: str, when: float | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE blobs SET verified_at = ? WHERE digest = ?", (when, digest))

    def integrity_check(self) -> list[str]:
        """The database's own consistency check, then the catalog's rules; an empty list means sound.

        The rules hold on both databases: every model's manifest is among the manifests whose blobs are
        recorded, every recorded blob reference names a known blob, every migration this code knows
        is recorded as applied.
        """
        problems = self._db.integrity_check()
        problems += [f"model {key} points at manifest {digest}, whose blobs are not recorded"
                     for key, digest in self._db.execute(
                         "SELECT key, manifest_digest FROM models WHERE manifest_digest NOT IN "
                         "(SELECT manifest_digest FROM manifest_refs)")]
        problems += [f"manifest {manifest} refers to blob {blob}, which the catalog does not know"
                     for manifest, blob in self._db.execute(
                         "SELECT manifest_digest, blob_digest FROM manifest_refs WHERE blob_digest NOT IN "
                         "(SELECT digest FROM blobs)")]
        problems += [f"migration {n} is not applied" for n in migrations.missing(self._db, self._steps)]
        return problems
