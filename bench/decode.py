"""Single-stream decode speed and time to first token through openzoo's HTTP API, against baselines
measured in the same run; plus the server's memory with the default model loaded.

- decode tokens/s of ``POST /api/generate`` (greedy, streamed) vs a raw llama-cpp-python loop
  (one ``llama_decode`` per token) on the same model. Goal: >= 0.95x.
- time to first token over HTTP vs in-process through the same engine. Goal: <= +15 ms.
- server RSS with the model loaded, against the GGUF file size.

The two TTFT figures are taken the same way, so that their difference is what HTTP adds: the same
request (raw prompt, same tokenization, ``--ttft-tokens`` greedy tokens, read to the end so that the
prompt stays cached as a finished request leaves it), the same settings (the server's configuration is
loaded in-process), a warm model on each side, runs interleaved one HTTP / one in-process so that a
shared machine's load falls on both alike, and medians of ``--ttft-runs`` each. The clock starts before
the request is made and stops at the first text: the first NDJSON line over HTTP (one persistent
client, as Ollama's clients keep their connection), the first ``TextChunk`` in-process. The raw loop
runs on a short-lived worker thread (see ``batch.in_thread``): run on the main thread, its OpenMP team
would outlive it and slow every later in-process decode step.

    .venv/bin/python bench/decode.py [--tokens 128] [--runs 5] [--ttft-runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from batch import default_model, in_thread, raw_loop  # noqa: E402

from openzoo import config  # noqa: E402
from openzoo.events import TextChunk  # noqa: E402
from openzoo.inference import CompletionRequest  # noqa: E402
from openzoo.models import DEFAULT_MODEL  # noqa: E402
from openzoo.services import Services  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.server import SERVER_SETTINGS, exit_on_sigterm, start_server, stop_server  # noqa: E402

# Greedy counting never reaches end-of-text, so every run decodes exactly --tokens tokens.
PROMPT = "1, 2, 3, 4, 5,"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def http_run(client: httpx.Client, url: str, tokens: int) -> tuple[float, float]:
    """One streamed greedy generation: (time to first token in s, server-measured decode tokens/s)."""
    body = {"model": DEFAULT_MODEL, "prompt": PROMPT, "raw": True, "stream": True,
            "options": {"temperature": 0, "num_predict": tokens, "repeat_penalty": 1.0}}
    start = time.perf_counter()
    first = 0.0
    final: dict[str, int] = {}
    with client.stream("POST", url + "/api/generate", json=body, timeout=300) as response:
        for line in response.iter_lines():
            obj = json.loads(line)
            if not first:
                first = time.perf_counter() - start
            if obj.get("done"):
                final = obj
    assert final["eval_count"] == tokens, final
    return first, final["eval_count"] / (final["eval_duration"] / 1e9)


def local_ttft(services: Services, tokens: int) -> float:
    """The same request as :func:`http_run`, in-process: seconds to the first ``TextChunk``."""
    start = time.perf_counter()
    first = 0.0
    count = 0
    for event in services.inference.completion(CompletionRequest(
            model=DEFAULT_MODEL, prompt=PROMPT, raw=True,
            options={"temperature": 0, "num_predict": tokens, "repeat_penalty": 1.0})):
        if isinstance(event, TextChunk):
            if not first:
                first = time.perf_counter() - start
            count += len(event.token_ids)
    assert count == tokens, count
    return first


def ttft_pair(url: str, home: Path, tokens: int, runs: int) -> tuple[list[float], list[float]]:
    """Interleaved HTTP and in-process TTFTs of the same request, both models warm."""
    services = Services(config.load({"OPENZOO_HOME": str(home), **SERVER_SETTINGS}))
    http, local = [], []
    try:
        with httpx.Client() as client:
            for i in range(runs + 1):
                h = http_run(client, url, tokens)[0]
                lo = local_ttft(services, tokens)
                if i:  # the first pair loads the in-process model and caches the prompt on both sides
                    http.append(h)
                    local.append(lo)
                time.sleep(0.05)  # let either side's idle compute threads stop spinning
    finally:
        services.close()
    return http, local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttft-runs", type=int, default=30)
    parser.add_argument("--ttft-tokens", type=int, default=8)
    args = parser.parse_args()
    exit_on_sigterm()
    gguf = default_model()
    with tempfile.TemporaryDirectory() as tmp:
        home = home_with_default_model(Path(tmp) / "home")

        raw = in_thread(lambda: raw_loop(gguf, args.tokens, os.cpu_count() or 2, args.runs))
        server = start_server(home, Path(tmp) / "server.log")
        try:
            with httpx.Client() as client:
                client.post(server.url + "/api/generate", json={"model": DEFAULT_MODEL, "prompt": ""}, timeout=120)
                runs = [http_run(client, server.url, args.tokens) for _ in range(args.runs + 1)][1:]
            rss = rss_bytes(server.process.pid)
            http_ttfts, local_ttfts = ttft_pair(server.url, home, args.ttft_tokens, args.ttft_runs)
        finally:
            stop_server(server)
    http_tps = statistics.median(r[1] for r in runs)
    http_ttft = statistics.median(http_ttfts)
    local_ttft_s = statistics.median(local_ttfts)
    overhead = http_ttft - local_ttft_s
    size = gguf.stat().st_size
    ratio = http_tps / raw
    print(f"model: {gguf.name} ({size / 1e6:.0f} MB), {args.tokens} tokens, median of {args.runs}")
    print(f"raw llama-cpp-python loop : {raw:7.1f} tokens/s")
    print(f"POST /api/generate        : {http_tps:7.1f} tokens/s  ratio {ratio:.3f} (goal >= 0.95)")
    print(f"time to first token, same request ({args.ttft_tokens} tokens, prompt cached), median of "
          f"{args.ttft_runs} interleaved runs each:")
    print(f"  over HTTP               : {http_ttft * 1000:7.1f} ms  (p10 {_pct(http_ttfts, 0.1) * 1000:.1f}, "
          f"p90 {_pct(http_ttfts, 0.9) * 1000:.1f})")
    print(f"  in-process              : {local_ttft_s * 1000:7.1f} ms  (p10 {_pct(local_ttfts, 0.1) * 1000:.1f}, "
          f"p90 {_pct(local_ttfts, 0.9) * 1000:.1f})")
    print(f"server RSS, model loaded  : {rss / 1e6:7.0f} MB  = {rss / size:.2f}x the GGUF size")
    print(f"{'PASS' if ratio >= 0.95 else 'FAIL'}: /api/generate decode {ratio:.3f}x the raw loop (goal >= 0.95x)")
    print(f"{'PASS' if overhead <= 0.015 else 'FAIL'}: HTTP TTFT {overhead * 1000:+.1f} ms over in-process "
          "(goal <= +15 ms)")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
