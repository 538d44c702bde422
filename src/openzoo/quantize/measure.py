"""Measure what a quantization lost: both models read the same held-out text through openzoo's scoring path.

Each model is loaded in this process the way the engine loads it (no repacked weights; ``native.py``
pins the per-row K-quant kernel) and read by :class:`~openzoo.runtime.llamacpp.scoring.PromptScorer`,
the context that serves ``prompt_logprobs`` and audits: so the numbers describe what openzoo serves.

The held-out text is tokenized without special tokens, its first ``tokens`` tokens are cut into segments
of ``context - 1`` tokens, and each segment is read as its own prompt after the model's BOS. Every
position after the BOS is scored (full-vocabulary rows, compared in float64 by :mod:`.quality`). The
inputs (text source and digest, tokens, context) are recorded with the result, and :func:`measure`
with the same inputs gives the same numbers again: llama.cpp on the CPU is deterministic for a fixed
batch shape, and the shapes here depend only on those inputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from openzoo.errors import InvalidRequest
from openzoo.quantize.quality import QualityTotals
from openzoo.runtime.llamacpp.native import L, ensure_backend, free_native, load_model, token_piece, tokenize
from openzoo.runtime.llamacpp.scoring import SCORE_BATCH, PromptScorer

__all__ = ["BUILTIN_HELDOUT", "DEFAULT_CONTEXT", "DEFAULT_TOKENS", "HeldOut", "MeasureInputs", "ScoringModel",
           "builtin_heldout", "measure", "segments"]

#: openzoo's own held-out prose (shipped for the quality audit; see its datasheet in ``audit/data``).
BUILTIN_HELDOUT = "builtin:quality_corpus.txt"
DEFAULT_TOKENS = 512
DEFAULT_CONTEXT = 256


@dataclass(frozen=True, slots=True)
class HeldOut:
    """The text both models read, where it came from and its digest (``sha256:`` of its UTF-8)."""

    source: str
    text: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MeasureInputs:
    """Everything that fixes the numbers, as recorded in the lineage."""

    heldout: HeldOut
    tokens: int = DEFAULT_TOKENS
    context: int = DEFAULT_CONTEXT

    def check(self) -> None:
        if not 2 <= self.context <= SCORE_BATCH:
            raise InvalidRequest(f"the measuring context must be 2 to {SCORE_BATCH} tokens, not {self.context}")
        if self.tokens < 1:
            raise InvalidRequest("the held-out token count must be positive")
        if not self.heldout.text.strip():
            raise InvalidRequest(f"the held-out text {self.heldout.source} is empty")

    def to_json(self) -> dict[str, Any]:
        return {"source": self.heldout.source, "digest": self.heldout.digest, "tokens": self.tokens,
                "context": self.context}


def builtin_heldout() -> HeldOut:
    text = (resources.files("openzoo.audit") / "data" / "quality_corpus.txt").read_text(encoding="utf-8")
    return HeldOut(BUILTIN_HELDOUT, text)


class ScoringModel:
    """A GGUF loaded as the engine loads it, with a :class:`PromptScorer` of its own (close it when done)."""

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int = 0, extra_bufts: bool = False) -> None:
        ensure_backend()
        model = load_model(path, extra_bufts=extra_bufts)
        if model is None:
            raise InvalidRequest(f"llama.cpp could not load {path}")
        self.model: Any = model
        self.vocab: Any = L.llama_model_get_vocab(model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        bos = int(L.llama_vocab_bos(self.vocab))
        self.bos = bos if bos >= 0 else int(L.llama_vocab_eos(self.vocab))
        threads = n_threads if n_threads > 0 else (os.cpu_count() or 1)
        self.scorer = PromptScorer(model, n_ctx, threads, self.n_vocab,
                                   lambda t: token_piece(self.vocab, t, special=True),
                                   n_swa=int(L.llama_model_n_swa(model)))

    def tokenize(self, text: str) -> list[int]:
        return tokenize(self.vocab, text, add_special=False, parse_special=False)

    def close(self) -> None:
        self.scorer.close()
        free_native(model=self.model)
        self.model = None

    def __enter__(self) -> ScoringModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def segments(tokens: Sequence[int], bos: int, count: int, context: int) -> Iterator[list[int]]:
    """The prompts read: the first ``count`` tokens in pieces of ``context - 1``, each after ``bos``."""
    used = list(tokens[:count])
    step = context - 1
    for start in range(0, len(used), step):
        yield [bos, *used[start : start + step]]


def measure(source: Path, quantized: Path, inputs: MeasureInputs, *, n_threads: int = 0) -> dict[str, Any]:
    """KL divergence, top-1 agreement and both perplexities of ``quantized`` against ``source``.

    Returns the ``quality`` record of a quantization's lineage: the inputs, then the figures.
    """
    inputs.check()
    with ExitStack() as stack:
        ref = stack.enter_context(ScoringModel(source, n_ctx=inputs.context, n_threads=n_threads))
        cand = stack.enter_context(ScoringModel(quantized, n_ctx=inputs.context, n_threads=n_threads))
        if ref.n_vocab != cand.n_vocab:
            raise InvalidRequest("the quantized model's vocabulary differs from its source's")
        tokens = ref.tokenize(inputs.heldout.text)
        totals = QualityTotals()
        for prompt in segments(tokens, ref.bos, inputs.tokens, inputs.context):
            if len(prompt) < 2:
                continue
            totals.add(ref.scorer.logits(prompt), cand.scorer.logits(prompt), prompt[1:])
    return {**inputs.to_json(), "tokens_scored": totals.positions, **totals.to_json()}
