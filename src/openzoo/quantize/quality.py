"""What a quantization costs, from two models' logits on the same tokens: the pure arithmetic.

For every scored position both models' full next-token distributions are compared:

* KL divergence ``KL(P_source || P_quantized) = sum_v p(v) (log p(v) - log q(v))`` in nats, averaged
  over positions (the number llama.cpp's ``llama-perplexity --kl-divergence`` reports);
* top-1 agreement: the share of positions where both models' most likely token is the same;
* perplexity of each model on the text's actual next tokens, ``exp(mean negative log-likelihood)``.

Rows are log-softmaxed in float64 (a 262,144-token vocabulary summed in float32 loses the tail the KL
lives in), a few rows at a time so the temporaries stay bounded (``ROWS_PER_PASS`` rows of float64 per
array). Everything here is numpy on arrays; reading logits from llama.cpp is :mod:`.measure`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ROWS_PER_PASS", "QualityTotals", "log_softmax64"]

#: Rows compared per numpy pass: 16 rows x 262,144 x 8 bytes = 32 MiB per float64 temporary.
ROWS_PER_PASS = 16


def log_softmax64(rows: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Row-wise log-softmax in float64 (max subtracted first, so nothing overflows)."""
    x = np.asarray(rows, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    return out


@dataclass(slots=True)
class QualityTotals:
    """Running sums over scored positions; :meth:`add` more rows, then read the means."""

    positions: int = 0
    kl_sum: float = 0.0
    kl_max: float = 0.0
    top1_same: int = 0
    nll_reference: float = 0.0
    nll_candidate: float = 0.0

    def add(self, reference: npt.NDArray[np.floating[Any]], candidate: npt.NDArray[np.floating[Any]],
            targets: npt.ArrayLike) -> None:
        """Compare rows of logits: ``reference[i]`` and ``candidate[i]`` both predict ``targets[i]``."""
        tokens = np.asarray(targets, dtype=np.int64)
        if reference.shape != candidate.shape or reference.ndim != 2 or tokens.shape != (reference.shape[0],):
            raise ValueError("reference, candidate and targets must describe the same positions")
        for a in range(0, tokens.shape[0], ROWS_PER_PASS):
            b = min(a + ROWS_PER_PASS, tokens.shape[0])
            lp = log_softmax64(reference[a:b])
            lq = log_softmax64(candidate[a:b])
            kl = (np.exp(lp) * (lp - lq)).sum(axis=1)
            idx = np.arange(b - a)
            self.positions += b - a
            self.kl_sum += float(kl.sum())
            self.kl_max = max(self.kl_max, float(kl.max()))
            self.top1_same += int((lp.argmax(axis=1) == lq.argmax(axis=1)).sum())
            self.nll_reference -= float(lp[idx, tokens[a:b]].sum())
            self.nll_candidate -= float(lq[idx, tokens[a:b]].sum())

    @property
    def kl_mean(self) -> float:
        return self.kl_sum / self.positions if self.positions else math.nan

    @property
    def top1_agreement(self) -> float:
        return self.top1_same / self.positions if self.positions else math.nan

    @property
    def ppl_reference(self) -> float:
        return math.exp(self.nll_reference / self.positions) if self.positions else math.nan

    @property
    def ppl_candidate(self) -> float:
        return math.exp(self.nll_candidate / self.positions) if self.positions else math.nan

    def to_json(self) -> dict[str, Any]:
        """The figures a lineage record and a card carry (rounded only where it cannot matter)."""
        return {"positions": self.positions, "kl_mean": self.kl_mean, "kl_max": self.kl_max,
                "top1_agreement": self.top1_agreement, "ppl_source": self.ppl_reference,
                "ppl_quantized": self.ppl_candidate}
