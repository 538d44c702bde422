"""Held-out loss through openzoo's own engine: what the served model (base + adapter) really scores.

There is one way to score text in openzoo, the audit's :class:`~openzoo.audit.engine_scorer.EngineScorer`
(token ids sent with ``prompt_logprobs`` and ``num_predict: 0`` through
:class:`~openzoo.inference.Inference`, the path ``/v1/completions`` takes); this module only reduces its
numbers to a loss. The held-out texts are scored as one document (joined by newlines) with lm-eval's
rolling windows: BOS, then every token predicted exactly once with as much preceding text as the
context holds. The loss is the mean negative log-probability per predicted token (BOS is not
predicted), the perplexity its exponential: the quantity the training loop minimises, measured on
llama.cpp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.audit.engine_scorer import EngineScorer
from openzoo.inference import Inference

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


def heldout_loss(inference: Inference, model: str, texts: Sequence[str]) -> EvalResult:
    """Mean per-token negative log-likelihood of ``texts`` under ``model`` as served."""
    scorer = EngineScorer.open(inference, model)
    document = "\n".join(texts)
    count = len(scorer.tokenize(document))
    if count == 0:
        return EvalResult(float("nan"), float("nan"), 0, len(texts))
    loss = -scorer.rolling_loglikelihood([document])[0] / count
    return EvalResult(loss, math.exp(loss), count, len(texts))
