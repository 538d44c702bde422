"""Model cards: parse/render round trip, GGUF pre-fill, license mapping and sanitized HTML."""

from __future__ import annotations

import pytest

from openzoo.errors import InvalidRequest
from openzoo.facts.card import ModelCard, card_from_metadata, draft_body, parse_card, render_card, render_html
from openzoo.facts.licenses import describe, lookup

HF_README = """---
license: apache-2.0
language:
- en
- fr
base_model: Qwen/Qwen2.5-0.5B
datasets:
- HuggingFaceFW/fineweb
pipeline_tag: text-generation
tags:
- chat
model-index:
- name: tiny
  results:
  - task:
      type: text-generation
    dataset:
      name: MMLU
      type: cais/mmlu
    metrics:
    - type: accuracy
      value: 47.5
---

# Tiny

Some *text*.

## Evaluation results

| task | score |
|------|-------|
| MMLU | 47.5 |
"""

GEMMA_GGUF = {
    "general.architecture": "gemma3",
    "general.name": "Gemma 3 270m It",
    "general.size_label": "270M",
    "general.license": "gemma",
    "general.base_model.count": 1,
    "general.base_model.0.name": "Gemma 3 270m",
    "general.base_model.0.organization": "Google",
    "general.base_model.0.repo_url": "https://huggingface.co/google/gemma-3-270m",
    "general.tags": ["gemma3", "gemma", "google"],
    "general.languages": ["en"],
    "general.quantization_version": 2,
}


def test_roundtrip() -> None:
    card = parse_card(HF_README)
    assert card.metadata["base_model"] == ["Qwen/Qwen2.5-0.5B"]
    assert card.metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == 47.5
    assert card.body.startswith("# Tiny")
    text = render_card(card)
    again = parse_card(text)
    assert again == card and render_card(again) == text
    assert card.digest() == again.digest() and card.digest().startswith("sha256:")
    assert card.license_facts().id == "Apache-2.0"
    assert card.sections() == ["Tiny", "Evaluation results"]


def test_no_front_matter_and_errors() -> None:
    plain = parse_card("# Just markdown\n")
    assert plain.metadata == {} and render_card(plain) == "# Just markdown\n"
    assert parse_card("\ufeff---\r\nlicense: mit\r\n---\r\nbody\r\n").body == "body\n"
    for bad in (
        "---\nlicense: [unclosed\n---\n",
        "---\n- a list\n---\n",
        "---\ntags: {a: 1}\n---\n",
        "---\nlicense: 5\n---\n",
        "---\nmodel-index: 3\n---\n",
    ):
        with pytest.raises(InvalidRequest):
            parse_card(bad)
    with pytest.raises(InvalidRequest):
        render_card(ModelCard({"tags": [1]}, ""))


def test_gemma_card_from_gguf() -> None:
    card = card_from_metadata(GEMMA_GGUF, None)
    assert card.metadata["license"] == "gemma"
    assert card.metadata["base_model"] == ["google/gemma-3-270m"]
    assert card.metadata["language"] == ["en"]
    assert card.metadata["tags"] == ["gemma3", "gemma", "google", "gguf"]
    assert card.license_facts().id == "LicenseRef-Gemma"
    assert "restricted license (Gemma Terms of Use), not open source" in card.body
    assert card.body.startswith("# Gemma 3 270m It")
    assert "Evaluation results" in card.sections()
    assert parse_card(card.render()) == card


def test_draft_body_marks_the_graded_sections_as_not_provided() -> None:
    body = draft_body("T", None, ["- a", "- b"], "MIT.\n\nMore.")
    assert body == ("# T\n\n## Model details\n\n- a\n- b\n\n## License\n\nMIT.\n\nMore.\n\n"
                    "## Evaluation results\n\nNot provided.\n\n## Training data\n\nNot provided.\n")
    assert draft_body("T", "Intro.", [], "L").startswith("# T\n\nIntro.\n\n## Model details\n\n\n## License")
    card = card_from_metadata({"general.name": "Q", "general.description": "About Q."}, "MIT")
    assert card.body == draft_body("Q", "About Q.", ["- Architecture: unknown"], describe(lookup("MIT")))
    assert card.sections() == ["Q", "Model details", "License", "Evaluation results", "Training data"]


def test_other_licenses_in_front_matter() -> None:
    card = card_from_metadata({"general.name": "Q"}, "LicenseRef-Qwen")
    assert (card.metadata["license"], card.metadata["license_name"]) == ("other", "qwen")
    assert card.license_facts().id == "LicenseRef-Qwen"
    assert card_from_metadata({}, None).metadata["license"] == "unknown"
    assert card_from_metadata({}, "MIT", tags=["x"]).metadata["tags"] == ["x", "gguf"]


def test_html_is_sanitized() -> None:
    pytest.importorskip("nh3")  # optional until nh3 is a declared dependency
    html = render_html(
        "# T\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://ok.example)\n\n"
        "<img src=x onerror=alert(1)>\n\n| a |\n|---|\n| b |\n"
    )
    assert "<script" not in html and "<img src=x" not in html  # raw HTML is escaped, never passed
    assert 'href="javascript' not in html
    assert 'href="https://ok.example"' in html and "nofollow" in html
    assert "<table>" in html and "<h1>T</h1>" in html
    assert parse_card(HF_README).html().count("<td>") == 2
