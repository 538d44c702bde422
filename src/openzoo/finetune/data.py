"""Training data: ``{"text": ...}`` or chat ``{"messages": [...]}`` records, from a JSONL file or a stored
dataset of any format (a ``text`` or ``messages`` column).

Every line is checked before any training starts, so a bad line is reported with its file and line
number while nothing has been computed or stored yet. Chat records are rendered with the base model's
own chat template, so the model learns the exact prompt form it is served with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openzoo.errors import InvalidData, NotFound
from openzoo.facts.datafiles import iter_json_lines, sha256_file

if TYPE_CHECKING:
    from openzoo.datasets.service import ImportPlan

__all__ = ["DataSource", "Dataset", "bundled", "load_jsonl", "load_rows", "shard"]

_ROLES = {"system", "user", "assistant", "tool"}
Renderer = Callable[[Sequence[Mapping[str, Any]]], str]


@dataclass(frozen=True, slots=True)
class DataSource:
    """The stored dataset training data comes from: its name, manifest digest and data digest. ``plan`` is
    set while a data file given by path is not stored yet (it is imported when the fine-tune succeeds)."""

    dataset: str
    manifest_digest: str
    data_digest: str
    license: str | None = None
    plan: ImportPlan | None = None

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "manifest_digest": self.manifest_digest, "data_digest": self.data_digest}


@dataclass(frozen=True, slots=True)
class Dataset:
    """The texts of the training data, ready to tokenize, with the data's digest for the lineage."""

    path: Path
    texts: tuple[str, ...]
    digest: str
    kind: str  # text | chat
    file: str = ""  # the name the lineage shows (the path's name when empty)
    source: DataSource | None = None

    @property
    def label(self) -> str:
        return self.file or self.path.name

    def to_json(self) -> dict[str, Any]:
        out = {"file": self.label, "digest": self.digest, "records": len(self.texts), "kind": self.kind}
        return {**out, **self.source.to_json()} if self.source is not None else out


def _fail(label: str, line: int, reason: str) -> InvalidData:
    return InvalidData(f"{label}:{line}: {reason}", hint=f"fix line {line} of {Path(label).name}")


def _check_messages(label: str, line: int, messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _fail(label, line, '"messages" must be a non-empty list')
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(label, line, f"messages[{i}] must be an object")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise _fail(label, line, f"messages[{i}].role must be one of system, user, assistant, tool")
        if not isinstance(content, str):
            raise _fail(label, line, f"messages[{i}].content must be a string")
        checked.append({"role": str(role), "content": content})
    if not any(m["role"] == "assistant" for m in checked):
        raise _fail(label, line, "a chat record needs at least one assistant message to learn from")
    return checked


def _texts(rows: Iterable[tuple[str, int, Any]], render_chat: Renderer | None) -> tuple[list[str], set[str]]:
    """Training texts from (file label, line, record) rows: ``{"text"}`` as it is, ``{"messages"}`` rendered."""
    texts: list[str] = []
    kinds: set[str] = set()
    for label, number, record in rows:
        if not isinstance(record, dict):
            raise _fail(label, number, 'each line must be an object with "text" or "messages"')
        if "text" in record:
            text = record["text"]
            if not isinstance(text, str) or not text.strip():
                raise _fail(label, number, '"text" must be a non-empty string')
            texts.append(text)
            kinds.add("text")
        elif "messages" in record:
            messages = _check_messages(label, number, record["messages"])
            if render_chat is None:
                raise _fail(label, number, "chat records need a model chat template")
            texts.append(render_chat(messages))
            kinds.add("chat")
        else:
            raise _fail(label, number, 'each line must be an object with "text" or "messages"')
    return texts, kinds


def load_rows(rows: Iterable[tuple[str, int, Any]], render_chat: Renderer | None, *, path: Path, digest: str,
              file: str, source: DataSource | None = None) -> Dataset:
    """Training data from the rows of a dataset (any format: a ``text`` or ``messages`` column)."""
    texts, kinds = _texts(rows, render_chat)
    if not texts:
        raise InvalidData(f"{file}: no records", hint="add at least one record")
    return Dataset(path, tuple(texts), digest, "+".join(sorted(kinds)), file, source)


def load_jsonl(path: Path, render_chat: Renderer | None = None) -> Dataset:
    """Read and validate ``path``; chat records are rendered with ``render_chat``.

    Raises :class:`InvalidData` naming the file and line for the first bad line, and
    :class:`NotFound` when the file does not exist.
    """
    if not path.is_file():
        raise NotFound(f"no such data file: {path}", hint="pass a JSONL file with --data")
    label = str(path)
    texts, kinds = _texts(((label, n, v) for n, v in iter_json_lines(path, label)), render_chat)
    if not texts:
        raise InvalidData(f"{path}: no records", hint="add at least one JSONL line")
    return Dataset(path, tuple(texts), sha256_file(path), "+".join(sorted(kinds)))


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
