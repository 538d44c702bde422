"""The official ``openai`` Python client against a live openzoo server with the real default model."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import httpx
import openai
import pytest

from openzoo.models import DEFAULT_MODEL as MODEL
from support.server import Server


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_chat_plain_and_usage(client: openai.OpenAI) -> None:
    res = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                         temperature=0, max_tokens=8, seed=1)
    assert res.object == "chat.completion"
    assert res.choices[0].message.role == "assistant"
    assert res.choices[0].finish_reason in {"stop", "length"}
    assert res.usage is not None and res.usage.completion_tokens <= 8
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    again = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                           temperature=0, max_tokens=8, seed=1)
    assert again.choices[0].message.content == res.choices[0].message.content


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=10)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=10,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals and finals[-1].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 10


def test_chat_logprobs(client: openai.OpenAI) -> None:
    # plain argmax decoding: without the default model's repeat_penalty (its logprobs are the model's own)
    res = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "1 2 3"}],
                                         temperature=0, max_tokens=6, logprobs=True, top_logprobs=4,
                                         extra_body={"options": {"repeat_penalty": 1.0}})
    content = res.choices[0].logprobs.content  # type: ignore[union-attr]
    assert len(content) == res.usage.completion_tokens  # type: ignore[union-attr]
    for item in content:
        assert len(item.top_logprobs) == 4
        assert math.isclose(item.logprob, max(t.logprob for t in item.top_logprobs), abs_tol=1e-4)
        assert bytes(item.bytes or []).decode("utf-8", "replace") == item.token


def test_chat_json_schema(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"color": {"type": "string", "enum": ["red", "blue"]}},
              "required": ["color"], "additionalProperties": False}
    res = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Pick a color."}], temperature=0, max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    data = json.loads(res.choices[0].message.content or "")
    assert data["color"] in {"red", "blue"}


def test_chat_tools(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    res = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                         tools=tools, temperature=0, max_tokens=48)
    choice = res.choices[0]
    # A 270M base model may or may not call the tool; either way the reply must be well-formed.
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert call.type == "function"
        json.loads(call.function.arguments)
    else:
        assert isinstance(choice.message.content, str)


def test_completions_echo_logprobs_for_lm_eval(client: openai.OpenAI) -> None:
    tokens = client.post("/../tokenize", body={"prompt": "The quick brown fox", "add_special_tokens": False},
                         cast_to=httpx.Response).json()["tokens"]
    for max_tokens, k in ((1, 1), (0, 10)):
        res = client.completions.create(model=MODEL, prompt=[tokens], max_tokens=max_tokens, logprobs=k,
                                        echo=True, temperature=0, seed=1234)
        lp = res.choices[0].logprobs
        assert lp is not None and lp.token_logprobs is not None and lp.top_logprobs is not None
        assert len(lp.token_logprobs) == len(tokens) + max_tokens
        assert lp.token_logprobs[0] is None
        for value, top in zip(lp.token_logprobs[1:], lp.top_logprobs[1:], strict=True):
            assert value is not None and value <= 0
            assert len(top) >= 1
            assert max(top.values()) >= value - 1e-6  # the argmax is always listed
        assert lp.text_offset == sorted(lp.text_offset)
        assert res.choices[0].text.startswith("The quick brown fox")


def test_completions_batch_and_n(client: openai.OpenAI) -> None:
    res = client.completions.create(model=MODEL, prompt=["Hello", "Goodbye"], max_tokens=4, temperature=0)
    assert [c.index for c in res.choices] == [0, 1]
    res = client.completions.create(model=MODEL, prompt="Hello", max_tokens=4, temperature=0.9, n=3, seed=5)
    assert len(res.choices) == 3
    stream = list(client.completions.create(model=MODEL, prompt="Hello", max_tokens=5, temperature=0, stream=True))
    assert stream[-1].choices[0].finish_reason == "length"


def test_embeddings_and_models(client: openai.OpenAI) -> None:
    res = client.embeddings.create(model=MODEL, input=["a cat", "a dog"])
    assert [d.index for d in res.data] == [0, 1]
    assert math.isclose(sum(x * x for x in res.data[0].embedding), 1.0, rel_tol=1e-3)
    b64 = client.embeddings.create(model=MODEL, input="a cat", encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)  # type: ignore[arg-type]
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(res.data[0].embedding, abs=1e-5)
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert client.models.retrieve(MODEL).id == MODEL


def test_error_classes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="missing:model", messages=[{"role": "user", "content": "x"}])
    assert "not found" in missing.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input=[])
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("missing:model")



def test_text_prompts_get_the_models_bos(client: openai.OpenAI) -> None:
    """A text prompt is scored as its token ids with the model's BOS in front (Gemma's GGUF asks for one)."""
    text = "The capital of France is"
    tokens = client.post("/../tokenize", body={"prompt": text, "add_special_tokens": False},
                         cast_to=httpx.Response).json()["tokens"]
    with_bos = client.post("/../tokenize", body={"prompt": text, "add_special_tokens": True},
                           cast_to=httpx.Response).json()["tokens"]
    assert with_bos[1:] == tokens and len(with_bos) == len(tokens) + 1
    scored = [client.completions.create(model=MODEL, prompt=prompt, max_tokens=1, logprobs=1, echo=True,
                                        temperature=0) for prompt in (text, [with_bos])]  # type: ignore[call-overload]
    from_text, from_ids = (res.choices[0].logprobs for res in scored)
    assert from_text is not None and from_ids is not None
    assert from_text.tokens == from_ids.tokens and from_text.tokens[0] == "<bos>"  # type: ignore[index]
    assert from_text.token_logprobs == from_ids.token_logprobs
    assert scored[0].usage is not None and scored[0].usage.prompt_tokens == len(with_bos)
    assert scored[0].choices[0].text.startswith(text)  # the echo shows the prompt as sent
    assert from_text.text_offset is not None and from_text.text_offset[:2] == [0, 0]  # BOS takes no characters


def test_logit_bias(client: openai.OpenAI) -> None:
    (banana,) = client.post("/../tokenize", body={"prompt": " banana"}, cast_to=httpx.Response).json()["tokens"]
    plain = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0)
    forced = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0,
                                       logit_bias={str(banana): 100})
    assert "banana" not in plain.choices[0].text and forced.choices[0].text == " banana" * 4
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                          temperature=0, logit_bias={str(banana): 100})
    assert chat.choices[0].message.content == " banana" * 3
    # a batch of biased and unbiased prompts gives each the tokens it gives alone (batch invariance)
    both = client.completions.create(model=MODEL, prompt=["The capital of France is"] * 2, max_tokens=4,
                                     temperature=0, logit_bias={str(banana): -100})
    assert [c.text for c in both.choices] == [plain.choices[0].text] * 2
    for bias, words in (({"banana": 5}, "token ids"), ({str(banana): 101}, "between -100 and 100"),
                        ({"99999999": 1}, "token ids must be between")):
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model=MODEL, prompt="x", max_tokens=1, logit_bias=bias)  # type: ignore[arg-type]
        assert words in info.value.message and info.value.param == "logit_bias"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "tool"}], "messages[0].content"),
    ([{"role": "user", "content": "x"}, {"role": "tool", "content": "sunny"}], "messages[1].tool_call_id"),
    ([{"role": "user", "content": "x"}, {"role": "tool", "content": "sunny", "tool_call_id": "c1"}],
     "messages[1].role"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"content": "x"}], "messages[0].role"),
    ([{"role": "user"}], "messages[0].content"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
     "messages[0].tool_calls[0].id"),
])
def test_chat_messages_checked_as_openai_does(server: Server, messages: list[dict[str, object]], param: str) -> None:
    response = httpx.post(server.url + "/v1/chat/completions", json={"model": MODEL, "messages": messages}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


@pytest.mark.parametrize(("extra", "param"), [
    ({"functions": [{"name": "f"}]}, "functions"), ({"audio": {"voice": "x"}}, "audio"),
    ({"modalities": ["text", "audio"]}, "modalities"), ({"tool_choice": "required"}, "tool_choice"),
])
def test_fields_that_change_the_output_are_honoured_or_refused(server: Server, extra: dict[str, object],
                                                                param: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1, **extra}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_chat_forced_tool_call(client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    res = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                         tools=tools, tool_choice="required", temperature=0, max_tokens=48)
    choice = res.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and set(json.loads(call.function.arguments)) == {"city"}  # type: ignore[union-attr]
    follow = client.chat.completions.create(model=MODEL, temperature=0, max_tokens=4, messages=[
        {"role": "user", "content": "Weather in Paris?"}, choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}], tools=tools)
    assert follow.usage is not None and follow.usage.prompt_tokens > res.usage.prompt_tokens  # type: ignore[union-attr]

def test_tokenizer_routes(server: Server) -> None:
    info = httpx.get(server.url + "/tokenizer_info").json()
    assert info["eos_token"] and info["bos_token"] == "<bos>"
    tokens = httpx.post(server.url + "/tokenize", json={"prompt": "hello world"}).json()["tokens"]
    assert httpx.post(server.url + "/detokenize", json={"tokens": tokens}).json()["prompt"] == "hello world"


def test_metrics(server: Server) -> None:
    text = httpx.get(server.url + "/metrics").text
    assert "# TYPE openzoo_time_to_first_token_seconds histogram" in text
    assert "openzoo_completion_tokens_total" in text
    assert 'openzoo_busy_slots{model="gemma3:270m"}' in text
