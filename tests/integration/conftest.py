"""Real things: the default model in a store, and a real ``openzoo serve`` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openzoo import config
from openzoo.models import DEFAULT_MODEL
from openzoo.services import Services


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OPENZOO_HOME holding the embedded default model, imported once per session."""
    home = tmp_path_factory.mktemp("model-home")
    services = Services(config.load({"OPENZOO_HOME": str(home)}))
    for _ in services.models.pull(DEFAULT_MODEL):
        pass
    services.close()
    return home


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


def start_server(home: Path, log: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env.update({"OPENZOO_HOME": str(home), "OPENZOO_HOST": f"127.0.0.1:{port}", "OPENZOO_CONTEXT_LENGTH": "2048",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    out = log.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "openzoo", "serve"], env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"openzoo serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return Server(url, home, process, log)
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"openzoo serve did not answer in time:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One live server for the session, serving the default model."""
    srv = start_server(model_home, tmp_path_factory.mktemp("logs") / "server.log")
    yield srv
    stop_server(srv)
