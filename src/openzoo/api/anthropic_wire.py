"""Anthropic Messages API wire format ⇄ domain: the request body and pure translators.

``POST /v1/messages`` is a translation onto the one chat path: a system prompt and user/assistant
turns of content blocks (``text``, ``tool_use``, ``tool_result``) become the domain's chat messages;
the answer becomes ``text`` or ``tool_use`` blocks, and a stream becomes Anthropic's named SSE events
(``message_start`` … ``message_stop``). Shapes follow the ``anthropic`` package's types.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from openzoo.api.errors import anthropic_body
from openzoo.api.openai_wire import domain_message, sampling_options
from openzoo.errors import InvalidRequest, NotSupported, OpenzooError
from openzoo.events import Done
from openzoo.formats.tools import call_schema


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Tool(_Body):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    type: str | None = Field(None, description='"custom" or absent; server tools are not supported')


class ToolChoice(_Body):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class JsonFormat(_Body):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(..., alias="schema")


class OutputConfig(_Body):
    format: JsonFormat | None = None
    effort: str | None = Field(None, description="accepted; openzoo's models do not reason")


class CountTokensBody(_Body):
    """``POST /v1/messages/count_tokens``: the prompt-shaping fields of a Messages request."""

    model: str
    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = Field(None, description='only {"type": "disabled"}')
    output_config: OutputConfig | None = None


class MessagesBody(CountTokensBody):
    """``POST /v1/messages``: the fields openzoo honours, and those it refuses rather than ignore."""

    max_tokens: int = Field(..., ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = Field(None, description="accepted; does not change the output")
    service_tier: str | None = Field(None, description="accepted; does not change the output")
    options: dict[str, Any] | None = Field(None, description="openzoo extension: Ollama options (seed…)")
    keep_alive: float | str | None = None


def check_unsupported(body: CountTokensBody) -> None:
    """400 naming a field that would change the output but is not implemented."""
    if body.thinking is not None and body.thinking.get("type") != "disabled":
        raise NotSupported("extended thinking is not supported", param="thinking")
    for i, tool in enumerate(body.tools or []):
        if tool.type not in (None, "custom"):
            raise NotSupported(f"tools.{i}: server tool {tool.type!r} is not supported", param=f"tools.{i}.type")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def options(body: MessagesBody) -> dict[str, Any]:
    """Sampling fields → Ollama options, with Anthropic's defaults (temperature 1, no top-p/top-k cut)."""
    opts = sampling_options(body.options, body.temperature, body.top_p, body.max_tokens)
    opts.setdefault("top_k", 0 if body.top_k is None else body.top_k)
    if body.stop_sequences:
        opts["stop"] = list(body.stop_sequences)
    return opts


def domain_tools(body: CountTokensBody) -> list[dict[str, Any]] | None:
    if not body.tools or (body.tool_choice is not None and body.tool_choice.type == "none"):
        return None
    return [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                              "parameters": t.input_schema}} for t in body.tools]


def output_format(body: CountTokensBody) -> dict[str, Any] | None:
    """The schema the answer is generated under (a grammar): ``output_config.format``, or the call
    that ``tool_choice`` ``any`` or ``tool`` force."""
    choice, tools = body.tool_choice, domain_tools(body)
    structured = body.output_config.format.schema_ if body.output_config and body.output_config.format else None
    if choice is None or choice.type in ("auto", "none"):
        return structured
    if structured is not None:
        raise InvalidRequest("tool_choice that forces a call cannot be combined with output_config.format",
                             param="tool_choice")
    if not tools:
        raise InvalidRequest("tool_choice: a forced tool call needs tools", param="tool_choice")
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name: Field required", param="tool_choice.name")
        return call_schema(tools, choice.name)
    return call_schema(tools)


def _missing(field: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: Field required", param=field)


def system_text(system: str | list[dict[str, Any]] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest(f"system.{i}: only text blocks are allowed in system", param=f"system.{i}")
        texts.append(block["text"])
    return "\n\n".join(texts) or None


def _result_text(content: Any, where: str) -> str:
    """A ``tool_result``'s content: a string or text blocks."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: must be a string or a list of blocks", param=f"{where}.content")
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise NotSupported(f"{where}.content.{j}: only text blocks are supported in tool_result",
                               param=f"{where}.content.{j}")
        texts.append(str(block.get("text", "")))
    return "\n".join(texts)


def messages(body: CountTokensBody) -> list[dict[str, Any]]:
    """System prompt and turns → the domain's chat messages, checked as Anthropic checks them.

    Roles alternate between ``user`` and ``assistant``; an assistant's ``tool_use`` blocks become tool
    calls, and the next user turn's ``tool_result`` blocks (each naming a ``tool_use_id`` of that
    assistant turn) become tool messages before the user's own text.
    """
    out: list[dict[str, Any]] = []
    system = system_text(body.system)
    if system:
        out.append(domain_message("system", system))
    if not body.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    pending: dict[str, str] = {}  # tool_use ids of the last assistant turn → tool name
    for i, message in enumerate(body.messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: must be an object", param=where)
        role = message.get("role")
        if role is None:
            raise _missing(f"{where}.role")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'", param=f"{where}.role")
        if "content" not in message:
            raise _missing(f"{where}.content")
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            raise InvalidRequest(f"{where}.content: must be a string or a list of content blocks",
                                 param=f"{where}.content")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for j, block in enumerate(blocks):
            at = f"{where}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                if not isinstance(block.get("text"), str):
                    raise _missing(f"{at}.text")
                texts.append(block["text"])
            elif kind == "tool_use" and role == "assistant":
                for field in ("id", "name"):
                    if not isinstance(block.get(field), str) or not block[field]:
                        raise _missing(f"{at}.{field}")
                if not isinstance(block.get("input"), dict):
                    raise _missing(f"{at}.input")
                calls.append({"id": block["id"], "type": "function",
                              "function": {"name": block["name"], "arguments": block["input"]}})
            elif kind == "tool_result" and role == "user":
                use_id = block.get("tool_use_id")
                if not isinstance(use_id, str) or not use_id:
                    raise _missing(f"{at}.tool_use_id")
                if use_id not in pending:
                    raise InvalidRequest(f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. "
                                         "Each `tool_result` block must have a corresponding `tool_use` block in "
                                         "the previous message.", param=f"{at}.tool_use_id")
                text = _result_text(block.get("content"), at)
                results.append(domain_message("tool", f"Error: {text}" if block.get("is_error") else text,
                                              tool_call_id=use_id, tool_name=pending[use_id]))
            elif kind in ("tool_use", "tool_result"):
                raise InvalidRequest(f"{at}: {kind} blocks are only allowed in "
                                     f"{'assistant' if kind == 'tool_use' else 'user'} messages", param=f"{at}.type")
            elif kind in ("thinking", "redacted_thinking"):
                continue  # a reasoning model's earlier thoughts: no model here reads them
            else:
                raise NotSupported(f"{at}: content block type {kind!r} is not supported", param=f"{at}.type")
        out += results
        pending = {c["id"]: c["function"]["name"] for c in calls}
        if texts or calls or not results:
            out.append(domain_message(role, "\n".join(texts), tool_calls=calls or None))
    return out


# --- the answer → content blocks and the message object ----------------------------------------


def stop_reason(done: Done) -> str:
    if done.tool_calls:
        return "tool_use"
    return "max_tokens" if done.reason == "length" else "end_turn"


def tool_blocks(done: Done, single: bool) -> list[dict[str, Any]]:
    calls = done.tool_calls[:1] if single else done.tool_calls
    return [{"type": "tool_use", "id": new_id("toolu"), "name": c.name, "input": c.arguments} for c in calls]


def content_of(done: Done, text: str, single: bool) -> list[dict[str, Any]]:
    if done.tool_calls:
        return tool_blocks(done, single)
    return [{"type": "text", "text": text}]


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "output_tokens": completion, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}


def message_object(message_id: str, model: str, content: list[dict[str, Any]], stop: str | None,
                   usage_: dict[str, Any]) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": usage_}


def single_call(body: MessagesBody) -> bool:
    return bool(body.tool_choice and body.tool_choice.disable_parallel_tool_use)


# --- streaming ---------------------------------------------------------------------------------


class EventSequence:
    """Anthropic's stream events of one message, in order; each call returns the events to send now."""

    def __init__(self, message_id: str, body: MessagesBody, prompt_tokens: int) -> None:
        self.message_id, self.body, self.prompt_tokens = message_id, body, prompt_tokens
        self._text_open = False
        self._index = 0

    def start(self) -> list[dict[str, Any]]:
        message = message_object(self.message_id, self.body.model, [], None, usage(self.prompt_tokens, 0))
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def text_delta(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events: list[dict[str, Any]] = []
        if not self._text_open:
            self._text_open = True
            events.append({"type": "content_block_start", "index": self._index,
                           "content_block": {"type": "text", "text": ""}})
        events.append({"type": "content_block_delta", "index": self._index,
                       "delta": {"type": "text_delta", "text": text}})
        return events

    def finish(self, done: Done) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if not done.tool_calls and not self._text_open:
            events += [{"type": "content_block_start", "index": self._index,
                        "content_block": {"type": "text", "text": ""}}]
            self._text_open = True
        if self._text_open:
            events.append({"type": "content_block_stop", "index": self._index})
            self._index += 1
        for block in tool_blocks(done, single_call(self.body)):
            events += [
                {"type": "content_block_start", "index": self._index,
                 "content_block": {**block, "input": {}}},
                {"type": "content_block_delta", "index": self._index,
                 "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                {"type": "content_block_stop", "index": self._index},
            ]
            self._index += 1
        events += [{"type": "message_delta", "delta": {"stop_reason": stop_reason(done), "stop_sequence": None},
                    "usage": {"output_tokens": done.completion_tokens}},
                   {"type": "message_stop"}]
        return events

    def failed(self, error: OpenzooError) -> list[dict[str, Any]]:
        """An error after the stream began: Anthropic's ``error`` event."""
        return [anthropic_body(error)]


# --- reply shapes, as /openapi.json describes them (the builders above make the objects) ---------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessageObject(_Reply):
    """A message (streamed: ``message_start`` … ``message_stop`` events)."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: dict[str, int]


class TokenCount(_Reply):
    input_tokens: int
