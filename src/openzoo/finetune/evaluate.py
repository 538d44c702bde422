"""Held-out loss through openzoo's own engine: what the served model (base + adapter) really scores.

The texts are sent as token ids (the model's BOS, then the text's tokens) with ``prompt_logprobs`` and
``num_predict: 0`` through :class:`~openzoo.inference.Inference`, the path ``/v1/completions`` takes;
the loss is the mean negative log-probability per predicted token (BOS is not predicted), and the
perplexity its exponential — the same quantity the training loop minimises, measured on llama.cpp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.errors import EngineError
from openzoo.events import Done, Failure
from openzoo.inference import CompletionRequest, Inference

__all__ = ["EvalResult", "heldout_loss"]

#: Tokens per scoring request (the engine scores in 512-token micro-batches).
WINDOW = 500


@dataclass(frozen=True, slots=True)
class EvalResult:
    loss: float
    perplexity: float
    tokens: int
    texts: int

    def to_json(self) -> dict[str, Any]:
        return {"loss": round(self.loss, 5), "perplexity": round(self.perplexity, 4), "tokens": self.tokens,
                "texts": self.texts}


def _score(inference: Inference, model: str, prompt: list[int]) -> tuple[float, int]:
    generation = inference.completion(CompletionRequest(
        model, prompt=prompt, raw=True, add_special=False, options={"temperature": 0, "num_predict": 0},
        prompt_logprobs=0))
    done: Done | None = None
    for event in generation:
        if isinstance(event, Failure):
            raise event.error
        if isinstance(event, Done):
            done = event
    if done is None or len(done.prompt_logprobs) != len(prompt):
        raise EngineError(f'"{model}" returned no prompt log-probabilities')
    scored = [lp.logprob for lp in done.prompt_logprobs[1:] if lp is not None]
    return -sum(scored), len(scored)


def heldout_loss(inference: Inference, model: str, texts: Sequence[str], window: int = WINDOW) -> EvalResult:
    """Mean per-token negative log-likelihood of ``texts`` under ``model`` as served.

    The texts are scored as one held-out document (joined by newlines), cut into windows of at most
    ``window`` tokens that each start with BOS, so a few engine requests score a whole evaluation set.
    """
    info = inference.tokenizer_info(model)
    bos = info.get("bos_token_id")
    tokens = inference.tokenize(model, "\n".join(texts), add_special=False)
    head = [int(bos)] if bos is not None else []
    total, count = 0.0, 0
    for start in range(0, len(tokens), window):
        nll, n = _score(inference, model, head + list(tokens[start:start + window]))
        total += nll
        count += n
    loss = total / count if count else float("nan")
    return EvalResult(loss, math.exp(loss) if count else float("nan"), count, len(texts))
