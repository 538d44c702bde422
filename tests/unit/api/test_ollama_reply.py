"""/api/generate and /api/chat share one body base and one reply helper; the wire format stays Ollama's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from fastapi import Response
from fastapi.responses import StreamingResponse

from openzoo.api import ollama
from openzoo.api import ollama_wire as wire
from openzoo.errors import OpenzooError
from openzoo.events import Done, Event, Failure, Progress, TextChunk, TokenLogprob
from openzoo.inference import Generation

SHARED = {"model": "", "stream": True, "format": None, "options": None, "keep_alive": None, "think": None,
          "logprobs": False, "top_logprobs": 0}


def test_request_bodies_keep_their_fields_and_defaults() -> None:
    generate = {**SHARED, "prompt": "", "suffix": None, "images": None, "system": None, "template": None,
                "context": None, "raw": False}
    chat = {**SHARED, "messages": [], "tools": None}
    assert wire.GenerateBody().model_dump() == generate
    assert wire.ChatBody().model_dump() == chat
    body = wire.ChatBody.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                         "stream": False, "keep_alive": "5m", "unknown": 1})
    assert (body.model, body.stream, body.keep_alive) == ("m", False, "5m")
    assert not wire.GenerateBody().want_logprobs
    assert wire.GenerateBody(top_logprobs=2).want_logprobs and wire.ChatBody(logprobs=True).want_logprobs


class FakeGeneration:
    def __init__(self, events: list[Event]) -> None:
        self.model_name = "tiny:1"
        self.events = events
        self.closed = False

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def close(self) -> None:
        self.closed = True


LP = TokenLogprob("He", -0.5, 7, b"He")
EVENTS: list[Event] = [TextChunk("He", (7,), (LP,)), TextChunk("llo", (8,)), Done("stop", 3, 2, context=(1, 2))]


def _reply(events: list[Event], body: wire.InferenceBody) -> tuple[FakeGeneration, Response]:
    generation = FakeGeneration(events)
    if isinstance(body, wire.GenerateBody):
        raw = body.raw
        response = asyncio.run(ollama._reply(
            cast(Generation, generation), body, wire.generate_chunk,
            lambda n, d, text, lps: wire.generate_done(n, d, response=text, raw=raw, all_logprobs=lps)))
    else:
        response = asyncio.run(ollama._reply(
            cast(Generation, generation), body, wire.chat_chunk,
            lambda n, d, text, lps: wire.chat_done(n, d, content=text, all_logprobs=lps)))
    return generation, response


def _lines(response: Response) -> list[dict[str, Any]]:
    assert isinstance(response, StreamingResponse)

    async def read() -> list[bytes]:
        return [chunk if isinstance(chunk, bytes) else str(chunk).encode() async for chunk in response.body_iterator]

    out = [json.loads(line) for line in b"".join(asyncio.run(read())).splitlines()]
    for obj in out:
        obj.pop("created_at", None)
    return out


def test_non_streamed_generate_collects_text_and_logprobs() -> None:
    _, response = _reply(EVENTS, wire.GenerateBody(model="tiny:1", prompt="x", stream=False, logprobs=True))
    out = json.loads(bytes(response.body))
    out.pop("created_at")
    assert out == {"model": "tiny:1", "response": "Hello", "done": True, "done_reason": "stop", "context": [1, 2],
                   "prompt_eval_count": 3, "eval_count": 2,
                   "logprobs": [{"token": "He", "logprob": -0.5, "bytes": [72, 101]}]}
    _, plain = _reply(EVENTS, wire.GenerateBody(model="tiny:1", prompt="x", stream=False, raw=True))
    assert "logprobs" not in json.loads(bytes(plain.body)) and "context" not in json.loads(bytes(plain.body))


def test_non_streamed_failure_raises_before_the_first_byte() -> None:
    with pytest.raises(OpenzooError, match="boom"):
        _reply([TextChunk("He"), Failure(OpenzooError("boom"))], wire.ChatBody(model="tiny:1", stream=False))


def test_streamed_chat_is_ndjson_chunks_then_done_or_error() -> None:
    generation, response = _reply(EVENTS, wire.ChatBody(model="tiny:1"))
    assert response.media_type == "application/x-ndjson"
    assert _lines(response) == [
        {"model": "tiny:1", "message": {"role": "assistant", "content": "He"}, "done": False},
        {"model": "tiny:1", "message": {"role": "assistant", "content": "llo"}, "done": False},
        {"model": "tiny:1", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
         "prompt_eval_count": 3, "eval_count": 2},
    ]
    assert generation.closed
    _, failed = _reply([TextChunk("He"), Failure(OpenzooError("boom"))], wire.GenerateBody(model="m", prompt="x"))
    assert _lines(failed) == [{"model": "tiny:1", "response": "He", "done": False}, {"error": "boom"}]


def test_streamed_generate_sends_logprobs_per_chunk_and_context_at_the_end() -> None:
    _, response = _reply(EVENTS, wire.GenerateBody(model="tiny:1", prompt="x", top_logprobs=1))
    lines = _lines(response)
    assert lines[0]["logprobs"] == [{"token": "He", "logprob": -0.5, "bytes": [72, 101], "top_logprobs": []}]
    assert lines[1]["logprobs"] == []
    assert lines[2] == {"model": "tiny:1", "response": "", "done": True, "done_reason": "stop", "context": [1, 2],
                        "prompt_eval_count": 3, "eval_count": 2}


def _progress(fail_at: int | None = None) -> Iterator[Progress]:
    for i, status in enumerate(["pulling manifest", "verifying", "success"]):
        if i == fail_at:
            raise OpenzooError("broken")
        yield Progress(status, completed=i)


def test_progress_is_streamed_or_drained_and_early_errors_raise() -> None:
    streamed = asyncio.run(ollama._progress_response(_progress(), True))
    assert _lines(streamed) == [{"status": "pulling manifest"}, {"status": "verifying", "completed": 1},
                                {"status": "success", "completed": 2}]
    assert _lines(asyncio.run(ollama._progress_response(_progress(fail_at=1), True))) == [
        {"status": "pulling manifest"}, {"error": "broken"}]
    drained = asyncio.run(ollama._progress_response(_progress(), False))
    assert json.loads(bytes(drained.body)) == {"status": "success"}
    with pytest.raises(OpenzooError, match="broken"):
        asyncio.run(ollama._progress_response(_progress(fail_at=0), True))
    with pytest.raises(OpenzooError, match="broken"):
        asyncio.run(ollama._progress_response(_progress(fail_at=2), False))
