"""Shared fixtures: a private OPENZOO_HOME per test, a clean environment, tiny GGUF files.

Integration fixtures (the real default model, a live server) live in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from openzoo import config
from support.gguf_files import write_gguf
from support.postgres import catalog_url, postgres, postgres_catalogs, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def clean_environ(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own store and none of the caller's OPENZOO_/OLLAMA_ settings."""
    for key in list(os.environ):
        if key.startswith(("OPENZOO_", "OLLAMA_")):
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("openzoo-home")
    monkeypatch.setenv("OPENZOO_HOME", str(home))
    yield home


@pytest.fixture
def home(clean_environ: Path) -> Path:
    return clean_environ


@pytest.fixture
def cfg(home: Path) -> config.Config:
    return config.load({"OPENZOO_HOME": str(home)})


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "tiny.gguf")
