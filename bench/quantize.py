"""Quantizing the default model: time per type and what each type loses; and how far each kernel set sits
from an F32 evaluation.

Part 1, quantization. The default model (Gemma 3 270M, Q4_K_M) is requantized by ``llama_model_quantize``
(``allow_requantize``) to each common type, timed, and measured against its source exactly as
``openzoo create --quantize`` measures (``openzoo.quantize.measure``: openzoo's scoring path, full
vocabulary, float64): mean KL divergence, top-1 agreement, perplexity of both, size ratio. The baseline is
F16, which only dequantizes: each type's time is printed as a ratio to it.

Part 2, kernel sets. The source's weights dequantized to F32 (``--quantize F32``) and read with F32 KV
cells and no flash attention are the reference: the model as its weights say, with as little rounding as
llama.cpp has. Against it, the same Q4_K_M weights read by

* openzoo's batch-invariant kernel set: the scoring path (``PromptScorer``) of a model loaded as the engine
  loads it (no repacked weights, per-row K-quant products: ``GGML_CPU_TILED_MM=0``, flash attention on);
* llama.cpp's stock kernels: default model and context parameters (repacked weights, tiled K-quant
  products, flash attention as llama.cpp picks it, micro-batches of 512).

Each kernel set runs in a process of its own (ggml reads ``GGML_CPU_TILED_MM`` once per process); each
process also evaluates the F32 reference, and the two references must agree. Every sentence of the
held-out text is one prompt after BOS; reported per set: mean KL(F32 || set) over all positions, top-1
agreement with F32, and the mean and largest |log-likelihood difference| per sentence.

Part 1b, importance matrices: ``--imatrix-types`` quantized without and with an importance matrix computed
from the second half of the held-out text, both measured on its first half.

    PYTHONPATH=src python bench/quantize.py [--types Q8_0,Q4_0] [--tokens 1024] [--sentences 96]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from batch import default_model

from openzoo.quantize.measure import MeasureInputs, ScoringModel, builtin_heldout, measure
from openzoo.quantize.quality import QualityTotals, log_softmax64
from openzoo.quantize.run import quantize_file
from openzoo.quantize.types import QuantType, parse_type
from openzoo.runtime.llamacpp.logprobs import LogprobReader
from openzoo.runtime.llamacpp.native import L, batch_put, ensure_backend, tokenize

COMMON = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "F16")
CONTEXT = 512


def make(source: Path, out: Path, qtype: QuantType) -> float:
    """Quantize and return the seconds ``llama_model_quantize`` took."""
    steps = quantize_file(source, out, qtype, status="", estimate=1)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return float(done.value)


def part_quantize(source: Path, tmp: Path, types: list[str], tokens: int, context: int) -> None:
    inputs = MeasureInputs(builtin_heldout(), tokens, context)
    rows = []
    for name in ["F16", *[t for t in types if t.upper() != "F16"]]:
        qtype = parse_type(name)
        out = tmp / f"{qtype.name}.gguf"
        seconds = make(source, out, qtype)
        started = time.perf_counter()
        q = measure(source, out, inputs)
        rows.append((qtype.name, seconds, out.stat().st_size, q, time.perf_counter() - started))
        out.unlink()
    base = rows[0][1]
    size0 = source.stat().st_size
    print(f"\nQuantizing {source.name} ({size0 / 1e6:.1f} MB, Q4_K_M); measured on {rows[0][3]['tokens_scored']} "
          f"held-out tokens ({inputs.heldout.source}, {inputs.heldout.digest[:19]}…), prompts of {context}")
    print(f"{'type':<8}{'seconds':>9}{'x F16':>7}{'MB':>8}{'size':>7}{'KL mean':>10}{'KL max':>8}{'top-1':>8}"
          f"{'ppl src':>9}{'ppl q':>9}{'measure s':>11}")
    for name, seconds, size, q, took in rows:
        print(f"{name:<8}{seconds:>9.2f}{seconds / base:>7.2f}{size / 1e6:>8.1f}{size / size0:>7.3f}"
              f"{q['kl_mean']:>10.5f}{q['kl_max']:>8.3f}{q['top1_agreement'] * 100:>7.2f}%"
              f"{q['ppl_source']:>9.3f}{q['ppl_quantized']:>9.3f}{took:>11.1f}")


def part_imatrix(source: Path, tmp: Path, types: list[str], tokens: int, context: int) -> None:
    """The same types with and without an importance matrix computed from the second half of the held-out
    text; measured on the first half (so the calibration never saw the measured tokens)."""
    from openzoo.quantize import imatrix as im
    from openzoo.quantize.measure import HeldOut

    whole = builtin_heldout()
    paragraphs = whole.text.split("\n\n")
    half = len(paragraphs) // 2
    measured = HeldOut(whole.source + "#first-half", "\n\n".join(paragraphs[:half]))
    calibration = HeldOut(whole.source + "#second-half", "\n\n".join(paragraphs[half:]))
    started = time.perf_counter()
    matrix = im.compute(source, calibration)
    took = time.perf_counter() - started
    inputs = MeasureInputs(measured, tokens, context)
    print(f"\nImportance matrix from {matrix.tokens} tokens of {calibration.source} in {took:.1f} s "
          f"({len(matrix.values)} matrices); measured on {measured.source}")
    print(f"{'type':<9}{'imatrix':>8}{'seconds':>9}{'MB':>8}{'KL mean':>10}{'top-1':>9}{'ppl q':>9}")
    for name in types:
        qtype = parse_type(name)
        for use in ([False, True] if not qtype.needs_imatrix else [True]):
            out = tmp / f"{qtype.name}-im.gguf"
            steps = quantize_file(source, out, qtype, status="", estimate=1, imatrix=matrix if use else None)
            seconds = 0.0
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    seconds = float(done.value)
                    break
            q = measure(source, out, inputs)
            print(f"{qtype.name:<9}{'yes' if use else 'no':>8}{seconds:>9.2f}{out.stat().st_size / 1e6:>8.1f}"
                  f"{q['kl_mean']:>10.5f}{q['top1_agreement'] * 100:>8.2f}%{q['ppl_quantized']:>9.3f}")
            out.unlink()


# --- part 2: kernel sets (each in its own process) ---------------------------------------------------


class RawModel:
    """A GGUF read in one ``llama_decode`` per prompt, with the model/context settings given."""

    def __init__(self, path: Path, *, extra_bufts: bool, flash: int, kv_f32: bool) -> None:
        mp = L.llama_model_default_params()
        mp.use_extra_bufts = extra_bufts
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        self.vocab = L.llama_model_get_vocab(self.model)
        vocab = self.vocab
        self.bos = int(L.llama_vocab_bos(vocab))
        self.n_vocab = int(L.llama_vocab_n_tokens(vocab))
        cp = L.llama_context_default_params()
        cp.n_ctx = cp.n_batch = CONTEXT
        cp.n_threads = cp.n_threads_batch = os.cpu_count() or 1
        cp.flash_attn_type = flash
        if kv_f32:
            cp.type_k = cp.type_v = L.GGML_TYPE_F32
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.batch = L.llama_batch_init(CONTEXT, 0, 1)
        self.reader = LogprobReader(self.ctx, self.n_vocab, lambda t: b"")

    def logits(self, prompt: list[int]) -> Any:
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        for j, token in enumerate(prompt):
            batch_put(self.batch, j, token, j, 0, j < len(prompt) - 1)
        self.batch.n_tokens = len(prompt)
        if L.llama_decode(self.ctx, self.batch) != 0:
            raise RuntimeError("llama_decode failed")
        return self.reader.rows(0, len(prompt) - 1)


def sentences(count: int) -> list[str]:
    text = builtin_heldout().text
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    return found[:count]


def worker(kernel_set: str, source: Path, f32: Path, count: int) -> None:
    if kernel_set == "stock":
        os.environ["GGML_CPU_TILED_MM"] = "1"  # before ggml's first matrix product: llama.cpp's default
    ensure_backend()
    ref = RawModel(f32, extra_bufts=False, flash=L.LLAMA_FLASH_ATTN_TYPE_DISABLED, kv_f32=True)
    if kernel_set == "stock":
        stock = RawModel(source, extra_bufts=True, flash=L.LLAMA_FLASH_ATTN_TYPE_AUTO, kv_f32=False)
        read = stock.logits
    else:
        scoring = ScoringModel(source, n_ctx=CONTEXT)
        read = scoring.scorer.logits
    totals = QualityTotals()
    ll_ref, ll_set = [], []
    for sentence in sentences(count):
        prompt = [ref.bos, *tokenize(ref.vocab, sentence, add_special=False, parse_special=False)]
        r = np.array(ref.logits(prompt))
        s = read(prompt)
        targets = np.array(prompt[1:])
        totals.add(r, s, targets)
        idx = np.arange(len(targets))
        ll_ref.append(float(log_softmax64(r)[idx, targets].sum()))
        ll_set.append(float(log_softmax64(s)[idx, targets].sum()))
    print(json.dumps({"set": kernel_set, **totals.to_json(), "ll_ref": ll_ref, "ll_set": ll_set}))


def part_kernels(source: Path, tmp: Path, count: int) -> None:
    f32 = tmp / "F32.gguf"
    make(source, f32, parse_type("F32"))
    results = {}
    for kernel_set in ("openzoo", "stock"):
        out = subprocess.run([sys.executable, __file__, "--worker", kernel_set, "--source", str(source),
                              "--f32", str(f32), "--sentences", str(count)],
                             capture_output=True, text=True, check=True)
        results[kernel_set] = json.loads(out.stdout.strip().splitlines()[-1])
    f32.unlink()
    a, b = results["openzoo"], results["stock"]
    ref_gap = max(abs(x - y) for x, y in zip(a["ll_ref"], b["ll_ref"], strict=True))
    print(f"\nKernel sets against an F32 evaluation of the same dequantized weights ({len(a['ll_ref'])} held-out "
          f"sentences, {a['positions']} positions; the two processes' F32 references differ by at most "
          f"{ref_gap:.2e} nats per sentence)")
    print(f"{'kernel set':<12}{'KL mean':>10}{'KL max':>8}{'top-1':>9}{'mean |dLL|':>12}{'max |dLL|':>11}{'ppl':>9}")
    print(f"{'F32':<12}{'0':>10}{'0':>8}{'100.00%':>9}{'0':>12}{'0':>11}{a['ppl_source']:>9.3f}")
    for r in (a, b):
        gaps = [abs(x - y) for x, y in zip(r["ll_set"], r["ll_ref"], strict=True)]
        print(f"{r['set']:<12}{r['kl_mean']:>10.6f}{r['kl_max']:>8.4f}{r['top1_agreement'] * 100:>8.2f}%"
              f"{sum(gaps) / len(gaps):>12.4f}{max(gaps):>11.4f}{r['ppl_quantized']:>9.3f}")
    between = [abs(x - y) for x, y in zip(a["ll_set"], b["ll_set"], strict=True)]
    print(f"openzoo vs stock: mean |dLL| {sum(between) / len(between):.4f}, max {max(between):.4f} nats per sentence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default=",".join(COMMON))
    parser.add_argument("--tokens", type=int, default=1024, help="held-out tokens per quality measurement")
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--sentences", type=int, default=96)
    parser.add_argument("--skip-quantize", action="store_true")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--imatrix-types", default="Q4_0,Q2_K,IQ2_XXS",
                        help="types also quantized with an importance matrix ('' to skip)")
    parser.add_argument("--worker", choices=("openzoo", "stock"), help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--f32", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.source, args.f32, args.sentences)
        return
    source = default_model()
    with tempfile.TemporaryDirectory(prefix="openzoo-bench-quantize-") as tmp:
        if not args.skip_quantize:
            part_quantize(source, Path(tmp), [t.strip() for t in args.types.split(",") if t.strip()],
                          args.tokens, args.context)
        if args.imatrix_types.strip():
            part_imatrix(source, Path(tmp), [t.strip() for t in args.imatrix_types.split(",") if t.strip()],
                         args.tokens, args.context)
        if not args.skip_kernels:
            part_kernels(source, Path(tmp), args.sentences)


if __name__ == "__main__":
    main()
