"""Audit scoring throughput: in-process vs ``/v1/completions`` over HTTP vs one item at a time, in one run.

Items are lm-eval ``loglikelihood`` requests (context, continuation) from the bundled multiple-choice
task, scored on the default model:

* ``in-process``: :class:`openzoo.audit.engine_scorer.EngineScorer` with several requests in flight;
* ``http``: lm-eval's echo request (``prompt`` as token ids, ``echo``, ``logprobs: 1``,
  ``max_tokens: 1``) to a live ``openzoo serve``, several requests in flight, summed as lm-eval does;
* ``baseline``: llama-cpp-python's high-level ``Llama(logits_all=True)``, one item at a time, in a
  subprocess, with every core and without ggml's extra (AMX) weight buffers, whose kernels segfault in
  ``llama_decode`` on virtual machines that report AMX without enabling it (as openzoo's engine does).
  If it still fails, the baseline is the engine scoring one item at a time, and the run says so.

Goal: in-process >= 3x the one-at-a-time figure. Prints items/s for each and the ratios.

    .venv/bin/python bench/audit.py [--items 24] [--parallel 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from openzoo import config
from openzoo.audit import datasets
from openzoo.audit.engine_scorer import EngineScorer
from openzoo.models import DEFAULT_MODEL
from openzoo.services import Services

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.server import start_server, stop_server  # type: ignore[import-not-found]

CTX = 2048

_LLAMA_BASELINE = r"""
import json, os, sys, time
import numpy as np
import llama_cpp.llama_cpp as low
from llama_cpp import Llama
_default = low.llama_model_default_params
def _params():
    mp = _default()
    mp.use_extra_bufts = False  # as openzoo's engine: ggml's AMX buffers fault on this kind of VM
    return mp
low.llama_model_default_params = _params
path, items = sys.argv[1], json.loads(sys.stdin.read())
n = os.cpu_count() or 1
llm = Llama(path, n_ctx=int(sys.argv[2]), logits_all=True, flash_attn=True, n_threads=n, n_threads_batch=n,
            verbose=False)
def score(ctx, cont):
    toks = ctx + cont
    llm.reset(); llm.eval(toks)
    rows = np.asarray(llm.scores[len(ctx) - 1:len(toks) - 1], dtype=np.float64)
    rows = rows - rows.max(-1, keepdims=True)
    rows = rows - np.log(np.exp(rows).sum(-1, keepdims=True))
    return float(rows[np.arange(len(cont)), cont].sum())
score(*items[0])
start = time.perf_counter()
out = [score(c, k) for c, k in items]
print(json.dumps({"seconds": time.perf_counter() - start, "lls": out}))
"""


def requests_from_bundled(n: int) -> list[tuple[str, str]]:
    """The first ``n`` (context, " " + choice) requests of the bundled multiple-choice task."""
    from openzoo.audit.suites.quality import TASK, load_mc

    out = [(item.context, " " + choice) for item in load_mc(datasets.bundled(TASK)) for choice in item.choices]
    return out[:n]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def llama_baseline(weights: Path, items: list[tuple[list[int], list[int]]]) -> tuple[float | None, str]:
    """Seconds for llama-cpp-python's Llama(logits_all=True), one at a time; None and why when it fails."""
    proc = subprocess.run([sys.executable, "-c", _LLAMA_BASELINE, str(weights), str(CTX)], input=json.dumps(items),
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        why = "segfault in llama_decode" if proc.returncode in (-11, 139) else f"exit {proc.returncode}"
        return None, why
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]), "ok"


def http_scores(url: str, prompts: list[tuple[list[int], int]], parallel: int) -> list[float]:
    """lm-eval's local-completions request and sum: token_logprobs[ctxlen:-1] of the echoed prompt."""
    with httpx.Client(timeout=600) as client:
        def one(item: tuple[list[int], int]) -> float:
            tokens, ctxlen = item
            r = client.post(f"{url}/v1/completions", json={
                "model": DEFAULT_MODEL, "prompt": tokens, "temperature": 0, "max_tokens": 1, "logprobs": 1,
                "seed": 1234, "echo": True})
            r.raise_for_status()
            lps = r.json()["choices"][0]["logprobs"]["token_logprobs"]
            return float(sum(lps[ctxlen:-1]))

        with ThreadPoolExecutor(parallel) as pool:
            return list(pool.map(one, prompts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=24, help="loglikelihood requests per contender")
    parser.add_argument("--parallel", type=int, default=16, help="requests in flight (in-process and HTTP)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each contender's best counts")
    args = parser.parse_args()
    requests = requests_from_bundled(args.items)

    with tempfile.TemporaryDirectory(prefix="openzoo-bench-audit-") as tmp:
        home = Path(tmp) / "home"
        env = {"OPENZOO_HOME": str(home), "OPENZOO_CONTEXT_LENGTH": str(CTX)}
        services = Services(config.load(env))
        for _ in services.transfers.pull(DEFAULT_MODEL):
            pass
        weights = services.models.resolve(DEFAULT_MODEL).weights
        scorer = EngineScorer.open(services.inference, DEFAULT_MODEL, parallel=args.parallel, context_bos=False)
        pairs = [scorer._encode(c, k) for c, k in requests]  # the token ids every contender scores
        scorer.loglikelihood(requests[:2])  # warm-up

        # The contenders alternate for --rounds rounds and each keeps its best time: on a shared machine
        # the load changes by the minute, and alternating keeps it from favouring whoever ran first.
        log = Path(tmp) / "server.log"
        server = start_server(home, log, {"OPENZOO_NUM_PARALLEL": str(args.parallel)})
        t_in = t_one = t_http = float("inf")
        try:
            prompts = [(ctx + cont, len(ctx)) for ctx, cont in pairs]
            http_scores(server.url, prompts[:2], 1)  # warm-up (loads the model)
            for _ in range(args.rounds):
                scorer.parallel = args.parallel
                t, ours = timed(lambda: scorer.loglikelihood(requests))
                t_in = min(t_in, t)
                t, theirs = timed(lambda: http_scores(server.url, prompts, args.parallel))
                t_http = min(t_http, t)
                scorer.parallel = 1
                t, ours_one = timed(lambda: scorer.loglikelihood(requests))
                t_one = min(t_one, t)
        finally:
            stop_server(server)
            services.close()

        t_llama, why = llama_baseline(weights, pairs) if shutil.which(sys.executable) else (None, "no python")

    n = len(requests)
    max_diff = max(abs(a[0] - b) for a, b in zip(ours, theirs, strict=True))
    assert all(a == b for a, b in zip(ours, ours_one, strict=True)), "parallel and serial scores differ"
    rows = [(f"in-process (parallel {args.parallel})", t_in), ("http /v1/completions", t_http),
            ("engine one at a time", t_one)]
    if t_llama is not None:
        rows.append(("llama-cpp-python Llama(logits_all) one at a time", t_llama))
    print(f"{n} loglikelihood items, default model {DEFAULT_MODEL}, {os.cpu_count()} cores")
    for name, seconds in rows:
        print(f"  {name:<50} {n / seconds:8.2f} items/s  ({seconds:.1f} s)")
    baseline_name, baseline_t = ("llama-cpp-python", t_llama) if t_llama is not None else ("engine one at a time",
                                                                                           t_one)
    if t_llama is None:
        print(f"  llama-cpp-python Llama(logits_all=True): not measured ({why}); baseline = engine one at a time")
    print(f"ratio in-process / {baseline_name}: {baseline_t / t_in:.2f}x (goal >= 3x)")
    print(f"ratio http / {baseline_name}: {baseline_t / t_http:.2f}x")
    print(f"ratio in-process / http: {t_http / t_in:.2f}x")
    print(f"max |in-process - http| per item: {max_diff:.2e}")


if __name__ == "__main__":
    main()
