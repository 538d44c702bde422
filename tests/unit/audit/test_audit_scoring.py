"""Pure scoring arithmetic: lm-eval's rolling windows, pair encoding, token-level reductions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from audit_fakes import BOS, FakeScorer, seq_lp

from openzoo.audit.scoring import (
    Scorer,
    continuation_from_prompt_logprobs,
    continuation_logprob,
    encode_pair,
    entropy,
    get_rolling_token_windows,
    log_softmax,
    make_disjoint_window,
    rolling_windows,
    sentence_logprob,
    token_distribution_from_logprobs,
    top_k,
)
from openzoo.events import TokenLogprob, TopLogprob


def test_rolling_windows_match_lm_eval_context_len_1() -> None:
    # Expected values of lm-eval's tests/test_utils.py (v1: max_seq_len=10, context_len=1, 34 tokens).
    got = list(get_rolling_token_windows(list(range(34)), -100, 10, 1))
    assert got == [
        ([-100, 0, 1, 2, 3, 4, 5, 6, 7, 8], list(range(10))),
        (list(range(9, 19)), list(range(10, 20))),
        (list(range(19, 29)), list(range(20, 30))),
        (list(range(23, 33)), list(range(30, 34))),
    ]


def test_rolling_windows_with_longer_context() -> None:
    got = list(get_rolling_token_windows(list(range(34)), -100, 10, 8))
    assert got[0] == ([-100, *range(9)], list(range(10)))
    assert got[1] == (list(range(2, 12)), [10, 11, 12])
    assert got[2] == (list(range(5, 15)), [13, 14, 15])
    assert got[-1][1] == [31, 32, 33]
    predicted = [t for _, pred in got for t in pred]
    assert predicted == list(range(34))


def test_make_disjoint_window() -> None:
    assert make_disjoint_window((list(range(9, 19)), list(range(10, 20)))) == ([9], list(range(10, 20)))
    assert make_disjoint_window((list(range(23, 33)), [30, 31, 32, 33])) == (list(range(23, 30)), [30, 31, 32, 33])


@pytest.mark.parametrize("n", [0, 1, 5, 16, 17, 40, 101])
@pytest.mark.parametrize("max_len", [1, 2, 7, 16])
def test_every_token_predicted_once_with_preceding_context(n: int, max_len: int) -> None:
    tokens = list(range(1000, 1000 + n))
    full = [-1, *tokens]
    windows = rolling_windows(tokens, -1, max_len)
    assert [t for _, cont in windows for t in cont] == tokens
    for ctx, cont in windows:
        assert len(ctx) >= 1 and len(ctx) + len(cont) - 1 <= max_len
        start = full.index(cont[0])
        assert full[start - len(ctx) : start] == ctx  # context is exactly what precedes the continuation


def test_rolling_loglikelihood_equals_full_sequence_for_a_bigram_model() -> None:
    doc = "The quick brown fox jumps over the lazy dog. " * 3
    fake = FakeScorer(max_seq_len=8)
    assert fake.rolling_loglikelihood([doc])[0] == pytest.approx(seq_lp(doc, BOS))


def test_rolling_windows_reject_bad_context_len() -> None:
    with pytest.raises(ValueError):
        list(get_rolling_token_windows([1, 2], 0, 4, 5))


def test_encode_pair_moves_trailing_space_and_handles_empty_context() -> None:
    def tok(s: str) -> list[int]:
        return [ord(c) for c in s]

    ctx, cont = encode_pair("Answer: ", "yes", tok)
    assert ctx == tok("Answer:") and cont == tok(" yes")
    ctx, cont = encode_pair("", "yes", tok, prefix_token=2)
    assert ctx == [2] and cont == tok("yes")
    ctx, _ = encode_pair("Q", " a", tok, prefix_token=2)
    assert ctx == [2, ord("Q")]
    with pytest.raises(ValueError):
        encode_pair("", "x", tok)


def test_encode_pair_splits_whole_string_tokens_like_lm_eval() -> None:
    def tok(s: str) -> list[int]:  # merges "ab" into one token 999
        out, i = [], 0
        while i < len(s):
            if s[i : i + 2] == "ab":
                out.append(999)
                i += 2
            else:
                out.append(ord(s[i]))
                i += 1
        return out

    ctx, cont = encode_pair("xa", "bc", tok)
    assert ctx == [ord("x"), 999] and cont == [ord("c")]  # whole[:len(tok("xa"))], whole[len(...):]


def test_continuation_logprob_sum_and_greedy() -> None:
    rows = log_softmax(np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0]]))
    ll, greedy = continuation_logprob(rows, [0, 1])
    assert ll == pytest.approx(rows[0, 0] + rows[1, 1])
    assert greedy
    _, greedy = continuation_logprob(rows, [1, 1])
    assert not greedy
    with pytest.raises(ValueError):
        continuation_logprob(rows, [0])


def _tl(tid: int, lp: float, top: list[tuple[int, float]]) -> TokenLogprob:
    return TokenLogprob(str(tid), lp, tid, b"", tuple(TopLogprob(str(i), v, i, b"") for i, v in top))


def test_continuation_from_prompt_logprobs() -> None:
    lps = [None, _tl(5, -1.0, [(5, -1.0)]), _tl(6, -2.0, [(6, -2.0), (7, -2.5)]), _tl(8, -3.0, [(9, -0.1)])]
    assert continuation_from_prompt_logprobs(lps, 1) == (pytest.approx(-6.0), False)
    assert continuation_from_prompt_logprobs(lps[:3], 1) == (pytest.approx(-3.0), True)
    assert sentence_logprob(lps) == pytest.approx(-6.0)
    with pytest.raises(ValueError):
        continuation_from_prompt_logprobs(lps, 0)


def test_entropy_top_k_and_distribution() -> None:
    uniform = np.log(np.full(4, 0.25))
    assert entropy(uniform) == pytest.approx(math.log(4))
    row = np.log(np.array([0.1, 0.5, 0.1, 0.3]))
    assert [i for i, _ in top_k(row, 3)] == [1, 3, 0]
    rows = np.vstack([row, uniform, row])
    dist = token_distribution_from_logprobs(rows, [1, 2], lambda i: f"t{i}", 2)
    assert [t.token for t in dist.tokens] == ["t1", "t2"]
    assert dist.tokens[0].logprob == pytest.approx(math.log(0.5))
    assert dist.tokens[1].entropy == pytest.approx(math.log(4))
    assert [a.token for a in dist.next_top] == ["t1", "t3"]
    with pytest.raises(ValueError):
        token_distribution_from_logprobs(rows, [1], str, 2)


def test_fake_scorer_satisfies_protocol(scorer: FakeScorer) -> None:
    assert isinstance(scorer, Scorer)
