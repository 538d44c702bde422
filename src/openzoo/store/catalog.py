"""The SQLite catalog: model names → manifest digests, and which blobs each manifest needs.

The catalog owns reference counts, so garbage collection is a query, not a scan of every manifest.
All writes go through one lock and ``BEGIN IMMEDIATE`` transactions (WAL mode lets readers in other
processes carry on); a crash at any point leaves either the old or the new state, never a mix.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openzoo.errors import Conflict, ModelNotFound
from openzoo.names import ModelName
from openzoo.store import migrations


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    key: str
    display: str
    manifest_digest: str
    created_at: float
    modified_at: float


class Catalog:
    """One catalog file; safe to share between threads (writes are serialized)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            migrations.apply(self._conn)

    @property
    def connection(self) -> sqlite3.Connection:
        """The shared connection, for domain packages that keep their own tables in the catalog.

        Read through it freely; write only inside :meth:`transaction`.
        """
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The one way to write: a serialized ``BEGIN IMMEDIATE`` transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    # names

    def get(self, name: ModelName) -> CatalogEntry:
        with self._lock:
            row = self._conn.execute(
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
        with self._lock:
            rows = self._conn.execute(
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
                    "INSERT OR IGNORE INTO model_history(key, manifest_digest, replaced_at) "
                    "SELECT key, manifest_digest, ? FROM models WHERE key = ? AND manifest_digest != ?",
                    (now, name.key, manifest_digest))
            for digest, size in blobs:
                conn.execute("INSERT OR IGNORE INTO blobs(digest, size) VALUES (?, ?)", (digest, size))
                conn.execute("INSERT OR IGNORE INTO manifest_refs VALUES (?, ?)", (manifest_digest, digest))
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

    def _forget_unreferenced(self, conn: sqlite3.Connection) -> list[str]:
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
        with self._lock:
            now = self._conn.execute("SELECT display FROM models WHERE manifest_digest = ? ORDER BY key",
                                     (manifest_digest,)).fetchall()
            before = self._conn.execute(
                "SELECT m.display FROM model_history h JOIN models m ON m.key = h.key "
                "WHERE h.manifest_digest = ? ORDER BY m.key", (manifest_digest,)).fetchall()
        return list(dict.fromkeys(str(row[0]) for row in [*now, *before]))

    def history(self, name: ModelName) -> list[tuple[str, float]]:
        """Earlier manifests of a name (newest first) with when each was replaced."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT manifest_digest, replaced_at FROM model_history WHERE key = ? ORDER BY replaced_at DESC",
                (name.key,)).fetchall()
        return [(str(d), float(t)) for d, t in rows]

    # blobs

    def referenced_blobs(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT digest FROM blobs")}

    def blob_refcount(self, digest: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM manifest_refs r JOIN models m ON m.manifest_digest = r.manifest_digest "
                "WHERE r.blob_digest = ?", (digest,)
            ).fetchone()
        return int(row[0])

    def verified_at(self, digest: str) -> float | None:
        with self._lock:
            row = self._conn.execute("SELECT verified_at FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def mark_verified(self, digest: str, when: float | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE blobs SET verified_at = ? WHERE digest = ?", (when, digest))

    def integrity_check(self) -> list[str]:
        """SQLite's own consistency check; an empty list means the file is sound."""
        with self._lock:
            rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return [] if rows == [("ok",)] else [str(r[0]) for r in rows]
