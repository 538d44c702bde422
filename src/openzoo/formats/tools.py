"""Tool calling for models whose output is plain text.

Models announce tool calls as JSON in one of a few conventions: a bare object
``{"name": ..., "arguments": {...}}``, OpenAI's ``{"function": {...}}`` or ``{"tool_calls": [...]}``,
a list of those, wrapped in ```` ```json ```` fences or Hermes/Qwen ``<tool_call>…</tool_call>`` tags.
:func:`extract_tool_calls` finds them and returns the remaining text as content, so ``/api/chat``
can answer with ``tool_calls`` (arguments as objects, as Ollama sends them).

Templates that cannot render tools (Gemma's, the built-ins) get :func:`tools_instruction` as a
system prompt instead, asking for the ``<tool_call>`` form this parser reads best.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.errors import InvalidRequest

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_SCAN_CHARS",
    "ToolCall",
    "ToolCallResult",
    "call_schema",
    "extract_tool_calls",
    "parse_tool_calls",
    "tools_instruction",
]

#: Generated text longer than this is not scanned for tool calls (the scan retries at each brace).
MAX_SCAN_CHARS = 200_000
#: At most this many JSON decodes per text, so brace-heavy prose stays linear in practice.
MAX_ATTEMPTS = 1_000

_DECODER = json.JSONDecoder()
_EMPTY_WRAPPERS = re.compile(r"<tool_call>\s*</tool_call>|<tool_call>\s*$|```(?:json)?\s*```", re.IGNORECASE)


@dataclass(frozen=True)
class ToolCall:
    """One call: the tool's name and its arguments as a JSON object."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolCallResult:
    """The calls found and the text left once they (and their wrappers) are removed."""

    content: str
    calls: list[ToolCall]


def _arguments(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {}
    if isinstance(value, str):  # OpenAI-style arguments are a JSON string
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return None
    return dict(value) if isinstance(value, dict) else None


def _one_call(value: Any, tool_names: Collection[str] | None) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    function = value.get("function")
    if isinstance(function, dict):
        return _one_call(function, tool_names)
    name = function if isinstance(function, str) else value.get("name")
    if not isinstance(name, str) or not name:
        return None
    has_args = "arguments" in value or "parameters" in value
    if tool_names is not None and name not in tool_names:
        return None
    if not has_args and tool_names is None:  # {"name": "Bob"} is data, not a call
        return None
    arguments = _arguments(value.get("arguments", value.get("parameters")))
    return None if arguments is None else ToolCall(name, arguments)


def _calls(value: Any, tool_names: Collection[str] | None) -> list[ToolCall]:
    """All calls a decoded JSON value holds, or none if any part of it is not a call."""
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    calls = [_one_call(item, tool_names) for item in items]
    if not calls or any(c is None for c in calls):
        return []
    return [c for c in calls if c is not None]


def extract_tool_calls(text: str, *, tool_names: Collection[str] | None = None) -> ToolCallResult:
    """Find tool calls in generated text.

    ``tool_names`` (the names of the tools offered) makes the match stricter: calls to other names
    are left as text, and a call may omit ``arguments``.
    """
    if len(text) > MAX_SCAN_CHARS:
        return ToolCallResult(text, [])
    calls: list[ToolCall] = []
    kept: list[str] = []
    pos = 0
    index = 0
    attempts = 0
    while index < len(text) and attempts < MAX_ATTEMPTS:
        if text[index] not in "{[":
            index += 1
            continue
        attempts += 1
        try:
            value, end = _DECODER.raw_decode(text, index)
        except json.JSONDecodeError:
            index += 1
            continue
        found = _calls(value, tool_names)
        if found:
            calls += found
            kept.append(text[pos:index])
            pos = end
        index = end  # a JSON value that is not a call is data: do not look for calls inside it
    if not calls:
        return ToolCallResult(text, [])
    kept.append(text[pos:])
    content = _EMPTY_WRAPPERS.sub("", "".join(kept)).strip()
    return ToolCallResult(content, calls)


def parse_tool_calls(text: str, *, tool_names: Collection[str] | None = None) -> list[ToolCall]:
    """Just the calls of :func:`extract_tool_calls`."""
    return extract_tool_calls(text, tool_names=tool_names).calls


def tools_instruction(tools: Sequence[Mapping[str, Any]]) -> str:
    """A system-prompt paragraph offering ``tools`` (Ollama/OpenAI tool objects) to a model whose
    template has no tool support, asking for calls in the form :func:`extract_tool_calls` reads."""
    specs = []
    for tool in tools:
        function = tool.get("function", tool)
        spec = {key: function[key] for key in ("name", "description", "parameters") if key in function}
        specs.append(json.dumps(spec, ensure_ascii=False, sort_keys=True))
    return (
        "You can call these tools:\n"
        + "\n".join(specs)
        + "\n\nTo call a tool, answer with only a JSON object inside tags, one per call:\n"
        '<tool_call>{"name": "<tool name>", "arguments": {"<argument>": <value>}}</tool_call>\n'
        "Call a tool only when it is needed to answer; otherwise answer directly."
    )


def call_schema(tools: Sequence[Mapping[str, Any]], name: str | None = None) -> dict[str, Any]:
    """The JSON schema of one call to one of ``tools`` (or to the tool ``name``), as
    :func:`extract_tool_calls` reads it: ``{"name": <tool>, "arguments": {...}}``.

    APIs that force a call (OpenAI's ``tool_choice: "required"``, Anthropic's ``{"type": "any"}``)
    generate under this schema's grammar, so any model, even a base model, answers with a call.
    """
    functions = [tool.get("function", tool) for tool in tools]
    if name is not None:
        functions = [f for f in functions if f.get("name") == name]
        if not functions:
            raise InvalidRequest(f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    variants = [{"type": "object", "required": ["name", "arguments"],
                 "properties": {"name": {"const": f.get("name")},
                                "arguments": f.get("parameters") or {"type": "object"}}} for f in functions]
    if not variants:
        raise InvalidRequest("a forced tool call needs at least one tool", param="tools")
    return variants[0] if len(variants) == 1 else {"anyOf": variants}
