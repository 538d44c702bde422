"""Signed tree heads as C2SP checkpoints in the signed-note format.

Why this format: it is what Go's sumdb, Rekor and the transparency-dev witnesses speak, it is plain text
(easy to paste, diff and pin), and several parties (the zoo, witnesses, peer zoos) can co-sign the same
body. A checkpoint note looks like::

    openzoo.local/log          <- origin: names the log, so heads of different logs never mix
    1234                       <- tree size, decimal
    <base64 root hash>
    [extension lines]
                               <- blank line
    — zoo <base64(4-byte key hint || DER ECDSA-SHA256 signature over the body above)>

The zoo's checkpoints carry two signature lines over the same body: first the Ed25519 line of its *log
key* (C2SP signed-note key type 0x01, named by the origin: what Go's ``sumdb/note``, witnesses and other
C2SP verifiers check, see :mod:`.note`), then the ECDSA P-256 line of its ``zoo`` key (see :mod:`.keys`),
which seals, receipts and pinned peers checked before the log spoke C2SP and still check. For the P-256
line, as Rekor does for ECDSA, the 4-byte key hint is the first four bytes of SHA-256 of the DER
SubjectPublicKeyInfo, i.e. the first 8 hex digits of the key id. Verifiers select candidate keys by hint
(and, for note keys, by name) and then check the signature; signatures of unknown keys are ignored, so
checkpoints signed before the log key existed (P-256 only) verify as they always did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from openzoo.certify.keys import PublicKey, SigningKey
from openzoo.certify.note import ED25519, NoteSigner, NoteVerifier
from openzoo.errors import InvalidRequest, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode

__all__ = [
    "Checkpoint",
    "LogKey",
    "NoteSignature",
    "SignedNote",
    "add_note_signature",
    "add_signature",
    "key_hint",
    "parse_note",
    "sign_checkpoint",
    "verify_checkpoint",
    "verify_note",
]

SIG_PREFIX = "\u2014 "  # em dash + space, as the signed-note spec requires
_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")
MAX_SIGNATURES = 100  # Go's note.Open refuses more; a checkpoint with a dozen cosignatures has 14
LogKey = PublicKey | NoteVerifier  # a key whose signature line vouches for a checkpoint body


def key_hint(key: PublicKey) -> bytes:
    """The 4-byte key hint: first four bytes of SHA-256(DER SubjectPublicKeyInfo)."""
    return bytes.fromhex(key.key_id[:8])


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log (origin), how many entries, the root hash, optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text that gets signed (ends with a newline)."""
        if not self.origin or "\n" in self.origin:
            raise InvalidRequest("checkpoint origin must be one non-empty line")
        if any(not line or "\n" in line for line in self.extensions):
            raise InvalidRequest("checkpoint extension lines must be non-empty single lines")
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body; InvalidRequest if it is not one."""
        if not text.endswith("\n"):
            raise InvalidRequest("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not lines[0] or not _SIZE.fullmatch(lines[1]) or any(not x for x in lines[3:]):
            raise InvalidRequest("malformed checkpoint body")
        root = b64decode(lines[2], "checkpoint root hash")
        if len(root) != 32:
            raise InvalidRequest("checkpoint root hash must be 32 bytes")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:]))


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_hint: bytes
    signature: bytes

    def line(self) -> str:
        """The rendered signature line, with its trailing newline."""
        return f"{SIG_PREFIX}{self.name} {b64encode(self.key_hint + self.signature)}\n"


@dataclass(frozen=True)
class SignedNote:
    """A note body with its signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        """The full note: body, blank line, signature lines."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def parse_note(note: str) -> SignedNote:
    """Split a signed note into body and signature lines; InvalidRequest if malformed."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise InvalidRequest("signed note needs a body, a blank line and signature lines")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise InvalidRequest("signed note body contains control characters")
    sigs: list[NoteSignature] = []
    for line in sig_block[:-1].split("\n") if sig_block else []:
        if not line.startswith(SIG_PREFIX):
            raise InvalidRequest("signed note signature lines start with '— '")
        parts = line[len(SIG_PREFIX) :].split(" ")
        if len(parts) != 2 or not _NAME.fullmatch(parts[0]):
            raise InvalidRequest("malformed signed note signature line")
        raw = b64decode(parts[1], "note signature")
        if len(raw) < 5:
            raise InvalidRequest("note signature too short")
        sigs.append(NoteSignature(parts[0], raw[:4], raw[4:]))
    if not sigs:
        raise InvalidRequest("signed note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise InvalidRequest(f"signed note has more than {MAX_SIGNATURES} signatures")
    return SignedNote(text, tuple(sigs))


def _sign(text: str, key: SigningKey) -> NoteSignature:
    if not _NAME.fullmatch(key.name):
        raise InvalidRequest(f"key name {key.name!r} cannot sign notes")
    return NoteSignature(key.name, key_hint(key.public), key.sign(text.encode("utf-8")))


def _note_sign(text: str, signer: NoteSigner) -> NoteSignature:
    if signer.key_type != ED25519:
        raise InvalidRequest(f"the note key {signer.name!r} is not a note signing key (type 0x01)")
    return NoteSignature(signer.name, signer.verifier.hint, signer.sign(text.encode("utf-8")))


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey, log_key: NoteSigner | None = None) -> str:
    """Render ``checkpoint`` as a note signed by ``log_key`` (Ed25519, first, if given) and ``key``."""
    text = checkpoint.body()
    first = (_note_sign(text, log_key),) if log_key is not None else ()
    return SignedNote(text, (*first, _sign(text, key))).render()


def add_note_signature(note: str, signer: NoteSigner) -> str:
    """The note with ``signer``'s Ed25519 line first, unless it already carries one (stable: Ed25519
    signatures are deterministic). How checkpoints stored before the log key existed are served."""
    parsed = parse_note(note)
    mine = _note_sign(parsed.text, signer)
    if mine in parsed.signatures:
        return note
    return SignedNote(parsed.text, (mine, *(s for s in parsed.signatures if s.key_hint != mine.key_hint
                                            or s.name != mine.name))).render()


def add_signature(note: str, key: SigningKey) -> str:
    """Co-sign an existing note (a witness or peer zoo); the body is signed as is."""
    parsed = parse_note(note)
    return SignedNote(parsed.text, (*parsed.signatures, _sign(parsed.text, key))).render()


def _candidates(sig: NoteSignature, by_hint: dict[bytes, list[LogKey]]) -> list[LogKey]:
    """The trusted keys a signature line claims to be from: P-256 keys by hint, note keys by name and id."""
    return [k for k in by_hint.get(sig.key_hint, []) if not isinstance(k, NoteVerifier) or k.name == sig.name]


def verify_note(note: str, trusted: Iterable[LogKey], *, strict: bool = False) -> tuple[str, list[LogKey]]:
    """Return the note body and the trusted keys whose signatures verify.

    Signatures of unknown keys are ignored. Raises VerificationFailed when no trusted key signed it validly,
    and with ``strict`` also when a line names a trusted key (name and key id) but its signature fails
    (such a note is malformed per C2SP signed-note; a witness answers it with 403).
    """
    parsed = parse_note(note)
    data = parsed.text.encode("utf-8")
    by_hint: dict[bytes, list[LogKey]] = {}
    for key in trusted:
        if isinstance(key, NoteVerifier) and key.key_type != ED25519:
            continue  # cosignature keys sign another message (see .cosignature)
        by_hint.setdefault(key.hint if isinstance(key, NoteVerifier) else key_hint(key), []).append(key)
    good: list[LogKey] = []
    for sig in parsed.signatures:
        claimed = _candidates(sig, by_hint)
        ok = [k for k in claimed if k.verify(sig.signature, data)]
        if strict and claimed and not ok:
            raise VerificationFailed(f"the signature line of {sig.name!r} names a trusted key but does not verify")
        good.extend(k for k in ok if k not in good)
    if not good:
        raise VerificationFailed("tree head signature does not verify with any trusted key")
    return parsed.text, good


def verify_checkpoint(note: str, trusted: Sequence[LogKey], origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint against trusted keys (and the expected origin) and return it."""
    text, _ = verify_note(note, trusted)
    checkpoint = Checkpoint.parse_body(text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationFailed(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint
