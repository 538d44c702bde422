"""Quality: how well the model predicts text, and multiple-choice accuracy.

Perplexity follows lm-eval's ``loglikelihood_rolling`` tasks (wikitext): corpus log-likelihood with
rolling windows, then word/byte perplexity and bits per byte over the summed counts. Multiple choice
follows lm-eval's ARC config: context ``"Question: {question}\\nAnswer:"`` (or ``query`` verbatim, as
hellaswag-style tasks), one request per choice with continuation ``" " + choice``; acc, acc_norm,
acc_bytes. Bundled data: ``quality_corpus.txt`` and ``quality_mc.jsonl`` (see their datasheets).
With ``--data``: a ``.txt`` corpus, a ``.jsonl`` of ``{"text"}`` documents, or a ``.jsonl``
multiple-choice task.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo.audit import datasets as ds
from openzoo.audit.metrics import (
    Metric,
    byte_count,
    corpus_metrics,
    multiple_choice,
    proportion_metric,
    word_count,
)
from openzoo.audit.scoring import Scorer
from openzoo.audit.suites.base import ProgressCallback, SuiteResult, Tracker, batched_call

NAME = "quality"
CORPUS = "quality_corpus.txt"
TASK = "quality_mc.jsonl"


@dataclass(frozen=True, slots=True)
class MCItem:
    """One multiple-choice item: the context the choices continue, the choices and the gold index."""

    line: int
    context: str
    choices: list[str]
    gold: int
    category: str


def load_corpus(file: ds.DataFile) -> list[str]:
    """Documents of a corpus: paragraphs of a ``.txt``, or ``text`` fields of a ``.jsonl``."""
    if file.name.endswith(".jsonl"):
        docs = [ds.req_str(file, line, row, "text") for line, row in ds.parse_jsonl(file)]
        return docs
    return ds.parse_paragraphs(file)


def load_mc(file: ds.DataFile) -> list[MCItem]:
    """Validate a multiple-choice task in lm-eval's schema: ``query`` or ``question``, ``choices``,
    ``gold`` (``answer_idx`` accepted as an alias), optional ``category``."""
    items = []
    for line, row in ds.parse_jsonl(file):
        if "query" in row:
            context = ds.req_str(file, line, row, "query")
        elif "question" in row:
            context = f"Question: {ds.req_str(file, line, row, 'question')}\nAnswer:"
        else:
            raise ds.bad(file, line, 'missing field "question" (or "query")')
        choices = ds.req_str_list(file, line, row, "choices", min_len=2)
        key = "gold" if "gold" in row or "answer_idx" not in row else "answer_idx"
        gold = ds.req_index(file, line, row, key, len(choices))
        category = ds.req_str(file, line, row, "category") if "category" in row else "all"
        items.append(MCItem(line, context, choices, gold, category))
    return items


def _is_corpus_jsonl(file: ds.DataFile) -> bool:
    """A JSONL of ``{"text"}`` objects is a corpus; anything else is read as a task."""
    rows = ds.parse_jsonl(file)
    return "text" in rows[0][1] and "choices" not in rows[0][1]


def run(
    scorer: Scorer,
    data_path: Path | None,
    seed: int,
    progress_cb: ProgressCallback | None = None,
) -> SuiteResult:
    """Run the quality suite on the bundled data, or on one ``--data`` file (corpus or task)."""
    files: list[ds.DataFile] = []
    docs: list[str] = []
    mc: list[MCItem] = []
    if data_path is None:
        corpus_file, task_file = ds.bundled(CORPUS), ds.bundled(TASK)
        docs, mc = load_corpus(corpus_file), load_mc(task_file)
        files = [corpus_file, task_file]
    else:
        file = ds.load(data_path)
        files = [file]
        if file.name.endswith(".txt") or (file.name.endswith(".jsonl") and _is_corpus_jsonl(file)):
            docs = load_corpus(file)
        elif file.name.endswith(".jsonl"):
            mc = load_mc(file)
        else:
            raise ds.bad(file, None, "quality data must be a .txt corpus or a .jsonl file")

    n_requests = sum(len(i.choices) for i in mc)
    tracker = Tracker(NAME, progress_cb, len(docs) + n_requests)
    metrics: dict[str, Metric] = {}
    items: list[dict[str, Any]] = []

    if docs:
        lls = batched_call(scorer.rolling_loglikelihood, docs, tracker, "perplexity", size=4)
        lls = [float(x) for x in lls]
        for name, m in corpus_metrics(lls, docs, seed=seed).items():
            metrics[f"perplexity.{name}"] = m
        for i, (doc, ll) in enumerate(zip(docs, lls, strict=True)):
            items.append({"task": "perplexity", "doc": i, "words": word_count(doc), "bytes": byte_count(doc), "ll": ll})

    if mc:
        requests = [(it.context, " " + c) for it in mc for c in it.choices]
        results = batched_call(scorer.loglikelihood, requests, tracker, "multiple choice")
        pos = 0
        per_cat: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        accs: list[bool] = []
        norms: list[bool] = []
        bytes_: list[bool] = []
        chance: list[float] = []
        for it in mc:
            lls = [float(r[0]) for r in results[pos : pos + len(it.choices)]]
            pos += len(it.choices)
            sc = multiple_choice(lls, it.choices, it.gold)
            accs.append(sc.acc)
            norms.append(sc.acc_norm)
            bytes_.append(sc.acc_bytes)
            chance.append(1 / len(it.choices))
            per_cat[it.category].append((sc.acc, sc.acc_norm))
            items.append(
                {
                    "task": "mc",
                    "line": it.line,
                    "category": it.category,
                    "gold": it.gold,
                    "lls": lls,
                    "pred": sc.pred,
                    "pred_norm": sc.pred_norm,
                    "acc": sc.acc,
                    "acc_norm": sc.acc_norm,
                    "acc_bytes": sc.acc_bytes,
                }
            )
        metrics["mc.acc"] = proportion_metric(accs)
        metrics["mc.acc_norm"] = proportion_metric(norms)
        metrics["mc.acc_bytes"] = proportion_metric(bytes_)
        metrics["mc.chance"] = Metric(sum(chance) / len(chance), n=len(chance))
        for cat, pairs in sorted(per_cat.items()):
            metrics[f"mc.acc.{cat}"] = proportion_metric([a for a, _ in pairs])
            metrics[f"mc.acc_norm.{cat}"] = proportion_metric([b for _, b in pairs])

    return SuiteResult(NAME, metrics, items, ds.combined_digest(files), {f.name: f.digest for f in files})
