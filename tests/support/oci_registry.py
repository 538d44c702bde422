"""A real OCI distribution registry (``docker-registry``, the CNCF distribution server) on a free loopback port.

The registry keeps its content under a temporary directory, so tests can read and tamper with its files
(:meth:`Registry.blob_file`). The Makefile installs the Debian package; without the binary the fixture
skips, saying so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.server import free_port, stop_process, wait_ready

BINARY = "docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Registry:
    host: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        hexdigest = digest.removeprefix("sha256:")
        return self.root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"

    @contextmanager
    def flipped(self, digest: str) -> Iterator[None]:
        """One bit of a blob flipped in the registry's own storage (every repository sees it), restored after."""
        path = self.blob_file(digest)
        original = path.read_bytes()
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        path.write_bytes(bytes(changed))
        try:
            yield
        finally:
            path.write_bytes(original)


def start_registry(root: Path) -> Registry:
    """Start ``docker-registry serve`` with storage under ``root``; deletes enabled, logs at warn level."""
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.skip(f"{BINARY} is not installed (Debian package docker-registry; 'make test' installs it)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: openzoo-tests\n"
    )
    log = root / "registry.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               env=env)
    registry = Registry(f"127.0.0.1:{port}", root, process, log)
    try:
        ready = wait_ready(process, f"{registry.url}/v2/", 30)
    except RuntimeError as exc:
        raise RuntimeError(f"docker-registry {exc}:\n{log.read_text()}") from None
    if not ready:
        stop_registry(registry)
        raise RuntimeError(f"docker-registry did not answer in time:\n{log.read_text()}")
    return registry


def stop_registry(registry: Registry) -> None:
    stop_process(registry.process)


@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One registry per test module, stopped at its end."""
    registry = start_registry(tmp_path_factory.mktemp("oci-registry"))
    yield registry
    stop_registry(registry)


# -- raw registry access (as an operator, or an attacker, would) -------------------------------------


def get(registry: Registry, path: str, accept: str = OCI_MANIFEST) -> httpx.Response:
    resp = httpx.get(f"{registry.url}/v2/{path}", headers={"Accept": accept}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp


def put_blob(registry: Registry, repo: str, data: bytes) -> str:
    """Upload ``data`` as a blob of ``repo`` (skipped when the repository holds it already)."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if httpx.head(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=30).status_code == 200:
        return digest
    start = httpx.post(f"{registry.url}/v2/{repo}/blobs/uploads/", timeout=30)
    url = httpx.URL(start.headers["location"]).copy_merge_params({"digest": digest})
    assert httpx.put(url, content=data, timeout=60).status_code == 201
    return digest


def put_manifest(registry: Registry, repo: str, reference: str, data: bytes, media_type: str = OCI_MANIFEST) -> str:
    resp = httpx.put(f"{registry.url}/v2/{repo}/manifests/{reference}", content=data,
                     headers={"Content-Type": media_type}, timeout=30)
    assert resp.status_code == 201, resp.text
    return str(resp.headers["docker-content-digest"])
