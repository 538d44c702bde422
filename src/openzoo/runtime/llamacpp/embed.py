"""Embeddings: a second llama.cpp context on the same weights, with mean pooling.

Generation and embeddings need different context settings (``embeddings=True`` and a pooling type
change what ``llama_decode`` computes), so embeddings get their own context. It is created on first
use, because most models are only ever used for generation, and guarded by a lock because a context
is not safe to use from two threads at once (the engine calls it from its decode thread only). The
weights are shared, so it costs only its KV cache.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from openzoo.errors import EngineError, InvalidRequest
from openzoo.runtime.llamacpp.native import L, batch_put, free_native, side_context, tokenize

__all__ = ["Embedder"]


class Embedder:
    """Mean-pooled sentence embeddings of one loaded model."""

    def __init__(self, model: Any, vocab: Any, n_ctx: int, n_threads: int) -> None:
        self._model = model
        self._vocab = vocab
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._ctx: Any = None
        self._batch: Any = None
        self._lock = threading.Lock()
        self._n_embd = int(L.llama_model_n_embd(model))

    def _ensure(self) -> None:
        if self._ctx is not None:
            return
        # Pooling reads the whole sequence in one micro-batch.
        self._ctx = side_context(self._model, n_ctx=self._n_ctx, n_batch=self._n_ctx, n_seq_max=1,
                                 n_threads=self._n_threads, purpose="embedding", mean_pooling=True)
        self._batch = L.llama_batch_init(self._n_ctx, 0, 1)

    def embed(self, texts: Sequence[str], *, normalize: bool, truncate: bool) -> tuple[list[list[float]], int]:
        """Embed each text; return the vectors and the number of tokens read in all."""
        encoded: list[list[int]] = []
        for i, text in enumerate(texts):
            tokens = tokenize(self._vocab, text, add_special=True, parse_special=False)
            if len(tokens) > self._n_ctx:
                if not truncate:
                    raise InvalidRequest(
                        f"input {i} has {len(tokens)} tokens, more than the context length {self._n_ctx}",
                        hint="shorten the input or set truncate to true",
                        param="input",
                    )
                tokens = tokens[: self._n_ctx]
            encoded.append(tokens)
        vectors: list[list[float]] = []
        total = 0
        with self._lock:
            self._ensure()
            for tokens in encoded:
                vectors.append(self._one(tokens, normalize))
                total += len(tokens)
        return vectors, total

    def _one(self, tokens: list[int], normalize: bool) -> list[float]:
        if not tokens:
            return [0.0] * self._n_embd
        ctx, batch = self._ctx, self._batch
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        for i, token in enumerate(tokens):
            batch_put(batch, i, token, i, 0, True)
        batch.n_tokens = len(tokens)
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise EngineError(f"embedding decode failed (llama_decode returned {rc})")
        ptr = L.llama_get_embeddings_seq(ctx, 0)
        if not ptr:
            raise EngineError("the model returned no pooled embedding")
        vec = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self._n_embd,)).astype(
            np.float64
        )
        if normalize:
            norm = math.sqrt(float(vec @ vec))
            if norm > 0:
                vec /= norm
        return [float(x) for x in vec]

    def close(self) -> None:
        """Free the context (idempotent); the model itself belongs to the engine."""
        with self._lock:
            free_native(self._batch, self._ctx)
            self._batch = self._ctx = None
