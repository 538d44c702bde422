"""Soak test (not in CI): --clients concurrent streams with random disconnects for --minutes against a
real ``openzoo serve`` with --parallel slots.

Each client loops over streamed requests of a random kind (``/api/chat``, ``/api/generate``,
``/v1/chat/completions``, ``/v1/completions``; now and then an ``/api/embed``, which shares the decode
thread) and of random length; about a third of the streams are cut at a random point, from right after
the status line to deep into the stream, and the client starts its next request at once. A quarter of
the requests are turns of the client's chat session (``/api/chat``: a system prompt and a document of
some 400 tokens, then every earlier turn, resent each time; a new session after 6 turns), so the RAM
prompt cache (on, with a budget of --cache-bytes, small enough to evict) restores and saves KV states
all along. Checks, each printed as PASS/FAIL:

- RSS growth of the server from the end of the warm-up (--warmup, default a fifth of the run, at most a
  minute) to the end: below 5 %;
- no stuck slot: once the clients stop, the server's own state (``/metrics``: busy slots and queue
  depth of every loaded model) returns to zero within 30 s, and a last request still completes;
- no 5xx answer, no error line in a stream, no transport error: every request either completes or was
  cut by its client;
- the prompt cache was used (hits) and stayed within its budget (``/metrics``).

Bounded in time and count; loopback only.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 8] [--parallel 8] [--cache-bytes 67108864]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from openzoo.models import DEFAULT_MODEL  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.server import exit_on_sigterm, start_server, stop_server  # noqa: E402

KINDS = ["chat", "generate", "openai-chat", "openai-completion"]
PROMPTS = ["Hi", "Tell me a story about a fox.", "List three colors.", "Why is the sky blue?", "Once upon a time"]


def rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) * 1024  # type: ignore[union-attr]


def metric_totals(url: str, *names: str) -> list[int]:
    """Each named metric from the server's /metrics, summed over the loaded models."""
    text = httpx.get(url + "/metrics", timeout=30).text
    return [sum(int(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\d+)$", text, re.M)) for name in names]


def engine_state(url: str) -> tuple[int, int]:
    """(busy slots, queued requests) summed over the loaded models."""
    busy, queued = metric_totals(url, "openzoo_busy_slots", "openzoo_queue_depth")
    return busy, queued


SESSION_TURNS = 6
DOCUMENT = ("The harbour town kept its fishing fleet through three wars and two floods. " * 28).strip()
QUESTIONS = ["What is the town known for?", "What happened in the floods?", "Who kept the fleet?",
             "Summarize the document.", "What else do you know?", "Give one more detail."]


def session_request(session: list[dict[str, str]], rng: random.Random) -> tuple[str, dict[str, object]]:
    """The next turn of a client's chat session (a new one after SESSION_TURNS turns)."""
    if not session or len(session) >= 1 + 2 * SESSION_TURNS:
        session[:] = [{"role": "system", "content": f"Session {rng.random()}. Answer about this text: {DOCUMENT}"}]
    turn = (len(session) - 1) // 2
    session.append({"role": "user", "content": QUESTIONS[turn]})
    return "/api/chat", {"model": DEFAULT_MODEL, "messages": list(session), "options": {"num_predict": 16}}


def request_of(kind: str, rng: random.Random) -> tuple[str, dict[str, object]]:
    prompt = rng.choice(PROMPTS)
    n = rng.randint(4, 64)
    messages = [{"role": "user", "content": prompt}]
    requests: dict[str, tuple[str, dict[str, object]]] = {
        "chat": ("/api/chat", {"model": DEFAULT_MODEL, "messages": messages, "options": {"num_predict": n}}),
        "generate": ("/api/generate", {"model": DEFAULT_MODEL, "prompt": prompt, "options": {"num_predict": n}}),
        "openai-chat": ("/v1/chat/completions", {"model": DEFAULT_MODEL, "stream": True, "messages": messages,
                                                 "max_tokens": n}),
        "openai-completion": ("/v1/completions", {"model": DEFAULT_MODEL, "stream": True, "prompt": prompt,
                                                  "max_tokens": n}),
    }
    return requests[kind]


def error_line(line: str) -> bool:
    """An error reported inside a stream (NDJSON ``{"error": ...}`` or an SSE ``data: {"error": ...}``)."""
    payload = line[6:] if line.startswith("data: ") else line
    if not payload.startswith("{"):
        return False
    return "error" in json.loads(payload)


def one_request(client: httpx.Client, url: str, rng: random.Random, outcomes: Counter[str],
                session: list[dict[str, str]]) -> None:
    if rng.random() < 0.05:
        try:
            r = client.post(url + "/api/embed", json={"model": DEFAULT_MODEL, "input": ["soak"]}, timeout=120)
            outcomes[f"embed {'ok' if r.status_code == 200 else r.status_code}"] += 1
        except httpx.HTTPError as exc:
            outcomes[f"embed {type(exc).__name__}"] += 1
        return
    if rng.random() < 0.25:
        kind, cut = "chat-session", None
        path, body = session_request(session, rng)
    else:
        kind = rng.choice(KINDS)
        cut = rng.randint(0, 12) if rng.random() < 0.3 else None
        path, body = request_of(kind, rng)
    reply: list[str] = []
    try:
        with client.stream("POST", url + path, json=body, timeout=300) as response:
            if response.status_code != 200:
                outcomes[f"{kind} {response.status_code}"] += 1
                return
            if cut == 0:  # gone right after the status line
                outcomes[f"{kind} disconnected"] += 1
                return
            for i, line in enumerate(response.iter_lines(), 1):
                if error_line(line):
                    outcomes[f"{kind} stream error"] += 1
                    return
                if kind == "chat-session" and line:
                    reply.append(json.loads(line).get("message", {}).get("content", ""))
                if cut is not None and i >= cut:
                    outcomes[f"{kind} disconnected"] += 1
                    return
        outcomes[f"{kind} ok"] += 1
        if kind == "chat-session":
            session.append({"role": "assistant", "content": "".join(reply)})
    except httpx.HTTPError as exc:
        outcomes[f"{kind} {type(exc).__name__}"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=8, help="the server's OPENZOO_NUM_PARALLEL")
    parser.add_argument("--cache-bytes", type=int, default=64 << 20, help="the server's OPENZOO_PROMPT_CACHE_BYTES")
    parser.add_argument("--warmup", type=float, help="seconds before the RSS baseline (default: min(60, run/5))")
    args = parser.parse_args()
    exit_on_sigterm()
    duration = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, duration / 5)
    outcomes: Counter[str] = Counter()
    samples: list[tuple[float, int]] = []
    peak_busy = 0
    with tempfile.TemporaryDirectory() as tmp:
        home = home_with_default_model(Path(tmp) / "home")
        server = start_server(home, Path(tmp) / "server.log", {"OPENZOO_NUM_PARALLEL": str(args.parallel),
                                                               "OPENZOO_PROMPT_CACHE_BYTES": str(args.cache_bytes),
                                                               "OPENZOO_CONTEXT_LENGTH": "4096"})
        try:
            with httpx.Client() as warm:  # load the model before the clock starts
                warm.post(server.url + "/api/generate", json={"model": DEFAULT_MODEL, "prompt": ""}, timeout=120)
            start = time.monotonic()
            end = start + duration

            def client(seed: int) -> None:
                rng = random.Random(seed)
                session: list[dict[str, str]] = []
                with httpx.Client() as http:
                    while time.monotonic() < end:
                        one_request(http, server.url, rng, outcomes, session)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                samples.append((time.monotonic() - start, rss(server.process.pid)))
                peak_busy = max(peak_busy, engine_state(server.url)[0])
                time.sleep(5)
            for t in threads:
                t.join()
            samples.append((time.monotonic() - start, rss(server.process.pid)))
            deadline = time.monotonic() + 30
            state = engine_state(server.url)
            while state != (0, 0) and time.monotonic() < deadline:
                time.sleep(0.5)
                state = engine_state(server.url)
            last = httpx.post(server.url + "/api/generate", timeout=120, json={
                "model": DEFAULT_MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 4}})
            last_ok = last.status_code == 200 and last.json().get("done") is True
            hits, reused, evictions, held, budget = metric_totals(
                server.url, "openzoo_prompt_cache_hits_total", "openzoo_prompt_cache_tokens_total",
                "openzoo_prompt_cache_evictions_total", "openzoo_prompt_cache_bytes",
                "openzoo_prompt_cache_budget_bytes")
        finally:
            stop_server(server)
    baseline = next((r for t, r in samples if t >= warmup), samples[0][1])
    growth = samples[-1][1] / baseline - 1
    total = sum(outcomes.values())
    bad = {k: v for k, v in outcomes.items() if not k.endswith((" ok", " disconnected"))}
    fivexx = sum(v for k, v in outcomes.items() if re.search(r" 5\d\d$", k))
    cut = sum(v for k, v in outcomes.items() if k.endswith(" disconnected"))
    print(f"{total} requests in {args.minutes:g} min, {args.clients} clients, {args.parallel} slots "
          f"(peak busy {peak_busy}), {cut} cut by their client: {dict(sorted(outcomes.items()))}")
    print(f"{'PASS' if growth < 0.05 else 'FAIL'}: RSS {baseline / 1e6:.0f} MB after {warmup:.0f} s of warm-up, "
          f"{samples[-1][1] / 1e6:.0f} MB at the end: growth {growth:+.1%} (goal < 5 %)")
    print(f"{'PASS' if state == (0, 0) and last_ok else 'FAIL'}: no stuck slot: busy slots {state[0]}, queued "
          f"{state[1]} once the clients stopped (goal 0, 0); a last request {'completed' if last_ok else 'FAILED'}")
    print(f"{'PASS' if not bad else 'FAIL'}: {fivexx} 5xx answers; unexpected outcomes: {bad or 'none'} (goal none)")
    print(f"{'PASS' if hits and held <= budget else 'FAIL'}: prompt cache {hits} hits, {reused} tokens reused, "
          f"{evictions} evictions, {held / 1e6:.1f} MB held of {budget / 1e6:.1f} MB (goal: hits, within budget)")


if __name__ == "__main__":
    main()
