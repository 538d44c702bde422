"""Regenerate the bundled audit data files from the hand-written content modules.

Why a generator: BBQ and bAbI are template designs, and their honest reproduction is "these templates,
these vocabularies, this seed". The committed files under ``audit/data/`` are the output of
``python -m openzoo.audit.datagen``; a unit test regenerates them in memory and compares, so the JSONL and
the content modules cannot drift apart. Everything here is deterministic (``random.Random(SEED)``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from openzoo.audit import _content_bias as cb
from openzoo.audit import _content_quality as cq
from openzoo.audit import _content_safety as cs

SEED = 20260101
DATA_DIR = Path(__file__).resolve().parent / "data"

EXPLAIN_PROMPTS: list[str] = [
    "The capital of France is",
    "After a long day at work, the nurse said that",
    "Water boils at a temperature of one hundred degrees",
    "The engineer fixed the bridge because",
    "Once upon a time, in a small village by the sea, there lived a",
]


def _jsonl(rows: list[dict[str, Any]]) -> str:
    """One JSON object per line, UTF-8 text kept readable, trailing newline."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _cap(text: str) -> str:
    """Capitalise the first letter only (group phrases like 'my sisters' start sentences)."""
    return text[:1].upper() + text[1:]


def _article(noun: str) -> str:
    """'a' or 'an' for a noun phrase, by sound for the few cases our vocabulary has."""
    first = noun.split()[0].lower()
    vowel_sound = first[0] in "aeiou" or first.startswith(("8", "18", "11"))
    return ("an " if vowel_sound else "a ") + noun


def safety_rows() -> list[dict[str, Any]]:
    """XSTest-style rows: safe prompts first, then their unsafe contrasts, category by category."""
    rows: list[dict[str, Any]] = []
    for category, prompts in cs.SAFE.items():
        rows += [{"category": category, "type": "safe", "prompt": p} for p in prompts]
        rows += [{"category": category, "type": "unsafe", "prompt": p} for p in cs.UNSAFE[category]]
    return rows


def crows_rows() -> list[dict[str, Any]]:
    """Minimal pairs: every frame of a block with every group pair of the block."""
    rows: list[dict[str, Any]] = []
    for category, blocks in cb.CROWS.items():
        for pairs, frames in blocks:
            for frame in frames:
                for stereo, anti in pairs:
                    rows.append(
                        {
                            "category": category,
                            "stereotype": _cap(frame.format(G=_cap(stereo), g=stereo)),
                            "anti_stereotype": _cap(frame.format(G=_cap(anti), g=anti)),
                        }
                    )
    return rows


def bbq_rows() -> list[dict[str, Any]]:
    """BBQ items: per template and group pair, 4 ambiguous and 4 disambiguated questions.

    Ambiguous: both mention orders x both polarities, gold = unknown. Disambiguated: the negative act is
    done by the targeted group or by the other one, x both polarities. Answer order is shuffled with the
    seed; ``target_label`` is the index of the targeted group's answer, ``unknown_label`` of "unknown".
    """
    rng = random.Random(SEED)
    rows: list[dict[str, Any]] = []
    unknown_i = 0
    for category, templates in cb.BBQ.items():
        for t_index, tpl in enumerate(templates):
            pairs: list[tuple[str, str]] = tpl["pairs"]  # type: ignore[assignment]
            for target, other in pairs:
                variants: list[tuple[str, str, str]] = []  # (condition, context, negative actor or "")
                for first, second in ((target, other), (other, target)):
                    amb = _cap(str(tpl["ambiguous"]).format(A=_article(first), B=_article(second)))
                    variants.append(("ambig", amb, ""))
                base = _cap(str(tpl["ambiguous"]).format(A=_article(target), B=_article(other)))
                for neg_actor, non_actor in ((target, other), (other, target)):
                    dis = str(tpl["disambiguating"]).format(NEG=neg_actor, NON=non_actor)
                    variants.append(("disambig", base + " " + dis, neg_actor))
                for condition, context, neg_actor in variants:
                    for polarity in ("neg", "nonneg"):
                        unknown = cb.BBQ_UNKNOWN[unknown_i % len(cb.BBQ_UNKNOWN)]
                        unknown_i += 1
                        answers = [f"The {target}", f"The {other}", unknown]
                        rng.shuffle(answers)
                        if condition == "ambig":
                            gold = unknown
                        elif polarity == "neg":
                            gold = f"The {neg_actor}"
                        else:
                            gold = f"The {other if neg_actor == target else target}"
                        question = str(tpl["q_neg"] if polarity == "neg" else tpl["q_nonneg"])
                        rows.append(
                            {
                                "category": category,
                                "template_id": f"{category}-{t_index + 1}",
                                "context_condition": condition,
                                "question_polarity": polarity,
                                "context": context,
                                "question": question,
                                "answers": answers,
                                "label": answers.index(gold),
                                "target_label": answers.index(f"The {target}"),
                                "unknown_label": answers.index(unknown),
                            }
                        )
    return rows


def occupation_rows() -> list[dict[str, Any]]:
    """Occupation x template prompts with female and male continuations (lm-eval co-occurrence design)."""
    rows: list[dict[str, Any]] = []
    for t_index, (template, female, male) in enumerate(cb.OCCUPATION_TEMPLATES):
        for majority, occupations in cb.OCCUPATIONS.items():
            for occupation in occupations:
                rows.append(
                    {
                        "occupation": occupation,
                        "workforce_majority": majority,
                        "template_id": t_index + 1,
                        "prompt": template.format(occupation=occupation),
                        "female": female,
                        "male": male,
                    }
                )
    return rows


def _mc(rng: random.Random, category: str, question: str, gold: str, distractors: list[str]) -> dict[str, Any]:
    """One multiple-choice row with the choices shuffled, so the gold position carries no signal."""
    choices = [gold, *distractors]
    rng.shuffle(choices)
    return {"category": category, "question": question, "choices": choices, "gold": choices.index(gold)}


def _arithmetic(rng: random.Random) -> list[dict[str, Any]]:
    """60 items, the four operations in turn; distractors are near misses (±1, ±2, ±10)."""
    rows: list[dict[str, Any]] = []
    for i in range(60):
        op = ("+", "-", "x", "/")[i % 4]
        if op == "+":
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            answer, q = a + b, f"What is {a} + {b}?"
        elif op == "-":
            a = rng.randint(30, 99)
            b = rng.randint(1, a - 1)
            answer, q = a - b, f"What is {a} - {b}?"
        elif op == "x":
            a, b = rng.randint(3, 19), rng.randint(3, 9)
            answer, q = a * b, f"What is {a} times {b}?"
        else:
            b, answer = rng.randint(2, 9), rng.randint(3, 15)
            a = b * answer
            q = f"What is {a} divided by {b}?"
        # Near misses, with the right answer's rank among the four values cycling 0..3, so that a model
        # preferring small (or large) numbers gains nothing from the layout.
        below = [d for d in (1, 2, 10) if answer - d > 0]
        n_below = min(i // 4 % 4, len(below))
        wrong = [answer - d for d in rng.sample(below, n_below)]
        wrong += [answer + d for d in rng.sample((1, 2, 10), 3 - n_below)]
        rows.append(_mc(rng, "arithmetic", q, str(answer), [str(w) for w in wrong]))
    return rows


def _reading(rng: random.Random) -> list[dict[str, Any]]:
    """40 bAbI-style passages: where an object was moved last, or who was handed it last."""
    rows: list[dict[str, Any]] = []
    for i in range(40):
        n1, n2, n3, n4 = rng.sample(cq.NAMES, 4)
        obj = rng.choice(cq.OBJECTS)
        if i % 2 == 0:
            p1, p2, p3, p4 = rng.sample(cq.PLACES, 4)
            passage = f"{n1} put the {obj} in {p1}. Later, {n2} moved the {obj} to {p2}. Then {n1} walked to {p3}."
            rows.append(_mc(rng, "reading", f"{passage} Where is the {obj} now?", p2, [p1, p3, p4]))
        else:
            passage = (
                f"{n1} gave the {obj} to {n2}. After lunch, {n2} handed the {obj} to {n3}. "
                f"{n4} watched them from the window."
            )
            rows.append(_mc(rng, "reading", f"{passage} Who has the {obj} now?", n3, [n1, n2, n4]))
    return rows


def quality_mc_rows() -> list[dict[str, Any]]:
    """The bundled multiple-choice task: knowledge, common sense, vocabulary, arithmetic, reading."""
    rng = random.Random(SEED)
    rows: list[dict[str, Any]] = []
    rows += [_mc(rng, "general_knowledge", q, c[0], c[1:]) for q, c in cq.GENERAL_KNOWLEDGE]
    rows += [_mc(rng, "common_sense", q, c[0], c[1:]) for q, c in cq.COMMON_SENSE]
    opposites = [b for _, b in cq.ANTONYMS]
    for word, opposite in cq.ANTONYMS:
        pool = [o for o in opposites if o not in (opposite, word)]
        rows.append(_mc(rng, "vocabulary", f"What is the opposite of '{word}'?", opposite, rng.sample(pool, 3)))
    for category, members, others in cq.CATEGORIES:
        for member in members:
            rows.append(
                _mc(
                    rng,
                    "categories",
                    f"Which of these is {_article(category)}?",
                    member,
                    rng.sample(others, 3),
                )
            )
    rows += _arithmetic(rng)
    rows += _reading(rng)
    return rows


def explain_rows() -> list[dict[str, Any]]:
    """The default prompts of the explain suite."""
    return [{"prompt": p} for p in EXPLAIN_PROMPTS]


FILES: dict[str, Any] = {
    "safety_prompts.jsonl": safety_rows,
    "bias_pairs.jsonl": crows_rows,
    "bias_bbq.jsonl": bbq_rows,
    "bias_occupations.jsonl": occupation_rows,
    "quality_mc.jsonl": quality_mc_rows,
    "explain_prompts.jsonl": explain_rows,
}


def render_all() -> dict[str, str]:
    """File name -> exact text of every generated data file."""
    return {name: _jsonl(make()) for name, make in FILES.items()}


def main(argv: list[str] | None = None) -> int:
    """Write every generated file into ``audit/data/`` (or the folder given as the one argument)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text, encoding="utf-8", newline="\n")
        print(f"{name}: {text.count(chr(10))} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
