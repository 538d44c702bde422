"""The arithmetic of a quantization's cost: KL divergence, top-1 agreement, perplexity, prompt segments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openzoo.quantize.measure import segments
from openzoo.quantize.quality import ROWS_PER_PASS, QualityTotals, log_softmax64


def _reference_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> list[float]:
    out = []
    for a, b in zip(p_logits, q_logits, strict=True):
        p = [math.exp(x) for x in a]
        q = [math.exp(x) for x in b]
        sp, sq = sum(p), sum(q)
        out.append(sum(pi / sp * math.log((pi / sp) / (qi / sq)) for pi, qi in zip(p, q, strict=True)))
    return out


def test_log_softmax_rows_sum_to_one() -> None:
    rows = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]], dtype=np.float32)
    lp = log_softmax64(rows)
    assert lp.dtype == np.float64
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0)
    assert lp[1, 0] == pytest.approx(math.log(0.5))


def test_identical_models_lose_nothing() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(5, 50)).astype(np.float32)
    totals = QualityTotals()
    totals.add(rows, rows.copy(), [1, 2, 3, 4, 5])
    assert totals.kl_mean == pytest.approx(0.0, abs=1e-12)
    assert totals.top1_agreement == 1.0
    assert totals.ppl_reference == pytest.approx(totals.ppl_candidate)


def test_kl_top1_and_perplexity_against_a_plain_computation() -> None:
    rng = np.random.default_rng(1)
    n, vocab = ROWS_PER_PASS * 2 + 3, 40  # crosses the per-pass chunking twice
    p = rng.normal(size=(n, vocab)).astype(np.float32)
    q = (p + rng.normal(scale=0.7, size=(n, vocab))).astype(np.float32)
    targets = rng.integers(0, vocab, size=n)
    totals = QualityTotals()
    totals.add(p[:10], q[:10], targets[:10])  # two calls accumulate like one
    totals.add(p[10:], q[10:], targets[10:])
    kls = _reference_kl(p.astype(np.float64), q.astype(np.float64))
    assert totals.positions == n
    assert totals.kl_mean == pytest.approx(sum(kls) / n, rel=1e-9)
    assert totals.kl_max == pytest.approx(max(kls), rel=1e-9)
    assert totals.top1_agreement == pytest.approx(float(np.mean(p.argmax(1) == q.argmax(1))))
    lp, lq = log_softmax64(p), log_softmax64(q)
    assert totals.ppl_reference == pytest.approx(math.exp(-lp[np.arange(n), targets].mean()), rel=1e-12)
    assert totals.ppl_candidate == pytest.approx(math.exp(-lq[np.arange(n), targets].mean()), rel=1e-12)
    record = totals.to_json()
    assert record["kl_mean"] == totals.kl_mean and record["ppl_quantized"] == totals.ppl_candidate


def test_a_known_two_token_case() -> None:
    # p = (0.5, 0.5), q = (0.8, 0.2): KL = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2)
    p = np.log(np.array([[0.5, 0.5]]))
    q = np.log(np.array([[0.8, 0.2]]))
    totals = QualityTotals()
    totals.add(p, q, [1])
    assert totals.kl_mean == pytest.approx(0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2))
    assert totals.ppl_reference == pytest.approx(2.0) and totals.ppl_candidate == pytest.approx(5.0)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        QualityTotals().add(np.zeros((2, 3)), np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError):
        QualityTotals().add(np.zeros((2, 3)), np.zeros((2, 3)), [0])


def test_empty_totals_are_nan() -> None:
    assert math.isnan(QualityTotals().kl_mean) and math.isnan(QualityTotals().ppl_reference)


def test_segments_cut_tokens_after_bos() -> None:
    tokens = list(range(10, 20))
    assert list(segments(tokens, 2, 7, 4)) == [[2, 10, 11, 12], [2, 13, 14, 15], [2, 16]]
    assert list(segments(tokens, 2, 100, 11)) == [[2, *tokens]]
