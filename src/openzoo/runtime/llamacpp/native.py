"""The one place that touches llama-cpp-python's low-level bindings at process level.

Everything here happens once per process, before the first model loads:

* ``llama_backend_init`` and a no-op log callback, so llama.cpp's per-tensor log lines do not flood
  the server's stderr (``OPENZOO_DEBUG=1`` keeps them). The ctypes callback object is kept in a module
  global: if it were garbage-collected, llama.cpp would call freed memory.
* ``GGML_CPU_TILED_MM=0`` unless the user set it, and ``1`` when the first model asks for speed over
  batch invariance (``OPENZOO_BATCH_INVARIANT=0``; a ``0`` inherited from a parent openzoo process
  must not pin it then). ggml's CPU backend switches K-quant matrix products
  to a tiled kernel once a batch has 8 or more rows; that kernel rounds differently from the per-row
  kernel used for a single row, so a greedy request would give different tokens alone and in a batch
  of 8. With the switch off, every row is computed by the same per-row kernel, whatever the batch
  shape (measured: identical 64-token greedy outputs alone and in batches of 4 and 8, with flash
  attention on; without flash attention they differ too). The variable is read lazily by ggml, at the
  first matrix product, so setting it here is in time, and only once per process: a process whose
  kernels were set up for speed cannot load a batch-invariant model afterwards (the engine refuses).

It also holds small helpers over the vocabulary (tokenize, pieces) and ``llama_batch`` rows, shared
by the engine and the embedding and scoring contexts.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp.llama_cpp as L

from openzoo.config import debug_enabled
from openzoo.errors import EngineError

__all__ = ["L", "batch_put", "detokenize", "ensure_backend", "free_native", "load_model", "side_context",
           "token_piece", "tokenize"]

_init_lock = threading.Lock()
_initialised = False
# Kept alive for the life of the process: llama.cpp holds the raw function pointer.
_log_callback: Any = None


def _silent_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """Drop llama.cpp log lines (they go to stderr otherwise, hundreds per model load)."""


def ensure_backend(*, pin_kernels: bool = True) -> bool:
    """Initialise llama.cpp once per process (idempotent, thread-safe); the first call decides whether
    K-quant products keep their per-row kernel (``pin_kernels``). Returns whether they do."""
    global _initialised, _log_callback
    with _init_lock:
        if not _initialised:
            if pin_kernels:
                os.environ.setdefault("GGML_CPU_TILED_MM", "0")
            else:
                os.environ["GGML_CPU_TILED_MM"] = "1"
            if not debug_enabled():
                _log_callback = L.llama_log_callback(_silent_log)
                L.llama_log_set(_log_callback, ctypes.c_void_p(0))
            L.llama_backend_init()
            _initialised = True
        return os.environ.get("GGML_CPU_TILED_MM") == "0"


def load_model(path: Path, *, extra_bufts: bool) -> Any:
    """A GGUF loaded as the engine loads it (weights repacked only with ``extra_bufts``: see "Batch
    invariance" in ``engine.py``), or None when llama.cpp refuses the file."""
    mp = L.llama_model_default_params()
    mp.use_extra_bufts = extra_bufts
    return L.llama_model_load_from_file(str(path).encode(), mp) or None


def batch_put(batch: Any, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
    """Row ``i`` of a ``llama_batch``: one token of one sequence, at ``pos``, with logits or not."""
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq
    batch.logits[i] = logits


def tokenize(vocab: Any, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
    """Text to token ids through ``llama_tokenize``, growing the buffer when it is too small."""
    data = text.encode("utf-8")
    size = len(data) + 16
    while True:
        buf = (L.llama_token * size)()
        n = L.llama_tokenize(vocab, data, len(data), buf, size, add_special, parse_special)
        if n >= 0:
            return list(buf[:n])
        size = -n + 1


def token_piece(vocab: Any, token: int, *, special: bool) -> bytes:
    """The bytes of one token's piece; ``special`` renders control tokens as their text."""
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = L.llama_token_to_piece(vocab, token, buf, size, 0, special)
        if n >= 0:
            return buf.raw[:n]
        size = -n + 1


def detokenize(vocab: Any, tokens: Sequence[int], *, special: bool) -> str:
    """Token ids to text through ``llama_detokenize`` (handles the leading-space rules)."""
    if not tokens:
        return ""
    arr = (L.llama_token * len(tokens))(*tokens)
    size = max(64, len(tokens) * 8)
    while True:
        buf = ctypes.create_string_buffer(size)
        n = L.llama_detokenize(vocab, arr, len(tokens), buf, size, False, special)
        if n >= 0:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = -n + 1


def side_context(model: Any, *, n_ctx: int, n_batch: int, n_seq_max: int, n_threads: int, purpose: str,
                 mean_pooling: bool = False, kv_unified: bool = False) -> Any:
    """A second llama.cpp context on a loaded model, beside the engine's decode context: one micro-batch of
    ``n_batch`` rows, flash attention on, no perf counters; ``mean_pooling`` makes it return mean-pooled
    embeddings. :class:`EngineError` naming ``purpose`` when llama.cpp refuses."""
    cp = L.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = n_batch
    cp.n_ubatch = n_batch
    cp.n_seq_max = n_seq_max
    if kv_unified:
        cp.kv_unified = True
    cp.n_threads = n_threads
    cp.n_threads_batch = n_threads
    if mean_pooling:
        cp.embeddings = True
        cp.pooling_type = L.LLAMA_POOLING_TYPE_MEAN
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise EngineError(f"could not create the {purpose} context")
    return ctx


def free_native(batch: Any = None, ctx: Any = None, model: Any = None) -> None:
    """Free a batch, a context and a model, those that are not None, in that order (a model also frees its
    LoRA adapters). Callers drop their references afterwards."""
    if batch is not None:
        L.llama_batch_free(batch)
    if ctx is not None:
        L.llama_free(ctx)
    if model is not None:
        L.llama_model_free(model)
