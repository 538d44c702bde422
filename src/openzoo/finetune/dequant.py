"""A stored model as a trainable PyTorch model: GGUF → transformers, with the result cached.

A model imported from a safetensors folder (``openzoo import DIR``) needs none of this: its original
weights and tokenizer files are layers of its own, so :func:`dequantized` lays them out as a folder
(links to the blobs, nothing copied or converted) and transformers loads them exactly.

transformers dequantizes a GGUF file into float32 weights (about a minute for the default model on two
cores). The result (``model.safetensors`` plus the tokenizer and config files, about 1.1 GB for the
default model's 253 MB GGUF) is kept in a *cache*, not in the model store: one folder per GGUF digest under
``OPENZOO_HOME/cache/finetune/``, so a second fine-tune of the same base starts in seconds. The cache is
bounded (``OPENZOO_FINETUNE_CACHE_BYTES``: the least recently used bases go first; 0 keeps nothing),
listed by ``openzoo list --cache`` and emptied by ``openzoo rm --cache``. It never counts in a model's size,
and removing it loses nothing but time. (Float32, not bf16: a cached base must train exactly like a
freshly dequantized one.)

Zoos from before kept the cache as pinned store blobs (table ``finetune_dequant``, ``pin:`` refs);
:func:`legacy_entries` lists those and :func:`clear` removes them with the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo.config import Config
from openzoo.errors import NotSupported
from openzoo.events import Progress
from openzoo.models import ModelSpec
from openzoo.store import manifests as mt
from openzoo.store import migrations
from openzoo.store.db import Database
from openzoo.store.migrations import run_script
from openzoo.store.store import Store

__all__ = ["CacheEntry", "DequantCache", "HFBase", "clear", "dequantized", "legacy_entries"]

PIN_PREFIX = "pin:finetune-dequant:"
WEIGHTS = "model.safetensors"
_ENTRY = "entry.json"
#: ``OPENZOO_FINETUNE_CACHE_BYTES``'s default (config.py declares the setting).
DEFAULT_CACHE_BYTES = 4 << 30


def _m300(conn: Database) -> None:
    run_script(
        conn,
        """
        CREATE TABLE finetune_dequant (
            gguf_digest TEXT PRIMARY KEY,
            weights_digest TEXT NOT NULL,
            files_digest TEXT NOT NULL,
            created_at REAL NOT NULL
        )
        """,
    )


MIGRATION = migrations.Step(300, "finetune: dequantized weights cache", _m300)


@dataclass(frozen=True, slots=True)
class HFBase:
    """A transformers model folder (config, tokenizer, ``model.safetensors``) for one GGUF base."""

    folder: Path
    gguf_digest: str
    from_cache: bool
    load_seconds: float
    #: ``"gguf"`` (dequantized, maybe from the cache) or ``"safetensors"`` (the imported weights as they are).
    source: str = "gguf"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached base: the GGUF digest it was made from, its bytes on disk, when it was last used."""

    gguf_digest: str
    size: int
    last_used: float
    path: Path | None  # None: an entry of the old, in-store layout
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class DequantCache:
    """The folder of cached dequantized bases and the most bytes it may keep."""

    root: Path
    max_bytes: int = DEFAULT_CACHE_BYTES

    @classmethod
    def for_home(cls, home: Path, max_bytes: int = DEFAULT_CACHE_BYTES) -> DequantCache:
        return cls(Path(home) / "cache" / "finetune", max_bytes)

    @classmethod
    def from_config(cls, config: Config) -> DequantCache:
        return cls.for_home(config.home, config.finetune_cache_bytes)

    def _folder(self, digest: str) -> Path:
        return self.root / digest.removeprefix("sha256:")

    def lookup(self, digest: str) -> Path | None:
        """The folder cached for ``digest`` (marked as just used), or None."""
        folder = self._folder(digest)
        if not (folder / _ENTRY).is_file() or not (folder / WEIGHTS).is_file():
            return None
        os.utime(folder / _ENTRY)
        return folder

    def entries(self) -> list[CacheEntry]:
        """Cached bases, least recently used first."""
        found = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                marker = folder / _ENTRY
                if not marker.is_file():
                    continue
                size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
                digest = str(json.loads(marker.read_text()).get("gguf_digest", "sha256:" + folder.name))
                found.append(CacheEntry(digest, size, marker.stat().st_mtime, folder))
        return sorted(found, key=lambda e: e.last_used)

    def keep(self, digest: str, made: Path) -> Path | None:
        """Move the folder ``made`` (in :meth:`scratch`) into the cache; evict down to the bound.

        Returns the cached folder, or None when the bound leaves no room for it (``made`` stays as is).
        """
        size = sum(p.stat().st_size for p in made.iterdir() if p.is_file())
        if size > self.max_bytes:
            return None
        (made / _ENTRY).write_text(json.dumps({"gguf_digest": digest, "created_at": time.time()}))
        target = self._folder(digest)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(made, target)
        self.evict(keep=target)
        return target

    def evict(self, keep: Path | None = None) -> list[CacheEntry]:
        """Remove the least recently used entries until the cache fits its bound; return those removed."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.path is None or entry.path == keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size
            removed.append(entry)
        return removed

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A temporary folder next to the cache (so keeping it is a rename), removed unless kept."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".making-", dir=self.root))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def gguf_digest(spec: ModelSpec) -> str:
    """The digest of a model's GGUF weights blob (what the cache is keyed by)."""
    layer = spec.manifest.first(mt.MODEL) if spec.manifest is not None else None
    if layer is None:
        raise NotSupported(f"{spec.name.display} has no GGUF weights to fine-tune")
    return layer.digest


def legacy_entries(store: Store) -> list[CacheEntry]:
    """Cached bases of the old layout (pinned store blobs) still in ``store``."""
    rows = store.catalog.connection.execute(
        "SELECT gguf_digest, weights_digest, files_digest, created_at FROM finetune_dequant").fetchall()
    out = []
    for digest, weights, files, created in rows:
        size = sum(store.blobs.size(d) for d in (weights, files) if store.blobs.exists(d))
        out.append(CacheEntry(str(digest), size, float(created), None, legacy=True))
    return out


def clear(store: Store, cache: DequantCache) -> list[CacheEntry]:
    """Empty the cache (both layouts); return what was removed."""
    removed = cache.entries()
    for entry in removed:
        if entry.path is not None:
            shutil.rmtree(entry.path, ignore_errors=True)
    legacy = legacy_entries(store)
    if legacy:
        with store.catalog.transaction() as conn:
            conn.execute("DELETE FROM finetune_dequant")
        for blob in store.catalog.drop_pins(PIN_PREFIX):  # unlinked after the commit, as a model's removal does
            store.blobs.delete(blob)
    return removed + legacy


def _convert(spec: ModelSpec, folder: Path) -> None:
    """Dequantize ``spec``'s GGUF into ``folder``: config, tokenizer files and ``model.safetensors``."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # openzoo reports its own progress
    gguf = spec.weights
    quiet = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # transformers' GGUF conversion draws its own tqdm bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise NotSupported(f"{spec.name.display} cannot be fine-tuned: transformers cannot load its GGUF ({exc})",
                           hint="fine-tune a model whose architecture transformers supports") from exc
    finally:
        if quiet is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = quiet
    config: dict[str, Any] = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    config["torch_dtype"] = "float32"
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    tokenizer.save_pretrained(str(folder))
    tied = bool(config.get("tie_word_embeddings"))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if not (tied and k == "lm_head.weight")}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})


@contextmanager
def dequantized(store: Store, spec: ModelSpec, cache: DequantCache | None = None) -> Iterator[HFBase]:
    """A transformers folder for ``spec``, from the cache when possible (else converted and cached).

    The folder is temporary; its files link to the cached ones (nothing copied). ``cache`` defaults to
    the home's, with the default bound (callers with a :class:`Config` pass ``DequantCache.from_config``).
    """
    cache = cache or DequantCache.for_home(store.home)
    digest = gguf_digest(spec)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="openzoo-ft-") as tmp:
        folder = Path(tmp)
        if _link_imported(store, spec, folder):
            yield HFBase(folder, digest, True, time.monotonic() - started, source="safetensors")
            return
        hit = cache.lookup(digest)
        if hit is not None:
            _link_files(hit, folder)
            yield HFBase(folder, digest, True, time.monotonic() - started)
            return
        with cache.scratch() as made:
            _convert(spec, made)
            kept = cache.keep(digest, made)
            _link_files(kept or made, folder)
            yield HFBase(folder, digest, False, time.monotonic() - started)


def _link_files(source: Path, folder: Path) -> None:
    for path in source.iterdir():
        if path.name != _ENTRY:
            (folder / path.name).symlink_to(path)


def _link_imported(store: Store, spec: ModelSpec, folder: Path) -> bool:
    """Lay out an imported folder's weights and files under ``folder``; False when the model has none."""
    from openzoo.formats.safetensors_folder import FILENAME_ANNOTATION, HF_FILE, SAFETENSORS_WEIGHTS

    manifest = spec.manifest
    if manifest is None or not manifest.layers_of(SAFETENSORS_WEIGHTS):
        return False
    for layer in [*manifest.layers_of(SAFETENSORS_WEIGHTS), *manifest.layers_of(HF_FILE)]:
        name = Path(layer.annotations.get(FILENAME_ANNOTATION, "")).name
        if not name:
            raise NotSupported(f"{spec.name.display}: a stored weights layer has no file name")
        (folder / name).symlink_to(store.blobs.path(layer.digest))
    return True


def progress_for(base: HFBase) -> Progress:
    if base.source == "safetensors":
        return Progress(f"loaded base: imported safetensors weights in {base.load_seconds:.1f}s")
    how = "cached dequantized weights" if base.from_cache else "dequantized GGUF weights (cached for next time)"
    return Progress(f"loaded base: {how} in {base.load_seconds:.1f}s")
