"""The single canonical JSON encoding used for everything openzoo hashes or signs.

Signatures and digests are only reproducible if every producer serializes the same value to the same
bytes, so all of ``certify`` goes through :func:`canonical_json`: sorted keys, no insignificant
whitespace, UTF-8, and no floats (their text form is not stable across languages, and nothing we sign
needs them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from openzoo.errors import InvalidRequest

__all__ = [
    "b64decode",
    "b64encode",
    "canonical_json",
    "parse_json",
    "sha256_digest",
    "sha256_hex",
]


def _reject_floats(value: Any, path: str = "$") -> None:
    """Walk ``value`` and refuse floats and non-JSON types, naming where they are."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return
    if isinstance(value, float):
        raise InvalidRequest(f"canonical JSON does not allow floats (at {path})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequest(f"canonical JSON keys must be strings (at {path})")
            _reject_floats(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _reject_floats(item, f"{path}[{i}]")
        return
    raise InvalidRequest(f"canonical JSON cannot encode {type(value).__name__} (at {path})")


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes (sorted keys, ``,``/``:`` separators, UTF-8).

    Raises :class:`InvalidRequest` for floats or values JSON cannot represent.
    """
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_json(data: bytes | str, what: str = "JSON") -> Any:
    """Parse JSON, turning any decoding error into :class:`InvalidRequest` naming ``what``."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_digest(data: bytes) -> str:
    """OCI-style digest ``sha256:<hex>`` of ``data``, the form manifests and layers use."""
    return "sha256:" + sha256_hex(data)


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as DSSE and signed notes use."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str = "base64 value") -> bytes:
    """Strict standard base64 decoding; malformed input is an :class:`InvalidRequest`."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidRequest(f"{what} is not valid base64") from exc
