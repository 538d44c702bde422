"""EngineScorer's conventions over a fake Inference whose 'model' is the bigram chain of ``audit_fakes``.

Tokens are characters (token id = code point, BOS = 2); the fake engine answers ``prompt_logprobs``
with ``char_lp(previous, token)``, so every convention (BOS prepended and not scored, lm-eval's
encode_pair, rolling windows, greedy) can be checked against sums computed by hand.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from audit_fakes import char_lp

from openzoo.audit.engine_scorer import EngineScorer, entropy_from_top
from openzoo.audit.service import LazyScorer, ModelJudge
from openzoo.audit.suites import bias
from openzoo.errors import InvalidData, NotSupported
from openzoo.events import Done, TextChunk, TokenLogprob, TopLogprob
from openzoo.inference import ChatRequest, CompletionRequest

BOS = 2
VOCAB = 128


def _lp(prev: int, tok: int) -> float:
    return char_lp(chr(prev), chr(tok)) if prev != BOS else char_lp("\x02", chr(tok))


@dataclass
class FakeSpec:
    capabilities: list[str] = field(default_factory=lambda: ["completion"])

    @property
    def name(self) -> Any:
        return type("N", (), {"display": "fake:1b"})()


class FakeModels:
    def __init__(self, spec: FakeSpec) -> None:
        self.spec = spec

    def resolve(self, name: str) -> FakeSpec:
        return self.spec


class FakeInference:
    def __init__(self, *, logprobs: bool = True, capabilities: list[str] | None = None) -> None:
        self.models = FakeModels(FakeSpec(capabilities or ["completion"]))
        self.logprobs = logprobs
        self.prompts: list[list[int]] = []
        self.chats: list[ChatRequest] = []
        self.waves: list[int] = []  # requests made before each cold_batch() call

    def cold_batch(self, model: str) -> int:
        self.waves.append(len(self.chats))
        return 2

    def tokenizer_info(self, model: str) -> dict[str, Any]:
        return {"bos_token_id": BOS, "eos_token_id": 1, "context_length": 8, "vocab_size": VOCAB}

    def tokenize(self, model: str, text: str, *, add_special: bool = False) -> list[int]:
        assert not add_special
        return [ord(c) for c in text]

    def completion(self, req: CompletionRequest) -> Iterator[Any]:
        assert req.raw and not req.add_special and isinstance(req.prompt, list)
        assert req.options == {"temperature": 0, "num_predict": 0}
        prompt = list(req.prompt)
        self.prompts.append(prompt)
        lps: list[TokenLogprob | None] = [None]
        for prev, tok in itertools.pairwise(prompt):
            k = req.prompt_logprobs or 0
            top = tuple(TopLogprob(chr(t), _lp(prev, t), t, chr(t).encode())
                        for t in sorted(range(32, VOCAB), key=lambda t: -_lp(prev, t))[:k])
            lps.append(TokenLogprob(chr(tok), _lp(prev, tok), tok, chr(tok).encode(), top))
        return iter([Done("length", prompt_logprobs=tuple(lps) if self.logprobs else ())])

    def chat(self, req: ChatRequest) -> Iterator[Any]:
        self.chats.append(req)
        return iter([TextChunk("echo: "), TextChunk(req.messages[-1]["content"]), Done("stop")])


def _seq(text: str, prev: int = BOS) -> float:
    total = 0.0
    for c in text:
        total += _lp(prev, ord(c))
        prev = ord(c)
    return total


def open_fake(**kw: Any) -> tuple[EngineScorer, FakeInference]:
    inference = FakeInference()
    scorer = EngineScorer.open(inference, "fake:1b", **kw)  # type: ignore[arg-type]
    return scorer, inference


def test_sentence_loglikelihood_prepends_bos_and_scores_every_token() -> None:
    scorer, inference = open_fake()
    texts = ["abc", "hello", "x"]
    assert scorer.sentence_loglikelihood(texts) == pytest.approx([_seq(t) for t in texts])
    assert inference.prompts[-3:] == [[BOS, *map(ord, t)] for t in texts]  # input order kept under parallelism


def test_loglikelihood_follows_lm_eval_encode_pair() -> None:
    scorer, inference = open_fake()
    (ll, greedy), = scorer.loglikelihood([("ab ", "cd")])  # trailing space moves to the continuation
    assert inference.prompts[-1] == [BOS, ord("a"), ord("b"), ord(" "), ord("c"), ord("d")]
    assert ll == pytest.approx(_seq(" cd", ord("b")))
    best = [max(range(32, VOCAB), key=lambda t: _lp(p, t)) for p in (ord("b"), ord(" "), ord("c"))]
    assert greedy is (best == [ord(" "), ord("c"), ord("d")])
    scorer_no_bos, inference2 = open_fake(context_bos=False)
    scorer_no_bos.loglikelihood([("ab", " c"), ("", "q")])
    assert inference2.prompts[-2:] == [[ord("a"), ord("b"), ord(" "), ord("c")], [BOS, ord("q")]]


def test_rolling_windows_cover_every_token_once() -> None:
    scorer, inference = open_fake()
    doc = "the quick brown fox jumps"  # 25 tokens; n_ctx 8 -> windows of 7 predicted tokens
    (ll,) = scorer.rolling_loglikelihood([doc])
    assert ll == pytest.approx(_seq(doc))  # a bigram model loses nothing to windowing
    assert all(len(p) <= 8 for p in inference.prompts[1:])
    assert len(inference.prompts) - 1 == math.ceil(len(doc) / 7)


def test_next_token_distribution_reads_the_row_after_the_text() -> None:
    scorer, inference = open_fake()
    dist = scorer.next_token_distribution("ab", 3)
    assert inference.prompts[-1] == [BOS, ord("a"), ord("b"), BOS]
    assert [t.token for t in dist.tokens] == ["a", "b"]
    assert [len(t.top) for t in dist.tokens] == [3, 3]
    assert dist.next_top[0].logprob == pytest.approx(max(_lp(ord("b"), t) for t in range(32, VOCAB)))
    assert dist.next_entropy > 0


def test_generate_uses_chat_greedy_and_seeded() -> None:
    scorer, inference = open_fake()
    out = scorer.generate([[{"role": "user", "content": "hi"}], [{"role": "user", "content": "yo"}]], 12, 5)
    assert out == ["echo: hi", "echo: yo"]
    assert all(r.options == {"temperature": 0, "seed": 5, "num_predict": 12} for r in inference.chats)


def test_generate_runs_in_cold_waves_of_the_engine_slots() -> None:
    scorer, inference = open_fake()
    words = ["a", "b", "c", "d", "e"]
    out = scorer.generate([[{"role": "user", "content": w}] for w in words], 4, 1)
    assert out == [f"echo: {w}" for w in words]  # input order kept across waves
    assert inference.waves == [0, 2, 4]  # a cold start before every wave of (at most) 2 slots


def test_model_without_logprobs_is_a_clear_error() -> None:
    with pytest.raises(NotSupported, match="cannot produce log-probabilities"):
        EngineScorer.open(FakeInference(logprobs=False), "fake:1b")  # type: ignore[arg-type]
    with pytest.raises(NotSupported, match="cannot produce log-probabilities"):
        EngineScorer.open(FakeInference(capabilities=["embedding"]), "fake:1b")  # type: ignore[arg-type]


def test_bad_data_fails_before_the_engine_is_opened(tmp_path: Path) -> None:
    opened: list[bool] = []

    def never() -> EngineScorer:
        opened.append(True)
        raise AssertionError("the engine must not be opened for bad data")

    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"category": "age", "stereotype": "a"}\n')
    with pytest.raises(InvalidData, match=r"pairs\.jsonl:1"):
        bias.run(LazyScorer(never), bad, 0)
    assert not opened


def test_entropy_from_top() -> None:
    probs = [0.5, 0.25, 0.25]
    exact = -sum(p * math.log(p) for p in probs)
    assert entropy_from_top([math.log(p) for p in probs], 3) == pytest.approx(exact)
    # with a tail, the estimate lies between the top-k part and the uniform-tail upper bound
    top = [math.log(0.5), math.log(0.3)]
    est = entropy_from_top(top, 1000)
    head = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3))
    assert head < est <= head + 0.2 * math.log(998 / 0.2)


@pytest.mark.parametrize(("answer", "verdict"), [("Yes.", True), (" no", False), ("Maybe", None)])
def test_model_judge_reads_yes_or_no(answer: str, verdict: bool | None) -> None:
    class Inference:
        def __init__(self) -> None:
            self.requests: list[ChatRequest] = []

        def chat(self, req: ChatRequest) -> Iterator[Any]:
            self.requests.append(req)
            return iter([TextChunk(answer), Done("stop")])

    services = type("S", (), {"inference": Inference()})()
    judge = ModelJudge(services, "judge:1b")
    assert judge("How do I bake bread?", "Sorry, I can't.") is verdict
    (req,) = services.inference.requests
    assert req.model == "judge:1b" and "Sorry, I can't." in req.messages[0]["content"]
    assert req.options == {"temperature": 0, "seed": 0, "num_predict": 4}
