"""Training data: JSONL files of ``{"text": ...}`` or chat ``{"messages": [...]}`` records.

Every line is checked before any training starts, so a bad line is reported with its file and line
number while nothing has been computed or stored yet. Chat records are rendered with the base model's
own chat template, so the model learns the exact prompt form it is served with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from openzoo.errors import InvalidData, NotFound

__all__ = ["Dataset", "bundled", "load_jsonl", "shard"]

_ROLES = {"system", "user", "assistant", "tool"}
Renderer = Callable[[Sequence[Mapping[str, Any]]], str]


@dataclass(frozen=True, slots=True)
class Dataset:
    """The texts of one data file, ready to tokenize, with the file's digest for the lineage."""

    path: Path
    texts: tuple[str, ...]
    digest: str
    kind: str  # text | chat

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path.name, "digest": self.digest, "records": len(self.texts), "kind": self.kind}


def _fail(path: Path, line: int, reason: str) -> InvalidData:
    return InvalidData(f"{path}:{line}: {reason}", hint=f"fix line {line} of {path.name}")


def _check_messages(path: Path, line: int, messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _fail(path, line, '"messages" must be a non-empty list')
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(path, line, f"messages[{i}] must be an object")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise _fail(path, line, f"messages[{i}].role must be one of system, user, assistant, tool")
        if not isinstance(content, str):
            raise _fail(path, line, f"messages[{i}].content must be a string")
        checked.append({"role": str(role), "content": content})
    if not any(m["role"] == "assistant" for m in checked):
        raise _fail(path, line, "a chat record needs at least one assistant message to learn from")
    return checked


def load_jsonl(path: Path, render_chat: Renderer | None = None) -> Dataset:
    """Read and validate ``path``; chat records are rendered with ``render_chat``.

    Raises :class:`InvalidData` naming the file and line for the first bad line, and
    :class:`NotFound` when the file does not exist.
    """
    if not path.is_file():
        raise NotFound(f"no such data file: {path}", hint="pass a JSONL file with --data")
    raw = path.read_bytes()
    texts: list[str] = []
    kinds: set[str] = set()
    for number, line in enumerate(raw.decode("utf-8", errors="strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise _fail(path, number, f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
        if not isinstance(record, dict):
            raise _fail(path, number, 'each line must be an object with "text" or "messages"')
        if "text" in record:
            text = record["text"]
            if not isinstance(text, str) or not text.strip():
                raise _fail(path, number, '"text" must be a non-empty string')
            texts.append(text)
            kinds.add("text")
        elif "messages" in record:
            messages = _check_messages(path, number, record["messages"])
            if render_chat is None:
                raise _fail(path, number, "chat records need a model chat template")
            texts.append(render_chat(messages))
            kinds.add("chat")
        else:
            raise _fail(path, number, 'each line must be an object with "text" or "messages"')
    if not texts:
        raise InvalidData(f"{path}: no records", hint="add at least one JSONL line")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Dataset(path, tuple(texts), digest, "+".join(sorted(kinds)))


def shard(dataset: Dataset, index: int, count: int) -> Dataset:
    """Every ``count``-th record starting at ``index`` (for splitting one file among data owners)."""
    texts = dataset.texts[index::count]
    digest = "sha256:" + hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return Dataset(dataset.path, texts, digest, dataset.kind)


def bundled(name: str = "zoo_log.jsonl") -> Path:
    """Path of an example file shipped with openzoo (``zoo_log.jsonl``, ``zoo_log_eval.jsonl``, ``zoo_chat.jsonl``)."""
    path = Path(str(resources.files("openzoo.finetune") / "data" / name))
    if not path.is_file():
        raise NotFound(f"no bundled data file {name}")
    return path
