"""The traffic of issue 20, openzoo against llama.cpp's ``llama-server`` in one run, one PASS/FAIL line
per goal with the ratio it rests on (``bench/concurrency.py --workload NAME``):

- ``varied``: varied English prompts, temperature 0.8, top_p 0.95, a seed per stream, at 1, 4 and 8
  clients. End-of-generation tokens are kept out with ``logit_bias`` (-100 on every EOG token, as token
  ids), so every stream generates ``--tokens`` tokens on both servers; the tokens each server generated
  are printed, and the goal says when they differ (a server that ignores ``logit_bias`` ends some
  streams early). Goal: >= 1.0x llama-server at 1, 4 and 8 clients (1.1x at 8).
- ``chat``: 8 users x 6 turns on 4 slots; each turn resends the user's whole history (a system prompt and
  a document of ~1,500 tokens, then every earlier turn) and reads 16 tokens back; the users run at once,
  so other users take a user's slot between its turns. Median time to first token of turns 2-6 with
  openzoo's RAM prompt cache on and off (``OPENZOO_PROMPT_CACHE_BYTES=0``) and on llama-server with its
  own (``--cache-reuse 256 --cache-ram``). Goals: cache on >= 5x faster than off, <= llama-server's.
- ``mixed``: 7 streams decode; once they are steady, a 3,000-token document arrives. Goals: the streams'
  p99 time between tokens while it is read <= 2x their steady p99 before it, and its time to first token
  <= 1.3x that of reading it alone (measured first, on an idle server); llama-server's figures beside.
- ``prefill``: a 1,000-token prompt alone and 4 at once (different prompts, never cached), time to
  first token. Goal: >= 1.0x llama-server's speed (its TTFT / ours) in both.
- ``defaults``: openzoo with every setting at its default: 8 clients at once against the same 8 requests
  one after another on the same server. Goals: >= 2.0x, p95 TTFT <= 0.5 s.

Every workload also prints the servers' resident memory at the end (VmHWM, the peak) and checks
openzoo's against llama-server's + 25 %. Servers run side by side and take turns, so a shared machine's
load falls on both; ``--scale 0.5`` halves the sizes for a quick run.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from concurrency import CPP, Running, start_llama_server, start_openzoo, stream_times

from openzoo.models import DEFAULT_MODEL
from support.cli import home_with_default_model

Goal = tuple[bool, str]

#: Varied English requests for the sampled workload (not repeating themselves, unlike the greedy bench).
VARIED = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain to a ten-year-old why the sky is blue.",
    "Give three arguments for and against remote work.",
    "Describe a walk through a city market at dawn.",
    "What should a beginner know before planting a vegetable garden?",
    "Summarize the plot of a detective novel you invent.",
    "Write a letter thanking a teacher for a memorable lesson.",
    "How do bees communicate where flowers are?",
    "Compose a poem about winter trains.",
    "Explain how a bicycle stays upright.",
    "Plan a rainy weekend for a family with two children.",
    "Describe the history of paper in a few paragraphs.",
]

SYSTEM = "You are a careful assistant. Answer the user's questions about the document below. "
DOC_SENTENCES = [
    "The river town grew around a mill that ground wheat for three valleys.",
    "Its merchants traded wool, salt and timber with the coastal cities.",
    "In the dry years the council dug canals and built a stone weir.",
    "A fire in the old quarter destroyed the archives and half the market.",
    "The railway arrived late, and with it new workshops and schools.",
    "Floods in the spring often reached the steps of the town hall.",
]


def _rss_peak(pid: int) -> int:
    """The peak resident memory of a process, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _tokenize(url: str, text: str, *, bos: bool) -> list[int]:
    body = {"model": DEFAULT_MODEL, "prompt": text, "add_special_tokens": bos}
    return list(httpx.post(url + "/tokenize", json=body, timeout=60).json()["tokens"])


def _document(url: str, tokens: int, tag: str) -> list[int]:
    """A prompt of about ``tokens`` tokens with BOS, starting with ``tag`` (so that no two share a prefix)."""
    text, i = f"Document {tag}. ", 0
    ids = _tokenize(url, text, bos=True)
    while len(ids) < tokens:
        text += " ".join(DOC_SENTENCES[(i + j) % len(DOC_SENTENCES)] for j in range(6)) + f" ({tag}:{i}) "
        i += 1
        ids = _tokenize(url, text, bos=True)
    return ids[:tokens]


def stream(client: httpx.Client, server: Running, prompt: list[int], tokens: int, extra: dict[str, Any] | None = None,
           ) -> tuple[float, list[float], int]:
    """One streamed /v1/completions: (time to first token, arrival times of text chunks, chunks)."""
    return stream_times(client, server.url, server.model, prompt, tokens, extra)


def _client(n: int) -> httpx.Client:
    return httpx.Client(limits=httpx.Limits(max_connections=2 * n + 2, keepalive_expiry=1.0))


# ---------------------------------------------------------------------------------------------- varied


def varied(args: argparse.Namespace, stack: ExitStack, tmp: Path, home: Path) -> tuple[list[Goal], list[Running]]:
    """The sampled workload; llama-server gets openzoo's context per slot (the same KV capacity), and each
    ``--compare-env KEY=VALUE`` adds an openzoo with that setting to the same rounds (e.g.
    ``OPENZOO_GUESS_TOKENS=0``: what guesses cost on text that does not repeat itself)."""
    ours = _keep(stack, start_openzoo("openzoo", home, tmp / "oz.log", "8"))
    others = _others(args, stack, tmp, home)
    n_ctx = httpx.get(ours.url + "/api/ps", timeout=30).json()["models"][0]["context_length"]
    peer = _keep(stack, start_llama_server(args.llama_server, _gguf(), tmp, [], slots=8, ctx=n_ctx))
    servers = [ours, *others, peer]
    prompts = [_tokenize(ours.url, p, bos=True) for p in VARIED]
    eog = _no_eog(ours.url)
    levels = [1, 4, 8]
    rounds = max(1, round(3 * args.scale))
    rates: dict[tuple[str, int], list[float]] = {}
    made: dict[tuple[str, int], int] = {}
    with _client(8) as client:
        for server in servers:
            for p in prompts:
                stream(client, server, p, 2)
        for r in range(rounds):
            for level in levels:
                for server in servers if r % 2 == 0 else servers[::-1]:
                    def one(i: int, server: Running = server, level: int = level, r: int = r) -> int:
                        extra = {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.0,
                                 "seed": 1000 * r + 10 * level + i, "logit_bias": eog}
                        return stream(client, server, prompts[(i + r) % len(prompts)], args.tokens, extra)[2]
                    start = time.perf_counter()
                    with ThreadPoolExecutor(level) as pool:
                        counts = list(pool.map(one, range(level)))
                    wall = time.perf_counter() - start
                    rates.setdefault((server.name, level), []).append(sum(counts) / wall)
                    made[(server.name, level)] = made.get((server.name, level), 0) + sum(counts)
    print(f"llama-server with openzoo's {n_ctx} tokens of context per slot")
    goals: list[Goal] = []
    for level in levels:
        a, b = statistics.median(rates[(ours.name, level)]), statistics.median(rates[(peer.name, level)])
        same = made[(ours.name, level)] == made[(peer.name, level)]
        work = "" if same else (f" [UNEQUAL WORK: {made[(ours.name, level)]} vs {made[(peer.name, level)]} "
                                "tokens; a server ignored logit_bias]")
        target = 1.1 if level == 8 else 1.0
        goals.append((a / b >= target, f"varied sampled at {level} client(s): openzoo {a:.1f} tok/s = {a / b:.2f}x "
                                       f"llama-server's {b:.1f} (goal >= {target}x){work}"))
        for other in others:
            c = statistics.median(rates[(other.name, level)])
            line = f"varied sampled at {level} client(s): openzoo {a:.1f} tok/s = {a / c:.2f}x {other.name}'s {c:.1f}"
            if other.name.endswith("OPENZOO_GUESS_TOKENS=0"):
                goals.append((a / c >= 0.99, line + " (guesses on text that does not repeat; goal >= 0.99x)"))
            else:
                print(line)
    return goals, servers


def _others(args: argparse.Namespace, stack: ExitStack, tmp: Path, home: Path, *, slots: str = "8",
            extra: dict[str, str] | None = None, name: str = "openzoo") -> list[Running]:
    """An openzoo (``slots`` slots, ``extra`` settings) per ``--compare-env KEY=VALUE``, that setting changed."""
    return [_keep(stack, start_openzoo(f"{name} {setting}", home, tmp / f"env-{i}.log", slots,
                                       extra=(extra or {}) | dict([setting.split("=", 1)])))
            for i, setting in enumerate(args.compare_env)]


def _no_eog(url: str) -> dict[str, int]:
    """``logit_bias`` that keeps the model's end-of-generation tokens out (token ids as keys)."""
    ids = [_tokenize(url, text, bos=False) for text in ("<eos>", "<end_of_turn>")]
    return {str(t[0]): -100 for t in ids if len(t) == 1}


# ------------------------------------------------------------------------------------------------ chat


def chat(args: argparse.Namespace, stack: ExitStack, tmp: Path, home: Path) -> tuple[list[Goal], list[Running]]:
    users, turns = max(2, round(8 * args.scale)), max(2, round(6 * args.scale))
    history_tokens = max(200, round(1500 * args.scale))
    slots = max(1, users // 2)  # fewer slots than users: other users take a user's slot between its turns
    ctx = {"OPENZOO_CONTEXT_LENGTH": "4096"}
    on = _keep(stack, start_openzoo("openzoo cache on", home, tmp / "on.log", str(slots), extra=ctx))
    off = _keep(stack, start_openzoo("openzoo cache off", home, tmp / "off.log", str(slots),
                                     extra=ctx | {"OPENZOO_PROMPT_CACHE_BYTES": "0"}))
    others = _others(args, stack, tmp, home, slots=str(slots), extra=ctx, name="openzoo cache on")
    peer = _keep(stack, start_llama_server(args.llama_server, _gguf(), tmp,
                                           ["--cache-reuse", "256", "--cache-ram", "2048"], slots=slots, ctx=4096,
                                           name=f"llama.cpp llama-server -np {slots}"))
    docs = [SYSTEM + _detok_doc(on.url, history_tokens, f"user {u}") for u in range(users)]
    replies = ["The document says the town grew around a mill.", "It mentions canals and a stone weir.",
               "The fire destroyed the archives.", "The railway brought workshops.", "Floods reached the hall."]
    questions = ["What is the town known for?", "What did the council build?", "What happened in the fire?",
                 "What did the railway change?", "Where did the floods reach?", "Summarize it in one line."]
    median: dict[str, float] = {}
    for server in (on, off, *others, peer):
        ttfts: list[float] = []
        lock = threading.Lock()

        def user(u: int, server: Running = server, ttfts: list[float] = ttfts, lock: threading.Lock = lock) -> None:
            text = docs[u]
            with _client(1) as client:
                for t in range(turns):
                    text += f"\nUser: {questions[t % len(questions)]}\nAssistant:"
                    first = stream(client, server, _tokenize(on.url, text, bos=True), 16)[0]
                    if t > 0:
                        with lock:
                            ttfts.append(first)
                    text += " " + replies[t % len(replies)]

        with ThreadPoolExecutor(users) as pool:
            list(pool.map(user, range(users)))
        median[server.name] = statistics.median(ttfts)
        cache = ""
        if server is not peer:
            entry = httpx.get(server.url + "/api/ps", timeout=30).json()["models"][0]["prompt_cache"]
            cache = (f"; prompt cache: {entry['hits']} hits, {entry['tokens_reused']} tokens reused, "
                     f"{entry['bytes'] / 1e6:.0f} MB held, {entry['evictions']} evictions")
        print(f"chat, {server.name}: median TTFT of turns 2-{turns} {median[server.name] * 1000:.0f} ms "
              f"over {len(ttfts)} turns{cache}")
    for other in others:
        print(f"chat: {other.name} {median[other.name] * 1000:.0f} ms = "
              f"{median[peer.name] / median[other.name]:.2f}x llama-server's speed")
    speedup = median[off.name] / median[on.name]
    vs_peer = median[peer.name] / median[on.name]
    goals = [
        (speedup >= 5, f"chat ({users} users x {turns} turns, {history_tokens}-token documents, {slots} slots): "
                       f"cache on {median[on.name] * 1000:.0f} ms = {speedup:.1f}x faster than off "
                       f"({median[off.name] * 1000:.0f} ms) (goal >= 5x)"),
        (vs_peer >= 1.0, f"chat: cache on {median[on.name] * 1000:.0f} ms vs llama-server "
                         f"{median[peer.name] * 1000:.0f} ms = {vs_peer:.2f}x its speed (goal >= 1.0x)"),
    ]
    return goals, [on, off, *others, peer]


def _detok_doc(url: str, tokens: int, tag: str) -> str:
    ids = _document(url, tokens, tag)[1:]
    return str(httpx.post(url + "/detokenize", json={"model": DEFAULT_MODEL, "tokens": ids}, timeout=60
                          ).json()["prompt"])


# ----------------------------------------------------------------------------------------------- mixed


def mixed(args: argparse.Namespace, stack: ExitStack, tmp: Path, home: Path) -> tuple[list[Goal], list[Running]]:
    ctx = {"OPENZOO_CONTEXT_LENGTH": "4096"}
    ours = _keep(stack, start_openzoo("openzoo", home, tmp / "oz.log", "8", extra=ctx))
    peer = _keep(stack, start_llama_server(args.llama_server, _gguf(), tmp, [], slots=8, ctx=4096))
    doc_len = max(500, round(3000 * args.scale))
    goals: list[Goal] = []
    prompts = [_tokenize(ours.url, p, bos=True) for p in VARIED[:7]]
    eog = _no_eog(ours.url)
    for server in (ours, peer):
        alone, doc_ttft, p99s, p99d = _mixed_on(server, prompts, eog, [
            _document(ours.url, doc_len, f"{tag} {server.name}") for tag in ("alone", "mixed")])
        name = "openzoo" if server is ours else "llama-server"
        line = (f"mixed ({doc_len}-token document while 7 stream), {name}: streams' p99 gap {p99d * 1000:.0f} ms "
                f"while it is read = {p99d / p99s:.2f}x steady {p99s * 1000:.0f} ms (goal <= 2x); its TTFT "
                f"{doc_ttft:.2f} s = {doc_ttft / alone:.2f}x alone {alone:.2f} s (goal <= 1.3x)")
        if server is ours:
            goals.append((p99d <= 2 * p99s and doc_ttft <= 1.3 * alone, line))
        else:
            print(f"      {line}")
    return goals, [ours, peer]


def _mixed_on(server: Running, prompts: list[list[int]], eog: dict[str, int], docs: list[list[int]],
              ) -> tuple[float, float, float, float]:
    """(TTFT of a document alone, TTFT of another while 7 streams decode, the streams' p99 gap before it
    arrived, and while it was read)."""
    with _client(8) as client:
        alone = stream(client, server, docs[0], 1)[0]
        for p in prompts:
            stream(client, server, p, 2)
        arrived: list[float] = []

        def streamer(i: int) -> list[float]:
            extra = {"temperature": 0.8, "top_p": 0.95, "seed": i, "logit_bias": eog}
            return stream(client, server, prompts[i], 400, extra)[1]

        def document() -> float:
            time.sleep(4.0)  # the streams are steady by then
            arrived.append(time.perf_counter())
            return stream(client, server, docs[1], 1)[0]

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(streamer, i) for i in range(len(prompts))]
            doc_ttft = pool.submit(document).result()
            streams = [f.result() for f in futures]
    start, end = arrived[0], arrived[0] + doc_ttft
    steady, during = [], []
    for times in streams:
        for a, b in itertools.pairwise(times):
            if b <= start:
                steady.append(b - a)
            elif a >= start and b <= end + 0.5:
                during.append(b - a)
    return alone, doc_ttft, max(1e-6, _p99(steady)), _p99(during)


def _p99(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


# --------------------------------------------------------------------------------------------- prefill


def prefill(args: argparse.Namespace, stack: ExitStack, tmp: Path, home: Path) -> tuple[list[Goal], list[Running]]:
    ours = _keep(stack, start_openzoo("openzoo", home, tmp / "oz.log", "8"))
    others = _others(args, stack, tmp, home)
    peer = _keep(stack, start_llama_server(args.llama_server, _gguf(), tmp, [], slots=8, ctx=2048))
    servers = [ours, *others, peer]
    rounds = max(1, round(3 * args.scale))
    ttft: dict[tuple[str, int], list[float]] = {}
    with _client(4) as client:
        for r in range(rounds):
            for n in (1, 4):
                for server in servers if r % 2 == 0 else servers[::-1]:
                    docs = [_document(ours.url, 1000, f"prefill {server.name} {r} {n} {i}") for i in range(n)]
                    with ThreadPoolExecutor(n) as pool:
                        firsts = list(pool.map(lambda d, s=server: stream(client, s, d, 1)[0], docs))
                    ttft.setdefault((server.name, n), []).append(max(firsts))
    goals: list[Goal] = []
    for n in (1, 4):
        a, b = statistics.median(ttft[(ours.name, n)]), statistics.median(ttft[(peer.name, n)])
        what = "alone" if n == 1 else "4 at once (the last first token)"
        goals.append((b / a >= 1.0, f"prefill of 1,000 tokens {what}: openzoo {a:.2f} s, llama-server {b:.2f} s = "
                                    f"{b / a:.2f}x its speed (goal >= 1.0x)"))
        for other in others:
            c = statistics.median(ttft[(other.name, n)])
            print(f"prefill of 1,000 tokens {what}: {other.name} {c:.2f} s = {b / c:.2f}x llama-server's speed")
    return goals, servers


# -------------------------------------------------------------------------------------------- defaults


def defaults(args: argparse.Namespace, stack: ExitStack, tmp: Path, home: Path) -> tuple[list[Goal], list[Running]]:
    ours = _keep(stack, start_openzoo("openzoo defaults", home, tmp / "oz.log", ""))
    slots = httpx.get(ours.url + "/api/ps", timeout=30).json()["models"][0].get("num_parallel")
    from batch import PROMPTS

    prompts = [_tokenize(ours.url, p, bos=True) for p in PROMPTS]
    rounds = max(1, round(3 * args.scale))
    serial, together, ttfts = [], [], []
    with _client(8) as client:
        for p in prompts:
            stream(client, ours, p, 2)
        for _ in range(rounds):
            start = time.perf_counter()
            made = sum(stream(client, ours, p, args.tokens)[2] for p in prompts)
            serial.append(made / (time.perf_counter() - start))
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda p: stream(client, ours, p, args.tokens), prompts))
            together.append(sum(r[2] for r in results) / (time.perf_counter() - start))
            ttfts.extend(r[0] for r in results)
    a, b = statistics.median(together), statistics.median(serial)
    p95 = sorted(ttfts)[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))]
    return [
        (a / b >= 2.0, f"defaults ({slots} slots chosen): 8 clients {a:.1f} tok/s = {a / b:.2f}x the same server "
                       f"serialized {b:.1f} (goal >= 2.0x)"),
        (p95 <= 0.5, f"defaults: p95 TTFT at 8 clients {p95 * 1000:.0f} ms (goal <= 500 ms)"),
    ], [ours]


# ------------------------------------------------------------------------------------------------ main

WORKLOADS: dict[str, Callable[[argparse.Namespace, ExitStack, Path, Path], tuple[list[Goal], list[Running]]]] = {
    "varied": varied, "chat": chat, "mixed": mixed, "prefill": prefill, "defaults": defaults}


def _keep(stack: ExitStack, server: Running) -> Running:
    stack.callback(server.stop)
    return server


def _gguf() -> Path:
    from batch import default_model

    return default_model()


def run_workload(args: argparse.Namespace) -> None:
    """Run ``args.workload`` and print its goals, then the servers' peak memory."""
    if args.workload != "defaults" and not args.llama_server:
        raise SystemExit(f"--workload {args.workload} compares with llama-server: give --llama-server PATH "
                         "(bench/build_llama_server.sh builds it)")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        home = home_with_default_model(Path(tmp) / "home")
        goals, servers = WORKLOADS[args.workload](args, stack, Path(tmp), home)
        memory = {s.name: _rss_peak(s.pid) for s in servers if s.pid}
    for name, rss in memory.items():
        print(f"peak RSS {name}: {rss / 1e6:.0f} MB")
    peers = [rss for name, rss in memory.items() if name.startswith(CPP.split(" -np")[0])]
    if peers:
        for name, rss in memory.items():
            if name.startswith("openzoo"):
                goals.append((rss <= 1.25 * peers[0], f"memory: {name} peak RSS {rss / 1e6:.0f} MB = "
                                                      f"{rss / peers[0]:.2f}x llama-server's (goal <= 1.25x)"))
    for ok, line in goals:
        print(f"{'PASS' if ok else 'FAIL'}: {line}")
