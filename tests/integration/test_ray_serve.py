"""``openzoo serve --replicas 2``: a Ray Serve deployment of two engine replicas behind the same routes.

One Ray instance and one server for the module (starting them takes half a minute on two cores).
The real ``ollama`` and ``openai`` clients talk to it; greedy output must equal the in-process
engine's; requests from 8 clients must land on both replicas; a client that goes away must free its
replica's slot; a replica killed with SIGKILL mid-stream must give the client a clean error (the API's
own error envelope, which the clients raise as their error types) and the next request must succeed;
stopping the server must leave no Ray process behind.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve")

import anthropic
import ollama
import openai

from openzoo import config
from openzoo.events import TextChunk
from openzoo.inference import CompletionRequest
from openzoo.models import DEFAULT_MODEL as MODEL
from openzoo.services import Services
from support.cli import openzoo
from support.server import Server, alive, start_server, stop_server_tree

GREEDY = {"temperature": 0, "seed": 7, "num_predict": 16}
ENV = {"OPENZOO_NUM_THREADS": "1", "OPENZOO_CONTEXT_LENGTH": "2048"}
LONG = 100_000  # a generation that only ends when its context is full (minutes on one thread)


@pytest.fixture(scope="module")
def replicated(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("ray-serve") / "server.log"
    server = start_server(model_home, log, ENV, args=("--replicas", "2"), ready_seconds=300)
    yield server
    if server.process.poll() is None:
        stop_server_tree(server)


@pytest.fixture(scope="module")
def ollama_client(replicated: Server) -> ollama.Client:
    return ollama.Client(host=replicated.url, timeout=300)


@pytest.fixture(scope="module")
def openai_client(replicated: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=replicated.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def replicas(server: Server) -> list[dict[str, Any]]:
    found = httpx.get(server.url + "/zoo/replicas", timeout=30).json()
    assert found["mode"] == "replicas"
    return [r for r in found["replicas"] if alive(r["pid"])]


def until(condition: Callable[[], Any], seconds: float = 30) -> Any:
    """Poll ``condition`` until it is truthy (replicas report twice a second); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"condition not met within {seconds} s")


def busy_replica(server: Server) -> dict[str, Any]:
    """The one live replica running a generation, checked to be a Ray Serve replica process."""
    found = until(lambda: [r for r in replicas(server) if r["in_flight"] > 0])
    assert len(found) == 1
    cmdline = Path(f"/proc/{found[0]['pid']}/cmdline").read_bytes().decode(errors="replace")
    assert "ServeReplica" in cmdline  # Ray names the worker process after the replica actor
    return found[0]


def test_greedy_output_through_replicas_matches_in_process(replicated: Server, model_home: Path,
                                                           ollama_client: ollama.Client) -> None:
    """First in the module, so both replicas start from a cold cache like the in-process engine."""
    prompts = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "Water boils at"]
    with ThreadPoolExecutor(len(prompts)) as pool:
        served = list(pool.map(lambda p: ollama_client.generate(model=MODEL, prompt=p, options=GREEDY).response,
                               prompts))
    services = Services(config.load({"OPENZOO_HOME": str(model_home), **ENV}), recover_store=False)
    try:
        local = ["".join(e.text for e in services.inference.completion(CompletionRequest(MODEL, p, options=GREEDY))
                         if isinstance(e, TextChunk)) for p in prompts]
    finally:
        services.close()
    assert served == local
    assert all(served)


def test_ollama_client_generate_and_chat(ollama_client: ollama.Client) -> None:
    whole = ollama_client.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY)
    parts = list(ollama_client.generate(model=MODEL, prompt="Why is the sky blue?", options=GREEDY, stream=True))
    assert whole.done and whole.eval_count == 16
    assert parts[-1].done and parts[-1].eval_count == 16 and all(not p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == whole.response

    messages = [{"role": "user", "content": "Name three colours."}]
    chat = ollama_client.chat(model=MODEL, messages=messages, options=GREEDY)
    streamed = list(ollama_client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert chat.message.role == "assistant" and chat.done
    assert "".join(p.message.content or "" for p in streamed) == chat.message.content
    assert streamed[-1].done and streamed[-1].eval_count == chat.eval_count


def test_openai_client_chat_and_completions(openai_client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Tell me a story."}]
    whole = openai_client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=12)
    chunks = list(openai_client.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                                        max_tokens=12, stream=True,
                                                        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12

    plain = openai_client.completions.create(model=MODEL, prompt="1, 2, 3,", temperature=0, max_tokens=12)
    pieces = list(openai_client.completions.create(model=MODEL, prompt="1, 2, 3,", temperature=0, max_tokens=12,
                                                   stream=True))
    assert "".join(c.choices[0].text for c in pieces if c.choices) == plain.choices[0].text
    assert plain.usage is not None and plain.usage.completion_tokens == 12
    echoed = openai_client.completions.create(model=MODEL, prompt=[2, 818, 5279], temperature=0, max_tokens=1,
                                              echo=True, logprobs=1)
    lps = echoed.choices[0].logprobs
    assert lps is not None and lps.tokens is not None and len(lps.tokens) == 4  # 3 prompt tokens, 1 generated
    assert lps.token_logprobs is not None and lps.token_logprobs[0] is None



def test_responses_messages_and_logit_bias_through_replicas(replicated: Server, openai_client: openai.OpenAI) -> None:
    """The Responses and Anthropic Messages APIs run on the front; their generations on the replicas."""
    first = openai_client.responses.create(model=MODEL, input="Say hi", max_output_tokens=6, temperature=0)
    events = list(openai_client.responses.create(model=MODEL, input="Say hi", max_output_tokens=6, temperature=0,
                                                 stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == first.output_text
    second = openai_client.responses.create(model=MODEL, input="Again", previous_response_id=first.id,
                                            max_output_tokens=2, temperature=0)
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens - 6

    claude = anthropic.Anthropic(base_url=replicated.url, api_key="unused", max_retries=0, timeout=300)
    hi: Any = [{"role": "user", "content": "Say hi"}]
    message = claude.messages.create(model=MODEL, max_tokens=6, messages=hi, extra_body={"temperature": 0})
    with claude.messages.stream(model=MODEL, max_tokens=6, messages=hi, extra_body={"temperature": 0}) as stream:
        assert "".join(stream.text_stream) == message.content[0].text  # type: ignore[union-attr]
    assert claude.messages.count_tokens(model=MODEL, messages=hi).input_tokens == message.usage.input_tokens

    (banana,) = httpx.post(replicated.url + "/tokenize", json={"prompt": " banana"}, timeout=60).json()["tokens"]
    biased = openai_client.completions.create(model=MODEL, prompt="1, 2, 3,", temperature=0, max_tokens=3,
                                              logit_bias={str(banana): 100})
    assert biased.choices[0].text == " banana" * 3

def test_eight_clients_land_on_both_replicas(replicated: Server, ollama_client: ollama.Client,
                                             model_home: Path) -> None:
    before = {r["id"]: r["requests"] for r in until(lambda: len(replicas(replicated)) == 2 and replicas(replicated))}

    def stream(i: int) -> str:
        parts = list(ollama_client.generate(model=MODEL, prompt=f"Count to {i}:", options=GREEDY, stream=True))
        assert parts[-1].done and parts[-1].eval_count == 16
        return "".join(p.response for p in parts)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(stream, range(8)))
    assert all(answers)

    def both_served() -> list[dict[str, Any]] | None:
        now = replicas(replicated)
        grown = {r["id"]: r["requests"] - before.get(r["id"], 0) for r in now}
        return now if len(grown) == 2 and all(n > 0 for n in grown.values()) and sum(grown.values()) >= 8 else None

    served = until(both_served)
    assert all(MODEL in r["models"] for r in served)
    metrics = httpx.get(replicated.url + "/metrics").text
    assert "openzoo_replicas 2" in metrics
    assert len(re.findall(r"^openzoo_replica_requests_total\{", metrics, re.M)) == 2
    ps = httpx.get(replicated.url + "/api/ps").json()["models"]
    assert [(m["name"], m["replicas"]) for m in ps] == [(MODEL, 2)]
    table = openzoo(model_home, "ps", host=replicated.host).stdout
    assert "REPLICAS" in table and all(str(r["pid"]) in table for r in served)


def test_embed_tokenize_and_broadcast_unload(replicated: Server, ollama_client: ollama.Client) -> None:
    vectors = ollama_client.embed(model=MODEL, input=["hello", "world"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) > 0
    tokens = httpx.post(replicated.url + "/tokenize", json={"model": MODEL, "content": "Hello world"}).json()
    text = httpx.post(replicated.url + "/detokenize", json={"model": MODEL, "tokens": tokens["tokens"]}).json()
    assert text["prompt"] == "Hello world"

    ollama_client.generate(model=MODEL, keep_alive=0)  # unload on every replica
    assert httpx.get(replicated.url + "/api/ps").json()["models"] == []
    assert all(not r["models"] for r in until(lambda: all(not r["models"] for r in replicas(replicated))
                                              and replicas(replicated)))
    ollama_client.generate(model=MODEL)  # an empty prompt loads it on every replica
    ps = httpx.get(replicated.url + "/api/ps").json()["models"]
    assert [(m["name"], m["replicas"]) for m in ps] == [(MODEL, 2)]


def test_client_disconnect_frees_the_replica_slot(replicated: Server) -> None:
    body = {"model": MODEL, "prompt": "Tell me everything about dragons.", "options": {"num_predict": LONG}}
    with httpx.stream("POST", replicated.url + "/api/generate", json=body, timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
        assert busy_replica(replicated)["in_flight"] == 1
    until(lambda: all(r["in_flight"] == 0 for r in replicas(replicated)))
    until(lambda: re.search(r'^openzoo_busy_slots\{model="[^"]+"\} [1-9]',
                            httpx.get(replicated.url + "/metrics").text, re.M) is None)


def _kill_mid_stream(server: Server, events: Iterator[Any]) -> None:
    next(events)
    next(events)
    os.kill(busy_replica(server)["pid"], signal.SIGKILL)
    for _ in events:
        pass


def test_replica_killed_mid_stream_ollama(replicated: Server, ollama_client: ollama.Client) -> None:
    stream = ollama_client.generate(model=MODEL, prompt="Write a long story.", options={"num_predict": LONG},
                                    stream=True)
    with pytest.raises(ollama.ResponseError, match="replica"):
        _kill_mid_stream(replicated, iter(stream))
    after = ollama_client.generate(model=MODEL, prompt="The capital of France is", options=GREEDY)
    assert after.done and after.eval_count == 16
    until(lambda: len(replicas(replicated)) == 2, 240)  # Serve replaced the dead replica


def test_replica_killed_mid_stream_openai(replicated: Server, openai_client: openai.OpenAI) -> None:
    stream = openai_client.completions.create(model=MODEL, prompt="Write a long story.", max_tokens=LONG,
                                              stream=True)
    with pytest.raises(openai.APIError, match="replica"):
        _kill_mid_stream(replicated, iter(stream))
    after = openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                  temperature=0, max_tokens=8)
    assert after.choices[0].finish_reason in {"stop", "length"}


def test_shutdown_leaves_no_ray_process(replicated: Server) -> None:
    """SIGTERM: uvicorn drains, then Serve and the private Ray instance stop before the process exits."""
    assert stop_server_tree(replicated) == []
    assert replicated.process.returncode in {0, signal.SIGTERM, -signal.SIGTERM}  # Ray's driver exits with 15
    log = replicated.log.read_text()
    assert "stopped the inference replicas and the local Ray instance" in log
    assert "Traceback" not in log
