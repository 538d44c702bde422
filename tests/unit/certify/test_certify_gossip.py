"""Fork evidence (pure): heads verified against the pinned key of their origin, evidence built for hand-made
forks at every size relation and checked with nothing but the log's public key, and malformed or
misleading evidence refused."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from openzoo.certify import merkle
from openzoo.certify.checkpoint import Checkpoint, sign_checkpoint
from openzoo.certify.gossip import (
    MAX_EVIDENCE_BYTES,
    MAX_NOTE_BYTES,
    MAX_PROOF_HASHES,
    ForkEvidence,
    SignedHead,
    evidence_from_json,
    origin_for,
    prefix_evidence,
    same_size_evidence,
    verify_evidence,
    verify_head,
)
from openzoo.certify.keys import SigningKey, load_public_pem
from openzoo.errors import InvalidRequest, UnknownLog, VerificationFailed
from openzoo.facts.canonical import b64encode


def branch(prefix: int, size: int, tag: str) -> merkle.MerkleTree:
    """A log of ``size`` entries whose first ``prefix`` entries are shared by every branch."""
    tree = merkle.MerkleTree()
    for i in range(size):
        tree.append(f"{'shared' if i < prefix else tag}-{i}".encode())
    return tree


def signed(key: SigningKey, tree: merkle.MerkleTree, size: int, origin: str | None = None) -> SignedHead:
    note = sign_checkpoint(Checkpoint(origin or origin_for(key.public), size, tree.root(size)), key)
    return verify_head(note, [key.public])


def evidence_for(a: SignedHead, tree_a: merkle.MerkleTree, b: SignedHead, tree_b: merkle.MerkleTree) -> ForkEvidence:
    """What a monitor holding both histories' leaves builds (the larger tree's prefix root and proof)."""
    if a.size == b.size:
        return same_size_evidence(a, b)
    (small, _), (large, tree) = sorted([(a, tree_a), (b, tree_b)], key=lambda pair: pair[0].size)
    proof = tree.consistency_proof(small.size, large.size) if small.size else []
    return prefix_evidence(small, large, tree.root(small.size), proof)


def test_forks_at_every_size_relation_are_proven_offline(zoo_key: SigningKey) -> None:
    """Two histories sharing ``p`` entries: heads of sizes x and y disagree exactly when both pass p; then
    the evidence convinces a verifier holding only the public key, and never otherwise."""
    outsider = load_public_pem(zoo_key.public.pem(), "zoo-c")  # what a third party holds: the PEM, nothing else
    forks = consistent = 0
    for p in range(6):
        for x in range(p, 12):
            honest = branch(p, x, "honest")
            for y in range(p, 12):
                forked = branch(p, y, "forked")
                a, b = signed(zoo_key, honest, x), signed(zoo_key, forked, y)
                if min(x, y) > p:
                    evidence = evidence_for(a, honest, b, forked)
                    fork = verify_evidence(json.loads(json.dumps(evidence.to_json())), outsider)
                    assert fork.kind == ("same-size" if x == y else "prefix-mismatch")
                    assert (fork.smaller_size, fork.larger_size) == (min(x, y), max(x, y))
                    assert {fork.smaller_root, fork.larger_root} == {a.root, b.root}
                    if x != y:  # the prefix root is the larger history's, and differs from the smaller head
                        assert fork.prefix_root == (honest if x > y else forked).root(min(x, y))
                    forks += 1
                else:
                    with pytest.raises(VerificationFailed, match="no fork"):
                        evidence_for(a, honest, b, forked)
                    consistent += 1
    assert forks > 300 and consistent > 100


def test_evidence_json_round_trip_and_stable_id(zoo_key: SigningKey) -> None:
    honest, forked = branch(3, 9, "h"), branch(3, 9, "f")
    a, b = signed(zoo_key, honest, 9), signed(zoo_key, forked, 9)
    one, other = same_size_evidence(a, b), same_size_evidence(b, a)
    assert one == other and one.id == other.id  # the same fork, whoever found which head first
    assert evidence_from_json(one.to_bytes()) == one
    small = signed(zoo_key, forked, 5)
    ev = prefix_evidence(small, a, honest.root(5), honest.consistency_proof(5, 9))
    data = ev.to_json()
    assert data["type"] == "openzoo.fork-evidence/v1" and data["kind"] == "prefix-mismatch"
    assert data["heads"] == [small.note, a.note] and data["prefix_root"] == b64encode(honest.root(5))
    assert evidence_from_json(json.dumps(data)) == ev and evidence_from_json(json.dumps(data)).id == ev.id


@pytest.fixture
def prefix_case(zoo_key: SigningKey) -> dict[str, Any]:
    honest, forked = branch(4, 12, "h"), branch(4, 7, "f")
    small, large = signed(zoo_key, forked, 7), signed(zoo_key, honest, 12)
    return prefix_evidence(small, large, honest.root(7), honest.consistency_proof(7, 12)).to_json()


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return b64encode(bytes(raw))


@pytest.mark.parametrize(("change", "error"), [
    (lambda d: d.update(prefix_root=_flip(d["prefix_root"])), "does not lead"),
    (lambda d: d["proof"].__setitem__(0, _flip(d["proof"][0])), "does not lead"),
    (lambda d: d["proof"].pop(), "does not lead"),
    (lambda d: d["heads"].reverse(), "smaller head first"),
    (lambda d: d.update(origin="openzoo/0000000000000000"), "expected"),
    (lambda d: d["heads"].__setitem__(1, d["heads"][1].replace("\n12\n", "\n13\n")), "does not verify"),
])
def test_tampered_evidence_is_refused(prefix_case: dict[str, Any], zoo_key: SigningKey, change: Any,
                                      error: str) -> None:
    assert verify_evidence(prefix_case, zoo_key.public).kind == "prefix-mismatch"
    data = copy.deepcopy(prefix_case)
    change(data)
    with pytest.raises(VerificationFailed, match=error):
        verify_evidence(data, zoo_key.public)


def test_evidence_needs_the_logs_own_key(prefix_case: dict[str, Any], reviewer_keys: dict[str, SigningKey]) -> None:
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_evidence(prefix_case, reviewer_keys["bob"].public)


def test_consistent_heads_are_not_a_fork(zoo_key: SigningKey) -> None:
    tree = branch(10, 10, "x")
    small, large = signed(zoo_key, tree, 4), signed(zoo_key, tree, 10)
    honest = ForkEvidence(small.origin, small.note, large.note, tree.root(4), tuple(tree.consistency_proof(4, 10)))
    with pytest.raises(VerificationFailed, match="no fork"):
        verify_evidence(honest, zoo_key.public)
    with pytest.raises(VerificationFailed, match="same tree"):
        verify_evidence(ForkEvidence(small.origin, small.note, small.note), zoo_key.public)
    with pytest.raises(VerificationFailed, match="different sizes"):
        verify_evidence(ForkEvidence(small.origin, small.note, large.note), zoo_key.public)


def test_empty_prefix_has_a_fixed_root(zoo_key: SigningKey) -> None:
    """The first 0 entries of any tree hash to SHA-256(""); a made-up prefix root proves nothing."""
    tree = branch(0, 5, "x")
    empty_note = sign_checkpoint(Checkpoint(origin_for(zoo_key.public), 0, merkle.EMPTY_ROOT), zoo_key)
    empty = verify_head(empty_note, [zoo_key.public])
    large = signed(zoo_key, tree, 5)
    with pytest.raises(VerificationFailed):
        verify_evidence(ForkEvidence(empty.origin, empty.note, large.note, b"\x07" * 32), zoo_key.public)
    with pytest.raises(VerificationFailed, match="no fork"):
        prefix_evidence(empty, large, merkle.EMPTY_ROOT, [])
    bad_empty = sign_checkpoint(Checkpoint(origin_for(zoo_key.public), 0, b"\x07" * 32), zoo_key)
    with pytest.raises(VerificationFailed, match="empty tree"):
        verify_head(bad_empty, [zoo_key.public])


@pytest.mark.parametrize(("data", "error"), [
    (b"not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ({"type": "something-else"}, "type"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "guess", "origin": "o", "heads": ["a", "b"]}, "kind"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "same-size", "origin": "", "heads": ["a", "b"]}, "origin"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "same-size", "origin": "o", "heads": ["a"]}, "two signed heads"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "same-size", "origin": "o", "heads": ["a", 7]}, "signed note"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "same-size", "origin": "o",
      "heads": ["a", "x" * MAX_NOTE_BYTES + "x"]}, "larger than"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "same-size", "origin": "o", "heads": ["a", "b"], "proof": []},
     "no prefix root"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "prefix-mismatch", "origin": "o", "heads": ["a", "b"]},
     "prefix_root"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "prefix-mismatch", "origin": "o", "heads": ["a", "b"],
      "prefix_root": "%%%", "proof": []}, "base64"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "prefix-mismatch", "origin": "o", "heads": ["a", "b"],
      "prefix_root": b64encode(b"x" * 31), "proof": []}, "32 bytes"),
    ({"type": "openzoo.fork-evidence/v1", "kind": "prefix-mismatch", "origin": "o", "heads": ["a", "b"],
      "prefix_root": b64encode(b"x" * 32), "proof": [b64encode(b"x" * 32)] * (MAX_PROOF_HASHES + 1)}, "more than"),
    ("x" * (MAX_EVIDENCE_BYTES + 1), "larger than"),
])
def test_malformed_evidence(data: Any, error: str, zoo_key: SigningKey) -> None:
    with pytest.raises(InvalidRequest, match=error):
        verify_evidence(data, zoo_key.public)


def test_heads_are_checked_against_the_pinned_key_of_their_origin(zoo_key: SigningKey,
                                                                  reviewer_keys: dict[str, SigningKey]) -> None:
    tree = branch(3, 3, "x")
    alice, bob = reviewer_keys["alice"], reviewer_keys["bob"]
    assert verify_head(signed(zoo_key, tree, 3).note, [alice.public, zoo_key.public]).key == zoo_key.public
    impostor = sign_checkpoint(Checkpoint(origin_for(alice.public), 3, tree.root()), bob)  # bob speaks for alice
    with pytest.raises(VerificationFailed, match="not signed by its pinned key 'alice'"):
        verify_head(impostor, [alice.public, bob.public])
    with pytest.raises(UnknownLog, match="no pinned key"):
        verify_head(signed(zoo_key, tree, 3).note, [alice.public])
    foreign = sign_checkpoint(Checkpoint("example.com/log", 3, tree.root()), zoo_key)
    with pytest.raises(UnknownLog):
        verify_head(foreign, [zoo_key.public])
    for junk in ("", "hello\n", 42, "x" * (MAX_NOTE_BYTES + 1)):
        with pytest.raises(InvalidRequest):
            verify_head(junk, [zoo_key.public])
