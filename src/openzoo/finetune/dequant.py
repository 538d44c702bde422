"""A stored model as a trainable PyTorch model: GGUF → transformers, with the result cached.

A model imported from a safetensors folder (``openzoo import DIR``) needs none of this: its original
weights and tokenizer files are layers of its own, so :func:`dequantized` lays them out as a folder
(links to the blobs, nothing copied or converted) and transformers loads them exactly.

transformers dequantizes a GGUF file into float32 weights (about a minute for the default model on two
cores). The dequantized weights (safetensors) and the tokenizer/config files (a tar) are kept as store
blobs keyed by the GGUF's digest, pinned in the catalog (``manifest_refs`` rows under ``pin:``) so
garbage collection leaves them alone, so a second fine-tune of the same base starts in seconds.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openzoo.errors import NotSupported
from openzoo.events import Progress
from openzoo.models import ModelSpec
from openzoo.store import manifests as mt
from openzoo.store import migrations
from openzoo.store.db import Database
from openzoo.store.migrations import run_script
from openzoo.store.store import Store

__all__ = ["HFBase", "cached", "dequantized", "forget"]

PIN_PREFIX = "pin:finetune-dequant:"


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


def gguf_digest(spec: ModelSpec) -> str:
    """The digest of a model's GGUF weights blob (what the cache is keyed by)."""
    layer = spec.manifest.first(mt.MODEL) if spec.manifest is not None else None
    if layer is None:
        raise NotSupported(f"{spec.name.display} has no GGUF weights to fine-tune")
    return layer.digest


def cached(store: Store, digest: str) -> tuple[str, str] | None:
    """``(weights_digest, files_digest)`` of a cached dequantization, when both blobs are still there."""
    row = store.catalog.connection.execute(
        "SELECT weights_digest, files_digest FROM finetune_dequant WHERE gguf_digest = ?", (digest,)).fetchone()
    if row is None or not (store.blobs.exists(row[0]) and store.blobs.exists(row[1])):
        return None
    return str(row[0]), str(row[1])


def forget(store: Store, digest: str) -> None:
    """Drop the cache entry of one GGUF (the blobs go at the next garbage collection)."""
    with store.catalog.transaction() as conn:
        conn.execute("DELETE FROM finetune_dequant WHERE gguf_digest = ?", (digest,))
        conn.execute("DELETE FROM manifest_refs WHERE manifest_digest = ?", (PIN_PREFIX + digest,))


def _pin(store: Store, digest: str, weights: tuple[str, int], files: tuple[str, int]) -> None:
    with store.catalog.transaction() as conn:
        for blob, size in (weights, files):
            conn.execute("INSERT INTO blobs(digest, size) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
                         (blob, size))
            conn.execute("INSERT INTO manifest_refs VALUES (?, ?) ON CONFLICT (manifest_digest, blob_digest) "
                         "DO NOTHING", (PIN_PREFIX + digest, blob))
        conn.execute("INSERT INTO finetune_dequant VALUES (?, ?, ?, ?) ON CONFLICT (gguf_digest) DO UPDATE SET "
                     "weights_digest = excluded.weights_digest, files_digest = excluded.files_digest, "
                     "created_at = excluded.created_at", (digest, weights[0], files[0], time.time()))


def _tar_folder(folder: Path, names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(names):
            tar.add(folder / name, arcname=name)
    return buffer.getvalue()


def _convert(spec: ModelSpec, folder: Path) -> list[str]:
    """Dequantize ``spec``'s GGUF into ``folder``; return the small files written (besides weights)."""
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
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return [p.name for p in folder.iterdir() if p.name != "model.safetensors"]


@contextmanager
def dequantized(store: Store, spec: ModelSpec) -> Iterator[HFBase]:
    """A transformers folder for ``spec``, from the cache when possible (else converted and cached).

    The folder is temporary; its ``model.safetensors`` links to the cached blob (nothing copied).
    """
    digest = gguf_digest(spec)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="openzoo-ft-") as tmp:
        folder = Path(tmp)
        if _link_imported(store, spec, folder):
            yield HFBase(folder, digest, True, time.monotonic() - started, source="safetensors")
            return
        hit = cached(store, digest)
        if hit is None:
            names = _convert(spec, folder)
            weights = store.blobs.put_file(folder / "model.safetensors")
            files = store.blobs.put_bytes(_tar_folder(folder, names))
            _pin(store, digest, (weights.digest, weights.size), (files.digest, files.size))
        else:
            with tarfile.open(store.blobs.path(hit[1])) as tar:
                tar.extractall(folder, filter="data")
            (folder / "model.safetensors").symlink_to(store.blobs.path(hit[0]))
        yield HFBase(folder, digest, hit is not None, time.monotonic() - started)


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
