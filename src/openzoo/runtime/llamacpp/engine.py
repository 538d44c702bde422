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

Where the code is: this module holds the model's public side (``submit``, ``embed``, ``stats``,
``close``), its setup and the decode thread's loop; ``slots.py`` the slots, the queue and admission
(step 1); ``step.py`` the batch building and the decode (step 2); ``emission.py`` sampling and the
events (step 3); ``jobs.py`` the request records they share; ``draft.py`` the guesses of a lone
sequence's next token.

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
kernels whatever the batch looks like. ggml's CPU backend picks kernels by batch shape in these places,
and each is pinned here (all measured with the default model):

* K-quant matrix products switch to a tiled kernel at 8+ rows: ``GGML_CPU_TILED_MM=0`` (``native.py``).
* "Extra" weight buffers repack weights for kernels that round differently for 1 and 4+ rows:
  ``use_extra_bufts=False``. This also keeps ggml's AMX kernels off; they fault on virtual machines
  that report AMX without enabling it.
* Flash attention (on: without it results differ with the batch too) uses a tiled f32 kernel from 64
  query rows per micro-batch and an f16 one below: micro-batches are capped at ``UBATCH_ROWS = 63``.
* A micro-batch of a single row takes other kernels: flash attention splits the KV cells between
  threads from 512 cells, and llamafile's matrix products (Q5_0, Q8_0...) start at 2 rows, below which
  ggml's own dot products run. The engine never sends a lone row; when a step would leave one, a
  prompt chunk is shortened by a token, or spare rows are added: guesses of a generating sequence's
  next tokens at the following positions when its guesses have mostly been right (``draft.py``: right
  guesses yield several tokens in the step), else a throw-away row (a scratch sequence, removed right
  after). A step of only generating rows is also filled up to a multiple of 4 rows, for speed
  (``draft.py``); spare rows never change the other rows' results.

With ``LoadOptions.batch_invariant=False`` (``OPENZOO_BATCH_INVARIANT=0``) the engine takes
llama-server's choices instead: 512-row micro-batches and the tiled K-quant kernel for prompts, lone
rows where a step has one, and sliding-window layers' caches at window size (``swa_full`` off: a
sequence's old cells are reused, so far less KV memory, but not in position order). Output then depends
on the batch around it, as on other servers; what each choice gains is measured in
``docs/performance.md``.

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
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openzoo.errors import EngineError, InvalidModelFile, InvalidRequest, OpenzooError, ServerBusy
from openzoo.runtime.base import EngineStats, GenerationRequest, LoadOptions
from openzoo.runtime.llamacpp.draft import NgramPool
from openzoo.runtime.llamacpp.embed import Embedder
from openzoo.runtime.llamacpp.emission import Emitter
from openzoo.runtime.llamacpp.jobs import EmbedJob, Job, LlamaCppHandle, Totals
from openzoo.runtime.llamacpp.logprobs import LogprobReader
from openzoo.runtime.llamacpp.native import (
    L,
    detokenize,
    ensure_backend,
    free_native,
    load_model,
    token_piece,
    tokenize,
)
from openzoo.runtime.llamacpp.prompt_cache import PromptCache
from openzoo.runtime.llamacpp.sampler import SamplerChain
from openzoo.runtime.llamacpp.scoring import PromptScorer
from openzoo.runtime.llamacpp.slots import SlotTable
from openzoo.runtime.llamacpp.step import DEFAULT_PREFILL_CHUNK, FAST_UBATCH, UBATCH_ROWS, Stepper
from openzoo.runtime.llamacpp.stops import StopMatcher
from openzoo.runtime.sizing import auto_prompt_cache_bytes, auto_slots, available_memory

__all__ = ["LlamaCppModel"]


class LlamaCppModel:
    """A GGUF model loaded in llama.cpp, serving requests concurrently (implements ``LoadedModel``).

    Create it through :meth:`openzoo.runtime.llamacpp.LlamaCppBackend.load`. ``prefill_chunk`` is the
    number of prompt tokens a sequence reads per step.
    """

    def __init__(self, path: Path, options: LoadOptions, *, prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
                 extra_bufts: bool = False) -> None:
        if not ensure_backend(pin_kernels=options.batch_invariant) and options.batch_invariant:
            raise EngineError("this process set llama.cpp's kernels up for speed (OPENZOO_BATCH_INVARIANT=0, or "
                              "GGML_CPU_TILED_MM set), so it cannot load a batch-invariant model: start another "
                              "process, or set OPENZOO_BATCH_INVARIANT=0")
        self._invariant = options.batch_invariant
        if options.n_ctx <= 0 or options.n_parallel < 0:
            raise InvalidRequest("n_ctx must be positive and n_parallel not negative (0: auto)")
        self._options = options
        self._n_ctx = options.n_ctx
        self._threads = options.n_threads if options.n_threads > 0 else (os.cpu_count() or 1)
        self._prefill_chunk = max(1, prefill_chunk)

        model = load_model(path, extra_bufts=extra_bufts)
        if model is None:
            raise InvalidModelFile(f"llama.cpp could not load {path}")
        self._model: Any = model
        self._ctx: Any = None
        self._batch: Any = None
        try:
            available = available_memory()
            self._n_par = options.n_parallel or auto_slots(
                self._kv_bytes_per_token() * self._n_ctx, int(L.llama_model_size(model)), available)
            cache_budget = (auto_prompt_cache_bytes(available) if options.prompt_cache_bytes < 0
                            else options.prompt_cache_bytes)
            self._vocab: Any = L.llama_model_get_vocab(model)
            self._n_vocab = int(L.llama_vocab_n_tokens(self._vocab))
            self._n_batch = max(512, self._prefill_chunk + self._n_par)
            cp = L.llama_context_default_params()
            # One more sequence (the scratch row's) and a few cells for it.
            cp.n_ctx = self._n_ctx * self._n_par + 256
            cp.n_batch = self._n_batch + 1
            cp.n_ubatch = UBATCH_ROWS if self._invariant else FAST_UBATCH
            cp.swa_full = self._invariant
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
        n_swa = int(L.llama_model_n_swa(model))
        self._raw_pieces: dict[int, bytes] = {}
        self._eos_ids: frozenset[int] | None = None
        self._embedder = Embedder(model, self._vocab, self._n_ctx, self._threads)
        self._scorer = PromptScorer(model, self._n_ctx, self._threads, self._n_vocab, self.token_bytes,
                                    n_swa=n_swa, lora=self._lora)
        self._memory = int(L.llama_model_size(model)) + self._kv_bytes()

        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._totals = Totals()
        logprobs = LogprobReader(ctx, self._n_vocab, self.token_bytes)
        pool = NgramPool() if options.guess_tokens else None
        self._emitter = Emitter(ctx, self._mem, self._vocab, self._n_ctx, logprobs, self._lock, self._totals, pool)
        self._prompt_cache = PromptCache(ctx, self._mem, cache_budget, n_swa)
        self._table = SlotTable(self._n_par, self._mem, n_swa, self._totals, self._emitter.fail, self._prompt_cache)
        self._stepper = Stepper(ctx, self._mem, self._batch, n_ctx=self._n_ctx, n_batch=self._n_batch,
                                prefill_chunk=self._prefill_chunk,
                                scratch_seq=self._n_par, scratch_token=max(0, int(L.llama_vocab_bos(self._vocab))),
                                table=self._table, emitter=self._emitter, scorer=self._scorer, totals=self._totals,
                                guesses=options.guess_tokens, pool=pool, invariant=self._invariant)
        self._embed_jobs: deque[EmbedJob] = deque()
        self._closing = False
        self._closed = False
        self._forget_idle = False
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
        return self._totals.reused_tokens

    @property
    def memory_bytes(self) -> int:
        """Weights plus the KV cache at full size, plus what the prompt cache holds in RAM."""
        return self._memory + self._prompt_cache.totals.bytes

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
            if len(self._table.pending) >= self._options.max_queue:
                raise ServerBusy()
        sampler = SamplerChain(self._vocab, self._n_vocab, request.sampling, request.grammar)
        handle = LlamaCppHandle(self._wake)
        job = Job(
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
            if len(self._table.pending) >= self._options.max_queue:
                sampler.free()
                raise ServerBusy()
            self._table.pending.append(job)
            self._totals.requests += 1
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
        job = EmbedJob(texts=list(texts), normalize=normalize, truncate=truncate)
        with self._cv:
            if self._closing or self._closed:
                raise EngineError("the model is unloaded")
            self._embed_jobs.append(job)
            self._cv.notify()
        return job.future.result()

    def stats(self) -> EngineStats:
        with self._lock:
            cache = self._prompt_cache.totals
            return EngineStats(
                busy_slots=self._table.busy(),
                total_slots=self._n_par,
                batch_invariant=self._invariant,
                queue_depth=len(self._table.pending),
                requests_total=self._totals.requests,
                prompt_tokens_total=self._totals.prompt_tokens,
                completion_tokens_total=self._totals.completion_tokens,
                draft_rows_total=self._totals.draft_rows,
                draft_tokens_total=self._totals.draft_tokens,
                prompt_cache_hits_total=cache.hits,
                prompt_cache_tokens_total=cache.tokens,
                prompt_cache_evictions_total=cache.evictions,
                prompt_cache_bytes=cache.bytes,
                prompt_cache_entries=cache.entries,
                prompt_cache_budget_bytes=self._prompt_cache.budget,
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
            self._table.forget_idle()
            self._forget_idle = True

    def _free_forgotten(self) -> None:
        """Free the KV cells of idle slots after :meth:`clear_cache` (decode thread, under the lock)."""
        if not self._forget_idle:
            return
        self._forget_idle = False
        self._scorer.forget()
        self._table.free_forgotten()

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
        table = self._table
        for job in [*table.pending, *table.scoring]:
            Emitter.fail(job, err)
        table.pending.clear()
        table.scoring.clear()
        for ejob in self._embed_jobs:
            ejob.future.set_exception(EngineError("the model was unloaded before the embedding ran"))
        self._embed_jobs.clear()
        for slot in table.slots:
            if slot.job is not None:
                Emitter.fail(slot.job, err)
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
                while not self._closing and not self._embed_jobs and not self._table.has_work():
                    self._cv.wait()
                if self._closing:
                    return
                self._table.drop_cancelled_pending()
                self._free_forgotten()
                self._table.admit()
                embeds = list(self._embed_jobs)
                self._embed_jobs.clear()
            for ejob in embeds:
                self._run_embed(ejob)
            try:
                self._stepper.step()
            except Exception as exc:  # a bug or a llama.cpp failure must not kill the thread
                self._fail_all(EngineError(f"engine step failed: {exc}"))

    def _run_embed(self, job: EmbedJob) -> None:
        try:
            job.future.set_result(self._embedder.embed(job.texts, normalize=job.normalize, truncate=job.truncate))
        except BaseException as exc:  # handed to the caller, who re-raises it
            job.future.set_exception(exc)

    def _fail_all(self, error: OpenzooError) -> None:
        table = self._table
        for slot in table.slots:
            if slot.job is not None:
                self._emitter.release(slot, error, drop_kv=True)
        for job in table.scoring:
            Emitter.fail(job, error)
        table.scoring = []

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
        """Size of a full KV cache in f16, every slot's (sliding-window layers keep as many cells)."""
        return self._kv_bytes_per_token() * self._n_ctx * self._n_par

    def _kv_bytes_per_token(self) -> int:
        """KV bytes one token takes in f16, all layers together."""
        n_layer = int(L.llama_model_n_layer(self._model))
        n_head_kv = int(L.llama_model_n_head_kv(self._model))
        n_head = max(1, int(L.llama_model_n_head(self._model)))
        arch = self._meta("general.architecture") or ""
        k_len = int(self._meta(f"{arch}.attention.key_length") or 0) or int(L.llama_model_n_embd(self._model)) // n_head
        v_len = int(self._meta(f"{arch}.attention.value_length") or 0) or k_len
        return n_layer * n_head_kv * (k_len + v_len) * 2

    def _meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(256)
        n = L.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    def _free_native(self) -> None:
        free_native(self._batch, self._ctx, self._model)
        self._batch = self._ctx = self._model = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed and not self._closing:
                self.close()
