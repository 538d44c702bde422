"""Base or chat model, from GGUF metadata: the evidence the importer records."""

from __future__ import annotations

import pytest

from openzoo.formats.model_kind import base_model_note, is_instruction_tuned

GEMMA_BASE = {"general.name": "Gemma 3 270m", "general.basename": "gemma-3",
              "general.tags": ["gemma3", "gemma", "google", "text-generation"]}


@pytest.mark.parametrize(("meta", "template", "chat"), [
    (GEMMA_BASE, False, False),  # the embedded default model: no template, nothing says instruct
    (GEMMA_BASE, True, True),  # a template and no other evidence: a chat model
    ({**GEMMA_BASE, "general.finetune": "it"}, False, True),
    ({"general.name": "Llama 3.2 1B Instruct"}, False, True),
    ({"general.name": "Qwen2.5 0.5B", "general.finetune": "Chat"}, False, True),
    ({"general.name": "gemma-3-270m-pt"}, True, False),  # base checkpoints often carry a sibling's template
    ({"general.name": "Mistral 7B Base"}, True, False),
    ({"general.name": "SmolLM2 135M", "general.tags": ["base"]}, True, False),
    ({}, False, False),
])
def test_instruction_tuned(meta: dict[str, object], template: bool, chat: bool) -> None:
    assert is_instruction_tuned(meta, has_chat_template=template) is chat


def test_words_inside_names_do_not_count() -> None:
    # "it" in "Split", "pt" in "Optimus", "chat" in "chatter" are no evidence
    assert not is_instruction_tuned({"general.name": "Split Optimus chatterbox"}, has_chat_template=False)


def test_note_is_one_line_naming_the_way_to_a_chat_model() -> None:
    note = base_model_note("gemma3:270m")
    assert "\n" not in note and "base model" in note
    assert "openzoo finetune" in note and "openzoo import" in note and "--chat" in note
