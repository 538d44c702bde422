"""RFC 9162 Merkle tree tests: the efficient range-based code against the RFC's list definitions."""

from __future__ import annotations

import hashlib

import pytest

from openzoo.certify import merkle
from openzoo.certify.merkle import MerkleTree, leaf_hash, node_hash, verify_consistency, verify_inclusion
from openzoo.errors import InvalidRequest


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 §2.1.1 defines it over entries."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = k_of(n)
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(d)
    if n == 1:
        return []
    k = k_of(n)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = k_of(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


ENTRIES = [i.to_bytes(2, "big") + b"entry" for i in range(64)]


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    t = MerkleTree()
    for e in ENTRIES:
        t.append(e)
    return t


def test_empty_and_single() -> None:
    t = MerkleTree()
    assert t.root() == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    t.append(b"")
    assert t.root().hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_known_vectors_from_ct_reference() -> None:
    """The classic Certificate Transparency test inputs and roots (sizes 1..8)."""
    inputs = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    t = MerkleTree()
    for raw, want in zip(inputs, roots, strict=True):
        t.append(bytes.fromhex(raw))
        assert t.root().hex() == want


def test_roots_match_rfc_definition_for_all_sizes(tree: MerkleTree) -> None:
    for n in range(65):
        assert tree.root(n) == mth(ENTRIES[:n]), n


def test_incremental_root_matches(tree: MerkleTree) -> None:
    t = MerkleTree()
    for n, e in enumerate(ENTRIES, start=1):
        t.append(e)
        assert t.root() == tree.root(n)


def test_inclusion_proofs_brute_force(tree: MerkleTree) -> None:
    for n in range(1, 65):
        root = mth(ENTRIES[:n])
        for m in range(n):
            p = tree.inclusion_proof(m, n)
            assert p == path(m, ENTRIES[:n]), (m, n)
            assert verify_inclusion(m, n, leaf_hash(ENTRIES[m]), p, root)


def test_consistency_proofs_brute_force(tree: MerkleTree) -> None:
    for n in range(1, 65):
        new_root = mth(ENTRIES[:n])
        for m in range(1, n + 1):
            p = tree.consistency_proof(m, n)
            assert p == subproof(m, ENTRIES[:n], True), (m, n)
            assert verify_consistency(m, n, mth(ENTRIES[:m]), new_root, p), (m, n)


def test_inclusion_rejects_tampering(tree: MerkleTree) -> None:
    n = 37
    root = tree.root(n)
    for m in range(n):
        p = tree.inclusion_proof(m, n)
        leaf = tree.leaf_hash(m)
        assert not verify_inclusion(m, n, leaf_hash(b"other"), p, root)
        assert not verify_inclusion((m + 1) % n, n, leaf, p, root) or len(p) == 0
        if p:
            bad = [*p]
            bad[0] = bytes(32)
            assert not verify_inclusion(m, n, leaf, bad, root)
            assert not verify_inclusion(m, n, leaf, p[:-1], root)
            assert not verify_inclusion(m, n, leaf, [*p, bytes(32)], root)
    assert not verify_inclusion(n, n, tree.leaf_hash(0), [], root)


def test_consistency_rejects_tampering(tree: MerkleTree) -> None:
    for n in range(2, 40):
        for m in range(1, n):
            p = tree.consistency_proof(m, n)
            old, new = tree.root(m), tree.root(n)
            assert not verify_consistency(m, n, old, node_hash(new, new), p)
            assert not verify_consistency(m, n, node_hash(old, old), new, p)
            assert not verify_consistency(m, n, old, new, p[:-1])
            assert not verify_consistency(m, n, old, new, [])
            bad = [bytes(32), *p[1:]]
            assert not verify_consistency(m, n, old, new, bad)
    assert verify_consistency(0, 5, merkle.EMPTY_ROOT, tree.root(5), [])
    assert verify_consistency(5, 5, tree.root(5), tree.root(5), [])
    assert not verify_consistency(5, 5, tree.root(5), tree.root(6), [])
    assert not verify_consistency(6, 5, tree.root(6), tree.root(5), [])


def test_bad_arguments(tree: MerkleTree) -> None:
    with pytest.raises(InvalidRequest):
        tree.inclusion_proof(5, 5)
    with pytest.raises(InvalidRequest):
        tree.consistency_proof(0, 5)
    with pytest.raises(InvalidRequest):
        tree.root(65)
    with pytest.raises(InvalidRequest):
        MerkleTree().append_leaf_hash(b"short")


def test_frontier_rebuild_matches(tree: MerkleTree) -> None:
    store = tree._store
    for n in range(1, 65):
        assert merkle.root_from_frontier(merkle.frontier_for(store, n)) == tree.root(n)
