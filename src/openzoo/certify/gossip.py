"""Gossip between zoos: other zoos' signed tree heads, and fork evidence anyone can check offline.

Why: a transparency log protects its readers only if someone notices when it shows two histories (a
*fork*: a split view, one history to some readers and another to others, or a history rewritten after
the fact, e.g. a restored backup with different entries appended). Zoos watch each other's logs and
exchange the heads they saw (gossip), so a zoo that shows A one history and B another is caught as soon
as A compares what B saw. This module is the pure part: which pinned key speaks for a log, the fork
evidence format, how to build it and how to check it. No storage, no network
(:mod:`.gossip_store` keeps what a zoo saw, :mod:`.monitor` fetches).

A log is named by its *origin*, the first line of its checkpoints. An openzoo zoo's origin is
``openzoo/<first 16 hex digits of its key id>`` (:func:`origin_for`), so the origin names the one key
allowed to sign its heads: a head whose origin points at no pinned key is refused (:class:`UnknownLog`),
and a peer zoo cannot pass off heads it signed itself as another zoo's.

Fork evidence (``openzoo.fork-evidence/v1``, JSON) holds two checkpoints signed by the same key for the
same origin that cannot both be true of one append-only log, plus what proves it:

* ``same-size``: two heads of equal size with different roots. Self-evident.
* ``prefix-mismatch``: a head of size m with root A, a head of size n > m with root R, the root B of
  the first m entries of the larger tree and an RFC 9162 consistency proof from (m, B) to (n, R). The
  proof shows that B is the root of the larger tree's first m entries; B != A shows the smaller signed
  tree is not a prefix of the larger one. (For m = 0, B must be the empty tree's root and the proof
  empty.) This is what Go's checksum database client prints as proof of misbehaviour.

A third party needs only the log's public key: both signatures, the proof and the inequality are
checked by :func:`verify_evidence` (``openzoo monitor verify-evidence FILE --key zoo-c.pub``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openzoo.certify import merkle
from openzoo.certify.checkpoint import Checkpoint, LogKey, parse_note, verify_checkpoint
from openzoo.certify.keys import PublicKey
from openzoo.errors import InvalidRequest, UnknownLog, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode, canonical_json, parse_json, sha256_hex

__all__ = [
    "EVIDENCE_TYPE",
    "MAX_EVIDENCE_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_PROOF_HASHES",
    "Fork",
    "ForkEvidence",
    "SignedHead",
    "UnknownLog",
    "evidence_from_json",
    "origin_for",
    "pinned_key",
    "prefix_evidence",
    "same_size_evidence",
    "verify_evidence",
    "verify_head",
]

EVIDENCE_TYPE = "openzoo.fork-evidence/v1"
MAX_NOTE_BYTES = 16 * 1024  # a checkpoint with a dozen cosignatures is under 2 KiB
MAX_PROOF_HASHES = 130  # RFC 9162 consistency proofs have at most 2*log2(n) + 1 hashes; n < 2**64
MAX_EVIDENCE_BYTES = 64 * 1024
_ORIGIN_PREFIX = "openzoo/"


def origin_for(key: PublicKey) -> str:
    """The origin of the log a zoo signs with ``key``: ``openzoo/<key id[:16]>``."""
    return _ORIGIN_PREFIX + key.key_id[:16]


def pinned_key(origin: str, keys: Sequence[PublicKey]) -> PublicKey:
    """The pinned key that speaks for ``origin``; :class:`UnknownLog` if none does."""
    for key in keys:
        if origin_for(key) == origin:
            return key
    raise UnknownLog(f"no pinned key for the log {origin!r}")


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint whose signature was checked against the pinned key of its origin."""

    note: str
    checkpoint: Checkpoint
    key: LogKey  # a pinned zoo key, or the note key a witness was given for the log

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root_hash


def _bounded_note(note: object, what: str) -> str:
    if not isinstance(note, str):
        raise InvalidRequest(f"{what} is not a signed note (text)")
    if len(note.encode("utf-8", "replace")) > MAX_NOTE_BYTES:
        raise InvalidRequest(f"{what} is larger than {MAX_NOTE_BYTES} bytes")
    return note


def verify_head(note: object, keys: Sequence[PublicKey]) -> SignedHead:
    """Parse a checkpoint, find the pinned key of its origin and check the signature.

    InvalidRequest when it is not a checkpoint (or too large), :class:`UnknownLog` when its origin has no
    pinned key, VerificationFailed when that key did not sign it.
    """
    text = _bounded_note(note, "tree head")
    origin = Checkpoint.parse_body(parse_note(text).text).origin
    key = pinned_key(origin, keys)
    try:
        checkpoint = verify_checkpoint(text, [key], origin)
    except VerificationFailed as exc:
        raise VerificationFailed(f"the head of {origin} is not signed by its pinned key {key.name!r}") from exc
    if checkpoint.size == 0 and checkpoint.root_hash != merkle.EMPTY_ROOT:
        raise VerificationFailed(f"the head of {origin} has size 0 but not the empty tree's root")
    return SignedHead(text, checkpoint, key)


@dataclass(frozen=True)
class ForkEvidence:
    """Two heads of one log that cannot both be true, and the proof of it (see the module docstring).

    ``smaller`` and ``larger`` are the signed notes (equal sizes for ``same-size``, ordered by root);
    ``prefix_root`` and ``proof`` are set for ``prefix-mismatch`` only.
    """

    origin: str
    smaller: str
    larger: str
    prefix_root: bytes | None = None
    proof: tuple[bytes, ...] = ()

    @property
    def kind(self) -> Literal["same-size", "prefix-mismatch"]:
        return "prefix-mismatch" if self.prefix_root is not None else "same-size"

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form (hashes in standard base64)."""
        data: dict[str, Any] = {"type": EVIDENCE_TYPE, "kind": self.kind, "origin": self.origin,
                                "heads": [self.smaller, self.larger]}
        if self.prefix_root is not None:
            data["prefix_root"] = b64encode(self.prefix_root)
            data["proof"] = [b64encode(p) for p in self.proof]
        return data

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def id(self) -> str:
        """Hex SHA-256 of the canonical JSON: the same evidence has the same id wherever it was found."""
        return sha256_hex(self.to_bytes())


def evidence_from_json(data: object) -> ForkEvidence:
    """Parse evidence (a dict, JSON text or bytes) with bounded sizes; InvalidRequest if malformed.

    Parsing checks only the shape; :func:`verify_evidence` decides whether it proves a fork.
    """
    if isinstance(data, bytes | str):
        if len(data) > MAX_EVIDENCE_BYTES:
            raise InvalidRequest(f"fork evidence is larger than {MAX_EVIDENCE_BYTES} bytes")
        data = parse_json(data, "fork evidence")
    if not isinstance(data, Mapping):
        raise InvalidRequest("fork evidence must be a JSON object")
    if data.get("type") != EVIDENCE_TYPE:
        raise InvalidRequest(f"fork evidence must have type {EVIDENCE_TYPE!r}")
    kind, origin, heads = data.get("kind"), data.get("origin"), data.get("heads")
    if kind not in ("same-size", "prefix-mismatch"):
        raise InvalidRequest("fork evidence kind must be 'same-size' or 'prefix-mismatch'")
    if not isinstance(origin, str) or not origin or "\n" in origin:
        raise InvalidRequest("fork evidence needs the log's origin")
    if not isinstance(heads, list) or len(heads) != 2:
        raise InvalidRequest("fork evidence needs exactly two signed heads")
    smaller, larger = (_bounded_note(h, "a head in the fork evidence") for h in heads)
    if kind == "same-size":
        if "prefix_root" in data or "proof" in data:
            raise InvalidRequest("same-size fork evidence has no prefix root or proof")
        return ForkEvidence(origin, smaller, larger)
    prefix_root, proof = data.get("prefix_root"), data.get("proof")
    if not isinstance(prefix_root, str) or not isinstance(proof, list):
        raise InvalidRequest("prefix-mismatch fork evidence needs 'prefix_root' and a 'proof' list")
    if len(proof) > MAX_PROOF_HASHES:
        raise InvalidRequest(f"the consistency proof has more than {MAX_PROOF_HASHES} hashes")
    return ForkEvidence(origin, smaller, larger, _hash(prefix_root, "prefix root"),
                        tuple(_hash(p, "proof hash") for p in proof))


def _hash(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a base64 string")
    raw = b64decode(value, what)
    if len(raw) != merkle.HASH_SIZE:
        raise InvalidRequest(f"{what} must be {merkle.HASH_SIZE} bytes")
    return raw


@dataclass(frozen=True)
class Fork:
    """What verified evidence establishes: the log ``origin`` signed two incompatible trees."""

    origin: str
    kind: Literal["same-size", "prefix-mismatch"]
    smaller_size: int
    smaller_root: bytes
    larger_size: int
    larger_root: bytes
    prefix_root: bytes | None

    def explain(self) -> str:
        """One sentence a person can check against the evidence."""
        def short(h: bytes) -> str:
            return b64encode(h)[:12] + "…"

        if self.kind == "same-size":
            return (f"the log {self.origin} signed two different trees of {self.smaller_size} entries "
                    f"(roots {short(self.smaller_root)} and {short(self.larger_root)})")
        assert self.prefix_root is not None
        return (f"the log {self.origin} signed a tree of {self.smaller_size} entries with root "
                f"{short(self.smaller_root)} and a tree of {self.larger_size} entries whose first "
                f"{self.smaller_size} entries have root {short(self.prefix_root)}: the smaller tree is not a "
                f"prefix of the larger one")


def verify_evidence(evidence: ForkEvidence | Mapping[str, Any] | str | bytes, key: LogKey) -> Fork:
    """Check fork evidence offline with nothing but the log's public key (a zoo's P-256 key, or the log's
    C2SP note verifier key, as a witness knows it); return the proven :class:`Fork`.

    Raises InvalidRequest for malformed evidence and VerificationFailed when it does not prove a fork
    (a signature that does not verify, a proof that fails, or two heads that are in fact consistent).
    """
    ev = evidence if isinstance(evidence, ForkEvidence) else evidence_from_json(evidence)
    try:
        small = verify_checkpoint(ev.smaller, [key], ev.origin)
        large = verify_checkpoint(ev.larger, [key], ev.origin)
    except VerificationFailed as exc:
        raise VerificationFailed(f"fork evidence: {exc} (is {key.name!r} the key of {ev.origin}?)") from exc
    if ev.prefix_root is None:
        if small.size != large.size:
            raise VerificationFailed("same-size fork evidence holds heads of different sizes")
        if small.root_hash == large.root_hash:
            raise VerificationFailed("the two heads are the same tree: no fork")
        return Fork(ev.origin, "same-size", small.size, small.root_hash, large.size, large.root_hash, None)
    if small.size >= large.size:
        raise VerificationFailed("prefix-mismatch evidence needs the smaller head first")
    if small.size == 0 and (ev.prefix_root != merkle.EMPTY_ROOT or ev.proof):
        raise VerificationFailed("the first 0 entries of any tree have the empty root and need no proof")
    if not merkle.verify_consistency(small.size, large.size, ev.prefix_root, large.root_hash, ev.proof):
        raise VerificationFailed("the consistency proof does not lead from the prefix root to the larger head")
    if ev.prefix_root == small.root_hash:
        raise VerificationFailed("the smaller head is a prefix of the larger one: no fork")
    return Fork(ev.origin, "prefix-mismatch", small.size, small.root_hash, large.size, large.root_hash,
                ev.prefix_root)


def same_size_evidence(a: SignedHead, b: SignedHead) -> ForkEvidence:
    """Evidence from two heads of equal size and different roots (ordered by root, so it has one id)."""
    first, second = sorted((a, b), key=lambda h: h.root)
    evidence = ForkEvidence(a.origin, first.note, second.note)
    verify_evidence(evidence, a.key)
    return evidence


def prefix_evidence(smaller: SignedHead, larger: SignedHead, prefix_root: bytes,
                    proof: Sequence[bytes]) -> ForkEvidence:
    """Evidence that ``smaller`` is not a prefix of ``larger``, given the larger tree's root at the smaller
    size and the consistency proof from there (both computed from leaves that hash to ``larger``'s root).

    Raises VerificationFailed if the result would not convince a third party.
    """
    evidence = ForkEvidence(smaller.origin, smaller.note, larger.note, prefix_root, tuple(proof))
    verify_evidence(evidence, smaller.key)
    return evidence
