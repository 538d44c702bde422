"""The bundled data: counts the issue asks for, schema validity, datasheets, and no drift from datagen."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from openzoo.audit import datagen
from openzoo.audit import datasets as ds
from openzoo.audit.suites import bias, explain, quality, safety

DATA = Path(datagen.__file__).parent / "data"
CATEGORIES = {
    "gender",
    "race_ethnicity",
    "religion",
    "age",
    "disability",
    "nationality",
    "sexual_orientation",
    "socioeconomic",
}


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def rows(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line]


def test_generated_files_match_the_generator() -> None:
    for name, text in datagen.render_all().items():
        stale = f"{name} is stale: run python -m openzoo.audit.datagen"
        assert (DATA / name).read_text(encoding="utf-8") == text, stale


def test_every_data_file_has_a_datasheet_and_license() -> None:
    data_files = [p for p in DATA.iterdir() if p.suffix in (".jsonl", ".txt")]
    assert len(data_files) >= 7
    for p in data_files:
        sheet = DATA / f"DATASHEET-{p.stem}.md"
        assert sheet.exists(), f"missing {sheet.name}"
        text = sheet.read_text(encoding="utf-8")
        for heading in ("Motivation", "Composition", "Collection", "Intended uses", "Design", "Limitations"):
            assert heading in text, f"{sheet.name} lacks {heading}"
        assert "CC-BY-4.0" in text
    assert "Creative Commons Attribution 4.0" in (DATA / "LICENSE").read_text(encoding="utf-8")


def test_quality_counts() -> None:
    docs = quality.load_corpus(ds.bundled(quality.CORPUS))
    assert len(docs) >= 25
    mc = quality.load_mc(ds.bundled(quality.TASK))
    assert len(mc) >= 200
    cats = Counter(i.category for i in mc)
    assert {"general_knowledge", "arithmetic", "reading", "common_sense"} <= set(cats)
    assert all(len(set(i.choices)) == len(i.choices) for i in mc)  # no duplicate choices


def test_arithmetic_items_are_right_and_gold_rank_is_balanced() -> None:
    ranks: Counter[int] = Counter()
    for r in rows("quality_mc.jsonl"):
        if r["category"] == "arithmetic":
            values = sorted(int(c) for c in r["choices"])  # type: ignore[attr-defined]
            ranks[values.index(int(r["choices"][int(r["gold"])]))] += 1  # type: ignore[index, call-overload]
    assert len(ranks) == 4 and min(ranks.values()) >= 8
    for r in rows("quality_mc.jsonl"):
        if r["category"] != "arithmetic":
            continue
        q = str(r["question"]).removeprefix("What is ").removesuffix("?")
        expr = q.replace(" times ", " * ").replace(" divided by ", " // ")
        assert str(eval(expr)) == r["choices"][int(r["gold"])]  # type: ignore[index, call-overload]


def test_crows_pairs_counts_and_minimal_edits() -> None:
    pairs = bias.load_pairs(ds.bundled(bias.PAIRS))
    assert len(pairs) >= 300
    counts = Counter(p.category for p in pairs)
    assert set(counts) >= CATEGORIES and min(counts.values()) >= 30
    assert len({(p.stereotype, p.anti_stereotype) for p in pairs}) == len(pairs)
    for p in pairs:
        assert p.stereotype != p.anti_stereotype
        # a minimal pair: only the group phrase differs, the rest of the sentence is shared
        a, b = p.stereotype, p.anti_stereotype
        prefix = common_prefix(a, b)
        suffix = common_prefix(a[::-1], b[::-1])
        assert max(len(a), len(b)) - prefix - suffix <= 30, (a, b)


def test_bbq_schema_and_balance() -> None:
    items = bias.load_bbq(ds.bundled(bias.BBQ))
    assert set(Counter(i.category for i in items)) >= CATEGORIES
    for cat in CATEGORIES:
        sel = [i for i in items if i.category == cat]
        combos = Counter((i.condition, i.polarity) for i in sel)
        assert set(combos) == {("ambig", "neg"), ("ambig", "nonneg"), ("disambig", "neg"), ("disambig", "nonneg")}
        assert len(set(combos.values())) == 1  # balanced
    for i in items:
        assert i.answers[i.unknown_label] not in i.context
        if i.condition == "disambig":
            assert i.label != i.unknown_label
            # the gold group is named in the disambiguating sentence
            assert i.answers[i.label].removeprefix("The ").lower() in i.context.lower()
    # the negative act is done half the time by the targeted group
    dis_neg = [i for i in items if i.condition == "disambig" and i.polarity == "neg"]
    assert sum(i.label == i.target_label for i in dis_neg) * 2 == len(dis_neg)


def test_occupations() -> None:
    occ = bias.load_occupations(ds.bundled(bias.OCCUPATIONS))
    assert Counter(o.majority for o in occ) == {"female": len(occ) // 2, "male": len(occ) // 2}
    assert all(o.prompt.startswith(("The ", "After")) for o in occ)


def test_safety_counts() -> None:
    prompts = safety.load_prompts(ds.bundled(safety.PROMPTS))
    kinds = Counter(p.type for p in prompts)
    assert kinds["safe"] >= 100 and kinds["unsafe"] >= 100
    assert len({p.category for p in prompts}) >= 6
    assert len({p.prompt for p in prompts}) == len(prompts)
    # unsafe prompts are requests (questions), never content
    assert all(p.prompt.rstrip().endswith("?") for p in prompts)


def test_explain_prompts() -> None:
    assert len(explain.load_prompts(ds.bundled(explain.PROMPTS))) >= 3


@pytest.mark.parametrize("name", sorted(datagen.FILES))
def test_jsonl_is_utf8_one_object_per_line(name: str) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert all(isinstance(json.loads(line), dict) for line in text.splitlines())
