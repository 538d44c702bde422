"""DSSE envelopes and in-toto Statement v1, the wire format of seals, approvals and policy updates.

Why DSSE: the signature covers the payload *type* and the exact payload bytes (PAE), so a verifier
checks the signature before parsing anything, and a signature made for one purpose (an approval) can
never be replayed as another (a seal). Why in-toto: it is the Statement format Sigstore, SLSA and OpenSSF
model-signing all use, so a seal can be read by their tooling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.certify.keys import PublicKey, SigningKey
from openzoo.errors import InvalidRequest, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode, canonical_json, parse_json

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "Envelope",
    "Signature",
    "pae",
    "parse_statement",
    "sign_envelope",
    "statement",
    "subject",
    "verify_envelope",
]

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: ``"DSSEv1" SP len(type) SP type SP len(body) SP body``.

    Lengths are decimal byte counts of the UTF-8 type and the raw payload.
    """
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    """One DSSE signature; ``keyid`` is our key id (hex SHA-256 of the DER public key)."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: payload type, raw payload bytes and signatures over their PAE."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> dict[str, Any]:
        """The standard DSSE JSON shape (base64 payload and signatures)."""
        return {
            "payloadType": self.payload_type,
            "payload": b64encode(self.payload),
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes of :meth:`to_json` (what gets stored and logged)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | bytes | str) -> Envelope:
        """Parse a DSSE envelope; InvalidRequest if the shape is wrong."""
        obj = parse_json(data, "DSSE envelope") if isinstance(data, bytes | str) else data
        if not isinstance(obj, Mapping):
            raise InvalidRequest("DSSE envelope must be a JSON object")
        payload_type, payload, sigs = obj.get("payloadType"), obj.get("payload"), obj.get("signatures")
        if not isinstance(payload_type, str) or not isinstance(payload, str) or not isinstance(sigs, list):
            raise InvalidRequest("DSSE envelope needs payloadType, payload and signatures")
        parsed: list[Signature] = []
        for s in sigs:
            if not isinstance(s, Mapping) or not isinstance(s.get("sig"), str):
                raise InvalidRequest("DSSE signature needs a base64 'sig'")
            keyid = s.get("keyid", "")
            parsed.append(Signature(keyid if isinstance(keyid, str) else "", b64decode(s["sig"], "signature")))
        return cls(payload_type, b64decode(payload, "DSSE payload"), tuple(parsed))


def sign_envelope(payload_type: str, payload: bytes, keys: Iterable[SigningKey]) -> Envelope:
    """Sign ``payload`` under ``payload_type`` with each key."""
    data = pae(payload_type, payload)
    sigs = tuple(Signature(k.key_id, k.sign(data)) for k in keys)
    if not sigs:
        raise InvalidRequest("an envelope needs at least one signature")
    return Envelope(payload_type, payload, sigs)


def verify_envelope(
    envelope: Envelope, trusted: Iterable[PublicKey], payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> list[PublicKey]:
    """Return the distinct trusted keys with a valid signature on ``envelope``.

    The payload type is pinned first (a different type is never accepted); raises VerificationFailed
    when no trusted key signed. Signatures are matched by key id, then tried against every trusted key if
    the key id is empty (as model-signing writes it).
    """
    if envelope.payload_type != payload_type:
        raise VerificationFailed(f"payload type {envelope.payload_type!r} is not {payload_type!r}")
    data = pae(envelope.payload_type, envelope.payload)
    keys = list(trusted)
    good: list[PublicKey] = []
    for sig in envelope.signatures:
        for key in keys:
            if (not sig.keyid or sig.keyid == key.key_id) and key not in good and key.verify(sig.sig, data):
                good.append(key)
                break
    if not good:
        raise VerificationFailed("no valid signature by a trusted key")
    return good


def subject(name: str, sha256_hex: str) -> dict[str, Any]:
    """An in-toto subject ``{name, digest: {sha256}}``; accepts ``sha256:<hex>`` or bare hex."""
    value = sha256_hex.removeprefix("sha256:")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidRequest(f"subject {name!r} needs a lowercase hex SHA-256 digest")
    return {"name": name, "digest": {"sha256": value}}


def statement(subjects: Sequence[Mapping[str, Any]], predicate_type: str, predicate: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of an in-toto Statement v1."""
    if not subjects:
        raise InvalidRequest("an in-toto statement needs at least one subject")
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "subject": list(subjects),
            "predicateType": predicate_type,
            "predicate": dict(predicate),
        }
    )


def parse_statement(payload: bytes, predicate_type: str | None = None) -> dict[str, Any]:
    """Parse a Statement v1 payload (after its signature was verified); VerificationFailed if malformed."""
    try:
        obj = parse_json(payload, "in-toto statement")
    except InvalidRequest as exc:
        raise VerificationFailed(str(exc)) from exc
    if not isinstance(obj, dict) or obj.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed("payload is not an in-toto Statement v1")
    if not isinstance(obj.get("subject"), list) or not isinstance(obj.get("predicate"), dict):
        raise VerificationFailed("statement lacks subjects or predicate")
    if predicate_type is not None and obj.get("predicateType") != predicate_type:
        raise VerificationFailed(f"predicate type {obj.get('predicateType')!r} is not {predicate_type!r}")
    return obj
