"""OCI manifests for openzoo: the model manifest, the artifacts that refer to it, and the referrers index.

* **Model manifest** — an OCI image manifest whose config and layers are openzoo's, descriptor for
  descriptor (media type, digest, size, annotations), with nothing added: :func:`to_oci` and
  :func:`from_oci` are inverse, so a pull rebuilds byte for byte the manifest the seal signed and checks
  its digest. Nothing depends on the config media type, so datasets and any other manifest kind travel
  the same way. The SEAL layer never goes in (a seal signs the manifest without it); it travels as:
* **Artifacts** with ``subject`` = the model manifest: the card (``application/vnd.openzoo.card.v1+markdown``,
  the card layer's own blob), the seal (``application/vnd.openzoo.seal.v1+json``: the DSSE envelope as
  ``application/vnd.dsse.envelope.v1+json``, the whole seal bundle, the openzoo manifest the seal signs
  as ``application/vnd.openzoo.manifest.v1+json`` and the blobs of it the pushed format does not list,
  so the seal verifies whatever format carried the model: :mod:`.formats`) and the proof
  (``application/vnd.openzoo.proof.v1+json``: inclusion receipts of the seal and its approvals under one
  signed log head, and the revocations; annotated with the seal it proves). Their config is the OCI empty
  descriptor; their JSON is canonical, so pushing the same thing twice gives the same digests.
* **Referrers index** — an OCI image index listing artifact descriptors: what the referrers API answers,
  and what the pusher keeps under the tag ``sha256-<hex>`` on registries without that API (OCI 1.1
  tag-schema fallback).

Everything read from a registry is validated here before use: size caps, schema version, media types
(RFC 6838 syntax; container images and image indexes are refused with a reason), sha256 digests only,
non-negative integer sizes, string annotations, no foreign ``urls``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openzoo.errors import InvalidRequest, NotSupported, PayloadTooLarge
from openzoo.facts.canonical import canonical_json, sha256_digest
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest

__all__ = [
    "CARD_TYPE", "DSSE_MEDIA_TYPE", "EMPTY", "MODEL_MANIFEST_TYPE", "OCI_INDEX", "OCI_MANIFEST", "PROOF_TYPE",
    "SEAL_ANNOTATION", "SEAL_INDEX_ANNOTATION", "SEAL_TYPE", "Descriptor", "OciManifest", "artifact", "from_oci",
    "parse_index", "parse_manifest", "referrers_index", "to_oci",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
CARD_TYPE = mt.CARD
SEAL_TYPE = mt.SEAL
PROOF_TYPE = "application/vnd.openzoo.proof.v1+json"
MODEL_MANIFEST_TYPE = "application/vnd.openzoo.manifest.v1+json"  # in the seal artifact: the manifest it signs
SEAL_ANNOTATION = "dev.openzoo.seal.digest"  # on the seal and proof artifacts: which seal (envelope digest)
SEAL_INDEX_ANNOTATION = "dev.openzoo.seal.layer-index"  # on the seal artifact: where the SEAL layer goes back
MANIFEST_TYPES = (OCI_MANIFEST, mt.MANIFEST_MEDIA_TYPE)
ACCEPT_MANIFESTS = ", ".join((OCI_MANIFEST, mt.MANIFEST_MEDIA_TYPE, OCI_INDEX, DOCKER_LIST))
MAX_MANIFEST_BYTES = 4 << 20  # what the distribution server accepts
MAX_DESCRIPTORS = 1000
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CONTAINER_LAYERS = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")
_CONTAINER_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        return data

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data))


EMPTY_JSON = b"{}"
EMPTY = Descriptor.of(EMPTY_MEDIA_TYPE, EMPTY_JSON)


@dataclass(frozen=True, slots=True)
class OciManifest:
    """An OCI image manifest (or, when read, a Docker v2 one: same shape)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = OCI_MANIFEST
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type, "config": self.config.to_json(),
                                "layers": [x.to_json() for x in self.layers]}
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.subject is not None:
            data["subject"] = self.subject.to_json()
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    def descriptor(self) -> Descriptor:
        """How an index or a ``subject`` field points at this manifest."""
        data = self.to_bytes()
        return Descriptor(self.media_type, sha256_digest(data), len(data), dict(self.annotations), self.artifact_type)


def _descriptor(layer: Layer) -> Descriptor:
    return Descriptor(layer.media_type, layer.digest, layer.size, dict(layer.annotations))


def _layer(desc: Descriptor) -> Layer:
    return Layer(desc.media_type, desc.digest, desc.size, dict(desc.annotations))


def to_oci(manifest: Manifest) -> OciManifest:
    """The OCI image manifest of an openzoo manifest (pass the sealed manifest: without its SEAL layer)."""
    if manifest.first(mt.SEAL) is not None:
        raise InvalidRequest("a model manifest goes to an OCI registry without its seal layer (it is an artifact)")
    return OciManifest(_descriptor(manifest.config), tuple(_descriptor(x) for x in manifest.layers))


def from_oci(oci: OciManifest) -> Manifest:
    """The openzoo manifest an OCI model manifest describes (inverse of :func:`to_oci`)."""
    return Manifest(_layer(oci.config), tuple(_layer(x) for x in oci.layers))


def artifact(artifact_type: str, layers: Iterable[Descriptor], subject: Descriptor,
             annotations: Mapping[str, str] | None = None) -> OciManifest:
    """An OCI 1.1 artifact manifest referring to ``subject`` (empty config, ``artifactType`` set)."""
    return OciManifest(EMPTY, tuple(layers), artifact_type=artifact_type, subject=subject,
                       annotations=dict(annotations or {}))


def referrers_index(current: Iterable[Descriptor], added: Iterable[Descriptor], replaced_types: Iterable[str]
                    ) -> bytes:
    """The referrers index after a push: ``added`` in, earlier descriptors of ``replaced_types`` out (openzoo
    replaces its own card, seal and proof), everything else (other tools' artifacts) kept in order."""
    new = list(added)
    drop = set(replaced_types) | {d.digest for d in new}
    kept = [d for d in current if d.artifact_type not in drop and d.digest not in drop]
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": [d.to_json() for d in kept + new]})


# -- reading what a registry sends -----------------------------------------------------------------------


def _bad(where: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"malformed OCI manifest from {where}: {why}: refused, nothing stored",
                          hint="the registry holds something openzoo did not push; ask its publisher")


def _load(data: bytes, where: str, what: str) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise PayloadTooLarge(f"the {what} from {where} is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit",
                              hint="a model manifest is a few kilobytes; the registry is not serving one")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(where, f"not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise _bad(where, "not a JSON object")
    if raw.get("schemaVersion") != 2 or isinstance(raw.get("schemaVersion"), bool):
        raise _bad(where, f"schemaVersion is {raw.get('schemaVersion')!r}, not 2")
    return raw


def _media_type(value: Any, where: str, field_name: str) -> str:
    if not isinstance(value, str) or not _MEDIA_TYPE.fullmatch(value):
        raise _bad(where, f"{field_name} {str(value)[:80]!r} is not a media type")
    return value


def parse_descriptor(raw: Any, where: str, field_name: str) -> Descriptor:
    """One validated descriptor; raises :class:`InvalidRequest` naming the field."""
    if not isinstance(raw, dict):
        raise _bad(where, f"{field_name} is not an object")
    media_type = _media_type(raw.get("mediaType"), where, f"{field_name}.mediaType")
    digest = raw.get("digest")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise _bad(where, f"{field_name}.digest {str(digest)[:80]!r} is not sha256:<64 hex> (only sha256 is "
                          "supported)")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad(where, f"{field_name}.size {size!r} is not a non-negative integer")
    if raw.get("urls"):
        raise _bad(where, f"{field_name} points outside the registry (urls); openzoo fetches only registry blobs")
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in annotations.items()):
        raise _bad(where, f"{field_name}.annotations must map strings to strings")
    artifact_type = raw.get("artifactType")
    if artifact_type is not None:
        artifact_type = _media_type(artifact_type, where, f"{field_name}.artifactType")
    return Descriptor(media_type, digest, size, annotations, artifact_type)


def parse_manifest(data: bytes, content_type: str | None, where: str) -> OciManifest:
    """Validate a manifest as a registry sent it (``content_type`` is its Content-Type header)."""
    raw = _load(data, where, "manifest")
    header = (content_type or "").split(";")[0].strip() or None
    declared = raw.get("mediaType", header)
    known = (*MANIFEST_TYPES, OCI_INDEX, DOCKER_LIST)
    if header in known and raw.get("mediaType") is not None and header != declared:
        raise _bad(where, f"it was served as {header} but says it is {declared}")
    if declared in (OCI_INDEX, DOCKER_LIST) or "manifests" in raw:
        raise NotSupported(f"{where} is an image index (several manifests), not a model manifest",
                           hint="pull one of its manifests by digest: oci://HOST/REPO@sha256:...")
    if declared not in MANIFEST_TYPES:
        raise NotSupported(f"{where} has manifest media type {str(declared)[:80]!r}; openzoo reads OCI image "
                           f"manifests ({OCI_MANIFEST})", hint="push the model with 'openzoo push' or oras")
    config = parse_descriptor(raw.get("config"), where, "config")
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list) or not layers_raw:
        raise _bad(where, "layers must be a non-empty list")
    if len(layers_raw) > MAX_DESCRIPTORS:
        raise _bad(where, f"{len(layers_raw)} layers is more than {MAX_DESCRIPTORS}")
    layers = tuple(parse_descriptor(x, where, f"layers[{i}]") for i, x in enumerate(layers_raw))
    if config.media_type == _CONTAINER_CONFIG or any(x.media_type.startswith(_CONTAINER_LAYERS) for x in layers):
        raise NotSupported(f"{where} is a container image (file-system layers), not a model",
                           hint="push model files with their own media types, e.g. application/vnd.ollama.image.model")
    subject = parse_descriptor(raw["subject"], where, "subject") if raw.get("subject") is not None else None
    artifact_type = raw.get("artifactType")
    if artifact_type is not None:
        artifact_type = _media_type(artifact_type, where, "artifactType")
    annotations = raw.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise _bad(where, "annotations must map strings to strings")
    return OciManifest(config, layers, str(declared), artifact_type, subject, annotations)


def parse_index(data: bytes, where: str) -> list[Descriptor]:
    """The descriptors of an OCI image index (a referrers answer or the fallback tag)."""
    raw = _load(data, where, "referrers index")
    if raw.get("mediaType", OCI_INDEX) != OCI_INDEX:
        raise _bad(where, f"a referrers index has media type {OCI_INDEX}, not {str(raw.get('mediaType'))[:80]!r}")
    items = raw.get("manifests")
    if not isinstance(items, list) or len(items) > MAX_DESCRIPTORS:
        raise _bad(where, f"manifests must be a list of at most {MAX_DESCRIPTORS} descriptors")
    return [parse_descriptor(x, where, f"manifests[{i}]") for i, x in enumerate(items)]
