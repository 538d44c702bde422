"""Datasets as named manifests in the one store: import, list, show, datasheet, remove, find by digest.

A dataset is an ordinary manifest (so both registries carry it unchanged) whose config has its own media
type (:data:`~openzoo.store.manifests.DATASET_CONFIG`): the config JSON records the format, rows, columns,
data digest and license, and the layers are the data files (one media type per format, content addressed:
the same file imported twice is one blob), the datasheet and the license facts.

Import has two steps so callers can check first and store later: :meth:`Datasets.plan` reads and validates
everything (sizes, every row, the name, the license, the datasheet) and computes every digest, the
manifest's included, without writing; :meth:`Datasets.commit` stores the blobs, then tags the name. A
failed commit removes the blobs it added, so bad input leaves the store as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo import names
from openzoo.errors import (
    Conflict,
    DatasetNotFound,
    DataTooLarge,
    InvalidData,
    InvalidRequest,
    NotFound,
    NotSupported,
    OpenzooError,
    UnknownLicense,
    UnsupportedDataFormat,
)
from openzoo.events import Progress
from openzoo.facts import canonical
from openzoo.facts import datasheet as sheets
from openzoo.facts.card import ModelCard
from openzoo.facts.datafiles import (
    FileFacts,
    check_filename,
    clean_filename,
    detect_format,
    inspect_file,
    iter_rows,
)
from openzoo.facts.dataset_config import FILENAME, ROWS, SCHEMA, DatasetConfig, fit_datasheet, read_config
from openzoo.facts.licenses import UNKNOWN, UNKNOWN_ID, LicenseFacts, lookup
from openzoo.names import ModelName
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store

__all__ = ["SCHEMA", "DatasetConfig", "Datasets", "ImportPlan", "Source", "StoredDataset", "check_manifest",
           "fit_datasheet", "read_config", "resolve_license"]

MAX_FILES = 256


@dataclass(frozen=True, slots=True)
class StoredDataset:
    """A resolved dataset: name, manifest digest, manifest and config."""

    name: ModelName
    digest: str
    manifest: Manifest
    config: DatasetConfig
    modified_at: float

    @property
    def display(self) -> str:
        return self.name.display

    @property
    def license(self) -> LicenseFacts:
        return lookup(self.config.license) if self.config.license else UNKNOWN

    @property
    def sealed(self) -> bool:
        return self.manifest.first(mt.SEAL) is not None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.display, "digest": self.digest, "modified_at": self.modified_at,
                "sealed": self.sealed, "license_facts": self.license.to_json(), **self.config.to_json()}


@dataclass(frozen=True, slots=True)
class Source:
    """One file to import: where it is, its name inside the dataset, its format and how errors name it."""

    path: Path
    name: str
    format: str
    label: str


@dataclass(frozen=True)
class ImportPlan:
    """A validated import, every digest known, nothing written yet."""

    name: ModelName
    files: tuple[tuple[Source, FileFacts], ...]
    config: DatasetConfig
    datasheet: ModelCard
    license: LicenseFacts
    manifest: Manifest
    small_blobs: dict[str, bytes] = field(default_factory=dict)  # config, datasheet, license facts

    @property
    def manifest_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest.to_bytes()).hexdigest()

    @property
    def data_digest(self) -> str:
        return self.config.data_digest


def resolve_license(text: str | None) -> str | None:
    """The canonical id of a license the table knows (SPDX or Hugging Face id), or ``LicenseRef-<name>``
    for one it does not; anything else is refused (a typo must not become an unknown license)."""
    if text is None or not text.strip():
        return None
    facts = lookup(text)
    if facts.id != UNKNOWN_ID:
        return facts.id
    custom = text.strip()
    rest = custom.removeprefix("LicenseRef-")
    if rest != custom and rest and len(custom) <= 128 and all(c.isalnum() or c in ".-" for c in rest):
        return custom
    raise UnknownLicense(f"unknown license {custom!r}")


def collect_sources(paths: Sequence[Path], fmt: str | None = None) -> tuple[list[Source], Path | None]:
    """The data files under ``paths`` (a folder contributes every supported file below it, its README.md
    becomes the datasheet) and that README.md, if any."""
    sources: list[Source] = []
    readme: Path | None = None
    for path in paths:
        if path.is_dir():
            top = path / "README.md"
            if top.is_file() and readme is None:
                readme = top
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = file.relative_to(path)
                if any(part.startswith(".") for part in rel.parts) or file == top:
                    continue
                try:
                    kind = detect_format(file.name, fmt)
                except UnsupportedDataFormat:
                    continue
                sources.append(Source(file, clean_filename(rel.as_posix()), kind, str(file)))
        elif path.is_file():
            sources.append(Source(path, clean_filename(path.name), detect_format(path.name, fmt), str(path)))
        else:
            raise NotFound(f"no such file or folder: {path}", hint="give data files or a dataset folder")
    if not sources:
        raise InvalidData("no data files to import (.jsonl, .csv, .parquet or .txt)")
    if len(sources) > MAX_FILES:
        raise DataTooLarge(f"{len(sources)} data files; a dataset holds at most {MAX_FILES}")
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise InvalidData(f"two data files would both be named {source.name!r} in the dataset",
                              hint="rename one of them")
        seen.add(source.name)
    return sources, readme


def _small(media_type: str, data: bytes, blobs: dict[str, bytes]) -> Layer:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return Layer(media_type, digest, len(data))


def check_manifest(store: Store, manifest: Manifest) -> DatasetConfig:
    """Check a dataset manifest whose blobs are in the store (a pull or a push): the config, every data
    layer against it (name, format, digest) and every row of every data file; raise InvalidData if not."""
    config = read_config(store, manifest)
    layers = manifest.data_layers()
    if len(layers) != len(config.files):
        raise InvalidData(f"the manifest has {len(layers)} data layers, its config lists {len(config.files)}")
    for layer, facts in zip(layers, config.files, strict=True):
        name = check_filename(layer.annotations.get(FILENAME, ""))
        if name != facts.name or layer.digest != facts.digest or layer.media_type != mt.DATA_TYPES[facts.format]:
            raise InvalidData(f"data layer {name} does not match the dataset config")
        found = inspect_file(store.blobs.path(layer.digest), facts.format, name)
        if found != facts:
            raise InvalidData(f"data file {name} holds {found.rows} rows and columns other than its config says")
    sheet = manifest.first(mt.DATASHEET)
    if sheet is None:
        raise InvalidData("the dataset has no datasheet")
    sheets.parse(store.blobs.read(sheet.digest).decode("utf-8", "replace"))
    return config


class Datasets:
    """The datasets of one store."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    # -- import ----------------------------------------------------------------------------------
    def plan(self, paths: Sequence[Path], name: str, *, license: str | None = None, datasheet: str | None = None,
             fmt: str | None = None) -> ImportPlan:
        """Validate files (or dataset folders) for import as ``name``; see :meth:`plan_sources`."""
        sources, readme = collect_sources(paths, fmt)
        if datasheet is None and readme is not None:
            datasheet = readme.read_text(encoding="utf-8")
        return self.plan_sources(sources, name, license=license, datasheet=datasheet)

    def plan_sources(self, sources: Sequence[Source], name: str, *, license: str | None = None,
                     datasheet: str | None = None) -> ImportPlan:
        """Every check of an import, in order, before anything is written: the name, the total size, the
        license, the datasheet's YAML, then every row of every file."""
        parsed = names.parse(name)
        if parsed.digest:
            raise InvalidRequest("name a dataset with a tag, not a digest")
        self._check_free(parsed)
        total = sum(s.path.stat().st_size for s in sources)
        if total > self.max_bytes:
            raise DataTooLarge(f"the data is {total} bytes; the most a dataset import accepts is {self.max_bytes} "
                               "bytes (OPENZOO_DATASET_MAX_BYTES)")
        given = resolve_license(license)
        card = sheets.parse(datasheet) if datasheet is not None else None
        declared = card.license_facts() if card is not None and card.metadata.get("license") else None
        if given is not None and declared is not None and declared.id not in (lookup(given).id, UNKNOWN_ID):
            raise InvalidRequest(f"the datasheet declares license {declared.id}, but {given} was given",
                                 hint="make --license and the datasheet's 'license' agree")
        if given is None and declared is not None and declared.id != UNKNOWN_ID:
            given = declared.id
        facts = lookup(given) if given else UNKNOWN
        files = tuple((s, inspect_file(s.path, s.format, s.name, label=s.label)) for s in sources)
        config = DatasetConfig(tuple(f for _, f in files), given)
        sheet = (sheets.complete(card, parsed.display, config.files, facts) if card is not None
                 else sheets.draft(parsed.display, config.files, facts))
        blobs: dict[str, bytes] = {}
        layers = [Layer(mt.DATA_TYPES[f.format], f.digest, f.size, {FILENAME: f.name, ROWS: str(f.rows)})
                  for f in config.files]
        layers.append(_small(mt.DATASHEET, sheet.render().encode("utf-8"), blobs))
        layers.append(_small(mt.LICENSE_FACTS, canonical.canonical_json(facts.to_json()), blobs))
        manifest = Manifest(_small(mt.DATASET_CONFIG, mt.canonical_json(config.to_json()), blobs), tuple(layers))
        return ImportPlan(parsed, files, config, sheet, facts, manifest, blobs)

    def _check_free(self, name: ModelName) -> None:
        if self.store.kind_of(name) == "model":
            raise Conflict(f'"{name.display}" is a model; a dataset needs a name of its own',
                           hint="choose another name, e.g. data/NAME:TAG")

    def commit(self, plan: ImportPlan) -> Iterator[Progress]:
        """Store a planned import: data blobs (each checked against its planned digest), the small blobs,
        then the name. The last event is ``success`` with the manifest digest."""
        self._check_free(plan.name)
        added: list[str] = []
        try:
            for source, facts in plan.files:
                status = f"copying {facts.name}"
                if self.store.blobs.exists(facts.digest):
                    yield Progress(status, digest=facts.digest, total=facts.size, completed=facts.size)
                    continue
                yield Progress(status, digest=facts.digest, total=facts.size, completed=0)
                self.store.blobs.put_file(source.path, expected=facts.digest)  # a file changed since is refused
                added.append(facts.digest)
                yield Progress(status, digest=facts.digest, total=facts.size, completed=facts.size)
            for digest, data in plan.small_blobs.items():
                if not self.store.blobs.exists(digest):
                    self.store.blobs.put([data], expected=digest)
                    added.append(digest)
            yield Progress("writing manifest")
            digest = self.store.tag(plan.name, plan.manifest, keep_history=True)
        except BaseException:
            self.store.remove_unreferenced(added)
            raise
        yield Progress("success", digest=digest, detail={"name": plan.name.display, "rows": plan.config.rows,
                                                         "data_digest": plan.data_digest})

    def import_files(self, paths: Sequence[Path], name: str, *, license: str | None = None,
                     datasheet: str | None = None, fmt: str | None = None) -> Iterator[Progress]:
        yield Progress("checking data")
        plan = self.plan(paths, name, license=license, datasheet=datasheet, fmt=fmt)
        yield Progress(f"validated {plan.config.rows} rows in {len(plan.files)} file(s)")
        yield from self.commit(plan)

    # -- reading ---------------------------------------------------------------------------------
    def _stored(self, name: ModelName, digest: str, modified_at: float) -> StoredDataset | None:
        manifest = self.store.load_manifest(digest)
        if manifest.kind != "dataset":
            return None
        return StoredDataset(name, digest, manifest, read_config(self.store, manifest), modified_at)

    def get(self, name: str) -> StoredDataset:
        """The dataset called ``name``: 404 when unknown, 400 when the name is a model's."""
        parsed = names.parse(name)
        entry = self.store.catalog.find(parsed)
        if entry is None:
            raise DatasetNotFound(parsed.display)
        found = self._stored(parsed, entry.manifest_digest, entry.modified_at)
        if found is None:
            raise NotSupported(f'"{parsed.display}" is a model, not a dataset', hint="run 'openzoo dataset list'")
        return found

    def find(self, name: str) -> StoredDataset | None:
        try:
            return self.get(name)
        except (DatasetNotFound, NotSupported):
            return None

    def list_datasets(self) -> list[StoredDataset]:
        """Every dataset, newest first (unreadable ones are left out, as ``list_models`` does)."""
        out = []
        for entry in self.store.catalog.entries():
            try:
                found = self._stored(names.parse(entry.display), entry.manifest_digest, entry.modified_at)
            except OpenzooError:
                continue
            if found is not None:
                out.append(found)
        return out

    def by_digest(self, digest: str) -> list[StoredDataset]:
        """Datasets whose manifest has ``digest`` (now, or before an edit such as a seal), else those whose
        data has it (the same data imported under another name)."""
        named = [found for name in self.store.catalog.names_for(digest) if (found := self.find(name)) is not None]
        return named or [d for d in self.list_datasets() if d.config.data_digest == digest]

    def delete(self, name: str) -> list[str]:
        found = self.get(name)
        return self.store.delete(found.name)

    def datasheet(self, name: str) -> ModelCard:
        found = self.get(name)
        layer = found.manifest.first(mt.DATASHEET)
        if layer is None:
            return sheets.draft(found.display, found.config.files, found.license)
        return sheets.parse(self.store.blobs.read(layer.digest).decode("utf-8"))

    def rows(self, found: StoredDataset) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """(file name, line or row number, row) over every data file, in manifest order."""
        for facts in found.config.files:
            label = f"{found.display}/{facts.name}"
            for number, row in iter_rows(self.store.blobs.path(facts.digest), facts.format, label):
                yield facts.name, number, row
