"""C2SP ``cosignature/v1``: a witness's timestamped Ed25519 statement that it saw a checkpoint, consistent
with every earlier one it saw of the same log.

Why: a log that shows different histories to different readers (a split view) must show each witness
one of them; a reader that demands k cosignatures from independent witnesses knows that k parties saw the
same, append-only history. Cosignatures are ordinary signed-note lines, so they are appended to the
checkpoint they sign and travel with it (in seal receipts too) for offline checks.

A cosignature line (key type 0x04, :mod:`.note`) is ``— <witness name> base64(key id[4] || timestamp[8,
big-endian] || Ed25519 signature[64])``; the signature is over::

    cosignature/v1
    time <timestamp, decimal seconds>
    <the checkpoint body, with its final newline>
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from openzoo.certify.checkpoint import NoteSignature, SignedNote, parse_note
from openzoo.certify.note import COSIGNATURE_V1, NoteSigner, NoteVerifier
from openzoo.errors import InvalidRequest, VerificationFailed

__all__ = ["Cosigned", "add_cosignatures", "cosign", "cosigned_message", "verify_cosignatures"]

HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header, time line, then the whole checkpoint body."""
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise InvalidRequest("a cosignature timestamp is between 1 and 2**63 - 1")
    return f"{HEADER}time {timestamp}\n{text}".encode()


def cosign(text: str, signer: NoteSigner, timestamp: int) -> NoteSignature:
    """The witness ``signer``'s cosignature line over the checkpoint body ``text`` at ``timestamp``."""
    if signer.key_type != COSIGNATURE_V1:
        raise InvalidRequest(f"the key {signer.name!r} is not a cosignature/v1 key (type 0x04)")
    stamp = timestamp.to_bytes(8, "big")
    return NoteSignature(signer.name, signer.verifier.hint, stamp + signer.sign(cosigned_message(text, timestamp)))


@dataclass(frozen=True)
class Cosigned:
    """One verified cosignature: which witness, and when it said it saw the checkpoint (POSIX seconds)."""

    witness: NoteVerifier
    timestamp: int


def _check(text: str, sig: NoteSignature, witness: NoteVerifier) -> int | None:
    if len(sig.signature) != 8 + 64:
        return None
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if not 0 < timestamp <= MAX_TIMESTAMP:
        return None
    return timestamp if witness.verify(sig.signature[8:], cosigned_message(text, timestamp)) else None


def verify_cosignatures(note: str, witnesses: Iterable[NoteVerifier]) -> list[Cosigned]:
    """The valid cosignatures on ``note`` by the given witnesses (one per witness; unknown lines ignored).

    Raises VerificationFailed when a line carries a known witness's name and key id but does not verify:
    that note is malformed (C2SP signed-note), not merely short of a cosignature.
    """
    parsed = parse_note(note)
    known = {(w.name, w.hint): w for w in witnesses if w.key_type == COSIGNATURE_V1}
    found: dict[NoteVerifier, Cosigned] = {}
    for sig in parsed.signatures:
        witness = known.get((sig.name, sig.key_hint))
        if witness is None:
            continue
        timestamp = _check(parsed.text, sig, witness)
        if timestamp is None:
            raise VerificationFailed(f"the cosignature of witness {witness.name!r} does not verify")
        if witness not in found or found[witness].timestamp < timestamp:
            found[witness] = Cosigned(witness, timestamp)
    return list(found.values())


def add_cosignatures(note: str, lines: Iterable[NoteSignature]) -> str:
    """``note`` with cosignature lines appended (one per witness name and key id: a newer one replaces)."""
    parsed = parse_note(note)
    sigs = list(parsed.signatures)
    for line in lines:
        sigs = [s for s in sigs if (s.name, s.key_hint) != (line.name, line.key_hint)] + [line]
    return SignedNote(parsed.text, tuple(sigs)).render()
