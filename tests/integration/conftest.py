"""Real things: the default model in a store, and a real ``openzoo serve`` on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import dequantize_default_model, home_with_default_model
from support.server import Server, start_server, stop_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OPENZOO_HOME holding the embedded default model, imported once per session."""
    return home_with_default_model(tmp_path_factory.mktemp("model-home"))


@pytest.fixture(scope="session")
def dequantized_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose fine-tuning cache holds the default model dequantized, made once per session.

    The fine-tuning modules link it into their own homes (``support.cli.link_finetune_cache``) instead
    of each dequantizing the base again (a minute or more of a 2-core machine each).
    """
    return dequantize_default_model(home_with_default_model(tmp_path_factory.mktemp("dequantized-home")))


@pytest.fixture(scope="session")
def server(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One live server for the session, serving the default model."""
    srv = start_server(model_home, tmp_path_factory.mktemp("logs") / "server.log")
    yield srv
    stop_server(srv)
