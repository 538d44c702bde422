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


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    529: "overloaded_error"}


def anthropic_status(error: OpenzooError) -> int:
    """Anthropic's clients retry 529 (overloaded); a full queue is that."""
    return 529 if isinstance(error, ServerBusy) else error.http_status


def anthropic_body(error: OpenzooError) -> dict[str, Any]:
    """Anthropic's envelope (also the ``error`` event of its streams)."""
    status = anthropic_status(error)
    kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def is_anthropic_path(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def is_openai_path(path: str) -> bool:
    return (path.startswith("/v1/") or path in {"/tokenize", "/detokenize", "/tokenizer_info"}) \
        and not is_anthropic_path(path)


def envelope(path: str, error: OpenzooError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers of ``error`` in the envelope of ``path``'s API (the one mapping: the
    exception handlers, the security middleware and the web pages all answer through it)."""
    headers = {"X-Openzoo-Error-Code": error.code}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if is_anthropic_path(path):
        return anthropic_status(error), anthropic_body(error), headers
    if is_openai_path(path):
        return openai_status(error), openai_body(error), headers
    return error.http_status, ollama_body(error), headers


def error_response(request: Request, error: OpenzooError) -> JSONResponse:
    status, body, headers = envelope(request.url.path, error)
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope of the path's API, and make
    ``/openapi.json`` say so (each operation's 400 with its API's envelope, not FastAPI's 422)."""
    _document_envelopes(app)

    @app.exception_handler(OpenzooError)
    async def _openzoo(request: Request, exc: OpenzooError) -> JSONResponse:
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 for a body that does not fit its declared model → the API's own 400."""
        return error_response(request, InvalidRequest(describe_validation(exc.errors()),
                                                      param=validation_param(exc.errors())))

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
    """Pydantic's error list → one sentence naming the field and what was wrong.

    The body as a whole gets Ollama's words: ``missing request body``, ``invalid JSON: ...``,
    ``request body must be a JSON object``.
    """
    errors = list(errors)
    first = errors[0] if errors else {}
    where = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return f"invalid JSON: {(first.get('ctx') or {}).get('error', 'cannot parse the body')}"
    if where == ("body",) and first.get("type") == "missing":
        return "missing request body"
    if where == ("body",):
        return "request body must be a JSON object"
    parts = []
    for err in list(errors)[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid value')}")
    return "invalid request: " + "; ".join(parts)


def validation_param(errors: Any) -> str | None:
    """The field a validation error names, in OpenAI's ``param`` form (``messages[0].role``)."""
    errors = list(errors)
    if not errors:
        return None
    path = ""
    for part in errors[0].get("loc", ())[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or None


# --- the envelopes as /openapi.json describes them ------------------------------------------------

_ENVELOPES: dict[str, dict[str, Any]] = {
    "OllamaError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}},
    "AnthropicError": {"type": "object", "required": ["type", "error"], "properties": {
        "type": {"const": "error"}, "error": {"type": "object", "required": ["type", "message"],
                                              "properties": {"type": {"type": "string"},
                                                             "message": {"type": "string"}}}}},
}


def envelope_name(path: str) -> str:
    if is_anthropic_path(path):
        return "AnthropicError"
    return "OpenAIError" if is_openai_path(path) else "OllamaError"


def _document_envelopes(app: FastAPI) -> None:
    """Replace FastAPI's generated 422 (never sent: validation failures are 400) by the 400 each
    operation really answers, in its API's envelope."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(_ENVELOPES)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, operations in spec.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses["400"] = {"description": "Bad request: the body or a field is invalid (the error "
                                        "names it)", "content": {"application/json": {"schema": {
                                            "$ref": f"#/components/schemas/{envelope_name(path)}"}}}}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
