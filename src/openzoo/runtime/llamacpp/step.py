"""One engine step: build a ``llama_batch`` from every active slot, decode it once, sample.

The batch holds one token for every sequence that is generating and a prompt chunk for sequences still
reading their prompt (oldest admission first), within ``n_batch`` rows. While sequences are generating,
prompt chunks only fill the step's one micro-batch (:data:`UBATCH_ROWS` rows with the generating ones):
a step of several micro-batches would hold every running stream's next token back for all of them (a
256-token chunk beside 7 streams made each of their tokens wait for five micro-batches), whereas
filling the one micro-batch costs them little and reads the prompt almost as fast as alone.

The step's shape is kept inside what gives every row the same kernels (see "Batch invariance" in
``engine.py``): never a lone row in the last micro-batch of :data:`UBATCH_ROWS`. Where no prompt chunk
can give up a row to the next micro-batch, a spare row is added. A step of only generating rows is
filled up to a multiple of ggml's 4-row tiles, which costs nothing. Spare rows carry guesses of one
generating sequence's next tokens where they are worth it (``draft.py``), else throw-away tokens.
Prompt log-probabilities are computed before the decode, in the scoring context, for every request of
the step that asks for them.
"""

from __future__ import annotations

import time
from typing import Any

from openzoo.errors import ClientClosed, EngineError
from openzoo.runtime.llamacpp.draft import CONFIDENT, GUESSES, ROW_TILE, NgramPool, spare_rows
from openzoo.runtime.llamacpp.emission import Emitter
from openzoo.runtime.llamacpp.jobs import Job, Totals
from openzoo.runtime.llamacpp.native import L, batch_put
from openzoo.runtime.llamacpp.scoring import PromptScorer
from openzoo.runtime.llamacpp.slots import Slot, SlotTable

__all__ = ["DEFAULT_PREFILL_CHUNK", "FAST_UBATCH", "UBATCH_ROWS", "Stepper"]

#: Prompt tokens read per step per sequence.
DEFAULT_PREFILL_CHUNK = 256
#: Rows per llama.cpp micro-batch. Flash attention switches to a differently-rounding tiled kernel at
#: 64 query rows, so micro-batches stay below that (see ``engine.py``).
UBATCH_ROWS = 63
#: Rows per micro-batch when batch invariance is off (llama-server's default).
FAST_UBATCH = 512
#: Rows of a step of only generating rows once spare rows are added, at most: a multiple of 4 that
#: keeps the step in one micro-batch.
_SPARE_LIMIT = UBATCH_ROWS // 4 * 4
#: Prompt rows a step gives to prompt chunks while sequences generate, at least (however many generate).
MIN_JOIN_ROWS = 16


class Stepper:
    """Builds, decodes and samples one batch per call of :meth:`step` (decode thread only)."""

    def __init__(self, ctx: Any, mem: Any, batch: Any, *, n_ctx: int, n_batch: int, prefill_chunk: int,
                 scratch_seq: int, scratch_token: int, table: SlotTable, emitter: Emitter, scorer: PromptScorer,
                 totals: Totals, guesses: bool = True, pool: NgramPool | None = None,
                 invariant: bool = True) -> None:
        self._ctx = ctx
        self._invariant = invariant
        self._guesses = guesses
        self._pool = pool
        self._n_ctx = n_ctx
        self._mem = mem
        self._batch = batch
        self._n_batch = n_batch
        self._prefill_chunk = prefill_chunk
        self._scratch_seq = scratch_seq
        self._scratch_token = scratch_token
        self._table = table
        self._emitter = emitter
        self._scorer = scorer
        self._totals = totals

    def step(self) -> None:
        """Build one batch from every active slot, decode it, and sample."""
        emitter, slots = self._emitter, self._table.slots
        for slot in slots:
            job = slot.job
            if job is None:
                continue
            if job.handle.cancelled:
                emitter.release(slot, ClientClosed("the request was cancelled"), drop_kv=True)
        to_score: list[tuple[Slot | None, Job]] = [
            (s, s.job) for s in slots
            if s.job is not None and s.job.request.prompt_logprobs is not None and not s.job.scored]
        for job in self._table.scoring:
            if job.handle.cancelled:
                emitter.fail(job, ClientClosed("the request was cancelled"))
            else:
                to_score.append((None, job))
        self._table.scoring = []
        if to_score:
            self._score(to_score)
        decoding = [s for s in slots if s.job is not None and s.job.next_token is not None]
        budget = self._n_batch - len(decoding)
        if decoding:  # prompts join in the step's one micro-batch (see above)
            budget = min(budget, max(MIN_JOIN_ROWS, UBATCH_ROWS - len(decoding)))
        plan: list[list[Any]] = []  # [slot, rows]: prompt chunks, oldest admission first
        for slot in sorted(
            (s for s in slots if s.job is not None and s.job.next_token is None), key=lambda s: s.last_used
        ):
            job = slot.job
            assert job is not None
            rows = min(len(job.prompt) - job.n_done, self._prefill_chunk, budget)
            if rows <= 0:
                break
            plan.append([slot, rows])
            budget -= rows
        n = len(decoding) + sum(rows for _, rows in plan)
        if n == 0:
            return
        guess: tuple[Slot, list[int], int] | None = None
        scratch = 0  # throw-away rows
        # A lone row's spare needs no logits; spares that fill a tile need them, or the output matrix
        # (most of a step's work) would still run on a ragged number of rows.
        scratch_logits = not plan and 2 <= n <= _SPARE_LIMIT
        if scratch_logits:
            guess, scratch = self._spare(decoding)
        elif not self._invariant:
            if n == 1:  # a lone row is fine here; guesses beside it still pay when they are right
                guess = self._lone_guess(decoding)
        elif n % UBATCH_ROWS == 1:
            # A lone row in the last micro-batch would take different kernels.
            shrink = next((p for p in reversed(plan) if p[1] >= 2), None)
            if shrink is not None:
                shrink[1] -= 1
                n -= 1
            else:
                guess = self._lone_guess(decoding)
                scratch = 0 if guess is not None else 1
        batch = self._batch
        i = 0
        for slot in decoding:
            job = slot.job
            assert job is not None and job.next_token is not None
            batch_put(batch, i, job.next_token, len(slot.cache), slot.seq, True)
            i += 1
        for slot, rows in plan:
            job = slot.job
            assert job is not None
            start, last = job.n_done, len(job.prompt) - 1
            for j in range(start, start + rows):
                batch_put(batch, i, job.prompt[j], j, slot.seq, j == last)
                i += 1
        first_guess = i
        if guess is not None:
            for k, token in enumerate(guess[1]):
                batch_put(batch, i, token, guess[2] + k, guess[0].seq, True)
                i += 1
        for k in range(scratch):
            batch_put(batch, i, self._scratch_token, k, self._scratch_seq, scratch_logits)
            i += 1
        batch.n_tokens = i
        rc = L.llama_decode(self._ctx, batch)
        if scratch:
            L.llama_memory_seq_rm(self._mem, self._scratch_seq, -1, -1)
        if rc != 0:
            err = EngineError(f"llama_decode failed with status {rc}")
            for slot in decoding:
                emitter.release(slot, err, drop_kv=True)
            for slot, _ in plan:
                emitter.release(slot, err, drop_kv=True)
            return
        now = time.perf_counter_ns()
        guessed, guesses = (guess[0], guess[1]) if guess is not None else (None, [])
        for index, slot in enumerate(decoding):
            job = slot.job
            assert job is not None and job.next_token is not None
            slot.cache.append(job.next_token)
            job.next_token = None
            if slot is guessed:
                emitter.sample_guessed(slot, job, index, guesses, first_guess)
            else:
                emitter.sample(slot, job, index)
        index = len(decoding)
        for slot, rows in plan:
            job = slot.job
            assert job is not None
            start = job.n_done
            slot.cache.extend(job.prompt[start : start + rows])
            job.n_done += rows
            index += rows
            if job.n_done == len(job.prompt):
                job.first_token_ns = now
                if job.request.max_tokens == 0:
                    emitter.finish(slot, "length")
                else:
                    emitter.sample(slot, job, index - 1)

    def _propose(self, slot: Slot, limit: int) -> tuple[list[int], float, int]:
        """A generating sequence's guesses (at most ``limit``, none when guesses are off or its context is
        full), their success rate, and the position of the first: after the token it decodes this step."""
        job = slot.job
        assert job is not None
        position = len(job.prompt) + len(job.generated)
        guesses, score = job.propose(min(limit if self._guesses else 0, self._n_ctx - 1 - position), self._pool)
        return guesses, score, position

    def _lone_guess(self, decoding: list[Slot]) -> tuple[Slot, list[int], int] | None:
        """Guesses to go beside a lone generating row, if its guesses have mostly been right:
        (slot, guesses, first position)."""
        for slot in decoding:
            guesses, score, position = self._propose(slot, GUESSES)
            if guesses and score >= CONFIDENT:
                return slot, guesses, position
        return None

    def _spare(self, decoding: list[Slot]) -> tuple[tuple[Slot, list[int], int] | None, int]:
        """The spare rows of a step of only generating rows (see ``draft.py``): the guesses of the
        sequence whose guesses do best, and how many throw-away rows fill the step up to a whole number
        of tiles.

        Every sequence is asked for guesses, so that each one's success rate stays current.
        """
        best: tuple[Slot, list[int], int] | None = None
        best_score = -1.0
        for slot in decoding:
            guesses, score, position = self._propose(slot, ROW_TILE - 1)
            if guesses and score > best_score:
                best, best_score = (slot, guesses, position), score
        chain = len(best[1]) if best is not None else 0
        rows, taken = spare_rows(len(decoding), chain, _SPARE_LIMIT)
        scratch = rows - len(decoding) - taken
        if best is None or taken == 0:
            return None, scratch
        return (best[0], best[1][:taken], best[2]), scratch

    def _score(self, work: list[tuple[Slot | None, Job]]) -> None:
        """Compute ``prompt_logprobs`` in the scoring context, all of a step's requests together.

        A scoring-only request (no slot) ends here; one that also generates goes on to its prefill.
        """
        emitter = self._emitter
        before = self._scorer.reused_tokens
        try:
            results = self._scorer.score_many(
                [(job.prompt, job.request.prompt_logprobs or 0, job.request.prompt_logprobs_from) for _, job in work])
        except EngineError as exc:
            for slot, job in work:
                if slot is None:
                    emitter.fail(job, exc)
                else:
                    emitter.release(slot, exc, drop_kv=False)
            return
        self._totals.reused_tokens += self._scorer.reused_tokens - before
        now = time.perf_counter_ns()
        for (slot, job), lps in zip(work, results, strict=True):
            job.prompt_lps = lps
            job.scored = True
            if job.request.max_tokens == 0:
                job.first_token_ns = now
                emitter.complete(job, "length", slot)
