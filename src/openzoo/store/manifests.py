"""Manifests: OCI-like JSON listing a model's layers, stored as blobs themselves.

Layer media types reuse Ollama's where one exists (so manifests stay readable by Ollama tooling) and
add openzoo's own for what Ollama has no word for (card, lineage, audit report, seal).

A manifest is a model's or a dataset's: the config's media type says which (:attr:`Manifest.kind`). Both
are ordinary named manifests in one store and catalog, so registries carry datasets unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from openzoo.errors import StoreCorrupt

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MODEL = "application/vnd.ollama.image.model"
TEMPLATE = "application/vnd.ollama.image.template"
SYSTEM = "application/vnd.ollama.image.system"
PARAMS = "application/vnd.ollama.image.params"
LICENSE = "application/vnd.ollama.image.license"
MESSAGES = "application/vnd.ollama.image.messages"
ADAPTER = "application/vnd.ollama.image.adapter"
CARD = "application/vnd.openzoo.card.v1+markdown"
LINEAGE = "application/vnd.openzoo.lineage.v1+json"
AUDIT = "application/vnd.openzoo.audit.v1+json"
SEAL = "application/vnd.openzoo.seal.v1+json"
LICENSE_FACTS = "application/vnd.openzoo.license-facts.v1+json"

# Datasets (see docs/datasets.md): a config of their own, one layer per data file (media type per
# format) and the datasheet (Hugging Face dataset-card markdown).
DATASET_CONFIG = "application/vnd.openzoo.dataset.config.v1+json"
DATASHEET = "application/vnd.openzoo.datasheet.v1+markdown"
DATA_JSONL = "application/vnd.openzoo.dataset.data.v1.jsonl"
DATA_CSV = "application/vnd.openzoo.dataset.data.v1.csv"
DATA_PARQUET = "application/vnd.openzoo.dataset.data.v1.parquet"
DATA_TEXT = "application/vnd.openzoo.dataset.data.v1.text"
DATA_TYPES = {"jsonl": DATA_JSONL, "csv": DATA_CSV, "parquet": DATA_PARQUET, "text": DATA_TEXT}

LAYER_TYPES = (MODEL, TEMPLATE, SYSTEM, PARAMS, LICENSE, MESSAGES, ADAPTER, CARD, LINEAGE, AUDIT, SEAL,
               LICENSE_FACTS, DATASHEET, *DATA_TYPES.values())


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the one byte form hashed anywhere in openzoo."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Layer:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True, slots=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def kind(self) -> str:
        """``dataset`` for a dataset's manifest (its config media type), else ``model``."""
        return "dataset" if self.config.media_type == DATASET_CONFIG else "model"

    def card_layer(self) -> Layer | None:
        """The layer a seal cites as the card: a model's card or a dataset's datasheet."""
        return self.first(DATASHEET if self.kind == "dataset" else CARD)

    def data_layers(self) -> list[Layer]:
        """A dataset's data files, in manifest order."""
        kinds = set(DATA_TYPES.values())
        return [layer for layer in self.layers if layer.media_type in kinds]

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]

    def first(self, media_type: str) -> Layer | None:
        found = self.layers_of(media_type)
        return found[0] if found else None

    def blob_digests(self) -> list[str]:
        """Every blob this manifest needs, config included."""
        return [self.config.digest, *(layer.digest for layer in self.layers)]

    def replace_layers(self, media_type: str, new: list[Layer]) -> Manifest:
        """A copy with all layers of ``media_type`` replaced by ``new`` (appended at the end)."""
        kept = [layer for layer in self.layers if layer.media_type != media_type]
        return Manifest(self.config, (*kept, *new))

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            config = _layer(raw["config"])
            layers = tuple(_layer(item) for item in raw["layers"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupt(f"manifest is not valid: {exc}") from exc
        return cls(config, layers)


def _layer(raw: dict[str, Any]) -> Layer:
    return Layer(str(raw["mediaType"]), str(raw["digest"]), int(raw["size"]),
                 {str(k): str(v) for k, v in (raw.get("annotations") or {}).items()})
