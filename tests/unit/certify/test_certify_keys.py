"""Keys and keyring: permissions, ids, passphrases, names, trust and revocation."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from openzoo.certify.keys import Keyring, SigningKey, generate_key, load_public_pem, validate_key_name
from openzoo.errors import Conflict, InvalidRequest, NotFound


def test_generate_sign_verify_and_key_id(zoo_key: SigningKey) -> None:
    sig = zoo_key.sign(b"hello")
    assert zoo_key.public.verify(sig, b"hello")
    assert not zoo_key.public.verify(sig, b"hellO")
    assert not zoo_key.public.verify(b"junk", b"hello")
    assert zoo_key.key_id == hashlib.sha256(zoo_key.public.der).hexdigest()
    again = load_public_pem(zoo_key.public.pem(), "zoo")
    assert again.key_id == zoo_key.key_id


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "UPPER", "a" * 65, "a..b", "x\n"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_key_name(name)


def test_keyring_lifecycle(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "keys")
    alice = ring.generate("alice")
    key_file = tmp_path / "keys" / "alice.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in key_file.read_bytes()
    with pytest.raises(Conflict):
        ring.generate("alice")
    assert ring.signing_key("alice").key_id == alice.key_id
    pem = ring.export("alice")
    other = Keyring(tmp_path / "other")
    trusted = other.trust("zoo-a", pem)
    assert trusted.key_id == alice.key_id
    assert other.trust("zoo-a", pem).key_id == alice.key_id  # idempotent
    with pytest.raises(Conflict):
        other.trust("zoo-a", generate_key("x").public.pem())
    assert other.by_key_id(alice.key_id).name == "zoo-a"
    assert [(k.name, k.own, k.revoked) for k in other.list()] == [("zoo-a", False, False)]
    other.revoke("zoo-a")
    with pytest.raises(NotFound):
        other.load("zoo-a")
    with pytest.raises(NotFound):
        other.by_key_id(alice.key_id)
    assert [(k.name, k.revoked) for k in other.list()] == [("zoo-a", True)]
    other.trust("zoo-a", pem)
    other.revoke("zoo-a")
    assert [k.revoked for k in other.list()] == [True, True]
    with pytest.raises(NotFound):
        ring.signing_key("nobody")
    zoo = ring.ensure("zoo")
    assert ring.ensure("zoo").key_id == zoo.key_id
    assert {k.name for k in ring.trusted()} == {"alice", "zoo"}


def test_passphrase(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    key = ring.generate("bob", passphrase=b"s3cret")
    assert b"ENCRYPTED" in (tmp_path / "bob.key").read_bytes()
    with pytest.raises(InvalidRequest):
        ring.signing_key("bob")
    with pytest.raises(InvalidRequest):
        ring.signing_key("bob", b"wrong")
    assert ring.signing_key("bob", b"s3cret").key_id == key.key_id


def test_rejects_non_p256() -> None:
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidRequest):
        load_public_pem(pem, "ed")
    with pytest.raises(InvalidRequest):
        load_public_pem(b"not a key", "x")


def test_processes_making_the_zoo_key_at_once_agree_on_one(tmp_path: Path) -> None:
    """Servers sharing a home may make the zoo key together: one wins, every one gets the winner's key."""
    import threading

    start = threading.Barrier(8)
    ids: list[str] = []

    def ensure() -> None:
        start.wait()
        ids.append(Keyring(tmp_path / "keys").ensure("zoo").public.key_id)

    threads = [threading.Thread(target=ensure) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert Keyring(tmp_path / "keys").load("zoo").key_id == ids[0]
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["zoo.key", "zoo.pub"]  # no temp files left
