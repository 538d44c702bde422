"""What every router shares: the process's services (kept on ``app.state``, never in globals), reading a
JSON body, running a blocking domain call off the event loop, and a generation's events on the loop.

Routers import these from here, never from each other.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from openzoo.api.errors import describe_validation
from openzoo.api.streaming import iterate_in_thread
from openzoo.errors import InvalidRequest, PayloadTooLarge
from openzoo.events import Event
from openzoo.inference import GenerationStream
from openzoo.services import Services

__all__ = ["NDJSON", "generation_events", "read_body", "run_blocking", "services_of"]

B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")
NDJSON = "application/x-ndjson"


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def read_body(request: Request, model: type[B]) -> B:
    """Parse a JSON body into ``model``; every failure is a 400 with a message that says why."""
    limit = services_of(request).config.max_body_bytes
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if not raw.strip():
        raise InvalidRequest("missing request body")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc.errors())) from exc


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking domain call (model loading, file hashing) off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


async def generation_events(generation: GenerationStream) -> AsyncIterator[Event]:
    async for event in iterate_in_thread(generation, on_close=generation.close):
        yield event
