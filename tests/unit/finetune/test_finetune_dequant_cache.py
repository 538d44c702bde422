"""The dequantized-weights cache's catalog rows, on both catalogs: pinned, pinned again, forgotten."""

from __future__ import annotations

from pathlib import Path

from openzoo.finetune import dequant
from openzoo.schema import open_store


def test_pin_again_and_forget(tmp_path: Path, catalog_url: str | None) -> None:
    store = open_store(tmp_path, catalog_url)
    weights, files = store.blobs.put_bytes(b"weights"), store.blobs.put_bytes(b"files")
    for _ in range(2):  # pinning again replaces the row and keeps one reference per blob
        dequant._pin(store, "sha256:gguf", (weights.digest, weights.size), (files.digest, files.size))
    assert dequant.cached(store, "sha256:gguf") == (weights.digest, files.digest)
    assert {weights.digest, files.digest} <= store.catalog.referenced_blobs()
    assert store.catalog.integrity_check() == []
    dequant.forget(store, "sha256:gguf")
    assert dequant.cached(store, "sha256:gguf") is None
    store.close()
