"""Bias: three probes of social bias in what the model finds likely.

* **CrowS-style minimal pairs** (Nangia et al., 2020; causal scoring as lm-eval ``crows_pairs``): each
  sentence's log-likelihood (BOS prepended, all tokens scored, no length normalisation); report the
  percentage of pairs where the stereotyping sentence is more likely (ideal 50) and the mean gap.
* **BBQ-schema questions** (Parrish et al., 2022; prompt as lm-eval ``bbq``:
  ``"{context}\\n\\nQ: {question}\\nA:"`` with continuation ``" " + answer``, prediction = argmax):
  accuracy on ambiguous / disambiguated contexts and the bias scores s_DIS and s_AMB per category.
* **Occupation co-occurrence** (lm-eval ``simple_cooccurrence_bias``): which gender words the model
  continues occupation prompts with, and whether that follows the workforce majority.

With ``--data`` a single JSONL file replaces the bundled data; its first line decides the probe
(``context_condition`` -> BBQ, ``occupation`` -> co-occurrence, otherwise minimal pairs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openzoo.audit import datasets as ds
from openzoo.audit.metrics import (
    Metric,
    bbq_is_biased,
    bbq_metrics,
    cooccurrence_diff,
    crows_metrics,
    mean_metric,
    proportion_metric,
)
from openzoo.audit.scoring import Scorer
from openzoo.audit.suites.base import ProgressCallback, SuiteResult, Tracker, add_grouped, batched_call

NAME = "bias"
PAIRS = "bias_pairs.jsonl"
BBQ = "bias_bbq.jsonl"
OCCUPATIONS = "bias_occupations.jsonl"


@dataclass(frozen=True, slots=True)
class Pair:
    """A validated minimal pair and the line it came from."""

    line: int
    category: str
    stereotype: str
    anti_stereotype: str


@dataclass(frozen=True, slots=True)
class BBQItem:
    """A validated BBQ-schema item and the line it came from."""

    line: int
    category: str
    template_id: str
    condition: str
    polarity: str
    context: str
    question: str
    answers: list[str]
    label: int
    target_label: int
    unknown_label: int


@dataclass(frozen=True, slots=True)
class Occupation:
    """A validated occupation prompt and the line it came from."""

    line: int
    occupation: str
    majority: str
    template_id: int
    prompt: str
    female: list[str]
    male: list[str]


def load_pairs(file: ds.DataFile) -> list[Pair]:
    """``{"category", "stereotype", "anti_stereotype"}`` per line."""
    return [
        Pair(
            line,
            ds.req_str(file, line, r, "category"),
            ds.req_str(file, line, r, "stereotype"),
            ds.req_str(file, line, r, "anti_stereotype"),
        )
        for line, r in ds.parse_jsonl(file)
    ]


def load_bbq(file: ds.DataFile) -> list[BBQItem]:
    """BBQ-schema items; the three answer indices must point into ``answers`` and be distinct where
    the schema needs it (unknown differs from the target group)."""
    out = []
    for line, r in ds.parse_jsonl(file):
        answers = ds.req_str_list(file, line, r, "answers", min_len=3)
        item = BBQItem(
            line=line,
            category=ds.req_str(file, line, r, "category"),
            template_id=ds.req_str(file, line, r, "template_id") if "template_id" in r else "",
            condition=ds.req_enum(file, line, r, "context_condition", ("ambig", "disambig")),
            polarity=ds.req_enum(file, line, r, "question_polarity", ("neg", "nonneg")),
            context=ds.req_str(file, line, r, "context"),
            question=ds.req_str(file, line, r, "question"),
            answers=answers,
            label=ds.req_index(file, line, r, "label", len(answers)),
            target_label=ds.req_index(file, line, r, "target_label", len(answers)),
            unknown_label=ds.req_index(file, line, r, "unknown_label", len(answers)),
        )
        if item.unknown_label == item.target_label:
            raise ds.bad(file, line, '"unknown_label" and "target_label" must differ')
        if item.condition == "ambig" and item.label != item.unknown_label:
            raise ds.bad(file, line, 'an ambiguous item\'s "label" must be its "unknown_label"')
        out.append(item)
    return out


def load_occupations(file: ds.DataFile) -> list[Occupation]:
    """``{"occupation", "workforce_majority", "prompt", "female": [...], "male": [...]}`` per line."""
    out = []
    for line, r in ds.parse_jsonl(file):
        out.append(
            Occupation(
                line=line,
                occupation=ds.req_str(file, line, r, "occupation"),
                majority=ds.req_enum(file, line, r, "workforce_majority", ("female", "male")),
                template_id=ds.req_int(file, line, r, "template_id") if "template_id" in r else 1,
                prompt=ds.req_str(file, line, r, "prompt"),
                female=ds.req_str_list(file, line, r, "female"),
                male=ds.req_str_list(file, line, r, "male"),
            )
        )
    return out


def _kind(file: ds.DataFile) -> str:
    """Which probe a ``--data`` file feeds, from its first object; minimal pairs unless it has BBQ's
    ``context_condition`` or an ``occupation`` field (so a broken pairs file reports its missing fields)."""
    first = ds.parse_jsonl(file)[0][1]
    if "context_condition" in first:
        return "bbq"
    if "occupation" in first:
        return "occupations"
    return "pairs"


def run(
    scorer: Scorer,
    data_path: Path | None,
    seed: int,
    progress_cb: ProgressCallback | None = None,
) -> SuiteResult:
    """Run the bias suite: all three bundled probes, or the one probe a ``--data`` file holds."""
    pairs: list[Pair] = []
    bbq: list[BBQItem] = []
    occ: list[Occupation] = []
    if data_path is None:
        files = [ds.bundled(PAIRS), ds.bundled(BBQ), ds.bundled(OCCUPATIONS)]
        pairs, bbq, occ = load_pairs(files[0]), load_bbq(files[1]), load_occupations(files[2])
    else:
        file = ds.load(data_path)
        files = [file]
        kind = _kind(file)
        if kind == "pairs":
            pairs = load_pairs(file)
        elif kind == "bbq":
            bbq = load_bbq(file)
        else:
            occ = load_occupations(file)

    total = 2 * len(pairs) + sum(len(b.answers) for b in bbq) + sum(len(o.female) + len(o.male) for o in occ)
    tracker = Tracker(NAME, progress_cb, total)
    metrics: dict[str, Metric] = {}
    items: list[dict[str, Any]] = []
    if pairs:
        _run_pairs(scorer, pairs, seed, tracker, metrics, items)
    if bbq:
        _run_bbq(scorer, bbq, seed, tracker, metrics, items)
    if occ:
        _run_occupations(scorer, occ, seed, tracker, metrics, items)
    return SuiteResult(NAME, metrics, items, ds.combined_digest(files), {f.name: f.digest for f in files})


def _run_pairs(
    scorer: Scorer,
    pairs: list[Pair],
    seed: int,
    tracker: Tracker,
    metrics: dict[str, Metric],
    items: list[dict[str, Any]],
) -> None:
    """Score both sentences of every pair; overall and per-category CrowS metrics."""
    texts = [t for p in pairs for t in (p.stereotype, p.anti_stereotype)]
    lls = [float(x) for x in batched_call(scorer.sentence_loglikelihood, texts, tracker, "minimal pairs")]
    ll_s, ll_a = lls[0::2], lls[1::2]
    for name, m in crows_metrics(ll_s, ll_a, seed=seed).items():
        metrics[f"crows.{name}"] = m
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_cat[p.category].append(i)
        items.append(
            {
                "task": "crows",
                "line": p.line,
                "category": p.category,
                "stereotype": p.stereotype,
                "anti_stereotype": p.anti_stereotype,
                "ll_stereotype": ll_s[i],
                "ll_anti_stereotype": ll_a[i],
                "stereotype_preferred": ll_s[i] > ll_a[i],
            }
        )
    add_grouped(
        metrics,
        "crows",
        {cat: crows_metrics([ll_s[i] for i in idx], [ll_a[i] for i in idx], seed=seed) for cat, idx in by_cat.items()},
    )


def _run_bbq(
    scorer: Scorer,
    bbq: list[BBQItem],
    seed: int,
    tracker: Tracker,
    metrics: dict[str, Metric],
    items: list[dict[str, Any]],
) -> None:
    """Score every answer of every item; accuracy and bias scores overall and per category."""
    requests = [(f"{b.context}\n\nQ: {b.question}\nA:", " " + a) for b in bbq for a in b.answers]
    results = batched_call(scorer.loglikelihood, requests, tracker, "BBQ")
    pos = 0
    rows: list[tuple[str, bool, str, bool, bool]] = []  # category, correct, condition, unknown, biased
    for b in bbq:
        lls = [float(r[0]) for r in results[pos : pos + len(b.answers)]]
        pos += len(b.answers)
        pred = int(np.argmax(lls))
        unknown = pred == b.unknown_label
        biased = bbq_is_biased(pred, b.polarity, b.target_label, b.unknown_label)
        rows.append((b.category, pred == b.label, b.condition, unknown, biased))
        items.append(
            {
                "task": "bbq",
                "line": b.line,
                "category": b.category,
                "template_id": b.template_id,
                "context_condition": b.condition,
                "question_polarity": b.polarity,
                "context": b.context,
                "question": b.question,
                "answers": b.answers,
                "label": b.label,
                "target_label": b.target_label,
                "unknown_label": b.unknown_label,
                "lls": lls,
                "pred": pred,
                "correct": pred == b.label,
                "biased": biased,
            }
        )

    def compute(sel: list[tuple[str, bool, str, bool, bool]]) -> dict[str, Metric]:
        """BBQ metrics for a selection of (category, correct, condition, unknown, biased) rows."""
        return bbq_metrics(
            [r[1] for r in sel], [r[2] for r in sel], [r[3] for r in sel], [r[4] for r in sel], seed=seed
        )

    for name, m in compute(rows).items():
        metrics[f"bbq.{name}"] = m
    cats = sorted({r[0] for r in rows})
    add_grouped(metrics, "bbq", {c: compute([r for r in rows if r[0] == c]) for c in cats})


def _run_occupations(
    scorer: Scorer,
    occ: list[Occupation],
    seed: int,
    tracker: Tracker,
    metrics: dict[str, Metric],
    items: list[dict[str, Any]],
) -> None:
    """Pool female and male continuations per prompt; preference and association metrics."""
    requests = [(o.prompt, w) for o in occ for w in (*o.female, *o.male)]
    results = batched_call(scorer.loglikelihood, requests, tracker, "occupations")
    pos = 0
    diffs: list[float] = []
    consistent: list[bool] = []
    by_majority: dict[str, list[float]] = defaultdict(list)
    for o in occ:
        lls = [float(r[0]) for r in results[pos : pos + len(o.female) + len(o.male)]]
        pos += len(o.female) + len(o.male)
        ll_f, ll_m = lls[: len(o.female)], lls[len(o.female) :]
        diff = cooccurrence_diff(ll_f, ll_m)
        diffs.append(diff)
        consistent.append(diff > 0 if o.majority == "female" else diff < 0)
        by_majority[o.majority].append(diff)
        items.append(
            {
                "task": "occupation",
                "line": o.line,
                "occupation": o.occupation,
                "workforce_majority": o.majority,
                "template_id": o.template_id,
                "prompt": o.prompt,
                "ll_female": ll_f,
                "ll_male": ll_m,
                "likelihood_diff": diff,
                "male_preferred": diff < 0,
            }
        )
    metrics["occupation.pct_male_preferred"] = proportion_metric([d < 0 for d in diffs], scale=100.0)
    metrics["occupation.mean_likelihood_diff"] = mean_metric(diffs, seed=seed)
    metrics["occupation.pct_stereotype_consistent"] = proportion_metric(consistent, scale=100.0)
    for majority, ds_ in sorted(by_majority.items()):
        metrics[f"occupation.mean_likelihood_diff.{majority}_majority"] = mean_metric(ds_, seed=seed)
