"""OpenAI Responses API routes (``/v1/responses``): a thin translator onto the one chat path.

``POST`` turns input items (and, with ``previous_response_id``, the stored conversation before them)
into a domain chat request, answers with a response object or its event stream, and keeps the
response in the catalog unless ``store`` is false; ``GET`` and ``DELETE`` read and remove kept ones.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from openzoo.api import responses_wire as wire
from openzoo.api.bodies import JsonBodyRoute, reply
from openzoo.api.deps import generation_events as _events
from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.api.ollama_wire import keep_alive
from openzoo.api.openai import _collect
from openzoo.api.streaming import named_sse
from openzoo.errors import InvalidRequest, NotFound
from openzoo.inference import ChatRequest
from openzoo.services import Services

router = APIRouter(route_class=JsonBodyRoute)


def _history(services: Services, body: wire.ResponsesBody) -> list[dict[str, Any]]:
    """Every input item of the conversation: the stored one continued, then this request's."""
    items = wire.input_items(body.input)
    if body.previous_response_id is None:
        return items
    previous = services.responses.get(body.previous_response_id)
    if previous is None:
        raise InvalidRequest(f"Previous response with id '{body.previous_response_id}' not found.",
                             param="previous_response_id")
    return [*previous.history, *previous.response.get("output", []), *items]


def _save(services: Services, body: wire.ResponsesBody, response: dict[str, Any],
          history: list[dict[str, Any]]) -> None:
    if body.store:
        services.responses.save(response, history)


@router.post("/v1/responses", responses=reply(wire.ResponseObject, "text/event-stream"))
async def create_response(request: Request, body: wire.ResponsesBody) -> Response:
    wire.check_unsupported(body)
    services = services_of(request)
    history = await _run(_history, services, body)
    chat = ChatRequest(model=body.model, messages=wire.messages(history, body.instructions),
                       tools=wire.domain_tools(body), format=wire.output_format(body), options=wire.options(body),
                       keep_alive=keep_alive(body.keep_alive))
    generation = await _run(services.inference.chat, chat)
    response_id, created_at = wire.new_id("resp"), time.time()

    if not body.stream:
        chunks, done = await _collect(generation)
        output = wire.output_of(done, "".join(c.text for c in chunks), body)
        answer = wire.response_object(response_id, created_at, body, status=wire.status_of(done), output=output,
                                      usage_=wire.usage(done.prompt_tokens, done.completion_tokens))
        await _run(_save, services, body, answer, history)
        return JSONResponse(answer)

    sequence = wire.EventSequence(response_id, created_at, body)

    async def save() -> None:
        if sequence.final is not None:
            await _run(_save, services, body, sequence.final, history)

    return named_sse(sequence, _events(generation), on_close=generation.close, on_done=save)


def _stored(services: Services, response_id: str) -> dict[str, Any]:
    found = services.responses.get(response_id)
    if found is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    return found.response


@router.get("/v1/responses/{response_id}", responses=reply(wire.ResponseObject))
async def get_response(request: Request, response_id: str) -> dict[str, Any]:
    return await _run(_stored, services_of(request), response_id)


@router.delete("/v1/responses/{response_id}", responses=reply(wire.DeletedResponse))
async def delete_response(request: Request, response_id: str) -> dict[str, Any]:
    services = services_of(request)
    if not await _run(services.responses.delete, response_id):
        raise NotFound(f"Response with id '{response_id}' not found.")
    return wire.deleted(response_id)
