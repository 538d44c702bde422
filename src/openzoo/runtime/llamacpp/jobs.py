"""What the engine tracks about a request: its handle, its job record, and the engine's running totals.

A request's events travel from the decode thread to the caller through its :class:`LlamaCppHandle`
(a thread-safe queue); everything else here is touched by the decode thread only, except
:class:`Totals`, which ``stats()`` reads under the engine's lock.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from openzoo.events import Done, Event, Failure, TokenLogprob
from openzoo.runtime.base import GenerationRequest
from openzoo.runtime.llamacpp.draft import Drafter, NgramPool
from openzoo.runtime.llamacpp.sampler import SamplerChain
from openzoo.runtime.llamacpp.stops import StopMatcher, Utf8Assembler

__all__ = ["EmbedJob", "Job", "LlamaCppHandle", "Totals", "scoring_only"]


class LlamaCppHandle:
    """A running generation: iterate for events; ``cancel()`` makes it leave at the next step."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._wake = wake
        self._finished = False
        self.cancelled = False

    def __iter__(self) -> Iterator[Event]:
        while not self._finished:
            event = self._events.get()
            if isinstance(event, Done | Failure):
                self._finished = True
            yield event

    def cancel(self) -> None:
        """Ask the engine to drop this request; its stream then ends with a ClientClosed failure."""
        self.cancelled = True
        self._wake()

    def _put(self, event: Event) -> None:
        self._events.put(event)


@dataclass(eq=False, slots=True)
class Job:
    """A request and everything the engine tracks about it while it runs."""

    request: GenerationRequest
    handle: LlamaCppHandle
    sampler: SamplerChain
    submitted_ns: int
    prompt: tuple[int, ...] = ()
    n_done: int = 0  # prompt tokens whose KV is in the cache
    next_token: int | None = None  # sampled, not yet decoded
    generated: list[int] = field(default_factory=list)
    utf8: Utf8Assembler = field(default_factory=Utf8Assembler)
    stops: StopMatcher | None = None
    pending_ids: list[int] = field(default_factory=list)
    pending_lps: list[TokenLogprob] = field(default_factory=list)
    prompt_lps: list[TokenLogprob | None] = field(default_factory=list)
    scored: bool = False
    prefill_start_ns: int = 0
    first_token_ns: int = 0
    drafter: Drafter | None = None  # built the first time the job's next token is guessed
    draft_rows: int = 0  # its guesses decoded in spare rows
    draft_tokens: int = 0  # of those, the right ones

    def propose(self, limit: int, pool: NgramPool | None = None) -> tuple[list[int], float]:
        """Guesses of the next ``limit`` tokens at most, and how often such guesses were right (see
        ``draft.py``); ``pool`` is the model's shared n-gram pool."""
        if self.drafter is None:
            self.drafter = Drafter(self.prompt + tuple(self.generated), pool)
        return self.drafter.propose(limit), self.drafter.score


def scoring_only(job: Job) -> bool:
    """A request for prompt log-probabilities and nothing generated: it never uses the generation KV."""
    return job.request.max_tokens == 0 and job.request.prompt_logprobs is not None


@dataclass(eq=False, slots=True)
class EmbedJob:
    """An ``embed()`` call waiting for the decode thread."""

    texts: Sequence[str]
    normalize: bool
    truncate: bool
    future: Future[tuple[list[list[float]], int]] = field(default_factory=Future)


@dataclass(slots=True)
class Totals:
    """Counters since load, for ``stats()`` and metrics (token totals change under the engine's lock)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens taken from a KV cache instead of evaluated
    draft_rows: int = 0  # guessed tokens decoded in a step's spare rows (draft.py)
    draft_tokens: int = 0  # of those, guesses that were right: tokens gained without a step
