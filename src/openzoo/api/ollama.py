"""Ollama's ``/api/*`` routes: thin handlers over the domain services.

Each handler parses its body, calls one domain function and renders events with
``api/ollama_wire.py``. Errors before the first byte raise (the app maps them to a status and
``{"error": ...}``); errors after it become a final NDJSON ``{"error": ...}`` line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from openzoo import __version__, names
from openzoo.api import ollama_wire as wire
from openzoo.api.bodies import JsonBodyRoute, reply
from openzoo.api.deps import NDJSON, services_of
from openzoo.api.deps import generation_events as _events
from openzoo.api.deps import run_blocking as _run
from openzoo.api.streaming import ClosingStreamingResponse, iterate_in_thread, ndjson_line
from openzoo.errors import InvalidRequest, OpenzooError
from openzoo.events import Done, Failure, Progress, TextChunk
from openzoo.inference import ChatRequest, CompletionRequest, GenerationStream, KeepAlive
from openzoo.models import CreateSpec

router = APIRouter(route_class=JsonBodyRoute)
log = logging.getLogger("openzoo.api")


def _require_model(name: str) -> str:
    if not name:
        raise InvalidRequest("model is required")
    names.parse(name)
    return name


# --- server info -------------------------------------------------------------------------------


@router.get("/")
@router.head("/", include_in_schema=True)
async def root(request: Request) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return Response(status_code=307, headers={"Location": "/ui/"})
    return PlainTextResponse("Ollama is running")


@router.get("/api/version", responses=reply(wire.VersionReply))
@router.head("/api/version", include_in_schema=True)
async def version() -> dict[str, str]:
    return {"version": __version__}


# --- generation --------------------------------------------------------------------------------


def _ndjson(events: AsyncIterator[dict[str, Any]], on_close: Callable[[], None] | None) -> Response:
    async def body() -> AsyncIterator[bytes]:
        async for obj in events:
            yield ndjson_line(obj)

    return ClosingStreamingResponse(body(), media_type=NDJSON, on_close=on_close)


async def _load_only(request: Request, body: wire.InferenceBody, keep_alive: KeepAlive, *, chat: bool) -> Response:
    """A body with nothing to generate only loads the model (or unloads it with ``keep_alive: 0``)."""
    spec, _ = await _run(services_of(request).inference.load, body.model, keep_alive, body.options)
    out: dict[str, Any] = {"model": spec.name.display, "created_at": wire.now_rfc3339(), "done": True,
                           "done_reason": "unload" if keep_alive == 0 else "load"}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    return JSONResponse(out)


ChunkReply = Callable[[str, TextChunk, int, bool], dict[str, Any]]
DoneReply = Callable[[str, Done, str, list[dict[str, Any]] | None], dict[str, Any]]


async def _reply(generation: GenerationStream, body: wire.InferenceBody, chunk: ChunkReply,
                 done: DoneReply) -> Response:
    """Answer a started generation: one JSON object (``stream: false``) or NDJSON lines.

    ``chunk(model, text_chunk, top_logprobs, want_logprobs)`` renders a streamed piece and
    ``done(model, done, text, all_logprobs)`` the final object: with all the text and logprobs when
    not streaming, with ``""`` and ``None`` as the last NDJSON line.
    """
    name = generation.model_name
    want_lp = body.want_logprobs
    if not body.stream:
        text, lps, final, error = await _collect(generation, body.top_logprobs)
        if error is not None:
            raise error
        assert final is not None
        return JSONResponse(done(name, final, text, lps if want_lp else None))

    async def stream() -> AsyncIterator[dict[str, Any]]:
        async for event in _events(generation):
            if isinstance(event, TextChunk):
                yield chunk(name, event, body.top_logprobs, want_lp)
            elif isinstance(event, Done):
                yield done(name, event, "", None)
            elif isinstance(event, Failure):
                yield {"error": event.error.message}

    return _ndjson(stream(), generation.close)


@router.post("/api/generate", responses=reply(wire.GenerateReply, NDJSON))
async def generate(request: Request, body: wire.GenerateBody) -> Response:
    keep_alive = wire.keep_alive(body.keep_alive)
    _require_model(body.model)
    if not body.prompt and not body.suffix and not body.context:
        return await _load_only(request, body, keep_alive, chat=False)
    req = CompletionRequest(model=body.model, prompt=body.prompt, system=body.system, template=body.template,
                            suffix=body.suffix, context=body.context, raw=body.raw, format=body.format,
                            options=body.options, keep_alive=keep_alive, logprobs=body.logprobs,
                            top_logprobs=body.top_logprobs, images=body.images, think=body.think)
    generation = await _run(services_of(request).inference.completion, req)
    return await _reply(generation, body, wire.generate_chunk,
                        lambda name, done, text, lps: wire.generate_done(name, done, response=text, raw=body.raw,
                                                                         all_logprobs=lps))


@router.post("/api/chat", responses=reply(wire.ChatReply, NDJSON))
async def chat(request: Request, body: wire.ChatBody) -> Response:
    keep_alive = wire.keep_alive(body.keep_alive)
    _require_model(body.model)
    if not body.messages:
        return await _load_only(request, body, keep_alive, chat=True)
    req = ChatRequest(model=body.model, messages=body.messages, tools=body.tools, format=body.format,
                      options=body.options, keep_alive=keep_alive, logprobs=body.logprobs,
                      top_logprobs=body.top_logprobs, think=body.think)
    generation = await _run(services_of(request).inference.chat, req)
    return await _reply(generation, body, wire.chat_chunk,
                        lambda name, done, text, lps: wire.chat_done(name, done, content=text, all_logprobs=lps))


async def _collect(generation: GenerationStream,
                   top_logprobs: int) -> tuple[str, list[dict[str, Any]], Done | None, OpenzooError | None]:
    parts: list[str] = []
    lps: list[dict[str, Any]] = []
    done: Done | None = None
    async for event in _events(generation):
        if isinstance(event, TextChunk):
            parts.append(event.text)
            lps.extend(wire.logprobs(event, top_logprobs))
        elif isinstance(event, Done):
            done = event
        elif isinstance(event, Failure):
            return "".join(parts), lps, None, event.error
    return "".join(parts), lps, done, None


# --- embeddings --------------------------------------------------------------------------------


@router.post("/api/embed", responses=reply(wire.EmbedReply))
async def embed(request: Request, body: wire.EmbedBody) -> dict[str, Any]:
    _require_model(body.model)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    inputs = [text for text in inputs if text != ""] if isinstance(body.input, str) else inputs
    result = await _run(lambda: services_of(request).inference.embed(
        body.model, inputs, truncate=body.truncate, options=body.options,
        keep_alive=wire.keep_alive(body.keep_alive), dimensions=body.dimensions))
    out: dict[str, Any] = {"model": result.model, "embeddings": result.vectors}
    out.update({k: v for k, v in {"total_duration": result.total_ns, "load_duration": result.load_ns,
                                  "prompt_eval_count": result.prompt_tokens}.items() if v})
    return out


@router.post("/api/embeddings", responses=reply(wire.EmbeddingReply))
async def embeddings(request: Request, body: wire.EmbeddingsBody) -> dict[str, Any]:
    _require_model(body.model)
    inputs = [body.prompt] if body.prompt else []
    result = await _run(lambda: services_of(request).inference.embed(
        body.model, inputs, normalize=False, options=body.options, keep_alive=wire.keep_alive(body.keep_alive)))
    return {"embedding": result.vectors[0] if result.vectors else []}


# --- models ------------------------------------------------------------------------------------


@router.get("/api/tags", responses=reply(wire.TagsReply))
@router.head("/api/tags", include_in_schema=True)
async def tags(request: Request) -> dict[str, Any]:
    models = services_of(request).models.list_models()
    return {"models": [{"name": m.name, "model": m.name, "modified_at": wire.rfc3339(m.modified_at),
                        "size": m.size, "digest": m.digest.removeprefix("sha256:"),
                        "details": m.details.to_json()} for m in models]}


@router.post("/api/show", responses=reply(wire.ShowReply))
async def show(request: Request, body: wire.ModelBody) -> dict[str, Any]:
    from openzoo.show import show_model

    info = await _run(show_model, services_of(request).models, _require_model(body.target), body.verbose)
    return wire.show_response(info)


@router.get("/api/ps", responses=reply(wire.PsReply))
async def ps(request: Request) -> dict[str, Any]:
    loaded = await _run(services_of(request).inference.loaded)
    far_future = 4102444800.0  # what "forever" looks like on the wire (year 2100)
    return {"models": [{
        "name": info.spec.name, "model": info.spec.name, "size": info.memory_bytes,
        "digest": info.spec.manifest_digest.removeprefix("sha256:"), "details": info.spec.details,
        "expires_at": wire.rfc3339(info.expires_at if info.expires_at is not None else far_future),
        "size_vram": 0, "context_length": info.spec.n_ctx, "num_parallel": info.stats.total_slots,
        "batch_invariant": info.stats.batch_invariant,
        "prompt_cache": {"bytes": info.stats.prompt_cache_bytes, "budget_bytes": info.stats.prompt_cache_budget_bytes,
                         "entries": info.stats.prompt_cache_entries, "hits": info.stats.prompt_cache_hits_total,
                         "tokens_reused": info.stats.prompt_cache_tokens_total,
                         "evictions": info.stats.prompt_cache_evictions_total},
        **({"replicas": len(info.replicas)} if info.replicas else {}),
    } for info in loaded]}


@router.post("/api/copy")
async def copy(request: Request, body: wire.CopyBody) -> Response:
    services_of(request).models.copy(body.source, body.destination)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request, body: wire.ModelBody) -> Response:
    services = services_of(request)
    name = _require_model(body.target)
    spec = services.models.resolve(name)
    await _run(services.inference.unload, spec.digest)
    await _run(services.models.delete, name)
    return Response(status_code=200)


async def _progress_response(events: Iterator[Progress], stream: bool) -> Response:
    """Stream progress as NDJSON, or drain it off the loop and answer ``{"status": "success"}``.

    The generator first runs to its first event either way, so that early errors get a real status.
    """
    iterator = await _first_then_rest(events)
    if not stream:
        await _run(lambda: [None for _ in iterator])
        return JSONResponse({"status": "success"})

    async def body() -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in iterate_in_thread(iterator):
                yield wire.progress(event)
        except OpenzooError as exc:
            yield {"error": exc.message}
        except Exception as exc:  # the status line is sent: the client still gets Ollama's final error line
            log.exception("a progress stream failed after its first line")
            yield {"error": f"internal error: {type(exc).__name__}: {exc}"}

    return _ndjson(body(), None)


async def _first_then_rest(events: Iterator[Progress]) -> Iterator[Progress]:
    """Run a progress generator up to its first event so that early errors get a real status."""
    first = await _run(next, events, None)
    if first is None:
        return iter(())

    def chained() -> Iterator[Progress]:
        yield first
        yield from events

    return chained()


@router.post("/api/pull", responses=reply(wire.ProgressReply, NDJSON))
async def pull(request: Request, body: wire.ModelBody) -> Response:
    """Ollama's pull, for every reference :mod:`openzoo.transfers` knows (the embedded default, another
    zoo's ``HOST:PORT/ns/model:tag``, ``oci://…``); ``insecure`` keeps an unverifiable model, uncertified."""
    transfers = services_of(request).transfers
    events = await _run(lambda: transfers.pull(body.target, insecure=body.insecure))
    return await _progress_response(events, body.stream)


@router.post("/api/push", responses=reply(wire.ProgressReply, NDJSON))
async def push(request: Request, body: wire.ModelBody) -> Response:
    """Ollama's push: ``model`` names the destination too (``HOST:PORT/ns/model:tag`` or ``oci://…``)."""
    transfers = services_of(request).transfers
    events = await _run(lambda: transfers.push(body.target))
    return await _progress_response(events, body.stream)


@router.post("/api/create", responses=reply(wire.ProgressReply, NDJSON))
async def create(request: Request, body: wire.CreateBody) -> Response:
    name = _require_model(body.model or body.name)
    license_texts = (body.license,) if isinstance(body.license, str) else tuple(body.license or ())
    spec = CreateSpec(name=name, base=body.from_, files=body.files or {}, adapters=body.adapters or {},
                      template=body.template, system=body.system, parameters=body.parameters,
                      license=license_texts, messages=tuple(body.messages or ()))
    if body.quantize:
        from openzoo.quantize.run import quantize, request_from_api

        events = quantize(services_of(request), request_from_api(spec, body.quantize, imatrix=body.imatrix,
                                                                heldout=body.heldout, tokens=body.heldout_tokens))
        return await _progress_response(events, body.stream)
    return await _progress_response(services_of(request).models.create(spec), body.stream)


@router.head("/api/blobs/{digest}")
async def blob_exists(request: Request, digest: str) -> Response:
    exists = services_of(request).store.blobs.exists(names.normalize_digest(digest))
    return Response(status_code=200 if exists else 404)


@router.post("/api/blobs/{digest}", status_code=201, openapi_extra={"requestBody": {
    "required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def blob_upload(request: Request, digest: str) -> Response:
    expected = names.normalize_digest(digest)
    blobs = services_of(request).store.blobs
    if blobs.exists(expected):
        return Response(status_code=200)
    writer = blobs.writer()
    with writer:
        async for chunk in request.stream():
            await _run(writer.write, chunk)
        await _run(writer.commit, expected)
    return Response(status_code=201)
