"""The official ``ollama`` Python client against a live openzoo server with the real default model.

The model is a tiny base model: assert on format, determinism under greedy decoding, token counts
and log-probabilities, never on what it says.
"""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import ollama
import pytest

from openzoo.models import DEFAULT_MODEL as MODEL

GREEDY = {"temperature": 0, "seed": 42, "num_predict": 12}


@pytest.fixture(scope="module")
def client(server) -> ollama.Client:  # type: ignore[no-untyped-def]
    return ollama.Client(host=server.url)


def test_version_and_root(server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(server.url + "/").text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200
    assert "version" in httpx.get(server.url + "/api/version").json()


def test_generate_greedy_is_deterministic(client: ollama.Client) -> None:
    first = client.generate(model=MODEL, prompt="The capital of France is", options=GREEDY)
    second = client.generate(model=MODEL, prompt="The capital of France is", options=GREEDY)
    assert first.response == second.response
    assert first.done and first.done_reason == "length"
    assert first.eval_count == 12
    assert first.prompt_eval_count and first.prompt_eval_count > 3
    assert first.total_duration and first.eval_duration and first.prompt_eval_duration
    assert first.context and len(first.context) == first.prompt_eval_count + first.eval_count


def test_generate_stream_matches_non_stream(client: ollama.Client) -> None:
    whole = client.generate(model=MODEL, prompt="Once upon a time", options=GREEDY)
    parts = list(client.generate(model=MODEL, prompt="Once upon a time", options=GREEDY, stream=True))
    assert all(not p.done for p in parts[:-1])
    assert parts[-1].done and parts[-1].eval_count == 12
    assert "".join(p.response for p in parts) == whole.response


def test_generate_logprobs(client: ollama.Client) -> None:
    # plain argmax decoding: without the default model's repeat_penalty (its logprobs are the model's own)
    res = client.generate(model=MODEL, prompt="1, 2, 3,", options={**GREEDY, "repeat_penalty": 1.0}, logprobs=True,
                          top_logprobs=3)
    assert res.logprobs is not None and len(res.logprobs) == 12
    for item in res.logprobs:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        # greedy: the chosen token is the most likely one
        assert math.isclose(item.logprob, max(t.logprob for t in item.top_logprobs), abs_tol=1e-4)


def test_generate_json_format_parses(client: ollama.Client) -> None:
    res = client.generate(model=MODEL, prompt="Give a JSON object describing a cat:", format="json",
                          options={"temperature": 0, "num_predict": 64})
    if res.done_reason == "stop":
        json.loads(res.response)
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    res = client.generate(model=MODEL, prompt="A person as JSON:", format=schema,
                          options={"temperature": 0, "num_predict": 96})
    assert res.done_reason == "stop"
    data = json.loads(res.response)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_chat_and_stream(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    res = client.chat(model=MODEL, messages=messages, options=GREEDY)
    assert res.message.role == "assistant"
    assert (res.done and res.eval_count == 12) or res.done_reason == "stop"
    chunks = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert chunks[-1].done
    assert "".join(c.message.content for c in chunks) == res.message.content


def test_stop_sequence(client: ollama.Client) -> None:
    base = client.generate(model=MODEL, prompt="a b c d e f g", options={**GREEDY, "num_predict": 20})
    words = base.response.split()
    if len(words) < 3:
        pytest.skip("model produced too few words to pick a stop string")
    stop = words[1]
    res = client.generate(model=MODEL, prompt="a b c d e f g", options={**GREEDY, "num_predict": 20, "stop": [stop]})
    assert stop not in res.response
    assert res.done_reason == "stop"
    assert base.response.startswith(res.response)


def test_embed(client: ollama.Client) -> None:
    res = client.embed(model=MODEL, input=["hello world", "goodbye"])
    assert len(res.embeddings) == 2
    for vector in res.embeddings:
        assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-3)
    again = client.embed(model=MODEL, input="hello world")
    assert again.embeddings[0] == pytest.approx(res.embeddings[0], abs=1e-5)
    legacy = client.embeddings(model=MODEL, prompt="hello world")
    assert len(legacy.embedding) == len(res.embeddings[0])


def test_list_show_ps(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert MODEL in names
    show = client.show(MODEL)
    assert show.details.family == "gemma3"
    assert show.details.quantization_level == "Q4_K_M"
    assert show.modelinfo["general.architecture"] == "gemma3"
    assert "Gemma Terms of Use" in (show.license or "")
    assert "completion" in (show.capabilities or [])
    client.generate(model=MODEL, prompt="hi", options={"num_predict": 1})
    loaded = client.ps().models
    assert any(m.model == MODEL for m in loaded)


def test_copy_delete_create(client: ollama.Client) -> None:
    client.copy(MODEL, "pytest/copy:one")
    assert any(m.model == "pytest/copy:one" for m in client.list().models)
    client.delete("pytest/copy:one")
    assert not any(m.model == "pytest/copy:one" for m in client.list().models)
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("pytest/copy:one")
    assert err.value.status_code == 404

    progress = list(client.create(model="pytest/pirate", from_=MODEL, system="You are a pirate.",
                                  parameters={"temperature": 0.1, "stop": ["<end>"]}, stream=True))
    assert progress[-1].status == "success"
    show = client.show("pytest/pirate")
    assert "SYSTEM You are a pirate." in (show.modelfile or "") or "You are a pirate." in (show.modelfile or "")
    assert "temperature" in (show.parameters or "")
    res = client.generate(model="pytest/pirate", prompt="Hi", options={"num_predict": 4})
    assert res.done
    client.delete("pytest/pirate")
    # the base model's blobs are shared, so deleting the derived model keeps the base intact
    assert client.generate(model=MODEL, prompt="Hi", options={"num_predict": 2}).done


def test_pull_default_and_refuse_others(client: ollama.Client) -> None:
    statuses = [p.status for p in client.pull(MODEL, stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("somebody/else:1b")
    assert err.value.status_code == 400
    assert "not supported yet" in err.value.error


def test_async_client(server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> tuple[str, str]:
        client = ollama.AsyncClient(host=server.url)
        res = await client.generate(model=MODEL, prompt="Hello", options=GREEDY)
        parts = [p.response async for p in await client.generate(model=MODEL, prompt="Hello", options=GREEDY,
                                                                   stream=True)]
        return res.response, "".join(parts)

    whole, streamed = asyncio.run(main())
    assert whole == streamed


def test_load_and_unload(client: ollama.Client, server) -> None:  # type: ignore[no-untyped-def]
    res = client.generate(model=MODEL, prompt="")
    assert res.done_reason == "load"
    res = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert res.done_reason == "unload"
    assert not any(m.model == MODEL for m in client.ps().models)
    res = client.chat(model=MODEL, messages=[])
    assert res.done_reason == "load"


def test_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model="nope:1", prompt="hi")
    assert err.value.status_code == 404
    assert err.value.error == 'model "nope:1" not found, try pulling it first'
