"""Where a 1,000-token prompt's time goes: the engine's llama.cpp settings against the fast ones each
batch-invariance pin gives up, one knob at a time, measured in one run (not in CI).

The engine (``runtime/llamacpp/engine.py``, "Batch invariance") pins three kernel choices: micro-batches
of at most 63 rows (flash attention's tiled kernel from 64 query rows rounds differently),
``GGML_CPU_TILED_MM=0`` (the tiled K-quant matrix kernel from 8 rows) and no "extra" weight buffers
(repacked weights). llama-server runs with 512-row micro-batches, the tiled kernel and repacked weights.
Each configuration runs in a process of its own (ggml reads ``GGML_CPU_TILED_MM`` once), reads the
prompt ``--rounds`` times from an empty cache (configurations interleaved round by round, so a shared
machine's load falls on all alike), and prints the median time and tokens/s, and its speed relative to
the engine's settings.

    .venv/bin/python bench/prefill_knobs.py [--tokens 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: (name, micro-batch rows, GGML_CPU_TILED_MM, extra weight buffers)
CONFIGS = [
    ("engine: ubatch 63, per-row kernels", 63, "0", False),
    ("ubatch 512", 512, "0", False),
    ("tiled K-quant kernel", 63, "1", False),
    ("repacked weights", 63, "0", True),
    ("all three (llama-server's)", 512, "1", True),
]

_CHILD = r"""
import json, os, sys, time
import llama_cpp.llama_cpp as L
path, ubatch, extra, tokens = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
L.llama_backend_init()
mp = L.llama_model_default_params()
mp.use_extra_bufts = extra
model = L.llama_model_load_from_file(path.encode(), mp)
cp = L.llama_context_default_params()
cp.n_ctx = 2048; cp.n_batch = 2048; cp.n_ubatch = ubatch; cp.n_seq_max = 1
cp.n_threads = cp.n_threads_batch = os.cpu_count() or 1
cp.kv_unified = True; cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED
ctx = L.llama_init_from_model(model, cp)
vocab = L.llama_model_get_vocab(model)
text = ("The river town grew around a mill that ground wheat for three valleys. " * 200).encode()
buf = (L.llama_token * 4096)()
n = L.llama_tokenize(vocab, text, len(text), buf, 4096, True, False)
ids = list(buf[:min(n, tokens)])
batch = L.llama_batch_init(len(ids), 0, 1)
for i, t in enumerate(ids):
    batch.token[i] = t; batch.pos[i] = i; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = 0
    batch.logits[i] = i == len(ids) - 1
batch.n_tokens = len(ids)
L.llama_decode(ctx, batch)  # warm-up: weights paged in, threads started
L.llama_memory_clear(L.llama_get_memory(ctx), True)
start = time.perf_counter()
assert L.llama_decode(ctx, batch) == 0
print(json.dumps({"seconds": time.perf_counter() - start, "tokens": len(ids)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from batch import default_model

    gguf = str(default_model())
    times: dict[str, list[float]] = {name: [] for name, *_ in CONFIGS}
    count = 0
    for r in range(args.rounds):
        for name, ubatch, tiled, extra in CONFIGS if r % 2 == 0 else reversed(CONFIGS):
            env = dict(os.environ, GGML_CPU_TILED_MM=tiled)
            out = subprocess.run([sys.executable, "-c", _CHILD, gguf, str(ubatch), "1" if extra else "0",
                                  str(args.tokens)], env=env, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times[name].append(result["seconds"])
            count = result["tokens"]
    base = statistics.median(times[CONFIGS[0][0]])
    print(f"a {count}-token prompt read in one llama_decode from an empty cache, median of {args.rounds} "
          f"(load: {os.getloadavg()[0]:.1f}, {time.strftime('%H:%M:%S')})")
    for name, *_ in CONFIGS:
        t = statistics.median(times[name])
        print(f"{name:<38} {t:7.2f} s {count / t:8.0f} tok/s {base / t:6.2f}x the engine's")


if __name__ == "__main__":
    main()
