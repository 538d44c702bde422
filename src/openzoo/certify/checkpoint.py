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

Keys are ECDSA P-256 (see :mod:`.keys`); as Rekor does for ECDSA, the 4-byte key hint is the first four
bytes of SHA-256 of the DER SubjectPublicKeyInfo, i.e. the first 8 hex digits of the key id. Verifiers
select candidate keys by hint and then check the signature; the name is for people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from openzoo.certify.keys import PublicKey, SigningKey
from openzoo.errors import InvalidRequest, VerificationFailed
from openzoo.facts.canonical import b64decode, b64encode

__all__ = [
    "Checkpoint",
    "NoteSignature",
    "SignedNote",
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
    return SignedNote(text, tuple(sigs))


def _sign(text: str, key: SigningKey) -> NoteSignature:
    if not _NAME.fullmatch(key.name):
        raise InvalidRequest(f"key name {key.name!r} cannot sign notes")
    return NoteSignature(key.name, key_hint(key.public), key.sign(text.encode("utf-8")))


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> str:
    """Render ``checkpoint`` as a note signed by ``key``."""
    text = checkpoint.body()
    return SignedNote(text, (_sign(text, key),)).render()


def add_signature(note: str, key: SigningKey) -> str:
    """Co-sign an existing note (a witness or peer zoo); the body is signed as is."""
    parsed = parse_note(note)
    return SignedNote(parsed.text, (*parsed.signatures, _sign(parsed.text, key))).render()


def verify_note(note: str, trusted: Iterable[PublicKey]) -> tuple[str, list[PublicKey]]:
    """Return the note body and the trusted keys whose signatures verify.

    Raises VerificationFailed when no trusted key signed it validly.
    """
    parsed = parse_note(note)
    data = parsed.text.encode("utf-8")
    by_hint: dict[bytes, list[PublicKey]] = {}
    for key in trusted:
        by_hint.setdefault(key_hint(key), []).append(key)
    good: list[PublicKey] = []
    for sig in parsed.signatures:
        for key in by_hint.get(sig.key_hint, []):
            if key not in good and key.verify(sig.signature, data):
                good.append(key)
    if not good:
        raise VerificationFailed("tree head signature does not verify with any trusted key")
    return parsed.text, good


def verify_checkpoint(note: str, trusted: Sequence[PublicKey], origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint against trusted keys (and the expected origin) and return it."""
    text, _ = verify_note(note, trusted)
    checkpoint = Checkpoint.parse_body(text)
    if origin is not None and checkpoint.origin != origin:
        raise VerificationFailed(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint
