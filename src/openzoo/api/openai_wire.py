"""OpenAI wire format ⇄ domain: request bodies and pure translators.

``/v1/*`` is a translation onto the same domain requests and events as ``/api``: nothing here
generates anything. Shapes follow the OpenAI API reference and what the official ``openai`` client
and lm-eval's ``local-completions`` parse.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from openzoo.errors import InvalidRequest, NotSupported
from openzoo.events import Done, TextChunk, TokenLogprob


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionBody(_Body):
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=16)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    options: dict[str, Any] | None = Field(None, description="openzoo extension: Ollama options (num_ctx, top_k…)")
    keep_alive: float | str | None = None


class CompletionBody(_Body):
    model: str
    prompt: str | list[str] | list[int] | list[list[int]] = ""
    suffix: str | None = None
    max_tokens: int | None = 16
    temperature: float | None = None
    top_p: float | None = None
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    best_of: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingBody(_Body):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: str = "float"
    dimensions: int | None = None


class TokenizeBody(_Body):
    model: str | None = None
    prompt: str | None = None
    content: str | None = None
    add_special_tokens: bool = False


class DetokenizeBody(_Body):
    model: str | None = None
    tokens: list[int]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def options_from(body: ChatCompletionBody | CompletionBody) -> dict[str, Any]:
    """OpenAI sampling fields → Ollama options; OpenAI's defaults (temperature 1, top_p 1) apply."""
    opts: dict[str, Any] = dict(body.options or {})
    opts.setdefault("temperature", 1.0 if body.temperature is None else body.temperature)
    opts.setdefault("top_p", 1.0 if body.top_p is None else body.top_p)
    limit = body.max_tokens
    if isinstance(body, ChatCompletionBody) and body.max_completion_tokens is not None:
        limit = body.max_completion_tokens
    if limit is not None:
        opts["num_predict"] = limit
    if body.stop is not None:
        opts["stop"] = [body.stop] if isinstance(body.stop, str) else body.stop
    if body.seed is not None:
        opts["seed"] = body.seed
    if body.presence_penalty is not None:
        opts["presence_penalty"] = body.presence_penalty
    if body.frequency_penalty is not None:
        opts["frequency_penalty"] = body.frequency_penalty
    return opts


def response_format(fmt: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if not fmt:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object", param="response_format")
        return schema
    raise InvalidRequest(f"invalid response_format type {kind!r}", param="response_format")


def messages(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages (string or content-part lists, tool calls with JSON-string arguments) → domain."""
    if not raw:
        raise InvalidRequest("messages must not be empty", param="messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param="messages")
        content = message.get("content")
        images: list[str] = []
        if isinstance(content, list):
            texts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    texts.append(str(part.get("text", "")))
                elif kind == "image_url":
                    url = str((part.get("image_url") or {}).get("url", ""))
                    if not url.startswith("data:image/"):
                        raise InvalidRequest("only data: image URLs are supported", param="messages")
                    images.append(url.split(",", 1)[-1])
                else:
                    raise InvalidRequest(f"messages[{i}] has an unsupported content part {kind!r}",
                                         param="messages")
            content = "\n".join(texts)
        role = message.get("role")
        if role == "developer":
            role = "system"
        item: dict[str, Any] = {"role": role, "content": content or ""}
        if images:
            item["images"] = images
        if message.get("tool_calls"):
            item["tool_calls"] = message["tool_calls"]
        if role == "tool":
            item["tool_call_id"] = message.get("tool_call_id", "")
            if message.get("name"):
                item["tool_name"] = message["name"]
        out.append(item)
    return out


def tools_for(body: ChatCompletionBody) -> list[dict[str, Any]] | None:
    if not body.tools or body.tool_choice == "none":
        return None
    return body.tools


def logprob_content(lps: tuple[TokenLogprob, ...]) -> list[dict[str, Any]]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes),
             "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in lp.top]}
            for lp in lps]


def finish_reason(done: Done) -> str:
    if done.tool_calls:
        return "tool_calls"
    return "length" if done.reason == "length" else "stop"


def tool_calls(done: Done) -> list[dict[str, Any]]:
    import json

    return [{"id": call.id or f"call_{call.index}", "index": call.index, "type": "function",
             "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
            for call in done.tool_calls]


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_chunk(cid: str, created: int, model: str, index: int, delta: dict[str, Any],
               finish: str | None = None, lps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish}
    if lps is not None:
        choice["logprobs"] = {"content": lps}
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "openzoo", "choices": [choice]}


def chat_text_delta(chunk: TextChunk) -> dict[str, Any]:
    return {"content": chunk.text}


def legacy_logprobs(entries: list[tuple[str, float | None, dict[str, float] | None]],
                    start_offset: int = 0) -> dict[str, Any]:
    """The completions API's logprobs object: parallel lists plus character offsets."""
    tokens, token_lps, tops, offsets = [], [], [], []
    offset = start_offset
    for token, lp, top in entries:
        tokens.append(token)
        token_lps.append(lp)
        tops.append(top)
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}


def top_dict(lp: TokenLogprob) -> dict[str, float]:
    out: dict[str, float] = {}
    for alt in lp.top:
        out.setdefault(alt.token, alt.logprob)
    return out


def check_unsupported(body: CompletionBody) -> None:
    if body.best_of not in (None, 1) and body.best_of != body.n:
        raise NotSupported("best_of is not supported; use n", param="best_of")
