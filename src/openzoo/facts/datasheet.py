"""Datasheets: a dataset's card, as Hugging Face dataset-card markdown answering Datasheets for Datasets.

Why this shape: a Hugging Face dataset card (``README.md`` with YAML front matter: ``pretty_name``,
``license``, ``size_categories``, ``configs``…) moves between zoos and the Hub unchanged, and its body
answers the seven question groups of "Datasheets for Datasets" (Gebru et al., 2021): motivation,
composition, collection process, preprocessing/cleaning/labeling, uses, distribution, maintenance.
Certification lists every group left unanswered as a problem (:func:`problems`), so a drafted
datasheet (:func:`draft`), which only states facts read from the data, is never mistaken for a
complete one. Parsing and rendering are :mod:`openzoo.facts.card`'s (deterministic, so digests hold).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openzoo.facts.card import ModelCard, parse_card
from openzoo.facts.datafiles import FileFacts
from openzoo.facts.licenses import UNKNOWN_ID, LicenseFacts, describe, to_hf

__all__ = ["QUESTIONS", "Question", "answered", "complete", "draft", "parse", "problems", "size_category"]


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    title: str  # the heading a drafted datasheet uses
    prompt: str  # the questions, shortened from the paper
    pattern: re.Pattern[str]  # headings that answer it (case-insensitive)


def _q(key: str, title: str, prompt: str, pattern: str) -> Question:
    return Question(key, title, prompt, re.compile(pattern, re.I))


QUESTIONS: tuple[Question, ...] = (
    _q("motivation", "Motivation",
       "For what purpose was the dataset created? Who created it, and who funded it?", r"motivation"),
    _q("composition", "Composition",
       "What do the instances represent? How many are there, is anything missing, and does it hold "
       "confidential, personal or offensive content?", r"composition"),
    _q("collection", "Collection process",
       "How was the data acquired, by whom and over what time? Were the people involved told, and did they "
       "consent?", r"collection"),
    _q("preprocessing", "Preprocessing, cleaning and labeling",
       "Was the data preprocessed, cleaned or labeled? Is the raw data kept?", r"preprocess|cleaning|label"),
    _q("uses", "Uses",
       "What has the dataset been used for, what else could it be used for, and what should it not be used for?",
       r"\buses?\b"),
    _q("distribution", "Distribution",
       "How is the dataset distributed, under which license, and with what restrictions?", r"distribut"),
    _q("maintenance", "Maintenance",
       "Who maintains the dataset, how are errors reported, and will it be updated?", r"mainten"),
)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_PROMPT_LINE = re.compile(r"^\s*_[^\n]*_\s*$", re.M)
_PLACEHOLDERS = {"not provided", "none", "unknown", "todo", "tbd", "n/a", "more information needed"}
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def parse(text: str) -> ModelCard:
    """A datasheet from README.md text (front matter optional; bad YAML is an InvalidRequest)."""
    return parse_card(text)


def size_category(rows: int) -> str:
    """The Hugging Face ``size_categories`` value for a row count."""
    return next((label for limit, label in _SIZES if rows < limit), "n>1B")


def _sections(body: str) -> list[tuple[str, str]]:
    """(heading, text up to the next heading of the same or a higher level) for every heading."""
    heads = list(_HEADING.finditer(body))
    out = []
    for i, head in enumerate(heads):
        level = len(head.group(1))
        end = next((h.start() for h in heads[i + 1:] if len(h.group(1)) <= level), len(body))
        out.append((head.group(2).strip(), body[head.end():end]))
    return out


def _is_answer(text: str) -> bool:
    content = _HEADING.sub("", _PROMPT_LINE.sub("", text)).strip()
    return bool(content) and content.lower().rstrip(".") not in _PLACEHOLDERS


def answered(card: ModelCard) -> dict[str, bool]:
    """Which question groups the body answers (a heading that matches, with text that is no placeholder)."""
    sections = _sections(card.body)
    return {q.key: any(q.pattern.search(title) and _is_answer(text) for title, text in sections)
            for q in QUESTIONS}


def problems(card: ModelCard, license: LicenseFacts) -> list[str]:
    """What certification reports about a datasheet: unanswered questions and the data license."""
    done = answered(card)
    out = [f"datasheet question '{q.title}' is not answered" for q in QUESTIONS if not done[q.key]]
    if license.id == UNKNOWN_ID:
        out.append("license is unknown")
    elif not (license.mof_open and license.use_restrictions is None):
        out.append(f"license {license.id} is not an open data license")
    if not card.metadata.get("license"):
        out.append("front matter has no license")
    return out


def _front(card: ModelCard, pretty_name: str, files: Sequence[FileFacts], license: LicenseFacts) -> dict[str, Any]:
    meta = dict(card.metadata)
    meta.setdefault("pretty_name", pretty_name)
    if license.id != UNKNOWN_ID and not meta.get("license"):
        hf_license, hf_name = to_hf(license)
        meta["license"] = hf_license
        if hf_name:
            meta["license_name"] = hf_name
    meta.setdefault("size_categories", [size_category(sum(f.rows for f in files))])
    paths: str | list[str] = files[0].name if len(files) == 1 else [f.name for f in files]
    meta.setdefault("configs", [{"config_name": "default", "data_files": [{"split": "train", "path": paths}]}])
    return meta


def complete(card: ModelCard, pretty_name: str, files: Sequence[FileFacts], license: LicenseFacts) -> ModelCard:
    """An imported dataset card with the front matter the zoo relies on filled in where it is missing
    (pretty name, license, size category, the data files as the ``default`` config); the body is kept."""
    return ModelCard(_front(card, pretty_name, files, license), card.body)


def _file_line(f: FileFacts) -> str:
    columns = ", ".join(f"`{c.name}` ({c.type})" for c in f.columns[:32])
    more = f", and {len(f.columns) - 32} more" if len(f.columns) > 32 else ""
    return f"- `{f.name}`: {f.format}, {f.rows} rows, {f.size} bytes, `{f.digest}`; columns: {columns}{more}"


def draft(pretty_name: str, files: Sequence[FileFacts], license: LicenseFacts) -> ModelCard:
    """A first datasheet from the data: the facts under ``## Files``, every question "Not provided."
    except Distribution, which the declared license answers."""
    lines = [f"# Datasheet: {pretty_name}", "",
             'Written in the style of "Datasheets for Datasets" (Gebru et al., 2021). Drafted by openzoo from '
             'the data; every question still marked "Not provided." needs an answer before certification.', ""]
    for q in QUESTIONS:
        answer = "Not provided."
        if q.key == "distribution" and license.id != UNKNOWN_ID:
            answer = f"Distributed by this zoo under {license.id}: {describe(license)}."
        lines += [f"## {q.title}", "", f"_{q.prompt}_", "", answer, ""]
    lines += ["## Files", "", *(_file_line(f) for f in files), ""]
    return ModelCard({**_front(ModelCard(), pretty_name, files, license), "tags": ["openzoo"]}, "\n".join(lines))
