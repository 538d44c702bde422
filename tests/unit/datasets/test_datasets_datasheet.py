"""Datasheets: drafted from the data, imported from Hugging Face dataset cards, rendered back, and checked
against the Datasheets-for-Datasets questions."""

from __future__ import annotations

from pathlib import Path

from openzoo.facts import datasheet as sheets
from openzoo.facts.datafiles import Column, FileFacts
from openzoo.facts.licenses import UNKNOWN, lookup

FILES = (FileFacts("train.jsonl", "jsonl", "sha256:" + "a" * 64, 120, 3, (Column("text", "string"),)),
         FileFacts("extra.csv", "csv", "sha256:" + "b" * 64, 40, 2, (Column("text", "string"),)))
AUDIT_DATA = Path(sheets.__file__).parents[1] / "audit" / "data"

HF_CARD = """---
pretty_name: Keeper's log
license:
- cc-by-4.0
language:
- en
task_categories:
- text-generation
size_categories:
- n<1K
---

# Keeper's log

## Motivation
Written to fine-tune small models on a distinctive distribution.

## Composition
Three hundred one-line notes about sixteen fictional animals.

### Personal data
None: every animal and keeper is invented.

## Collection process
Generated from word lists with a fixed seed.

## Preprocessing / cleaning / labeling
Not provided.

## Uses
Fine-tuning demos. Not for anything about real animals.

## Distribution
CC-BY-4.0, from the openzoo repository.

## Maintenance
The openzoo authors; report problems as issues.
"""


def test_draft_states_facts_and_leaves_questions_open() -> None:
    card = sheets.draft("me/logs:v1", FILES, lookup("CC-BY-4.0"))
    meta = card.metadata
    assert meta["pretty_name"] == "me/logs:v1" and meta["license"] == "cc-by-4.0"
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default",
                                "data_files": [{"split": "train", "path": ["train.jsonl", "extra.csv"]}]}]
    assert "`train.jsonl`: jsonl, 3 rows" in card.body and FILES[0].digest in card.body
    done = sheets.answered(card)
    assert done["distribution"] and not any(v for k, v in done.items() if k != "distribution")
    problems = sheets.problems(card, lookup("CC-BY-4.0"))
    assert len(problems) == 6 and "datasheet question 'Motivation' is not answered" in problems
    assert sheets.parse(card.render()) == card  # render and parse round-trip exactly


def test_unknown_or_closed_licenses_are_problems() -> None:
    card = sheets.draft("x", FILES[:1], UNKNOWN)
    assert "license is unknown" in sheets.problems(card, UNKNOWN)
    assert "front matter has no license" in sheets.problems(card, UNKNOWN)
    assert not sheets.answered(card)["distribution"]
    nc = lookup("CC-BY-NC-4.0")
    assert "license CC-BY-NC-4.0 is not an open data license" in sheets.problems(card, nc)
    assert not any("license" in p for p in sheets.problems(sheets.draft("x", FILES, lookup("CDLA-Permissive-2.0")),
                                                            lookup("CDLA-Permissive-2.0")))


def test_hugging_face_card_imports_and_exports() -> None:
    imported = sheets.parse(HF_CARD)
    assert imported.metadata["license"] == "cc-by-4.0"  # a one-item list becomes the string
    assert imported.license_facts().id == "CC-BY-4.0"
    done = sheets.answered(imported)
    assert {k for k, v in done.items() if not v} == {"preprocessing"}
    card = sheets.complete(imported, "me/logs:v1", FILES[:1], lookup("CC-BY-4.0"))
    assert card.body == imported.body
    assert card.metadata["pretty_name"] == "Keeper's log" and card.metadata["task_categories"] == ["text-generation"]
    assert card.metadata["configs"][0]["data_files"] == [{"split": "train", "path": "train.jsonl"}]
    exported = card.render()
    assert exported.startswith("---\npretty_name: Keeper's log\nlicense: cc-by-4.0\n")
    assert sheets.parse(exported) == card


def test_subsections_answer_their_question() -> None:
    card = sheets.parse("## Uses\n\n### Intended\nDemos.\n\n## Maintenance\n\n_Who?_\n\nTODO\n")
    done = sheets.answered(card)
    assert done["uses"] and not done["maintenance"]


def test_bundled_audit_datasheets_answer_most_questions() -> None:
    card = sheets.parse((AUDIT_DATA / "DATASHEET-bias_pairs.md").read_text())
    done = sheets.answered(card)
    assert done["motivation"] and done["composition"] and done["collection"] and done["uses"]
    assert done["maintenance"]


def test_size_categories() -> None:
    assert [sheets.size_category(n) for n in (0, 999, 1000, 50_000, 2_000_000_000)] == [
        "n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "n>1B"]
