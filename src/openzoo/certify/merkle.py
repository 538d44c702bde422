"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs, written from the RFC.

Why our own: the log must be verifiable by anyone with nothing but SHA-256, the proof layout must be
the RFC's audit paths (so other CT/checkpoint tooling can check them), and pymerkle is GPL-3.0 with its
own proof format.

Definitions (RFC 9162 §2.1.1)::

    MTH({})     = SHA-256()
    MTH({d0})   = SHA-256(0x00 || d0)                         leaf hash
    MTH(D[n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) k = largest power of two < n

Proof *generation* here runs the RFC's recursive PATH / SUBPROOF definitions over index ranges instead
of lists, reading hashes of complete, aligned subtrees from a :class:`NodeStore`. Every range the
recursion visits starts at a multiple of its left half's size, so its left half is always a stored
complete subtree and only the right edge needs folding: a proof costs O(log n) stored reads (O(log² n)
in the worst case for the right edge), never O(n). Proof *verification* is RFC 9162 §2.1.3.2 and
§2.1.4.2 verbatim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from openzoo.errors import InvalidRequest

__all__ = [
    "EMPTY_ROOT",
    "MemoryNodeStore",
    "MerkleTree",
    "NodeStore",
    "append_to_frontier",
    "consistency_proof",
    "consistency_roots",
    "frontier_for",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_frontier",
    "root_hash",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || entry). The prefix keeps leaves and nodes apart."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeStore(Protocol):
    """Where complete subtree hashes live.

    ``node(level, index)`` is the hash of the complete subtree covering leaves
    ``[index * 2**level, (index + 1) * 2**level)``; level 0 are the leaf hashes. Those hashes never change
    once written, which is what makes an append-only store of them a valid cache for every tree size.
    """

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree at (level, index); it must exist."""
        ...


def subtree_hash(store: NodeStore, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)``, where ``start`` is aligned as the RFC recursion guarantees.

    A range of power-of-two size is read directly; otherwise its left part (a complete subtree of size k)
    is read and the right edge is folded recursively.
    """
    size = end - start
    if size <= 0:
        if size == 0 and start == 0:
            return EMPTY_ROOT
        raise InvalidRequest(f"empty or negative subtree range [{start}, {end})")
    if size & (size - 1) == 0:
        level = size.bit_length() - 1
        if start % size:
            raise InvalidRequest(f"subtree [{start}, {end}) is not aligned")
        return store.node(level, start >> level)
    k = _largest_power_of_two_below(size)
    return node_hash(subtree_hash(store, start, start + k), subtree_hash(store, start + k, end))


def root_hash(store: NodeStore, size: int) -> bytes:
    """MTH(D[size]) from stored complete subtrees (SHA-256 of nothing for the empty tree)."""
    if size < 0:
        raise InvalidRequest("tree size must be >= 0")
    return EMPTY_ROOT if size == 0 else subtree_hash(store, 0, size)


def inclusion_proof(store: NodeStore, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf-side first.

    Raises :class:`InvalidRequest` unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise InvalidRequest(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []

    def walk(m: int, start: int, end: int) -> None:
        n = end - start
        if n == 1:
            return
        k = _largest_power_of_two_below(n)
        if m < k:
            walk(m, start, start + k)
            path.append(subtree_hash(store, start + k, end))
        else:
            walk(m - k, start + k, end)
            path.append(subtree_hash(store, start, start + k))

    walk(index, 0, size)
    return path


def consistency_proof(store: NodeStore, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1 for old size m and new size n.

    The proof is empty when m == n. Raises :class:`InvalidRequest` unless ``0 < m <= n``: an empty old
    tree is consistent with everything and needs no proof.
    """
    if not 0 < old_size <= new_size:
        raise InvalidRequest(f"no consistency proof from size {old_size} to size {new_size}")
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(store, start, end))
            return
        k = _largest_power_of_two_below(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(subtree_hash(store, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree_hash(store, start, start + k))

    subproof(old_size, 0, new_size, True)
    return proof


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` in the tree ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``old_root`` of ``old_size`` a prefix of ``new_root``?

    Size 0 is consistent with anything; equal sizes need an empty proof and equal roots.
    """
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == 0:
        return not proof
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    return consistency_roots(old_size, new_size, path) == (old_root, new_root)


def consistency_roots(old_size: int, new_size: int, path: Sequence[bytes]) -> tuple[bytes, bytes] | None:
    """The (old root, new root) that a consistency proof leads to (RFC 9162 §2.1.4.2, the loop), for
    ``0 < old_size < new_size``; ``path`` starts with the old root when ``old_size`` is a power of two.
    None when the proof is too long or too short for the sizes. A witness uses the old root to show which
    other tree a log signed (:mod:`.witness`)."""
    if not path or not 0 < old_size < new_size:
        return None
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return (fr, sr) if sn == 0 else None


def append_to_frontier(frontier: list[bytes | None], size: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
    """Add leaf number ``size`` to a frontier and return the new complete nodes (level >= 1) it forms.

    The frontier holds, for each set bit ``l`` of the tree size, the complete subtree of 2**l leaves at
    the right edge (``frontier[l]``); appending works like a binary counter carry. Callers that batch
    appends keep the frontier in memory so that no stored node has to be read back.
    """
    created: list[tuple[int, int, bytes]] = []
    current, level = leaf, 0
    while (size >> level) & 1:
        left = frontier[level]
        if left is None:  # pragma: no cover - a frontier consistent with size always has it
            raise InvalidRequest("frontier does not match the tree size")
        current = node_hash(left, current)
        frontier[level] = None
        level += 1
        created.append((level, size >> level, current))
    if level == len(frontier):
        frontier.append(None)
    frontier[level] = current
    return created


def root_from_frontier(frontier: Sequence[bytes | None]) -> bytes:
    """MTH of the tree the frontier describes: fold the right-edge subtrees from the smallest up."""
    root: bytes | None = None
    for node in frontier:
        if node is not None:
            root = node if root is None else node_hash(node, root)
    return EMPTY_ROOT if root is None else root


def frontier_for(store: NodeStore, size: int) -> list[bytes | None]:
    """Rebuild the frontier for a tree of ``size`` leaves from stored nodes (one read per set bit)."""
    frontier: list[bytes | None] = [None] * max(size.bit_length(), 1)
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if (size >> level) & 1:
            frontier[level] = store.node(level, start >> level)
            start += 1 << level
    return frontier


class MemoryNodeStore:
    """Complete subtree hashes in Python lists, one list per level (about 2n hashes for n leaves)."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree at (level, index); IndexError if it does not exist yet."""
        return self.levels[level][index]

    def add(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        """Store new complete nodes; they arrive in index order per level, so appending suffices."""
        for level, index, value in nodes:
            while len(self.levels) <= level:
                self.levels.append([])
            if index != len(self.levels[level]):
                raise InvalidRequest(f"node ({level}, {index}) added out of order")
            self.levels[level].append(value)


class MerkleTree:
    """An in-memory RFC 9162 tree: append entries, get roots and proofs for any past size.

    Useful on its own (tests, monitors, small logs) and as the model the SQLite log follows.
    """

    def __init__(self) -> None:
        self._store = MemoryNodeStore()
        self._frontier: list[bytes | None] = [None]

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._store.levels[0])

    def append(self, entry: bytes) -> int:
        """Append a raw entry (it is leaf-hashed here) and return its 0-based index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append an already computed leaf hash and return its index."""
        if len(leaf) != HASH_SIZE:
            raise InvalidRequest("a leaf hash is 32 bytes")
        index = self.size
        created = append_to_frontier(self._frontier, index, leaf)
        self._store.add([(0, index, leaf), *created])
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The stored leaf hash at ``index``."""
        return self._store.node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the current tree, or of the tree as it was at ``size`` leaves."""
        if size is None:
            return root_from_frontier(self._frontier)
        self._check_size(size)
        return root_hash(self._store, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path for leaf ``index`` in the tree of ``size`` leaves (default: current)."""
        size = self.size if size is None else size
        self._check_size(size)
        return inclusion_proof(self._store, index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof between the trees of ``old_size`` and ``new_size`` leaves."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        return consistency_proof(self._store, old_size, new_size)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise InvalidRequest(f"tree size {size} is outside 0..{self.size}")
