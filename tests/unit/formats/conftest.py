"""Fixtures for the format tests; the GGUF writer itself lives in ``tests/support``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from support.gguf_files import write_gguf

MakeGGUF = Callable[..., Path]


@pytest.fixture
def make_gguf(tmp_path: Path) -> MakeGGUF:
    counter = iter(range(1_000_000))

    def make(**kwargs: object) -> Path:
        return write_gguf(tmp_path / f"model{next(counter)}.gguf", **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def tiny_gguf(make_gguf: MakeGGUF) -> Path:
    return make_gguf()
