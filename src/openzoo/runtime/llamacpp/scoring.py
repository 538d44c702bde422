"""Prompt log-probabilities (``prompt_logprobs``) in a context of their own, evaluated the reference way.

Why a second context: ggml's CPU flash attention picks its kernel by the number of query rows in a
micro-batch. Under 64 rows it rounds Q and the V accumulator to f16; from 64 rows on it tiles the
work and accumulates in f32. The two differ by up to several units in a logit (measured on the
default model), so a prompt's log-probabilities depend on how it was cut into micro-batches.

Scoring (lm-eval's loglikelihood) must give the numbers llama-cpp-python's high-level
``Llama(logits_all=True)`` gives, and that evaluates a prompt in micro-batches of 512 tokens. The
generation context cannot: it uses micro-batches of at most 63 rows so that a request's tokens do not
depend on what else is in the batch (see ``engine.py``). So a prompt to score is evaluated here, alone
and in 512-token micro-batches, with logits for every position.

Consecutive prompts that share a prefix (the choices of one multiple-choice question, the two
sentences of a minimal pair) reuse it: the context keeps the last prompt's KV cells and its
log-probabilities, and a new prompt decodes only from where it differs, with its cells in the same
place as if it were read whole. That holds only within one micro-batch and below the model's sliding
window, where a position's cell does not depend on how the prompt was cut, so longer prompts are read
from the start. A cold read of 64 tokens or more takes flash attention's tiled kernel, a shorter one
the per-row kernel; a prompt reuses only a prefix computed by the same kernel, and a short tail
after a reused prefix is padded to 64 rows with throw-away tokens after the prompt (masked for
every real row, removed right after), so that it takes the kernel its cold read would. Either way the
numbers are the ones a cold read gives (tested bit for bit).

The context is created on first use. Its logits buffer grows to one row per prompt token of the
largest micro-batch seen (1 MiB per token for a 262k vocabulary), as ``Llama(logits_all=True)``'s does.
"""

from __future__ import annotations

from typing import Any

from openzoo.errors import EngineError
from openzoo.events import TokenLogprob
from openzoo.runtime.llamacpp.logprobs import LogprobReader, PieceFn
from openzoo.runtime.llamacpp.native import L

__all__ = ["SCORE_BATCH", "PromptScorer"]

#: Micro-batch of the scoring context: llama-cpp-python's default ``n_batch``.
SCORE_BATCH = 512
#: Query rows per micro-batch from which ggml's CPU flash attention takes its tiled kernel
#: (``GGML_FA_TILE_Q``); below it a per-row kernel that rounds differently.
FA_TILED_ROWS = 64
#: Logits rows normalised per numpy pass (each pass makes temporaries of this many rows).
_ROWS_PER_PASS = 32


class PromptScorer:
    """Scores prompts token by token; used only from the engine's decode thread."""

    def __init__(
        self,
        model: Any,
        n_ctx: int,
        n_threads: int,
        n_vocab: int,
        piece: PieceFn,
        *,
        n_swa: int = 0,
        lora: tuple[Any, int, Any] | None = None,
    ) -> None:
        self._model = model
        self._lora = lora  # (adapters, count, scales) as set on the generation context
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._n_vocab = n_vocab
        self._piece = piece
        self._ctx: Any = None
        self._batch: Any = None
        self._reader: LogprobReader | None = None
        # What the context's sequence 0 holds: the tokens in its KV cells and their log-probabilities.
        self._tokens: list[int] = []
        self._rows: list[TokenLogprob | None] = []
        self._top = 0
        self._tiled = False
        self.last_reused = 0  # prompt tokens the last score() took from the cache (for metrics)
        # Longest prompt that may reuse a prefix: one micro-batch, inside the sliding window, and room
        # after it for the padding rows.
        self._reuse_limit = min(SCORE_BATCH, n_swa if n_swa > 0 else SCORE_BATCH, n_ctx - FA_TILED_ROWS)

    def _ensure(self) -> LogprobReader:
        if self._reader is not None:
            return self._reader
        cp = L.llama_context_default_params()
        cp.n_ctx = self._n_ctx
        cp.n_batch = SCORE_BATCH
        cp.n_ubatch = SCORE_BATCH
        cp.n_seq_max = 1
        cp.n_threads = self._n_threads
        cp.n_threads_batch = self._n_threads
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cp.no_perf = True
        ctx = L.llama_init_from_model(self._model, cp)
        if not ctx:
            raise EngineError("could not create the prompt-scoring context")
        self._ctx = ctx
        if self._lora is not None and L.llama_set_adapters_lora(ctx, *self._lora) != 0:
            raise EngineError("could not apply the model's LoRA adapters to the prompt-scoring context")
        self._batch = L.llama_batch_init(SCORE_BATCH, 0, 1)
        self._reader = LogprobReader(ctx, self._n_vocab, self._piece)
        return self._reader

    def score(self, prompt: tuple[int, ...], top: int, *, start: int = 1) -> list[TokenLogprob | None]:
        """``log p(prompt[i] | prompt[:i])`` for every ``i >= start`` (``None`` before it).

        Only the rows that predict ``prompt[start:]`` ask llama.cpp for logits: the others skip the
        output projection (a 262k-vocabulary row each), which is most of the cost of a long context
        scored for a short continuation. A row's values do not depend on which other rows have
        logits, so the numbers are the same as with ``start=1``.
        """
        reader = self._ensure()
        ctx, batch = self._ctx, self._batch
        start = max(1, start)
        n = len(prompt)
        out: list[TokenLogprob | None] = [None] * n
        tiled = n >= FA_TILED_ROWS  # the kernel a cold read of this prompt takes (n <= SCORE_BATCH)
        keep = self._reusable(prompt, top, start, out, tiled)
        self.last_reused = keep
        L.llama_memory_seq_rm(L.llama_get_memory(ctx), 0, keep, -1)
        self._tokens, self._rows = list(prompt[:keep]), []  # no stale rows if this read fails
        for begin in range(keep, n, SCORE_BATCH):
            chunk = prompt[begin : begin + SCORE_BATCH]
            # Row j predicts the token at begin+j+1; rows before start-1, rows already known and the
            # prompt's last row predict nothing asked for.
            first = min(max(0, start - 1 - begin), len(chunk))
            last = min(len(chunk), n - 1 - begin)
            for j, token in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = begin + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = first <= j < last
            pad = FA_TILED_ROWS - len(chunk) if keep > 0 and tiled and len(chunk) < FA_TILED_ROWS else 0
            for j in range(len(chunk), len(chunk) + pad):
                batch.token[j] = prompt[-1]
                batch.pos[j] = begin + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = False
            batch.n_tokens = len(chunk) + pad
            rc = L.llama_decode(ctx, batch)
            if pad:
                L.llama_memory_seq_rm(L.llama_get_memory(ctx), 0, n, -1)
            if rc != 0:
                L.llama_memory_clear(L.llama_get_memory(ctx), True)
                self._tokens, self._rows = [], []
                raise EngineError(f"prompt scoring failed (llama_decode returned {rc})")
            self._tokens.extend(chunk)
            if last <= first:
                continue
            # Outputs are stored contiguously in batch order, so output row 0 is batch row ``first``.
            rows = reader.rows(first, last - first)
            for a in range(0, last - first, _ROWS_PER_PASS):  # bounded numpy temporaries
                b = min(a + _ROWS_PER_PASS, last - first)
                at = begin + first + 1 + a
                out[at : at + b - a] = reader.token_logprobs(rows[a:b], list(prompt[at : at + b - a]), top)
        self._rows, self._top, self._tiled = list(out), top, tiled
        return out

    def forget(self) -> None:
        """Drop the cached prompt, so that the next one is read from its first token."""
        if self._ctx is not None:
            L.llama_memory_clear(L.llama_get_memory(self._ctx), True)
        self._tokens, self._rows = [], []

    def _reusable(self, prompt: tuple[int, ...], top: int, start: int, out: list[TokenLogprob | None],
                  tiled: bool) -> int:
        """How many of the cached KV positions the new prompt keeps; fills ``out`` with the known rows.

        A cached log-probability for position ``i`` holds when tokens ``0..i`` are the same and it was
        computed with as many alternatives. Positions are kept up to the first row that must be
        computed again (it needs its logits) and never past the shared prefix, and only when the cached
        cells were computed by the kernel this prompt's cold read takes (``tiled``).
        """
        n = len(prompt)
        if n > self._reuse_limit or not self._tokens or tiled != self._tiled:
            self.forget()
            return 0
        common = 0
        for a, b in zip(self._tokens, prompt, strict=False):
            if a != b:
                break
            common += 1
        keep = min(common, n - 1)
        for i in range(start, n):
            if i < common and self._top == top and i < len(self._rows) and self._rows[i] is not None:
                out[i] = self._rows[i]
            else:
                keep = min(keep, i - 1)  # row i-1 predicts token i: it must be decoded again
                break
        return max(0, keep)

    def close(self) -> None:
        """Free the context (idempotent)."""
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            L.llama_free(self._ctx)
            self._ctx = None
        self._reader = None
        self._tokens, self._rows = [], []
