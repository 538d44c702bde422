"""A dataset manifest's config blob and datasheet rules: what datasets/ writes and certify/ checks.

Both :mod:`openzoo.datasets` (import, push, pull) and :mod:`openzoo.certify` (evidence, verification) read
a dataset's config; it lives here, below both, so neither package imports the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openzoo.errors import InvalidData, InvalidRequest, NotSupported
from openzoo.facts import datasheet as sheets
from openzoo.facts.card import ModelCard
from openzoo.facts.datafiles import FileFacts, data_digest
from openzoo.facts.licenses import UNKNOWN, UNKNOWN_ID, lookup
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

__all__ = ["FILENAME", "ROWS", "SCHEMA", "DatasetConfig", "fit_datasheet", "read_config"]

SCHEMA = "openzoo.dataset/v1"
FILENAME = "org.openzoo.filename"
ROWS = "org.openzoo.dataset.rows"


@dataclass(frozen=True, slots=True)
class DatasetConfig:
    """The config blob of a dataset manifest."""

    files: tuple[FileFacts, ...]
    license: str | None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def data_digest(self) -> str:
        return data_digest([(f.name, f.digest) for f in self.files])

    @property
    def format(self) -> str:
        formats = {f.format for f in self.files}
        return formats.pop() if len(formats) == 1 else "mixed"

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "format": self.format, "rows": self.rows, "bytes": self.size,
                "data_digest": self.data_digest, "license": self.license,
                "files": [f.to_json() for f in self.files]}

    @classmethod
    def from_json(cls, data: Any) -> DatasetConfig:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("files"), list):
            raise InvalidData(f"not an {SCHEMA} dataset config")
        files = tuple(FileFacts.from_json(f) for f in data["files"])
        license = data.get("license")
        config = cls(files, str(license) if license else None)
        if not files or data.get("rows") != config.rows or data.get("data_digest") != config.data_digest:
            raise InvalidData("dataset config does not add up (rows or data digest differ from its files)")
        return config


def read_config(store: Store, manifest: Manifest) -> DatasetConfig:
    if manifest.kind != "dataset":
        raise NotSupported("not a dataset manifest")
    try:
        raw = json.loads(store.blobs.read(manifest.config.digest))
    except (FileNotFoundError, ValueError) as exc:
        raise InvalidData(f"dataset config {manifest.config.digest[:19]}… is unreadable: {exc}") from None
    return DatasetConfig.from_json(raw)


def fit_datasheet(card: ModelCard, display: str, config: DatasetConfig) -> ModelCard:
    """A replacement datasheet checked against its dataset: it may not declare another license."""
    declared = card.license_facts() if card.metadata.get("license") else None
    if declared is not None and config.license and declared.id not in (config.license, UNKNOWN_ID):
        raise InvalidRequest(f"the datasheet declares license {declared.id}, but {display} is {config.license}",
                             hint="keep the dataset's license in the datasheet")
    facts = lookup(config.license) if config.license else UNKNOWN
    return sheets.complete(card, display, config.files, facts)
