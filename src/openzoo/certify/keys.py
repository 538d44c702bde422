"""ECDSA P-256 keys for the zoo, reviewers and peer zoos, and the on-disk keyring.

P-256 because it is the key type OpenSSF ``model-signing`` verifies offline, so one key serves seals,
log checkpoints and model-signing bundles. Signatures are DER-encoded ECDSA over SHA-256, the form
DSSE, Sigstore and Rekor checkpoints use. A key is identified by the hex SHA-256 of its DER
SubjectPublicKeyInfo, which anyone can recompute from the public PEM.

Keyring layout (one directory, made 0700)::

    <dir>/<name>.key          own private key, PEM PKCS8, 0600, optionally passphrase-encrypted
    <dir>/<name>.pub          public key (own or trusted peer), PEM SubjectPublicKeyInfo
    <dir>/revoked/<name>.pub  revoked keys, kept so that past signatures can still be explained
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from openzoo.errors import Conflict, InvalidRequest, NotFound
from openzoo.facts.canonical import sha256_hex

__all__ = [
    "KeyInfo",
    "Keyring",
    "PublicKey",
    "SigningKey",
    "generate_key",
    "load_private_pem",
    "load_public_pem",
    "validate_key_name",
]

_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def validate_key_name(name: str) -> str:
    """Return ``name`` if it is a safe key name (lowercase, digits, ``._-``, ≤ 64, no leading dot).

    Key names become file names, so anything that could climb out of the keyring is refused.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidRequest(
            f"invalid key name {name!r}", hint="use lowercase letters, digits, '.', '_' or '-' (max 64)"
        )
    return name


@dataclass(frozen=True)
class PublicKey:
    """A named P-256 public key; ``key_id`` is the hex SHA-256 of its DER SubjectPublicKeyInfo."""

    name: str
    key: ec.EllipticCurvePublicKey

    @property
    def der(self) -> bytes:
        """DER SubjectPublicKeyInfo."""
        return self.key.public_bytes(serialization.Encoding.DER, _SPKI)

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the DER SubjectPublicKeyInfo."""
        return sha256_hex(self.der)

    def pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo, the export format."""
        return self.key.public_bytes(serialization.Encoding.PEM, _SPKI)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is a valid DER ECDSA-SHA256 signature over ``data``."""
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A named P-256 private key."""

    name: str
    key: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self.name, self.key.public_key())

    @property
    def key_id(self) -> str:
        """Key id of the public half."""
        return self.public.key_id

    def sign(self, data: bytes) -> bytes:
        """DER ECDSA-SHA256 signature over ``data``."""
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def private_pem(self, passphrase: bytes | None = None) -> bytes:
        """PEM PKCS8, encrypted with the best available scheme when a passphrase is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        pkcs8 = serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, pkcs8, encryption)


def generate_key(name: str) -> SigningKey:
    """A fresh P-256 key called ``name`` (validated)."""
    return SigningKey(validate_key_name(name), ec.generate_private_key(ec.SECP256R1()))


def load_public_pem(pem: bytes | str, name: str) -> PublicKey:
    """Parse a PEM public key and insist that it is P-256; anything else is an InvalidRequest."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"key {name!r} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidRequest(f"key {name!r} is not an ECDSA P-256 key", hint="openzoo keys are ECDSA P-256")
    return PublicKey(validate_key_name(name), key)


def load_private_pem(pem: bytes, name: str, passphrase: bytes | None = None) -> SigningKey:
    """Parse a PEM PKCS8 private key (decrypting with ``passphrase``) and insist on P-256."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:
        raise InvalidRequest(f"key {name!r} needs {'no' if passphrase else 'a'} passphrase") from exc
    except ValueError as exc:
        raise InvalidRequest(f"key {name!r} could not be loaded (wrong passphrase or not a key)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidRequest(f"key {name!r} is not an ECDSA P-256 key")
    return SigningKey(validate_key_name(name), key)


@dataclass(frozen=True)
class KeyInfo:
    """One keyring entry as listed: ``own`` when we hold the private key, ``revoked`` when revoked."""

    name: str
    key_id: str
    own: bool
    revoked: bool


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` from the start, so a secret is never world-readable.

    The file appears whole or not at all (written aside, then hard-linked into place, which fails with
    FileExistsError if it exists): servers sharing one ``keys`` directory may make the zoo key at the
    same moment, and the loser must read the winner's complete key, never half of it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Keyring:
    """Own and trusted keys in one directory (see the module docstring for the layout)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def _pub(self, name: str) -> Path:
        return self.dir / f"{validate_key_name(name)}.pub"

    def _key(self, name: str) -> Path:
        return self.dir / f"{validate_key_name(name)}.key"

    def generate(self, name: str, passphrase: bytes | None = None) -> SigningKey:
        """Make and store a new key; Conflict if the name is taken."""
        if self._pub(name).exists() or self._key(name).exists():
            raise Conflict(f"key {name!r} already exists")
        key = generate_key(name)
        _write_new(self._key(name), key.private_pem(passphrase), 0o600)
        _write_new(self._pub(name), key.public.pem(), 0o644)
        return key

    def ensure(self, name: str, passphrase: bytes | None = None) -> SigningKey:
        """Load own key ``name``, generating it on first use (how the zoo key comes to be)."""
        if self.has_private(name):
            return self.signing_key(name, passphrase)
        try:
            return self.generate(name, passphrase)
        except (FileExistsError, Conflict):  # another process (a server sharing this home) made it first
            return self.signing_key(name, passphrase)

    def signing_key(self, name: str, passphrase: bytes | None = None) -> SigningKey:
        """Load an own private key; NotFound if we do not hold it."""
        path = self._key(name)
        if not path.exists():
            raise NotFound(f"no private key {name!r}", hint="run 'openzoo keys generate NAME'")
        return load_private_pem(path.read_bytes(), name, passphrase)

    def has_private(self, name: str) -> bool:
        """Whether we hold the private key ``name``."""
        return self._key(name).exists()

    def trust(self, name: str, pem: bytes | str) -> PublicKey:
        """Trust a peer's public key under ``name``; Conflict if the name is taken by another key."""
        key = load_public_pem(pem, name)
        path = self._pub(name)
        if path.exists():
            if self.load(name).key_id == key.key_id:
                return key
            raise Conflict(f"key {name!r} already exists with a different key id")
        _write_new(path, key.pem(), 0o644)
        return key

    def load(self, name: str) -> PublicKey:
        """A trusted (not revoked) public key by name; NotFound otherwise."""
        path = self._pub(name)
        if not path.exists():
            raise NotFound(f"no trusted key {name!r}", hint="run 'openzoo keys list'")
        return load_public_pem(path.read_bytes(), name)

    def trusted(self) -> list[PublicKey]:
        """Every trusted (not revoked) public key, own ones included."""
        return [self.load(info.name) for info in self.list() if not info.revoked]

    def export(self, name: str) -> bytes:
        """Public PEM of ``name`` for handing to another zoo."""
        return self.load(name).pem()

    def by_key_id(self, key_id: str) -> PublicKey:
        """Find a trusted public key by key id; NotFound otherwise."""
        for info in self.list():
            if info.key_id == key_id and not info.revoked:
                return self.load(info.name)
        raise NotFound(f"no trusted key with id {key_id[:16]}…")

    def revoke(self, name: str) -> KeyInfo:
        """Stop trusting ``name``: its public (and private) key move to ``revoked/``.

        The files are kept (with a ``~N`` suffix if the name was revoked before) so an auditor can still
        see which key signed what; revoked keys never verify anything through :meth:`load`.
        """
        key = self.load(name)
        revoked = self.dir / "revoked"
        revoked.mkdir(mode=0o700, exist_ok=True)
        suffix, n = "", 0
        while (revoked / f"{name}{suffix}.pub").exists():
            n += 1
            suffix = f"~{n}"
        if self._key(name).exists():
            os.replace(self._key(name), revoked / f"{name}{suffix}.key")
        os.replace(self._pub(name), revoked / f"{name}{suffix}.pub")
        return KeyInfo(name, key.key_id, own=False, revoked=True)

    def list(self) -> list[KeyInfo]:
        """All keys, trusted first then revoked, sorted by name."""
        out: list[KeyInfo] = []
        for path in sorted(self.dir.glob("*.pub")):
            key = load_public_pem(path.read_bytes(), path.stem)
            out.append(KeyInfo(key.name, key.key_id, own=self._key(key.name).exists(), revoked=False))
        for path in sorted((self.dir / "revoked").glob("*.pub")):
            name = path.stem.split("~", 1)[0]
            key = load_public_pem(path.read_bytes(), name)
            out.append(KeyInfo(name, key.key_id, own=False, revoked=True))
        return out
