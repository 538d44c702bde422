"""The prompt cache in RAM: KV states of finished sequences, kept beyond the slots' own caches.

A slot keeps the KV cells of its last sequence, so the next prompt that starts the same way (a chat's
next turn) reads only its new tokens, but only while no other prompt takes that slot. With more
conversations than slots, every turn used to find its history evicted and read it all again. Before a
slot's cells are overwritten, the sequence's KV state is copied out with llama.cpp's per-sequence
state calls (``llama_state_seq_get_data``) into a RAM budget, keyed by the tokens it holds; a later
prompt that shares a long enough prefix with an entry gets it copied back into whichever slot is free
(``llama_state_seq_set_data``), cut to the shared prefix, and reads only the rest. The least recently
used entries go first when the budget is full.

The saved bytes are the cells' K and V rows exactly as computed, so a restored prefix gives the same
tokens and log-probabilities as reading it again (the kernels are batch-invariant, see ``engine.py``):
tested, greedy and seeded, restored into another slot than the one it was saved from.

Entries live in anonymous ``mmap`` buffers rather than the C heap, so an evicted entry's memory goes back
to the system at once instead of staying in the allocator's free lists (a long-running server's RSS then
follows the budget). Everything here runs on the decode thread, under the engine's lock.
"""

from __future__ import annotations

import ctypes
import mmap
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.runtime.llamacpp.native import L

__all__ = ["CacheEntry", "CacheTotals", "PromptCache", "shared_prefix"]

#: Sequences shorter than this are not worth a copy (a BOS and a template header).
MIN_SAVED_TOKENS = 32


def shared_prefix(a: Sequence[int], b: Sequence[int], limit: int | None = None) -> int:
    """Length of the common prefix of ``a`` and ``b`` (at most ``limit``), by bisection over slice
    comparisons, which run in C: a chat history of thousands of tokens is compared in microseconds."""
    top = min(len(a), len(b))
    if limit is not None:
        top = min(top, limit)
    lo, hi = 0, top
    if list(a[:top]) == list(b[:top]):
        return top
    while hi - lo > 1:  # a[:lo] == b[:lo], a[:hi] != b[:hi]
        mid = (lo + hi) // 2
        if list(a[lo:mid]) == list(b[lo:mid]):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(eq=False, slots=True)
class CacheEntry:
    """One saved sequence: the tokens its KV cells hold, their state bytes, and its lowest position
    still held by sliding-window layers (cells before it were dropped, see ``slots.py``)."""

    tokens: tuple[int, ...]
    buffer: mmap.mmap
    size: int
    pos_min: int


@dataclass(slots=True)
class CacheTotals:
    """The cache's counters since load (read by ``stats()`` under the engine's lock)."""

    hits: int = 0  # prompts that got a saved prefix restored
    tokens: int = 0  # prompt tokens those restores saved from being read
    saves: int = 0
    evictions: int = 0
    bytes: int = 0  # held now
    entries: int = 0  # held now


class PromptCache:
    """Saved KV states of sequences, least recently used first, within ``budget`` bytes (0: off)."""

    def __init__(self, ctx: Any, mem: Any, budget: int, n_swa: int) -> None:
        self._ctx = ctx
        self._mem = mem
        self.budget = max(0, budget)
        self._n_swa = n_swa
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._next_id = 0
        self.totals = CacheTotals()

    def usable(self, entry: CacheEntry, prompt: Sequence[int], limit: int) -> int:
        """How many of ``prompt``'s first tokens ``entry`` can give (0 when sliding-window layers have
        dropped cells the first new token would need)."""
        n = shared_prefix(entry.tokens, prompt, limit)
        if n and self._n_swa > 0 and entry.pos_min > max(0, n - self._n_swa):
            return 0
        return n

    def best(self, prompt: Sequence[int], limit: int) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest usable prefix with ``prompt`` (up to ``limit`` tokens)."""
        best: CacheEntry | None = None
        best_len = 0
        for entry in self._entries.values():
            n = self.usable(entry, prompt, limit)
            if n > best_len:
                best, best_len = entry, n
        return best, best_len

    def save(self, seq: int, tokens: Sequence[int]) -> None:
        """Copy sequence ``seq``'s KV state (its cells hold ``tokens``) into the cache.

        Entries whose tokens are a prefix of ``tokens`` are replaced by it; nothing is copied when an
        entry already holds ``tokens`` (or more after them), or when the state exceeds the budget.
        """
        if not self.budget or len(tokens) < MIN_SAVED_TOKENS:
            return
        key = tuple(tokens)
        for eid, entry in list(self._entries.items()):
            if len(entry.tokens) >= len(key) and entry.tokens[: len(key)] == key:
                self._entries.move_to_end(eid)
                return
            if len(entry.tokens) < len(key) and key[: len(entry.tokens)] == entry.tokens:
                self._drop(eid)
        L.llama_memory_seq_rm(self._mem, seq, len(key), -1)  # nothing after the tokens it holds
        size = int(L.llama_state_seq_get_size(self._ctx, seq))
        if size <= 0 or size > self.budget:
            return
        while self._entries and self.totals.bytes + size > self.budget:
            self._drop(next(iter(self._entries)))
            self.totals.evictions += 1
        buffer = mmap.mmap(-1, size)
        written = int(L.llama_state_seq_get_data(self._ctx, _address(buffer, size), size, seq))
        if written <= 0:
            return
        pos_min = int(L.llama_memory_seq_pos_min(self._mem, seq))
        self._entries[self._next_id] = CacheEntry(key, buffer, size, max(0, pos_min))
        self._next_id += 1
        self.totals.saves += 1
        self.totals.bytes += size
        self.totals.entries = len(self._entries)

    def restore(self, entry: CacheEntry, seq: int, keep: int) -> bool:
        """Replace sequence ``seq``'s cells with ``entry``'s first ``keep`` tokens; False (and ``seq``
        emptied) if llama.cpp refused, e.g. for want of free cells."""
        for eid, held in self._entries.items():
            if held is entry:
                self._entries.move_to_end(eid)
                break
        read = int(L.llama_state_seq_set_data(self._ctx, _address(entry.buffer, entry.size), entry.size, seq))
        if read <= 0:
            L.llama_memory_seq_rm(self._mem, seq, -1, -1)
            return False
        L.llama_memory_seq_rm(self._mem, seq, keep, -1)
        self.totals.hits += 1
        self.totals.tokens += keep
        return True

    def clear(self) -> None:
        """Drop every entry (``clear_cache``: the next prompts are read cold)."""
        for eid in list(self._entries):
            self._drop(eid)

    def _drop(self, eid: int) -> None:
        entry = self._entries.pop(eid)
        self.totals.bytes -= entry.size
        self.totals.entries = len(self._entries)
        # Not closed here: a restore in progress may still hold it; the mapping goes with the last reference.


def _address(buffer: mmap.mmap, size: int) -> Any:
    """A ``uint8_t *`` into ``buffer`` for llama.cpp (valid while ``buffer`` is alive)."""
    return ctypes.cast((ctypes.c_uint8 * size).from_buffer(buffer), ctypes.POINTER(ctypes.c_uint8))
