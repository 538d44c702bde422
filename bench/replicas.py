"""Aggregate decode throughput at 8 streaming clients: 1 vs 2 Ray Serve replicas, in one run.

Servers, each on a fresh loopback port with the same store, measured the same way:

(a) plain ``openzoo serve`` with one llama.cpp thread (one engine, the per-replica budget),
(b) plain ``openzoo serve`` with every core (the single-process baseline people run),
(c) ``openzoo serve --replicas 1`` and (d) ``--replicas 2``, one thread per replica.

Each round sends 8 concurrent streamed greedy ``/v1/completions`` of --tokens tokens; a server's
figure is the median of --rounds rounds after a warm-up that loads the model on every replica.
Prints tok/s, ratios to (a) and (b), the 2-vs-1 replica ratio and how requests spread over replicas.
On a machine with fewer cores than replicas the replicas compete for the same cores: read the ratios
as the cost of Ray's hop (c vs a) and what a second engine adds there, not as a scaling curve.

    .venv/bin/python bench/replicas.py [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from batch import PROMPTS  # noqa: E402
from concurrency import stream_one  # noqa: E402

from openzoo.models import DEFAULT_MODEL  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.server import start_server, stop_server_tree  # noqa: E402

CLIENTS = 8
CORES = os.cpu_count() or 1
CONFIGS: tuple[tuple[str, dict[str, str], tuple[str, ...]], ...] = (
    ("plain, 1 thread", {"OPENZOO_NUM_THREADS": "1"}, ()),
    (f"plain, {CORES} threads", {"OPENZOO_NUM_THREADS": str(CORES)}, ()),
    ("1 replica x 1 thread", {"OPENZOO_NUM_THREADS": "1"}, ("--replicas", "1")),
    ("2 replicas x 1 thread", {"OPENZOO_NUM_THREADS": "1"}, ("--replicas", "2")),
)


def round_rate(client: httpx.Client, url: str, tokens: int) -> float:
    """Tokens per second over one round of CLIENTS concurrent streams."""
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(
            lambda i: stream_one(client, url, DEFAULT_MODEL, PROMPTS[i % len(PROMPTS)], tokens), range(CLIENTS)))
    return sum(r[1] for r in results) / (time.perf_counter() - start)


def measure(url: str, tokens: int, rounds: int) -> tuple[float, list[int]]:
    """Median tok/s over ``rounds``, and the requests each replica took (from /zoo/replicas)."""
    httpx.post(url + "/api/generate", json={"model": DEFAULT_MODEL}, timeout=600).raise_for_status()  # load all
    # One persistent client, connections kept alive as real clients do (see bench/concurrency.py).
    with httpx.Client(limits=httpx.Limits(max_connections=2 * CLIENTS, keepalive_expiry=1.0)) as client:
        stream_one(client, url, DEFAULT_MODEL, PROMPTS[0], 4)
        before = {r["id"]: r["requests"] for r in client.get(url + "/zoo/replicas").json()["replicas"]}
        rates = [round_rate(client, url, tokens) for _ in range(rounds)]
    time.sleep(1.0)  # replicas report twice a second
    after = httpx.get(url + "/zoo/replicas").json()["replicas"]
    return statistics.median(rates), sorted(r["requests"] - before.get(r["id"], 0) for r in after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, tuple[float, list[int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = home_with_default_model(Path(tmp) / "home")
        for name, env, flags in CONFIGS:
            started = time.perf_counter()
            server = start_server(home, Path(tmp) / f"{len(results)}.log",
                                  {**env, "OPENZOO_CONTEXT_LENGTH": "2048"}, args=flags, ready_seconds=300)
            ready = time.perf_counter() - started
            try:
                results[name] = measure(server.url, args.tokens, args.rounds)
            finally:
                leftovers = stop_server_tree(server)
            print(f"{name}: ready in {ready:.0f} s, {results[name][0]:.1f} tok/s"
                  + (f" (killed {len(leftovers)} leftover processes)" if leftovers else ""), flush=True)
    one_thread = results[CONFIGS[0][0]][0]
    all_cores = results[CONFIGS[1][0]][0]
    print(f"\n{CLIENTS} concurrent streamed /v1/completions, {args.tokens} tokens each, greedy, "
          f"median of {args.rounds} rounds, {CORES} cores")
    print(f"{'server':<26}{'tok/s':>9}{'vs plain 1t':>13}{f'vs plain {CORES}t':>13}   requests per replica")
    for name, (rate, spread) in results.items():
        print(f"{name:<26}{rate:9.1f}{rate / one_thread:12.2f}x{rate / all_cores:12.2f}x   {spread}")
    two, one = results[CONFIGS[3][0]][0], results[CONFIGS[2][0]][0]
    print(f"2 replicas / 1 replica: {two / one:.2f}x")


if __name__ == "__main__":
    main()
