"""Turning a stream of token bytes into text a client may see.

Two problems sit between the sampler and a :class:`~openzoo.events.TextChunk`:

* a token is a run of *bytes*, and a UTF-8 character may be split over two tokens (emoji, CJK), so
  bytes are buffered until a whole character is there (:class:`Utf8Assembler`);
* a stop string may arrive split over several tokens, and neither the stop string nor anything after
  it may be shown, so text that could still be the start of a stop string is held back until the
  next token settles it (:class:`StopMatcher`).

Both are pure logic, kept apart from the engine so they can be tested without a model.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["StopMatcher", "StopResult", "Utf8Assembler"]


class Utf8Assembler:
    """Incremental UTF-8 decoder that only ever returns whole characters.

    Incomplete multi-byte sequences wait for the next token's bytes; bytes that can never form a
    character are replaced with U+FFFD instead of raising, because a model may emit any byte.
    """

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """Add bytes; return the characters they complete (maybe ``""``)."""
        return self._decoder.decode(data, final=False)

    def flush(self) -> str:
        """End of stream: return what is left, a dangling partial character becoming U+FFFD."""
        return self._decoder.decode(b"", final=True)

    @property
    def pending(self) -> bool:
        """True while bytes of an unfinished character are buffered."""
        buffered, _ = self._decoder.getstate()
        return bool(buffered)


@dataclass(frozen=True, slots=True)
class StopResult:
    """What :meth:`StopMatcher.feed` lets through: safe text, and the stop string if one was hit."""

    text: str
    stop: str | None = None


class StopMatcher:
    """Finds stop strings in streamed text, holding back what could be the start of one.

    ``feed`` returns the text that can be shown now. If a stop string is complete, the text before
    it is returned with ``stop`` set, and everything from the stop string on is dropped; the matcher
    must not be fed again. ``flush`` returns the held-back tail when generation ends for another
    reason (end of generation token, length).
    """

    __slots__ = ("_buf", "_max_hold", "_stopped", "_stops")

    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self._stops: tuple[str, ...] = tuple(s for s in stops if s)
        self._max_hold = max((len(s) for s in self._stops), default=1) - 1
        self._buf = ""
        self._stopped = False

    @property
    def held(self) -> str:
        """Text withheld because it may begin a stop string."""
        return self._buf

    def feed(self, text: str) -> StopResult:
        """Add text; return what is safe to show and the stop string if one completed."""
        if self._stopped:
            raise RuntimeError("StopMatcher fed after a stop string matched")
        if not self._stops:
            return StopResult(text)
        buf = self._buf + text
        # The earliest stop string wins: nothing after its start may be shown.
        best: int = -1
        best_stop: str | None = None
        for stop in self._stops:
            i = buf.find(stop)
            if i >= 0 and (best < 0 or i < best):
                best, best_stop = i, stop
        if best_stop is not None:
            self._stopped = True
            self._buf = ""
            return StopResult(buf[:best], best_stop)
        hold = self._holdback(buf)
        cut = len(buf) - hold
        self._buf = buf[cut:]
        return StopResult(buf[:cut])

    def flush(self) -> str:
        """Return (and forget) the held-back tail; used when generation ends without a stop."""
        out, self._buf = self._buf, ""
        return out

    def _holdback(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of some stop string."""
        for k in range(min(len(buf), self._max_hold), 0, -1):
            tail = buf[-k:]
            if any(stop.startswith(tail) for stop in self._stops):
                return k
        return 0
