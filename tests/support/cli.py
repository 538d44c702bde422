"""Running the ``openzoo`` command as a person does, in a process of its own with its own home."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from openzoo import config
from openzoo.finetune.dequant import DequantCache, dequantized
from openzoo.models import DEFAULT_MODEL
from openzoo.services import Services


def openzoo_env(home: Path, host: str = "127.0.0.1:1", extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an ``openzoo`` process with ``home`` as OPENZOO_HOME (and ``extra`` settings).

    The caller's own OPENZOO_*/OLLAMA_* settings are dropped so that a developer's environment cannot
    change what a test sees; the context is 1024 tokens to keep the model's memory small. ``extra_env``
    adds settings (e.g. OPENZOO_CATALOG_URL).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env.update({"OPENZOO_HOME": str(home), "OPENZOO_HOST": host, "OPENZOO_CONTEXT_LENGTH": "1024"})
    env.update(extra or {})
    return env


def openzoo(home: Path, *args: str, host: str = "127.0.0.1:1", stdin: str | None = None,
            timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``home`` as OPENZOO_HOME; OPENZOO_HOST points at a closed port unless a server is meant."""
    return subprocess.run([sys.executable, "-m", "openzoo", *args], env=openzoo_env(home, host, env),
                          capture_output=True, text=True, input=stdin if stdin is not None else "", timeout=timeout)


def home_with_default_model(home: Path) -> Path:
    """``home`` with the embedded default model imported into its store (from the PyPI package)."""
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        for _ in services.transfers.pull(DEFAULT_MODEL):
            pass
    finally:
        services.close()
    return home


def dequantize_default_model(home: Path) -> Path:
    """Fill ``home``'s fine-tuning cache with the default model dequantized (about 1.1 GB, a minute on 2 cores)."""
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    try:
        with dequantized(services.store, services.models.resolve(DEFAULT_MODEL),
                         DequantCache.from_config(services.config)) as base:
            assert not base.from_cache
    finally:
        services.close()
    return home


def link_finetune_cache(src: Path, dst: Path) -> Path:
    """Give home ``dst`` the dequantized bases cached in home ``src``, hard-linked (the cache only reads them).

    A fine-tune then starts as a person's second one does; the first, which dequantizes, is the README
    tour's.
    """
    source, target = DequantCache.for_home(src), DequantCache.for_home(dst)
    for entry in source.entries():
        assert entry.path is not None
        (target.root / entry.path.name).mkdir(parents=True)
        for file in entry.path.iterdir():
            os.link(file, target.root / entry.path.name / file.name)
    return dst


def clone_home(src: Path, dst: Path) -> Path:
    """Copy a home cheaply: blobs hard-linked (tamper helpers break the link first), the catalog backed up."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "blobs":
            (dst / "blobs").mkdir()
            for blob in item.iterdir():
                if blob.name.startswith("sha256-"):
                    os.link(blob, dst / "blobs" / blob.name)
        elif item.name.startswith("catalog.sqlite"):
            continue
        elif item.is_dir():
            shutil.copytree(item, dst / item.name)
        else:
            shutil.copy2(item, dst / item.name)
    with sqlite3.connect(src / "catalog.sqlite") as source, sqlite3.connect(dst / "catalog.sqlite") as target:
        source.backup(target)
    return dst
