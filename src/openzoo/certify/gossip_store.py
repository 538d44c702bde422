"""What this zoo saw of other zoos' logs: signed heads, from where and when, a verified copy of each log's
leaf hashes, and fork evidence. Tables ``gossip_*`` (migration 110) in the catalog.

Why a copy of the leaves (the *mirror*): consistency proofs show that a new head extends an old one, but
once a log has rewritten its history it no longer serves proofs about the old one, so a monitor holding
only heads and proofs could say "these disagree" without being able to prove it to anyone. With the
leaf hashes of the history it accepted (32 bytes an entry, fetched once), a monitor can always compute
the root of any prefix and the RFC 9162 consistency proof that a third party needs.

Invariant, per log: the mirror holds exactly the leaves of the largest *consistent* head, and every
consistent head is the root of a prefix of the mirror. So every pair of consistent heads is consistent
(both are prefixes of one sequence), and a new head is checked against all of them at once by comparing
its root with the mirror's root at its size: O(log n) stored reads, no network. Heads that disagree are
kept with status ``forked`` beside the evidence; nothing reaches these tables before its signature and,
for leaves, the signed root they hash to have been checked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openzoo.certify import merkle
from openzoo.certify.gossip import ForkEvidence, SignedHead, evidence_from_json
from openzoo.errors import Conflict, InvalidRequest
from openzoo.facts.canonical import parse_json
from openzoo.store import migrations
from openzoo.store.catalog import Catalog
from openzoo.store.db import Database

__all__ = ["GossipStore", "LogView", "StoredFork", "StoredHead"]

HeadStatus = Literal["consistent", "forked"]


def _m110(conn: Database) -> None:
    migrations.run_script(
        conn,
        """
        CREATE TABLE gossip_logs (
            origin TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            url TEXT,
            size INTEGER NOT NULL,
            checked_at REAL NOT NULL
        );
        CREATE TABLE gossip_nodes (
            origin TEXT NOT NULL,
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (origin, level, idx)
        );
        CREATE TABLE gossip_heads (
            origin TEXT NOT NULL,
            size INTEGER NOT NULL,
            root BLOB NOT NULL,
            note TEXT NOT NULL,
            status TEXT NOT NULL,
            first_seen REAL NOT NULL,
            PRIMARY KEY (origin, size, root)
        );
        CREATE TABLE gossip_sightings (
            origin TEXT NOT NULL,
            size INTEGER NOT NULL,
            root BLOB NOT NULL,
            source TEXT NOT NULL,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            times INTEGER NOT NULL,
            PRIMARY KEY (origin, size, root, source)
        );
        CREATE TABLE gossip_forks (
            id TEXT PRIMARY KEY,
            origin TEXT NOT NULL,
            kind TEXT NOT NULL,
            evidence TEXT NOT NULL,
            source TEXT NOT NULL,
            found_at REAL NOT NULL
        );
        CREATE INDEX gossip_forks_origin ON gossip_forks(origin, found_at)
        """,
    )


MIGRATION = migrations.Step(110, "gossip: other zoos' signed heads, sightings, mirrored leaves and fork evidence",
                            _m110)


@dataclass(frozen=True)
class StoredHead:
    origin: str
    size: int
    root: bytes
    note: str
    status: HeadStatus
    first_seen: float


@dataclass(frozen=True)
class StoredFork:
    id: str
    origin: str
    evidence: ForkEvidence
    source: str
    found_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "origin": self.origin, "kind": self.evidence.kind, "source": self.source,
                "found_at": self.found_at, "evidence": self.evidence.to_json()}


@dataclass(frozen=True)
class LogView:
    """One watched log: its mirror size, where it answers, how many heads and forks are on record."""

    origin: str
    key_id: str
    url: str | None
    size: int
    heads: int
    forks: int
    checked_at: float


class _MirrorNodes:
    """:class:`merkle.NodeStore` over ``gossip_nodes`` for one origin (level 0 = leaf hashes)."""

    def __init__(self, conn: Database, origin: str) -> None:
        self.conn, self.origin = conn, origin

    def node(self, level: int, index: int) -> bytes:
        row = self.conn.execute("SELECT hash FROM gossip_nodes WHERE origin = ? AND level = ? AND idx = ?",
                                (self.origin, level, index)).fetchone()
        if row is None:
            raise InvalidRequest(f"the mirror of {self.origin} has no node ({level}, {index})")
        return bytes(row[0])


_HEAD_COLUMNS = "origin, size, root, note, status, first_seen"


def _head(row: Sequence[Any]) -> StoredHead:
    return StoredHead(str(row[0]), int(row[1]), bytes(row[2]), str(row[3]), row[4], float(row[5]))


class GossipStore:
    """The ``gossip_*`` tables of one catalog (one per store: ``Certification.gossip``). Reads use the shared
    connection; each write is one catalog transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.conn = catalog.connection

    # -- the mirror ------------------------------------------------------------------------------
    def mirror_size(self, origin: str) -> int:
        row = self.conn.execute("SELECT size FROM gossip_logs WHERE origin = ?", (origin,)).fetchone()
        return int(row[0]) if row else 0

    def _nodes(self, origin: str) -> _MirrorNodes:
        return _MirrorNodes(self.conn, origin)

    def root_at(self, origin: str, size: int) -> bytes:
        """Root of the first ``size`` mirrored leaves."""
        self._check_size(origin, size)
        return merkle.root_hash(self._nodes(origin), size)

    def frontier(self, origin: str, size: int) -> list[bytes | None]:
        """The right edge of the first ``size`` mirrored leaves, to extend them without reading them all."""
        self._check_size(origin, size)
        return merkle.frontier_for(self._nodes(origin), size)

    def consistency_proof(self, origin: str, old: int, new: int) -> list[bytes]:
        """RFC 9162 proof between two prefixes of the mirror (empty from size 0)."""
        self._check_size(origin, new)
        return [] if old == 0 else merkle.consistency_proof(self._nodes(origin), old, new)

    def leaves(self, origin: str, start: int, count: int) -> list[bytes]:
        """Mirrored leaf hashes from ``start`` (what ``/zoo/gossip/leaves`` serves to other monitors)."""
        rows = self.conn.execute(
            "SELECT hash FROM gossip_nodes WHERE origin = ? AND level = 0 AND idx >= ? ORDER BY idx LIMIT ?",
            (origin, start, count)).fetchall()
        return [bytes(r[0]) for r in rows]

    def _check_size(self, origin: str, size: int) -> None:
        mirrored = self.mirror_size(origin)
        if not 0 <= size <= mirrored:
            raise InvalidRequest(f"size {size} is outside the {mirrored} mirrored entries of {origin}")

    # -- heads and forks -------------------------------------------------------------------------
    def head(self, origin: str, size: int, root: bytes) -> StoredHead | None:
        row = self.conn.execute(f"SELECT {_HEAD_COLUMNS} FROM gossip_heads WHERE origin = ? AND size = ? "
                                "AND root = ?", (origin, size, root)).fetchone()
        return _head(row) if row else None

    def heads(self, origin: str | None = None, status: HeadStatus | None = None,
              limit: int = 1000) -> list[StoredHead]:
        """Heads on record, largest first per origin (origins in name order)."""
        sql, args = f"SELECT {_HEAD_COLUMNS} FROM gossip_heads WHERE 1 = 1", list[Any]()
        if origin is not None:
            sql, args = sql + " AND origin = ?", [*args, origin]
        if status is not None:
            sql, args = sql + " AND status = ?", [*args, status]
        rows = self.conn.execute(sql + " ORDER BY origin, size DESC LIMIT ?", [*args, limit]).fetchall()
        return [_head(r) for r in rows]

    def consistent_head(self, origin: str, at_least: int) -> StoredHead | None:
        """The smallest consistent head of at least ``at_least`` entries."""
        row = self.conn.execute(f"SELECT {_HEAD_COLUMNS} FROM gossip_heads WHERE origin = ? AND status = ? "
                                "AND size >= ? ORDER BY size LIMIT 1", (origin, "consistent", at_least)).fetchone()
        return _head(row) if row else None

    def sightings(self, origin: str) -> list[tuple[int, str, float, int]]:
        """(size, source, last seen, times) of every head of ``origin``, latest first."""
        rows = self.conn.execute("SELECT size, source, last_seen, times FROM gossip_sightings WHERE origin = ? "
                                 "ORDER BY last_seen DESC, size DESC", (origin,)).fetchall()
        return [(int(r[0]), str(r[1]), float(r[2]), int(r[3])) for r in rows]

    def forks(self, origin: str | None = None, limit: int = 100) -> list[StoredFork]:
        sql, args = "SELECT id, origin, evidence, source, found_at FROM gossip_forks", list[Any]()
        if origin is not None:
            sql, args = sql + " WHERE origin = ?", [origin]
        rows = self.conn.execute(sql + " ORDER BY found_at, id LIMIT ?", [*args, limit]).fetchall()
        return [StoredFork(str(r[0]), str(r[1]), evidence_from_json(parse_json(r[2], "stored fork evidence")),
                           str(r[3]), float(r[4])) for r in rows]

    def logs(self) -> list[LogView]:
        rows = self.conn.execute(
            "SELECT l.origin, l.key_id, l.url, l.size, l.checked_at, "
            "(SELECT COUNT(*) FROM gossip_heads h WHERE h.origin = l.origin), "
            "(SELECT COUNT(*) FROM gossip_forks f WHERE f.origin = l.origin) "
            "FROM gossip_logs l ORDER BY l.origin").fetchall()
        return [LogView(str(r[0]), str(r[1]), r[2], int(r[3]), int(r[5]), int(r[6]), float(r[4])) for r in rows]

    def url(self, origin: str) -> str | None:
        row = self.conn.execute("SELECT url FROM gossip_logs WHERE origin = ?", (origin,)).fetchone()
        return str(row[0]) if row and row[0] else None

    # -- writing ---------------------------------------------------------------------------------
    def accept(self, head: SignedHead, source: str, leaves: Sequence[bytes] = (), start: int = 0) -> None:
        """Record a head consistent with the mirror, extending the mirror by ``leaves`` (which start at
        ``start`` and end at the head's size: the caller checked they hash to its root).

        Conflict if the mirror changed since the caller read it (another monitor process extended it):
        the caller decides again.
        """
        now = time.time()
        with self.catalog.transaction() as conn:
            self._ensure_log(conn, head, now)
            size = self.mirror_size(head.origin)
            if leaves:
                if size != start or start + len(leaves) != head.size:
                    raise Conflict(f"the mirror of {head.origin} changed while it was being extended")
                frontier = merkle.frontier_for(self._nodes(head.origin), start)
                rows: list[tuple[str, int, int, bytes]] = []
                for offset, leaf in enumerate(leaves):
                    rows.append((head.origin, 0, start + offset, leaf))
                    rows.extend((head.origin, lvl, idx, h)
                                for lvl, idx, h in merkle.append_to_frontier(frontier, start + offset, leaf))
                if merkle.root_from_frontier(frontier) != head.root:
                    raise Conflict(f"the leaves do not hash to the head of {head.origin} at size {head.size}")
                conn.executemany("INSERT INTO gossip_nodes (origin, level, idx, hash) VALUES (?, ?, ?, ?)", rows)
                conn.execute("UPDATE gossip_logs SET size = ? WHERE origin = ?", (head.size, head.origin))
            elif head.size > size:
                raise Conflict(f"the head of {head.origin} at size {head.size} is beyond the mirror ({size})")
            self._insert_head(conn, head, "consistent", source, now)

    def record_fork(self, evidence: ForkEvidence, source: str, head: SignedHead | None = None) -> bool:
        """Store fork evidence (checked by the caller) and the forked head if given; True if it was new."""
        now = time.time()
        with self.catalog.transaction() as conn:
            if head is not None:
                self._ensure_log(conn, head, now)
                self._insert_head(conn, head, "forked", source, now)
            new = conn.execute("SELECT 1 FROM gossip_forks WHERE id = ?", (evidence.id,)).fetchone() is None
            conn.execute("INSERT INTO gossip_forks (id, origin, kind, evidence, source, found_at) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                         (evidence.id, evidence.origin, evidence.kind, evidence.to_bytes().decode("utf-8"),
                          source, now))
        return new

    def sighted(self, head: SignedHead, source: str) -> None:
        """A head already on record was seen again (from ``source``)."""
        now = time.time()
        with self.catalog.transaction() as conn:
            self._sight(conn, head, source, now)
            conn.execute("UPDATE gossip_logs SET checked_at = ? WHERE origin = ?", (now, head.origin))

    def set_url(self, origin: str, url: str) -> None:
        """Remember where ``origin``'s log answers, so heads gossiped about it can be checked there."""
        with self.catalog.transaction() as conn:
            conn.execute("UPDATE gossip_logs SET url = ? WHERE origin = ?", (url, origin))

    def _ensure_log(self, conn: Database, head: SignedHead, now: float) -> None:
        conn.execute("INSERT INTO gossip_logs (origin, key_id, url, size, checked_at) VALUES (?, ?, NULL, 0, ?) "
                     "ON CONFLICT (origin) DO UPDATE SET checked_at = excluded.checked_at",
                     (head.origin, head.key.key_id, now))

    def _insert_head(self, conn: Database, head: SignedHead, status: HeadStatus, source: str,
                     now: float) -> None:
        conn.execute("INSERT INTO gossip_heads (origin, size, root, note, status, first_seen) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin, size, root) DO NOTHING",
                     (head.origin, head.size, head.root, head.note, status, now))
        self._sight(conn, head, source, now)

    def _sight(self, conn: Database, head: SignedHead, source: str, now: float) -> None:
        conn.execute("INSERT INTO gossip_sightings (origin, size, root, source, first_seen, last_seen, times) "
                     "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (origin, size, root, source) DO UPDATE SET "
                     "last_seen = excluded.last_seen, times = gossip_sightings.times + 1",
                     (head.origin, head.size, head.root, source, now, now))
