"""The store under ``OPENZOO_HOME``: blobs, manifests and the catalog, kept consistent together.

Order of every write: blobs first (atomic files), manifest blob next, catalog row last (one
transaction). A reader that finds a name in the catalog therefore always finds every file it needs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from openzoo.errors import Conflict, StoreCorrupt
from openzoo.names import ModelName
from openzoo.store.blobs import BlobInfo, BlobStore
from openzoo.store.catalog import Catalog, CatalogEntry
from openzoo.store.db import sqlite_path
from openzoo.store.manifests import Manifest
from openzoo.store.migrations import STORE as STORE_MIGRATIONS
from openzoo.store.migrations import Step

# A blob file that no catalog row refers to may belong to an import or upload still in flight in
# another process; it is swept only once it is this old.
SWEEP_GRACE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A resolved model: its catalog entry, manifest and the manifest's digest."""

    entry: CatalogEntry
    manifest: Manifest

    @property
    def digest(self) -> str:
        return self.entry.manifest_digest


@dataclass(frozen=True, slots=True)
class BlobCheck:
    digest: str
    ok: bool
    detail: str


class Store:
    """Everything openzoo keeps on disk, opened once per process."""

    def __init__(self, home: Path, catalog_url: str | None = None, *,
                 migrations: Sequence[Step] = STORE_MIGRATIONS) -> None:
        """Open the store under ``home``; its catalog is ``catalog_url`` (default ``home/catalog.sqlite``).

        ``migrations`` is the catalog's schema in order: the process's services pass every package's
        (:data:`openzoo.schema.MIGRATIONS`); a bare store has the store's own tables only.

        Servers sharing a PostgreSQL catalog must share ``home`` too (blobs and keys; see
        ``docs/deployment.md``): a catalog row is only as good as the files it names.
        """
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(home / "blobs")
        own = home / "catalog.sqlite"
        url = catalog_url or str(own)
        path = sqlite_path(url)
        is_own = path is not None and path.resolve() == own.resolve()
        had_own = own.exists()
        if is_own and not had_own and (home / "catalog.id").exists():
            raise Conflict(f"OPENZOO_HOME {home} belongs to a catalog elsewhere (see catalog.id)",
                           hint="set OPENZOO_CATALOG_URL to the catalog this home is used with (docs/deployment.md)")
        self.catalog = Catalog.open(url, migrations)
        try:
            self._bind(is_own, had_own)
        except BaseException:
            self.catalog.close()
            raise

    def _bind(self, is_own: bool, had_own: bool) -> None:
        """Hold this home to one catalog (its id in ``home/catalog.id``); refuse any other.

        Why: blobs are swept when no catalog row names them, so a home opened with the wrong catalog
        (a shared home without OPENZOO_CATALOG_URL, or a home with its own SQLite catalog pointed at an
        empty PostgreSQL one) would see every model's files as garbage. Refusing to open is the only
        safe answer, and it comes before any sweep (and, for a shared home opened without its URL,
        before a stray SQLite catalog is made in it).
        """
        marker = self.home / "catalog.id"
        identity = self.catalog.identity()
        try:
            bound: str | None = marker.read_text().strip()
        except FileNotFoundError:
            bound = None
        if bound == identity:
            return
        if bound is not None:
            raise Conflict(f"OPENZOO_HOME {self.home} belongs to another catalog than {self.catalog.location}",
                           hint="set OPENZOO_CATALOG_URL to the catalog this home is used with "
                                "(docs/deployment.md), or use another OPENZOO_HOME")
        if not is_own and had_own:
            raise Conflict(f"OPENZOO_HOME {self.home} has a catalog of its own (catalog.sqlite), not "
                           f"{self.catalog.location}",
                           hint="unset OPENZOO_CATALOG_URL, or give the shared catalog a home of its own")
        tmp = marker.with_name(f".catalog.id.{os.getpid()}.tmp")
        tmp.write_text(identity + "\n")
        os.replace(tmp, marker)

    def close(self) -> None:
        self.catalog.close()

    def recover(self, *, grace_seconds: float = SWEEP_GRACE_SECONDS) -> list[str]:
        """Start-up clean-up after a crash: temp files of dead writers, blob files nobody refers to."""
        removed = [p.name for p in self.blobs.remove_partials()]
        referenced = self.catalog.referenced_blobs()
        now = time.time()
        for digest in list(self.blobs.digests()):
            if digest in referenced:
                continue
            path = self.blobs.path(digest)
            try:
                if now - path.stat().st_mtime >= grace_seconds:
                    self.blobs.delete(digest)
                    removed.append(path.name)
            except FileNotFoundError:
                continue
        return removed

    def remove_unreferenced(self, digests: Iterable[str]) -> None:
        """Remove those of ``digests`` no catalog row refers to: what a failed import or pull added."""
        referenced = self.catalog.referenced_blobs()
        for digest in digests:
            if digest not in referenced:
                self.blobs.delete(digest)

    def write_manifest(self, manifest: Manifest) -> BlobInfo:
        return self.blobs.put_bytes(manifest.to_bytes())

    def load_manifest(self, digest: str) -> Manifest:
        try:
            return Manifest.from_bytes(self.blobs.read(digest))
        except FileNotFoundError as exc:
            raise StoreCorrupt(f"manifest {digest} is missing") from exc

    def resolve(self, name: ModelName) -> StoredModel:
        entry = self.catalog.get(name)
        return StoredModel(entry, self.load_manifest(entry.manifest_digest))

    def kind_of(self, name: ModelName) -> str | None:
        """``model`` or ``dataset`` for a stored name, None for a free one."""
        entry = self.catalog.find(name)
        return None if entry is None else self.load_manifest(entry.manifest_digest).kind

    def tag(self, name: ModelName, manifest: Manifest, *, keep_history: bool = False) -> str:
        """Store ``manifest`` and point ``name`` at it; every layer blob must already exist. A name keeps
        its kind: a model's name never silently becomes a dataset's, nor the other way round."""
        kind = self.kind_of(name)
        if kind is not None and kind != manifest.kind:
            raise Conflict(f'"{name.display}" is a {kind}; a {manifest.kind} needs a name of its own',
                           hint=f"remove the {kind} first, or choose another name")
        for digest in manifest.blob_digests():
            if not self.blobs.exists(digest):
                raise StoreCorrupt(f"cannot tag {name.display}: blob {digest} is missing")
        info = self.write_manifest(manifest)
        blobs = [(info.digest, info.size)]
        blobs += [(manifest.config.digest, manifest.config.size)]
        blobs += [(layer.digest, layer.size) for layer in manifest.layers]
        self.catalog.tag(name, info.digest, blobs, keep_history=keep_history)
        return info.digest

    def delete(self, name: ModelName, *, prune: bool = True) -> list[str]:
        """Remove a name and the blobs only it needed; return the removed digests."""
        gone = self.catalog.delete(name)
        if prune:
            for digest in gone:
                self.blobs.delete(digest)
        return gone

    def manifest_size(self, manifest: Manifest) -> int:
        return manifest.config.size + sum(layer.size for layer in manifest.layers)

    def verify(self, progress: Callable[[int], None] | None = None) -> Iterator[BlobCheck]:
        """Re-hash every blob the catalog refers to, and check the catalog itself."""
        for problem in self.catalog.integrity_check():
            yield BlobCheck("catalog", False, problem)
        for digest in sorted(self.catalog.referenced_blobs()):
            if not self.blobs.exists(digest):
                yield BlobCheck(digest, False, "missing")
                continue
            actual = self.blobs.hash_file(digest, progress=progress)
            if actual == digest:
                self.catalog.mark_verified(digest, time.time())
                yield BlobCheck(digest, True, "ok")
            else:
                self.catalog.mark_verified(digest, None)
                yield BlobCheck(digest, False, f"content hashes to {actual}")
