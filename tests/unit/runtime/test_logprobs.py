"""Log-softmax and top alternatives from a logits block (the numpy half of logprobs, no model)."""

from __future__ import annotations

import math

import numpy as np

from openzoo.runtime.llamacpp.logprobs import LogprobReader


def reader(n_vocab: int) -> LogprobReader:
    return LogprobReader(None, n_vocab, lambda t: f"<{t}>".encode())


def test_logprobs_are_a_log_softmax_of_the_row() -> None:
    rng = np.random.default_rng(1)
    rows = (rng.standard_normal((3, 1000)) * 5).astype(np.float32)
    out = reader(1000).token_logprobs(rows, [5, 17, 999], top=0)
    for i, (lp, token) in enumerate(zip(out, [5, 17, 999], strict=True)):
        row = rows[i].astype(np.float64)
        expected = row[token] - (row.max() + math.log(np.exp(row - row.max()).sum()))
        assert abs(lp.logprob - expected) < 1e-6
        assert lp.token_id == token and lp.bytes == f"<{token}>".encode() and lp.token == f"<{token}>"
        assert lp.top == ()


def test_top_alternatives_are_sorted_and_start_with_the_argmax() -> None:
    rows = np.array([[0.0, 3.0, 1.0, 2.5, -1.0]], dtype=np.float32)
    (lp,) = reader(5).token_logprobs(rows, [2], top=3)
    assert [t.token_id for t in lp.top] == [1, 3, 2]
    assert lp.top[0].logprob > lp.top[1].logprob > lp.top[2].logprob
    assert abs(lp.top[2].logprob - lp.logprob) < 1e-12  # the chosen token is among them
    assert (
        abs(sum(math.exp(x) for x in (reader(5).token_logprobs(rows, [i], 0)[0].logprob for i in range(5))) - 1) < 1e-6
    )


def test_top_larger_than_vocabulary_is_clamped() -> None:
    rows = np.array([[1.0, 2.0]], dtype=np.float32)
    (lp,) = reader(2).token_logprobs(rows, [0], top=10)
    assert [t.token_id for t in lp.top] == [1, 0]
