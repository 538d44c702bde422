"""C2SP signed-note keys: Ed25519 note signers and verifier keys (``vkeys``), and where the zoo keeps them.

Why Ed25519 beside the zoo's P-256 key: every C2SP tool (Go's ``sumdb/note``, witnesses such as
omniwitness and litewitness, Rekor v2 clients) checks checkpoints with Ed25519 note keys, and a public
log interacting with witnesses MUST carry one Ed25519 signature (C2SP tlog-tiles). So the zoo's log
checkpoints carry two signature lines: the Ed25519 *log key* line that C2SP verifiers check, and the
P-256 ``zoo`` line that seals, receipts and pinned peers have always checked (:mod:`.checkpoint`).

Two key types of the signed-note spec are used:

* ``0x01`` Ed25519 note signatures (the log key): the line's signature is the Ed25519 signature of the
  note body;
* ``0x04`` Ed25519 cosignatures (C2SP tlog-cosignature, the witness key): see :mod:`.cosignature`.

A key's *key id* is ``SHA-256(name || 0x0A || type || public key)[:4]``; its verifier key
(``vkey``), what one hands to another party, is ``<name>+<hex key id>+<base64(type || public key)>``.

Keys live under ``OPENZOO_HOME/keys/note/<file>.key`` (PEM PKCS8, 0600, encrypted with the zoo key's
passphrase when one is set), outside the P-256 keyring's ``*.pub`` listing; the note name is not in the
file, it is derived from the log's origin each time, so it cannot drift from the checkpoints it signs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openzoo.certify.keys import _write_new
from openzoo.errors import InvalidRequest

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "NoteSigner",
    "NoteVerifier",
    "key_id",
    "load_or_create_signer",
    "log_signer",
    "parse_vkey",
    "witness_signer",
]

ED25519 = 0x01  # signed-note: Ed25519 signature of the note text
COSIGNATURE_V1 = 0x04  # tlog-cosignature: Ed25519 over "cosignature/v1\ntime T\n" + text
_TYPES = {ED25519: "Ed25519", COSIGNATURE_V1: "Ed25519 cosignature/v1"}
_NAME = re.compile(r"^[^\s+\u2014]+$")  # no spaces, no '+', no em dash (signed-note names)
MAX_VKEY = 512


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or not name.isprintable():
        raise InvalidRequest(f"{name!r} cannot name a note key", hint="a note key name has no spaces and no '+'")
    return name


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || "\\n" || type || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([key_type]) + public).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A named Ed25519 public key of one note key type (0x01 log signatures, 0x04 cosignatures)."""

    name: str
    key_type: int
    public: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.key_type not in _TYPES:
            raise InvalidRequest(f"note key type 0x{self.key_type:02x} is not supported",
                                 hint="openzoo reads Ed25519 note keys (0x01) and cosignature/v1 keys (0x04)")
        if len(self.public) != 32:
            raise InvalidRequest("an Ed25519 public key is 32 bytes")

    @property
    def hint(self) -> bytes:
        """The 4-byte key id that prefixes each signature of this key."""
        return key_id(self.name, self.key_type, self.public)

    @property
    def key_id(self) -> str:
        """The key id in hex (8 digits), as the vkey shows it."""
        return self.hint.hex()

    @property
    def vkey(self) -> str:
        """``<name>+<hex key id>+<base64(type || public key)>``: what Go's ``note.NewVerifier`` reads."""
        encoded = base64.b64encode(bytes([self.key_type]) + self.public).decode("ascii")
        return f"{self.name}+{self.key_id}+{encoded}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_vkey(text: str, key_type: int | None = None) -> NoteVerifier:
    """Parse a verifier key; InvalidRequest naming what is wrong (and the type expected, if given)."""
    if not isinstance(text, str) or len(text) > MAX_VKEY:
        raise InvalidRequest("a verifier key is a short line 'name+keyid+base64key'")
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not parts[0]:
        raise InvalidRequest(f"malformed verifier key {text[:64]!r}", hint="expected 'name+keyid+base64key'")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        claimed = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"malformed verifier key {text[:64]!r}: {exc}") from exc
    if len(claimed) != 4 or len(hex_id) != 8 or not raw:
        raise InvalidRequest(f"malformed verifier key {text[:64]!r}: the key id is 8 hex digits")
    verifier = NoteVerifier(_check_name(name), raw[0], raw[1:])
    if verifier.hint != claimed:
        raise InvalidRequest(f"verifier key {name!r}: its key id does not match its name and key")
    if key_type is not None and verifier.key_type != key_type:
        raise InvalidRequest(f"verifier key {name!r} is a {_TYPES[verifier.key_type]} key, expected "
                             f"{_TYPES.get(key_type, hex(key_type))}")
    return verifier


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key of one note key type."""

    name: str
    key_type: int
    key: Ed25519PrivateKey

    @property
    def verifier(self) -> NoteVerifier:
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return NoteVerifier(self.name, self.key_type, raw)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (deterministic: the same message always gets the same signature)."""
        return self.key.sign(message)


def load_or_create_signer(path: Path, name: str, key_type: int, passphrase: bytes | None = None) -> NoteSigner:
    """The Ed25519 key stored at ``path`` (made on first use, 0600, atomically) as a signer named ``name``.

    Servers sharing one home may make it at the same moment: the loser reads the winner's whole key.
    """
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        with contextlib.suppress(FileExistsError):
            _write_new(path, pem, 0o600)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"the note key {path} could not be loaded (wrong passphrase or not a key)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidRequest(f"the note key {path} is not an Ed25519 key")
    return NoteSigner(_check_name(name), key_type, key)


def log_signer(keys_dir: Path, origin: str, passphrase: bytes | None = None) -> NoteSigner:
    """The zoo's Ed25519 log key (``keys/note/log.key``), named by its log's origin as C2SP checkpoints are."""
    return load_or_create_signer(keys_dir / "note" / "log.key", origin, ED25519, passphrase)


def witness_signer(keys_dir: Path, origin: str, passphrase: bytes | None = None) -> NoteSigner:
    """The zoo's Ed25519 witness key (``keys/note/witness.key``, cosignature/v1), named ``<origin>/witness``.

    A key of its own: the cosignature/v1 message does not commit to the cosigner's name, so the spec wants a
    distinct key per cosigner, and the log key must never sign what a witness signs.
    """
    return load_or_create_signer(keys_dir / "note" / "witness.key", f"{origin}/witness", COSIGNATURE_V1, passphrase)
