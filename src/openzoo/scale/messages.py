"""What crosses Ray between the front and the replicas, as plain picklable values.

Errors travel as values (:class:`Outcome`), never as exceptions raised through Ray: Ray would wrap
them in its own task errors, and the front must re-raise the replica's :class:`OpenzooError` as it
was, with its code, status and hint, so that a replica answers exactly like a local engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from openzoo.errors import EngineError, OpenzooError

#: Broadcasts every replica runs (the board delivers them): load or unload a model, or forget cached
#: prefixes before an audit's wave.
CommandName = Literal["load", "unload", "cold_batch"]
#: One-replica calls (any replica answers) besides generation.
CALLS = frozenset({"embed", "tokenize", "tokenizer_info", "detokenize", "token_bytes"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """A replica's answer: a value, or the error it raised."""

    value: Any = None
    error: OpenzooError | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def capture(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn`` and keep its value or error; a bug becomes an :class:`EngineError`, never a lost reply."""
    try:
        return Outcome(fn())
    except OpenzooError as exc:
        return Outcome(error=exc)
    except Exception as exc:
        return Outcome(error=EngineError(f"replica failed: {type(exc).__name__}: {exc}"))


@dataclass(frozen=True, slots=True)
class Started:
    """The first item of a replica's generation stream: the request was checked, loaded and submitted."""

    model_name: str
    prompt_tokens: int
    replica: str


@dataclass(frozen=True, slots=True)
class Command:
    """A broadcast, numbered by the board, for the replicas that were live when it was posted."""

    id: int
    name: CommandName
    args: tuple[Any, ...]
