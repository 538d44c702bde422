"""Each suite end to end with the fake scorer, and --data validation errors naming file and line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from audit_fakes import FakeScorer, seq_lp

from openzoo.audit.suites import bias, explain, quality, safety
from openzoo.errors import InvalidData
from openzoo.events import Progress


def write(tmp_path: Path, name: str, lines: list[object] | str) -> Path:
    p = tmp_path / name
    if isinstance(lines, str):
        p.write_text(lines, encoding="utf-8")
    else:
        p.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return p


def test_quality_bundled(scorer: FakeScorer) -> None:
    events: list[Progress] = []
    res = quality.run(scorer, None, 0, events.append)
    assert res.name == "quality" and res.data_digest.startswith("sha256:")
    assert {
        "perplexity.word_perplexity",
        "perplexity.byte_perplexity",
        "perplexity.bits_per_byte",
        "mc.acc",
        "mc.acc_norm",
        "mc.acc_bytes",
        "mc.chance",
        "mc.acc.arithmetic",
    } <= set(res.metrics)
    assert res.metrics["mc.chance"].value == pytest.approx(0.25)
    assert events and events[-1].completed == events[-1].total
    docs = [i for i in res.items if i["task"] == "perplexity"]
    assert len(docs) >= 25
    mc = [i for i in res.items if i["task"] == "mc"]
    assert len(mc) >= 200 and all(len(i["lls"]) == 4 for i in mc)


def test_quality_data_txt_matches_formula(tmp_path: Path, scorer: FakeScorer) -> None:
    p = write(tmp_path, "corpus.txt", "First document here.\n\n\nSecond one, a bit longer.\n")
    res = quality.run(scorer, p, 1, None)
    docs = ["First document here.", "Second one, a bit longer."]
    ll = sum(seq_lp(d) for d in docs)
    nbytes = sum(len(d) for d in docs)
    assert res.metrics["perplexity.bits_per_byte"].value == pytest.approx(-ll / (nbytes * math.log(2)))
    assert res.metrics["perplexity.word_perplexity"].value == pytest.approx(math.exp(-ll / 8))  # 3 + 5 words
    assert "mc.acc" not in res.metrics


def test_quality_data_jsonl_corpus_and_task(tmp_path: Path, scorer: FakeScorer) -> None:
    res = quality.run(scorer, write(tmp_path, "c.jsonl", [{"text": "alpha beta"}, {"text": "gamma"}]), 0, None)
    assert res.metrics["perplexity.bits_per_byte"].n == 2
    task = write(
        tmp_path,
        "t.jsonl",
        [
            {"question": "2+2?", "choices": ["4", "5"], "gold": 0},
            {"query": "Sky colour:", "choices": ["blue", "green", "red"], "answer_idx": 2},
        ],
    )
    res = quality.run(scorer, task, 0, None)
    assert res.metrics["mc.acc"].n == 2
    assert scorer.calls["loglikelihood"] == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"choices": ["a", "b"], "gold": 0}], ':1: missing field "question"'),
        (
            [{"question": "q", "choices": ["a", "b"], "gold": 0}, {"question": "q", "choices": "ab", "gold": 0}],
            ':2: field "choices" must be a list',
        ),
        ([{"question": "q", "choices": ["a", "b"], "gold": "0"}], ':1: field "gold" must be an integer'),
        ([{"question": "q", "choices": ["a", "b"], "gold": True}], ':1: field "gold" must be an integer'),
        ([{"question": "q", "choices": ["a", "b"], "gold": 2}], ':1: field "gold" must be an index'),
        (["", '{"question": "q", "choices": ["a", "b"], "gold": 0}', "{not json"], ":3: invalid JSON"),
        (["[1, 2]"], ":1: each line must be a JSON object"),
    ],
)
def test_quality_task_validation(tmp_path: Path, scorer: FakeScorer, content: list[object], message: str) -> None:
    p = write(tmp_path, "task.jsonl", content)
    with pytest.raises(InvalidData) as exc:
        quality.run(scorer, p, 0, None)
    assert str(p) in str(exc.value) and message in str(exc.value)
    assert scorer.calls == {}  # nothing scored before validation finished


def test_empty_corpus_and_missing_file(tmp_path: Path, scorer: FakeScorer) -> None:
    p = write(tmp_path, "empty.txt", "\n  \n\n")
    with pytest.raises(InvalidData, match="empty corpus"):
        quality.run(scorer, p, 0, None)
    with pytest.raises(InvalidData, match="empty"):
        quality.run(scorer, write(tmp_path, "e.jsonl", ""), 0, None)
    with pytest.raises(InvalidData, match="file not found"):
        quality.run(scorer, tmp_path / "nope.txt", 0, None)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe oops")
    with pytest.raises(InvalidData, match="not UTF-8"):
        quality.run(scorer, bad, 0, None)
    with pytest.raises(InvalidData, match=r"\.txt corpus or a \.jsonl"):
        quality.run(scorer, write(tmp_path, "x.csv", "a,b"), 0, None)


def test_bias_bundled(scorer: FakeScorer) -> None:
    res = bias.run(scorer, None, 0, None)
    m = res.metrics
    for key in (
        "crows.pct_stereotype",
        "crows.mean_ll_gap",
        "bbq.accuracy",
        "bbq.accuracy_amb",
        "bbq.s_dis",
        "bbq.s_amb",
        "occupation.pct_male_preferred",
        "occupation.pct_stereotype_consistent",
    ):
        assert key in m, key
    for cat in (
        "gender",
        "race_ethnicity",
        "religion",
        "age",
        "disability",
        "nationality",
        "sexual_orientation",
        "socioeconomic",
    ):
        assert f"crows.pct_stereotype.{cat}" in m and f"bbq.s_amb.{cat}" in m and f"bbq.s_dis.{cat}" in m
    crows = [i for i in res.items if i["task"] == "crows"]
    assert len(crows) >= 300
    first = crows[0]
    assert {"category", "stereotype", "anti_stereotype", "ll_stereotype", "ll_anti_stereotype"} <= set(first)
    assert first["ll_stereotype"] == pytest.approx(seq_lp(first["stereotype"]))
    pct = 100 * sum(i["ll_stereotype"] > i["ll_anti_stereotype"] for i in crows) / len(crows)
    assert m["crows.pct_stereotype"].value == pytest.approx(pct)
    assert len(res.data_files) == 3


def test_bias_bbq_scores_follow_predictions(tmp_path: Path) -> None:
    """A scorer that always picks the targeted group: s_DIS = 0 (half biased), s_AMB = 1 x ... by hand."""

    class TargetPicker(FakeScorer):
        def loglikelihood(self, requests):  # type: ignore[no-untyped-def]
            return [(0.0 if cont.strip() == "The old man" else -5.0, False) for _, cont in requests]

    rows = []
    for cond, pol, label in (
        ("ambig", "neg", 2),
        ("ambig", "nonneg", 2),
        ("disambig", "neg", 0),
        ("disambig", "nonneg", 1),
    ):
        rows.append(
            {
                "category": "age",
                "context_condition": cond,
                "question_polarity": pol,
                "context": "c",
                "question": "q?",
                "answers": ["The old man", "The young man", "Unknown"],
                "label": label,
                "target_label": 0,
                "unknown_label": 2,
            }
        )
    res = bias.run(TargetPicker(), write(tmp_path, "bbq.jsonl", rows), 0, None)
    m = res.metrics
    # ambiguous: both wrong; neg->target biased, nonneg->target not biased: bias 0 -> s_AMB = 1 * 0
    assert m["bbq.accuracy_amb"].value == 0.0 and m["bbq.s_amb"].value == pytest.approx(0.0)
    # disambiguated: neg correct & biased, nonneg wrong & not biased -> s_DIS = 2*1/2-1 = 0
    assert m["bbq.accuracy_disamb"].value == 0.5 and m["bbq.s_dis"].value == pytest.approx(0.0)
    assert "crows.pct_stereotype" not in m


def test_bias_data_pairs_and_validation(tmp_path: Path, scorer: FakeScorer) -> None:
    p = write(tmp_path, "pairs.jsonl", [{"category": "age", "stereotype": "Old a.", "anti_stereotype": "Young a."}])
    res = bias.run(scorer, p, 0, None)
    assert res.metrics["crows.pct_stereotype"].n == 1 and "bbq.s_dis" not in res.metrics
    p = write(
        tmp_path,
        "bad.jsonl",
        [
            {"category": "age", "stereotype": "x", "anti_stereotype": "y"},
            {"category": "age", "stereotype": 3, "anti_stereotype": "y"},
        ],
    )
    with pytest.raises(InvalidData, match=r"bad\.jsonl:2: field \"stereotype\" must be a string"):
        bias.run(scorer, p, 0, None)
    p = write(tmp_path, "what.jsonl", [{"foo": 1}])
    with pytest.raises(InvalidData, match=r"what\.jsonl:1: missing field \"category\""):
        bias.run(scorer, p, 0, None)
    occ = write(
        tmp_path,
        "occ.jsonl",
        [
            {
                "occupation": "nurse",
                "workforce_majority": "female",
                "prompt": "The nurse was a",
                "female": [" woman"],
                "male": [" man"],
            }
        ],
    )
    res = bias.run(scorer, occ, 0, None)
    assert res.metrics["occupation.pct_male_preferred"].n == 1


def test_safety_bundled(scorer: FakeScorer) -> None:
    res = safety.run(scorer, None, 7, None)
    m = res.metrics
    items = res.items
    assert len(items) >= 200 and scorer.calls["generate"] == len(items)
    refused_safe = [i["refused"] for i in items if i["type"] == "safe"]
    assert m["over_refusal_rate"].value == pytest.approx(sum(refused_safe) / len(refused_safe))
    assert 0 < m["over_refusal_rate"].value < 1  # "kill a Python process" trips the fake, as in XSTest
    assert m["under_refusal_rate"].ci_method == "wilson"
    assert "refusal_rate_safe.homonyms" in m and "refusal_rate_unsafe.homonyms" in m
    assert all(i["refusal_source"] in ("prefix", "pattern", "none") for i in items)


def test_safety_judge_and_data(tmp_path: Path, scorer: FakeScorer) -> None:
    p = write(
        tmp_path,
        "s.jsonl",
        [{"category": "x", "type": "safe", "prompt": "hello?"}, {"category": "x", "type": "unsafe", "prompt": "kill?"}],
    )
    res = safety.run(scorer, p, 0, None, judge=lambda prompt, reply: "kill" in prompt)
    assert [i["refusal_source"] for i in res.items] == ["judge", "judge"]
    assert res.metrics["over_refusal_rate"].value == 0.0 and res.metrics["under_refusal_rate"].value == 0.0
    bad = write(tmp_path, "b.jsonl", [{"category": "x", "type": "maybe", "prompt": "p"}])
    with pytest.raises(InvalidData, match=r"b\.jsonl:1: field \"type\" must be one of safe, unsafe"):
        safety.run(scorer, bad, 0, None)


def test_explain_bundled_and_attribution(tmp_path: Path, scorer: FakeScorer) -> None:
    res = explain.run(scorer, None, 0, None)
    assert len(res.items) == 5
    item = res.items[0]
    assert item["next_token"]["token"] == " the"
    assert len(item["attribution"]) == len(item["tokens"]) > 0
    t0 = item["tokens"][0]
    assert t0["surprisal_bits"] == pytest.approx(0.5 * len(t0["token"]) / math.log(2))
    # attribution = ll(y | prompt) - ll(y | prompt without token i), recomputed with the fake
    prompt = item["prompt"]
    pieces = [t["token"] for t in item["tokens"]]
    base = scorer.loglikelihood([(prompt, " the")])[0][0]
    for i, a in enumerate(item["attribution"]):
        dropped = explain.drop_token(prompt, pieces, i)
        assert a["score"] == pytest.approx(base - scorer.loglikelihood([(dropped, " the")])[0][0])
    assert {"mean_surprisal_bits", "mean_entropy_bits", "mean_next_token_prob"} <= set(res.metrics)
    res = explain.run(scorer, write(tmp_path, "p.txt", "Hello world\n\nSecond prompt\n"), 0, None, top_k=1)
    assert [i["prompt"] for i in res.items] == ["Hello world", "Second prompt"]


def test_drop_token() -> None:
    assert explain.drop_token("The cat sat", ["The", " cat", " sat"], 1) == "The sat"
    assert explain.drop_token("xyz", ["▁x", "yz"], 0) == "yz"  # pieces do not spell the prompt
