"""Anthropic Messages API routes (``/v1/messages``): a thin translator onto the one chat path.

The official ``anthropic`` client works against openzoo by changing only ``base_url``: it sends its
key as ``x-api-key`` (accepted where ``OPENZOO_API_KEY`` is set) and ``anthropic-version`` (accepted,
any value). Errors use Anthropic's envelope (``api/errors.py`` picks it by path).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from openzoo.api import anthropic_wire as wire
from openzoo.api.bodies import JsonBodyRoute, reply
from openzoo.api.deps import generation_events as _events
from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.api.ollama_wire import keep_alive
from openzoo.api.openai import _collect
from openzoo.api.streaming import named_sse
from openzoo.inference import ChatRequest, count_chat_tokens

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/v1/messages", responses=reply(wire.MessageObject, "text/event-stream"))
async def create_message(request: Request, body: wire.MessagesBody) -> Response:
    wire.check_unsupported(body)
    services = services_of(request)
    chat = ChatRequest(model=body.model, messages=wire.messages(body), tools=wire.domain_tools(body),
                       format=wire.output_format(body), options=wire.options(body),
                       keep_alive=keep_alive(body.keep_alive))
    generation = await _run(services.inference.chat, chat)
    message_id = wire.new_id("msg")

    if not body.stream:
        chunks, done = await _collect(generation)
        content = wire.content_of(done, "".join(c.text for c in chunks), wire.single_call(body))
        return JSONResponse(wire.message_object(message_id, body.model, content, wire.stop_reason(done),
                                                wire.usage(done.prompt_tokens, done.completion_tokens)))

    sequence = wire.EventSequence(message_id, body, generation.prompt_tokens)
    return named_sse(sequence, _events(generation), on_close=generation.close)


@router.post("/v1/messages/count_tokens", responses=reply(wire.TokenCount))
async def count_tokens(request: Request, body: wire.CountTokensBody) -> dict[str, Any]:
    """The prompt's token count as ``/v1/messages`` would build it (template, system, tools)."""
    wire.check_unsupported(body)
    services = services_of(request)
    chat = ChatRequest(model=body.model, messages=wire.messages(body), tools=wire.domain_tools(body))
    return {"input_tokens": await _run(count_chat_tokens, services.inference, chat)}
