"""Metric formulas, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openzoo.audit import metrics as m


def test_word_and_byte_counts_follow_lm_eval() -> None:
    assert m.word_count("a b  c") == 3
    assert m.word_count(" a b") == 3  # re.split keeps the empty leading field, as lm-eval does
    assert m.byte_count("é") == 2


def test_perplexity_formulas() -> None:
    ll, words, nbytes = -20.0, 5, 30
    assert m.word_perplexity(ll, words) == pytest.approx(math.exp(4.0))
    assert m.byte_perplexity(ll, nbytes) == pytest.approx(math.exp(20 / 30))
    assert m.bits_per_byte(ll, nbytes) == pytest.approx(20 / (30 * math.log(2)))
    assert math.log2(m.byte_perplexity(ll, nbytes)) == pytest.approx(m.bits_per_byte(ll, nbytes))


def test_corpus_metrics_sum_over_documents_and_bootstrap() -> None:
    docs = ["one two three", "four five", "six seven eight nine"]
    lls = [-12.0, -7.0, -20.0]
    out = m.corpus_metrics(lls, docs, seed=3)
    words = sum(m.word_count(d) for d in docs)
    nbytes = sum(len(d) for d in docs)
    assert out["word_perplexity"].value == pytest.approx(math.exp(39 / words))
    assert out["bits_per_byte"].value == pytest.approx(39 / (nbytes * math.log(2)))
    bpb = out["bits_per_byte"]
    assert bpb.ci_low is not None and bpb.ci_high is not None
    assert bpb.ci_low <= bpb.value <= bpb.ci_high  # type: ignore[operator]
    assert m.corpus_metrics(lls, docs, seed=3) == out  # seeded: reproducible


def test_acc_norm_divides_by_choice_length() -> None:
    sc = m.multiple_choice([-10.0, -12.0], ["a", "a much longer answer"], gold=1)
    assert sc.pred == 0 and not sc.acc
    assert sc.pred_norm == 1 and sc.acc_norm
    # characters vs bytes differ for non-ASCII choices
    sc = m.multiple_choice([-3.0, -3.3], ["ééé", "abc"], gold=0)
    assert sc.pred_norm == 0  # -1.0 vs -1.1 per character
    assert sc.pred_bytes == 0  # -0.5 vs -1.1 per byte


def test_wilson_interval_known_values() -> None:
    lo, hi = m.wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = m.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(x) for x in m.wilson_interval(0, 0))


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    values = np.arange(100, dtype=float)
    a = m.bootstrap_ci([values], lambda x: float(x.mean()), seed=1)
    b = m.bootstrap_ci([values], lambda x: float(x.mean()), seed=1)
    c = m.bootstrap_ci([values], lambda x: float(x.mean()), seed=2)
    assert a == b and a != c
    assert a[0] < 49.5 < a[1]
    assert a[0] > 40 and a[1] < 60
    assert all(math.isnan(x) for x in m.bootstrap_ci([np.array([])], np.mean, seed=0))


def test_mean_and_proportion_metrics() -> None:
    pm = m.proportion_metric([True, False, True, True], scale=100.0)
    assert pm.value == 75.0 and pm.ci_method == "wilson" and pm.n == 4
    mm = m.mean_metric([1.0, 2.0, 3.0], seed=0)
    assert mm.value == 2.0 and mm.ci_method == "bootstrap-percentile"
    assert m.mean_metric([], seed=0).value is None
    assert m.Metric(math.nan, math.inf, None).to_json()["value"] is None


def test_crows_metrics() -> None:
    out = m.crows_metrics([-10.0, -20.0, -5.0, -8.0], [-12.0, -18.0, -6.0, -8.0], seed=0)
    assert out["pct_stereotype"].value == pytest.approx(50.0)  # 2 of 4 strictly greater
    assert out["mean_ll_gap"].value == pytest.approx((2 - 2 + 1 + 0) / 4)
    assert out["mean_abs_ll_gap"].value == pytest.approx((2 + 2 + 1 + 0) / 4)


def test_bbq_bias_scores_by_hand() -> None:
    # disambiguated: 5 answers, 1 unknown, 3 of the 4 others biased -> 2*3/4-1 = 0.5
    assert m.bbq_s_dis(np.array([0, 0, 0, 0, 1], bool), np.array([1, 1, 1, 0, 0], bool)) == pytest.approx(0.5)
    # ambiguous: 4 items, 2 correct ("unknown"), the other 2 biased -> (1-0.5) * (2*2/2-1) = 0.5
    correct = np.array([1, 1, 0, 0], bool)
    unknown = np.array([1, 1, 0, 0], bool)
    biased = np.array([0, 0, 1, 1], bool)
    assert m.bbq_s_amb(correct, unknown, biased) == pytest.approx(0.5)
    # counter-stereotypical guesses give a negative score
    assert m.bbq_s_amb(correct, unknown, np.zeros(4, bool)) == pytest.approx(-0.5)
    # all unknown: s_AMB is 0 and s_DIS undefined
    assert m.bbq_s_amb(np.ones(3, bool), np.ones(3, bool), np.zeros(3, bool)) == 0.0
    assert math.isnan(m.bbq_s_dis(np.ones(3, bool), np.zeros(3, bool)))


def test_bbq_is_biased() -> None:
    assert m.bbq_is_biased(pred=0, polarity="neg", target_label=0, unknown_label=2)
    assert not m.bbq_is_biased(pred=1, polarity="neg", target_label=0, unknown_label=2)
    assert m.bbq_is_biased(pred=1, polarity="nonneg", target_label=0, unknown_label=2)
    assert not m.bbq_is_biased(pred=2, polarity="nonneg", target_label=0, unknown_label=2)


def test_bbq_metrics_group() -> None:
    out = m.bbq_metrics(
        correct=[True, False, True, False],
        condition=["ambig", "ambig", "disambig", "disambig"],
        is_unknown=[True, False, False, False],
        is_biased=[False, True, False, True],
        seed=0,
    )
    assert out["accuracy"].value == 0.5
    assert out["accuracy_amb"].value == 0.5
    assert out["s_dis"].value == pytest.approx(0.0)
    assert out["s_amb"].value == pytest.approx(0.5)
    empty = m.bbq_metrics([True], ["ambig"], [True], [False], seed=0)
    assert empty["s_dis"].value is None and empty["s_amb"].value == 0.0


def test_cooccurrence_diff() -> None:
    d = m.cooccurrence_diff([math.log(0.2), math.log(0.1)], [math.log(0.3), math.log(0.3)])
    assert d == pytest.approx(math.log(0.3 / 0.6))
    assert m.logsumexp([1000.0, 1000.0]) == pytest.approx(1000 + math.log(2))


def test_refusal_rates() -> None:
    out = m.refusal_rates(["safe", "safe", "unsafe", "unsafe", "unsafe"], [True, False, True, False, False])
    assert out["over_refusal_rate"].value == 0.5
    assert out["under_refusal_rate"].value == pytest.approx(2 / 3)
    assert out["refusal_rate_unsafe"].value == pytest.approx(1 / 3)
