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
from openzoo.formats.tools import call_schema


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


_UNSUPPORTED = "not supported: a request that sets it is answered with 400"


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
    parallel_tool_calls: bool | None = None
    logit_bias: dict[str, float] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    options: dict[str, Any] | None = Field(None, description="openzoo extension: Ollama options (num_ctx, top_k…)")
    keep_alive: float | str | None = None
    user: str | None = Field(None, description="accepted; does not change the output")
    modalities: list[str] | None = Field(None, description='only ["text"]')
    audio: dict[str, Any] | None = Field(None, description=_UNSUPPORTED)
    functions: list[dict[str, Any]] | None = Field(None, description=_UNSUPPORTED + " (use tools)")
    function_call: str | dict[str, Any] | None = Field(None, description=_UNSUPPORTED + " (use tool_choice)")
    web_search_options: dict[str, Any] | None = Field(None, description=_UNSUPPORTED)


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
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(None, description="accepted; does not change the output")
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


def sampling_options(options: dict[str, Any] | None, temperature: float | None, top_p: float | None,
                     limit: int | None) -> dict[str, Any]:
    """Sampling fields → Ollama options over the ``options`` extension, with the defaults OpenAI and
    Anthropic share (temperature 1, no top-p cut); ``limit`` is the most tokens to generate."""
    opts: dict[str, Any] = dict(options or {})
    opts.setdefault("temperature", 1.0 if temperature is None else temperature)
    opts.setdefault("top_p", 1.0 if top_p is None else top_p)
    if limit is not None:
        opts["num_predict"] = limit
    return opts


def options_from(body: ChatCompletionBody | CompletionBody) -> dict[str, Any]:
    """OpenAI sampling fields → Ollama options; OpenAI's defaults (temperature 1, top_p 1) apply."""
    limit = body.max_tokens
    if isinstance(body, ChatCompletionBody) and body.max_completion_tokens is not None:
        limit = body.max_completion_tokens
    opts = sampling_options(body.options, body.temperature, body.top_p, limit)
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


_CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")


def missing(field: str) -> InvalidRequest:
    """OpenAI's words for a required field left out, naming it in ``param``."""
    return InvalidRequest(f"Missing required parameter: '{field}'.", param=field)


def checked_role(item: dict[str, Any], roles: tuple[str, ...], where: str) -> str:
    """An item's ``role``, one of ``roles`` (400 naming ``<where>.role`` otherwise, as OpenAI words it)."""
    role = item.get("role")
    if role is None:
        raise missing(f"{where}.role")
    if role not in roles:
        raise InvalidRequest(f"Invalid value: {role!r}. Supported values are: "
                             + ", ".join(repr(r) for r in roles) + ".", param=f"{where}.role")
    return str(role)


def _text_parts(content: list[Any], where: str) -> tuple[str, list[str]]:
    """Content parts → their text joined by newlines, and base64 images from ``data:`` URLs."""
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise missing(f"{where}[{j}].text")
            texts.append(part["text"])
        elif kind == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if not url.startswith("data:image/"):
                raise InvalidRequest("only data: image URLs are supported", param=f"{where}[{j}].image_url")
            images.append(url.split(",", 1)[-1])
        else:
            raise InvalidRequest(f"{where}[{j}] has an unsupported content part type {kind!r}",
                                 param=f"{where}[{j}].type")
    return "\n".join(texts), images


def _check_tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where} must be an array", param=where)
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not call.get("id"):
            raise missing(f"{where}[{j}].id")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise missing(f"{where}[{j}].function.name")
        if not isinstance(function.get("arguments"), str):
            raise missing(f"{where}[{j}].function.arguments")


def messages(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages → domain, checked as OpenAI checks them (400 naming the field).

    Roles are system, developer (treated as system), user, assistant and tool; every message but an
    assistant one that calls tools needs ``content``; a tool message needs ``tool_call_id`` and must
    answer an earlier assistant message with ``tool_calls``. Content is a string or content parts
    (``text``, ``image_url`` with a ``data:`` URL); tool-call arguments are JSON strings.
    """
    if not raw:
        raise InvalidRequest("messages must not be empty", param="messages")
    out: list[dict[str, Any]] = []
    calls_seen = False
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = checked_role(message, _CHAT_ROLES, where)
        content = message.get("content")
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and role != "assistant":
            raise InvalidRequest(f"{where}.tool_calls is only allowed on assistant messages",
                                 param=f"{where}.tool_calls")
        if tool_calls:
            _check_tool_calls(tool_calls, f"{where}.tool_calls")
            calls_seen = True
        if content is None and not (role == "assistant" and (tool_calls or "content" in message)):
            raise missing(f"{where}.content")
        images: list[str] = []
        if isinstance(content, list):
            content, images = _text_parts(content, f"{where}.content")
        elif content is not None and not isinstance(content, str):
            raise InvalidRequest(f"{where}.content must be a string or an array of content parts",
                                 param=f"{where}.content")
        if role == "tool":
            if not isinstance(message.get("tool_call_id"), str) or not message["tool_call_id"]:
                raise missing(f"{where}.tool_call_id")
            if not calls_seen:
                raise InvalidRequest(f"{where}: messages with role 'tool' must be a response to a preceding "
                                     "message with 'tool_calls'", param=f"{where}.role")
        out.append(domain_message("system" if role == "developer" else role, content or "", images=images,
                                  tool_calls=tool_calls, tool_call_id=message.get("tool_call_id"),
                                  tool_name=message.get("name")))
    return out


def domain_message(role: str, content: str, *, images: list[str] | None = None,
                   tool_calls: list[dict[str, Any]] | None = None, tool_call_id: str | None = None,
                   tool_name: str | None = None) -> dict[str, Any]:
    """One message as the domain's chat request takes it (Ollama's shape), from any API's wire form."""
    item: dict[str, Any] = {"role": role, "content": content}
    if images:
        item["images"] = images
    if tool_calls:
        item["tool_calls"] = tool_calls
    if role == "tool":
        item["tool_call_id"] = tool_call_id or ""
        if tool_name:
            item["tool_name"] = tool_name
    return item


def tools_for(body: ChatCompletionBody) -> list[dict[str, Any]] | None:
    if not body.tools or body.tool_choice == "none":
        return None
    return body.tools


def chat_format(body: ChatCompletionBody) -> str | dict[str, Any] | None:
    """The output constraint: ``response_format``, or a forced tool call (``tool_choice``)."""
    forced = forced_call(body.tools, body.tool_choice)
    fmt = response_format(body.response_format)
    if forced is not None and fmt is not None:
        raise InvalidRequest("tool_choice that forces a call cannot be combined with response_format",
                             param="tool_choice")
    return forced if forced is not None else fmt


def forced_call(tools: list[dict[str, Any]] | None, choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """``tool_choice`` ``"required"`` or ``{"type": "function", "function": {"name"}}`` → the schema of a call.

    The call is then generated under that schema's grammar, so even a base model answers with a
    well-formed call; ``"auto"`` and ``"none"`` leave the answer free (None).
    """
    if choice is None or choice in ("auto", "none"):
        return None
    if not tools:
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    if choice == "required":
        return call_schema(tools)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(name, str) and name:
            return call_schema(tools, name)
    raise InvalidRequest(f"invalid tool_choice {choice!r}: use \"none\", \"auto\", \"required\" or "
                         '{"type": "function", "function": {"name": ...}}', param="tool_choice")


def logit_bias(raw: dict[str, float] | None) -> dict[int, float] | None:
    """OpenAI's ``logit_bias`` (token ids as strings → −100…100) → token id → bias."""
    if not raw:
        return None
    out: dict[int, float] = {}
    for key, value in raw.items():
        if not key.strip().isdigit():
            raise InvalidRequest(f"logit_bias keys must be token ids (strings of digits), not {key!r}",
                                 param="logit_bias")
        if not -100 <= value <= 100:
            raise InvalidRequest(f"logit_bias values must be between -100 and 100, not {value}", param="logit_bias")
        out[int(key)] = float(value)
    return out


def logprob_content(lps: tuple[TokenLogprob, ...]) -> list[dict[str, Any]]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes),
             "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in lp.top]}
            for lp in lps]


def finish_reason(done: Done) -> str:
    if done.tool_calls:
        return "tool_calls"
    return "length" if done.reason == "length" else "stop"


def tool_calls(done: Done, first_only: bool = False) -> list[dict[str, Any]]:
    """The calls of a finished generation; ``first_only`` for ``parallel_tool_calls: false``."""
    import json

    calls = done.tool_calls[:1] if first_only else done.tool_calls
    return [{"id": call.id or f"call_{call.index}", "index": call.index, "type": "function",
             "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
            for call in calls]


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
                    start_offset: int = 0, unseen: int = 0) -> dict[str, Any]:
    """The completions API's logprobs object: parallel lists plus character offsets into the text.

    The first ``unseen`` entries are tokens the echoed text does not show (the BOS token added to a
    text prompt): they take no characters.
    """
    tokens, token_lps, tops, offsets = [], [], [], []
    offset = start_offset
    for i, (token, lp, top) in enumerate(entries):
        tokens.append(token)
        token_lps.append(lp)
        tops.append(top)
        offsets.append(offset)
        offset += len(token) if i >= unseen else 0
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}


def top_dict(lp: TokenLogprob) -> dict[str, float]:
    out: dict[str, float] = {}
    for alt in lp.top:
        out.setdefault(alt.token, alt.logprob)
    return out


def check_unsupported(body: CompletionBody | ChatCompletionBody) -> None:
    """Answer 400 naming a field that would change the output but is not implemented (never ignore it)."""
    if isinstance(body, CompletionBody):
        if body.best_of not in (None, 1) and body.best_of != body.n:
            raise NotSupported("best_of is not supported; use n", param="best_of")
        return
    for name in ("audio", "functions", "function_call", "web_search_options"):
        if getattr(body, name) is not None:
            raise NotSupported(f"{name} is not supported", param=name)
    if body.modalities is not None and body.modalities != ["text"]:
        raise NotSupported('only modalities ["text"] are supported', param="modalities")


# --- reply shapes, as /openapi.json describes them (the translators above build the objects) -----


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class Usage(_Reply):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatChoice(_Reply):
    index: int
    message: dict[str, Any]
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Reply):
    """A chat completion (streamed: ``chat.completion.chunk`` objects with ``delta`` instead of ``message``)."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: Usage | None = None


class CompletionChoice(_Reply):
    text: str
    index: int
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class Completion(_Reply):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class EmbeddingItem(_Reply):
    object: str = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingList(_Reply):
    object: str = "list"
    data: list[EmbeddingItem]
    model: str
    usage: dict[str, int]


class ModelObject(_Reply):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(_Reply):
    object: str = "list"
    data: list[ModelObject]


class TokenizeReply(_Reply):
    tokens: list[int]


class DetokenizeReply(_Reply):
    prompt: str


class TokenizerInfo(_Reply):
    model: str
    bos_token: str | None
    bos_token_id: int | None
    eos_token: str | None
    eos_token_id: int | None
    pad_token: str | None
    chat_template: str
    vocab_size: int
    context_length: int
