"""Base (completion) model or instruction-tuned (chat) model, decided once from a GGUF's metadata.

Why it matters: a base model continues text; wrapped in a chat template it answers a question with more
questions, forum threads or loops. ``openzoo run`` and the web playground therefore prompt a base model
as a completion (no template) and say so, and offer a chat model's path (fine-tune one, import one).

The decision is recorded in the model's config at import (``instruction_tuned``), so it is stable for the
model's life and travels with it. Evidence, strongest first:

1. ``general.finetune`` / ``general.name`` / ``general.tags`` naming instruction tuning (``it``,
   ``instruct``, ``chat``, ``sft``, ``rlhf``, ``dpo``) → chat model; naming a pretrained base
   (``pt``, ``base``, ``pretrained``) → base model. Model converters write these from the card.
2. Otherwise a chat template in the GGUF → chat model, none → base model. (A template alone is weak
   evidence: base checkpoints often ship their sibling's tokenizer config, so rule 1 wins.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["BASE_NOTE", "base_model_note", "is_instruction_tuned"]

_CHAT = re.compile(r"(?:^|[-_ .])(it|instruct|instruction|chat|sft|rlhf|dpo|assistant)(?:$|[-_ .\d])", re.I)
_BASE = re.compile(r"(?:^|[-_ .])(pt|base|pretrained|pretrain)(?:$|[-_ .\d])", re.I)

#: The one line ``openzoo run`` prints (stderr) for a base model; ``{name}`` is the model's name.
BASE_NOTE = ("{name} is a base model: it continues your text as a completion, it does not follow "
             "instructions. For a chat model, fine-tune one on chat records ('openzoo finetune {name} --data "
             "FILE --name NEW') or import one ('openzoo import FILE.gguf --name NEW'); --chat uses a chat "
             "template anyway.")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def is_instruction_tuned(metadata: Mapping[str, Any], *, has_chat_template: bool) -> bool:
    """True for a chat (instruction-tuned) model, False for a base model (see the module's rules)."""
    finetune = _texts(metadata.get("general.finetune"))
    names = finetune + _texts(metadata.get("general.name")) + _texts(metadata.get("general.basename"))
    tags = _texts(metadata.get("general.tags"))
    for text in [*names, *tags]:
        if _CHAT.search(text):
            return True
    for text in [*names, *tags]:
        if _BASE.search(text):
            return False
    return has_chat_template


def base_model_note(name: str) -> str:
    """The one-line notice for base model ``name``."""
    return BASE_NOTE.format(name=name)
