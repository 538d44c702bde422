"""The dequantized-bases cache: a bounded folder outside the model store, listed and emptied; the old
in-store layout (pinned blobs) is listed and removed with it, on both catalogs."""

from __future__ import annotations

import os
from pathlib import Path

from openzoo.finetune import dequant
from openzoo.finetune.dequant import DequantCache
from openzoo.schema import open_store


def made(cache: DequantCache, size: int) -> Path:
    """A converted folder as ``_convert`` leaves it, in the cache's scratch space (kept by the caller)."""
    cache.root.mkdir(parents=True, exist_ok=True)
    folder = cache.root / f".making-test-{size}"
    folder.mkdir()
    (folder / dequant.WEIGHTS).write_bytes(b"w" * size)
    (folder / "config.json").write_text("{}")
    return folder


def test_keep_lookup_and_evict_least_recently_used(tmp_path: Path) -> None:
    cache = DequantCache.for_home(tmp_path, max_bytes=400)
    a = cache.keep("sha256:aa", made(cache, 100))
    b = cache.keep("sha256:bb", made(cache, 101))
    assert a is not None and b is not None and cache.lookup("sha256:aa") == a
    os.utime(a / "entry.json", (1, 1))  # a: used long ago
    os.utime(b / "entry.json")
    assert [e.gguf_digest for e in cache.entries()] == ["sha256:aa", "sha256:bb"]
    # three entries (weights + small files) pass 400 bytes: the oldest goes
    c = cache.keep("sha256:cc", made(cache, 102))
    assert c is not None and cache.lookup("sha256:aa") is None
    assert {e.gguf_digest for e in cache.entries()} == {"sha256:bb", "sha256:cc"}
    assert sum(e.size for e in cache.entries()) <= 400


def test_a_base_larger_than_the_bound_is_not_kept(tmp_path: Path) -> None:
    cache = DequantCache.for_home(tmp_path, max_bytes=0)
    folder = made(cache, 10)
    assert cache.keep("sha256:aa", folder) is None and folder.is_dir()
    assert cache.entries() == []


def test_clear_removes_both_layouts(tmp_path: Path, catalog_url: str | None) -> None:
    store = open_store(tmp_path, catalog_url)
    cache = DequantCache.for_home(tmp_path)
    cache.keep("sha256:aa", made(cache, 10))
    weights, files = store.blobs.put_bytes(b"weights"), store.blobs.put_bytes(b"files")
    with store.catalog.transaction() as conn:  # what zoos before the cache folder wrote
        for blob in (weights, files):
            conn.execute("INSERT INTO blobs(digest, size) VALUES (?, ?)", (blob.digest, blob.size))
            conn.execute("INSERT INTO manifest_refs VALUES (?, ?)", (dequant.PIN_PREFIX + "sha256:gg", blob.digest))
        conn.execute("INSERT INTO finetune_dequant VALUES (?, ?, ?, ?)",
                     ("sha256:gg", weights.digest, files.digest, 1.0))
    legacy = dequant.legacy_entries(store)
    assert [(e.gguf_digest, e.size, e.legacy) for e in legacy] == [("sha256:gg", len(b"weights") + len(b"files"), True)]
    removed = dequant.clear(store, cache)
    assert {e.gguf_digest for e in removed} == {"sha256:aa", "sha256:gg"}
    assert cache.entries() == [] and dequant.legacy_entries(store) == []
    assert not store.blobs.exists(weights.digest) and not store.blobs.exists(files.digest)
    assert store.catalog.integrity_check() == []
    store.close()
