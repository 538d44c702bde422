"""Safety: does the model refuse what it should, and only that? (XSTest design, Röttger et al., 2023)

Each prompt is sent as one user message through the model's chat template and answered greedily; the
reply is classified by :mod:`openzoo.audit.refusal` (prefix and pattern match, or a judge when given).
Over-refusal = share of *safe* prompts refused; under-refusal = share of *unsafe* prompts answered; both
ideally 0, reported overall and per category with Wilson intervals. Bundled data:
``safety_prompts.jsonl``; ``--data`` takes a JSONL of ``{"category", "type": "safe"|"unsafe", "prompt"}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo.audit import datasets as ds
from openzoo.audit.metrics import Metric, proportion_metric, refusal_rates
from openzoo.audit.refusal import Judge, classify
from openzoo.audit.scoring import Scorer
from openzoo.audit.suites.base import GENERATE_BATCH, ProgressCallback, SuiteResult, Tracker, batched_call

NAME = "safety"
PROMPTS = "safety_prompts.jsonl"
# Refusals show in the first sentence (the classifier reads the first 200 characters); 48 tokens cover
# that and keep the 220 generations, the slowest part of a full audit, short on two cores.
MAX_TOKENS = 48


@dataclass(frozen=True, slots=True)
class Prompt:
    """A validated prompt and the line it came from."""

    line: int
    category: str
    type: str
    prompt: str


def load_prompts(file: ds.DataFile) -> list[Prompt]:
    """``{"category", "type": "safe"|"unsafe", "prompt"}`` per line."""
    return [
        Prompt(
            line,
            ds.req_str(file, line, r, "category"),
            ds.req_enum(file, line, r, "type", ("safe", "unsafe")),
            ds.req_str(file, line, r, "prompt"),
        )
        for line, r in ds.parse_jsonl(file)
    ]


def run(
    scorer: Scorer,
    data_path: Path | None,
    seed: int,
    progress_cb: ProgressCallback | None = None,
    *,
    judge: Judge | None = None,
    max_tokens: int = MAX_TOKENS,
) -> SuiteResult:
    """Generate a reply to every prompt, classify refusals, and compute refusal rates."""
    file = ds.bundled(PROMPTS) if data_path is None else ds.load(data_path)
    prompts = load_prompts(file)
    tracker = Tracker(NAME, progress_cb, len(prompts))

    def gen(batch: Sequence[list[dict[str, str]]]) -> list[str]:
        """Bind the token limit and seed so :func:`batched_call` can chunk the prompts."""
        return scorer.generate(batch, max_tokens, seed)

    chats = [[{"role": "user", "content": p.prompt}] for p in prompts]
    replies = [str(r) for r in batched_call(gen, chats, tracker, "generate", size=GENERATE_BATCH)]

    items: list[dict[str, Any]] = []
    refused: list[bool] = []
    per_cat: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for p, reply in zip(prompts, replies, strict=True):
        verdict = classify(reply, prompt=p.prompt, judge=judge)
        refused.append(verdict.refused)
        per_cat[(p.type, p.category)].append(verdict.refused)
        items.append(
            {
                "line": p.line,
                "category": p.category,
                "type": p.type,
                "prompt": p.prompt,
                "response": reply,
                "refused": verdict.refused,
                "refusal_source": verdict.source,
                "refusal_rule": verdict.rule,
            }
        )
    metrics: dict[str, Metric] = dict(refusal_rates([p.type for p in prompts], refused))
    for (kind, cat), flags in sorted(per_cat.items()):
        metrics[f"refusal_rate_{kind}.{cat}"] = proportion_metric(flags)
    return SuiteResult(NAME, metrics, items, file.digest, {file.name: file.digest})
