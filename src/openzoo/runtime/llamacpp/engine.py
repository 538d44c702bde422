"""The llama.cpp engine: one model, one decode thread, many requests at once (continuous batching).

How a step works
----------------
A single thread owns the llama.cpp context. Each step it

1. admits queued requests into idle *slots* (one llama.cpp sequence id each), choosing the idle
   slot whose cached tokens share the longest prefix with the prompt, so only the rest is evaluated;
2. builds one ``llama_batch`` holding one token for every sequence that is generating and a prompt
   chunk (``prefill_chunk`` tokens) for sequences that are still reading their prompt, so a long prompt
   joins without stalling the running streams;
3. runs ``llama_decode`` once, then samples one token per sequence that produced logits, with that
   request's own sampler chain, and turns it into events (UTF-8 assembly, stop strings, logprobs).

Requests join and leave between steps. Per step the Python work is O(active sequences); the only
O(vocabulary) work is numpy on logits rows, and only for requests that ask for log-probabilities.

KV cache
--------
The context is created with ``n_ctx * n_parallel`` cells, ``n_seq_max = n_parallel`` and a *unified* KV
buffer (``kv_unified``). llama.cpp 0.3.36 otherwise splits the cache into one stream per sequence and
then only batches sequences with consecutive ids together (``split_equal``), which turns a batch of
sequences 0, 2 and 5 into three passes over the weights. With one unified stream all sequences go
through in one pass, and a cached prefix can be shared between sequences with ``llama_memory_seq_cp``
without copying data. The per-sequence limit of ``n_ctx`` tokens is enforced here.

Batch invariance
----------------
Greedy output must not depend on what else is in the batch, so every row must be computed by the same
kernels whatever the batch looks like. ggml's CPU backend picks kernels by batch shape in four places,
and each is pinned here (all measured with the default model):

* K-quant matrix products switch to a tiled kernel at 8+ rows: ``GGML_CPU_TILED_MM=0`` (``native.py``).
* "Extra" weight buffers repack weights for kernels that round differently for 1 and 4+ rows:
  ``use_extra_bufts=False``. This also keeps ggml's AMX kernels off; they fault on virtual machines
  that report AMX without enabling it.
* Flash attention (on: without it results differ with the batch too) uses a tiled f32 kernel from 64
  query rows per micro-batch and an f16 one below: micro-batches are capped at ``UBATCH_ROWS = 63``.
* A micro-batch of a single row with 512+ KV cells takes a split-KV kernel: the engine never sends a
  lone row; when a step would leave one, a prompt chunk is shortened by a token or a throw-away row
  (a scratch sequence, removed right after) is added.

Prompt log-probabilities are computed apart, in llama-cpp-python's own micro-batching, by
``scoring.py``.

Limits: flash attention reduces over KV cells in *cell* order, so results are bit-identical while each
sequence's cells lie in position order in the unified buffer. From a cold cache that holds: a request
alone and the same request among 8 that join and leave a running batch give the same tokens and the
same log-probabilities, bit for bit (tested). llama.cpp allocates cells upward from a head that moves
back when cells are freed, though; cells freed while a sequence runs (another slot's prompt replacing
its old tail, a cancel) can be refilled by that sequence's next tokens, or a prefix shared with
``seq_cp`` can sit after a sequence's new cells. Then the last bits of its attention can differ, and
greedy output can change where two tokens are near-tied. Per-sequence KV streams (``kv_unified=False``)
would remove this, but llama.cpp 0.3.36 puts only consecutive sequence ids into one micro-batch, and
only as many tokens from each as the shortest has, which would split most steps into several.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo.errors import ClientClosed, EngineError, InvalidModelFile, InvalidRequest, OpenzooError, ServerBusy
from openzoo.events import Done, Event, Failure, TextChunk, TokenLogprob
from openzoo.runtime.base import EngineStats, GenerationRequest, LoadOptions
from openzoo.runtime.llamacpp.embed import Embedder
from openzoo.runtime.llamacpp.logprobs import LogprobReader
from openzoo.runtime.llamacpp.native import L, batch_put, detokenize, ensure_backend, token_piece, tokenize
from openzoo.runtime.llamacpp.sampler import SamplerChain
from openzoo.runtime.llamacpp.scoring import PromptScorer
from openzoo.runtime.llamacpp.stops import StopMatcher, Utf8Assembler

__all__ = ["LlamaCppHandle", "LlamaCppModel"]

#: Prompt tokens read per step per sequence.
DEFAULT_PREFILL_CHUNK = 256
#: Rows per llama.cpp micro-batch. Flash attention switches to a differently-rounding tiled kernel at
#: 64 query rows, so micro-batches stay below that (see the module docstring).
UBATCH_ROWS = 63
#: Scoring-only requests taken into one step (scored together, several prompts per decode).
MAX_SCORING = 32
#: Reuse another sequence's cached prefix through ``seq_cp`` only when it saves this many tokens.
MIN_SHARED_PREFIX = 16


class LlamaCppHandle:
    """A running generation: iterate for events; ``cancel()`` makes it leave at the next step."""

    def __init__(self, model: LlamaCppModel) -> None:
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._model = model
        self._finished = False
        self.cancelled = False

    def __iter__(self) -> Iterator[Event]:
        while not self._finished:
            event = self._events.get()
            if isinstance(event, Done | Failure):
                self._finished = True
            yield event

    def cancel(self) -> None:
        """Ask the engine to drop this request; its stream then ends with a ClientClosed failure."""
        self.cancelled = True
        self._model._wake()

    def _put(self, event: Event) -> None:
        self._events.put(event)


@dataclass(eq=False, slots=True)
class _Job:
    """A request and everything the engine tracks about it while it runs."""

    request: GenerationRequest
    handle: LlamaCppHandle
    sampler: SamplerChain
    submitted_ns: int
    prompt: tuple[int, ...] = ()
    n_done: int = 0  # prompt tokens whose KV is in the cache
    next_token: int | None = None  # sampled, not yet decoded
    generated: list[int] = field(default_factory=list)
    utf8: Utf8Assembler = field(default_factory=Utf8Assembler)
    stops: StopMatcher | None = None
    pending_ids: list[int] = field(default_factory=list)
    pending_lps: list[TokenLogprob] = field(default_factory=list)
    prompt_lps: list[TokenLogprob | None] = field(default_factory=list)
    scored: bool = False
    prefill_start_ns: int = 0
    first_token_ns: int = 0


def _scoring_only(job: _Job) -> bool:
    """A request for prompt log-probabilities and nothing generated: it never uses the generation KV."""
    return job.request.max_tokens == 0 and job.request.prompt_logprobs is not None


@dataclass(eq=False, slots=True)
class _EmbedJob:
    """An ``embed()`` call waiting for the decode thread."""

    texts: Sequence[str]
    normalize: bool
    truncate: bool
    future: Future[tuple[list[list[float]], int]] = field(default_factory=Future)


@dataclass(eq=False, slots=True)
class _Slot:
    """One llama.cpp sequence id, the tokens its KV cells hold, and the job using it (if any)."""

    seq: int
    cache: list[int] = field(default_factory=list)
    job: _Job | None = None
    last_used: int = 0


class LlamaCppModel:
    """A GGUF model loaded in llama.cpp, serving requests concurrently (implements ``LoadedModel``).

    Create it through :meth:`openzoo.runtime.llamacpp.LlamaCppBackend.load`. ``prefill_chunk`` is the
    number of prompt tokens a sequence reads per step.
    """

    def __init__(self, path: Path, options: LoadOptions, *, prefill_chunk: int = DEFAULT_PREFILL_CHUNK) -> None:
        ensure_backend()
        if options.n_ctx <= 0 or options.n_parallel <= 0:
            raise InvalidRequest("n_ctx and n_parallel must be positive")
        self._options = options
        self._n_ctx = options.n_ctx
        self._n_par = options.n_parallel
        self._threads = options.n_threads if options.n_threads > 0 else (os.cpu_count() or 1)
        self._prefill_chunk = max(1, prefill_chunk)

        mp = L.llama_model_default_params()
        mp.use_extra_bufts = os.environ.get("OPENZOO_LLAMA_EXTRA_BUFTS") == "1"
        model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not model:
            raise InvalidModelFile(f"llama.cpp could not load {path}")
        self._model: Any = model
        self._ctx: Any = None
        self._batch: Any = None
        try:
            self._vocab: Any = L.llama_model_get_vocab(model)
            self._n_vocab = int(L.llama_vocab_n_tokens(self._vocab))
            self._n_batch = max(512, self._prefill_chunk + self._n_par)
            cp = L.llama_context_default_params()
            # One more sequence (the scratch row's) and a few cells for it.
            cp.n_ctx = self._n_ctx * self._n_par + 256
            cp.n_batch = self._n_batch + 1
            cp.n_ubatch = UBATCH_ROWS
            cp.n_seq_max = self._n_par + 1
            cp.n_threads = self._threads
            cp.n_threads_batch = self._threads
            cp.kv_unified = True
            cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
            cp.no_perf = True
            ctx = L.llama_init_from_model(model, cp)
            if not ctx:
                raise EngineError(f"llama.cpp could not create a context of {cp.n_ctx} tokens for {path}")
            self._ctx = ctx
            self._apply_adapters(options.adapters)
            self._mem: Any = L.llama_get_memory(ctx)
            self._batch = L.llama_batch_init(self._n_batch + 1, 0, 1)
        except BaseException:
            self._free_native()
            raise
        self._n_swa = int(L.llama_model_n_swa(model))
        self._pieces: dict[int, bytes] = {}
        self._raw_pieces: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}
        self._eos_ids: frozenset[int] | None = None
        self._logprobs = LogprobReader(ctx, self._n_vocab, self.token_bytes)
        self._embedder = Embedder(model, self._vocab, self._n_ctx, self._threads)
        self._scorer = PromptScorer(model, self._n_ctx, self._threads, self._n_vocab, self.token_bytes,
                                    n_swa=self._n_swa, lora=self._lora)
        self._scratch_seq = self._n_par
        self._scratch_token = max(0, int(L.llama_vocab_bos(self._vocab)))
        self._memory = int(L.llama_model_size(model)) + self._kv_bytes()

        self._slots = [_Slot(seq=i) for i in range(self._n_par)]
        self._pending: deque[_Job] = deque()
        self._scoring: list[_Job] = []  # scoring-only jobs for the next step (they need no slot)
        self._embed_jobs: deque[_EmbedJob] = deque()
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._closing = False
        self._closed = False
        self._forget_idle = False
        self._clock = 0
        self._requests_total = 0
        self._prompt_tokens_total = 0
        self._completion_tokens_total = 0
        self._reused_tokens_total = 0
        self._thread = threading.Thread(target=self._run, name=f"llama.cpp:{path.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ LoadedModel properties

    @property
    def n_ctx(self) -> int:
        """Context length available to one sequence."""
        return self._n_ctx

    @property
    def n_ctx_train(self) -> int:
        return int(L.llama_model_n_ctx_train(self._model))

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def bos_token_id(self) -> int | None:
        bos = int(L.llama_vocab_bos(self._vocab))
        return bos if bos >= 0 else None

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Every token llama.cpp treats as end of generation (computed once, by a vocabulary scan)."""
        if self._eos_ids is None:
            vocab = self._vocab
            self._eos_ids = frozenset(t for t in range(self._n_vocab) if L.llama_vocab_is_eog(vocab, t))
        return self._eos_ids

    @property
    def reused_prompt_tokens(self) -> int:
        """Prompt tokens taken from the KV cache instead of evaluated, since load (for metrics)."""
        return self._reused_tokens_total

    @property
    def memory_bytes(self) -> int:
        """Weights plus the KV cache at full size."""
        return self._memory

    # ------------------------------------------------------------------ vocabulary

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        return tokenize(self._vocab, text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Tokens to text, rendering special tokens, so that it inverts ``tokenize``."""
        return detokenize(self._vocab, tokens, special=True)

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token's piece, special tokens rendered as their text."""
        data = self._raw_pieces.get(token)
        if data is None:
            data = token_piece(self._vocab, token, special=True)
            self._raw_pieces[token] = data
        return data

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

    # ------------------------------------------------------------------ requests

    def submit(self, request: GenerationRequest) -> LlamaCppHandle:
        """Queue a generation; raises ServerBusy when ``max_queue`` requests are already waiting.

        Everything that can be checked before running is checked here, so a bad request fails with an
        exception instead of a stream: prompt length, token ids, the grammar.
        """
        prompt = tuple(request.prompt)
        if not prompt:
            raise InvalidRequest("the prompt is empty", param="prompt")
        if len(prompt) > self._n_ctx:
            raise InvalidRequest(
                f"the prompt has {len(prompt)} tokens, more than the context length {self._n_ctx}",
                hint="shorten the prompt or load the model with a larger num_ctx",
                param="prompt",
            )
        if min(prompt) < 0 or max(prompt) >= self._n_vocab:
            raise InvalidRequest("the prompt holds token ids outside the vocabulary", param="prompt")
        if request.top_logprobs < 0 or (request.prompt_logprobs is not None and request.prompt_logprobs < 0):
            raise InvalidRequest("top_logprobs and prompt_logprobs must not be negative")
        if request.prompt_logprobs_from < 1:
            raise InvalidRequest("prompt_logprobs_from must be at least 1 (the first token has no log-probability)")
        with self._lock:
            if self._closing:
                raise EngineError("the model is being unloaded")
            if len(self._pending) >= self._options.max_queue:
                raise ServerBusy()
        sampler = SamplerChain(self._vocab, self._n_vocab, request.sampling, request.grammar)
        handle = LlamaCppHandle(self)
        job = _Job(
            request=request,
            handle=handle,
            sampler=sampler,
            submitted_ns=time.perf_counter_ns(),
            prompt=prompt,
            stops=StopMatcher(request.stop) if request.stop else None,
        )
        with self._cv:
            if self._closing:
                sampler.free()
                raise EngineError("the model is being unloaded")
            if len(self._pending) >= self._options.max_queue:
                sampler.free()
                raise ServerBusy()
            self._pending.append(job)
            self._requests_total += 1
            self._cv.notify()
        return handle

    def embed(
        self, texts: Sequence[str], *, normalize: bool = True, truncate: bool = True
    ) -> tuple[list[list[float]], int]:
        """Mean-pooled embeddings, computed on the decode thread between generation steps.

        All llama.cpp compute of a model runs on its one decode thread: ggml's CPU backend keeps an
        OpenMP thread team per calling thread, and once a process holds more OpenMP threads than
        cores, libgomp stops spinning at barriers and every decode step pays for futex wake-ups.
        """
        if threading.current_thread() is self._thread:
            return self._embedder.embed(texts, normalize=normalize, truncate=truncate)
        job = _EmbedJob(texts=list(texts), normalize=normalize, truncate=truncate)
        with self._cv:
            if self._closing or self._closed:
                raise EngineError("the model is unloaded")
            self._embed_jobs.append(job)
            self._cv.notify()
        return job.future.result()

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                busy_slots=sum(1 for s in self._slots if s.job is not None),
                total_slots=self._n_par,
                queue_depth=len(self._pending),
                requests_total=self._requests_total,
                prompt_tokens_total=self._prompt_tokens_total,
                completion_tokens_total=self._completion_tokens_total,
            )

    def clear_cache(self) -> None:
        """Forget the cached prompt prefixes of idle slots (and the scorer's) and free their KV cells.

        For benchmarks and tests that must measure or exercise cold prompt evaluation. The cells are
        freed by the decode thread before it admits the next job; when no slot is busy the whole
        buffer is cleared, so the next sequences are laid out from its first cell, exactly as in a
        freshly loaded model (freeing them later, when a slot is reused, would leave holes that a
        running sequence's next tokens fill out of position order; see "Limits" above).
        """
        with self._lock:
            for slot in self._slots:
                if slot.job is None:
                    slot.cache = []
            self._forget_idle = True

    def _free_forgotten(self) -> None:
        """Free the KV cells of idle slots after :meth:`clear_cache` (decode thread, under the lock)."""
        if not self._forget_idle:
            return
        self._forget_idle = False
        self._scorer.forget()
        if all(slot.job is None for slot in self._slots):
            L.llama_memory_clear(self._mem, True)
            return
        for slot in self._slots:
            if slot.job is None and not slot.cache:
                L.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)

    def close(self) -> None:
        """Stop the decode thread, fail queued and running requests, free llama.cpp memory."""
        with self._cv:
            if self._closed or self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._cv.notify_all()
        if already:
            self._thread.join()
            return
        self._thread.join()
        err = EngineError("the model was unloaded before the request finished")
        for job in [*self._pending, *self._scoring]:
            self._fail(job, err)
        self._pending.clear()
        self._scoring.clear()
        for ejob in self._embed_jobs:
            ejob.future.set_exception(EngineError("the model was unloaded before the embedding ran"))
        self._embed_jobs.clear()
        for slot in self._slots:
            if slot.job is not None:
                self._fail(slot.job, err)
                slot.job = None
        self._embedder.close()
        self._scorer.close()
        self._free_native()
        self._closed = True

    def __enter__(self) -> LlamaCppModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ decode thread

    def _wake(self) -> None:
        with self._cv:
            self._cv.notify()

    def _run(self) -> None:
        """The decode loop: admit, step, repeat; sleeps while there is nothing to do."""
        while True:
            with self._cv:
                while (
                    not self._closing
                    and not self._pending
                    and not self._embed_jobs
                    and not any(s.job for s in self._slots)
                    and not self._scoring
                ):
                    self._cv.wait()
                if self._closing:
                    return
                self._drop_cancelled_pending()
                self._free_forgotten()
                self._admit()
                embeds = list(self._embed_jobs)
                self._embed_jobs.clear()
            for ejob in embeds:
                self._run_embed(ejob)
            try:
                self._step()
            except Exception as exc:  # a bug or a llama.cpp failure must not kill the thread
                self._fail_all(EngineError(f"engine step failed: {exc}"))

    def _run_embed(self, job: _EmbedJob) -> None:
        try:
            job.future.set_result(self._embedder.embed(job.texts, normalize=job.normalize, truncate=job.truncate))
        except BaseException as exc:  # handed to the caller, who re-raises it
            job.future.set_exception(exc)

    def _drop_cancelled_pending(self) -> None:
        if any(job.handle.cancelled for job in self._pending):
            keep: deque[_Job] = deque()
            for job in self._pending:
                if job.handle.cancelled:
                    self._fail(job, ClientClosed("the request was cancelled"))
                else:
                    keep.append(job)
            self._pending = keep

    def _admit(self) -> None:
        """Move queued jobs into idle slots, reusing the longest cached prefix (called under the lock).

        Scoring-only jobs need no slot (they never touch the generation KV): up to
        :data:`MAX_SCORING` of them are taken for the next step, where they are scored together.
        """
        waiting: deque[_Job] = deque()
        while self._pending:
            job = self._pending.popleft()
            if _scoring_only(job):
                if len(self._scoring) < MAX_SCORING:
                    job.prefill_start_ns = time.perf_counter_ns()
                    self._scoring.append(job)
                    continue
            else:
                idle = [s for s in self._slots if s.job is None]
                if idle:
                    slot, keep, source = self._choose_slot(job, idle)
                    self._start(job, slot, keep, source)
                    continue
            waiting.append(job)
        self._pending = waiting

    def _choose_slot(self, job: _Job, idle: list[_Slot]) -> tuple[_Slot, int, _Slot | None]:
        """Pick a slot and how many cached prompt tokens to keep (and from which sequence)."""
        prompt = job.prompt
        limit = len(prompt) - 1  # at least one prompt token is decoded, to get logits
        if limit <= 0:
            return min(idle, key=lambda s: (len(s.cache) > 0, s.last_used)), 0, None
        best, best_len = idle[0], -1
        for slot in idle:
            n = self._usable_prefix(slot, prompt, limit)
            if n > best_len or (n == best_len and slot.last_used < best.last_used):
                best, best_len = slot, n
        # Another sequence (idle or running) may hold a longer prefix: share its cells with seq_cp.
        source: _Slot | None = None
        source_len = best_len + MIN_SHARED_PREFIX - 1
        for slot in self._slots:
            if slot is best:
                continue
            n = self._usable_prefix(slot, prompt, limit)
            if n > source_len:
                source, source_len = slot, n
        if source is not None:
            return best, source_len, source
        return best, max(best_len, 0), None

    def _usable_prefix(self, slot: _Slot, prompt: tuple[int, ...], limit: int) -> int:
        """Length of the prefix of ``prompt`` whose KV ``slot`` holds and can still attend to."""
        cache = slot.cache
        n = 0
        top = min(len(cache), limit)
        while n < top and cache[n] == prompt[n]:
            n += 1
        if n and self._n_swa > 0:
            # Sliding-window layers drop cells older than the window; the first new token needs the
            # window before it, which may be gone if the slot ran far past the shared prefix.
            pos_min = int(L.llama_memory_seq_pos_min(self._mem, slot.seq))
            if pos_min > max(0, n - self._n_swa):
                return 0
        return n

    def _start(self, job: _Job, slot: _Slot, keep: int, source: _Slot | None) -> None:
        mem, seq = self._mem, slot.seq
        if source is not None:
            L.llama_memory_seq_rm(mem, seq, -1, -1)
            L.llama_memory_seq_cp(mem, source.seq, seq, 0, keep)
            slot.cache = list(job.prompt[:keep])
        elif not L.llama_memory_seq_rm(mem, seq, keep, -1):
            L.llama_memory_seq_rm(mem, seq, -1, -1)
            keep = 0
            slot.cache = []
        else:
            del slot.cache[keep:]
        self._reused_tokens_total += keep
        self._clock += 1
        slot.last_used = self._clock
        slot.job = job
        job.n_done = keep
        job.prefill_start_ns = time.perf_counter_ns()
        params = job.request.sampling
        if params.repeat_last_n != 0:
            hist = job.prompt if params.repeat_last_n < 0 else job.prompt[-params.repeat_last_n :]
            job.sampler.prime(hist)

    def _step(self) -> None:
        """Build one batch from every active slot, decode it, and sample."""
        for slot in self._slots:
            job = slot.job
            if job is None:
                continue
            if job.handle.cancelled:
                self._release(slot, ClientClosed("the request was cancelled"), drop_kv=True)
        to_score: list[tuple[_Slot | None, _Job]] = [
            (s, s.job) for s in self._slots
            if s.job is not None and s.job.request.prompt_logprobs is not None and not s.job.scored]
        for job in self._scoring:
            if job.handle.cancelled:
                self._fail(job, ClientClosed("the request was cancelled"))
            else:
                to_score.append((None, job))
        self._scoring = []
        if to_score:
            self._score(to_score)
        decoding = [s for s in self._slots if s.job is not None and s.job.next_token is not None]
        budget = self._n_batch - len(decoding)
        plan: list[list[Any]] = []  # [slot, rows]: prompt chunks, oldest admission first
        for slot in sorted(
            (s for s in self._slots if s.job is not None and s.job.next_token is None), key=lambda s: s.last_used
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
        scratch = False
        if n % UBATCH_ROWS == 1:
            # A lone row in the last micro-batch would take a different attention kernel.
            shrink = next((p for p in reversed(plan) if p[1] >= 2), None)
            if shrink is not None:
                shrink[1] -= 1
                n -= 1
            else:
                scratch = True
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
        if scratch:
            batch_put(batch, i, self._scratch_token, 0, self._scratch_seq, False)
            i += 1
        batch.n_tokens = i
        rc = L.llama_decode(self._ctx, batch)
        if scratch:
            L.llama_memory_seq_rm(self._mem, self._scratch_seq, -1, -1)
        if rc != 0:
            err = EngineError(f"llama_decode failed with status {rc}")
            for slot in decoding:
                self._release(slot, err, drop_kv=True)
            for slot, _ in plan:
                self._release(slot, err, drop_kv=True)
            return
        now = time.perf_counter_ns()
        for index, slot in enumerate(decoding):
            job = slot.job
            assert job is not None and job.next_token is not None
            slot.cache.append(job.next_token)
            job.next_token = None
            self._sample(slot, job, index)
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
                    self._finish(slot, "length")
                else:
                    self._sample(slot, job, index - 1)

    def _score(self, work: list[tuple[_Slot | None, _Job]]) -> None:
        """Compute ``prompt_logprobs`` in the scoring context, all of a step's requests together.

        A scoring-only request (no slot) ends here; one that also generates goes on to its prefill.
        """
        before = self._scorer.reused_tokens
        try:
            results = self._scorer.score_many(
                [(job.prompt, job.request.prompt_logprobs or 0, job.request.prompt_logprobs_from) for _, job in work])
        except EngineError as exc:
            for slot, job in work:
                if slot is None:
                    self._fail(job, exc)
                else:
                    self._release(slot, exc, drop_kv=False)
            return
        self._reused_tokens_total += self._scorer.reused_tokens - before
        now = time.perf_counter_ns()
        for (slot, job), lps in zip(work, results, strict=True):
            job.prompt_lps = lps
            job.scored = True
            if job.request.max_tokens == 0:
                job.first_token_ns = now
                self._complete(job, "length", slot)

    def _sample(self, slot: _Slot, job: _Job, index: int) -> None:
        req = job.request
        rows = self._logprobs.rows(index, 1) if req.logprobs else None
        token = job.sampler.sample(self._ctx, index)
        if self._is_eog(token):
            self._finish(slot, "stop")
            return
        job.generated.append(token)
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
                    self._finish(slot, "stop", flush=False)
                    return
                text = res.text
            if text:
                self._emit(job, text)
        if len(job.generated) == req.max_tokens or len(job.prompt) + len(job.generated) >= self._n_ctx:
            self._finish(slot, "length")
            return
        job.next_token = token

    def _emit(self, job: _Job, text: str) -> None:
        """Send text with the tokens (and logprobs) gathered since the last chunk."""
        if not text and not job.pending_ids:
            return
        job.handle._put(TextChunk(text=text, token_ids=tuple(job.pending_ids), logprobs=tuple(job.pending_lps)))
        job.pending_ids.clear()
        job.pending_lps.clear()

    def _finish(self, slot: _Slot, reason: str, *, flush: bool = True) -> None:
        """End a slot's job normally; its KV stays cached for prefix reuse by later requests."""
        job = slot.job
        assert job is not None
        self._complete(job, reason, slot, flush=flush)

    def _complete(self, job: _Job, reason: str, slot: _Slot | None, *, flush: bool = True) -> None:
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
        )
        with self._lock:
            self._prompt_tokens_total += len(job.prompt)
            self._completion_tokens_total += len(job.generated)
            if slot is not None:
                slot.job = None
        job.sampler.free()
        job.handle._put(done)

    def _release(self, slot: _Slot, error: OpenzooError, *, drop_kv: bool) -> None:
        """End a job with a failure, freeing its slot (and its KV cells when asked)."""
        job = slot.job
        assert job is not None
        if drop_kv:
            L.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
            slot.cache = []
        with self._lock:
            slot.job = None
        self._fail(job, error)

    def _fail(self, job: _Job, error: OpenzooError) -> None:
        job.sampler.free()
        job.handle._put(Failure(error))

    def _fail_all(self, error: OpenzooError) -> None:
        for slot in self._slots:
            if slot.job is not None:
                self._release(slot, error, drop_kv=True)
        for job in self._scoring:
            self._fail(job, error)
        self._scoring = []

    # ------------------------------------------------------------------ setup and teardown

    def _apply_adapters(self, adapters: tuple[tuple[Path, float], ...]) -> None:
        """Load LoRA adapters and attach them to the generation context (and, via ``_lora``, the scoring one)."""
        self._lora: tuple[Any, int, Any] | None = None
        if not adapters:
            return
        handles = []
        for path, _scale in adapters:
            if not Path(path).is_file():
                raise InvalidRequest(f"LoRA adapter {path} does not exist", param="adapters")
            adapter = L.llama_adapter_lora_init(self._model, str(path).encode())
            if not adapter:
                raise InvalidRequest(
                    f"LoRA adapter {path} could not be loaded: not a GGUF LoRA for this model's architecture",
                    param="adapters",
                )
            handles.append(adapter)
        arr = (L.llama_adapter_lora_p_ctypes * len(handles))(*handles)
        scales = (ctypes.c_float * len(handles))(*(float(s) for _, s in adapters))
        rc = L.llama_set_adapters_lora(self._ctx, arr, len(handles), scales)
        if rc != 0:
            raise InvalidRequest(f"LoRA adapters could not be applied (llama.cpp status {rc})", param="adapters")
        self._lora = (arr, len(handles), scales)

    def _kv_bytes(self) -> int:
        """Size of a full KV cache in f16 (an upper bound: sliding-window layers keep fewer cells)."""
        n_layer = int(L.llama_model_n_layer(self._model))
        n_head_kv = int(L.llama_model_n_head_kv(self._model))
        n_head = max(1, int(L.llama_model_n_head(self._model)))
        arch = self._meta("general.architecture") or ""
        k_len = int(self._meta(f"{arch}.attention.key_length") or 0) or int(L.llama_model_n_embd(self._model)) // n_head
        v_len = int(self._meta(f"{arch}.attention.value_length") or 0) or k_len
        return n_layer * self._n_ctx * self._n_par * n_head_kv * (k_len + v_len) * 2

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(256)
        n = L.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    def _free_native(self) -> None:
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            L.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            L.llama_model_free(self._model)  # also frees its LoRA adapters
            self._model = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed and not self._closing:
                self.close()
