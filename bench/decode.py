"""Single-stream decode speed and time to first token through openzoo's HTTP API, against baselines
measured in the same run; plus the server's memory with the default model loaded.

- decode tokens/s of ``POST /api/generate`` (greedy, streamed) vs a raw llama-cpp-python loop
  (one ``llama_decode`` per token) on the same model. Goal: >= 0.95x.
- time to first token over HTTP vs in-process through the same engine. Goal: <= +15 ms.
- server RSS with the model loaded, against the GGUF file size.

    .venv/bin/python bench/decode.py [--tokens 128] [--runs 5]
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

from batch import default_model, raw_loop  # noqa: E402

from openzoo import config  # noqa: E402
from openzoo.events import TextChunk  # noqa: E402
from openzoo.inference import CompletionRequest  # noqa: E402
from openzoo.models import DEFAULT_MODEL  # noqa: E402
from openzoo.services import Services  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.server import start_server, stop_server  # noqa: E402

# Greedy counting never reaches end-of-text, so every run decodes exactly --tokens tokens.
PROMPT = "1, 2, 3, 4, 5,"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def http_run(url: str, tokens: int) -> tuple[float, float]:
    """One streamed greedy generation: (time to first token in s, server-measured decode tokens/s)."""
    body = {"model": DEFAULT_MODEL, "prompt": PROMPT, "raw": True, "stream": True,
            "options": {"temperature": 0, "num_predict": tokens}}
    start = time.perf_counter()
    first = 0.0
    final: dict[str, int] = {}
    with httpx.stream("POST", url + "/api/generate", json=body, timeout=300) as response:
        for line in response.iter_lines():
            obj = json.loads(line)
            if not first:
                first = time.perf_counter() - start
            if obj.get("done"):
                final = obj
    assert final["eval_count"] == tokens, final
    return first, final["eval_count"] / (final["eval_duration"] / 1e9)


def inprocess_ttft(home: Path, runs: int) -> float:
    services = Services(config.load({"OPENZOO_HOME": str(home), "OPENZOO_CONTEXT_LENGTH": "2048"}))
    try:
        times = []
        for i in range(runs + 1):
            start = time.perf_counter()
            generation = services.inference.completion(CompletionRequest(
                model=DEFAULT_MODEL, prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 4}))
            for event in generation:
                if isinstance(event, TextChunk):
                    if i:  # the first run loads the model
                        times.append(time.perf_counter() - start)
                    generation.close()
                    break
        return statistics.median(times)
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    gguf = default_model()
    with tempfile.TemporaryDirectory() as tmp:
        home = home_with_default_model(Path(tmp) / "home")

        raw = raw_loop(gguf, args.tokens, os.cpu_count() or 2, args.runs)
        server = start_server(home, Path(tmp) / "server.log")
        try:
            httpx.post(server.url + "/api/generate", json={"model": DEFAULT_MODEL, "prompt": ""}, timeout=120)
            runs = [http_run(server.url, args.tokens) for _ in range(args.runs + 1)][1:]
            rss = rss_bytes(server.process.pid)
        finally:
            stop_server(server)
        ttft_local = inprocess_ttft(home, args.runs)
    http_tps = statistics.median(r[1] for r in runs)
    http_ttft = statistics.median(r[0] for r in runs)
    size = gguf.stat().st_size
    print(f"model: {gguf.name} ({size / 1e6:.0f} MB), {args.tokens} tokens, median of {args.runs}")
    print(f"raw llama-cpp-python loop : {raw:7.1f} tokens/s")
    print(f"POST /api/generate        : {http_tps:7.1f} tokens/s  ratio {http_tps / raw:.3f} (goal >= 0.95)")
    print(f"time to first token HTTP  : {http_ttft * 1000:7.1f} ms")
    print(f"time to first token local : {ttft_local * 1000:7.1f} ms  HTTP overhead "
          f"{(http_ttft - ttft_local) * 1000:+.1f} ms (goal <= +15 ms)")
    print(f"server RSS, model loaded  : {rss / 1e6:7.0f} MB  = {rss / size:.2f}x the GGUF size")


if __name__ == "__main__":
    main()
