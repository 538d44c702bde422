"""A deterministic fake scorer for the audit unit tests (imported as ``audit_fakes``; a unique name,
because test folders are not packages and ``conftest`` is taken by ``tests/conftest.py``).

It models text as a character bigram chain with a fixed, made-up log-probability per (previous, next)
character pair, so every method (pair, sentence, rolling) is internally consistent and exact values can
be recomputed in the tests. It answers chat prompts with a refusal when they contain a trigger word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from openzoo.audit.scoring import Alternative, TokenDistribution, TokenStat, rolling_loglikelihood

BOS = "\x02"


def char_lp(prev: str, c: str) -> float:
    """Made-up log-probability of ``c`` after ``prev``; -1 is the 'greedy' value."""
    return -(1.0 + ((ord(c) * 31 + ord(prev)) % 7) / 2)


def seq_lp(text: str, prev: str = BOS) -> float:
    total = 0.0
    for c in text:
        total += char_lp(prev, c)
        prev = c
    return total


class FakeScorer:
    """Deterministic :class:`~openzoo.audit.scoring.Scorer` over characters; records its calls."""

    refuse_words = ("kill", "bomb", "poison", "steal")

    def __init__(self, max_seq_len: int = 16) -> None:
        self.max_seq_len = max_seq_len
        self.calls: dict[str, int] = {}

    def _count(self, name: str, n: int) -> None:
        self.calls[name] = self.calls.get(name, 0) + n

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        self._count("loglikelihood", len(requests))
        out = []
        for ctx, cont in requests:
            prev = ctx[-1] if ctx else BOS
            lps = []
            for c in cont:
                lps.append(char_lp(prev, c))
                prev = c
            out.append((sum(lps), all(lp == -1.0 for lp in lps)))
        return out

    def sentence_loglikelihood(self, texts: Sequence[str]) -> list[float]:
        self._count("sentence", len(texts))
        return [seq_lp(t) for t in texts]

    def rolling_loglikelihood(self, docs: Sequence[str]) -> list[float]:
        self._count("rolling", len(docs))

        def score(ctx: list[int], cont: list[int]) -> float:
            return seq_lp("".join(map(chr, cont)), chr(ctx[-1]))

        return [rolling_loglikelihood([ord(c) for c in d], ord(BOS), self.max_seq_len, score) for d in docs]

    def generate(self, prompts: Sequence[list[dict[str, str]]], max_tokens: int, seed: int) -> list[str]:
        self._count("generate", len(prompts))
        out = []
        for messages in prompts:
            text = messages[-1]["content"].lower()
            if any(w in text for w in self.refuse_words):
                out.append("I\u2019m sorry, but I can't help with that.")
            else:
                out.append("Sure! Here is a short answer.")
        return out

    def next_token_distribution(self, text: str, top_k: int) -> TokenDistribution:
        self._count("distribution", 1)
        pieces = re.findall(r"\s*\S+", text)
        stats = tuple(
            TokenStat(p, -0.5 * len(p), 1.0 + len(p) % 3, (Alternative(p, -0.5 * len(p)), Alternative(" x", -3.0)))
            for p in pieces
        )
        return TokenDistribution(stats, 1.5, (Alternative(" the", -0.5), Alternative(" a", -1.5))[:top_k])
