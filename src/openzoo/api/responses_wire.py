"""OpenAI Responses API wire format ⇄ domain: the request body and pure translators.

``POST /v1/responses`` is a translation onto the one chat path: input items (messages, function calls
and their outputs) become the domain's chat messages, the answer becomes output items (an assistant
``message`` or ``function_call`` items), and a stream becomes the documented event sequence
(``response.created`` … ``response.completed``), each event numbered. Shapes follow the ``openai``
package's ``types/responses`` models, which the official client parses every event into.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openzoo.api.openai_wire import checked_role, domain_message, forced_call, missing, sampling_options
from openzoo.errors import InvalidRequest, NotSupported, OpenzooError
from openzoo.events import Done

_UNSUPPORTED = "not supported: a request that sets it is answered with 400"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextFormat(_Body):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(_Body):
    format: TextFormat | None = None
    verbosity: str | None = Field(None, description="accepted; does not change the output")


class ResponsesBody(_Body):
    """``POST /v1/responses``: the fields openzoo honours, and those it refuses rather than ignore."""

    model: str
    input: str | list[dict[str, Any]] = Field(..., description="a string, or input items (messages, "
                                              "function_call, function_call_output)")
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: bool = False
    previous_response_id: str | None = None
    store: bool = True
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = Field(None, ge=1)
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, description="accepted; does not change the output")
    safety_identifier: str | None = Field(None, description="accepted; does not change the output")
    prompt_cache_key: str | None = Field(None, description="accepted; does not change the output")
    service_tier: str | None = Field(None, description="accepted; does not change the output")
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = Field(None, description="accepted; openzoo's models do not reason")
    include: list[str] | None = Field(None, description="only an empty list")
    top_logprobs: int | None = Field(None, description=_UNSUPPORTED)
    background: bool | None = Field(None, description="only false")
    conversation: str | dict[str, Any] | None = Field(None, description=_UNSUPPORTED + " (use previous_response_id)")
    prompt: dict[str, Any] | None = Field(None, description=_UNSUPPORTED)
    options: dict[str, Any] | None = Field(None, description="openzoo extension: Ollama options (seed, top_k…)")
    keep_alive: float | str | None = None


def check_unsupported(body: ResponsesBody) -> None:
    """400 naming a field that would change the output but is not implemented."""
    if body.top_logprobs:
        raise NotSupported("top_logprobs is not supported on /v1/responses", param="top_logprobs")
    if body.include:
        raise NotSupported("include is not supported", param="include")
    if body.background:
        raise NotSupported("background responses are not supported", param="background")
    for name in ("conversation", "prompt"):
        if getattr(body, name) is not None:
            raise NotSupported(f"{name} is not supported", param=name)
    for i, tool in enumerate(body.tools or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else tool
            raise NotSupported(f"tools[{i}]: only function tools are supported, not {kind!r}", param=f"tools[{i}]")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"Missing required parameter: 'tools[{i}].name'.", param=f"tools[{i}].name")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def options(body: ResponsesBody) -> dict[str, Any]:
    """Sampling fields → Ollama options, with OpenAI's defaults (temperature 1, top_p 1)."""
    return sampling_options(body.options, body.temperature, body.top_p, body.max_output_tokens)


def domain_tools(body: ResponsesBody) -> list[dict[str, Any]] | None:
    """Responses function tools (flat) → the domain's (Ollama/OpenAI chat) tool objects."""
    if not body.tools or body.tool_choice == "none":
        return None
    return [{"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
            for t in body.tools]


def output_format(body: ResponsesBody) -> str | dict[str, Any] | None:
    """``text.format`` (json_object, json_schema), or the schema of a call ``tool_choice`` forces."""
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function" and "function" not in choice:
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    forced = forced_call(domain_tools(body), choice)
    fmt = body.text.format if body.text else None
    constraint: str | dict[str, Any] | None = None
    if fmt is not None and fmt.type == "json_object":
        constraint = "json"
    elif fmt is not None and fmt.type == "json_schema":
        if not isinstance(fmt.schema_, dict):
            raise InvalidRequest("Missing required parameter: 'text.format.schema'.", param="text.format.schema")
        constraint = fmt.schema_
    if forced is not None and constraint is not None:
        raise InvalidRequest("tool_choice that forces a call cannot be combined with text.format",
                             param="tool_choice")
    return forced if forced is not None else constraint


# --- input items → domain messages -------------------------------------------------------------

_ROLES = ("user", "system", "developer", "assistant")


def input_items(raw: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not raw:
        raise InvalidRequest("input must not be empty", param="input")
    return list(raw)


def _content_text(content: Any, where: str) -> tuple[str, list[str]]:
    """A message's content (a string or parts) → text and base64 images."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise missing(f"{where}.content")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise missing(f"{where}.content[{j}].text")
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url.startswith("data:image/"):
                raise NotSupported("only input_image with a data: image_url is supported",
                                   param=f"{where}.content[{j}].image_url")
            images.append(url.split(",", 1)[-1])
        else:
            raise NotSupported(f"content part type {kind!r} is not supported", param=f"{where}.content[{j}].type")
    return "\n".join(texts), images


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _content_text(output, where)[0]
    raise missing(f"{where}.output")


def messages(items: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """Input items → the domain's chat messages, checked as OpenAI checks them (400 naming the field).

    Consecutive ``function_call`` items become one assistant message with tool calls; a
    ``function_call_output`` must answer an earlier call's ``call_id``.
    """
    out: list[dict[str, Any]] = []
    if instructions:
        out.append(domain_message("system", instructions))
    calls: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = checked_role(item, _ROLES, where)
            if "content" not in item:
                raise missing(f"{where}.content")
            text, images = _content_text(item["content"], where)
            out.append(domain_message("system" if role == "developer" else role, text, images=images))
        elif kind == "function_call":
            for field in ("call_id", "name", "arguments"):
                if not isinstance(item.get(field), str):
                    raise missing(f"{where}.{field}")
            calls[item["call_id"]] = item["name"]
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if out and out[-1]["role"] == "assistant" and out[-1].get("tool_calls") is not None:
                out[-1]["tool_calls"].append(call)
            else:
                out.append(domain_message("assistant", "", tool_calls=[call]))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise missing(f"{where}.call_id")
            if "output" not in item:
                raise missing(f"{where}.output")
            if call_id not in calls:
                raise InvalidRequest(f"No tool call found for function call output with call_id {call_id}.",
                                     param=f"{where}.call_id")
            out.append(domain_message("tool", _output_text(item["output"], where), tool_call_id=call_id,
                                      tool_name=calls[call_id]))
        elif kind is None:
            raise missing(f"{where}.type")
        else:
            raise NotSupported(f"input item type {kind!r} is not supported", param=f"{where}.type")
    if not any(m["role"] != "system" for m in out):
        raise InvalidRequest("input must hold at least one message", param="input")
    return out


# --- the answer → output items and the response object -----------------------------------------


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": [text_part(text)]}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_items(done: Done, limit: int | None) -> list[dict[str, Any]]:
    """A generation's tool calls as ``function_call`` items, with call ids unique across turns."""
    calls = done.tool_calls if limit is None else done.tool_calls[:limit]
    return [{"type": "function_call", "id": new_id("fc"), "call_id": new_id("call"), "name": call.name,
             "arguments": json.dumps(call.arguments), "status": "completed"} for call in calls]


def call_limit(body: ResponsesBody) -> int | None:
    if body.parallel_tool_calls is False:
        return 1
    return body.max_tool_calls


def status_of(done: Done) -> str:
    return "incomplete" if done.reason == "length" and not done.tool_calls else "completed"


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def response_object(response_id: str, created_at: float, body: ResponsesBody, *, status: str,
                    output: list[dict[str, Any]], usage_: dict[str, Any] | None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``response`` object: what ``POST`` answers, ``GET`` returns, and stream events carry."""
    fmt: dict[str, Any] = {"type": "text"}
    if body.text and body.text.format:
        fmt = body.text.format.model_dump(by_alias=True, exclude_none=True)
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "model": body.model, "output": output, "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id, "store": body.store,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": [{"strict": None, "description": None, "parameters": None, **t} for t in body.tools or []],
        "text": {"format": fmt}, "truncation": body.truncation or "disabled",
        "metadata": body.metadata or {}, "user": body.user, "usage": usage_, "background": False,
        "reasoning": {"effort": None, "summary": None},
    }


def output_of(done: Done, text: str, body: ResponsesBody) -> list[dict[str, Any]]:
    """The output items of a finished generation (non-streamed replies and stored responses)."""
    if done.tool_calls:
        return call_items(done, call_limit(body))
    return [message_item(new_id("msg"), text, status_of(done))]


def deleted(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "deleted": True}


# --- streaming ---------------------------------------------------------------------------------


class EventSequence:
    """Builds the numbered stream events of one response, in the order the API documents.

    ``start`` → (``text_delta``…) → ``finish``; each call returns the events to send now, and
    ``final`` holds the finished response object (to store).
    """

    def __init__(self, response_id: str, created_at: float, body: ResponsesBody) -> None:
        self.response_id, self.created_at, self.body = response_id, created_at, body
        self._seq = 0
        self._message_id: str | None = None
        self._text: list[str] = []
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _response(self, status: str, output: list[dict[str, Any]], usage_: dict[str, Any] | None = None,
                  error: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(self.response_id, self.created_at, self.body, status=status, output=output,
                               usage_=usage_, error=error)

    def start(self) -> list[dict[str, Any]]:
        return [self._event("response.created", response=self._response("in_progress", [])),
                self._event("response.in_progress", response=self._response("in_progress", []))]

    def _open_message(self) -> list[dict[str, Any]]:
        if self._message_id is not None:
            return []
        self._message_id = new_id("msg")
        return [self._event("response.output_item.added", output_index=0,
                            item={**message_item(self._message_id, "", "in_progress"), "content": []}),
                self._event("response.content_part.added", item_id=self._message_id, output_index=0,
                            content_index=0, part=text_part(""))]

    def text_delta(self, delta: str) -> list[dict[str, Any]]:
        if not delta:
            return []
        events = self._open_message()
        self._text.append(delta)
        events.append(self._event("response.output_text.delta", item_id=self._message_id, output_index=0,
                                  content_index=0, delta=delta, logprobs=[]))
        return events

    def finish(self, done: Done) -> list[dict[str, Any]]:
        """The closing events; the final response object is kept in ``final``."""
        events: list[dict[str, Any]] = []
        output: list[dict[str, Any]]
        if done.tool_calls:
            output = call_items(done, call_limit(self.body))
            for index, item in enumerate(output):
                events.append(self._event("response.output_item.added", output_index=index,
                                          item={**item, "arguments": "", "status": "in_progress"}))
                events.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                          output_index=index, delta=item["arguments"]))
                events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                          output_index=index, name=item["name"], arguments=item["arguments"]))
                events.append(self._event("response.output_item.done", output_index=index, item=item))
        else:
            events += self._open_message()
            text = "".join(self._text)
            item = message_item(self._message_id or "", text, status_of(done))
            output = [item]
            events += [
                self._event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
                            text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                            part=text_part(text)),
                self._event("response.output_item.done", output_index=0, item=item),
            ]
        status = status_of(done)
        self.final = self._response(status, output, usage(done.prompt_tokens, done.completion_tokens))
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=self.final))
        return events

    def failed(self, error: OpenzooError) -> list[dict[str, Any]]:
        """An error after the stream began: an ``error`` event, then ``response.failed``."""
        return [self._event("error", code=error.code, message=error.message, param=error.param),
                self._event("response.failed", response=self._response(
                    "failed", [], error={"code": "server_error", "message": error.message}))]


# --- reply shapes, as /openapi.json describes them (the builders above make the objects) ---------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResponseObject(_Reply):
    """A response (streamed: ``response.*`` events, each with its ``sequence_number``)."""

    id: str
    object: Literal["response"] = "response"
    created_at: float
    status: str
    model: str
    output: list[dict[str, Any]]
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool = True


class DeletedResponse(_Reply):
    id: str
    object: Literal["response"] = "response"
    deleted: bool
