"""Reading and validating audit data: bundled files and the user's ``--data`` file.

Why strict: a wrong type in line 812 of a task file would otherwise surface as a KeyError deep in a suite,
or worse as a silently wrong score. Every problem becomes :class:`~openzoo.errors.InvalidData` naming the
file and line, before any model work starts. Every file is digested (sha256 of its bytes) so the report
pins exactly which data produced it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from openzoo.errors import InvalidData
from openzoo.facts.datafiles import data_digest


@dataclass(frozen=True, slots=True)
class DataFile:
    """A data file's display name, its text and ``sha256:<hex>`` of its bytes."""

    name: str
    text: str
    digest: str


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>``, the digest form used across openzoo."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def combined_digest(files: list[DataFile]) -> str:
    """One digest for a suite's data: a single file's own digest, else sha256 of the sorted ``name digest``
    lines. It is the data digest a dataset of the same files has (:func:`openzoo.facts.datafiles.data_digest`),
    so a report's ``data_digest`` names the dataset ``openzoo dataset import`` makes of that data."""
    return data_digest([(f.name, f.digest) for f in files])


def bundled_path(name: str) -> Path:
    """Where a file shipped in ``openzoo/audit/data/`` is (package data; see the datasheets there)."""
    return Path(str(resources.files("openzoo.audit").joinpath("data", name)))


def bundled(name: str) -> DataFile:
    """A file shipped in ``openzoo/audit/data/``, read whole."""
    data = bundled_path(name).read_bytes()
    return DataFile(name, data.decode("utf-8"), sha256_digest(data))


def load(path: Path) -> DataFile:
    """A user data file, read whole; unreadable or non-UTF-8 files are InvalidData naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidData(f"{path}: file not found", param="data") from None
    except OSError as exc:
        raise InvalidData(f"{path}: cannot read file ({exc.strerror})", param="data") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidData(f"{path}: not UTF-8 text (byte {exc.start})", param="data") from None
    return DataFile(str(path), text, sha256_digest(data))


def bad(file: DataFile, line: int | None, message: str) -> InvalidData:
    """The one way to report bad data: ``<file>:<line>: <message>``."""
    where = file.name if line is None else f"{file.name}:{line}"
    return InvalidData(f"{where}: {message}", param="data")


def parse_jsonl(file: DataFile) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; anything but a JSON object is an error."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(file.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise bad(file, number, f"invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise bad(file, number, "each line must be a JSON object")
        rows.append((number, obj))
    if not rows:
        raise bad(file, None, "no items: the file is empty")
    return rows


def parse_paragraphs(file: DataFile) -> list[str]:
    """Blank-line-separated documents of a ``.txt`` corpus, stripped; an empty corpus is an error."""
    docs = [d.strip() for d in re.split(r"\n[ \t]*\n", file.text.replace("\r\n", "\n"))]
    docs = [d for d in docs if d]
    if not docs:
        raise bad(file, None, "empty corpus: no documents (paragraphs are separated by blank lines)")
    return docs


def parse_lines(file: DataFile) -> list[str]:
    """Non-blank lines of a text file (explain prompts); none is an error."""
    lines = [ln.strip() for ln in file.text.splitlines() if ln.strip()]
    if not lines:
        raise bad(file, None, "no prompts: the file is empty")
    return lines


# Field checks: each returns the typed value or raises InvalidData naming file, line and field.


def req_str(file: DataFile, line: int, row: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    """A required string field."""
    if key not in row:
        raise bad(file, line, f'missing field "{key}"')
    value = row[key]
    if not isinstance(value, str):
        raise bad(file, line, f'field "{key}" must be a string, got {type(value).__name__}')
    if not allow_empty and not value.strip():
        raise bad(file, line, f'field "{key}" must not be empty')
    return value


def req_int(file: DataFile, line: int, row: dict[str, Any], key: str) -> int:
    """A required integer field (JSON booleans are not integers here)."""
    if key not in row:
        raise bad(file, line, f'missing field "{key}"')
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(file, line, f'field "{key}" must be an integer, got {type(value).__name__}')
    return value


def req_str_list(file: DataFile, line: int, row: dict[str, Any], key: str, *, min_len: int = 1) -> list[str]:
    """A required list of non-empty strings with at least ``min_len`` entries."""
    if key not in row:
        raise bad(file, line, f'missing field "{key}"')
    value = row[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise bad(file, line, f'field "{key}" must be a list of non-empty strings')
    if len(value) < min_len:
        raise bad(file, line, f'field "{key}" needs at least {min_len} entries')
    return list(value)


def req_enum(file: DataFile, line: int, row: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """A required string field with one of ``allowed`` values."""
    value = req_str(file, line, row, key)
    if value not in allowed:
        raise bad(file, line, f'field "{key}" must be one of {", ".join(allowed)}, got "{value}"')
    return value


def req_index(file: DataFile, line: int, row: dict[str, Any], key: str, size: int) -> int:
    """A required integer index into a list of ``size`` entries."""
    value = req_int(file, line, row, key)
    if not 0 <= value < size:
        raise bad(file, line, f'field "{key}" must be an index from 0 to {size - 1}, got {value}')
    return value
