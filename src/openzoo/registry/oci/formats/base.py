"""What every OCI model format module shares: the stored model a writer reads, what a writer builds, and
the plan a reader makes of a foreign manifest.

Why plans and not stored models: a reader sees only a manifest and a small config blob before anything
large is downloaded, so it says *which* registry blobs to fetch and what each becomes in openzoo
(:class:`Take`); the pull downloads them, checks their content (GGUF structure, tar members) and only
then assembles and lands the model (:mod:`openzoo.registry.oci.assemble`). Everything here is pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openzoo.errors import InvalidRequest, NotSupported
from openzoo.registry.oci.artifacts import Descriptor, OciManifest
from openzoo.store.manifests import Manifest

__all__ = ["MAX_CONFIG_BYTES", "Built", "ModelContent", "Plan", "Take", "bad_config", "go_json", "go_time",
           "load_config", "unknown_layer"]

MAX_CONFIG_BYTES = 1 << 20  # a format's config is a few hundred bytes; a Kitfile a few kilobytes


@dataclass(frozen=True)
class ModelContent:
    """A stored model as format writers see it: the manifest a seal covers (no SEAL layer), its openzoo
    config, its card's license id and when it was made."""

    name: str  # the model part of the name (``gemma3``)
    tag: str
    manifest: Manifest
    config: Mapping[str, Any]
    license_id: str | None = None
    created: datetime = field(default_factory=lambda: datetime.fromtimestamp(0, UTC))


@dataclass(frozen=True)
class Built:
    """A model in one format: its manifest, and the blobs the format made (its config) by digest; every
    other blob the manifest lists is a stored blob of the model, byte for byte."""

    manifest: OciManifest
    payloads: Mapping[str, bytes]


@dataclass(frozen=True)
class Take:
    """One registry blob to fetch and the openzoo layer it becomes. ``member`` names the file inside a tar
    layer (KitOps, ModelPack ``.tar``) that is the layer; None for a raw layer."""

    desc: Descriptor
    media_type: str
    member: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def archive(self) -> bool:
        return self.member is not None


@dataclass(frozen=True)
class Plan:
    """What to land from a foreign manifest: the blobs to take, what was left out (said to the user), the
    facts its config states (for the card) and, for openzoo's own format, the config kept as it is."""

    format: str
    takes: tuple[Take, ...]
    skipped: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    config: Descriptor | None = None


def go_time(when: datetime) -> str:
    """RFC 3339 in UTC as Go's ``time.Time`` marshals it (``2026-12-07T01:02:03Z``)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bad_config(where: str, what: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"malformed {what} config from {where}: {why}: refused, nothing stored",
                          hint="the artifact was not written by a tool openzoo reads; ask its publisher")


def load_config(data: bytes, where: str, what: str) -> dict[str, Any]:
    """A format's config blob as a JSON object, or a clear refusal."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_config(where, what, f"not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise bad_config(where, what, "not a JSON object")
    return raw


def unknown_layer(where: str, what: str, desc: Descriptor) -> NotSupported:
    return NotSupported(f"{where}: the {what} manifest has a layer of unknown media type {desc.media_type!r}: "
                        "refused, nothing stored",
                        hint="openzoo lands only layers it can check; pull a model that holds GGUF weights")


def go_json(value: Any) -> bytes:
    """JSON as Go's ``encoding/json`` writes it: struct field order (insertion order here), no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
