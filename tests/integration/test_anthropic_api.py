"""The official ``anthropic`` client (only ``base_url`` changed) against a live openzoo server.

The client no longer has sampling parameters; greedy decoding is asked for through ``extra_body``
(``temperature: 0``), which the Messages API accepts.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from openzoo.models import DEFAULT_MODEL as MODEL
from support.server import Server

GREEDY: Any = {"temperature": 0}
TOOLS: Any = [{"name": "get_weather", "description": "Weather for a city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                                "additionalProperties": False}}]
HI: Any = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=300)


def test_plain_stream_and_count_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=6, messages=HI, system="Be brief.", extra_body=GREEDY)
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 6
    assert message.content[0].type == "text"

    counted = client.messages.count_tokens(model=MODEL, messages=HI, system="Be brief.")
    assert counted.input_tokens == message.usage.input_tokens

    with client.messages.stream(model=MODEL, max_tokens=6, messages=HI, extra_body=GREEDY,
                                system=[{"type": "text", "text": "Be brief."}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text  # greedy: the same text streamed or not
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 6
    assert final.usage.input_tokens == message.usage.input_tokens


def test_tools_round_trip(client: anthropic.Anthropic) -> None:
    question: Any = [{"role": "user", "content": "Weather in Paris?"}]
    called = client.messages.create(model=MODEL, max_tokens=48, messages=question, tools=TOOLS,
                                    tool_choice={"type": "any"}, extra_body=GREEDY)
    assert called.stop_reason == "tool_use"
    (use,) = called.content
    assert use.type == "tool_use" and use.name == "get_weather" and set(use.input) == {"city"}

    with client.messages.stream(model=MODEL, max_tokens=48, messages=question, tools=TOOLS,
                                tool_choice={"type": "tool", "name": "get_weather"}, extra_body=GREEDY) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    assert final.content[0].input == use.input

    follow_up: Any = [*question, {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                    "content": "sunny, 21 C"}]}]
    answer = client.messages.create(model=MODEL, max_tokens=8, messages=follow_up, tools=TOOLS, extra_body=GREEDY)
    assert answer.content and answer.usage.input_tokens > called.usage.input_tokens
    counted = client.messages.count_tokens(model=MODEL, messages=follow_up, tools=TOOLS)
    assert counted.input_tokens == answer.usage.input_tokens


@pytest.mark.parametrize(("body", "status", "kind", "words"), [
    ({"model": MODEL, "messages": HI}, 400, "invalid_request_error", "max_tokens"),
    ({"model": MODEL, "max_tokens": 4, "messages": []}, 400, "invalid_request_error", "messages"),
    ({"model": MODEL, "max_tokens": 4, "messages": [{"role": "tool", "content": "x"}]}, 400,
     "invalid_request_error", "messages.0.role"),
    ({"model": MODEL, "max_tokens": 4, "messages": [{"role": "user"}]}, 400, "invalid_request_error",
     "messages.0.content"),
    ({"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}]}, 400, "invalid_request_error",
     "tool_use_id"),
    ({"model": MODEL, "max_tokens": 4, "messages": HI, "thinking": {"type": "enabled", "budget_tokens": 1024}},
     400, "invalid_request_error", "thinking"),
    ({"model": "nope", "max_tokens": 4, "messages": HI}, 404, "not_found_error", "nope"),
])
def test_bad_requests_get_anthropic_envelope(server: Server, body: dict[str, Any], status: int, kind: str,
                                             words: str) -> None:
    response = httpx.post(server.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"},
                          timeout=60)
    assert response.status_code == status, response.text
    data = response.json()
    assert data["type"] == "error" and data["error"]["type"] == kind
    assert words in data["error"]["message"]

