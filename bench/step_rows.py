"""What one decode step costs by its number of rows, with the engine's llama.cpp settings.

The engine fills a step of only generating rows up to a multiple of 4 rows and lets a lone sequence's
spare rows carry guesses (``runtime/llamacpp/draft.py``); both rest on this table. Every row is one
token of its own sequence at the same position, with logits unless the second figure says fewer
rows have them (a throw-away row without logits). Configurations are interleaved over ``--rounds``
rounds, so a shared machine's load falls on all alike; medians and the ratio of each step's cost to
that of the next multiple of 4 rows are printed. The decodes run on a worker thread (see
``bench/batch.py`` on OpenMP thread teams).

    PYTHONPATH=src python bench/step_rows.py [--rounds 30] [--max-rows 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from batch import default_model

from openzoo.runtime.llamacpp.native import L, batch_put, ensure_backend
from openzoo.runtime.llamacpp.step import UBATCH_ROWS

PREFIX = 32  # tokens of context each sequence has before the measured steps


def measure(gguf: Path, configs: list[tuple[int, int]], rounds: int) -> dict[tuple[int, int], float]:
    """Median seconds of one decode per (rows, rows with logits)."""
    ensure_backend()
    mp = L.llama_model_default_params()
    mp.use_extra_bufts = False  # as the engine (batch invariance)
    model = L.llama_model_load_from_file(str(gguf).encode(), mp)
    seqs = max(rows for rows, _ in configs)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 256 * seqs, 512, UBATCH_ROWS, seqs
    cp.n_threads = cp.n_threads_batch = os.cpu_count() or 1
    cp.kv_unified = True
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
    ctx = L.llama_init_from_model(model, cp)
    mem = L.llama_get_memory(ctx)
    batch: Any = L.llama_batch_init(512, 0, 1)
    times: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
    try:
        for seq in range(seqs):
            for j in range(PREFIX):
                batch_put(batch, j, 100 + j, j, seq, j == PREFIX - 1)
            batch.n_tokens = PREFIX
            L.llama_decode(ctx, batch)
        for r in range(rounds):
            for rows, with_logits in configs:
                for i in range(rows):
                    batch_put(batch, i, 200 + r, PREFIX, i, i < with_logits)
                batch.n_tokens = rows
                start = time.perf_counter()
                L.llama_decode(ctx, batch)
                L.llama_synchronize(ctx)
                times[(rows, with_logits)].append(time.perf_counter() - start)
                for seq in range(seqs):
                    L.llama_memory_seq_rm(mem, seq, PREFIX, -1)
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(model)
    return {c: statistics.median(t) for c, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--max-rows", type=int, default=16)
    args = parser.parse_args()
    top = max(4, args.max_rows // 4 * 4)
    configs = [(n, n) for n in range(1, top + 1)] + [(2, 1)]
    result: dict[tuple[int, int], float] = {}
    worker = threading.Thread(target=lambda: result.update(measure(default_model(), configs, args.rounds)))
    worker.start()
    worker.join()
    print(f"one decode step, median of {args.rounds} interleaved rounds, {os.cpu_count()} threads")
    for rows, with_logits in configs:
        tile = -(-rows // 4) * 4
        cost = result[(rows, with_logits)]
        vs = f"{cost / result[(tile, tile)]:5.2f}x the {tile}-row step" if tile != rows else ""
        print(f"{rows:3d} rows, {with_logits:3d} with logits: {cost * 1000:6.1f} ms  {vs}")


if __name__ == "__main__":
    main()
