"""Issue 19, part 1, as a user sees it: the official ``ollama`` clients (Python, and the npm package under
Node) pull through ``/api/pull`` from another zoo and from an OCI registry, with Ollama's progress lines,
and a tampered pull reaches them as their own error type with nothing stored.

Zoo A holds a small certified model (a synthetic 4 MB GGUF sealed after a 2-of-3 quorum) and serves it;
its own ``/api/push`` puts it into a real ``docker-registry``. Each client talks to a fresh zoo that
pinned A's key. The web catalog's pull form is driven over HTTP as its script does.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from support.certified import CertifiedZoo, certified_zoo
from support.cli import openzoo
from support.oci_registry import Registry, oci_registry  # noqa: F401  (the fixture)
from support.server import Server, start_server, stop_server

MODEL = "tiny:v1"
JS_DIR = Path(__file__).parent / "js"
LAYER = re.compile(r"pulling [0-9a-f]{12}")


@pytest.fixture(scope="module")
def zoo_a(tmp_path_factory: pytest.TempPathFactory) -> CertifiedZoo:
    return certified_zoo(tmp_path_factory.mktemp("zoo-a"))


@pytest.fixture(scope="module")
def server_a(zoo_a: CertifiedZoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(zoo_a.home, tmp_path_factory.mktemp("logs") / "zoo-a.log", args=["--no-default-model"])
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def oci_ref(server_a: Server, oci_registry: Registry) -> str:  # noqa: F811
    """A's model pushed to the registry through A's own ``/api/push`` (Ollama's request: the model names
    the destination; the local model is its short name)."""
    ref = f"oci://{oci_registry.host}/library/tiny:v1"
    parts = [p.model_dump(exclude_none=True) for p in ollama.Client(host=server_a.url).push(ref, stream=True)]
    statuses = [p["status"] for p in parts]
    assert statuses[-1] == "success", statuses
    assert any(re.fullmatch(r"pushing [0-9a-f]{12}", s) for s in statuses)
    return ref


@pytest.fixture(scope="module")
def zoo_ref(server_a: Server) -> str:
    return f"{server_a.host}/library/{MODEL}"


@pytest.fixture(scope="module")
def weights(zoo_a: CertifiedZoo) -> str:
    return "sha256:" + hashlib.sha256(zoo_a.weights_file.read_bytes()).hexdigest()


def receiver(root: Path, zoo_a: CertifiedZoo) -> Server:
    """A fresh zoo that pinned A's key, serving (no default model: its store starts empty)."""
    home = root / "home"
    trust = openzoo(home, "keys", "trust", "zoo-a", str(zoo_a.public_key))
    assert trust.returncode == 0, trust.stdout + trust.stderr
    return start_server(home, root / "serve.log", args=["--no-default-model"])


def stored_nothing(home: Path, models: list[Any]) -> None:
    assert models == []
    assert sorted(p.name for p in (home / "blobs").glob("sha256-*")) == []
    assert sorted(p.name for p in (home / "downloads").glob("*")) == [] if (home / "downloads").exists() else True


def assert_ollama_progress(parts: list[dict[str, Any]], weights: str) -> None:
    """Ollama's pull lines in Ollama's order (openzoo's verification lines may sit between them), every
    layer line with its digest and total, and each layer's ``completed`` reaching its ``total``."""
    statuses = [p["status"] for p in parts]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
    layers = [i for i, s in enumerate(statuses) if LAYER.fullmatch(s)]
    verifying, writing = statuses.index("verifying sha256 digest"), statuses.index("writing manifest")
    assert layers and max(layers) < verifying < writing < len(statuses) - 1, statuses
    assert any(s.startswith("verified against zoo-a") for s in statuses[verifying:writing]), statuses
    done: dict[str, int] = {}
    for i in layers:
        part = parts[i]
        assert part["status"] == f"pulling {part['digest'][7:19]}" and isinstance(part["total"], int), part
        done[part["digest"]] = max(done.get(part["digest"], 0), part.get("completed", 0))
        assert done[part["digest"]] <= part["total"]
    totals = {parts[i]["digest"]: parts[i]["total"] for i in layers}
    assert done == totals, (done, totals)
    assert weights in totals


def test_python_client_pulls_from_a_registry_and_a_zoo(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                       oci_ref: str, zoo_ref: str, weights: str,
                                                       tmp_path: Path) -> None:
    srv = receiver(tmp_path, zoo_a)
    try:
        client = ollama.Client(host=srv.url)
        with pytest.raises(ollama.ResponseError) as bad:  # refused before streaming: a real status
            list(client.pull(f"oci://{oci_registry.host}/Library/tiny:v1", stream=True))
        assert bad.value.status_code == 400 and "invalid OCI reference" in bad.value.error

        seen: list[str] = []
        with oci_registry.flipped(weights), pytest.raises(ollama.ResponseError) as refused:
            for part in client.pull(oci_ref, stream=True):
                seen.append(part.status or "")
        assert seen[0] == "pulling manifest" and "success" not in seen
        assert "does not match its digest" in refused.value.error and "refused" in refused.value.error
        stored_nothing(srv.home, client.list().models)

        parts = [p.model_dump(exclude_none=True) for p in client.pull(oci_ref, stream=True)]
        assert_ollama_progress(parts, weights)
        assert client.pull(zoo_ref).status == "success"  # stream: false answers the final status
        names = {m.model for m in client.list().models}
        assert {oci_ref.removeprefix("oci://"), zoo_ref} <= names, names

        page = httpx.get(f"{srv.url}/ui/pull", timeout=30)  # the web form, as its script posts it
        assert page.status_code == 200 and 'id="pull-form"' in page.text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token is not None
        lines = []
        with httpx.stream("POST", f"{srv.url}/ui/api/pull", json={"model": zoo_ref}, cookies=page.cookies,
                          headers={"x-csrf-token": token.group(1)}, timeout=60) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-ndjson"
            lines = [json.loads(line) for line in resp.iter_lines() if line]
        assert_ollama_progress(lines, weights)
    finally:
        stop_server(srv)


def node(*args: str) -> dict[str, Any]:
    result = subprocess.run(["node", "pull.mjs", *args], cwd=JS_DIR, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    seen: dict[str, Any] = json.loads(result.stdout)
    return seen


def test_js_client_pulls_from_a_zoo_and_a_registry(zoo_a: CertifiedZoo, oci_registry: Registry,  # noqa: F811
                                                   oci_ref: str, zoo_ref: str, weights: str,
                                                   tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is required (the Makefile installs the npm package; Node comes with the machine)")
    if not (JS_DIR / "node_modules" / "ollama").is_dir():
        pytest.fail("run 'make test' (it installs tests/integration/js/node_modules)")
    srv = receiver(tmp_path, zoo_a)
    try:
        bad = f"oci://{oci_registry.host}/library/tiny:v1@sha256:nothex"
        with oci_registry.flipped(weights):
            first = node(srv.url, json.dumps([bad, oci_ref]))
        invalid, refused = first["results"]
        assert invalid["error"]["name"] == "ResponseError" and invalid["error"]["status"] == 400
        assert invalid["events"] == []
        assert refused["events"][0]["status"] == "pulling manifest"
        assert "does not match its digest" in refused["error"]["message"]
        stored_nothing(srv.home, first["list"])

        second = node(srv.url, json.dumps([zoo_ref, oci_ref]))
        for result in second["results"]:
            assert "error" not in result, result
            assert_ollama_progress(result["events"], weights)
        assert {zoo_ref, oci_ref.removeprefix("oci://")} <= set(second["list"])
    finally:
        stop_server(srv)
