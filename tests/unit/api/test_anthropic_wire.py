"""Pure translators of the Anthropic Messages API: turns → domain messages, answers → blocks and events."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from openzoo.api import anthropic_wire as wire
from openzoo.errors import InvalidRequest, NotSupported
from openzoo.events import Done, ToolCall


def body(**fields: Any) -> wire.MessagesBody:
    return wire.MessagesBody.model_validate({"model": "m", "max_tokens": 8,
                                             "messages": [{"role": "user", "content": "hi"}], **fields})


def test_max_tokens_is_required() -> None:
    with pytest.raises(ValidationError):
        wire.MessagesBody.model_validate({"model": "m", "messages": []})


def test_system_blocks_and_options() -> None:
    b = body(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}], stop_sequences=["\n"], top_k=5,
             temperature=0)
    assert wire.messages(b)[0] == {"role": "system", "content": "A\n\nB"}
    assert wire.options(b) == {"temperature": 0, "top_p": 1.0, "top_k": 5, "num_predict": 8, "stop": ["\n"]}


def test_tool_use_and_tool_result_round_trip() -> None:
    b = body(messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "P"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                                     {"type": "text", "text": "and tomorrow?"}]},
    ])
    out = wire.messages(b)
    assert [m["role"] for m in out] == ["user", "assistant", "tool", "user"]
    assert out[1]["content"] == "Let me check."
    assert out[1]["tool_calls"] == [{"id": "t1", "type": "function", "function": {"name": "w",
                                                                                  "arguments": {"city": "P"}}}]
    assert out[2] == {"role": "tool", "content": "sunny", "tool_call_id": "t1", "tool_name": "w"}


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "system", "content": "x"}], "messages.0.role"),
    ([{"content": "x"}], "messages.0.role"),
    ([{"role": "user"}], "messages.0.content"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages.0.content.0.text"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9"}]}], "messages.0.content.0.tool_use_id"),
    ([{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}],
     "messages.0.content.0.type"),
    ([{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]}], "messages.0.content.0.input"),
    ([], "messages"),
])
def test_bad_turns_name_the_field(messages: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        wire.messages(body(messages=messages))
    assert info.value.param == param


def test_unsupported_fields_are_refused() -> None:
    with pytest.raises(NotSupported):
        wire.check_unsupported(body(thinking={"type": "enabled", "budget_tokens": 1024}))
    with pytest.raises(NotSupported):
        wire.check_unsupported(body(tools=[{"name": "s", "type": "web_search_20250305"}]))
    wire.check_unsupported(body(thinking={"type": "disabled"}, metadata={"user_id": "u"}))


def test_forced_tool_choice_and_structured_output() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}, {"name": "g", "input_schema": {"type": "object"}}]
    assert "anyOf" in (wire.output_format(body(tools=tools, tool_choice={"type": "any"})) or {})
    one = wire.output_format(body(tools=tools, tool_choice={"type": "tool", "name": "g"}))
    assert one is not None and one["properties"]["name"] == {"const": "g"}
    assert wire.output_format(body(tools=tools, tool_choice={"type": "none"})) is None
    assert wire.domain_tools(body(tools=tools, tool_choice={"type": "none"})) is None
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert wire.output_format(body(output_config={"format": {"type": "json_schema", "schema": schema}})) == schema


def test_stream_events_of_text_then_tool_calls() -> None:
    seq = wire.EventSequence("msg_1", body(), prompt_tokens=4)
    start = seq.start()
    assert start[0]["message"]["usage"]["input_tokens"] == 4 and start[0]["message"]["content"] == []
    text = seq.text_delta("Hi")
    assert [e["type"] for e in text] == ["content_block_start", "content_block_delta"]
    end = seq.finish(Done("stop", completion_tokens=3))
    assert [e["type"] for e in end] == ["content_block_stop", "message_delta", "message_stop"]
    assert end[1]["delta"]["stop_reason"] == "end_turn" and end[1]["usage"] == {"output_tokens": 3}

    calls = wire.EventSequence("msg_2", body(), 4).finish(Done("stop", tool_calls=(ToolCall("f", {"x": 1}),)))
    assert [e["type"] for e in calls] == ["content_block_start", "content_block_delta", "content_block_stop",
                                          "message_delta", "message_stop"]
    assert calls[0]["index"] == 0 and calls[1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x": 1}'}
    assert calls[3]["delta"]["stop_reason"] == "tool_use"
