"""Data file parsing: every row read, rows and columns recorded, every kind of bad input a typed error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openzoo.audit import datasets as audit_data
from openzoo.errors import DataTooLarge, DataTypeMismatch, InvalidData, MalformedData, UnsupportedDataFormat
from openzoo.facts import datafiles as formats
from openzoo.facts.datafiles import check_filename, clean_filename, data_digest, detect_format, inspect_file


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_jsonl_rows_columns_and_digest(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "n": 1}\n\n{"text": "b", "n": 2.5, "tags": ["x"]}\n'
                                       '{"text": null, "n": 3}\n')
    facts = inspect_file(path, "jsonl", "d.jsonl")
    assert facts.rows == 3 and facts.format == "jsonl" and facts.size == path.stat().st_size
    assert [(c.name, c.type) for c in facts.columns] == [("text", "string"), ("n", "number"), ("tags", "array")]
    assert facts.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_parquet_and_text(tmp_path: Path) -> None:
    csv = inspect_file(write(tmp_path / "d.csv", '\ufefftext,label\n"hello, world",1\n\nbye,0\n'), "csv", "d.csv")
    assert csv.rows == 2 and [c.name for c in csv.columns] == ["text", "label"]
    pq.write_table(pa.table({"text": ["x", "y", "z"], "score": [1.0, None, 2.0]}), tmp_path / "d.parquet",
                   row_group_size=2)
    parquet = inspect_file(tmp_path / "d.parquet", "parquet", "d.parquet")
    assert parquet.rows == 3 and [(c.name, c.type) for c in parquet.columns] == [("text", "string"),
                                                                                 ("score", "double")]
    text = inspect_file(write(tmp_path / "c.txt", "one\n\n  \ntwo\n"), "text", "c.txt")
    assert text.rows == 2 and [c.name for c in text.columns] == ["text"]
    rows = list(formats.iter_rows(tmp_path / "d.parquet", "parquet", "d.parquet"))
    assert rows == [(1, {"text": "x", "score": 1.0}), (2, {"text": "y", "score": None}),
                    (3, {"text": "z", "score": 2.0})]


BAD = [
    ("bad.jsonl", '{"text": "ok"}\n{"text": oops}\n', MalformedData, "bad.jsonl:2: not valid JSON"),
    ("bad.jsonl", '{"a": 1, "a": 2}\n', MalformedData, 'duplicate key "a"'),
    ("bad.jsonl", '{"a": NaN}\n', MalformedData, "NaN is not valid JSON"),
    ("bad.jsonl", '{"a": 1}\n["a list"]\n', DataTypeMismatch, "bad.jsonl:2: each line must be a JSON object"),
    ("bad.jsonl", '{"a": 1}\n{"a": "one"}\n', DataTypeMismatch, 'column "a" is string here but integer on line 1'),
    ("bad.jsonl", b'{"a": "caf\xe9"}\n', MalformedData, "bad.jsonl:1: not UTF-8"),
    ("bad.jsonl", "\n \n", MalformedData, "no rows"),
    ("bad.csv", "a,b\n1,2\n3\n", MalformedData, "bad.csv:3: 1 fields, but the header has 2"),
    ("bad.csv", "a,,b\n1,2,3\n", MalformedData, "header must name every column"),
    ("bad.csv", "a,a\n1,2\n", MalformedData, "names a column twice"),
    ("bad.csv", "a,b\n", MalformedData, "no rows under the CSV header"),
    ("bad.csv", "", MalformedData, "a header row naming the columns is required"),
    ("bad.csv", 'a\n"unterminated\n', MalformedData, "not valid CSV"),
    ("bad.parquet", b"PAR1 not really parquet PAR1", MalformedData, "not a readable Parquet file"),
    ("bad.parquet", b"just text", MalformedData, "not a Parquet file"),
    ("bad.jsonl", b"\x80\x04\x95" + b"x" * 20, MalformedData, "a Python pickle, not data"),
    ("bad.csv", b"\x7fELF\x02\x01\x01" + b"\x00" * 20, MalformedData, "an ELF executable"),
    ("bad.txt", b"#!/bin/sh\nrm -rf /\n", MalformedData, "a script (shebang)"),
]


@pytest.mark.parametrize(("name", "content", "error", "words"), BAD)
def test_bad_input_is_a_typed_error_naming_file_and_line(tmp_path: Path, name: str, content: str | bytes,
                                                         error: type[InvalidData], words: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(error) as caught:
        inspect_file(path, detect_format(name), name)
    assert words in caught.value.message, caught.value.message
    assert caught.value.code == error.code and caught.value.http_status in (400, 413)


def test_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_LINE_BYTES", 64)
    with pytest.raises(DataTooLarge, match=r"long.jsonl:2: line longer than 64 bytes") as caught:
        inspect_file(write(tmp_path / "long.jsonl", '{"a": 1}\n' + json.dumps({"a": "x" * 100}) + "\n"),
                     "jsonl", "long.jsonl")
    assert caught.value.http_status == 413 and caught.value.code == "data_too_large"
    monkeypatch.setattr(formats, "MAX_COLUMNS", 3)
    with pytest.raises(DataTooLarge, match="more than 3 distinct columns"):
        inspect_file(write(tmp_path / "wide.jsonl", '{"a": 1, "b": 2, "c": 3, "d": 4}\n'), "jsonl", "wide.jsonl")
    with pytest.raises(DataTooLarge, match="4 columns"):
        inspect_file(write(tmp_path / "wide.csv", "a,b,c,d\n1,2,3,4\n"), "csv", "wide.csv")


def test_formats_come_from_names_or_are_declared() -> None:
    assert [detect_format(n) for n in ("a.jsonl", "a.NDJSON", "a.csv", "a.parquet", "a.txt")] == [
        "jsonl", "jsonl", "csv", "parquet", "text"]
    assert detect_format("data.bin", "csv") == "csv"
    with pytest.raises(UnsupportedDataFormat, match="cannot tell the data format"):
        detect_format("data.bin")
    with pytest.raises(UnsupportedDataFormat, match="unknown data format 'xml'"):
        detect_format("a.csv", "xml")


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs.csv", "a/../../b.csv", "..", "a\\b.csv", "", "a b.csv",
                                  "x/.hidden/../y.csv"])
def test_path_traversal_file_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidData, match="invalid data file name"):
        check_filename(name)


def test_clean_names_keep_folders_and_drop_traversal() -> None:
    assert check_filename("data/train-00000.parquet") == "data/train-00000.parquet"
    assert clean_filename("my data (v2).csv") == "my_data__v2_.csv"
    assert clean_filename("../../etc/passwd") == "etc/passwd"


def test_data_digest_is_the_audit_suites_digest() -> None:
    files = [audit_data.bundled(n) for n in ("bias_pairs.jsonl", "bias_bbq.jsonl", "bias_occupations.jsonl")]
    lines = "".join(f"{f.name} {f.digest}\n" for f in sorted(files, key=lambda f: f.name))
    assert audit_data.combined_digest(files) == "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    assert data_digest([(f.name, f.digest) for f in files]) == audit_data.combined_digest(files)
    assert data_digest([("one.csv", "sha256:" + "a" * 64)]) == "sha256:" + "a" * 64


def test_bundled_data_files_all_parse_as_datasets() -> None:
    for folder in (Path(formats.__file__).parents[1] / "audit" / "data",
                   Path(formats.__file__).parents[1] / "finetune" / "data"):
        for path in folder.iterdir():
            if path.suffix in formats.SUFFIXES:
                assert inspect_file(path, detect_format(path.name), path.name).rows > 0
