"""The engine's slots (one llama.cpp sequence each), its queue, and admission of queued jobs into slots.

A slot remembers the tokens its KV cells hold after its job ends, so a later prompt that starts the
same way (a chat's next turn, a shared system prompt) evaluates only the rest. Admission picks the idle
slot with the longest such prefix, unless it is only a few tokens (a BOS, a template's header): then an
empty slot, else the least recently used one, so that one prompt does not evict another's cache to save
a token. When another sequence (idle or running) holds a clearly longer prefix, its cells are shared
with ``llama_memory_seq_cp`` instead. See ``engine.py`` for why cell order matters.

Beyond the slots, the prompt cache (``prompt_cache.py``) keeps the KV states of sequences whose slot
was taken by another prompt: a slot's cells are saved there before they are overwritten, and a prompt
whose prefix an entry holds (clearly longer than any slot's) gets it restored into the free slot whose
own cache is worth least (empty, else least recently used).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openzoo.errors import ClientClosed, OpenzooError
from openzoo.runtime.llamacpp.jobs import Job, Totals, scoring_only
from openzoo.runtime.llamacpp.native import L
from openzoo.runtime.llamacpp.prompt_cache import CacheEntry, PromptCache, shared_prefix

__all__ = ["MAX_SCORING", "MIN_SHARED_PREFIX", "Slot", "SlotTable"]

#: Scoring-only requests taken into one step (scored together, several prompts per decode).
MAX_SCORING = 32
#: Reuse another sequence's cached prefix through ``seq_cp`` only when it saves this many tokens; and
#: reuse an idle slot's prefix at the cost of the rest of its cache only from this many tokens (or half
#: the prompt).
MIN_SHARED_PREFIX = 16


@dataclass(eq=False, slots=True)
class Slot:
    """One llama.cpp sequence id, the tokens its KV cells hold, and the job using it (if any)."""

    seq: int
    cache: list[int] = field(default_factory=list)
    job: Job | None = None
    last_used: int = 0


class SlotTable:
    """Slots, the queue of jobs waiting for one, and the scoring-only jobs of the next step.

    The queue is filled by ``submit`` and emptied by :meth:`admit`, both under the engine's lock; the
    rest belongs to the decode thread.
    """

    def __init__(self, n_parallel: int, mem: Any, n_swa: int, totals: Totals,
                 fail: Callable[[Job, OpenzooError], None], cache: PromptCache) -> None:
        self.slots = [Slot(seq=i) for i in range(n_parallel)]
        self.cache = cache
        self.pending: deque[Job] = deque()
        self.scoring: list[Job] = []  # scoring-only jobs for the next step (they need no slot)
        self._mem = mem
        self._n_swa = n_swa
        self._totals = totals
        self._fail = fail
        self._clock = 0

    def busy(self) -> int:
        return sum(1 for s in self.slots if s.job is not None)

    def has_work(self) -> bool:
        """Anything for the decode thread: queued, running or scoring jobs."""
        return bool(self.pending) or any(s.job for s in self.slots) or bool(self.scoring)

    def drop_cancelled_pending(self) -> None:
        """Fail queued jobs whose client went away before they got a slot (under the lock)."""
        if any(job.handle.cancelled for job in self.pending):
            keep: deque[Job] = deque()
            for job in self.pending:
                if job.handle.cancelled:
                    self._fail(job, ClientClosed("the request was cancelled"))
                else:
                    keep.append(job)
            self.pending = keep

    def admit(self) -> None:
        """Move queued jobs into idle slots, reusing the longest cached prefix (called under the lock).

        Scoring-only jobs need no slot (they never touch the generation KV): up to
        :data:`MAX_SCORING` of them are taken for the next step, where they are scored together.
        """
        waiting: deque[Job] = deque()
        while self.pending:
            job = self.pending.popleft()
            if scoring_only(job):
                if len(self.scoring) < MAX_SCORING:
                    job.prefill_start_ns = time.perf_counter_ns()
                    self.scoring.append(job)
                    continue
            else:
                idle = [s for s in self.slots if s.job is None]
                if idle:
                    slot, keep, source = self._choose_slot(job, idle)
                    self._start(job, slot, keep, source)
                    continue
            waiting.append(job)
        self.pending = waiting

    def forget_idle(self) -> None:
        """Forget the cached prefixes of idle slots and the prompt cache; the slots' cells are freed by
        :meth:`free_forgotten`."""
        self.cache.clear()
        for slot in self.slots:
            if slot.job is None:
                slot.cache = []

    def free_forgotten(self) -> None:
        """Free the KV cells of idle slots whose prefixes were forgotten (decode thread, under the lock).

        When no slot is busy the whole buffer is cleared, so the next sequences are laid out from its
        first cell, exactly as in a freshly loaded model.
        """
        if all(slot.job is None for slot in self.slots):
            L.llama_memory_clear(self._mem, True)
            for slot in self.slots:  # also those whose job ended after clear_cache() was asked
                slot.cache = []
            return
        for slot in self.slots:
            if slot.job is None and not slot.cache:
                L.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)

    def _choose_slot(self, job: Job, idle: list[Slot]) -> tuple[Slot, int, Slot | CacheEntry | None]:
        """Pick a slot and how many cached prompt tokens to keep, and where they come from: the slot
        itself (None), another sequence (shared with ``seq_cp``) or a prompt cache entry."""
        prompt = job.prompt
        limit = len(prompt) - 1  # at least one prompt token is decoded, to get logits
        if limit <= 0:
            return self._least_worth(idle), 0, None
        best, best_len = idle[0], -1
        for slot in idle:
            n = self._usable_prefix(slot, prompt, limit)
            if n > best_len or (n == best_len and slot.last_used < best.last_used):
                best, best_len = slot, n
        if best_len < MIN_SHARED_PREFIX and 2 * best_len < len(prompt):
            # A few shared tokens (BOS, a chat template's header) are not worth another prompt's cache:
            # take an empty slot, else the least recently used one, as llama-server does.
            best = self._least_worth(idle)
            best_len = self._usable_prefix(best, prompt, limit)
        # Another sequence (idle or running) may hold a longer prefix: share its cells with seq_cp.
        source: Slot | CacheEntry | None = None
        source_len = best_len + MIN_SHARED_PREFIX - 1
        for slot in self.slots:
            if slot is best:
                continue
            n = self._usable_prefix(slot, prompt, limit)
            if n > source_len:
                source, source_len = slot, n
        # Or the prompt cache, restored into the idle slot whose own cache is worth least.
        entry, entry_len = self.cache.best(prompt, limit)
        if entry is not None and entry_len > source_len:
            return self._least_worth(idle), entry_len, entry
        if source is not None:
            return best, source_len, source
        return best, max(best_len, 0), None

    @staticmethod
    def _least_worth(idle: list[Slot]) -> Slot:
        """An empty idle slot, else the least recently used one."""
        return min(idle, key=lambda s: (len(s.cache) > 0, s.last_used))

    def _usable_prefix(self, slot: Slot, prompt: tuple[int, ...], limit: int) -> int:
        """Length of the prefix of ``prompt`` whose KV ``slot`` holds and can still attend to."""
        n = shared_prefix(slot.cache, prompt, limit)
        if n and self._n_swa > 0:
            # Sliding-window layers drop cells older than the window; the first new token needs the
            # window before it, which may be gone if the slot ran far past the shared prefix.
            pos_min = int(L.llama_memory_seq_pos_min(self._mem, slot.seq))
            if pos_min > max(0, n - self._n_swa):
                return 0
        return n

    def _start(self, job: Job, slot: Slot, keep: int, source: Slot | CacheEntry | None) -> None:
        mem, seq = self._mem, slot.seq
        own = keep if source is None else 0  # of the slot's own cached tokens, those kept
        if len(slot.cache) - own >= MIN_SHARED_PREFIX:
            self.cache.save(seq, slot.cache)  # about to be overwritten: keep it in RAM
        if isinstance(source, CacheEntry):
            if self.cache.restore(source, seq, keep):
                slot.cache = list(source.tokens[:keep])
            else:
                keep = 0
                slot.cache = []
        elif source is not None:
            L.llama_memory_seq_rm(mem, seq, -1, -1)
            L.llama_memory_seq_cp(mem, source.seq, seq, 0, keep)
            slot.cache = list(job.prompt[:keep])
        elif not L.llama_memory_seq_rm(mem, seq, keep, -1):
            L.llama_memory_seq_rm(mem, seq, -1, -1)
            keep = 0
            slot.cache = []
        else:
            del slot.cache[keep:]
        self._totals.reused_tokens += keep
        self._clock += 1
        slot.last_used = self._clock
        slot.job = job
        job.n_done = keep
        job.prefill_start_ns = time.perf_counter_ns()
        params = job.request.sampling
        if params.repeat_last_n != 0:
            hist = job.prompt if params.repeat_last_n < 0 else job.prompt[-params.repeat_last_n :]
            job.sampler.prime(hist)
