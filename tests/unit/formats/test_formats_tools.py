"""Tool calls parsed from generated text in the shapes real models emit."""

from __future__ import annotations

import json

import pytest

from openzoo.formats.tools import (
    ToolCall,
    call_schema,
    extract_tool_calls,
    parse_tool_calls,
    tools_instruction,
)

WEATHER = ToolCall("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
        '{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}',
        '{"function": "get_weather", "arguments": {"city": "Paris"}}',
        '{"tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '```\n[{"name": "get_weather", "arguments": {"city": "Paris"}}]\n```',
    ],
)
def test_shapes(text: str) -> None:
    result = extract_tool_calls(text)
    assert result.calls == [WEATHER]
    assert result.content == ""


def test_text_around_calls_is_kept_and_several_calls_are_found() -> None:
    text = (
        "Let me check.\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    )
    result = extract_tool_calls(text)
    assert result.calls == [WEATHER, ToolCall("get_time", {})]
    assert result.content == "Let me check."


def test_plain_text_and_plain_json_are_not_calls() -> None:
    for text in ["The answer is 4.", '{"name": "Bob", "age": 3}', "{not json", '[1, 2, {"name": "x"}]', ""]:
        result = extract_tool_calls(text)
        assert result.calls == []
        assert result.content == text


def test_tool_names_restrict_and_allow_missing_arguments() -> None:
    assert parse_tool_calls('{"name": "get_time"}', tool_names={"get_time"}) == [ToolCall("get_time", {})]
    assert parse_tool_calls('{"name": "rm_rf", "arguments": {}}', tool_names={"get_time"}) == []


def test_bad_arguments_are_not_calls() -> None:
    assert parse_tool_calls('{"name": "f", "arguments": "not json"}') == []
    assert parse_tool_calls('{"name": "f", "arguments": [1, 2]}') == []
    assert parse_tool_calls('{"name": "f", "arguments": null}') == [ToolCall("f", {})]


def test_calls_nested_inside_other_json_are_data() -> None:
    assert parse_tool_calls('{"example": {"name": "f", "arguments": {}}}') == []


def test_pathological_text_stays_fast() -> None:
    assert parse_tool_calls("{" * 100_000) == []
    assert parse_tool_calls("x" * 300_000 + '{"name": "f", "arguments": {}}') == []


def test_tools_instruction_lists_tools_and_the_call_format() -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                          "parameters": {"type": "object", "properties": {}}}},
    ]  # fmt: skip
    text = tools_instruction(tools)
    assert "get_weather" in text and "Weather now" in text
    example = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert parse_tool_calls(f"<tool_call>{example}</tool_call>") == [WEATHER]
    spec_line = next(line for line in text.splitlines() if line.startswith("{") and "get_weather" in line)
    assert json.loads(spec_line)["name"] == "get_weather"


def test_call_schema_forces_a_call_the_parser_reads() -> None:
    """A forced call (tool_choice) is generated under this schema; what it allows parses as that call."""
    from openzoo.errors import InvalidRequest
    from openzoo.formats.grammar import schema_grammar

    tools = [{"type": "function", "function": {"name": "w", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
             {"type": "function", "function": {"name": "t"}}]
    one = call_schema(tools, "w")
    assert one["properties"]["name"] == {"const": "w"} and one["required"] == ["name", "arguments"]
    assert len(call_schema(tools)["anyOf"]) == 2
    assert "root ::=" in schema_grammar(call_schema(tools))
    (call,) = extract_tool_calls('{"name": "w", "arguments": {"city": "Paris"}}', tool_names={"w", "t"}).calls
    assert (call.name, call.arguments) == ("w", {"city": "Paris"})
    with pytest.raises(InvalidRequest):
        call_schema(tools, "missing")
