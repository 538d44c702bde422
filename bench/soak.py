"""Soak test (not in CI): mixed load with random disconnects for --minutes against a real server.

Checks at the end: server RSS growth from the first minute to the end below 5 %, no busy slot left,
and no errors other than the intended 503/429 answers to a full queue. Bounded in time and count;
loopback only.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 8]
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
from support.server import start_server, stop_server  # noqa: E402


def rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) * 1024  # type: ignore[union-attr]


def one_request(url: str, rng: random.Random, outcomes: Counter[str]) -> None:
    kind = rng.choice(["chat", "openai", "generate", "embed"])
    cut = rng.random() < 0.3
    try:
        if kind == "embed":
            r = httpx.post(url + "/api/embed", json={"model": DEFAULT_MODEL, "input": ["soak"]}, timeout=120)
            outcomes[f"embed {r.status_code}"] += 1
            return
        path, body = {
            "chat": ("/api/chat", {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                   "options": {"num_predict": rng.randint(4, 64)}}),
            "generate": ("/api/generate", {"model": DEFAULT_MODEL, "prompt": "Once",
                                           "options": {"num_predict": rng.randint(4, 64)}}),
            "openai": ("/v1/chat/completions", {"model": DEFAULT_MODEL, "stream": True,
                                                "messages": [{"role": "user", "content": "Hi"}],
                                                "max_tokens": rng.randint(4, 64)}),
        }[kind]
        with httpx.stream("POST", url + path, json=body, timeout=300) as response:
            if response.status_code != 200:
                outcomes[f"{kind} {response.status_code}"] += 1
                return
            for i, line in enumerate(response.iter_lines()):
                if cut and i == 2:
                    outcomes[f"{kind} disconnected"] += 1
                    return
                if line.startswith("{") and "error" in json.loads(line):
                    outcomes[f"{kind} stream error"] += 1
                    return
        outcomes[f"{kind} ok"] += 1
    except httpx.HTTPError as exc:
        outcomes[f"{kind} {type(exc).__name__}"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = home_with_default_model(Path(tmp) / "home")
        server = start_server(home, Path(tmp) / "server.log", {"OPENZOO_MAX_QUEUE": "4"})
        outcomes: Counter[str] = Counter()
        samples: list[tuple[float, int]] = []
        end = time.monotonic() + args.minutes * 60
        try:
            def client(seed: int) -> None:
                rng = random.Random(seed)
                while time.monotonic() < end:
                    one_request(server.url, rng, outcomes)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            start = time.monotonic()
            while any(t.is_alive() for t in threads):
                samples.append((time.monotonic() - start, rss(server.process.pid)))
                time.sleep(5)
            for t in threads:
                t.join()
            time.sleep(2)
            metrics = httpx.get(server.url + "/metrics").text
            busy = sum(int(v) for v in re.findall(r"^openzoo_busy_slots\{[^}]*\} (\d+)$", metrics, re.M))
        finally:
            stop_server(server)
    baseline = next((r for t, r in samples if t >= 60), samples[0][1])
    growth = samples[-1][1] / baseline - 1
    bad = {k: v for k, v in outcomes.items()
           if not k.endswith((" ok", " disconnected", " 200", " 503", " 429"))}
    print(f"{sum(outcomes.values())} requests in {args.minutes} min: {dict(sorted(outcomes.items()))}")
    print(f"RSS after 1 min {baseline / 1e6:.0f} MB, at end {samples[-1][1] / 1e6:.0f} MB: growth {growth:+.1%} "
          "(goal < 5 %)")
    print(f"busy slots at the end: {busy} (goal 0); unexpected outcomes: {bad or 'none'}")


if __name__ == "__main__":
    main()
