"""Sampling and emission: a decoded row becomes a token, the token becomes text events, a job ends.

Runs on the decode thread after each ``llama_decode``. A sequence's token is drawn by its request's own
sampler chain (``sampler.py``); its bytes go through UTF-8 assembly and the stop-string matcher
(``stops.py``) before a :class:`~openzoo.events.TextChunk` is put on the request's handle, together with
the token ids (and log-probabilities) gathered since the last chunk. A job ends with ``Done`` (end of
generation, a stop string, ``max_tokens``, the end of the context) or ``Failure``; either way its
sampler is freed and its slot released.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from openzoo.errors import OpenzooError
from openzoo.events import Done, Failure, TextChunk
from openzoo.runtime.llamacpp.draft import NgramPool
from openzoo.runtime.llamacpp.jobs import Job, Totals
from openzoo.runtime.llamacpp.logprobs import LogprobReader
from openzoo.runtime.llamacpp.native import L, token_piece
from openzoo.runtime.llamacpp.slots import Slot

__all__ = ["Emitter"]

#: Prompt tokens of a finished request the shared n-gram pool learns (its tail: a chat resends the rest).
_POOL_PROMPT = 512


class Emitter:
    """Samples running sequences and turns their tokens into events (decode thread only)."""

    def __init__(self, ctx: Any, mem: Any, vocab: Any, n_ctx: int, logprobs: LogprobReader,
                 lock: threading.Lock, totals: Totals, pool: NgramPool | None = None) -> None:
        self._ctx = ctx
        self._pool = pool
        self._mem = mem
        self._vocab = vocab
        self._n_ctx = n_ctx
        self._logprobs = logprobs
        self._lock = lock
        self._totals = totals
        self._pieces: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}

    def _text_bytes(self, token: int) -> bytes:
        """Bytes a token adds to streamed text: control tokens add nothing, as in llama-server."""
        data = self._pieces.get(token)
        if data is None:
            data = token_piece(self._vocab, token, special=False)
            self._pieces[token] = data
        return data

    def _is_eog(self, token: int) -> bool:
        eog = self._eog_cache.get(token)
        if eog is None:
            eog = bool(L.llama_vocab_is_eog(self._vocab, token))
            self._eog_cache[token] = eog
        return eog

    def sample(self, slot: Slot, job: Job, index: int) -> None:
        """Draw ``job``'s next token from batch row ``index``, emit its text, end the job if it is done."""
        req = job.request
        rows = self._logprobs.rows(index, 1) if req.logprobs else None
        token = job.sampler.sample(self._ctx, index)
        if self._is_eog(token):
            self.finish(slot, "stop")
            return
        job.generated.append(token)
        if job.drafter is not None:
            job.drafter.add(token)
        job.pending_ids.append(token)
        if rows is not None:
            job.pending_lps.extend(self._logprobs.token_logprobs(rows, [token], req.top_logprobs))
        text = job.utf8.feed(self._text_bytes(token))
        if text:
            if job.stops is not None:
                res = job.stops.feed(text)
                if res.stop is not None:
                    if res.text:
                        self._emit(job, res.text)
                    self.finish(slot, "stop", flush=False)
                    return
                text = res.text
            if text:
                self._emit(job, text)
        if len(job.generated) == req.max_tokens or len(job.prompt) + len(job.generated) >= self._n_ctx:
            self.finish(slot, "length")
            return
        job.next_token = token

    def sample_guessed(self, slot: Slot, job: Job, index: int, guesses: list[int], first: int) -> None:
        """Sample row ``index``; while that gives the next of ``guesses`` (decoded in rows ``first``, ...,
        one position further each), sample the guess's row too. The KV cells of the guesses not taken
        are dropped (see ``draft.py``)."""
        self._totals.draft_rows += len(guesses)
        job.draft_rows += len(guesses)
        self.sample(slot, job, index)
        for row, guess in enumerate(guesses, first):
            if slot.job is not job or job.next_token != guess:
                break
            slot.cache.append(guess)
            job.next_token = None
            self._totals.draft_tokens += 1
            job.draft_tokens += 1
            self.sample(slot, job, row)
        L.llama_memory_seq_rm(self._mem, slot.seq, len(slot.cache), -1)

    def _emit(self, job: Job, text: str) -> None:
        """Send text with the tokens (and logprobs) gathered since the last chunk."""
        if not text and not job.pending_ids:
            return
        job.handle._put(TextChunk(text=text, token_ids=tuple(job.pending_ids), logprobs=tuple(job.pending_lps)))
        job.pending_ids.clear()
        job.pending_lps.clear()

    def finish(self, slot: Slot, reason: str, *, flush: bool = True) -> None:
        """End a slot's job normally; its KV stays cached for prefix reuse by later requests."""
        job = slot.job
        assert job is not None
        self.complete(job, reason, slot, flush=flush)

    def complete(self, job: Job, reason: str, slot: Slot | None, *, flush: bool = True) -> None:
        """Send a job's ``Done`` and free its slot, if it has one."""
        if flush:
            tail = job.utf8.flush()
            if job.stops is not None:
                res = job.stops.feed(tail) if tail else None
                if res is not None and res.stop is not None:
                    tail, reason = res.text, "stop"
                else:
                    tail = (res.text if res is not None else "") + job.stops.flush()
            if tail or job.pending_ids:
                self._emit(job, tail)
        end = time.perf_counter_ns()
        first = job.first_token_ns or end
        done = Done(
            reason=reason,
            prompt_tokens=len(job.prompt),
            completion_tokens=len(job.generated),
            total_ns=end - job.submitted_ns,
            prompt_eval_ns=first - job.prefill_start_ns,
            eval_ns=end - first,
            context=job.prompt + tuple(job.generated),
            prompt_logprobs=tuple(job.prompt_lps),
            prompt_token_ids=job.prompt if job.request.prompt_logprobs is not None else (),
            draft_tokens=job.draft_rows,
            draft_accepted=job.draft_tokens,
        )
        if self._pool is not None and job.generated:
            self._pool.feed(job.prompt[-_POOL_PROMPT:] + tuple(job.generated))
        with self._lock:
            self._totals.prompt_tokens += len(job.prompt)
            self._totals.completion_tokens += len(job.generated)
            if slot is not None:
                slot.job = None
        job.sampler.free()
        job.handle._put(done)

    def release(self, slot: Slot, error: OpenzooError, *, drop_kv: bool) -> None:
        """End a job with a failure, freeing its slot (and its KV cells when asked)."""
        job = slot.job
        assert job is not None
        if drop_kv:
            L.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
            slot.cache = []
        with self._lock:
            slot.job = None
        self.fail(job, error)

    @staticmethod
    def fail(job: Job, error: OpenzooError) -> None:
        job.sampler.free()
        job.handle._put(Failure(error))
