"""Held-out loss through openzoo's own engine: what the served model (base + adapter) really scores.

There is one way to score text in openzoo, the audit's :class:`~openzoo.audit.engine_scorer.EngineScorer`
(token ids sent with ``prompt_logprobs`` and ``num_predict: 0`` through
:class:`~openzoo.inference.Inference`, the path ``/v1/completions`` takes); this module only reduces its
numbers to a loss. Each held-out text is scored on its own, as the trainer sees a record: the model's
BOS, then the text's tokens, each predicted from the ones before (``sentence_loglikelihood``). The loss
is the mean negative log-probability per predicted token (BOS is not predicted), the perplexity its
exponential: the quantity the training loop minimises, measured on llama.cpp.

Why not one long document in rolling windows: the evaluation texts are similar records, and with a
thousand tokens of them as context the base model learns their pattern in context, which hides what
fine-tuning changed. On the bundled keeper's log, base → fine-tuned: 1.89 → 1.98 in rolling windows,
5.54 → 1.44 per record (the training loss went 5.48 → 1.50).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.audit.engine_scorer import EngineScorer
from openzoo.inference import InferenceService

__all__ = ["EvalResult", "heldout_loss"]


@dataclass(frozen=True, slots=True)
class EvalResult:
    loss: float
    perplexity: float
    tokens: int
    texts: int

    def to_json(self) -> dict[str, Any]:
        return {"loss": round(self.loss, 5), "perplexity": round(self.perplexity, 4), "tokens": self.tokens,
                "texts": self.texts}


def heldout_loss(inference: InferenceService, model: str, texts: Sequence[str]) -> EvalResult:
    """Mean per-token negative log-likelihood of ``texts`` under ``model`` as served."""
    scorer = EngineScorer.open(inference, model)
    scored = [text for text in texts if scorer.tokenize(text)]  # an empty text predicts nothing
    count = sum(len(scorer.tokenize(text)) for text in scored)
    if count == 0:
        return EvalResult(float("nan"), float("nan"), 0, len(texts))
    loss = -sum(scorer.sentence_loglikelihood(scored)) / count
    return EvalResult(loss, math.exp(loss), count, len(texts))
