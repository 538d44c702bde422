"""OpenAI-compatible routes (``/v1/*``) and llama.cpp-style tokenizer routes, as thin translators.

Several prompts, or ``n`` choices, become several domain generations submitted together, so the
continuous-batching engine decodes them at once instead of one after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from openzoo.api import openai_wire as wire
from openzoo.api.bodies import JsonBodyRoute, reply
from openzoo.api.deps import generation_events as _events
from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.api.ollama_wire import b64_float32, keep_alive
from openzoo.api.streaming import ClosingStreamingResponse, sse_event
from openzoo.errors import InvalidRequest, ModelNotFound, OpenzooError
from openzoo.events import Done, Event, Failure, TextChunk
from openzoo.inference import ChatRequest, CompletionRequest, GenerationStream
from openzoo.models import DEFAULT_MODEL
from openzoo.services import Services

router = APIRouter(route_class=JsonBodyRoute)
SSE = "text/event-stream"


async def _start_all(starts: list[Any]) -> list[GenerationStream]:
    """Start generations; if one fails, close those already started and re-raise."""
    started: list[GenerationStream] = []
    try:
        for start in starts:
            started.append(await _run(start))
    except BaseException:
        for generation in started:
            generation.close()
        raise
    return started


async def _merged(generations: list[GenerationStream]) -> AsyncIterator[tuple[int, Event]]:
    """Events of several generations as they arrive, tagged with their index."""
    queue: asyncio.Queue[tuple[int, Event | None]] = asyncio.Queue()

    async def pump(index: int, generation: GenerationStream) -> None:
        try:
            async for event in _events(generation):
                await queue.put((index, event))
        finally:
            await queue.put((index, None))

    tasks = [asyncio.create_task(pump(i, g)) for i, g in enumerate(generations)]
    remaining = len(tasks)
    try:
        while remaining:
            index, event = await queue.get()
            if event is None:
                remaining -= 1
                continue
            yield index, event
    finally:
        for task in tasks:
            task.cancel()
        for generation in generations:
            generation.close()


def _close_all(generations: list[GenerationStream]) -> Any:
    def close() -> None:
        for generation in generations:
            generation.close()

    return close


# --- chat --------------------------------------------------------------------------------------


@router.post("/v1/chat/completions", responses=reply(wire.ChatCompletion, SSE))
async def chat_completions(request: Request, body: wire.ChatCompletionBody) -> Response:
    wire.check_unsupported(body)
    services = services_of(request)
    options = wire.options_from(body)
    messages, tools, fmt = wire.messages(body.messages), wire.tools_for(body), wire.chat_format(body)
    bias = wire.logit_bias(body.logit_bias)
    single_call = body.parallel_tool_calls is False
    seeds = [options.get("seed")] * body.n
    if body.n > 1 and options.get("seed") is not None:
        seeds = [int(options["seed"]) + i for i in range(body.n)]

    def start(seed: Any) -> Any:
        return lambda: services.inference.chat(ChatRequest(
            model=body.model, messages=messages, tools=tools, format=fmt,
            options={**options, **({"seed": seed} if seed is not None else {})},
            keep_alive=keep_alive(body.keep_alive), logprobs=body.logprobs,
            top_logprobs=body.top_logprobs or 0, logit_bias=bias))

    generations = await _start_all([start(seed) for seed in seeds])
    cid, created = wire.new_id("chatcmpl"), wire.now()
    model = body.model
    prompt_tokens = generations[0].prompt_tokens

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            completion_tokens = 0
            for i in range(len(generations)):
                yield sse_event(wire.chat_chunk(cid, created, model, i, {"role": "assistant", "content": ""}))
            async for index, event in _merged(generations):
                if isinstance(event, TextChunk):
                    lps = wire.logprob_content(event.logprobs) if body.logprobs else None
                    yield sse_event(wire.chat_chunk(cid, created, model, index, wire.chat_text_delta(event),
                                                    lps=lps))
                elif isinstance(event, Done):
                    completion_tokens += event.completion_tokens
                    delta: dict[str, Any] = {}
                    if event.tool_calls:
                        delta["tool_calls"] = wire.tool_calls(event, single_call)
                    yield sse_event(wire.chat_chunk(cid, created, model, index, delta, wire.finish_reason(event)))
                elif isinstance(event, Failure):
                    yield sse_event(_openai_error(event.error))
            if include_usage:
                yield sse_event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                 "choices": [], "usage": wire.usage(prompt_tokens, completion_tokens)})
            yield sse_event("[DONE]")

        return ClosingStreamingResponse(stream(), media_type=SSE, on_close=_close_all(generations))

    results = await asyncio.gather(*(_collect(g) for g in generations))
    choices, completion_tokens = [], 0
    for index, (chunks, done) in enumerate(results):
        completion_tokens += done.completion_tokens
        message: dict[str, Any] = {"role": "assistant", "content": "".join(c.text for c in chunks)}
        if done.tool_calls:
            message["tool_calls"] = wire.tool_calls(done, single_call)
            message["content"] = None
        choice: dict[str, Any] = {"index": index, "message": message, "finish_reason": wire.finish_reason(done),
                                  "logprobs": None}
        if body.logprobs:
            choice["logprobs"] = {"content": wire.logprob_content(tuple(lp for c in chunks for lp in c.logprobs))}
        choices.append(choice)
    return JSONResponse({"id": cid, "object": "chat.completion", "created": created, "model": model,
                         "system_fingerprint": "openzoo", "choices": choices,
                         "usage": wire.usage(prompt_tokens, completion_tokens)})


async def _collect(generation: GenerationStream) -> tuple[list[TextChunk], Done]:
    chunks: list[TextChunk] = []
    async for event in _events(generation):
        if isinstance(event, TextChunk):
            chunks.append(event)
        elif isinstance(event, Done):
            return chunks, event
        elif isinstance(event, Failure):
            raise event.error
    raise OpenzooError("generation ended without a result")


def _openai_error(error: OpenzooError) -> dict[str, Any]:
    from openzoo.api.errors import openai_body

    return openai_body(error)


# --- completions -------------------------------------------------------------------------------


def _prompts(prompt: str | list[str] | list[int] | list[list[int]]) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise InvalidRequest("prompt must not be empty", param="prompt")
    items: list[Any] = list(prompt)
    if all(isinstance(p, int) for p in items):
        return [items]
    if all(isinstance(p, str) for p in items):
        return items
    if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in items):
        return [list(p) for p in items]
    raise InvalidRequest("prompt must be a string, a list of strings, a token list or a list of token lists",
                         param="prompt")


@router.post("/v1/completions", responses=reply(wire.Completion, SSE))
async def completions(request: Request, body: wire.CompletionBody) -> Response:
    wire.check_unsupported(body)
    services = services_of(request)
    options = wire.options_from(body)
    prompts = _prompts(body.prompt)
    if body.echo and body.stream and body.logprobs is not None:
        raise InvalidRequest("echo with logprobs is only supported without streaming", param="echo")
    want_prompt_lps = body.echo and body.logprobs is not None
    top = body.logprobs or 0
    bias = wire.logit_bias(body.logit_bias)

    def start(prompt: str | list[int], j: int) -> Any:
        opts = dict(options)
        if body.n > 1 and "seed" in opts:
            opts["seed"] = int(opts["seed"]) + j
        return lambda: services.inference.completion(CompletionRequest(
            model=body.model, prompt=prompt, suffix=body.suffix, raw=True, options=opts,
            keep_alive=keep_alive(body.keep_alive), logprobs=body.logprobs is not None, top_logprobs=top,
            prompt_logprobs=top if want_prompt_lps else None, logit_bias=bias))

    jobs = [(prompt, j) for prompt in prompts for j in range(body.n)]
    generations = await _start_all([start(p, j) for p, j in jobs])
    cid, created, model = wire.new_id("cmpl"), wire.now(), body.model

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            prompt_total = sum(g.prompt_tokens for g in generations)
            completion_total = 0
            for index, (prompt, _) in enumerate(jobs):
                if body.echo:
                    text = await _run(_prompt_text, generations[index], prompt)
                    yield sse_event(_completion_chunk(cid, created, model, index, text, None))
            async for index, event in _merged(generations):
                if isinstance(event, TextChunk):
                    lps = None
                    if body.logprobs is not None:
                        lps = wire.legacy_logprobs([(lp.token, lp.logprob, wire.top_dict(lp)) for lp in event.logprobs])
                    yield sse_event(_completion_chunk(cid, created, model, index, event.text, None, lps))
                elif isinstance(event, Done):
                    completion_total += event.completion_tokens
                    yield sse_event(_completion_chunk(cid, created, model, index, "", wire.finish_reason(event)))
                elif isinstance(event, Failure):
                    yield sse_event(_openai_error(event.error))
            if include_usage:
                yield sse_event({"id": cid, "object": "text_completion", "created": created, "model": model,
                                 "choices": [], "usage": wire.usage(prompt_total, completion_total)})
            yield sse_event("[DONE]")

        return ClosingStreamingResponse(stream(), media_type=SSE, on_close=_close_all(generations))

    results = await asyncio.gather(*(_collect(g) for g in generations))
    choices = []
    prompt_total = completion_total = 0
    for index, ((prompt, _), generation, (chunks, done)) in enumerate(zip(jobs, generations, results, strict=True)):
        prompt_total += done.prompt_tokens
        completion_total += done.completion_tokens
        generated = "".join(c.text for c in chunks)
        prompt_text = await _run(_prompt_text, generation, prompt) if body.echo else ""
        logprobs = None
        if body.logprobs is not None:
            entries = await _run(_prompt_entries, generation, done) if want_prompt_lps else []
            # a text prompt's added BOS is scored but not echoed: it takes no characters of the text
            unseen = int(isinstance(prompt, str) and bool(entries) and not prompt.startswith(entries[0][0]))
            entries += [(lp.token, lp.logprob, wire.top_dict(lp)) for c in chunks for lp in c.logprobs]
            logprobs = wire.legacy_logprobs(entries, unseen=unseen)
        choices.append({"text": prompt_text + generated, "index": index, "logprobs": logprobs,
                        "finish_reason": wire.finish_reason(done)})
    return JSONResponse({"id": cid, "object": "text_completion", "created": created, "model": model,
                         "system_fingerprint": "openzoo", "choices": choices,
                         "usage": wire.usage(prompt_total, completion_total)})


LogprobEntry = tuple[str, float | None, dict[str, float] | None]


def _prompt_text(generation: GenerationStream, prompt: str | list[int]) -> str:
    """The prompt as echoed: its text, or its tokens' text (may ask a replica, so run off the loop)."""
    return prompt if isinstance(prompt, str) else generation.model.detokenize(prompt)


def _prompt_entries(generation: GenerationStream, done: Done) -> list[LogprobEntry]:
    """Legacy logprob entries of the prompt; unscored positions show their token's text only."""
    entries: list[LogprobEntry] = []
    for token_id, lp in zip(done.prompt_token_ids, done.prompt_logprobs, strict=False):
        if lp is None:
            entries.append((generation.model.token_bytes(token_id).decode("utf-8", "replace"), None, None))
        else:
            entries.append((lp.token, lp.logprob, wire.top_dict(lp)))
    return entries


def _completion_chunk(cid: str, created: int, model: str, index: int, text: str, finish: str | None,
                      logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}]}


# --- embeddings and models ---------------------------------------------------------------------


@router.post("/v1/embeddings", responses=reply(wire.EmbeddingList))
async def embeddings(request: Request, body: wire.EmbeddingBody) -> dict[str, Any]:
    services = services_of(request)
    if body.encoding_format not in {"float", "base64"}:
        raise InvalidRequest('encoding_format must be "float" or "base64"', param="encoding_format")
    raw = body.input
    if isinstance(raw, list) and not raw:
        raise InvalidRequest("invalid input: the list is empty", param="input")
    if isinstance(raw, str):
        texts = [raw]
    elif all(isinstance(x, str) for x in raw):
        texts = list(raw)  # type: ignore[arg-type]
    else:
        token_lists: list[list[int]] = [raw] if all(isinstance(x, int) for x in raw) else raw  # type: ignore[list-item,assignment]
        texts = [await _run(services.inference.detokenize, body.model, list(t)) for t in token_lists]
    result = await _run(lambda: services.inference.embed(body.model, texts, dimensions=body.dimensions))
    data = [{"object": "embedding", "index": i,
             "embedding": b64_float32(v) if body.encoding_format == "base64" else v}
            for i, v in enumerate(result.vectors)]
    return {"object": "list", "data": data, "model": body.model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}


def _model_object(name: str, modified: float) -> dict[str, Any]:
    namespace = name.split("/")[0] if "/" in name else "library"
    return {"id": name, "object": "model", "created": int(modified), "owned_by": namespace}


@router.get("/v1/models", responses=reply(wire.ModelList))
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [_model_object(m.name, m.modified_at)
                                       for m in services_of(request).models.list_models()]}


@router.get("/v1/models/{model:path}", responses=reply(wire.ModelObject))
async def get_model(request: Request, model: str) -> dict[str, Any]:
    for m in services_of(request).models.list_models():
        if m.name == model or m.name == f"{model}:latest":
            return _model_object(m.name, m.modified_at)
    raise ModelNotFound(model)


# --- tokenizer routes (lm-eval probes these at the server root) --------------------------------


def _served_model(services: Services, requested: str | None) -> str:
    """The model a tokenizer route means: the one named, else the only loaded one, else the default."""
    if requested:
        return requested
    loaded = services.inference.loaded()
    if len(loaded) == 1:
        return loaded[0].spec.name
    models = [m.name for m in services.models.list_models()]
    if DEFAULT_MODEL in models or not models:
        return DEFAULT_MODEL
    return models[0]


@router.get("/tokenizer_info", responses=reply(wire.TokenizerInfo))
async def tokenizer_info(request: Request, model: str | None = None) -> dict[str, Any]:
    services = services_of(request)
    return await _run(lambda: services.inference.tokenizer_info(_served_model(services, model)))


@router.post("/tokenize", responses=reply(wire.TokenizeReply))
async def tokenize(request: Request, body: wire.TokenizeBody) -> dict[str, Any]:
    services = services_of(request)
    text = body.prompt if body.prompt is not None else body.content
    if text is None:
        raise InvalidRequest('"prompt" is required', param="prompt")
    tokens = await _run(lambda: services.inference.tokenize(_served_model(services, body.model), text,
                                                             add_special=body.add_special_tokens))
    return {"tokens": tokens}


@router.post("/detokenize", responses=reply(wire.DetokenizeReply))
async def detokenize(request: Request, body: wire.DetokenizeBody) -> dict[str, Any]:
    services = services_of(request)
    text = await _run(lambda: services.inference.detokenize(_served_model(services, body.model), body.tokens))
    return {"prompt": text}
