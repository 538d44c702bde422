"""The error tree mapped onto HTTP, once: Ollama's envelope on ``/api``, OpenAI's on ``/v1``.

Each surface's envelope is a pure function of an :class:`OpenzooError`; the app installs one exception
handler that picks the envelope by path, so handlers just raise.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openzoo.errors import EngineError, InvalidRequest, NotFound, OpenzooError, ServerBusy, Unauthorized

log = logging.getLogger("openzoo.api")

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error",
                 503: "server_error"}


def ollama_body(error: OpenzooError) -> dict[str, Any]:
    return {"error": error.message}


def openai_status(error: OpenzooError) -> int:
    """OpenAI clients retry 429 with back-off; a full queue is exactly that."""
    return 429 if isinstance(error, ServerBusy) else error.http_status


def openai_body(error: OpenzooError) -> dict[str, Any]:
    status = openai_status(error)
    return {"error": {"message": error.message,
                      "type": _OPENAI_TYPES.get(status, "api_error"),
                      "param": error.param,
                      "code": error.code}}


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/") or path in {"/tokenize", "/detokenize", "/tokenizer_info"}


def envelope(path: str, error: OpenzooError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers of ``error`` in the envelope of ``path``'s API (the one mapping: the
    exception handlers, the security middleware and the web pages all answer through it)."""
    headers = {"X-Openzoo-Error-Code": error.code}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if is_openai_path(path):
        return openai_status(error), openai_body(error), headers
    return error.http_status, ollama_body(error), headers


def error_response(request: Request, error: OpenzooError) -> JSONResponse:
    status, body, headers = envelope(request.url.path, error)
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope of the path's API."""

    @app.exception_handler(OpenzooError)
    async def _openzoo(request: Request, exc: OpenzooError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, InvalidRequest(describe_validation(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: OpenzooError = NotFound(f"{request.url.path} not found")
        elif exc.status_code == 405:
            error = InvalidRequest(f"method {request.method} not allowed on {request.url.path}")
            error.http_status = 405
        else:
            error = OpenzooError(str(exc.detail))
            error.http_status = exc.status_code
        return error_response(request, error)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, EngineError(f"internal error: {type(exc).__name__}: {exc}"))


def describe_validation(errors: Any) -> str:
    """Pydantic's error list → one sentence naming the field and what was wrong."""
    parts = []
    for err in list(errors)[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid value')}")
    return "invalid request: " + "; ".join(parts)
