"""Data file formats of a dataset: JSONL, CSV, Parquet and plain text, parsed row by row and bounded.

Why parse everything before storing: a dataset is content-addressed and may be sealed, so what the
store holds must be exactly what was checked. :func:`inspect_file` reads every row of a file (JSONL
objects, CSV records against their header, every Parquet row group, text lines), counts rows, records
each column's type and hashes the bytes; the first problem becomes a typed :class:`~openzoo.errors.InvalidData`
naming the file and line (or row), and nothing has been written. :func:`iter_rows` yields the same rows
to the readers of a stored dataset (fine-tuning), so they see what was validated.

Limits (documented in docs/datasets.md): the whole import is bounded by ``OPENZOO_DATASET_MAX_BYTES``
(checked by the caller before reading), a JSONL or text line by :data:`MAX_LINE_BYTES`, a row by
:data:`MAX_COLUMNS` columns, a CSV field by Python's csv limit (131,072 characters).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from openzoo.errors import DataTooLarge, DataTypeMismatch, InvalidData, MalformedData, UnsupportedDataFormat
from openzoo.formats.scan import EXECUTABLE_MAGIC

__all__ = [
    "FORMATS",
    "MAX_COLUMNS",
    "MAX_LINE_BYTES",
    "Column",
    "FileFacts",
    "check_filename",
    "clean_filename",
    "data_digest",
    "detect_format",
    "inspect_file",
    "iter_json_lines",
    "iter_rows",
    "sha256_file",
]

FORMATS = ("jsonl", "csv", "parquet", "text")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
MAX_LINE_BYTES = 16 << 20
MAX_COLUMNS = 1024
MAX_COLUMN_NAME = 256
PARQUET_BATCH_ROWS = 4096
_CHUNK = 1 << 20
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # JSON type (string, integer, number, boolean, object, array, null) or an Arrow type

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What a data file holds, as recorded in the dataset's config."""

    name: str  # the file's name inside the dataset (a safe relative POSIX path)
    format: str
    digest: str  # sha256 of the file's bytes: the blob digest
    size: int
    rows: int
    columns: tuple[Column, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "digest": self.digest, "size": self.size,
                "rows": self.rows, "columns": [c.to_json() for c in self.columns]}

    @classmethod
    def from_json(cls, data: Any) -> FileFacts:
        """Read a config's file entry back; a wrong shape is InvalidData (a pulled manifest may lie)."""
        try:
            columns = tuple(Column(str(c["name"]), str(c["type"])) for c in data["columns"])
            facts = cls(str(data["name"]), str(data["format"]), str(data["digest"]), int(data["size"]),
                        int(data["rows"]), columns)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidData(f"dataset config has a malformed file entry: {exc}") from None
        if facts.format not in FORMATS:
            raise UnsupportedDataFormat(f"dataset config names an unknown format {facts.format!r}")
        return facts


def data_digest(files: Sequence[tuple[str, str]]) -> str:
    """The digest of a dataset's data: a single file's own digest, else sha256 of the sorted
    ``name digest`` lines. Audit reports cite their suite data by this same digest."""
    if len(files) == 1:
        return files[0][1]
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(files))
    return "sha256:" + hashlib.sha256(lines.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def check_filename(name: str) -> str:
    """A file name inside a dataset: relative POSIX path parts of letters, digits, ``_ . -`` (no ``..``)."""
    parts = PurePosixPath(name).parts if name else ()
    if (not parts or name.startswith("/") or "\\" in name or len(name) > 512
            or any(p in {".", ".."} or not _NAME_PART.fullmatch(p) for p in parts)):
        raise InvalidData(f"invalid data file name {name!r}: use a relative path of letters, digits, _ . and -",
                          hint="rename the file; names with '..', '/' at the start or other characters are refused")
    return "/".join(parts)


def clean_filename(name: str) -> str:
    """A file's own name made safe for :func:`check_filename` (other characters become ``_``)."""
    parts = [re.sub(r"[^A-Za-z0-9_.-]", "_", p).lstrip(".-") or "file" for p in PurePosixPath(name).parts
             if p not in {"", ".", "..", "/"}]
    return check_filename("/".join(p[:128] for p in parts) or "data")


def detect_format(filename: str, declared: str | None = None) -> str:
    """The format named by ``declared`` (``--format``), else by the file's suffix."""
    if declared:
        if declared.lower() not in FORMATS:
            raise UnsupportedDataFormat(f"unknown data format {declared!r}: use one of {', '.join(FORMATS)}")
        return declared.lower()
    found = SUFFIXES.get(PurePosixPath(filename).suffix.lower())
    if found is None:
        raise UnsupportedDataFormat(f"{filename}: cannot tell the data format from the name")
    return found


def _hint(label: str, line: int) -> str:
    return f"fix line {line} of {PurePosixPath(label).name}"


def _check_magic(path: Path, label: str) -> None:
    with path.open("rb") as f:
        head = f.read(8)
    for magic, what in EXECUTABLE_MAGIC:
        if head.startswith(magic):
            raise MalformedData(f"{label}: the file is {what}, not data", hint="import only data files")


def _lines(path: Path, label: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, UTF-8 checked and each line bounded."""
    with path.open("rb") as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataTooLarge(f"{label}:{number}: line longer than {MAX_LINE_BYTES} bytes",
                                   hint=_hint(label, number))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedData(f"{label}:{number}: not UTF-8 text (byte {exc.start} of the line)",
                                    hint=_hint(label, number)) from None
            yield number, text.removeprefix("\ufeff") if number == 1 else text


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f'duplicate key "{key}"')
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def iter_json_lines(path: Path, label: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank JSONL line; invalid JSON is MalformedData naming the line."""
    for number, text in _lines(path, label):
        if not text.strip():
            continue
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise MalformedData(f"{label}:{number}: not valid JSON ({reason})", hint=_hint(label, number)) from None
        yield number, value


def _jsonl_rows(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, value in iter_json_lines(path, label):
        if not isinstance(value, dict):
            raise DataTypeMismatch(f"{label}:{number}: each line must be a JSON object, not {_json_type(value)}",
                                   hint=_hint(label, number))
        yield number, value


def _csv_rows(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8-sig", newline="", errors="strict") as f:
        reader = csv.reader(f, strict=True)
        header: list[str] | None = None
        try:
            for record in reader:
                number = reader.line_num
                if header is None:
                    header = _csv_header(record, label)
                    continue
                if not record:
                    continue
                if len(record) != len(header):
                    raise MalformedData(f"{label}:{number}: {len(record)} fields, but the header has {len(header)}",
                                        hint=_hint(label, number))
                yield number, dict(zip(header, record, strict=True))
        except csv.Error as exc:
            raise MalformedData(f"{label}:{reader.line_num}: not valid CSV ({exc})",
                                hint=_hint(label, reader.line_num)) from None
        except UnicodeDecodeError as exc:
            raise MalformedData(f"{label}: not UTF-8 text (byte {exc.start} of a block)") from None
        if header is None:
            raise MalformedData(f"{label}: empty CSV: a header row naming the columns is required")


def _csv_header(record: list[str], label: str) -> list[str]:
    names = [name.strip() for name in record]
    if not names or any(not n for n in names):
        raise MalformedData(f"{label}:1: the header must name every column (no empty names)", hint=_hint(label, 1))
    if len(set(names)) != len(names):
        raise MalformedData(f"{label}:1: the header names a column twice", hint=_hint(label, 1))
    _check_columns(names, label)
    return names


def _check_columns(names: Sequence[str], label: str) -> None:
    if len(names) > MAX_COLUMNS:
        raise DataTooLarge(f"{label}: {len(names)} columns; at most {MAX_COLUMNS} are accepted")
    long = next((n for n in names if len(n) > MAX_COLUMN_NAME), None)
    if long is not None:
        raise MalformedData(f"{label}: column name {long[:40]!r}… is longer than {MAX_COLUMN_NAME} characters")


def _text_rows(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in _lines(path, label):
        line = text.rstrip("\r\n")
        if line.strip():
            yield number, {"text": line}


def _parquet_file(path: Path, label: str) -> Any:
    import pyarrow.parquet as pq

    with path.open("rb") as f:
        head = f.read(4)
        f.seek(0, io.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4))
        tail = f.read(4)
    if head != b"PAR1" or tail != b"PAR1" or size < 12:
        raise MalformedData(f"{label}: not a Parquet file (no PAR1 markers)")
    try:
        return pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid, ArrowException or OSError for broken footers
        raise MalformedData(f"{label}: not a readable Parquet file ({exc})") from None


def _parquet_rows(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    pf = _parquet_file(path, label)
    number = 0
    for batch in _parquet_batches(pf, label):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _parquet_batches(pf: Any, label: str) -> Iterator[Any]:
    try:
        yield from pf.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    except Exception as exc:  # a damaged page or column chunk
        raise MalformedData(f"{label}: a Parquet row group does not decode ({exc})") from None


def iter_rows(path: Path, fmt: str, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, row) of a data file; the same checks :func:`inspect_file` applies to rows."""
    readers = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows, "text": _text_rows}
    if fmt not in readers:
        raise UnsupportedDataFormat(f"unknown data format {fmt!r}")
    _check_magic(path, label)
    return readers[fmt](path, label)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Schema:
    """Columns in order of first appearance with one JSON type each (integer widens to number)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.types: dict[str, str] = {}
        self.first: dict[str, int] = {}

    def add(self, number: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            kind = _json_type(value)
            known = self.types.get(key)
            if known is None:
                if len(self.types) >= MAX_COLUMNS:
                    raise DataTooLarge(f"{self.label}:{number}: more than {MAX_COLUMNS} distinct columns")
                _check_columns([key], self.label)
                self.types[key], self.first[key] = kind, number
            elif kind != known and kind != "null":
                if known == "null" or {kind, known} == {"integer", "number"}:
                    self.types[key] = "number" if known != "null" else kind
                    continue
                raise DataTypeMismatch(
                    f'{self.label}:{number}: column "{key}" is {kind} here but {known} on line {self.first[key]}',
                    hint=_hint(self.label, number))

    def columns(self) -> tuple[Column, ...]:
        return tuple(Column(name, kind) for name, kind in self.types.items())


def inspect_file(path: Path, fmt: str, name: str, *, label: str | None = None) -> FileFacts:
    """Parse every row of ``path`` as ``fmt``; return its facts (rows, columns, digest, size)."""
    shown = label or name
    if not path.is_file():
        raise InvalidData(f"{shown}: no such file")
    if fmt == "parquet":
        rows, columns = _inspect_parquet(path, shown)
    else:
        schema = _Schema(shown)
        rows = 0
        header: tuple[Column, ...] = ()
        for number, row in iter_rows(path, fmt, shown):
            rows += 1
            if fmt == "jsonl":
                schema.add(number, row)
            elif not header:
                header = tuple(Column(key, "string") for key in row)
        columns = schema.columns() if fmt == "jsonl" else header
        if fmt == "csv" and not header:
            raise MalformedData(f"{shown}: no rows under the CSV header")
    if rows == 0:
        raise MalformedData(f"{shown}: no rows: the file holds no data")
    return FileFacts(check_filename(name), fmt, sha256_file(path), path.stat().st_size, rows, columns)


def _inspect_parquet(path: Path, label: str) -> tuple[int, tuple[Column, ...]]:
    _check_magic(path, label)
    pf = _parquet_file(path, label)
    schema = pf.schema_arrow
    names = [str(n) for n in schema.names]
    _check_columns(names, label)
    if len(set(names)) != len(names):
        raise MalformedData(f"{label}: the Parquet schema names a column twice")
    rows = sum(batch.num_rows for batch in _parquet_batches(pf, label))
    if rows != pf.metadata.num_rows:
        raise MalformedData(f"{label}: {rows} rows decoded, but the footer says {pf.metadata.num_rows}")
    return rows, tuple(Column(field.name, str(field.type)) for field in schema)
