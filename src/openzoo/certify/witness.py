"""This zoo as a C2SP tlog-witness of other logs: ``POST /zoo/witness/add-checkpoint``.

Why every zoo witnesses: a log can show different histories to different readers; a witness remembers
the latest checkpoint it saw of each log it watches and cosigns a new one only when the log proves (with
an RFC 9162 consistency proof) that it extends that one. Readers that demand cosignatures from several
independent witnesses (the certification policy's ``witnesses``) are then safe from split views.

The state machine, per log (C2SP tlog-witness), one catalog transaction per request so that two requests
can never roll the state back:

* origin unknown (not added with ``openzoo witness add``) -> 404;
* no valid signature by the log's key, or a line naming that key whose signature fails -> 403;
* ``old`` larger than the checkpoint's size -> 400;
* ``old`` differs from the size this witness last cosigned -> 409, body that size (``text/x.tlog.size``);
* size 0 without the empty root, a proof from size 0, a proof that does not verify, or the same size with
  another root -> 422; when the proof shows which other tree the log signed (for a power-of-two old size,
  whose root the proof leaves out, the log's own tile at the URL given to ``witness add`` does), the two
  signed heads become
  fork evidence (:mod:`.gossip`, the form ``openzoo monitor`` keeps and ``monitor verify-evidence``
  checks, with the log's vkey);
* otherwise the checkpoint is stored and this zoo's ``cosignature/v1`` line is the answer.

Bounds: the request body is at most :data:`MAX_BODY_BYTES` (413), its note at most the gossip's
:data:`~openzoo.certify.gossip.MAX_NOTE_BYTES` (413), at most 63 proof lines (400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from openzoo.certify import merkle
from openzoo.certify.checkpoint import Checkpoint, parse_note, verify_note
from openzoo.certify.cosignature import add_cosignatures, cosign
from openzoo.certify.gossip import MAX_NOTE_BYTES, ForkEvidence, SignedHead, verify_evidence
from openzoo.certify.gossip_store import GossipStore
from openzoo.certify.note import ED25519, NoteSigner, NoteVerifier, parse_vkey
from openzoo.certify.tiles import TILE_WIDTH, TilePath
from openzoo.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    OpenzooError,
    PayloadTooLarge,
    StaleCheckpoint,
    VerificationFailed,
)
from openzoo.store import migrations
from openzoo.store.catalog import Catalog
from openzoo.store.db import Database

__all__ = ["MAX_BODY_BYTES", "Witness", "WitnessedLog", "origin_hash", "parse_request"]

MAX_BODY_BYTES = 64 * 1024
MAX_PROOF_LINES = 63
_OLD = re.compile(r"^old (0|[1-9][0-9]{0,19})$")
SIZE_MEDIA_TYPE = "text/x.tlog.size"
TileFetcher = Callable[[str, TilePath], bytes]  # (the log's URL, a tile) -> its bytes


def _m163(conn: Database) -> None:
    migrations.run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS witness_logs (
            origin TEXT PRIMARY KEY,
            vkey TEXT NOT NULL,
            url TEXT,
            size INTEGER NOT NULL,
            root BLOB,
            note TEXT,
            added_at REAL NOT NULL,
            updated_at REAL
        );
        CREATE TABLE IF NOT EXISTS log_witnesses (
            name TEXT PRIMARY KEY,
            vkey TEXT NOT NULL,
            url TEXT NOT NULL,
            size INTEGER NOT NULL,
            last_error TEXT,
            added_at REAL NOT NULL,
            asked_at REAL
        );
        CREATE TABLE IF NOT EXISTS log_cosignatures (
            size INTEGER NOT NULL,
            witness TEXT NOT NULL,
            line TEXT NOT NULL,
            ts REAL NOT NULL,
            PRIMARY KEY (size, witness)
        )
        """,
    )


MIGRATION = migrations.Step(163, "C2SP witnessing: logs this zoo witnesses, its own witnesses and their cosignatures",
                            _m163)


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request body."""

    old: int
    proof: tuple[bytes, ...]
    note: str
    checkpoint: Checkpoint


@dataclass(frozen=True)
class WitnessedLog:
    """A log this zoo witnesses: its key, where it lives, and the latest checkpoint cosigned here."""

    origin: str
    vkey: str
    url: str | None
    size: int
    note: str | None
    updated_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "vkey": self.vkey, "url": self.url, "size": self.size,
                "checkpoint": self.note, "updated_at": self.updated_at}


def origin_hash(origin: str) -> str:
    """Lowercase hex SHA-256 of the origin: how the monitoring path names a log."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def parse_request(body: bytes) -> AddCheckpoint:
    """Parse ``old N``, proof lines, a blank line and the signed checkpoint; 400/413 with the reason."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"an add-checkpoint request is at most {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("an add-checkpoint request is UTF-8 text") from exc
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines or not _OLD.fullmatch(lines[0]):
        raise InvalidRequest("an add-checkpoint request starts with 'old <size>', proof lines and a blank line")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise InvalidRequest(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            raw = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("a consistency proof line is one base64 hash") from exc
        if len(raw) != merkle.HASH_SIZE:
            raise InvalidRequest("a consistency proof line is one 32-byte hash")
        proof.append(raw)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise PayloadTooLarge(f"the checkpoint is larger than {MAX_NOTE_BYTES} bytes")
    checkpoint = Checkpoint.parse_body(parse_note(note).text)
    old = int(lines[0][4:])
    if old > checkpoint.size:
        raise InvalidRequest(f"old size {old} is larger than the checkpoint's {checkpoint.size}")
    return AddCheckpoint(old, tuple(proof), note, checkpoint)


def implied_old_root(old: int, new: int, proof: Sequence[bytes], new_root: bytes) -> bytes | None:
    """The root of the first ``old`` entries that ``proof`` shows inside the tree ``new_root``, if the proof
    names it (not for a power-of-two ``old``, whose root the proof leaves out) and leads to ``new_root``."""
    if old & (old - 1) == 0:
        return None
    roots = merkle.consistency_roots(old, new, proof)
    return roots[0] if roots is not None and roots[1] == new_root else None


class Witness:
    """The witness of one zoo: its key, the logs it watches (``witness_logs``), fork evidence in gossip."""

    def __init__(self, catalog: Catalog, signer: NoteSigner, gossip: GossipStore,
                 clock: Callable[[], float] = time.time, tiles: TileFetcher | None = None) -> None:
        self.catalog = catalog
        self.conn = catalog.connection
        self.signer = signer
        self.gossip = gossip
        self.clock = clock
        self.tiles = tiles or fetch_tile

    # -- the logs watched ------------------------------------------------------------------------
    def add(self, origin: str, vkey: str, url: str | None = None) -> WitnessedLog:
        """Watch the log ``origin`` whose checkpoints ``vkey`` signs; Conflict if it is watched with another key."""
        if not origin or not origin.isprintable() or len(origin) > 256:
            raise InvalidRequest(f"{origin[:64]!r} is not a log origin (one line, e.g. example.com/log)")
        verifier = parse_vkey(vkey, ED25519)
        if url is not None and not re.match(r"^https?://[^\s]+$", url):
            raise InvalidRequest(f"{url!r} is not an http(s) URL")
        with self.catalog.transaction() as conn:
            row = conn.execute("SELECT vkey FROM witness_logs WHERE origin = ?", (origin,)).fetchone()
            if row is not None and row[0] != verifier.vkey:
                raise Conflict(f"the log {origin} is already witnessed with another key",
                               hint=f"run 'openzoo witness rm {origin}' first")
            if row is None:
                conn.execute("INSERT INTO witness_logs (origin, vkey, url, size, added_at) VALUES (?, ?, ?, 0, ?)",
                             (origin, verifier.vkey, url, self.clock()))
            elif url is not None:
                conn.execute("UPDATE witness_logs SET url = ? WHERE origin = ?", (url, origin))
        return self.log(origin)

    def remove(self, origin: str) -> None:
        with self.catalog.transaction() as conn:
            if conn.execute("DELETE FROM witness_logs WHERE origin = ?", (origin,)).rowcount == 0:
                raise NotFound(f"this zoo does not witness the log {origin!r}", hint="see 'openzoo witness list'")

    def logs(self) -> list[WitnessedLog]:
        rows = self.conn.execute("SELECT origin, vkey, url, size, note, updated_at FROM witness_logs "
                                 "ORDER BY origin").fetchall()
        return [WitnessedLog(str(r[0]), str(r[1]), r[2], int(r[3]), r[4], r[5]) for r in rows]

    def log(self, origin: str) -> WitnessedLog:
        found = next((w for w in self.logs() if w.origin == origin), None)
        if found is None:
            raise NotFound(f"this zoo does not witness the log {origin!r}",
                           hint="the log's operator runs 'openzoo witness add ORIGIN VKEY URL' on this zoo")
        return found

    def checkpoint(self, hashed_origin: str) -> str:
        """The latest checkpoint cosigned for the log whose origin hashes to ``hashed_origin`` (monitoring)."""
        for found in self.logs():
            if origin_hash(found.origin) == hashed_origin and found.note:
                return found.note
        raise NotFound("this witness has not cosigned a checkpoint of that log")

    # -- add-checkpoint --------------------------------------------------------------------------
    def add_checkpoint(self, body: bytes, source: str = "witness") -> str:
        """Check a request (see the module docstring) and return this witness's cosignature line(s)."""
        request = parse_request(body)
        cp = request.checkpoint
        refusal: tuple[VerificationFailed, ForkEvidence | None] | None = None
        with self.catalog.transaction() as conn:
            row = conn.execute("SELECT vkey, size, root, note, url FROM witness_logs WHERE origin = ?",
                               (cp.origin,)).fetchone()
            if row is None:
                raise NotFound(f"this witness does not know the log {cp.origin!r}",
                               hint="its operator runs 'openzoo witness add ORIGIN VKEY URL'")
            key = parse_vkey(str(row[0]), ED25519)
            try:
                verify_note(request.note, [key], strict=True)
            except VerificationFailed as exc:
                raise Forbidden(f"the checkpoint of {cp.origin} is not signed by its key: {exc.message}") from exc
            known, root, note = int(row[1]), bytes(row[2]) if row[2] is not None else None, row[3]
            url = row[4]
            if request.old != known:
                raise StaleCheckpoint(f"this witness last cosigned {cp.origin} at size {known}, not {request.old}",
                                      known)
            refusal = _inconsistency(request, known, root, note)
            if refusal is None:
                line = cosign(parse_note(request.note).text, self.signer, int(self.clock()))
                conn.execute("UPDATE witness_logs SET size = ?, root = ?, note = ?, updated_at = ? WHERE origin = ?",
                             (cp.size, cp.root_hash, add_cosignatures(request.note, [line]), self.clock(),
                              cp.origin))
        if refusal is None:
            return line.line()
        error, evidence = refusal
        if evidence is None and url and note and 0 < known < cp.size and known & (known - 1) == 0:
            evidence = self._evidence_from_tiles(str(url), known, str(note), request)
        if evidence is not None and self._keep(evidence, key, request, source):
            error = VerificationFailed(f"{error.message} (fork evidence {evidence.id[:16]} kept)")
        raise error

    def _evidence_from_tiles(self, url: str, old: int, note: str, request: AddCheckpoint) -> ForkEvidence | None:
        """For a power-of-two old size the proof leaves the log's old root out: read it from the log's own tiles
        (the complete subtree of its first ``old`` entries). Tiles that lie fail :func:`verify_evidence`."""
        level = old.bit_length() - 1
        tile = TilePath(level // 8, 0, 1 << (level % 8))
        try:
            data = self.tiles(url, tile)
        except (httpx.HTTPError, OpenzooError):
            return None
        if len(data) != tile.width * merkle.HASH_SIZE:
            return None
        hashes = [data[i:i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]
        while len(hashes) > 1:
            hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        if hashes[0] == Checkpoint.parse_body(parse_note(note).text).root_hash:
            return None  # the log's tiles agree with what was cosigned: only the proof was bad
        return ForkEvidence(request.checkpoint.origin, note, request.note, hashes[0], request.proof)

    def _keep(self, evidence: ForkEvidence, key: NoteVerifier, request: AddCheckpoint, source: str) -> bool:
        """Keep fork evidence (checked as a third party would) beside the refused head, in the gossip tables."""
        try:
            verify_evidence(evidence, key)
        except (InvalidRequest, VerificationFailed):
            return False
        self.gossip.record_fork(evidence, source, SignedHead(request.note, request.checkpoint, key))
        return True


def _inconsistency(request: AddCheckpoint, known: int, root: bytes | None,
                   note: str | None) -> tuple[VerificationFailed, ForkEvidence | None] | None:
    """Why the checkpoint cannot be cosigned after the one cosigned at ``known`` (and the fork evidence, when the
    request proves one); None when it extends it."""
    cp = request.checkpoint
    if cp.size == 0 and cp.root_hash != merkle.EMPTY_ROOT:
        return VerificationFailed("a checkpoint of size 0 has the empty tree's root"), None
    if known == 0:
        return (VerificationFailed("no consistency proof goes with old size 0"), None) if request.proof else None
    if root is None or note is None:  # pragma: no cover - a size > 0 is always stored with its note
        return VerificationFailed("this witness lost the checkpoint it cosigned"), None
    if known == cp.size:
        if request.proof:
            return VerificationFailed("no consistency proof goes with an old size equal to the checkpoint's"), None
        if cp.root_hash == root:
            return None
        first, second = sorted((note, request.note), key=_root_of)
        return (VerificationFailed(f"{cp.origin} signed another tree of {known} entries than the one cosigned "
                                   "here: a fork"), ForkEvidence(cp.origin, first, second))
    if merkle.verify_consistency(known, cp.size, root, cp.root_hash, request.proof):
        return None
    prefix = implied_old_root(known, cp.size, request.proof, cp.root_hash)
    if prefix is not None and prefix != root:
        return (VerificationFailed(f"{cp.origin} signed a tree of {cp.size} entries that does not extend the "
                                   f"{known} cosigned here: a fork"),
                ForkEvidence(cp.origin, note, request.note, prefix, request.proof))
    return VerificationFailed(f"the consistency proof from {known} to {cp.size} entries does not verify"), None


def fetch_tile(url: str, tile: TilePath, timeout: float = 5.0) -> bytes:
    """A tile of the log at ``url`` (its zoo's base URL, or a tlog-tiles prefix ending in ``/zoo/log``)."""
    base = url.rstrip("/")
    prefix = base if base.endswith("/zoo/log") else base + "/zoo/log"
    resp = httpx.get(f"{prefix}/{tile.path()}", timeout=timeout)
    resp.raise_for_status()
    return resp.content[: TILE_WIDTH * merkle.HASH_SIZE]


def _root_of(note: str) -> bytes:
    return Checkpoint.parse_body(parse_note(note).text).root_hash
