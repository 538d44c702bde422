"""Aggregate decode throughput at 1, 2, 4 and 8 concurrent streaming clients, in one run, against:

(a) the same openzoo server with OPENZOO_NUM_PARALLEL=1 (requests one after another),
(b) llama-cpp-python's own server (``python -m llama_cpp.server``; needs ``llama-cpp-python[server]``),
(c) llama.cpp's C++ ``llama-server -np 8`` when ``--llama-server PATH`` is given (build it from the
    sources vendored in the llama-cpp-python sdist, as the runtime reference describes).

Every server gets the same model and streamed ``/v1/completions`` requests of --tokens tokens. Prints
tokens/s per concurrency, the ratio to the serialized figure, and p95 time to first token.

    .venv/bin/python bench/concurrency.py [--tokens 96] [--llama-server /path/to/llama-server]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from batch import PROMPTS, default_model  # noqa: E402

from openzoo.models import DEFAULT_MODEL  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.server import free_port, start_server, stop_server, wait_ready  # noqa: E402

LEVELS = (1, 2, 4, 8)
THREADS = str(os.cpu_count() or 1)

#: llama-cpp-python's server with ggml's extra (AMX) weight buffers off, as openzoo's engine runs: their
#: kernels crash in llama_decode on virtual machines that report AMX without enabling it.
_LCP_SERVER = r"""
import runpy, sys
import llama_cpp.llama_cpp as low
_default = low.llama_model_default_params
def _params():
    mp = _default()
    mp.use_extra_bufts = False
    return mp
low.llama_model_default_params = _params
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def stream_one(url: str, model: str, prompt: str, tokens: int) -> tuple[float, int, float]:
    """(time to first token, tokens received, seconds) for one streamed greedy completion."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True}
    start = time.perf_counter()
    first = 0.0
    count = 0
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0].get("text"):
                count += 1
                if not first:
                    first = time.perf_counter() - start
    return first, count, time.perf_counter() - start


def measure(url: str, model: str, tokens: int) -> dict[int, tuple[float, float]]:
    """Per concurrency level: (aggregate tokens/s, p95 time to first token)."""
    stream_one(url, model, PROMPTS[0], 4)  # warm-up: load the model
    out = {}
    for level in LEVELS:
        start = time.perf_counter()
        with ThreadPoolExecutor(level) as pool:
            results = list(pool.map(lambda i: stream_one(url, model, PROMPTS[i % len(PROMPTS)], tokens),
                                    range(level)))
        wall = time.perf_counter() - start
        ttfts = sorted(r[0] for r in results)
        p95 = ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))]
        out[level] = (sum(r[1] for r in results) / wall, p95)
    return out


def external(cmd: list[str], port: int, model: str, tokens: int, log: Path) -> dict[int, tuple[float, float]]:
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        # /v1/models answers 200 once the model is loaded (llama-server says 503 while it loads).
        try:
            ready = wait_ready(process, url + "/v1/models", 180)
        except RuntimeError as exc:
            raise RuntimeError(f"server {exc}") from None
        if not ready:
            raise RuntimeError("server did not start")
        return measure(url, model, tokens)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--llama-server", type=Path, help="path to llama.cpp's C++ llama-server")
    args = parser.parse_args()
    gguf = default_model()
    results: dict[str, dict[int, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = home_with_default_model(Path(tmp) / "home")
        for name, parallel in (("openzoo", "8"), ("openzoo NUM_PARALLEL=1", "1")):
            server = start_server(home, Path(tmp) / f"{parallel}.log", {"OPENZOO_NUM_PARALLEL": parallel})
            try:
                results[name] = measure(server.url, DEFAULT_MODEL, args.tokens)
            finally:
                stop_server(server)
        port = free_port()
        try:
            results["llama-cpp-python server"] = external(
                [sys.executable, "-c", _LCP_SERVER, "--model", str(gguf), "--host", "127.0.0.1",
                 "--port", str(port), "--n_ctx", "4096", "--interrupt_requests", "False",
                 "--n_threads", THREADS, "--n_threads_batch", THREADS],
                port, "gemma", args.tokens, Path(tmp) / "lcp.log")
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            # On VMs whose CPU reports AMX without enabling it, the high-level Llama (which that server
            # uses) crashes in llama_decode; openzoo's engine avoids those kernels.
            print(f"llama-cpp-python server failed: {type(exc).__name__}: {exc}")
        if args.llama_server:
            port = free_port()
            env_path = str(args.llama_server.parent)
            os.environ["LD_LIBRARY_PATH"] = env_path + ":" + os.environ.get("LD_LIBRARY_PATH", "")
            cmd = [str(args.llama_server), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
                   "-np", "8", "-c", str(8 * 1024), "-t", THREADS, "-tb", THREADS]
            try:
                results["llama.cpp llama-server -np 8"] = external(cmd, port, "gemma", args.tokens,
                                                                   Path(tmp) / "cpp.log")
            except (RuntimeError, httpx.HTTPError) as exc:
                # Weight repacking puts weights in AMX buffers, whose kernels crash on such VMs too.
                print(f"llama-server failed ({type(exc).__name__}: {exc}); again with --no-repack")
                port = free_port()
                cmd[cmd.index("--port") + 1] = str(port)
                results["llama.cpp llama-server -np 8 -nr"] = external([*cmd, "--no-repack"], port, "gemma",
                                                                       args.tokens, Path(tmp) / "cpp-nr.log")
    serial = results["openzoo NUM_PARALLEL=1"]
    print(f"{args.tokens} tokens per request, streamed /v1/completions, greedy")
    print(f"{'server':<30}" + "".join(f"{f'{n} client(s)':>22}" for n in LEVELS) + f"{'p95 TTFT @8':>14}")
    for name, row in results.items():
        cells = "".join(f"{row[n][0]:9.1f} tok/s {row[n][0] / serial[n][0]:5.2f}x " for n in LEVELS)
        print(f"{name:<30}{cells}{row[8][1] * 1000:10.0f} ms")
    print("goals: openzoo >= 2.0x the serialized figure at 8 clients; >= the C++ server at 1 and 8 clients")


if __name__ == "__main__":
    main()
