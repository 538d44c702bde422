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
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        out: list[TokenLogprob | None] = [None] * min(start, len(prompt))
        for begin in range(0, len(prompt), SCORE_BATCH):
            chunk = prompt[begin : begin + SCORE_BATCH]
            # Row j predicts the token at begin+j+1; rows before start-1 and the prompt's last row
            # predict nothing asked for.
            first = min(max(0, start - 1 - begin), len(chunk))
            last = min(len(chunk), len(prompt) - 1 - begin)
            for j, token in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = begin + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = first <= j < last
            batch.n_tokens = len(chunk)
            rc = L.llama_decode(ctx, batch)
            if rc != 0:
                raise EngineError(f"prompt scoring failed (llama_decode returned {rc})")
            if last <= first:
                continue
            # Outputs are stored contiguously in batch order, so output row 0 is batch row ``first``.
            rows = reader.rows(first, last - first)
            for a in range(0, last - first, _ROWS_PER_PASS):  # bounded numpy temporaries
                b = min(a + _ROWS_PER_PASS, last - first)
                targets = list(prompt[begin + first + 1 + a : begin + first + 1 + b])
                out.extend(reader.token_logprobs(rows[a:b], targets, top))
        return out

    def close(self) -> None:
        """Free the context (idempotent)."""
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            L.llama_free(self._ctx)
            self._ctx = None
        self._reader = None
