"""The model side of an audit, as a small protocol, plus the pure arithmetic of scoring.

Suites never talk to an engine; they talk to a :class:`Scorer`. The llama.cpp-backed scorer lives
elsewhere; this module holds what every scorer must compute the same way so that numbers can be
recomputed by anyone (issue 5, "Conventions"):

* lm-eval's rolling-window scheme (:func:`get_rolling_token_windows`, :func:`make_disjoint_window`,
  :func:`rolling_windows`), rewritten from the description of
  ``EleutherAI/lm-evaluation-harness:lm_eval/utils.py`` so that every token is predicted exactly once,
  with as much left context as the window allows;
* lm-eval's ``_encode_pair`` (trailing context whitespace moves to the continuation);
* the reductions from per-token log-probabilities to the sums a scorer returns
  (:func:`continuation_logprob`, :func:`continuation_from_prompt_logprobs`), and the per-position
  statistics that ``explain`` shows (:func:`token_distribution_from_logprobs`).

All log-probabilities are natural logarithms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from openzoo.events import TokenLogprob

FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True, slots=True)
class Alternative:
    """One candidate token at a position and its log-probability."""

    token: str
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenStat:
    """What the model thought at one position of a text.

    ``logprob`` is log p(token | BOS, previous tokens); ``entropy`` (nats) and ``top`` describe the whole
    predictive distribution at that position, before the token was seen.
    """

    token: str
    logprob: float
    entropy: float
    top: tuple[Alternative, ...]


@dataclass(frozen=True, slots=True)
class TokenDistribution:
    """Per-token statistics of a text, and the distribution of the token that would come next.

    ``"".join(t.token for t in tokens)`` should give the text back (token pieces are detokenized
    text); leave-one-out attribution in ``explain`` relies on it to drop one token from the prompt.
    """

    tokens: tuple[TokenStat, ...]
    next_entropy: float
    next_top: tuple[Alternative, ...]


@runtime_checkable
class Scorer(Protocol):
    """What a suite needs from a model. Implementations batch internally; order of results = input order.

    A backend that cannot give log-probabilities (or cannot generate) raises
    :class:`~openzoo.errors.NotSupported` from the method concerned; the runner lets it propagate, so the
    audit fails with that reason and writes nothing.
    """

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """(context, continuation) -> (sum of continuation token logprobs, greedy decoding reproduces it)."""
        ...

    def sentence_loglikelihood(self, texts: Sequence[str]) -> list[float]:
        """Sum over all tokens of log p(token | BOS, previous); BOS is prepended and not scored."""
        ...

    def rolling_loglikelihood(self, docs: Sequence[str]) -> list[float]:
        """Full-document log-likelihood with lm-eval's rolling windows (see :func:`rolling_windows`)."""
        ...

    def generate(self, prompts: Sequence[list[dict[str, str]]], max_tokens: int, seed: int) -> list[str]:
        """Chat messages -> greedy reply text, with the model's chat template."""
        ...

    def next_token_distribution(self, text: str, top_k: int) -> TokenDistribution:
        """Per-position surprisal inputs, entropy and top-k alternatives for ``text`` (BOS prepended)."""
        ...


# --------------------------------------------------------------------------------------------------
# lm-eval rolling windows


def get_rolling_token_windows(
    token_list: Sequence[int], prefix_token: int, max_seq_len: int, context_len: int
) -> Iterator[tuple[list[int], list[int]]]:
    """Yield (input tokens, predicted tokens) windows covering ``token_list``; lm-eval semantics.

    The first window is ``[prefix_token] + tokens[:L-1]`` predicting ``tokens[:L]`` with
    ``L = min(max_seq_len, len(tokens))``. Each later window predicts the next
    ``max_seq_len - context_len + 1`` tokens (fewer at the end) and its input is the ``max_seq_len``
    tokens just before the last predicted one, so the predictions get the longest left context that fits.
    Windows overlap; :func:`make_disjoint_window` trims that overlap. Every token is predicted once.
    """
    if not 1 <= context_len <= max_seq_len:
        raise ValueError("need 1 <= context_len <= max_seq_len")
    tokens = list(token_list)
    if not tokens:
        return
    pred_len = max_seq_len - context_len + 1
    first_len = min(max_seq_len, len(tokens))
    yield [prefix_token, *tokens[: first_len - 1]], tokens[:first_len]
    predicted = first_len
    while predicted < len(tokens):
        window_pred_len = min(len(tokens) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield (
            tokens[window_end - max_seq_len - 1 : window_end - 1],
            tokens[window_end - window_pred_len : window_end],
        )
        predicted += window_pred_len


def make_disjoint_window(pair: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    """Turn an (input, predicted) window into a (context, continuation) pair that does not overlap.

    The input's last ``len(predicted) - 1`` tokens are the predicted tokens shifted by one, so the context
    is what remains; scoring ``context + continuation`` as a continuation request gives the same sum.
    """
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


def rolling_windows(tokens: Sequence[int], prefix_token: int, max_seq_len: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint (context, continuation) windows exactly as lm-eval's ``loglikelihood_rolling`` builds them.

    lm-eval calls ``get_rolling_token_windows`` with ``context_len=1``; each window's
    ``context + continuation[:-1]`` has at most ``max_seq_len`` tokens, so it fits one forward pass.
    """
    return [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, prefix_token, max_seq_len, 1)]


def rolling_loglikelihood(
    tokens: Sequence[int],
    prefix_token: int,
    max_seq_len: int,
    score: Callable[[list[int], list[int]], float],
) -> float:
    """Sum of ``score(context, continuation)`` over the rolling windows of one document."""
    return float(sum(score(ctx, cont) for ctx, cont in rolling_windows(tokens, prefix_token, max_seq_len)))


# --------------------------------------------------------------------------------------------------
# Requests and token-level reductions


def encode_pair(
    context: str,
    continuation: str,
    tokenize: Callable[[str], list[int]],
    prefix_token: int | None = None,
) -> tuple[list[int], list[int]]:
    """Split ``context + continuation`` into token lists the way lm-eval's ``_encode_pair`` does.

    Trailing whitespace of the context moves to the continuation, the whole string is tokenized once and
    split at ``len(tokenize(context))`` (so scoring sees the tokens of the whole string, exactly as
    lm-eval does, even when a token merges across the boundary). An empty context becomes
    ``[prefix_token]`` (BOS), as in lm-eval; a non-empty one gets ``prefix_token`` prepended when
    given (models that need BOS, e.g. Gemma).
    """
    if context == "":
        if prefix_token is None:
            raise ValueError("an empty context needs a prefix token")
        return [prefix_token], tokenize(continuation)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenize(context + continuation)
    n_ctx = len(tokenize(context))
    head = [] if prefix_token is None else [prefix_token]
    return head + whole[:n_ctx], whole[n_ctx:]


def log_softmax(logits: FloatArray) -> FloatArray:
    """Row-wise log-softmax in float64, stable for large logits."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    shifted = x - m
    out: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def continuation_logprob(logprob_rows: FloatArray, continuation: Sequence[int]) -> tuple[float, bool]:
    """Sum and greediness of a continuation from the rows that predict it.

    ``logprob_rows[i]`` is the log-distribution predicting ``continuation[i]`` (i.e. the rows of positions
    ``len(ctx)-1 .. len(ctx)+len(cont)-2`` of a forward pass over ``ctx + cont``). Greedy means the argmax
    equals the continuation token at every position, as lm-eval's ``is_greedy``.
    """
    rows = np.asarray(logprob_rows, dtype=np.float64)
    ids = np.asarray(continuation, dtype=np.int64)
    if rows.shape[0] != ids.shape[0]:
        raise ValueError("one row per continuation token is needed")
    ll = float(rows[np.arange(ids.shape[0]), ids].sum())
    greedy = bool((rows.argmax(axis=-1) == ids).all())
    return ll, greedy


def continuation_from_prompt_logprobs(logprobs: Sequence[TokenLogprob | None], n_context: int) -> tuple[float, bool]:
    """(sum, is_greedy) of the tokens after the first ``n_context`` from an engine's prompt logprobs.

    ``logprobs`` is what ``GenerationRequest(prompt_logprobs=k>=1)`` returns: one entry per prompt
    token, ``None`` for the first. Greedy needs each token to be the most likely alternative.
    """
    cont = logprobs[n_context:]
    if not cont or any(lp is None for lp in cont):
        raise ValueError("the continuation needs a log-probability for each of its tokens")
    total = 0.0
    greedy = True
    for lp in cont:
        assert lp is not None
        total += lp.logprob
        if lp.top:
            best = max(lp.top, key=lambda t: t.logprob)
            greedy = greedy and best.token_id == lp.token_id
        else:
            greedy = False
    return total, greedy


def sentence_logprob(logprobs: Sequence[TokenLogprob | None]) -> float:
    """Sentence log-likelihood from prompt logprobs of ``[BOS, t1..tn]``: the sum over t1..tn."""
    return continuation_from_prompt_logprobs(logprobs, 1)[0]


def entropy(logprob_row: FloatArray) -> float:
    """Entropy in nats of a distribution given as log-probabilities."""
    lp = np.asarray(logprob_row, dtype=np.float64)
    p = np.exp(lp)
    mask = p > 0
    return float(-(p[mask] * lp[mask]).sum())


def top_k(logprob_row: FloatArray, k: int) -> list[tuple[int, float]]:
    """The ``k`` most likely token ids with their log-probabilities, best first (ties by lower id)."""
    lp = np.asarray(logprob_row, dtype=np.float64)
    k = max(0, min(k, lp.shape[0]))
    if k == 0:
        return []
    part = np.argpartition(-lp, k - 1)[:k]
    order = sorted(part.tolist(), key=lambda i: (-lp[i], i))
    return [(int(i), float(lp[i])) for i in order]


def token_distribution_from_logprobs(
    logprob_rows: FloatArray,
    token_ids: Sequence[int],
    piece: Callable[[int], str],
    k: int,
) -> TokenDistribution:
    """Build a :class:`TokenDistribution` from the log-softmax rows of a pass over ``[BOS] + token_ids``.

    Row ``i`` predicts ``token_ids[i]``; the last row (``len(token_ids)``) predicts the next token.
    ``piece`` maps a token id to its text.
    """
    rows = np.asarray(logprob_rows, dtype=np.float64)
    if rows.shape[0] != len(token_ids) + 1:
        raise ValueError("need one row per token plus one for the next token")
    stats = []
    for i, tid in enumerate(token_ids):
        row = rows[i]
        stats.append(
            TokenStat(
                token=piece(tid),
                logprob=float(row[tid]),
                entropy=entropy(row),
                top=tuple(Alternative(piece(j), lp) for j, lp in top_k(row, k)),
            )
        )
    last = rows[-1]
    return TokenDistribution(
        tokens=tuple(stats),
        next_entropy=entropy(last),
        next_top=tuple(Alternative(piece(j), lp) for j, lp in top_k(last, k)),
    )


def nats_to_bits(x: float) -> float:
    """Convert a natural-log quantity (surprisal, entropy) to bits."""
    return x / math.log(2)
