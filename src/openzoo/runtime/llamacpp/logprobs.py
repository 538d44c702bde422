"""Log-probabilities from llama.cpp's raw logits, with numpy on only the rows asked for.

The logits buffer is read in place through ``np.ctypeslib.as_array`` (no copy); a row is 262,144
floats for the default model, so this is only done for requests that ask for ``logprobs`` or
``prompt_logprobs``. The normaliser is summed in float64 so that log-probabilities of unlikely tokens
stay exact to well below 1e-4.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from openzoo.events import TokenLogprob, TopLogprob
from openzoo.runtime.llamacpp.native import L

__all__ = ["LogprobReader"]

PieceFn = Callable[[int], bytes]


class LogprobReader:
    """Reads logits rows of a context and turns them into :class:`TokenLogprob` values."""

    __slots__ = ("_ctx", "_n_vocab", "_piece")

    def __init__(self, ctx: Any, n_vocab: int, piece: PieceFn) -> None:
        self._ctx = ctx
        self._n_vocab = n_vocab
        self._piece = piece

    def rows(self, index: int, count: int) -> npt.NDArray[np.float32]:
        """``count`` consecutive output rows starting at batch index ``index`` (a view, not a copy).

        The rows must belong to consecutive batch tokens that all asked for logits: llama.cpp stores
        outputs contiguously in batch order.
        """
        ptr = L.llama_get_logits_ith(self._ctx, index)
        if not ptr:
            raise RuntimeError(f"no logits for batch row {index}")
        addr = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(addr, shape=(count, self._n_vocab))

    def token_logprobs(self, rows: npt.NDArray[np.float32], tokens: list[int], top: int) -> list[TokenLogprob]:
        """Log-probability of ``tokens[i]`` under ``rows[i]``, each with its ``top`` alternatives."""
        mx = rows.max(axis=1, keepdims=True)
        lse = np.log(np.exp(rows - mx).sum(axis=1, dtype=np.float64)) + mx[:, 0].astype(np.float64)
        out: list[TokenLogprob] = []
        if top > 0:
            k = min(top, self._n_vocab)
            part = np.argpartition(rows, -k, axis=1)[:, -k:]
        for i, token in enumerate(tokens):
            row = rows[i]
            alts: tuple[TopLogprob, ...] = ()
            if top > 0:
                cand = part[i]
                cand = cand[np.argsort(-row[cand], kind="stable")]
                alts = tuple(self._top(int(t), float(row[t]) - float(lse[i])) for t in cand)
            data = self._piece(token)
            out.append(
                TokenLogprob(
                    token=data.decode("utf-8", errors="replace"),
                    logprob=float(row[token]) - float(lse[i]),
                    token_id=token,
                    bytes=data,
                    top=alts,
                )
            )
        return out

    def _top(self, token: int, logprob: float) -> TopLogprob:
        data = self._piece(token)
        return TopLogprob(token=data.decode("utf-8", errors="replace"), logprob=logprob, token_id=token, bytes=data)
