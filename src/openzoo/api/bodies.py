"""JSON request bodies: declared on each route as pydantic models, read with openzoo's rules.

A handler names its body as a parameter (``body: wire.GenerateBody``), so ``/openapi.json`` describes
exactly the body the route accepts and FastAPI validates it; a validation failure becomes each API's
own 400 envelope (``api/errors.py``). Routers use :class:`JsonBodyRoute`, which first applies what
FastAPI does not: the body size limit (``OPENZOO_MAX_BODY_BYTES``, 413 before anything is parsed) and
Ollama's leniency about the content type (``curl -d`` sends ``application/x-www-form-urlencoded``;
Ollama reads every body as JSON, so openzoo does too).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from openzoo.api.deps import services_of
from openzoo.errors import PayloadTooLarge

__all__ = ["JsonBodyRoute", "reply"]


def _is_json(content_type: bytes) -> bool:
    kind = content_type.split(b";", 1)[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


class JsonBodyRoute(APIRoute):
    """A route whose declared body is read under the size limit and as JSON whatever its content type."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # no declared body (e.g. a blob upload, streamed by the handler itself)

        async def read_then_handle(request: Request) -> Response:
            limit = services_of(request).config.max_body_bytes
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
            if len(await request.body()) > limit:  # read once; FastAPI reuses it
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
            headers = request.scope["headers"]
            if not any(k == b"content-type" and _is_json(v) for k, v in headers):
                request.scope["headers"] = [*((k, v) for k, v in headers if k != b"content-type"),
                                            (b"content-type", b"application/json")]
                request.__dict__.pop("_headers", None)  # Starlette caches the parsed headers
            return await handler(request)

        return read_then_handle


def reply(model: type[BaseModel], stream: str | None = None) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: its JSON reply's model and, for a route that streams, the stream's media
    type (NDJSON lines or SSE events, each holding one such object)."""
    content: dict[str, Any] = {"application/json": {}}
    if stream is not None:
        content[stream] = {"schema": {"type": "string", "description": f"a stream of {model.__name__} objects"}}
    return {200: {"model": model, "content": content}}
