"""Explain: what the model expected at each token of a prompt, and which tokens drive its next word.

Cheap methods that work on any backend that can score text (reference section 5): per-token surprisal
``-log2 p(x_t | x_<t)``, entropy of the predictive distribution (bits) and the top-k alternatives; then
leave-one-out (occlusion) attribution: with ``y`` the most likely next token, token ``i`` gets
``a_i = log p(y | prompt) - log p(y | prompt without token i)`` (natural log). Positive means the token
made ``y`` more likely. Bundled prompts: ``explain_prompts.jsonl``; ``--data`` takes a ``.txt`` (one
prompt per line) or a JSONL of ``{"prompt"}``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from openzoo.audit import datasets as ds
from openzoo.audit.metrics import Metric, mean_metric
from openzoo.audit.scoring import Scorer, TokenDistribution, nats_to_bits
from openzoo.audit.suites.base import ProgressCallback, SuiteResult, Tracker

NAME = "explain"
PROMPTS = "explain_prompts.jsonl"
TOP_K = 5


def load_prompts(file: ds.DataFile) -> list[str]:
    """Prompts from a ``.txt`` (non-blank lines) or a JSONL of ``{"prompt"}``."""
    if file.name.endswith(".jsonl"):
        return [ds.req_str(file, line, r, "prompt") for line, r in ds.parse_jsonl(file)]
    return ds.parse_lines(file)


def drop_token(prompt: str, pieces: list[str], i: int) -> str:
    """The prompt without token ``i``: cut its characters out when the pieces spell the prompt,
    otherwise join the other pieces (tokenizers that do not round-trip)."""
    if "".join(pieces) == prompt:
        start = sum(len(p) for p in pieces[:i])
        return prompt[:start] + prompt[start + len(pieces[i]) :]
    return "".join(pieces[:i] + pieces[i + 1 :])


def explain_prompt(scorer: Scorer, prompt: str, top_k: int = TOP_K) -> dict[str, Any]:
    """Per-token statistics and leave-one-out attribution for one prompt, as a report item."""
    dist: TokenDistribution = scorer.next_token_distribution(prompt, top_k)
    pieces = [t.token for t in dist.tokens]
    tokens = [
        {
            "token": t.token,
            "logprob": t.logprob,
            "surprisal_bits": nats_to_bits(-t.logprob),
            "entropy_bits": nats_to_bits(t.entropy),
            "top": [{"token": a.token, "logprob": a.logprob} for a in t.top],
        }
        for t in dist.tokens
    ]
    item: dict[str, Any] = {"prompt": prompt, "tokens": tokens, "next_token": None, "attribution": []}
    if not dist.next_top:
        return item
    y = dist.next_top[0].token
    requests = [(prompt, y)] + [(drop_token(prompt, pieces, i), y) for i in range(len(pieces))]
    results = scorer.loglikelihood(requests)
    base = float(results[0][0])
    item["next_token"] = {
        "token": y,
        "prob": math.exp(dist.next_top[0].logprob),
        "logprob_in_context": base,
        "entropy_bits": nats_to_bits(dist.next_entropy),
        "top": [{"token": a.token, "logprob": a.logprob} for a in dist.next_top],
    }
    item["attribution"] = [
        {"token": piece, "score": base - float(r[0])} for piece, r in zip(pieces, results[1:], strict=True)
    ]
    return item


def run(
    scorer: Scorer,
    data_path: Path | None,
    seed: int,
    progress_cb: ProgressCallback | None = None,
    *,
    top_k: int = TOP_K,
) -> SuiteResult:
    """Explain every prompt; metrics summarise surprisal and entropy over all prompt tokens."""
    file = ds.bundled(PROMPTS) if data_path is None else ds.load(data_path)
    prompts = load_prompts(file)
    tracker = Tracker(NAME, progress_cb, len(prompts))
    items = []
    for prompt in prompts:
        items.append(explain_prompt(scorer, prompt, top_k))
        tracker.advance(1, "explain")
    surprisal = [t["surprisal_bits"] for it in items for t in it["tokens"]]
    ent = [t["entropy_bits"] for it in items for t in it["tokens"]]
    next_p = [it["next_token"]["prob"] for it in items if it["next_token"]]
    metrics: dict[str, Metric] = {
        "mean_surprisal_bits": mean_metric(surprisal, seed=seed),
        "mean_entropy_bits": mean_metric(ent, seed=seed),
        "mean_next_token_prob": mean_metric(next_p, seed=seed),
    }
    return SuiteResult(NAME, metrics, items, file.digest, {file.name: file.digest})
