"""C2SP formats of the log, checked against the specs' and Go's reference vectors: signed-note keys and
lines, dual-signed checkpoints, tlog-tiles paths and contents, cosignature/v1 and the tlog-witness state
machine (404/403/400/409/422/413), with fork evidence a third party can check."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openzoo.certify import merkle
from openzoo.certify.checkpoint import (
    Checkpoint,
    NoteSignature,
    add_note_signature,
    parse_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_note,
)
from openzoo.certify.cosignature import add_cosignatures, cosign, cosigned_message, verify_cosignatures
from openzoo.certify.gossip import MAX_NOTE_BYTES, verify_evidence
from openzoo.certify.keys import SigningKey
from openzoo.certify.log import TransparencyLog
from openzoo.certify.note import COSIGNATURE_V1, ED25519, NoteSigner, key_id, parse_vkey
from openzoo.certify.policy import Policy, create_policy
from openzoo.certify.service import Certification
from openzoo.certify.tiles import TilePath, format_index, parse_tile_path, read_tile
from openzoo.certify.witness import Witness, implied_old_root, origin_hash
from openzoo.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StaleCheckpoint,
    VerificationFailed,
)
from openzoo.facts.canonical import b64encode
from openzoo.schema import open_store

# Go's golang.org/x/mod/sumdb/note test vectors (note_test.go: TestNewVerifier, TestSign).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = ("— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6"
             "RyyBwJnAM=\n")
ORIGIN = "example.com/log"


def signer(name: str, key_type: int = ED25519) -> NoteSigner:
    return NoteSigner(name, key_type, Ed25519PrivateKey.generate())


# -- signed-note keys ----------------------------------------------------------------------------


def test_go_vectors_key_id_vkey_and_signature_line() -> None:
    raw = base64.b64decode(PETER_SKEY)
    peter = NoteSigner("PeterNeumann", raw[0], Ed25519PrivateKey.from_private_bytes(raw[1:]))
    assert peter.verifier.vkey == PETER_VKEY
    assert parse_vkey(PETER_VKEY) == peter.verifier
    assert peter.verifier.key_id == "c74f20a3"
    line = NoteSignature("PeterNeumann", peter.verifier.hint, peter.sign(PETER_TEXT.encode())).line()
    assert line == PETER_SIG  # Ed25519 is deterministic: byte for byte what Go's note.Sign writes
    text, good = verify_note(PETER_TEXT + "\n" + PETER_SIG, [peter.verifier])
    assert text == PETER_TEXT and good == [peter.verifier]


def test_key_id_is_sha256_of_name_newline_type_key() -> None:
    s = signer("zoo.example/log")
    pub = s.verifier.public
    assert s.verifier.hint == hashlib.sha256(b"zoo.example/log\n\x01" + pub).digest()[:4]
    assert key_id("zoo.example/log", COSIGNATURE_V1, pub) == hashlib.sha256(b"zoo.example/log\n\x04" + pub).digest()[:4]
    encoded = base64.b64encode(b"\x01" + pub).decode()
    assert s.verifier.vkey == f"zoo.example/log+{s.verifier.key_id}+{encoded}"


@pytest.mark.parametrize("bad", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length (Go's vector)
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type (Go's vector)
    "PeterNeumann+c74f20a3",
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3+not base64!",
    "x" * 600,
])
def test_malformed_vkeys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_vkey(bad)


def test_vkey_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="expected"):
        parse_vkey(signer("w", COSIGNATURE_V1).verifier.vkey, ED25519)


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_carry_the_log_key_first_and_the_zoo_key(zoo_key: SigningKey) -> None:
    log_key = signer(ORIGIN)
    cp = Checkpoint(ORIGIN, 3, hashlib.sha256(b"r").digest())
    note = sign_checkpoint(cp, zoo_key, log_key)
    lines = parse_note(note).signatures
    assert [s.name for s in lines] == [ORIGIN, "zoo"]
    assert verify_checkpoint(note, [log_key.verifier], ORIGIN) == cp
    assert verify_checkpoint(note, [zoo_key.public], ORIGIN) == cp  # seals and pinned peers keep working


def test_old_p256_checkpoints_verify_and_gain_the_log_line(zoo_key: SigningKey) -> None:
    log_key = signer(ORIGIN)
    old = sign_checkpoint(Checkpoint(ORIGIN, 1, hashlib.sha256(b"x").digest()), zoo_key)
    with pytest.raises(VerificationFailed):
        verify_note(old, [log_key.verifier])
    upgraded = add_note_signature(old, log_key)
    assert add_note_signature(upgraded, log_key) == upgraded  # stable
    assert parse_note(upgraded).text == parse_note(old).text
    verify_note(upgraded, [log_key.verifier], strict=True)
    verify_note(upgraded, [zoo_key.public])


def test_strict_verification_refuses_a_bad_line_of_a_trusted_key(zoo_key: SigningKey) -> None:
    log_key = signer(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 2, hashlib.sha256(b"y").digest()), zoo_key, log_key)
    first = parse_note(note).signatures[0]
    forged = note.replace(NoteSignature(first.name, first.key_hint, first.signature).line(),
                          NoteSignature(first.name, first.key_hint, bytes(64)).line())
    verify_note(forged, [zoo_key.public, log_key.verifier])  # the P-256 line still verifies
    with pytest.raises(VerificationFailed, match="names a trusted key"):
        verify_note(forged, [log_key.verifier], strict=True)


@pytest.mark.parametrize("note", [
    "", "no blank line\n", "a\n1\nAAAA\n\n— x\n", "a\n1\n\n\n— x AAAAAAAA\n", "a\n1\nroot\n\nnot a signature\n",
    "a\n1\n" + "A" * 44 + "\n\n" + "— x AAAAAAAA\n" * 101,
])
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(InvalidRequest):
        Checkpoint.parse_body(parse_note(note).text)


# -- tiles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "path"), [(0, "000"), (7, "007"), (1000, "x001/000"),
                                             (1234067, "x001/x234/067"), (10**9, "x001/x000/x000/000")])
def test_tile_index_encoding(index: int, path: str) -> None:
    assert format_index(index) == path
    assert parse_tile_path(f"tile/3/{path}") == TilePath(3, index)
    assert parse_tile_path(f"tile/entries/{path}.p/9") == TilePath(None, index, 9)


@pytest.mark.parametrize("path", ["tile/0/x000/001", "tile/0/1234", "tile/0/12", "tile/64/000", "tile/01/000",
                                  "tile/0/000.p/256", "tile/0/000.p/0", "tile/0/000.p/05", "tile/0/x001",
                                  "tile/0/001/x234", "tile/0", "tile/../000", "tile/data/000", "tile/0/000.p",
                                  "tile/-1/000", "tile/0/" + "x999/" * 60 + "000"])
def test_bad_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidRequest, match="not a tile path"):
        parse_tile_path(path)


@pytest.fixture(scope="module")
def log300(tmp_path_factory: pytest.TempPathFactory) -> TransparencyLog:
    log = TransparencyLog(tmp_path_factory.mktemp("tiles") / "log.sqlite")
    log.append_many([("request", {"n": i, "pad": "x" * (i % 7)}) for i in range(300)])
    return log


def _bundle(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 2], "big")
        out.append(data[at + 2:at + 2 + n])
        at += 2 + n
    return out


def test_tiles_hold_the_rfc9162_tree(log300: TransparencyLog) -> None:
    full = read_tile(log300, TilePath(0, 0))
    partial = read_tile(log300, TilePath(0, 1, 44))
    leaves = [full[i:i + 32] for i in range(0, len(full), 32)] + [partial[i:i + 32] for i in range(0, 44 * 32, 32)]
    assert leaves == log300.leaves(0, 300)
    tree = merkle.MerkleTree()
    for leaf in leaves:
        tree.append_leaf_hash(leaf)
    assert tree.root() == log300.head().root_hash
    assert read_tile(log300, TilePath(1, 0, 1)) == log300.root(256)  # level 1: hashes of full level-0 tiles
    assert read_tile(log300, TilePath(0, 1, 3)) == partial[:96]  # the partial tile of an earlier checkpoint
    entries = _bundle(read_tile(log300, TilePath(None, 0)) + read_tile(log300, TilePath(None, 1, 44)))
    assert [merkle.leaf_hash(e) for e in entries] == leaves


@pytest.mark.parametrize("tile", [TilePath(0, 1), TilePath(0, 1, 45), TilePath(1, 0), TilePath(1, 0, 2),
                                  TilePath(2, 0, 1), TilePath(None, 2, 1), TilePath(0, 5)])
def test_tiles_past_the_tree_are_not_found(log300: TransparencyLog, tile: TilePath) -> None:
    with pytest.raises(NotFound, match="past the log's tree of 300 entries"):
        read_tile(log300, tile)


# -- cosignatures --------------------------------------------------------------------------------


def test_cosignature_v1_signs_header_time_and_body(zoo_key: SigningKey) -> None:
    witness = signer("witness.example/w1", COSIGNATURE_V1)
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, hashlib.sha256(b"z").digest()), zoo_key)
    text = parse_note(note).text
    line = cosign(text, witness, 1679315147)
    assert line.signature[:8] == (1679315147).to_bytes(8, "big") and len(line.signature) == 72
    assert cosigned_message(text, 1679315147) == b"cosignature/v1\ntime 1679315147\n" + text.encode()
    witness.verifier.verify(line.signature[8:], cosigned_message(text, 1679315147))
    cosigned = add_cosignatures(note, [line])
    found = verify_cosignatures(cosigned, [witness.verifier, signer("other", COSIGNATURE_V1).verifier])
    assert [(c.witness, c.timestamp) for c in found] == [(witness.verifier, 1679315147)]
    verify_checkpoint(cosigned, [zoo_key.public])  # the log's signature is untouched
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_cosignatures(add_cosignatures(note, [cosign(text + "x\n", witness, 1679315147)]), [witness.verifier])
    with pytest.raises(InvalidRequest):
        cosign(text, signer("not-a-witness"), 1)


# -- the witness ---------------------------------------------------------------------------------


class FakeLog:
    """A log whose heads a test signs (and forks) at will."""

    def __init__(self, zoo_key: SigningKey) -> None:
        self.key = signer(ORIGIN)
        self.zoo_key = zoo_key
        self.tree = merkle.MerkleTree()

    def grow(self, n: int, tag: str = "") -> str:
        for _ in range(n):
            self.tree.append(f"{tag}{self.tree.size}".encode())
        return self.note()

    def note(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), self.zoo_key, self.key)

    def request(self, old: int, note: str | None = None, proof: list[bytes] | None = None) -> bytes:
        note = self.note() if note is None else note
        size = Checkpoint.parse_body(parse_note(note).text).size
        if proof is None:
            proof = [] if old in (0, size) else self.tree.consistency_proof(old, size)
        return (f"old {old}\n" + "".join(b64encode(p) + "\n" for p in proof) + "\n" + note).encode()


@pytest.fixture
def cert(tmp_path: Path) -> Iterator[Certification]:
    store = open_store(tmp_path / "zoo")
    try:
        yield Certification(store)
    finally:
        store.close()


@pytest.fixture
def witness(cert: Certification) -> Witness:
    return Witness(cert.catalog, signer("zoo-b/witness", COSIGNATURE_V1), cert.gossip)


def test_witness_cosigns_a_growing_log_and_answers_409_with_its_size(witness: Witness, zoo_key: SigningKey) -> None:
    log = FakeLog(zoo_key)
    log.grow(5)
    with pytest.raises(NotFound):
        witness.add_checkpoint(log.request(0))
    witness.add(ORIGIN, log.key.verifier.vkey, "http://127.0.0.1:1")
    line = witness.add_checkpoint(log.request(0))
    assert verify_cosignatures(log.note() + line, [witness.signer.verifier])
    log.grow(6)
    with pytest.raises(StaleCheckpoint) as stale:
        witness.add_checkpoint(log.request(0))
    assert stale.value.size == 5 and stale.value.http_status == 409
    witness.add_checkpoint(log.request(5))
    assert witness.log(ORIGIN).size == 11
    witness.add_checkpoint(log.request(11))  # the same checkpoint again is cosigned again
    served = witness.checkpoint(origin_hash(ORIGIN))
    assert parse_note(served).text == parse_note(log.note()).text
    assert verify_cosignatures(served, [witness.signer.verifier])


def test_witness_refuses_bad_signatures_bad_proofs_and_bad_requests(witness: Witness, zoo_key: SigningKey) -> None:
    log = FakeLog(zoo_key)
    witness.add(ORIGIN, log.key.verifier.vkey)
    log.grow(3)
    witness.add_checkpoint(log.request(0))
    log.grow(4)
    impostor = FakeLog(zoo_key)
    impostor.tree = log.tree
    with pytest.raises(Forbidden):  # signed by another key (the P-256 line is not the witness's business)
        witness.add_checkpoint(impostor.request(3))
    with pytest.raises(VerificationFailed, match="does not verify"):
        witness.add_checkpoint(log.request(3, proof=[hashlib.sha256(b"no").digest()] * 3))
    with pytest.raises(InvalidRequest, match="larger than"):
        witness.add_checkpoint(log.request(9, proof=[]))
    for body in (b"old 03\n\n" + log.note().encode(), b"old 3\nnot base64!\n\n" + log.note().encode(),
                 b"old 3\n" + b"AAAA\n" + b"\n" + log.note().encode(), b"old 3\n" + log.note().encode(),
                 b"\xff\xfe", b"old 3\n" + b64encode(bytes(32)).encode() * 0 + (b64encode(bytes(32)) + "\n").encode()
                 * 64 + b"\n" + log.note().encode(), b"old 3\n\nnot a note\n"):
        with pytest.raises(InvalidRequest):
            witness.add_checkpoint(body)
    with pytest.raises(PayloadTooLarge):
        witness.add_checkpoint(b"old 3\n\n" + b"x" * (70 * 1024))
    with pytest.raises(PayloadTooLarge):
        witness.add_checkpoint(b"old 3\n\n" + b"a\n" * (MAX_NOTE_BYTES // 2 + 1))
    assert witness.log(ORIGIN).size == 3  # nothing refused changed the state


def test_witness_refusal_of_a_fork_keeps_evidence_checkable_with_the_vkey(witness: Witness,
                                                                          zoo_key: SigningKey) -> None:
    log = FakeLog(zoo_key)
    witness.add(ORIGIN, log.key.verifier.vkey)
    log.grow(7)
    witness.add_checkpoint(log.request(0))
    forked = FakeLog(zoo_key)
    forked.key = log.key
    forked.grow(5)
    forked.grow(5, tag="rewritten")  # the same first 5 entries, then another history
    with pytest.raises(VerificationFailed, match="does not extend"):
        witness.add_checkpoint(forked.request(7))
    (fork,) = witness.gossip.forks(ORIGIN)
    proven = verify_evidence(fork.evidence.to_json(), parse_vkey(log.key.verifier.vkey))
    assert (proven.kind, proven.smaller_size, proven.larger_size) == ("prefix-mismatch", 7, 10)
    verify_evidence(fork.evidence, zoo_key.public)  # the zoo's P-256 key signs the same heads
    same = FakeLog(zoo_key)
    same.key = log.key
    same.grow(7, tag="other")
    with pytest.raises(VerificationFailed, match="another tree of 7"):
        witness.add_checkpoint(same.request(7))
    assert {f.evidence.kind for f in witness.gossip.forks(ORIGIN)} == {"prefix-mismatch", "same-size"}
    assert witness.log(ORIGIN).size == 7


def test_implied_old_root() -> None:
    tree = merkle.MerkleTree()
    for i in range(20):
        tree.append(bytes([i]))
    for old in (3, 5, 6, 7, 9, 13, 19):
        proof = tree.consistency_proof(old, 20)
        assert implied_old_root(old, 20, proof, tree.root()) == tree.root(old)
    assert implied_old_root(8, 20, tree.consistency_proof(8, 20), tree.root()) is None  # left out of the proof


def test_witness_add_refuses_bad_input(witness: Witness) -> None:
    with pytest.raises(InvalidRequest):
        witness.add(ORIGIN, signer("w", COSIGNATURE_V1).verifier.vkey)
    with pytest.raises(InvalidRequest):
        witness.add("two\nlines", signer(ORIGIN).verifier.vkey)
    with pytest.raises(InvalidRequest):
        witness.add(ORIGIN, signer(ORIGIN).verifier.vkey, "ftp://x")
    witness.add(ORIGIN, signer(ORIGIN).verifier.vkey)
    with pytest.raises(Conflict, match="another key"):
        witness.add(ORIGIN, signer(ORIGIN).verifier.vkey)
    witness.remove(ORIGIN)
    with pytest.raises(NotFound):
        witness.remove(ORIGIN)


# -- policy --------------------------------------------------------------------------------------


def test_policy_witnesses_round_trip_and_leave_old_digests_alone(reviewer_keys: dict[str, SigningKey]) -> None:
    keys = [reviewer_keys["alice"].public, reviewer_keys["bob"].public]
    plain = create_policy(keys, 1)
    assert "witnesses" not in plain.to_json()
    w1, w2 = (signer(f"w{i}", COSIGNATURE_V1).verifier.vkey for i in (1, 2))
    witnessed = create_policy(keys, 1, 1, [w1, w2], 2)
    again = Policy.from_json(witnessed.to_json())
    assert again == witnessed and again.digest() == witnessed.digest() != plain.digest()
    assert Policy.from_yaml(witnessed.to_yaml()).witness_threshold == 2
    for bad in ([w1], 2), ([w1, w1], 1), ([], 1), ([signer("x").verifier.vkey], 1), ([w1], 0):
        with pytest.raises(InvalidRequest):
            create_policy(keys, 1, 1, *bad)


def test_a_fork_from_a_power_of_two_size_is_proven_with_the_logs_tiles(cert: Certification,
                                                                         zoo_key: SigningKey) -> None:
    log = FakeLog(zoo_key)
    forked = FakeLog(zoo_key)
    forked.key = log.key
    forked.grow(3)
    forked.grow(9, tag="rewritten")

    def tiles(url: str, tile: TilePath) -> bytes:  # the forked log's level-0 tile, as its zoo serves it
        assert url == "http://zoo-c" and tile == TilePath(0, 0, 8)
        return b"".join(forked.tree.leaf_hash(i) for i in range(tile.width))

    witness = Witness(cert.catalog, signer("zoo-b/witness", COSIGNATURE_V1), cert.gossip, tiles=tiles)
    witness.add(ORIGIN, log.key.verifier.vkey, "http://zoo-c")
    log.grow(8)
    witness.add_checkpoint(log.request(0))
    with pytest.raises(VerificationFailed, match="fork evidence"):  # the proof alone leaves the old root out
        witness.add_checkpoint(forked.request(8))
    (fork,) = witness.gossip.forks(ORIGIN)
    proven = verify_evidence(fork.evidence, log.key.verifier)
    assert (proven.kind, proven.smaller_size, proven.larger_size) == ("prefix-mismatch", 8, 12)


def test_heads_signed_before_the_log_key_verify_and_are_served_with_it(cert: Certification) -> None:
    before = TransparencyLog(cert.conn, origin=cert.log.origin)  # the log as it was: P-256 heads only
    before.append("request", {"n": 1})
    old = before.sign_head(cert.zoo_key())
    assert [s.name for s in parse_note(old).signatures] == ["zoo"]
    assert cert.log.log_key is not None
    served = cert.witnesses.cosigned()
    assert parse_note(served).text == parse_note(old).text
    verify_note(served, [cert.log.log_key.verifier], strict=True)
    receipt = cert.log.receipt(0, old)
    verify_checkpoint(receipt.checkpoint, [cert.zoo_public()], cert.log.origin)  # old receipts stay valid
    cert.log_event("request", {"n": 2})  # the next head carries both lines
    assert [s.name for s in parse_note(cert.head()).signatures] == [cert.log.origin, "zoo"]
    report = cert.log.verify_log(cert.zoo_keys())
    assert report.ok and report.heads_checked == 2
