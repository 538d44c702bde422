"""The zoo's append-only transparency log: RFC 9162 Merkle tree over certification events in the catalog.

Why: a seal alone proves the zoo signed something; the log makes the zoo's whole history public and
tamper-evident, so a zoo cannot show different histories to different people (monitors compare the heads
they saw and prove a fork: :mod:`openzoo.certify.gossip`), and revocations cannot be quietly dropped.

Each entry is ``(index, kind, body, timestamp)``; its Merkle leaf is the RFC 9162 leaf hash of
:func:`entry_bytes` = canonical JSON ``{"body": <body>, "kind": <kind>, "timestamp": <ms>}``, so anyone
holding an entry can recompute its leaf. Tables (prefixed ``log_`` so the log can share the catalog's
database) refuse UPDATE and DELETE through triggers; complete subtree hashes are cached in
``log_nodes`` so proofs for 1M entries take O(log n) reads.

The tables are made by catalog migration 5, the same schema on SQLite and PostgreSQL: the triggers are
SQLite triggers there, plpgsql trigger functions here (which also refuse TRUNCATE). Several servers
may share one PostgreSQL catalog and append to one log: appends run in the catalog's writer
transaction, which serializes writers across servers, and the in-memory frontier is keyed by the
log's size *and* last leaf, so it is rebuilt whenever anyone else appended (or an append was rolled
back), never reused for a different tree of the same size.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo.certify import merkle
from openzoo.certify.checkpoint import (
    Checkpoint,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_note,
)
from openzoo.certify.keys import PublicKey, SigningKey
from openzoo.certify.note import NoteSigner
from openzoo.errors import Conflict, InvalidRequest, NotFound, StoreCorrupt, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode, canonical_json, parse_json
from openzoo.store import migrations
from openzoo.store.connect import open_database
from openzoo.store.db import Database

__all__ = [
    "KINDS",
    "LogEntry",
    "LogHead",
    "LogReceipt",
    "TransparencyLog",
    "VerifyReport",
    "entry_bytes",
    "verify_receipt",
]

KINDS = ("seal", "approval", "revocation", "policy", "key", "request")
DEFAULT_ORIGIN = "openzoo.local/log"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS log_entries (
    idx INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in KINDS)})),
    body TEXT NOT NULL,
    ts INTEGER NOT NULL,
    leaf BLOB NOT NULL CHECK (length(leaf) = 32)
);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_heads (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS log_entries_contiguous BEFORE INSERT ON log_entries
WHEN NEW.idx != (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries)
BEGIN SELECT RAISE(ABORT, 'log entries are appended in index order'); END;
"""
_APPEND_ONLY = "\n".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;"
    for table in ("log_entries", "log_nodes", "log_heads")
    for op in ("UPDATE", "DELETE")
)
_TABLES = ("log_entries", "log_nodes", "log_heads")
_PG_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the transparency log is append-only'; END $$""",
    """CREATE OR REPLACE FUNCTION log_entries_contiguous() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.idx <> (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries) THEN
        RAISE EXCEPTION 'log entries are appended in index order';
    END IF;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER log_entries_contiguous BEFORE INSERT ON log_entries FOR EACH ROW "
    "EXECUTE FUNCTION log_entries_contiguous()",
    *(f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} FOR EACH ROW "
      "EXECUTE FUNCTION log_append_only()" for table in _TABLES for op in ("UPDATE", "DELETE")),
    *(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
      "EXECUTE FUNCTION log_append_only()" for table in _TABLES),
)


def _statements(script: str) -> list[str]:
    """The statements of a script whose trigger bodies hold ``;`` (each statement starts a line)."""
    return [part.strip() for part in re.split(r";\s*\n(?=CREATE )", script) if part.strip()]


def _m005(db: Database) -> None:
    """The log's tables and triggers.

    Catalogs made before this migration already hold them (the log used to make them itself, with the
    same statements): ``IF NOT EXISTS`` leaves those as they are, so their schema does not change.
    """
    if db.dialect == "sqlite":
        for statement in _statements(_SCHEMA + _APPEND_ONLY):
            db.execute(statement)
        return
    tables = _SCHEMA[: _SCHEMA.index("CREATE TRIGGER")].replace(") WITHOUT ROWID;", ");")
    for statement in [*_statements(tables), *_PG_FUNCTIONS]:
        db.execute(statement)


MIGRATION = migrations.Step(5, "transparency log: entries, tree nodes, signed heads, append-only triggers", _m005)


def entry_bytes(kind: str, body: Any, timestamp: int) -> bytes:
    """The bytes a log leaf commits to: canonical JSON ``{"body", "kind", "timestamp"}``.

    Any holder of the entry can recompute the leaf from them.
    """
    return _entry_bytes_from_json(kind, canonical_json(body), timestamp)


def _entry_bytes_from_json(kind: str, body_json: bytes, timestamp: int) -> bytes:
    """:func:`entry_bytes` for a body already in canonical JSON (the append hot path).

    Splicing is exact: the keys are already in sorted order and every part is canonical.
    """
    return (
        b'{"body":'
        + body_json
        + b',"kind":'
        + canonical_json(kind)
        + b',"timestamp":'
        + str(int(timestamp)).encode("ascii")
        + b"}"
    )


@dataclass(frozen=True)
class LogEntry:
    """One stored entry; ``body`` is the parsed JSON value."""

    index: int
    kind: str
    body: Any
    timestamp: int
    leaf_hash: bytes


@dataclass(frozen=True)
class LogHead:
    """The current (unsigned) tree head."""

    size: int
    root_hash: bytes


@dataclass(frozen=True)
class LogReceipt:
    """Everything needed to check offline that an entry is in the log: the entry, its audit path and a
    signed checkpoint the path leads to. Stored beside a seal."""

    index: int
    kind: str
    body: Any
    timestamp: int
    size: int
    path: tuple[bytes, ...]
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (hashes in base64)."""
        return {
            "index": self.index,
            "kind": self.kind,
            "body": self.body,
            "timestamp": self.timestamp,
            "size": self.size,
            "path": [b64encode(p) for p in self.path],
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogReceipt:
        """Parse :meth:`to_json` output; InvalidRequest if fields are missing or mistyped."""
        try:
            return cls(
                index=int(data["index"]),
                kind=str(data["kind"]),
                body=data["body"],
                timestamp=int(data["timestamp"]),
                size=int(data["size"]),
                path=tuple(b64decode(str(p), "proof hash") for p in data["path"]),
                checkpoint=str(data["checkpoint"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed log receipt: {exc}") from exc


def verify_receipt(receipt: LogReceipt, trusted: Sequence[PublicKey], origin: str | None = None) -> Checkpoint:
    """Check a receipt offline: checkpoint signature, then the entry's inclusion under that checkpoint.

    Returns the verified checkpoint; raises VerificationFailed naming what failed.
    """
    checkpoint = verify_checkpoint(receipt.checkpoint, trusted, origin)
    if checkpoint.size != receipt.size:
        raise VerificationFailed("log receipt size does not match its checkpoint")
    leaf = merkle.leaf_hash(entry_bytes(receipt.kind, receipt.body, receipt.timestamp))
    if not merkle.verify_inclusion(receipt.index, receipt.size, leaf, receipt.path, checkpoint.root_hash):
        raise VerificationFailed(f"log entry {receipt.index} is not included under the signed tree head")
    return checkpoint


@dataclass
class VerifyReport:
    """Result of :meth:`TransparencyLog.verify_log`: ``problems`` is empty when all is well."""

    size: int
    root_hash: bytes
    heads_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


class _StoredNodes:
    """:class:`merkle.NodeStore` over the log tables: level 0 from ``log_entries``, others ``log_nodes``."""

    def __init__(self, conn: Database) -> None:
        self.conn = conn

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self.conn.execute("SELECT leaf FROM log_entries WHERE idx = ?", (index,)).fetchone()
        else:
            row = self.conn.execute("SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)).fetchone()
        if row is None:
            raise StoreCorrupt(f"transparency log is missing tree node ({level}, {index})")
        return bytes(row[0])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TransparencyLog:
    """The append-only log in the catalog database. Pass the catalog's database, or a path / URL to open.

    Appends run in a catalog transaction (a savepoint inside the caller's, if any); the in-memory
    frontier is rebuilt whenever the log's size or last leaf differs from the ones it was built for.
    """

    def __init__(
        self,
        db: Database | str | Path,
        *,
        origin: str = DEFAULT_ORIGIN,
        clock: Callable[[], int] = _now_ms,
        log_key: NoteSigner | None = None,
    ) -> None:
        if isinstance(db, str | Path):
            db = open_database(str(db))
        elif not isinstance(db, Database):
            raise TypeError(f"a transparency log lives in a catalog Database or at a path, not in {type(db).__name__}")
        migrations.apply(db, (MIGRATION,))  # the log may live in a database of its own
        self.conn = db
        self.origin = origin
        self.clock = clock
        self.log_key = log_key  # Ed25519 note key: its line comes first on every head signed (C2SP)
        self._nodes = _StoredNodes(db)
        # (size, last leaf) -> frontier; replaced as a whole, never changed in place, so threads
        # reading it need no lock.
        self._cached: tuple[tuple[int, bytes], list[bytes | None]] = ((-1, b""), [])

    # -- writing ---------------------------------------------------------------------------------
    def size(self) -> int:
        """Number of entries."""
        row = self.conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries").fetchone()
        return int(row[0]) if row else 0

    def _tip(self) -> tuple[int, bytes]:
        """The log's size and its last leaf: together they name one tree (the log is append-only)."""
        row = self.conn.execute("SELECT idx, leaf FROM log_entries ORDER BY idx DESC LIMIT 1").fetchone()
        return (0, b"") if row is None else (int(row[0]) + 1, bytes(row[1]))

    def _frontier(self) -> tuple[int, list[bytes | None]]:
        """The current size and a private copy of its frontier, from the cache when it still fits."""
        tip = self._tip()
        cached_tip, frontier = self._cached
        if cached_tip != tip:
            frontier = merkle.frontier_for(self._nodes, tip[0])
            self._cached = (tip, frontier)
        return tip[0], list(frontier)

    def append(self, kind: str, body: Any, *, expected_index: int | None = None) -> int:
        """Append one entry and return its index.

        ``expected_index`` lets a caller that embedded the index in the body (a seal carries its own log
        index) make the append fail with Conflict if someone else appended first.
        """
        return self.append_many([(kind, body)], expected_index=expected_index)[0]

    def append_many(self, items: Iterable[tuple[str, Any]], *, expected_index: int | None = None) -> list[int]:
        """Append several entries in one transaction (the fast path: ≥ 10k entries/s) and return indexes."""
        prepared: list[tuple[str, bytes]] = []
        for kind, body in items:
            if kind not in KINDS:
                raise InvalidRequest(f"unknown log entry kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
            prepared.append((kind, canonical_json(body)))
        if not prepared:
            return []
        with self.conn.transaction():
            start, frontier = self._frontier()
            if expected_index is not None and expected_index != start:
                raise Conflict(f"log index {expected_index} was taken; the log now has {start} entries")
            rows, nodes = [], []
            for offset, (kind, body_json) in enumerate(prepared):
                ts = self.clock()
                leaf = merkle.leaf_hash(_entry_bytes_from_json(kind, body_json, ts))
                index = start + offset
                rows.append((index, kind, body_json.decode("utf-8"), ts, leaf))
                nodes.extend(merkle.append_to_frontier(frontier, index, leaf))
            self.conn.executemany("INSERT INTO log_entries (idx, kind, body, ts, leaf) VALUES (?,?,?,?,?)", rows)
            self.conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?,?,?)", nodes)
            self._cached = ((start + len(prepared), rows[-1][4]), frontier)
        return list(range(start, start + len(prepared)))

    # -- reading ---------------------------------------------------------------------------------
    def entry(self, index: int) -> LogEntry:
        """One entry; NotFound if the index is beyond the log."""
        row = self.conn.execute("SELECT idx, kind, body, ts, leaf FROM log_entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFound(f"log entry {index} does not exist")
        return LogEntry(row[0], row[1], parse_json(row[2], "log entry body"), row[3], bytes(row[4]))

    def entries(self, start: int = 0, limit: int = 100, kind: str | None = None) -> list[LogEntry]:
        """Entries from ``start`` in index order, optionally of one kind."""
        sql = "SELECT idx, kind, body, ts, leaf FROM log_entries WHERE idx >= ?"
        args: list[Any] = [start]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        rows = self.conn.execute(sql + " ORDER BY idx LIMIT ?", [*args, limit]).fetchall()
        return [LogEntry(r[0], r[1], parse_json(r[2], "log entry body"), r[3], bytes(r[4])) for r in rows]

    def leaves(self, start: int, count: int) -> list[bytes]:
        """Up to ``count`` leaf hashes from index ``start``: all a monitor needs to keep its own copy."""
        rows = self.conn.execute("SELECT leaf FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?",
                                 (start, count)).fetchall()
        return [bytes(r[0]) for r in rows]

    def hashes(self, level: int, start: int, count: int) -> list[bytes]:
        """Up to ``count`` hashes of complete subtrees of ``2**level`` leaves from index ``start``, in order
        (level 0: leaf hashes). What the C2SP tiles of :mod:`.tiles` are cut from."""
        if level == 0:
            return self.leaves(start, count)
        rows = self.conn.execute("SELECT hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                                 (level, start, start + count)).fetchall()
        return [bytes(r[0]) for r in rows]

    def entry_data(self, start: int, count: int) -> list[bytes]:
        """The bytes of up to ``count`` entries from ``start`` (:func:`entry_bytes`: each hashes to its leaf)."""
        rows = self.conn.execute("SELECT kind, body, ts FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT ?",
                                 (start, count)).fetchall()
        return [_entry_bytes_from_json(str(r[0]), str(r[1]).encode("utf-8"), int(r[2])) for r in rows]

    def head(self) -> LogHead:
        """Current size and root hash (unsigned; see :meth:`sign_head`)."""
        size, frontier = self._frontier()
        return LogHead(size, merkle.root_from_frontier(frontier))

    def root(self, size: int) -> bytes:
        """Root hash of the tree as it was at ``size`` entries."""
        self._check_size(size)
        return merkle.root_hash(self._nodes, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 audit path of entry ``index`` in the tree of ``size`` entries (default: current)."""
        size = self.size() if size is None else size
        self._check_size(size)
        return merkle.inclusion_proof(self._nodes, index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from ``old_size`` to ``new_size`` (default: current)."""
        new_size = self.size() if new_size is None else new_size
        self._check_size(new_size)
        return merkle.consistency_proof(self._nodes, old_size, new_size)

    def _check_size(self, size: int) -> None:
        current = self.size()
        if not 0 <= size <= current:
            raise InvalidRequest(f"tree size {size} is outside 0..{current}")

    # -- signed heads ----------------------------------------------------------------------------
    def sign_head(self, key: SigningKey, extensions: Sequence[str] = ()) -> str:
        """Sign the current head as a checkpoint, store it and return the note text.

        One checkpoint is kept per size: signing again at the same size returns the stored one, so the
        log never holds two different signed heads for one size.
        """
        head = self.head()
        note = sign_checkpoint(Checkpoint(self.origin, head.size, head.root_hash, tuple(extensions)), key,
                               self.log_key)
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO log_heads (size, note, ts) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING",
                (head.size, note, self.clock()),
            )
            row = self.conn.execute("SELECT note FROM log_heads WHERE size = ?", (head.size,)).fetchone()
        if row is None:  # pragma: no cover - the row was just written in this transaction
            raise StoreCorrupt(f"the signed tree head at size {head.size} was not stored")
        return str(row[0])

    def checkpoint(self, size: int | None = None) -> str:
        """The stored signed checkpoint at ``size``, or the latest one; NotFound if none."""
        if size is None:
            row = self.conn.execute("SELECT note FROM log_heads ORDER BY size DESC LIMIT 1").fetchone()
        else:
            row = self.conn.execute("SELECT note FROM log_heads WHERE size = ?", (size,)).fetchone()
        if row is None:
            raise NotFound("no signed tree head" + ("" if size is None else f" at size {size}"))
        return str(row[0])

    def receipt(self, index: int, checkpoint: str | None = None) -> LogReceipt:
        """An offline inclusion receipt for entry ``index`` under ``checkpoint`` (default: latest head).

        Conflict if the checkpoint does not cover the entry yet (sign a new head first).
        """
        note = checkpoint if checkpoint is not None else self.checkpoint()
        size = Checkpoint.parse_body(parse_note(note).text).size
        if index >= size:
            raise Conflict(f"the signed tree head (size {size}) does not cover entry {index} yet")
        entry = self.entry(index)
        return LogReceipt(
            index,
            entry.kind,
            entry.body,
            entry.timestamp,
            size,
            tuple(self.inclusion_proof(index, size)),
            note,
        )

    # -- audit -----------------------------------------------------------------------------------
    def verify_log(self, trusted: Sequence[PublicKey], batch: int = 50_000) -> VerifyReport:
        """Recompute every leaf from its stored body, the root, and check every stored signed head.

        Catches a changed body, kind or timestamp (leaf mismatch), a non-canonical body, a changed leaf or
        node column (root mismatch against the stored tree or a signed head), and a forged or re-signed
        head (signature or root mismatch). Problems are listed, not raised, so one run names all of them.
        """
        heads = self.conn.execute("SELECT size, note FROM log_heads ORDER BY size").fetchall()
        pending = {int(size): str(note) for size, note in heads}
        report = VerifyReport(size=0, root_hash=merkle.EMPTY_ROOT)
        frontier: list[bytes | None] = [None]
        count = 0

        def check_head(size: int) -> None:
            note = pending.pop(size)
            report.heads_checked += 1
            try:
                text, _ = verify_note(note, trusted)
                cp = Checkpoint.parse_body(text)
            except (VerificationFailed, InvalidRequest) as exc:
                report.problems.append(f"signed tree head at size {size}: {exc}")
                return
            if cp.size != size or cp.origin != self.origin:
                report.problems.append(f"signed tree head at size {size} names size {cp.size}/{cp.origin}")
            elif cp.root_hash != merkle.root_from_frontier(frontier):
                report.problems.append(f"signed tree head at size {size} does not match the recomputed root")

        if 0 in pending:
            check_head(0)
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT idx, kind, body, ts, leaf FROM log_entries WHERE idx > ? ORDER BY idx LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                break
            for idx, kind, body, ts, leaf in rows:
                if idx != count:
                    report.problems.append(f"entry {count} is missing")
                    count = idx
                computed = self._recompute_leaf(idx, kind, body, ts, report)
                if computed != bytes(leaf):
                    report.problems.append(f"entry {idx}: stored leaf hash does not match its body")
                merkle.append_to_frontier(frontier, count, computed)
                count += 1
                if count in pending:
                    check_head(count)
            last = rows[-1][0]
        report.size = count
        report.root_hash = merkle.root_from_frontier(frontier)
        for size in sorted(pending):
            report.problems.append(f"signed tree head at size {size} is beyond the log ({count} entries)")
        if count and self._stored_root(count) != report.root_hash:
            report.problems.append("stored tree nodes do not match the entries")
        if not heads:
            report.problems.append("the log has no signed tree head")
        return report

    def _recompute_leaf(self, idx: int, kind: str, body: str, ts: int, report: VerifyReport) -> bytes:
        try:
            value = parse_json(body, f"entry {idx} body")
            if canonical_json(value).decode("utf-8") != body:
                report.problems.append(f"entry {idx}: body is not canonical JSON")
        except InvalidRequest as exc:
            report.problems.append(str(exc))
            return merkle.leaf_hash(body.encode("utf-8"))
        return merkle.leaf_hash(entry_bytes(kind, value, ts))

    def _stored_root(self, size: int) -> bytes | None:
        try:
            return merkle.root_hash(self._nodes, size)
        except StoreCorrupt:
            return None
