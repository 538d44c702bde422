"""Per-request sampler chains, built from :class:`~openzoo.runtime.base.SamplingParams`.

Sampling stays inside llama.cpp: with a 262k-token vocabulary, softmax + sort in numpy costs ~19 ms per
token per sequence against ~0.2 ms for llama.cpp's chain (see the runtime reference). Each running
request owns one chain, so penalties and grammar state never leak between requests.

Order: logit bias → penalties → top-k → typical → top-p → min-p → temperature → dist(seed), or penalties → greedy
when ``temperature <= 0``, with an optional grammar in front.

Grammars are applied lazily, as llama-server does: running a GBNF grammar over all 262k candidates
costs ~110 ms per token on the default model (measured), twenty times a decode step. So the chain
first picks a token without the grammar; only if the grammar rejects that token is the grammar applied
to the whole vocabulary and the token picked again. Both ways give the token the grammar-first chain
would give. This needs the candidates as a ``llama_token_data_array``, filled from the logits row with
numpy, only for grammar requests.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from openzoo.errors import InvalidRequest
from openzoo.runtime.base import SamplingParams
from openzoo.runtime.llamacpp.native import L

__all__ = ["SamplerChain"]

#: numpy twin of ``struct llama_token_data {int32 id; float logit; float p;}``.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class SamplerChain:
    """One llama.cpp sampler chain; call :meth:`free` exactly once when the request ends."""

    __slots__ = (
        "_argmax",
        "_arr",
        "_cand",
        "_chain",
        "_grammar",
        "_n_vocab",
        "_one",
        "_one_arr",
        "_penalties",
        "greedy",
    )

    def __init__(self, vocab: Any, n_vocab: int, params: SamplingParams, grammar: str | None) -> None:
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        self._chain: Any = chain
        self._penalties: Any = None
        self._grammar: Any = None
        self._n_vocab = n_vocab
        self.greedy = params.temperature <= 0
        if grammar is not None:
            g = L.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not g:
                self.free()
                raise InvalidRequest(
                    "invalid grammar: llama.cpp could not parse it as GBNF with a 'root' rule", param="grammar"
                )
            self._grammar = g
            # Candidate buffers, reused for every token of this request.
            self._cand = np.zeros(n_vocab, dtype=_TOKEN_DATA)
            self._cand["id"] = np.arange(n_vocab, dtype=np.int32)
            self._arr = L.llama_token_data_array(
                data=self._cand.ctypes.data_as(L.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
            )
            self._one = np.zeros(1, dtype=_TOKEN_DATA)
            self._one_arr = L.llama_token_data_array(
                data=self._one.ctypes.data_as(L.llama_token_data_p), size=1, selected=-1, sorted=False
            )
        if params.logit_bias:
            biases = (L.llama_logit_bias * len(params.logit_bias))(
                *(L.llama_logit_bias(token=token, bias=bias) for token, bias in params.logit_bias)
            )  # llama.cpp copies the array
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_logit_bias(n_vocab, len(biases), biases))
        if (
            params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        ) and params.repeat_last_n != 0:
            last_n = params.repeat_last_n if params.repeat_last_n > 0 else -1  # -1: whole context
            self._penalties = L.llama_sampler_init_penalties(
                n_vocab, last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
            )
            L.llama_sampler_chain_add(chain, self._penalties)
        # Plain greedy is an argmax: numpy's (first maximum, as llama.cpp's greedy sampler) skips
        # copying the row into a 262k-entry candidate array, ~0.3 ms per sequence per step.
        self._argmax = self.greedy and self._penalties is None and self._grammar is None and not params.logit_bias
        if self.greedy:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(params.top_k))
        if 0.0 < params.typical_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_typical(params.typical_p, 1))
        if 0.0 < params.top_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(params.min_p, 1))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed >= 0 else L.LLAMA_DEFAULT_SEED
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def prime(self, history: Sequence[int]) -> None:
        """Let the penalty sampler see the prompt, so repeats of prompt text are penalised too.

        Only the penalty sampler is fed: the grammar must start from its root at the first generated
        token, not consume the prompt.
        """
        if self._penalties is not None:
            for token in history:
                L.llama_sampler_accept(self._penalties, token)

    def sample(self, ctx: Any, index: int) -> int:
        """Sample (and accept) a token from the batch row ``index`` of the last decode."""
        if self._grammar is None and not self._argmax:
            return int(L.llama_sampler_sample(self._chain, ctx, index))
        ptr = L.llama_get_logits_ith(ctx, index)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self._n_vocab,))
        if self._argmax:
            return int(logits.argmax())
        token = self._pick(logits, with_grammar=False)
        one = self._one
        one["id"][0], one["logit"][0], one["p"][0] = token, logits[token], 0.0
        self._one_arr.size, self._one_arr.selected = 1, -1
        L.llama_sampler_apply(self._grammar, ctypes.byref(self._one_arr))
        if math.isinf(float(one["logit"][0])):
            token = self._pick(logits, with_grammar=True)
        L.llama_sampler_accept(self._grammar, token)
        L.llama_sampler_accept(self._chain, token)
        return token

    def _pick(self, logits: Any, *, with_grammar: bool) -> int:
        """Run the chain (after the grammar, if asked) over all candidates; return the chosen token."""
        cand, arr = self._cand, self._arr
        cand["id"] = np.arange(self._n_vocab, dtype=np.int32)  # samplers reorder the buffer in place
        cand["logit"] = logits
        cand["p"] = 0.0
        arr.size, arr.selected, arr.sorted = self._n_vocab, -1, False
        if with_grammar:
            L.llama_sampler_apply(self._grammar, ctypes.byref(arr))
        L.llama_sampler_apply(self._chain, ctypes.byref(arr))
        if not 0 <= arr.selected < arr.size:
            raise RuntimeError("the sampler chain selected no token")
        return int(cand["id"][arr.selected])

    def free(self) -> None:
        """Release the chain and every sampler in it (idempotent)."""
        if self._chain is not None:
            L.llama_sampler_free(self._chain)
            self._chain = None
            self._penalties = None
        if self._grammar is not None:
            L.llama_sampler_free(self._grammar)
            self._grammar = None
