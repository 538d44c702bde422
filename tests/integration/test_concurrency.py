"""Many clients at once: continuous batching must keep every answer whole and free every slot."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import pytest

from openzoo.models import DEFAULT_MODEL as MODEL
from support.server import Server, start_server, stop_server

GREEDY = {"temperature": 0, "seed": 7, "num_predict": 24}


def busy_slots(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    return sum(int(v) for v in re.findall(r'^openzoo_busy_slots\{model="[^"]+"\} (\d+)$', text, re.M))


def queue_depth(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    return sum(int(v) for v in re.findall(r'^openzoo_queue_depth\{model="[^"]+"\} (\d+)$', text, re.M))


def ollama_chat(url: str, prompt: str, disconnect_after: int | None) -> dict[str, object]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "options": GREEDY, "stream": True,
            "logprobs": True}
    lines = []
    with httpx.stream("POST", url + "/api/chat", json=body, timeout=300) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(json.loads(line))
            if disconnect_after is not None and len(lines) >= disconnect_after:
                return {"disconnected": True}
    assert all("error" not in line for line in lines)
    assert lines[-1]["done"] is True and all(not line["done"] for line in lines[:-1])
    tokens = [lp["token"] for line in lines[:-1] for lp in line.get("logprobs", [])]
    return {"text": "".join(line["message"]["content"] for line in lines), "final": lines[-1], "tokens": tokens}


def openai_chat(url: str, prompt: str, disconnect_after: int | None) -> dict[str, object]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "seed": 7,
            "max_tokens": 24, "stream": True}
    events = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            events.append(line[6:])
            if disconnect_after is not None and len(events) >= disconnect_after:
                return {"disconnected": True}
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return {"text": text, "finish": chunks[-1]["choices"][0]["finish_reason"]}


def test_eight_mixed_streams_with_disconnects(server: Server) -> None:
    prompts = [f"Story number {i}:" for i in range(8)]
    alone = ollama.Client(host=server.url).chat(model=MODEL, messages=[{"role": "user", "content": prompts[0]}],
                                               options=GREEDY, logprobs=True, top_logprobs=2)
    jobs = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, prompt in enumerate(prompts):
            disconnect = 3 if i in (2, 5) else None
            fn = ollama_chat if i % 2 == 0 else openai_chat
            jobs.append((i, fn, pool.submit(fn, server.url, prompt, disconnect)))
        results = {i: (fn, job.result(timeout=600)) for i, fn, job in jobs}
    for i, (fn, result) in results.items():
        if i in (2, 5):
            assert result == {"disconnected": True}
        elif fn is ollama_chat:
            assert result["final"]["eval_count"] == 24  # type: ignore[index]
        else:
            assert result["finish"] == "length"
    # Greedy equality alone vs in a batch is asserted in test_engine.py from a cold cache; here the
    # prompts share cached prefixes (copied KV cells) and can differ beyond last-bit near-ties.
    assert results[0][1]["tokens"] and alone.message.content
    deadline = time.monotonic() + 30
    while busy_slots(server.url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert busy_slots(server.url) == 0


def test_full_queue_answers_503_at_once(model_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = start_server(model_home, tmp_path / "log", {"OPENZOO_NUM_PARALLEL": "1", "OPENZOO_MAX_QUEUE": "1"})
    try:
        # Greedy counting never reaches end-of-text, so the slot stays busy for the whole test; both
        # streams are cancelled when their connections close at the end.
        body = {"model": MODEL, "prompt": "1, 2, 3, 4, 5,", "raw": True, "stream": True,
                "options": {"num_predict": 1500, "temperature": 0}}
        httpx.post(srv.url + "/api/generate", json={"model": MODEL, "prompt": ""}, timeout=120)  # load first
        with httpx.Client(timeout=120) as client, client.stream("POST", srv.url + "/api/generate", json=body) as a:
            lines_a = a.iter_lines()  # keep the iterator: dropping it closes the stream, cancelling a
            next(lines_a)  # the one slot is busy
            with client.stream("POST", srv.url + "/api/generate", json=body) as b:  # queued
                deadline = time.monotonic() + 20
                while queue_depth(srv.url) < 1 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert (b.status_code, busy_slots(srv.url), queue_depth(srv.url)) == (200, 1, 1)
                statuses = []
                for _ in range(3):
                    started = time.monotonic()
                    extra = httpx.post(srv.url + "/api/generate", json={**body, "stream": False}, timeout=20)
                    statuses.append((extra.status_code, time.monotonic() - started))
                    openai_extra = httpx.post(srv.url + "/v1/completions",
                                              json={"model": MODEL, "prompt": "x", "max_tokens": 5}, timeout=20)
                    assert openai_extra.status_code == 429
                    assert openai_extra.json()["error"]["code"] == "server_busy"
                assert all(code == 503 for code, _ in statuses)
                assert all(seconds < 5 for _, seconds in statuses)  # refused at once, not after a wait
                assert "maximum pending requests exceeded" in extra.json()["error"]
                b.close()
    finally:
        stop_server(srv)


@pytest.mark.parametrize("n", [1])
def test_disconnect_frees_slot(server: Server, n: int) -> None:
    body = {"model": MODEL, "prompt": "Tell me everything:", "options": {"num_predict": 500}, "stream": True}
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=120) as response:
        for i, _ in enumerate(response.iter_lines()):
            if i >= n:
                break
    deadline = time.monotonic() + 10
    while busy_slots(server.url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert busy_slots(server.url) == 0


def test_ps_and_metrics_show_slots_and_the_prompt_cache(server: Server) -> None:
    """With the defaults (OPENZOO_NUM_PARALLEL=auto) /api/ps shows the slots chosen and the RAM prompt
    cache, and /metrics its counters, for each loaded model."""
    httpx.post(server.url + "/api/generate", json={"model": MODEL, "prompt": "Hi", "options": {"num_predict": 2},
                                                   "stream": False}, timeout=120)
    models = httpx.get(server.url + "/api/ps").json()["models"]
    entry = next(m for m in models if m["name"] == MODEL)
    cache = entry["prompt_cache"]
    assert entry["num_parallel"] >= 1 and entry["batch_invariant"] is True  # the default
    assert set(cache) == {"bytes", "budget_bytes", "entries", "hits", "tokens_reused", "evictions"}
    assert 0 <= cache["bytes"] <= cache["budget_bytes"]
    text = httpx.get(server.url + "/metrics").text
    slots = re.search(r'^openzoo_slots\{model="[^"]+"\} (\d+)$', text, re.M)
    assert slots is not None and int(slots.group(1)) == entry["num_parallel"]
    for name in ("hits_total", "tokens_total", "evictions_total", "bytes", "budget_bytes"):
        assert re.search(rf'^openzoo_prompt_cache_{name}\{{model="[^"]+"\}} \d+$', text, re.M), name
