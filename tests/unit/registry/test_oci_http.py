"""Pure pieces of the OCI transfer: pacing, scheme choice, the auth challenge flow, retry back-off, upload
state files. (The registry itself is exercised for real in tests/integration/test_oci_registry.py; the
token server here is a stand-in for the realms of registries that use them.)"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from openzoo import config
from openzoo.errors import TransferFailed, Unauthorized
from openzoo.registry.oci.client import OciClient, OciSettings
from openzoo.registry.oci.reference import parse_reference
from openzoo.registry.oci.uploads import UploadState
from openzoo.registry.transfer import Throttle


def test_throttle_paces_to_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        throttle.moved(500)
    assert now[0] == pytest.approx(2.0)
    assert slept == pytest.approx([0.5, 0.5, 0.5, 0.5])
    unlimited = Throttle(0, clock=lambda: 0.0, sleep=lambda s: slept.append(-1))
    unlimited.moved(1 << 30)
    assert -1 not in slept


@pytest.mark.parametrize(("host", "plain", "scheme"), [
    ("127.0.0.1:5000", (), "http"), ("localhost", (), "http"), ("[::1]:5000", (), "http"),
    ("registry.example.com", (), "https"), ("10.0.0.5:5000", (), "https"),
    ("10.0.0.5:5000", ("10.0.0.5:5000",), "http"), ("reg.lan:5000", ("reg.lan",), "http"), ("x.y", ("*",), "http"),
])
def test_plain_http_only_for_loopback_and_listed_hosts(host: str, plain: tuple[str, ...], scheme: str) -> None:
    assert OciSettings(plain_http=plain).scheme(host) == scheme


def test_settings_come_from_the_configuration() -> None:
    cfg = config.load({"OPENZOO_OCI_CHUNK_BYTES": "1", "OPENZOO_OCI_RATE_LIMIT": "2048",
                       "OPENZOO_OCI_PLAIN_HTTP": "a:1, B", "OPENZOO_OCI_TOKEN": "t"})
    settings = OciSettings.from_config(cfg)
    assert settings.chunk_bytes == 1 << 16  # at least 64 KiB per chunk
    assert (settings.rate_limit, settings.plain_http, settings.token) == (2048, ("a:1", "b"), "t")


def _client(handler: httpx.MockTransport, settings: OciSettings) -> OciClient:
    client = OciClient(parse_reference("oci://reg.test/ns/m:v1"), settings, transport=handler)
    client.sleep = lambda s: None
    return client


def test_bearer_challenge_fetches_a_token_with_basic_credentials() -> None:
    seen: list[tuple[str, str | None]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        if request.url.host == "auth.test":
            expected = "Basic " + base64.b64encode(b"me:pw").decode()
            if request.headers.get("authorization") != expected:
                return httpx.Response(401)
            assert request.url.params["scope"] == "repository:ns/m:pull"
            return httpx.Response(200, json={"token": "tok"})
        if request.headers.get("authorization") != "Bearer tok":
            return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="https://auth.test/token",'
                                                                    'service="reg.test",scope="repository:ns/m:pull"'})
        return httpx.Response(200, headers={"docker-content-digest": "sha256:x"})

    client = _client(httpx.MockTransport(handle), OciSettings(username="me", password="pw"))
    assert client.blob_exists("sha256:" + "0" * 64)
    assert client.blob_exists("sha256:" + "1" * 64)  # the token is reused
    assert [auth for url, auth in seen if "auth.test" not in url] == [None, "Bearer tok", "Bearer tok"]


def test_basic_challenge_and_missing_credentials() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization", "").startswith("Basic "):
            return httpx.Response(200)
        return httpx.Response(401, headers={"www-authenticate": 'Basic realm="reg"'},
                              json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})

    assert _client(httpx.MockTransport(handle), OciSettings(username="me", password="pw")).blob_exists("sha256:a")
    with pytest.raises(Unauthorized) as info:
        _client(httpx.MockTransport(handle), OciSettings()).blob_exists("sha256:a")
    assert "UNAUTHORIZED: authentication required" in info.value.message
    assert "OPENZOO_OCI_TOKEN" in info.value.hint


def test_credentials_never_follow_a_redirect_to_another_host() -> None:
    seen: dict[str, str | None] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        if request.url.host == "reg.test":
            return httpx.Response(307, headers={"location": "https://storage.test/blob"})
        return httpx.Response(200, content=b"x")

    client = _client(httpx.MockTransport(handle), OciSettings(token="secret"))
    assert client.send("GET", client.path("blobs", "sha256:a")).status_code == 200
    assert seen == {"reg.test": "Bearer secret", "storage.test": None}


def test_reads_are_retried_and_writes_are_not() -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len([c for c in calls if c == "GET"]) < 3 and request.method == "GET":
            return httpx.Response(503, headers={"retry-after": "1"})
        if request.method == "PUT":
            raise httpx.ConnectError("refused")
        return httpx.Response(200)

    client = _client(httpx.MockTransport(handle), OciSettings())
    assert client.send("GET", "/v2/").status_code == 200
    with pytest.raises(TransferFailed):
        client.send("PUT", "/v2/x")
    assert calls == ["GET", "GET", "GET", "PUT"]


def test_upload_state_survives_a_process(tmp_path: Path) -> None:
    state = UploadState.for_blob(tmp_path, "h:1", "ns/m", "sha256:" + "a" * 64)
    assert state.load("sha256:" + "a" * 64, 10) is None
    state.save("sha256:" + "a" * 64, 10, "http://h:1/v2/ns/m/blobs/uploads/u?_state=s", 4)
    again = UploadState.for_blob(tmp_path, "h:1", "ns/m", "sha256:" + "a" * 64)
    assert again.load("sha256:" + "a" * 64, 10) == ("http://h:1/v2/ns/m/blobs/uploads/u?_state=s", 4)
    assert again.load("sha256:" + "a" * 64, 11) is None  # another blob of the same name: start afresh
    assert UploadState.for_blob(tmp_path, "h:1", "other/m", "sha256:" + "a" * 64).path != state.path
    state.path.write_text("{broken")
    assert state.load("sha256:" + "a" * 64, 10) is None
    state.clear()
    state.clear()
    assert not state.path.exists()


def test_referrers_api_is_used_when_it_answers_and_paginates() -> None:
    subject = "sha256:" + "5" * 64

    def index(n: int) -> dict[str, object]:
        return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + f"{n}" * 64,
             "size": 10, "artifactType": "application/vnd.openzoo.seal.v1+json"}]}

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "application/vnd.oci.image.index.v1+json"
        headers = {"content-type": "application/vnd.oci.image.index.v1+json"}
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json=index(2), headers=headers)
        return httpx.Response(200, json=index(1), headers={
            **headers, "link": f'</v2/ns/m/referrers/{subject}?page=2>; rel="next"'})

    found = _client(httpx.MockTransport(handle), OciSettings()).referrers(subject)
    assert found is not None and [d.digest[7:8] for d in found] == ["1", "2"]
    assert {d.artifact_type for d in found} == {"application/vnd.openzoo.seal.v1+json"}
    missing = _client(httpx.MockTransport(lambda r: httpx.Response(404, text="404 page not found")), OciSettings())
    assert missing.referrers(subject) is None  # no API: the caller falls back to the sha256-<hex> tag
    other = _client(httpx.MockTransport(lambda r: httpx.Response(200, json={})), OciSettings())
    assert other.referrers(subject) is None
