"""Pure translators of the Responses API: input items → domain messages, answers → items and events."""

from __future__ import annotations

from typing import Any

import pytest

from openzoo.api import responses_wire as wire
from openzoo.errors import EngineError, InvalidRequest, NotSupported
from openzoo.events import Done, ToolCall


def body(**fields: Any) -> wire.ResponsesBody:
    return wire.ResponsesBody.model_validate({"model": "m", "input": "hi", **fields})


def test_string_input_and_instructions() -> None:
    items = wire.input_items("hello")
    assert wire.messages(items, "Be brief.") == [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "hello"}]


def test_function_calls_and_outputs_become_tool_messages() -> None:
    items = [
        {"role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
        {"type": "message", "role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"city": "P"}'},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
    ]
    out = wire.messages(items, None)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in out[2]["tool_calls"]] == ["c1", "c2"]
    assert out[3] == {"role": "tool", "content": "sunny", "tool_call_id": "c1", "tool_name": "w"}
    assert out[4]["content"] == "rain"


@pytest.mark.parametrize(("items", "param"), [
    ([{"role": "wizard", "content": "x"}], "input[0].role"),
    ([{"type": "message", "content": "x"}], "input[0].role"),
    ([{"role": "user"}], "input[0].content"),
    ([{"type": "function_call", "call_id": "c", "name": "f"}], "input[0].arguments"),
    ([{"type": "function_call_output", "call_id": "nope", "output": "x"}], "input[0].call_id"),
    ([{"type": "function_call_output", "call_id": "c"}], "input[0].output"),
    ([{"content": "x"}], "input[0].type"),
    ([], "input"),
])
def test_bad_input_names_the_field(items: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        wire.messages(wire.input_items(items), None)
    assert info.value.param == param


def test_unsupported_fields_are_refused() -> None:
    for fields, param in (({"background": True}, "background"), ({"include": ["x"]}, "include"),
                          ({"tools": [{"type": "web_search"}]}, "tools[0]"), ({"conversation": "c"}, "conversation")):
        with pytest.raises(NotSupported) as info:
            wire.check_unsupported(body(**fields))
        assert info.value.param == param
    wire.check_unsupported(body(user="u", include=[], reasoning={"effort": "low"}))


def test_output_format_and_forced_calls() -> None:
    schema = {"type": "object"}
    assert wire.output_format(body(text={"format": {"type": "json_schema", "name": "s", "schema": schema}})) == schema
    assert wire.output_format(body(text={"format": {"type": "json_object"}})) == "json"
    assert wire.output_format(body(text={"format": {"type": "text"}})) is None
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    forced = wire.output_format(body(tools=tools, tool_choice={"type": "function", "name": "f"}))
    assert forced is not None and forced["properties"]["name"] == {"const": "f"}
    with pytest.raises(InvalidRequest):
        wire.output_format(body(tools=tools, tool_choice="required", text={"format": {"type": "json_object"}}))


def test_event_sequence_of_a_text_answer() -> None:
    seq = wire.EventSequence("resp_1", 1.0, body())
    events = seq.start() + seq.text_delta("Hel") + seq.text_delta("") + seq.text_delta("lo")
    events += seq.finish(Done("length", prompt_tokens=3, completion_tokens=2))
    final = seq.final
    assert final is not None
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.incomplete"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert final["status"] == "incomplete" and final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["total_tokens"] == 5
    assert {e.get("item_id") for e in events if "item_id" in e} == {final["output"][0]["id"]}


def test_event_sequence_of_tool_calls() -> None:
    seq = wire.EventSequence("resp_1", 1.0, body(parallel_tool_calls=False))
    done = Done("stop", tool_calls=(ToolCall("f", {"a": 1}), ToolCall("g", {})))
    events = seq.finish(done)
    final = seq.final
    assert final is not None
    assert [e["type"] for e in events] == ["response.output_item.added", "response.function_call_arguments.delta",
                                           "response.function_call_arguments.done", "response.output_item.done",
                                           "response.completed"]
    (call,) = final["output"]  # parallel_tool_calls: false keeps the first call
    assert call["type"] == "function_call" and call["arguments"] == '{"a": 1}' and call["call_id"].startswith("call_")


def test_a_failure_mid_stream_is_an_error_event_then_failed() -> None:
    seq = wire.EventSequence("resp_1", 1.0, body())
    events = seq.start() + seq.failed(EngineError("the engine stopped"))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "the engine stopped" and events[-2]["code"] == "engine_error"
    assert events[-1]["response"]["status"] == "failed"
