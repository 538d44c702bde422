"""The llama.cpp-backed :class:`~openzoo.audit.scoring.Scorer`: audits run on openzoo's own engine.

Every number goes through :class:`~openzoo.inference.Inference`, the same code path as ``/v1/completions``
and ``/api/chat``, so an audit scores exactly what the server would serve:

* scoring requests are token ids sent verbatim (``raw``, no template, no added BOS) with
  ``prompt_logprobs`` and ``num_predict: 0``; the engine returns ``log p(token | previous)`` for every
  prompt token, which the pure helpers of :mod:`openzoo.audit.scoring` reduce to sums;
* conventions (issue 5): a sentence log-likelihood is the sum over the sentence's tokens (tokenized
  without special tokens) with the model's BOS prepended and not scored; ``loglikelihood`` mirrors
  lm-eval's ``_encode_pair`` with BOS prepended; long documents use lm-eval's rolling windows with the
  model's context (``n_ctx - 1`` predicted tokens per window, because a window's tokens plus its
  one-token context must fit);
* generation uses the model's chat template, greedy (temperature 0) and seeded.

Why a thread pool: each scoring request is a separate engine request; submitting many at once lets the
engine's decode thread work without waiting for Python between requests (tokenizing, summing,
building the next request), which is where one-at-a-time scoring loses most of its time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from openzoo import __version__
from openzoo.audit.scoring import (
    Alternative,
    TokenDistribution,
    TokenStat,
    continuation_from_prompt_logprobs,
    encode_pair,
    rolling_windows,
    sentence_logprob,
)
from openzoo.errors import EngineError, NotSupported, OpenzooError
from openzoo.events import Done, Failure, TextChunk, TokenLogprob
from openzoo.inference import ChatRequest, CompletionRequest, InferenceService

__all__ = ["ENTROPY_TOP_K", "EngineScorer", "entropy_from_top"]

T = TypeVar("T")
R = TypeVar("R")

#: Alternatives read per position for ``explain``'s entropy (the engine returns top-k, not whole rows).
ENTROPY_TOP_K = 200
#: Concurrent engine requests. Scoring requests in flight together are scored together (several
#: prompts per decode, shared prefixes read once); generation requests queue beyond the engine's slots.
DEFAULT_PARALLEL = 16


def entropy_from_top(top: Sequence[float], n_vocab: int) -> float:
    """Entropy (nats) of a distribution known by its top-k log-probabilities.

    The top-k part is exact; the tail mass ``r = 1 - sum(p)`` is counted as spread over tokens each as
    likely as the least likely of the top-k (``r * -log p_min``), the smallest entropy the tail can
    have given that bound. With k = 200 the tail of a peaked distribution is tiny, so this is the exact
    entropy to a few hundredths of a nat in practice; it never overstates uncertainty.
    """
    if not top:
        return 0.0
    probs = [math.exp(lp) for lp in top]
    h = -sum(p * lp for p, lp in zip(probs, top, strict=True) if p > 0)
    tail = 1.0 - sum(probs)
    if tail > 1e-12 and len(top) < n_vocab:
        h += tail * -min(top)
    return h


@dataclass(frozen=True, slots=True)
class _ModelFacts:
    bos: int
    n_ctx: int
    n_vocab: int


class EngineScorer:
    """A :class:`~openzoo.audit.scoring.Scorer` over an ``InferenceService`` and one model name.

    Construct with :meth:`open`, which checks that the model can give log-probabilities (a clear
    :class:`~openzoo.errors.NotSupported` otherwise) before any suite runs.
    """

    def __init__(self, inference: InferenceService, model: str, facts: _ModelFacts, *,
                 parallel: int = DEFAULT_PARALLEL, context_bos: bool = True) -> None:
        self.inference = inference
        self.context_bos = context_bos
        self.model = model
        self.facts = facts
        self.parallel = max(1, parallel)
        self._tok_cache: dict[str, list[int]] = {}
        self._tok_lock = threading.Lock()
        self.requests = 0  # engine requests made (for benchmarks)

    # ------------------------------------------------------------------ construction

    @classmethod
    def open(cls, inference: InferenceService, model: str, *, parallel: int = DEFAULT_PARALLEL,
             context_bos: bool = True) -> EngineScorer:
        """Resolve ``model``, load it, and prove it can score a prompt; raise :class:`NotSupported` if not."""
        spec = inference.models.resolve(model)
        if "completion" not in spec.capabilities:
            raise NotSupported(f'"{spec.name.display}" cannot produce log-probabilities: it has no completion '
                               "capability", hint="audit a text-generation model")
        info = inference.tokenizer_info(model)
        bos = info.get("bos_token_id")
        if not isinstance(bos, int):
            eos = info.get("eos_token_id")
            if not isinstance(eos, int):
                raise NotSupported(f'"{spec.name.display}" has neither a BOS nor an EOS token to condition on')
            bos = eos  # lm-eval's prefix_token_id falls back to EOS the same way
        facts = _ModelFacts(bos=bos, n_ctx=int(info["context_length"]), n_vocab=int(info["vocab_size"]))
        scorer = cls(inference, model, facts, parallel=parallel, context_bos=context_bos)
        probe = scorer.tokenize("Hello")[:1] or [bos]
        lps = scorer._prompt_logprobs([bos, *probe], 1)
        if len(lps) != 2 or lps[1] is None or not math.isfinite(lps[1].logprob):
            raise NotSupported(f'"{spec.name.display}" cannot produce log-probabilities on this engine',
                               hint="audit a model served by the llama.cpp engine")
        return scorer

    def engine_info(self) -> dict[str, str]:
        """What the report records about the engine, enough to reproduce the numbers."""
        try:
            from importlib.metadata import version

            llama = version("llama_cpp_python")
        except Exception:  # pragma: no cover - metadata missing in odd installs
            llama = "unknown"
        return {"name": "llama.cpp", "llama_cpp_python": llama, "openzoo": __version__,
                "n_ctx": str(self.facts.n_ctx),
                "scoring": "prompt_logprobs; values of a cold read in 512-token micro-batches",
                "generation": "greedy, seeded, in cold waves of the engine's slots"}

    # ------------------------------------------------------------------ engine access

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` without special tokens (what the server's ``/tokenize`` answers)."""
        with self._tok_lock:
            hit = self._tok_cache.get(text)
        if hit is not None:
            return list(hit)
        tokens = self.inference.tokenize(self.model, text, add_special=False)
        with self._tok_lock:
            if len(self._tok_cache) > 50_000:
                self._tok_cache.clear()
            self._tok_cache[text] = list(tokens)
        return list(tokens)

    def _prompt_logprobs(self, prompt: Sequence[int], top: int, start: int = 1) -> tuple[TokenLogprob | None, ...]:
        """Log-probabilities of ``prompt``'s tokens from ``start`` on (``None`` before), ``top`` alternatives each."""
        if len(prompt) > self.facts.n_ctx:
            raise EngineError(f"a scoring request of {len(prompt)} tokens does not fit the context of "
                              f"{self.facts.n_ctx}")
        generation = self.inference.completion(CompletionRequest(
            self.model, prompt=list(prompt), raw=True, add_special=False,
            options={"temperature": 0, "num_predict": 0}, prompt_logprobs=top, prompt_logprobs_from=start))
        self.requests += 1
        done: Done | None = None
        for event in generation:
            if isinstance(event, Failure):
                raise event.error
            if isinstance(event, Done):
                done = event
        if done is None:
            raise EngineError("the engine ended a scoring request without a result")
        if len(done.prompt_logprobs) != len(prompt):
            raise NotSupported(f'"{self.model}" cannot produce log-probabilities: the engine returned none',
                               hint="audit a model served by the llama.cpp engine")
        return done.prompt_logprobs

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]`` with up to ``parallel`` requests in flight; input order kept."""
        if len(items) <= 1 or self.parallel == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(items)),
                                thread_name_prefix="openzoo-audit") as pool:
            return list(pool.map(fn, items))

    # ------------------------------------------------------------------ Scorer

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """lm-eval's loglikelihood: sum of the continuation's token log-probabilities and is_greedy.

        A non-empty context gets BOS prepended (``context_bos``, the default: what lm-eval's ``hf``
        backend does for Gemma and what the model was trained with). ``context_bos=False`` reproduces
        lm-eval's ``local-completions`` with the server's remote tokenizer, which cannot add BOS to a
        non-empty context; an empty context is conditioned on BOS either way.
        """
        pairs = [self._encode(ctx, cont) for ctx, cont in requests]
        for _, cont in pairs:
            if not cont:
                raise NotSupported("a continuation with no tokens cannot be scored")

        def one(pair: tuple[list[int], list[int]]) -> tuple[float, bool]:
            ctx, cont = pair
            whole = ctx + cont
            if len(whole) > self.facts.n_ctx:  # lm-eval keeps the most recent tokens that fit
                whole = whole[len(whole) - self.facts.n_ctx:]
            n_context = len(whole) - len(cont)
            return continuation_from_prompt_logprobs(self._prompt_logprobs(whole, 1, n_context), n_context)

        return self._map(one, pairs)

    def _encode(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if context == "" or self.context_bos:
            return encode_pair(context, continuation, self.tokenize, self.facts.bos)
        return encode_pair(context, continuation, self.tokenize, None)

    def sentence_loglikelihood(self, texts: Sequence[str]) -> list[float]:
        """Sum of log p(token | BOS, previous) over each text's tokens; BOS prepended, not scored."""
        prompts = [[self.facts.bos, *self.tokenize(t)] for t in texts]
        for text, prompt in zip(texts, prompts, strict=True):
            if len(prompt) < 2:
                raise NotSupported(f"an empty sentence cannot be scored: {text!r}")
        return self._map(lambda p: sentence_logprob(self._prompt_logprobs(p, 0)), prompts)

    @property
    def max_seq_len(self) -> int:
        """Tokens predicted per rolling window: the context less the one conditioning token."""
        return self.facts.n_ctx - 1

    def rolling_loglikelihood(self, docs: Sequence[str]) -> list[float]:
        """Whole-document log-likelihood with lm-eval's rolling windows; windows of all docs run together."""
        windows: list[tuple[int, list[int], list[int]]] = []
        for i, doc in enumerate(docs):
            tokens = self.tokenize(doc)
            if not tokens:
                raise NotSupported(f"document {i + 1} has no tokens to score")
            windows.extend((i, ctx, cont) for ctx, cont in rolling_windows(tokens, self.facts.bos, self.max_seq_len))

        def one(window: tuple[int, list[int], list[int]]) -> float:
            _, ctx, cont = window
            return continuation_from_prompt_logprobs(self._prompt_logprobs(ctx + cont, 0, len(ctx)), len(ctx))[0]

        sums = [0.0] * len(docs)
        for (i, _, _), ll in zip(windows, self._map(one, windows), strict=True):
            sums[i] += ll
        return sums

    def generate(self, prompts: Sequence[list[dict[str, str]]], max_tokens: int, seed: int) -> list[str]:
        """Greedy, seeded replies through the model's chat template, in waves of the engine's slots.

        Each wave starts from a cold cache (:meth:`Inference.cold_batch`), so every reply is the one
        the prompt gets alone, token for token, and a report's responses can be reproduced exactly.
        """

        def one(messages: list[dict[str, str]]) -> str:
            generation = self.inference.chat(ChatRequest(
                self.model, messages=[dict(m) for m in messages],
                options={"temperature": 0, "seed": seed, "num_predict": max_tokens}))
            self.requests += 1
            parts: list[str] = []
            for event in generation:
                if isinstance(event, TextChunk):
                    parts.append(event.text)
                elif isinstance(event, Failure):
                    raise event.error
            return "".join(parts)

        replies: list[str] = []
        rest = list(prompts)
        while rest:
            wave = max(1, min(self.parallel, self.inference.cold_batch(self.model)))
            replies += self._map(one, rest[:wave])
            rest = rest[wave:]
        return replies

    def next_token_distribution(self, text: str, top_k: int) -> TokenDistribution:
        """Surprisal inputs, entropy and top-k alternatives at every token of ``text``, and for the next one.

        One scoring request over ``[BOS] + tokens + [BOS]``: the last row predicts the (dummy) token after
        the text, so its alternatives are the next-token distribution; the dummy's own value is unused.
        """
        tokens = self.tokenize(text)
        if not tokens:
            raise NotSupported(f"the prompt {text!r} has no tokens to explain")
        k = max(top_k, ENTROPY_TOP_K)
        lps = self._prompt_logprobs([self.facts.bos, *tokens, self.facts.bos], k)
        stats: list[TokenStat] = []
        for lp in lps[1:-1]:
            assert lp is not None
            stats.append(TokenStat(token=lp.token, logprob=lp.logprob,
                                   entropy=entropy_from_top([a.logprob for a in lp.top], self.facts.n_vocab),
                                   top=tuple(Alternative(a.token, a.logprob) for a in lp.top[:top_k])))
        last = lps[-1]
        assert last is not None
        return TokenDistribution(
            tokens=tuple(stats),
            next_entropy=entropy_from_top([a.logprob for a in last.top], self.facts.n_vocab),
            next_top=tuple(Alternative(a.token, a.logprob) for a in last.top[:top_k]),
        )


def describe_failure(exc: BaseException) -> str:
    """One line for an audit that failed, for job status and logs."""
    if isinstance(exc, OpenzooError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
