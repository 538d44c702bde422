"""The official ``openai`` client's Responses API (``client.responses``) against a live openzoo server."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from openzoo.models import DEFAULT_MODEL as MODEL
from support.server import Server

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                         "additionalProperties": False}}]


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_plain_streamed_and_stored(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Say hi", max_output_tokens=6, temperature=0)
    assert first.object == "response" and first.id.startswith("resp_")
    assert first.status == "incomplete" and first.incomplete_details is not None  # cut at 6 tokens
    assert first.usage is not None and first.usage.output_tokens == 6
    assert first.usage.total_tokens == first.usage.input_tokens + 6
    assert first.output[0].type == "message" and first.output_text

    events = list(client.responses.create(model=MODEL, input="Say hi", max_output_tokens=6, temperature=0,
                                          stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.incomplete"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in deltas) == first.output_text  # greedy: the same text either way
    assert events[-1].response.usage.output_tokens == 6  # type: ignore[union-attr]

    again = client.responses.retrieve(first.id)
    assert again.id == first.id and again.output_text == first.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Count: 1 2 3", instructions="Be brief.",
                                    max_output_tokens=4, temperature=0)
    second = client.responses.create(model=MODEL, input="More", previous_response_id=first.id,
                                     max_output_tokens=4, temperature=0)
    alone = client.responses.create(model=MODEL, input="More", max_output_tokens=1, temperature=0)
    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None and alone.usage is not None
    # the first exchange (question and answer) is in the second prompt
    assert second.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens

    unstored = client.responses.create(model=MODEL, input="x", store=False, max_output_tokens=2, temperature=0)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="x", previous_response_id=unstored.id, max_output_tokens=2)
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_tool_round_trip(client: openai.OpenAI) -> None:
    called = client.responses.create(model=MODEL, input="Weather in Paris?", tools=TOOLS,  # type: ignore[arg-type]
                                     tool_choice="required", max_output_tokens=48, temperature=0)
    assert called.status == "completed"
    (call,) = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"}

    answer = client.responses.create(
        model=MODEL, previous_response_id=called.id, tools=TOOLS, max_output_tokens=8, temperature=0,  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}])
    assert answer.output and answer.usage is not None
    assert answer.usage.input_tokens > called.usage.input_tokens  # type: ignore[union-attr]

    streamed = list(client.responses.create(model=MODEL, input="Weather in Paris?", tools=TOOLS,  # type: ignore[arg-type]
                                            tool_choice={"type": "function", "name": "get_weather"},
                                            max_output_tokens=48, temperature=0, stream=True))
    assert [e.type for e in streamed][2:] == ["response.output_item.added", "response.function_call_arguments.delta",
                                              "response.function_call_arguments.done", "response.output_item.done",
                                              "response.completed"]
    done = streamed[-1].response  # type: ignore[union-attr]
    assert json.loads(done.output[0].arguments) == json.loads(call.arguments)  # type: ignore[union-attr]


def test_json_schema_and_stream_helper(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"color": {"type": "string", "enum": ["red", "blue"]}},
              "required": ["color"], "additionalProperties": False}
    text = {"format": {"type": "json_schema", "name": "color", "schema": schema}}
    with client.responses.stream(model=MODEL, input="Pick a color.", text=text,  # type: ignore[arg-type]
                                 max_output_tokens=40, temperature=0) as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert json.loads(final.output_text)["color"] in {"red", "blue"}


@pytest.mark.parametrize(("body", "param"), [
    ({"model": MODEL, "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
    ({"model": MODEL, "input": [{"role": "user"}]}, "input[0].content"),
    ({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": MODEL, "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input[0].call_id"),
    ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"model": MODEL, "input": "x", "background": True}, "background"),
    ({"model": MODEL}, None),
])
def test_bad_requests_get_openai_envelope(server: Server, body: dict[str, object], param: str | None) -> None:
    response = httpx.post(server.url + "/v1/responses", json=body, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param
