"""Domain event streams → HTTP bodies: NDJSON for ``/api``, SSE for ``/v1``.

A blocking event iterator (the engine decodes in its own thread) is pumped by a worker thread into
an asyncio queue, so the event loop never blocks. When the client goes away the response's body
iterator is closed, which calls ``on_close`` (cancelling the engine request so its slot is freed at
the next decode step).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from openzoo.errors import OpenzooError
from openzoo.events import Done, Event, Failure, TextChunk

T = TypeVar("T")
_END = object()


async def iterate_in_thread(source: Iterable[T], on_close: Callable[[], None] | None = None) -> AsyncIterator[T]:
    """Iterate a blocking iterable in a worker thread, yielding its items on the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in source:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                if stop.is_set():
                    break
        except BaseException as exc:  # delivered to the consumer, which re-raises it
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            if isinstance(source, Iterator) and hasattr(source, "close"):
                source.close()
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    worker = threading.Thread(target=pump, name="openzoo-stream", daemon=True)
    worker.start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if on_close is not None:
            on_close()


def ndjson_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def sse_event(obj: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One SSE event; ``event`` names it (the Responses and Anthropic streams name each by its type)."""
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


class ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always runs ``on_close``, also when the client disconnected."""

    def __init__(self, content: AsyncIterator[bytes], *, media_type: str,
                 on_close: Callable[[], None] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            iterator = self.body_iterator
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            if self._on_close is not None:
                self._on_close()


class EventSequence(Protocol):
    """The named SSE events of one answer, built by a wire module (the Responses API's ``response.*``
    events, Anthropic's ``message_*`` events); each method returns the events to send now."""

    def start(self) -> list[dict[str, Any]]: ...

    def text_delta(self, text: str) -> list[dict[str, Any]]: ...

    def finish(self, done: Done) -> list[dict[str, Any]]: ...

    def failed(self, error: OpenzooError) -> list[dict[str, Any]]: ...


def named_sse(sequence: EventSequence, events: AsyncIterator[Event], *, on_close: Callable[[], None],
              on_done: Callable[[], Awaitable[None]] | None = None) -> ClosingStreamingResponse:
    """Stream a generation's events as ``sequence`` names them (``event: <type>`` + ``data:``);
    ``on_done`` runs once the last event is built (e.g. to store the finished answer)."""

    async def body() -> AsyncIterator[bytes]:
        batch = sequence.start()
        for event in batch:
            yield sse_event(event, event["type"])
        async for item in events:
            batch = []
            if isinstance(item, TextChunk):
                batch = sequence.text_delta(item.text)
            elif isinstance(item, Done):
                batch = sequence.finish(item)
                if on_done is not None:
                    await on_done()
            elif isinstance(item, Failure):
                batch = sequence.failed(item.error)
            for event in batch:
                yield sse_event(event, event["type"])

    return ClosingStreamingResponse(body(), media_type="text/event-stream", on_close=on_close)
