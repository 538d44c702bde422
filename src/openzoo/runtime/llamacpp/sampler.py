"""Per-request sampler chains, built from :class:`~openzoo.runtime.base.SamplingParams`.

Sampling stays inside llama.cpp: with a 262k-token vocabulary, softmax + sort in numpy costs ~19 ms per
token per sequence against ~0.2 ms for llama.cpp's chain (see the runtime reference). Each running
request owns one chain, so penalties and grammar state never leak between requests.

Order: grammar → penalties → top-k → typical → top-p → min-p → temperature → dist(seed), or
grammar → penalties → greedy when ``temperature <= 0``. The grammar goes first so the truncating
samplers only ever see tokens the grammar allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openzoo.errors import InvalidRequest
from openzoo.runtime.base import SamplingParams
from openzoo.runtime.llamacpp.native import L

__all__ = ["SamplerChain"]


class SamplerChain:
    """One llama.cpp sampler chain; call :meth:`free` exactly once when the request ends."""

    __slots__ = ("_chain", "_penalties", "greedy", "has_grammar")

    def __init__(self, vocab: Any, n_vocab: int, params: SamplingParams, grammar: str | None) -> None:
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        self._chain: Any = chain
        self._penalties: Any = None
        self.greedy = params.temperature <= 0
        self.has_grammar = grammar is not None
        if grammar is not None:
            g = L.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not g:
                self.free()
                raise InvalidRequest(
                    "invalid grammar: llama.cpp could not parse it as GBNF with a 'root' rule", param="grammar"
                )
            L.llama_sampler_chain_add(chain, g)
        if (
            params.repeat_penalty != 1.0 or params.presence_penalty != 0.0 or params.frequency_penalty != 0.0
        ) and params.repeat_last_n != 0:
            last_n = params.repeat_last_n if params.repeat_last_n > 0 else -1  # -1: whole context
            self._penalties = L.llama_sampler_init_penalties(
                n_vocab, last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
            )
            L.llama_sampler_chain_add(chain, self._penalties)
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
        return int(L.llama_sampler_sample(self._chain, ctx, index))

    def free(self) -> None:
        """Release the chain and every sampler in it (idempotent)."""
        if self._chain is not None:
            L.llama_sampler_free(self._chain)
            self._chain = None
            self._penalties = None
