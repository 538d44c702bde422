"""The /ui pages in-process (no engine): empty states, a tiny model, a tampered blob, assets, CSRF, login."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openzoo import config
from openzoo.api import session
from openzoo.app import create_app
from openzoo.services import Services
from openzoo.web.routes import web_router

BASE = "http://127.0.0.1"


def _services(home: Path, **env: str) -> Services:
    return Services(config.load({"OPENZOO_HOME": str(home), **env}))


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    s = _services(home)
    yield s
    s.close()


@pytest.fixture
def client(services: Services) -> TestClient:
    return TestClient(create_app(services, close_on_shutdown=False), base_url=BASE)


def _import(services: Services, path: Path, name: str) -> Path:
    for _ in services.models.import_gguf(path, name):
        pass
    return services.models.resolve(name).weights


def test_empty_zoo_pages_say_so(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "The zoo is empty" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    csrf = next(c for c in page.headers.get_list("set-cookie") if c.startswith("openzoo_csrf="))
    assert "SameSite=Strict" in csrf and "HttpOnly" in csrf and "Path=/ui" in csrf
    log = client.get("/ui/log")
    assert "The log is empty" in log.text
    assert "Not verified" in client.get("/ui/log?verify=0").text
    assert "not an entry number" in client.get("/ui/log?verify=abc").text
    assert "No pending requests" in client.get("/ui/queue").text
    assert "No models to chat with" in client.get("/ui/playground").text
    assert "Choose two or three models" in client.get("/ui/compare").text
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"


def test_a_model_in_every_page(client: TestClient, services: Services, tiny_gguf: Path) -> None:
    _import(services, tiny_gguf, "tiny")
    catalog = client.get("/ui/?license=open-source")
    assert 'data-model="tiny:latest"' in catalog.text and "Open source" in catalog.text
    assert 'data-model="tiny:latest"' not in client.get("/ui/?certified=1").text
    page = client.get("/ui/models/tiny:latest")
    assert page.status_code == 200
    assert "Open source license (Apache License 2.0, OSI-approved)" in page.text
    assert "Verification failed" not in page.text
    assert "No seal yet" in page.text and "No audits yet" in page.text
    compare = client.get("/ui/compare?m=tiny:latest&m=nope:1")
    assert "Apache License 2.0" in compare.text and "nope:1" in compare.text
    assert client.get("/ui/models/nope:1").status_code == 404
    assert 'value="tiny:latest" selected' in client.get("/ui/playground?model=tiny:latest").text


def test_tampered_weights_fail_verification(client: TestClient, services: Services, tiny_gguf: Path) -> None:
    weights = _import(services, tiny_gguf, "tiny")
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    page = client.get("/ui/models/tiny:latest")
    assert "Verification failed" in page.text
    assert "weights blob" in page.text and "is damaged" in page.text


def test_static_assets_are_served_by_openzoo(client: TestClient) -> None:
    css = client.get("/ui/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/ui/static/playground.js").headers["content-type"].startswith("text/javascript")
    for bad in ("/ui/static/missing.css", "/ui/static/..%2Froutes.py", "/ui/static/routes.py"):
        assert client.get(bad).status_code == 404


def test_playground_chat_alias_needs_the_csrf_token(client: TestClient) -> None:
    body = {"model": "nope:1", "messages": []}
    assert client.post("/ui/api/chat", json=body).status_code == 403
    client.cookies.set(session.CSRF_COOKIE, "tok", domain="127.0.0.1", path="/ui")
    assert client.post("/ui/api/chat", json=body, headers={"x-csrf-token": "other"}).status_code == 403
    crossed = client.post("/ui/api/chat", json=body, headers={"x-csrf-token": "tok", "origin": "http://evil.example"})
    assert crossed.status_code == 403
    reached = client.post("/ui/api/chat", json=body, headers={"x-csrf-token": "tok"})
    assert reached.status_code == 404  # the Ollama handler itself answered: no such model


def test_api_key_is_accepted_from_the_ui_cookie(home: Path) -> None:
    services = _services(home, OPENZOO_API_KEY="s3cret")
    client = TestClient(create_app(services, close_on_shutdown=False), base_url=BASE)
    refused = client.get("/ui/", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
    client.cookies.set(session.KEY_COOKIE, "s3cret", domain="127.0.0.1", path="/ui")
    page = client.get("/ui/")
    assert page.status_code == 200 and "Log out" in page.text
    services.close()


def test_login_sets_a_strict_http_only_cookie_and_logout_clears_it(home: Path) -> None:
    services = _services(home, OPENZOO_API_KEY="s3cret")
    app = FastAPI()
    app.state.services = services
    app.include_router(web_router)
    client = TestClient(app, base_url=BASE)
    form = client.get("/ui/login?next=/ui/log")
    assert 'name="csrf_token"' in form.text and 'value="/ui/log"' in form.text
    token = client.cookies.get(session.CSRF_COOKIE)
    assert token

    refused = client.post("/ui/login", data={"key": "s3cret", "csrf_token": "forged"})
    assert refused.status_code == 403
    wrong = client.post("/ui/login", data={"key": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "not this server" in wrong.text

    ok = client.post("/ui/login", data={"key": "s3cret", "csrf_token": token, "next": "https://evil.example/"},
                     follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("openzoo_key=s3cret;")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie

    out = client.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert client.post("/ui/logout", data={}).status_code == 403
    services.close()


def test_certified_then_revoked_model(client: TestClient, services: Services, tiny_gguf: Path) -> None:

    _import(services, tiny_gguf, "tiny")
    cert = services.certification
    for reviewer in ("alice", "bob"):
        cert.generate_key(reviewer)
    cert.set_policy(["alice", "bob"], 2)
    cert.request("tiny")
    pending = client.get("/ui/models/tiny:latest").text
    assert "Pending: certification request" in pending and "0 of 2" in pending
    queue = client.get("/ui/queue").text
    assert "tiny:latest" in queue and "0 of 2 approvals" in queue
    cert.approve("tiny", "alice")
    cert.approve("tiny", "bob")

    assert 'data-model="tiny:latest"' in client.get("/ui/?certified=1").text
    page = client.get("/ui/models/tiny:latest").text
    assert "<strong>Verified</strong>" in page and "alice, bob" in page
    assert "No pending requests" in client.get("/ui/queue").text
    log = client.get("/ui/log").text
    assert "seal issued for tiny:latest" in log
    seal_index = next(e.index for e in cert.log.entries(0, 100) if e.kind == "seal")
    assert f"Entry {seal_index} is included" in client.get(f"/ui/log?verify={seal_index}").text

    assert "The log is intact" in client.get("/ui/log?check=all").text

    cert.revoke("tiny", "training data license withdrawn")
    assert 'data-model="tiny:latest"' not in client.get("/ui/?certified=1").text
    assert "seal-revoked" in client.get("/ui/").text
    page = client.get("/ui/models/tiny:latest").text
    assert "Verification failed" in page and "training data license withdrawn" in page


def test_an_unreadable_card_does_not_take_the_catalog_down(client: TestClient, services: Services,
                                                           tiny_gguf: Path) -> None:
    from openzoo.store import manifests as mt

    _import(services, tiny_gguf, "tiny")
    bad = services.models.add_blob_layer(mt.CARD, b"---\nlicense: [unclosed\n---\n# card\n")
    services.models.update_layers("tiny", mt.CARD, [bad])
    catalog = client.get("/ui/")
    assert catalog.status_code == 200 and 'data-model="tiny:latest"' in catalog.text
    page = client.get("/ui/models/tiny:latest")
    assert page.status_code == 400 and "not valid YAML" in page.text


def test_dataset_pages(client: TestClient, services: Services, tmp_path: Path) -> None:
    assert "No datasets yet" in client.get("/ui/").text
    assert "No datasets yet" in client.get("/ui/datasets").text
    data = tmp_path / "rows.csv"
    data.write_text("text,label\nfine,1\nbad,0\n")
    for _ in services.datasets.import_files([data], "me/rows:v1", license="CC-BY-4.0"):
        pass
    catalog = client.get("/ui/").text
    assert 'data-dataset="me/rows:v1"' in catalog and "Showing 0 of 0 models" in catalog
    listed = client.get("/ui/datasets").text
    assert "1 dataset." in listed and 'href="/ui/datasets/me/rows:v1"' in listed
    page = client.get("/ui/datasets/me/rows:v1")
    assert page.status_code == 200
    digest = services.datasets.get("me/rows:v1").config.data_digest
    assert digest in page.text and '<dd id="dataset-rows">2</dd>' in page.text
    assert "datasheet question &#39;Motivation&#39; is not answered" in page.text
    assert "No seal yet" in page.text and "CC-BY-4.0" in page.text
    assert client.get("/ui/datasets/me/nothing").status_code == 404


def test_pull_form_posts_to_the_ollama_pull_handler_with_the_csrf_token(home: Path) -> None:
    services = _services(home, OPENZOO_API_KEY="s3cret")
    client = TestClient(create_app(services, close_on_shutdown=False), base_url=BASE)
    refused = client.get("/ui/pull", follow_redirects=False)  # behind the API key
    assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
    client.cookies.set(session.KEY_COOKIE, "s3cret", domain="127.0.0.1", path="/ui")
    page = client.get("/ui/pull")
    assert page.status_code == 200 and 'id="pull-form"' in page.text and 'data-endpoint="/ui/api/pull"' in page.text
    assert '<script src="/ui/static/pull.js" defer></script>' in page.text
    assert client.get("/ui/static/pull.js").status_code == 200
    token = client.cookies.get(session.CSRF_COOKIE)
    body = {"model": "oci://127.0.0.1:5000/Bad:v1"}
    assert client.post("/ui/api/pull", json=body).status_code == 403
    assert client.post("/ui/api/pull", json=body, headers={"x-csrf-token": "forged"}).status_code == 403
    reached = client.post("/ui/api/pull", json=body, headers={"x-csrf-token": token})
    assert reached.status_code == 400 and "invalid OCI reference" in reached.json()["error"]  # the handler answered
    missing = client.post("/ui/api/pull", json={"model": "other/model:7b"}, headers={"x-csrf-token": token})
    assert missing.status_code == 400 and "not supported yet" in missing.json()["error"]
    services.close()
