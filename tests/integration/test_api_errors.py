"""Bad input gets a clear error with the right status and envelope, and never changes the store."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openzoo.models import DEFAULT_MODEL
from support.gguf_files import write_gguf
from support.server import Server, start_server, stop_server


def store_snapshot(home: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Every blob file and every catalog row: what must not change when a request is refused."""
    blobs = sorted(p.name for p in (home / "blobs").iterdir())
    with sqlite3.connect(home / "catalog.sqlite") as conn:
        rows = sorted(conn.execute("SELECT key, manifest_digest FROM models").fetchall())
    return blobs, rows


@pytest.fixture(scope="module")
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/api/generate", b"{not json", 400, "invalid JSON"),
    ("/api/generate", b"", 400, "missing request body"),
    ("/api/generate", b"[1, 2]", 400, "must be a JSON object"),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": 5}', 400, "prompt"),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": "x", "options": {"top_k": "lots"}}', 400,
     'option "top_k" must be of type integer'),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": "x", "keep_alive": "soon"}', 400, "invalid duration"),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": "x", "raw": true, "system": "s"}', 400,
     "raw mode does not support template, system, or context"),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": "x", "top_logprobs": 50}', 400,
     "top_logprobs must be between 0 and 20"),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": "x", "images": ["aGk="]}', 400, "does not support vision"),
    ("/api/generate", b'{"model": "gemma3:270m", "prompt": "x", "suffix": "y"}', 400, "does not support insert"),
    ("/api/generate", b'{"model": "nope", "prompt": "x"}', 404, 'model "nope:latest" not found, try pulling it first'),
    ("/api/chat", b'{"model": "gemma3:270m", "messages": [{"role": "wizard", "content": "x"}]}', 400, "role"),
    ("/api/chat", b'{"model": "gemma3:270m", "messages": "hello"}', 400, "messages"),
    ("/api/show", b'{"model": "../x"}', 400, "invalid model name"),
    ("/api/show", b'{"model": "a//b"}', 400, "empty part"),
    ("/api/show", ('{"model": "' + "x" * 300 + '"}').encode(), 400, "invalid model name"),
    ("/api/copy", b'{"source": "nope", "destination": "x"}', 404, "not found"),
    ("/api/copy", b'{"source": "gemma3:270m", "destination": "../evil"}', 400, "invalid model name"),
    ("/api/create", b'{"model": "x"}', 400, "neither 'from' or 'files' was specified"),
    ("/api/create", b'{"model": "x", "from": "/etc/passwd"}', 400, "looks like a file path"),
    ("/api/create", b'{"model": "x", "from": "gemma3:270m", "template": "{{ .Unknown | call }}"}', 400, ""),
    ("/api/create", b'{"model": "x", "from": "gemma3:270m", "parameters": {"temperature": "hot"}}', 400,
     "temperature"),
    ("/api/embed", b'{"model": "gemma3:270m", "input": 42}', 400, "input"),
    ("/api/pull", b'{"model": "other/model:7b"}', 400, "not supported yet"),
])
def test_bad_requests(api: httpx.Client, server: Server, path: str, body: bytes, status: int, message: str) -> None:
    before = store_snapshot(server.home)
    response = api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]
    assert store_snapshot(server.home) == before


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for m in messages %}{{ m.__class__.__init__.__globals__ }}{% endfor %}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
])
def test_create_refuses_unsafe_jinja_template(api: httpx.Client, server: Server, template: str) -> None:
    before = store_snapshot(server.home)
    response = api.post("/api/create", json={"model": "evil", "from": DEFAULT_MODEL, "template": template,
                                             "stream": False})
    assert response.status_code == 400, response.text
    assert store_snapshot(server.home) == before


def test_blob_upload_checks_digest(api: httpx.Client, server: Server, tmp_path: Path) -> None:
    data = b"some bytes that are not what the digest says"
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    before = store_snapshot(server.home)
    response = api.post(f"/api/blobs/{wrong}", content=data)
    assert response.status_code == 400
    assert response.json()["error"].startswith("digest mismatch")
    assert store_snapshot(server.home) == before
    assert api.head(f"/api/blobs/{wrong}").status_code == 404
    assert api.post("/api/blobs/sha256:xyz", content=data).status_code == 400

    # a real upload, then create from it and from its digest
    gguf = write_gguf(tmp_path / "tiny.gguf").read_bytes()
    digest = "sha256:" + hashlib.sha256(gguf).hexdigest()
    assert api.post(f"/api/blobs/{digest}", content=gguf).status_code == 201
    assert api.post(f"/api/blobs/{digest}", content=gguf).status_code == 200
    assert api.head(f"/api/blobs/{digest}").status_code == 200
    response = api.post("/api/create", json={"model": "pytest/tiny", "files": {"tiny.gguf": digest},
                                             "stream": False})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success"}
    assert api.post("/api/delete", content=b'{"model": "pytest/tiny"}').status_code == 405
    assert api.request("DELETE", "/api/delete", json={"model": "pytest/tiny"}).status_code == 200


@pytest.mark.parametrize("content", [b"not a gguf at all", b"GGUF\x03\x00\x00\x00" + b"\xff" * 16,
                                     b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"])
def test_create_refuses_broken_gguf(api: httpx.Client, server: Server, content: bytes) -> None:
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert api.post(f"/api/blobs/{digest}", content=content).status_code == 201
    before = store_snapshot(server.home)
    response = api.post("/api/create", json={"model": "broken", "files": {"m.gguf": digest}, "stream": False})
    assert response.status_code == 400, response.text
    assert store_snapshot(server.home)[1] == before[1]


def test_unknown_path_and_method(api: httpx.Client) -> None:
    response = api.get("/api/nothing-here")
    assert response.status_code == 404 and "error" in response.json()
    assert api.get("/api/generate").status_code == 405


def test_dns_rebinding_and_cors(api: httpx.Client) -> None:
    assert api.get("/api/tags", headers={"Host": "evil.example"}).status_code == 403
    assert api.get("/api/tags", headers={"Host": "localhost:11434"}).status_code == 200
    ok = api.options("/api/tags", headers={"Origin": "http://localhost:3000",
                                           "Access-Control-Request-Method": "GET"})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert api.get("/api/tags", headers={"Origin": "https://evil.example"}).status_code == 403


def test_body_size_limit(model_home: Path, tmp_path: Path) -> None:
    srv = start_server(model_home, tmp_path / "log", {"OPENZOO_MAX_BODY_BYTES": "2048"})
    try:
        response = httpx.post(srv.url + "/api/generate", json={"model": DEFAULT_MODEL, "prompt": "x" * 5000})
        assert response.status_code == 413
    finally:
        stop_server(srv)


def test_api_key_required_when_set(model_home: Path, tmp_path: Path) -> None:
    srv = start_server(model_home, tmp_path / "log", {"OPENZOO_API_KEY": "s3cret"})
    try:
        assert httpx.get(srv.url + "/").status_code == 200  # liveness stays open
        assert httpx.get(srv.url + "/api/tags").status_code == 401
        assert httpx.get(srv.url + "/api/tags", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(srv.url + "/api/tags", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        response = httpx.get(srv.url + "/v1/models")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        # Anthropic's clients send the key as x-api-key, and get Anthropic's envelope
        assert httpx.get(srv.url + "/v1/models", headers={"x-api-key": "s3cret"}).status_code == 200
        response = httpx.post(srv.url + "/v1/messages/count_tokens", json={}, headers={"x-api-key": "wrong"})
        assert response.status_code == 401
        assert response.json() == {"type": "error", "error": {"type": "authentication_error",
                                                              "message": response.json()["error"]["message"]}}
    finally:
        stop_server(srv)


def test_non_loopback_bind_needs_api_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENZOO_", "OLLAMA_"))}
    env.update({"OPENZOO_HOME": str(tmp_path), "OPENZOO_HOST": "0.0.0.0:1"})
    result = subprocess.run([sys.executable, "-m", "openzoo", "serve", "--no-default-model"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "OPENZOO_API_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ui_login_reachable_with_api_key(model_home: Path, tmp_path: Path) -> None:
    srv = start_server(model_home, tmp_path / "log", {"OPENZOO_API_KEY": "s3cret"})
    try:
        page = httpx.get(srv.url + "/ui/models", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"].startswith("/ui/login?next=")
        assert httpx.get(srv.url + "/ui/login").status_code == 200
        with httpx.Client(base_url=srv.url) as browser:
            form = browser.get("/ui/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token, "the login form carries a CSRF token"
            done = browser.post("/ui/login", data={"key": "s3cret", "csrf_token": token.group(1), "next": "/ui/"},
                                headers={"Origin": srv.url})
            assert done.status_code in (200, 303)
            assert browser.get("/ui/").status_code == 200
    finally:
        stop_server(srv)
