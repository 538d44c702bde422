"""The one domain event stream.

Everything long-running in openzoo (generation, import, pull, create, audits, fine-tuning) yields these
events. ``api/streaming.py`` renders them as NDJSON or SSE, ``cli/output.py`` as text and progress
bars; no producer knows which surface it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openzoo.errors import OpenzooError


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One alternative at a position: the token's text, log-probability and raw bytes."""

    token: str
    logprob: float
    token_id: int
    bytes: bytes


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """The chosen token's log-probability at a position, with the top alternatives when asked for."""

    token: str
    logprob: float
    token_id: int
    bytes: bytes
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class TextChunk:
    """A piece of generated text.

    ``text`` is whole UTF-8 characters; ``tokens`` lists the tokens that produced it (a character split
    over two tokens arrives in one chunk), each with its log-probability when asked for.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of a long operation: a status line, and bytes or steps done out of a total."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for, with its arguments parsed into an object."""

    name: str
    arguments: dict[str, Any]
    id: str = ""
    index: int = 0


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a generation: why it stopped and what it cost (durations in nanoseconds)."""

    reason: str  # stop | length | load | unload | tool_calls
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_ns: int = 0
    load_ns: int = 0
    prompt_eval_ns: int = 0
    eval_ns: int = 0
    context: tuple[int, ...] = ()
    prompt_logprobs: tuple[TokenLogprob | None, ...] = ()
    prompt_token_ids: tuple[int, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    draft_tokens: int = 0  # guesses of its next tokens decoded in spare rows (llama.cpp engine, draft.py)
    draft_accepted: int = 0  # of those, the right ones: tokens it got without a step of their own


@dataclass(frozen=True, slots=True)
class Failure:
    """An error that happened after a stream had started."""

    error: OpenzooError


Event = TextChunk | Progress | Done | Failure
