"""Resume after ``kill -9``, against a real ``docker-registry``: a push killed mid-upload continues from the
bytes the registry holds, a pull killed mid-download continues from its partial file, and both results
re-hash.

The transfers are slowed with ``OPENZOO_OCI_RATE_LIMIT`` (paced between 256 KiB chunks) so that a 4 MB
blob takes seconds and the kill lands reliably in the middle; the tests poll the upload state file and
the partial download to know when.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from support.certified import CertifiedZoo, certified_zoo
from support.cli import openzoo, openzoo_env
from support.oci_registry import Registry, oci_registry  # noqa: F401  (the fixture)

MODEL = "tiny:v1"
SLOW = {"OPENZOO_OCI_CHUNK_BYTES": str(256 << 10), "OPENZOO_OCI_RATE_LIMIT": str(1 << 20)}


def out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def zoo_a(tmp_path_factory: pytest.TempPathFactory) -> CertifiedZoo:
    return certified_zoo(tmp_path_factory.mktemp("zoo-a"))


def kill_when(home: Path, args: list[str], ready: Callable[[], object], env: dict[str, str]) -> object:
    """Start ``openzoo ARGS``, wait until ``ready()`` returns something true, then SIGKILL it; return that."""
    proc = subprocess.Popen([sys.executable, "-m", "openzoo", *args], env=openzoo_env(home, extra=env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    found: object = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = ready()
            if found:
                break
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert found, f"the transfer ended before it could be killed: {err.decode()}"
    assert proc.returncode == -signal.SIGKILL
    return found


def test_push_killed_mid_upload_resumes(zoo_a: CertifiedZoo, oci_registry: Registry) -> None:  # noqa: F811
    weights = zoo_a.weights_file.stat().st_size
    uploads = zoo_a.home / "oci" / "uploads"

    def big_upload_started() -> dict[str, object] | None:
        for state in uploads.glob("*.json") if uploads.exists() else []:
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
            if data["size"] == weights and data["offset"] > 0:
                return dict(data)
        return None

    target = f"oci://{oci_registry.host}/resume/push:v1"
    state = kill_when(zoo_a.home, ["push", MODEL, target], big_upload_started, SLOW)
    assert isinstance(state, dict)
    held = int(state["offset"])  # type: ignore[call-overload]
    assert 0 < held < weights
    resumed = openzoo(zoo_a.home, "push", MODEL, target)
    assert resumed.returncode == 0, out(resumed)
    digest = str(state["digest"])
    assert f"resuming upload of {digest[7:19]} at {held} of {weights} bytes" in resumed.stderr, out(resumed)
    assert list(uploads.glob("*.json")) == []
    blob = httpx.get(f"{oci_registry.url}/v2/resume/push/blobs/{digest}", timeout=60).content
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest
    assert blob == zoo_a.weights_file.read_bytes()


def test_pull_killed_mid_download_resumes(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                          tmp_path: Path) -> None:
    target = f"oci://{oci_registry.host}/resume/pull:v1"
    pushed = openzoo(zoo_a.home, "push", MODEL, target)
    assert pushed.returncode == 0, out(pushed)
    home_b = tmp_path / "b"
    assert openzoo(home_b, "keys", "trust", "zoo-a", str(zoo_a.public_key)).returncode == 0
    downloads = home_b / "downloads"

    def partial_growing() -> Path | None:
        found = [p for p in downloads.glob("*.partial") if p.stat().st_size > 512 << 10] if downloads.exists() else []
        return found[0] if found else None

    partial = kill_when(home_b, ["pull", target], partial_growing, SLOW)
    assert isinstance(partial, Path) and partial.exists()
    done = partial.stat().st_size
    weights = zoo_a.weights_file.stat().st_size
    assert 0 < done < weights
    resumed = openzoo(home_b, "pull", target)
    assert resumed.returncode == 0, out(resumed)
    assert f"at {done} of {weights} bytes" in resumed.stderr and "tagged as certified" in resumed.stderr, out(resumed)
    assert not partial.exists()
    verify = openzoo(home_b, "verify", "resume/pull:v1")
    assert verify.returncode == 0 and "certified by zoo-a" in verify.stdout, out(verify)
    digest = hashlib.sha256(zoo_a.weights_file.read_bytes()).hexdigest()
    assert (home_b / "blobs" / f"sha256-{digest}").read_bytes() == zoo_a.weights_file.read_bytes()
