"""Training data validation: every bad line is named with its file and line number, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openzoo.errors import InvalidData, NotFound
from openzoo.finetune.data import bundled, load_jsonl, shard


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_records_and_digest(tmp_path: Path) -> None:
    data = load_jsonl(write(tmp_path / "d.jsonl", ['{"text": "one"}', "", '{"text": "two"}']))
    assert data.texts == ("one", "two")
    assert data.kind == "text"
    assert data.digest.startswith("sha256:") and len(data.digest) == 71


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', 'with "text" or "messages"'),
    ('{"prompt": "x"}', 'with "text" or "messages"'),
    ('{"text": ""}', "non-empty string"),
    ('{"text": 3}', "non-empty string"),
    ('{"messages": []}', "non-empty list"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "role must be"),
    ('{"messages": [{"role": "user", "content": 1}]}', "content must be a string"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "assistant"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path / "bad.jsonl", ['{"text": "fine"}', '{"text": "also fine"}', line, '{"text": "x"}'])
    with pytest.raises(InvalidData) as err:
        load_jsonl(path, lambda messages: "rendered")
    assert str(err.value).startswith(str(path) + ":3: ") and reason in str(err.value)
    assert "line 3" in err.value.hint


def test_chat_records_use_the_renderer(tmp_path: Path) -> None:
    record = {"messages": [{"role": "user", "content": "Where is Miso?"},
                           {"role": "assistant", "content": "In the bamboo grove."}]}
    path = write(tmp_path / "chat.jsonl", [json.dumps(record)])
    seen = []
    data = load_jsonl(path, lambda messages: seen.append(messages) or "<user>Where is Miso?<model>In the bamboo grove.")
    assert data.kind == "chat"
    assert data.texts == ("<user>Where is Miso?<model>In the bamboo grove.",)
    assert seen[0][1] == {"role": "assistant", "content": "In the bamboo grove."}


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidData, match="no records"):
        load_jsonl(write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(NotFound):
        load_jsonl(tmp_path / "nope.jsonl")


def test_bundled_examples_are_valid_and_disjoint() -> None:
    train = load_jsonl(bundled("zoo_log.jsonl"))
    held = load_jsonl(bundled("zoo_log_eval.jsonl"))
    chat = load_jsonl(bundled("zoo_chat.jsonl"), lambda m: " ".join(x["content"] for x in m))
    assert len(train.texts) >= 200 and len(held.texts) >= 40 and chat.kind == "chat"
    assert not set(train.texts) & set(held.texts)


def test_shards_split_records_without_overlap(tmp_path: Path) -> None:
    data = load_jsonl(write(tmp_path / "d.jsonl", [json.dumps({"text": f"t{i}"}) for i in range(10)]))
    parts = [shard(data, i, 3) for i in range(3)]
    assert sorted(t for p in parts for t in p.texts) == sorted(data.texts)
    assert len({p.digest for p in parts}) == 3
