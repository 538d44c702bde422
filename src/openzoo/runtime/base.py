"""The runtime seam: what an inference engine offers the rest of openzoo.

The domain layer (``generate.py``) turns API requests into :class:`GenerationRequest` objects made of
token ids and sampling settings; an engine (``runtime/llamacpp/``) runs them, many at once, and answers
with the domain events of ``events.py``. Nothing above this seam knows about llama.cpp, and nothing
below it knows about HTTP, templates or model names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from openzoo.events import Event


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling settings of one request; defaults are Ollama's.

    ``temperature <= 0`` means greedy decoding. ``seed < 0`` means a random seed. ``logit_bias`` adds a
    bias to chosen tokens' logits before any other sampler (OpenAI's ``logit_bias``: -100 bans a token,
    100 all but forces it), as ``(token id, bias)`` pairs.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1
    logit_bias: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation, in tokens.

    ``prompt`` is used verbatim: the caller has already applied any template and BOS token.
    ``max_tokens < 0`` means until end-of-generation or the end of the sequence's context;
    ``max_tokens == 0`` means only evaluate the prompt (for ``prompt_logprobs``).
    ``prompt_logprobs`` set to ``k >= 0`` asks for the log-probability of every prompt token given the
    ones before it (``None`` for the first), each with its ``k`` most likely alternatives; the
    alternatives always include the argmax when ``k >= 1``. ``prompt_logprobs_from`` is the first prompt
    position scored (earlier entries are ``None``): a scorer that wants only a continuation's tokens
    skips the context's output rows, each of which costs a full vocabulary projection; the values
    computed are the same either way.
    """

    prompt: tuple[int, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_tokens: int = -1
    stop: tuple[str, ...] = ()
    grammar: str | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    prompt_logprobs: int | None = None
    prompt_logprobs_from: int = 1


class GenerationHandle(Protocol):
    """A running generation: iterate for events, cancel to leave the batch at the next step.

    Iteration yields :class:`~openzoo.events.TextChunk` events and ends with exactly one
    :class:`~openzoo.events.Done` or :class:`~openzoo.events.Failure`. Iteration blocks the calling
    thread; the API runs it in a worker thread.
    """

    def __iter__(self) -> Iterator[Event]: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to load a model: context per sequence, parallel sequences, threads, LoRA adapters, whether
    decode steps may carry guesses of the next tokens (engines that can; output is the same), and whether
    a request's output must not depend on the batch around it (``batch_invariant``; off is faster)."""

    n_ctx: int = 4096
    n_parallel: int = 4  # 0: auto, from the KV cache per slot and free memory (runtime/sizing.py)
    n_threads: int = 0  # 0: all cores
    max_queue: int = 512
    adapters: tuple[tuple[Path, float], ...] = ()
    guess_tokens: bool = True
    batch_invariant: bool = True
    prompt_cache_bytes: int = -1  # RAM for saved KV states of finished sequences; -1: auto, 0: off


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Counters for ``/metrics`` and ``/api/ps``."""

    busy_slots: int
    total_slots: int
    queue_depth: int
    requests_total: int
    prompt_tokens_total: int
    completion_tokens_total: int
    draft_rows_total: int = 0  # guessed next tokens decoded in spare rows (llama.cpp engine, draft.py)
    draft_tokens_total: int = 0  # of those, right guesses: tokens gained without a decode step of their own
    prompt_cache_hits_total: int = 0  # prompts that got a saved KV prefix restored from the RAM prompt cache
    prompt_cache_tokens_total: int = 0  # prompt tokens those restores saved from being read
    prompt_cache_evictions_total: int = 0  # entries dropped to stay within the budget
    prompt_cache_bytes: int = 0  # held now
    prompt_cache_entries: int = 0  # held now
    prompt_cache_budget_bytes: int = 0
    batch_invariant: bool = True  # output independent of the batch around it (OPENZOO_BATCH_INVARIANT)


class LoadedModel(Protocol):
    """A model in memory, ready to run requests concurrently (continuous batching)."""

    @property
    def n_ctx(self) -> int:
        """Context length available to one sequence."""
        ...

    @property
    def n_ctx_train(self) -> int: ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def bos_token_id(self) -> int | None: ...

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Tokens that end generation (EOS, EOT and other end-of-generation tokens)."""
        ...

    @property
    def memory_bytes(self) -> int:
        """Approximate resident memory (weights plus KV cache)."""
        ...

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        """Text to tokens; ``add_special`` adds the BOS token where the model wants one."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes of one token's piece (may be part of a UTF-8 character)."""
        ...

    def submit(self, request: GenerationRequest) -> GenerationHandle:
        """Start a generation; raises :class:`~openzoo.errors.ServerBusy` when the queue is full."""
        ...

    def embed(self, texts: Sequence[str], *, normalize: bool = True,
              truncate: bool = True) -> tuple[list[list[float]], int]:
        """Mean-pooled embeddings of each text and the number of tokens read."""
        ...

    def stats(self) -> EngineStats: ...

    def clear_cache(self) -> None:
        """Forget cached prompt prefixes: requests submitted next start from a cold cache."""
        ...

    def close(self) -> None:
        """Stop the decode loop, fail running requests and free all memory."""
        ...


class Backend(Protocol):
    """An inference engine family (llama.cpp now; more later)."""

    name: str

    def load(self, path: Path, options: LoadOptions) -> LoadedModel: ...
