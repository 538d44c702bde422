"""Aggregate decode throughput and time to first token at 1, 2, 4 and 8 concurrent streaming clients,
openzoo against its peers, all measured in one run:

(a) llama.cpp's C++ ``llama-server -np 8`` when ``--llama-server PATH`` is given (``make bench-peer``
    builds it from the llama.cpp sources vendored in the pinned llama-cpp-python sdist, with
    ``bench/build_llama_server.sh``): the peer the goals compare with;
(b) unless ``--no-baselines``: the same openzoo server with OPENZOO_NUM_PARALLEL=1 (requests one after
    another) and llama-cpp-python's own server (``python -m llama_cpp.server``).

Every server gets the same model, the same prompts and streamed greedy ``/v1/completions`` requests of
--tokens tokens, from one persistent HTTP client (connections kept alive, as real clients do, so that
client set-up is not measured). Prompts are sent as token ids, tokenized once with the model's BOS, so
that every server decodes exactly the same tokens whatever it does with a text prompt (all three add the
BOS the GGUF asks for today; without BOS this model ends some answers at once, which would make the
servers do different work). The tokens each server generated are printed beside the figures.

Before the rounds, every server reads every prompt once (both servers keep prompts in a per-slot cache),
so that the figures are those of steady serving: the first sight of a prompt is a prefill, which costs
about the same on both servers (same ggml kernels) and, left in, would decide the p95 TTFT in the first
round by itself. All servers run side by side; each round measures every level on every server in turn
(the order flips each round), so that a shared machine's load falls on all of them alike. Reported per
level: the median over ``--rounds`` of aggregate tokens/s, its ratio to the reference (llama-server,
else the serialized openzoo), and the p95 time to first token over all rounds' requests. Then one
PASS/FAIL line per goal:

- openzoo's aggregate tokens/s >= 1.0x llama-server's at 1 and at 8 clients;
- openzoo's p95 time to first token at 8 clients <= llama-server's;
- with baselines: openzoo >= 2.0x its serialized self at 8 clients.

    .venv/bin/python bench/concurrency.py [--levels 1,4,8] [--rounds 3] [--tokens 96]
                                          [--llama-server PATH] [--no-baselines] [--compare-src DIR]
                                          [--compare-env KEY=VALUE]

``--workload varied|chat|mixed|prefill|defaults`` runs one of issue 20's workloads instead (described in
``bench/workloads.py``; ``make bench-traffic`` runs them all), ``--scale`` shrinks them for a quick run.

``--compare-src DIR`` adds an openzoo server run from another checkout's ``src`` folder (e.g. from
``git archive <commit> src | tar -x -C /tmp/base``), for before/after figures of a change in one run;
``--compare-env KEY=VALUE`` one from this checkout with a setting changed (``OPENZOO_GUESS_TOKENS=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from batch import PROMPTS, default_model  # noqa: E402

from openzoo.models import DEFAULT_MODEL  # noqa: E402
from support.cli import home_with_default_model  # noqa: E402
from support.server import (  # noqa: E402
    exit_on_sigterm,
    free_port,
    start_server,
    stop_process,
    stop_server,
    wait_ready,
)

THREADS = str(os.cpu_count() or 1)
OPENZOO = "openzoo NUM_PARALLEL=8"
SERIAL = "openzoo NUM_PARALLEL=1"
LCP = "llama-cpp-python server"
CPP = "llama.cpp llama-server -np 8"

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


@dataclass
class Running:
    """A server that answered a warm-up request, and how to stop it."""

    name: str
    url: str
    model: str
    stop: Callable[[], None]
    pid: int = 0  # for its memory (bench/workloads.py)


@dataclass
class Figures:
    """Per level: aggregate tokens/s of each round, and every request's time to first token."""

    rates: dict[int, list[float]] = field(default_factory=dict)
    ttfts: dict[int, list[float]] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)

    def rate(self, level: int) -> float:
        return statistics.median(self.rates[level])

    def p95(self, level: int) -> float:
        ordered = sorted(self.ttfts[level])
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def stream_one(client: httpx.Client, url: str, model: str, prompt: str | list[int], tokens: int,
               ) -> tuple[float, int]:
    """(time to first token, text chunks received) for one streamed greedy completion."""
    first, _, count = stream_times(client, url, model, prompt, tokens)
    return first, count


def stream_times(client: httpx.Client, url: str, model: str, prompt: str | list[int], tokens: int,
                 extra: dict[str, object] | None = None) -> tuple[float, list[float], int]:
    """(time to first token, arrival time of each text chunk, text chunks) for one streamed completion,
    greedy unless ``extra`` (more body fields) says otherwise.

    A kept-alive connection that the server closed (llama-server's HTTP library closes one after a few
    requests without saying so) fails before any answer: the request is then sent again on a new
    connection, and timed from there.
    """
    # openzoo's extension field: the default model's own repeat_penalty (1.15) off, as llama-server's default is,
    # so both servers do the same work (llama-server ignores the field)
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
            "options": {"repeat_penalty": 1.0}, **(extra or {})}
    for attempt in range(3):
        start = time.perf_counter()
        arrivals: list[float] = []
        try:
            with client.stream("POST", url + "/v1/completions", json=body, timeout=900) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if chunk["choices"] and chunk["choices"][0].get("text"):
                        arrivals.append(time.perf_counter())
            return (arrivals[0] - start if arrivals else 0.0), arrivals, len(arrivals)
        except httpx.RemoteProtocolError:
            if arrivals or attempt == 2:
                raise
    raise AssertionError("unreachable")


def measure_level(client: httpx.Client, server: Running, prompts: list[list[int]], level: int, tokens: int,
                  into: Figures) -> None:
    """``level`` requests at once; adds the aggregate tokens/s, the tokens and the TTFTs to ``into``."""
    start = time.perf_counter()
    with ThreadPoolExecutor(level) as pool:
        results = list(pool.map(
            lambda i: stream_one(client, server.url, server.model, prompts[i % len(prompts)], tokens), range(level)))
    wall = time.perf_counter() - start
    into.rates.setdefault(level, []).append(sum(r[1] for r in results) / wall)
    into.tokens[level] = into.tokens.get(level, 0) + sum(r[1] for r in results)
    into.ttfts.setdefault(level, []).extend(r[0] for r in results)


def guess_counts(url: str) -> tuple[int, int]:
    """openzoo's guessed tokens decoded in spare rows, and the right ones (see runtime/llamacpp/draft.py)."""
    text = httpx.get(url + "/metrics", timeout=30).text

    def total(name: str) -> int:
        return sum(int(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\d+)$", text, re.M))

    return total("openzoo_draft_rows_total"), total("openzoo_draft_tokens_total")


def token_prompts(url: str) -> list[list[int]]:
    """The bench prompts as token ids with BOS, from openzoo's tokenizer route (the same model's vocabulary)."""
    return [httpx.post(url + "/tokenize", json={"model": DEFAULT_MODEL, "prompt": p, "add_special_tokens": True},
                       timeout=60).json()["tokens"] for p in PROMPTS]


def start_external(name: str, cmd: list[str], port: int, model: str, log: Path, env: dict[str, str] | None = None,
                   ) -> Running:
    """Start a peer server, wait until it has loaded its model, and check that it can generate."""
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        stop_process(process)

    try:
        # /v1/models answers 200 once the model is loaded (llama-server says 503 while it loads).
        if not wait_ready(process, url + "/v1/models", 180):
            raise RuntimeError("server did not start")
        with httpx.Client() as client:
            stream_one(client, url, model, PROMPTS[0], 4)
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        stop()
        raise RuntimeError(f"{name}: {type(exc).__name__}: {exc}; see {log.name}:\n"
                           + log.read_text(errors="replace")[-2000:]) from None
    return Running(name, url, model, stop, process.pid)


def start_openzoo(name: str, home: Path, log: Path, parallel: str, src: Path | None = None,
                  extra: dict[str, str] | None = None) -> Running:
    """An openzoo server from this checkout (or ``src``) with ``parallel`` slots ("" for the default)."""
    env = ({"OPENZOO_NUM_PARALLEL": parallel} if parallel else {}) | ({"PYTHONPATH": str(src)} if src else {})
    server = start_server(home, log, env | (extra or {}))
    with httpx.Client() as client:
        stream_one(client, server.url, DEFAULT_MODEL, PROMPTS[0], 4)  # loads the model
    return Running(name, server.url, DEFAULT_MODEL, lambda: stop_server(server), server.process.pid)


def start_llama_server(binary: Path, gguf: Path, tmp: Path, extra: list[str], *, slots: int = 8,
                       ctx: int = 1024, name: str = CPP) -> Running:
    """llama-server with ``slots`` slots of ``ctx`` tokens and every core; without weight repacking if
    repacked weights crash.

    Repacking puts weights in AMX buffers on CPUs that report AMX; their kernels fault on virtual
    machines that report it without enabling it (openzoo's engine keeps them off too).
    """
    env = dict(os.environ, LD_LIBRARY_PATH=f"{binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    port = free_port()
    cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
           "-c", str(slots * ctx), "-t", THREADS, "-tb", THREADS, *extra]
    log = tmp / f"cpp-{port}.log"
    try:
        return start_external(name, cmd, port, "gemma", log, env)
    except RuntimeError as exc:
        print(f"{str(exc).splitlines()[0]}\n  again with --no-repack")
    port = free_port()
    cmd[cmd.index("--port") + 1] = str(port)
    return start_external(name + " -nr", [*cmd, "--no-repack"], port, "gemma", tmp / f"cpp-nr-{port}.log", env)


def start_all(args: argparse.Namespace, stack: ExitStack, tmp: Path) -> list[Running]:
    gguf = default_model()
    home = home_with_default_model(tmp / "home")
    servers: list[Running] = []

    def keep(server: Running) -> None:
        stack.callback(server.stop)
        servers.append(server)

    keep(start_openzoo(OPENZOO, home, tmp / "openzoo.log", "8"))
    for i, src in enumerate(args.compare_src):
        keep(start_openzoo(f"openzoo from {src.name}", home, tmp / f"other-{i}.log", "8", src.resolve()))
    for i, setting in enumerate(args.compare_env):
        key, _, value = setting.partition("=")
        keep(start_openzoo(f"openzoo {setting}", home, tmp / f"env-{i}.log", "8", extra={key: value}))
    if args.llama_server:
        keep(start_llama_server(args.llama_server, gguf, tmp, shlex.split(args.llama_server_args)))
    if args.baselines:
        keep(start_openzoo(SERIAL, home, tmp / "serial.log", "1"))
        port = free_port()
        try:
            keep(start_external(LCP, [sys.executable, "-c", _LCP_SERVER, "--model", str(gguf), "--host", "127.0.0.1",
                                      "--port", str(port), "--n_ctx", "4096", "--interrupt_requests", "False",
                                      "--n_threads", THREADS, "--n_threads_batch", THREADS],
                                port, "gemma", tmp / "lcp.log"))
        except RuntimeError as exc:
            # On VMs whose CPU reports AMX without enabling it, the high-level Llama (which that server
            # uses) may crash in llama_decode; openzoo's engine avoids those kernels.
            print(f"{str(exc).splitlines()[0]} (left out)")
    return servers


def report(args: argparse.Namespace, levels: list[int], figures: dict[str, Figures],
           guesses: dict[str, tuple[int, int]]) -> None:
    names = list(figures)
    cpp = next((n for n in names if n.startswith(CPP)), None)
    reference = cpp or (SERIAL if SERIAL in figures else None)
    print(f"{args.tokens} tokens per request, streamed /v1/completions, greedy; aggregate tok/s is the median "
          f"of {args.rounds} interleaved rounds, p95 TTFT is over all rounds' requests"
          + (f"; ratios are to {reference}" if reference else ""))
    print(f"{'server':<34}" + "".join(f"{f'{n} client(s)':>34}" for n in levels))
    for name in names:
        row = figures[name]
        cells = ""
        for n in levels:
            times = f"{row.rate(n) / figures[reference].rate(n):5.2f}x" if reference else ""
            cells += f"{row.rate(n):10.1f} tok/s {times:>6} {row.p95(n) * 1000:6.0f} ms p95"
        print(f"{name:<34}{cells}")
    print("tokens generated per level over all rounds (equal work when these agree): " + "; ".join(
        f"{name}: " + ", ".join(str(figures[name].tokens[n]) for n in levels) for name in names))
    for name, (rows, right) in guesses.items():
        total = sum(figures[name].tokens.values())
        print(f"{name}: {rows} guessed tokens decoded in spare rows, {right} right: "
              f"{right / max(1, total):.1%} of its tokens came without a step of their own")
    ours = figures[OPENZOO]
    goals: list[tuple[bool, str]] = []
    if cpp is not None:
        peer = figures[cpp]
        for n in (1, 8):
            if n in levels:
                ratio = ours.rate(n) / peer.rate(n)
                goals.append((ratio >= 1.0, f"aggregate at {n} client(s): openzoo {ours.rate(n):.1f} tok/s = "
                                            f"{ratio:.2f}x llama-server's {peer.rate(n):.1f} (goal >= 1.0x)"))
        if 8 in levels:
            goals.append((ours.p95(8) <= peer.p95(8), f"p95 TTFT at 8 clients: openzoo {ours.p95(8) * 1000:.0f} ms, "
                                                      f"llama-server {peer.p95(8) * 1000:.0f} ms (goal <=)"))
    if SERIAL in figures and 8 in levels:
        ratio = ours.rate(8) / figures[SERIAL].rate(8)
        goals.append((ratio >= 2.0, f"openzoo at 8 clients = {ratio:.2f}x its serialized self (goal >= 2.0x)"))
    for ok, line in goals:
        print(f"{'PASS' if ok else 'FAIL'}: {line}")


def main() -> None:
    from workloads import WORKLOADS, run_workload  # it imports this module's helpers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--levels", default="1,2,4,8", help="concurrent clients, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per level and server")
    parser.add_argument("--llama-server", type=Path, help="path to llama.cpp's C++ llama-server")
    parser.add_argument("--llama-server-args", default="", help="more arguments for llama-server (one string)")
    parser.add_argument("--compare-src", type=Path, action="append", default=[],
                        help="also run an openzoo server from this source folder (a `src` of another checkout), "
                             "to compare a change before and after in one run; repeatable")
    parser.add_argument("--compare-env", action="append", default=[], metavar="KEY=VALUE",
                        help="also run an openzoo server from this checkout with this environment variable set "
                             "(e.g. OPENZOO_GUESS_TOKENS=0), to compare a setting in one run; repeatable")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false",
                        help="leave out the serialized openzoo and llama-cpp-python's server")
    parser.add_argument("--workload", choices=["greedy", *WORKLOADS], default="greedy",
                        help="greedy: the levels above (default); the others are described in bench/workloads.py")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="workloads: multiply the issue's sizes (users, turns, history, rounds) by this, "
                             "for a quick run on a busy machine")
    args = parser.parse_args()
    for setting in args.compare_env:
        if "=" not in setting:
            parser.error(f"--compare-env {setting}: expected KEY=VALUE")
    for src in args.compare_src:
        if not (src / "openzoo" / "__init__.py").is_file():
            parser.error(f"--compare-src {src}: no openzoo package there; give the `src` folder of a checkout")
    exit_on_sigterm()
    if args.workload != "greedy":
        run_workload(args)
        return
    levels = [int(n) for n in args.levels.split(",")]
    figures: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        servers = start_all(args, stack, Path(tmp))
        prompts = token_prompts(servers[0].url)
        ours = [s for s in servers if s.name.startswith("openzoo")]
        # Idle connections are dropped after 1 s, before a server's keep-alive timeout (5 s for uvicorn and
        # llama-server) can close one under a new request while other servers are being measured.
        limits = httpx.Limits(max_connections=max(levels) * 2, keepalive_expiry=1.0)
        with httpx.Client(limits=limits) as client:
            for server in servers:  # every prompt once, one after another: both caches hold them all
                for prompt in prompts:
                    stream_one(client, server.url, server.model, prompt, 4)
            warm = {s.name: guess_counts(s.url) for s in ours}
            for r in range(args.rounds):
                for level in levels:
                    for server in servers if r % 2 == 0 else reversed(servers):
                        measure_level(client, server, prompts, level, args.tokens,
                                      figures.setdefault(server.name, Figures()))
        figures = {s.name: figures[s.name] for s in servers}
        guesses = {}
        for s in ours:
            rows, right = guess_counts(s.url)
            guesses[s.name] = (rows - warm[s.name][0], right - warm[s.name][1])
    report(args, levels, figures, guesses)


if __name__ == "__main__":
    main()
