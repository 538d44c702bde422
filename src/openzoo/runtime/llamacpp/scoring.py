"""Prompt log-probabilities (``prompt_logprobs``) in a context of their own, evaluated the reference way.

Why a second context: ggml's CPU flash attention picks its kernel by the number of query rows in a
micro-batch. Under 64 rows it rounds Q and the V accumulator to f16; from 64 rows on it tiles the
work and accumulates in f32. The two differ by up to half a nat per token on the default model
(measured over 80 to 500 tokens of text), so a prompt's log-probabilities depend on how it was cut
into micro-batches.

Scoring (lm-eval's loglikelihood) must give the numbers llama-cpp-python's high-level
``Llama(logits_all=True)`` gives, and that evaluates a prompt in micro-batches of 512 tokens. The
generation context cannot: it uses micro-batches of at most 63 rows so that a request's tokens do not
depend on what else is in the batch (see ``engine.py``). So a prompt to score is evaluated here, with
the values a cold read of it alone in 512-token micro-batches gives, and logits only for the positions
asked for.

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

Several short prompts (under 64 tokens) that arrive together are read in one decode of at most 63
rows, each as a sequence of its own: the weights, above all the 262k-row output matrix, are read
from memory once for all of them instead of once each, which is what a small prompt's decode costs.
The per-row attention kernel skips the cells of other sequences, and each prompt's cells lie in
position order, so its values are again those of a cold read.

The context is created on first use. Its logits buffer grows to one row per prompt token of the
largest micro-batch seen (1 MiB per token for a 262k vocabulary), as ``Llama(logits_all=True)``'s does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from openzoo.errors import EngineError
from openzoo.events import TokenLogprob
from openzoo.runtime.llamacpp.logprobs import LogprobReader, PieceFn
from openzoo.runtime.llamacpp.native import L, batch_put, free_native, side_context

__all__ = ["SCORE_BATCH", "PromptScorer", "ScoreRequest"]

#: (prompt, alternatives per position, first position scored), as in ``GenerationRequest``.
ScoreRequest = tuple[tuple[int, ...], int, int]

#: Micro-batch of the scoring context: llama-cpp-python's default ``n_batch``.
SCORE_BATCH = 512
#: Query rows per micro-batch from which ggml's CPU flash attention takes its tiled kernel
#: (``GGML_FA_TILE_Q``); below it a per-row kernel that rounds differently.
FA_TILED_ROWS = 64
#: Rows of one packed read of short prompts: below FA_TILED_ROWS, so every row takes the per-row kernel
#: that a cold read of a prompt this short takes too.
PACK_ROWS = FA_TILED_ROWS - 1
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
        self.reused_tokens = 0  # prompt tokens taken from the cache so far (for metrics)
        self.packed_prompts = 0  # prompts read in packed decodes so far (for tests and benchmarks)
        # Longest prompt that may reuse a prefix: one micro-batch, inside the sliding window, and room
        # after it for the padding rows.
        self._reuse_limit = min(SCORE_BATCH, n_swa if n_swa > 0 else SCORE_BATCH, n_ctx - FA_TILED_ROWS)

    def _ensure(self) -> LogprobReader:
        if self._reader is not None:
            return self._reader
        # A packed read holds at most n_seq_max prompts (2+ tokens each); one KV buffer for all, so a long
        # prompt may use all of n_ctx.
        ctx = self._ctx = side_context(self._model, n_ctx=self._n_ctx, n_batch=SCORE_BATCH,
                                       n_seq_max=PACK_ROWS // 2, n_threads=self._n_threads,
                                       purpose="prompt-scoring", kv_unified=True)
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
        self.reused_tokens += keep
        L.llama_memory_seq_rm(L.llama_get_memory(ctx), 0, keep, -1)
        self._tokens, self._rows = list(prompt[:keep]), []  # no stale rows if this read fails
        for begin in range(keep, n, SCORE_BATCH):
            chunk = prompt[begin : begin + SCORE_BATCH]
            # Row j predicts the token at begin+j+1; rows before start-1, rows already known and the
            # prompt's last row predict nothing asked for.
            first = min(max(0, start - 1 - begin), len(chunk))
            last = min(len(chunk), n - 1 - begin)
            for j, token in enumerate(chunk):
                batch_put(batch, j, token, begin + j, 0, first <= j < last)
            pad = FA_TILED_ROWS - len(chunk) if keep > 0 and tiled and len(chunk) < FA_TILED_ROWS else 0
            for j in range(len(chunk), len(chunk) + pad):
                batch_put(batch, j, prompt[-1], begin + j, 0, False)
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

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[TokenLogprob | None]]:
        """:meth:`score` for several requests, in whichever way reads the fewest rows.

        Prompts that share most of themselves with another one (the choices of one question) are read
        in sorted order: the first one whole (or reusing the cache), then the others' differing tails
        together, each as a sequence sharing the first one's cells. Other short prompts are packed
        together; the rest are read one by one.
        """
        results: list[list[TokenLogprob | None] | None] = [None] * len(requests)
        prompts = [prompt for prompt, _, _ in requests]
        short = [i for i, prompt in enumerate(prompts) if 2 <= len(prompt) < FA_TILED_ROWS]
        alone = [i for i in short if not self._shares(prompts[i], [p for j, p in enumerate(prompts) if j != i])]
        if len(alone) >= 2:
            for i, out in zip(alone, self._score_packed([requests[i] for i in alone]), strict=True):
                results[i] = out
        order = sorted((i for i in range(len(requests)) if results[i] is None), key=lambda i: prompts[i])
        k = 0
        while k < len(order):
            anchor = order[k]
            prompt, top, start = requests[anchor]
            results[anchor] = self.score(prompt, top, start=start)
            k += 1
            followers: list[int] = []
            while (k < len(order) and len(prompt) < FA_TILED_ROWS and len(prompts[order[k]]) < FA_TILED_ROWS
                   and _common_prefix(prompts[order[k]], prompt) >= max(4, len(prompts[order[k]]) // 2)):
                followers.append(order[k])
                k += 1
            if followers:
                for i, out in zip(followers, self._score_tails([requests[i] for i in followers]), strict=True):
                    results[i] = out
        return [out for out in results if out is not None]

    def _shares(self, prompt: tuple[int, ...], others: Sequence[tuple[int, ...]]) -> bool:
        """Whether most of ``prompt`` is a prefix shared with the cache or another prompt (worth reusing)."""
        need = max(4, len(prompt) // 2)
        return any(_common_prefix(prompt, other) >= need for other in (tuple(self._tokens), *others))

    def _score_tails(self, requests: Sequence[ScoreRequest]) -> list[list[TokenLogprob | None]]:
        """Short prompts sharing a prefix with the cached one (sequence 0, read by the per-row kernel).

        Each becomes a sequence that shares the cached prefix's cells (``seq_cp``) and adds its own
        tail after them, several tails per decode. The per-row kernel skips other sequences' cells, so
        each sees its prefix and tail in position order, as in a cold read.
        """
        reader = self._ensure()
        ctx, batch = self._ctx, self._batch
        mem = L.llama_get_memory(ctx)
        outs: list[list[TokenLogprob | None]] = [[None] * len(prompt) for prompt, _, _ in requests]
        i = 0
        while i < len(requests):
            members: list[tuple[int, int, int]] = []  # (request index, batch index of its tail, kept prefix)
            n = 0
            while i < len(requests) and len(members) + 1 < PACK_ROWS // 2:
                prompt, _, start = requests[i]
                keep = min(_common_prefix(prompt, self._tokens), max(1, start) - 1, len(prompt) - 1)
                if n + len(prompt) - keep > PACK_ROWS:
                    break
                seq = len(members) + 1
                L.llama_memory_seq_cp(mem, 0, seq, 0, keep)
                members.append((i, n, keep))
                for pos in range(keep, len(prompt)):
                    batch_put(batch, n, prompt[pos], pos, seq, max(1, start) - 1 <= pos < len(prompt) - 1)
                    n += 1
                i += 1
            batch.n_tokens = n
            rc = L.llama_decode(ctx, batch)
            for seq in range(1, len(members) + 1):
                L.llama_memory_seq_rm(mem, seq, -1, -1)
            if rc != 0:
                self.forget()
                raise EngineError(f"prompt scoring failed (llama_decode returned {rc})")
            for k, base, keep in members:
                prompt, top, start = requests[k]
                first, last = max(1, start) - 1, len(prompt) - 1
                self.reused_tokens += keep
                if last > first:
                    rows = reader.rows(base + first - keep, last - first)
                    outs[k][first + 1 :] = reader.token_logprobs(rows, list(prompt[first + 1 :]), top)
        return outs

    def _score_packed(self, requests: Sequence[ScoreRequest]) -> list[list[TokenLogprob | None]]:
        """Short prompts (2..63 tokens), as many per decode as fit in :data:`PACK_ROWS` rows."""
        reader = self._ensure()
        ctx, batch = self._ctx, self._batch
        self.forget()
        outs: list[list[TokenLogprob | None]] = [[None] * len(prompt) for prompt, _, _ in requests]
        i = 0
        while i < len(requests):
            members: list[tuple[int, int]] = []  # (request index, batch index of its first token)
            n = 0
            while i < len(requests) and n + len(requests[i][0]) <= PACK_ROWS:
                prompt, _, start = requests[i]
                seq = len(members)
                members.append((i, n))
                for pos, token in enumerate(prompt):
                    batch_put(batch, n, token, pos, seq, max(1, start) - 1 <= pos < len(prompt) - 1)
                    n += 1
                i += 1
            batch.n_tokens = n
            self.packed_prompts += len(members)
            rc = L.llama_decode(ctx, batch)
            L.llama_memory_clear(L.llama_get_memory(ctx), True)  # the next pack starts from cell 0
            if rc != 0:
                raise EngineError(f"prompt scoring failed (llama_decode returned {rc})")
            for k, base in members:
                prompt, top, start = requests[k]
                first, last = max(1, start) - 1, len(prompt) - 1
                if last > first:
                    # Rows of one prompt are consecutive batch rows with logits: contiguous outputs.
                    rows = reader.rows(base + first, last - first)
                    outs[k][first + 1 :] = reader.token_logprobs(rows, list(prompt[first + 1 :]), top)
        return outs

    def logits(self, prompt: Sequence[int]) -> npt.NDArray[np.float32]:
        """Raw logits of a cold read of ``prompt`` (2..``SCORE_BATCH`` tokens): row ``i`` predicts ``prompt[i+1]``.

        The same decode :meth:`score` makes for a prompt it reads cold, so these are the rows its
        log-probabilities come from (whole rows, for measures over the full vocabulary such as a
        quantization's KL divergence). The array is a view into llama.cpp's buffer, valid until this
        scorer decodes again.
        """
        if not 2 <= len(prompt) <= SCORE_BATCH:
            raise ValueError(f"a prompt of 2 to {SCORE_BATCH} tokens is needed, not {len(prompt)}")
        reader = self._ensure()
        self.forget()
        for j, token in enumerate(prompt):
            batch_put(self._batch, j, token, j, 0, j < len(prompt) - 1)
        self._batch.n_tokens = len(prompt)
        rc = L.llama_decode(self._ctx, self._batch)
        self.forget()  # the cells are not recorded as a reusable prefix
        if rc != 0:
            raise EngineError(f"prompt scoring failed (llama_decode returned {rc})")
        return reader.rows(0, len(prompt) - 1)

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
        common = _common_prefix(self._tokens, prompt)
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
        free_native(self._batch, self._ctx)
        self._batch = self._ctx = None
        self._reader = None
        self._tokens, self._rows = [], []


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
