from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from openzoo import names
from openzoo.errors import Conflict, ModelNotFound, StoreCorrupt
from openzoo.store import manifests as mt
from openzoo.store.manifests import Layer, Manifest
from openzoo.store.store import Store


def make_model(store: Store, payload: bytes, name: str) -> Manifest:
    weights = store.blobs.put_bytes(payload)
    config = store.blobs.put_bytes(mt.canonical_json({"model_format": "gguf"}))
    manifest = Manifest(Layer(mt.CONFIG_MEDIA_TYPE, config.digest, config.size),
                        (Layer(mt.MODEL, weights.digest, weights.size),))
    store.tag(names.parse(name), manifest)
    return manifest


def test_tag_resolve_list(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    manifest = make_model(store, b"weights-a", "a:1")
    stored = store.resolve(names.parse("A:1"))  # names match case-insensitively
    assert stored.manifest == manifest
    assert [e.display for e in store.catalog.entries()] == ["a:1"]


def test_manifest_round_trip_is_canonical() -> None:
    manifest = Manifest(Layer(mt.CONFIG_MEDIA_TYPE, "sha256:" + "0" * 64, 2),
                        (Layer(mt.MODEL, "sha256:" + "1" * 64, 3, {"k": "v"}),))
    data = manifest.to_bytes()
    assert Manifest.from_bytes(data) == manifest
    assert b" " not in data
    with pytest.raises(StoreCorrupt):
        Manifest.from_bytes(b"{not json")


def test_delete_collects_only_unshared_blobs(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    a = make_model(store, b"shared-weights", "a")
    store.catalog.copy(names.parse("a"), names.parse("b"))
    make_model(store, b"other", "c")
    assert store.catalog.blob_refcount(a.layers[0].digest) == 2
    assert store.delete(names.parse("a")) == []  # b still uses everything
    assert store.blobs.exists(a.layers[0].digest)
    gone = store.delete(names.parse("b"))
    assert a.layers[0].digest in gone
    assert not store.blobs.exists(a.layers[0].digest)
    assert store.blobs.exists(store.catalog.get(names.parse("c")).manifest_digest)
    with pytest.raises(ModelNotFound, match='model "b:latest" not found'):
        store.delete(names.parse("b"))


def test_copy_to_itself_is_refused(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    make_model(store, b"w", "a")
    with pytest.raises(Conflict):
        store.catalog.copy(names.parse("a"), names.parse("a:latest"))


def test_tag_refuses_missing_blobs(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    manifest = Manifest(Layer(mt.CONFIG_MEDIA_TYPE, "sha256:" + "0" * 64, 2), ())
    with pytest.raises(StoreCorrupt, match="missing"):
        store.tag(names.parse("x"), manifest)
    assert store.catalog.entries() == []


def test_recover_sweeps_old_unreferenced_blobs_and_partials(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    make_model(store, b"kept", "kept")
    orphan = store.blobs.put_bytes(b"orphan from a crashed import")
    partial = store.blobs.root / ".tmp-999999999-5.partial"
    partial.write_bytes(b"half")
    fresh = store.blobs.put_bytes(b"upload in flight")
    old = time.time() - 7200
    os.utime(store.blobs.path(orphan.digest), (old, old))
    removed = store.recover()
    assert partial.name in removed
    assert not store.blobs.exists(orphan.digest)
    assert store.blobs.exists(fresh.digest)  # younger than the grace period
    assert [c.ok for c in store.verify()] == [True, True, True]


def test_verify_reports_damaged_blob(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    manifest = make_model(store, b"weights", "m")
    store.blobs.path(manifest.layers[0].digest).write_bytes(b"weightz")
    failures = [c for c in store.verify() if not c.ok]
    assert [c.digest for c in failures] == [manifest.layers[0].digest]


def test_migrations_recorded_once(tmp_path: Path, catalog_url: str | None) -> None:
    Store(tmp_path, catalog_url).close()
    store = Store(tmp_path, catalog_url)
    rows = store.catalog.connection.execute("SELECT id FROM _migrations").fetchall()
    assert rows == sorted(set(rows))
    assert (1,) in rows


def test_history_keeps_replaced_manifests_until_removal(tmp_path: Path, catalog_url: str | None) -> None:
    store = Store(tmp_path, catalog_url)
    first = make_model(store, b"weights", "m")
    card = store.blobs.put_bytes(b"# card v1")
    second = first.replace_layers(mt.CARD, [Layer(mt.CARD, card.digest, card.size)])
    old_digest = store.catalog.get(names.parse("m")).manifest_digest
    store.tag(names.parse("m"), second, keep_history=True)
    assert [d for d, _ in store.catalog.history(names.parse("m"))] == [old_digest]
    assert store.blobs.exists(old_digest)  # the old manifest is still stored
    gone = store.delete(names.parse("m"))
    assert old_digest in gone and card.digest in gone
    assert store.catalog.history(names.parse("m")) == []
