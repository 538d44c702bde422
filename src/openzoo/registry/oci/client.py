"""HTTP to an OCI Distribution v1.1 registry: manifests, blobs, chunked uploads, referrers.

Why its own client (not the zoo's :class:`~openzoo.registry.client.RegistryClient`): a distribution
registry speaks the OCI error format (``{"errors": [{"code", "message"}]}``), authenticates with
challenges (``WWW-Authenticate: Bearer realm=…`` answered with a token from the realm, or ``Basic``),
hands out upload sessions by ``Location`` and may lack the referrers API. Idempotent requests
(GET, HEAD) are retried on connection errors, 429 and 502–504, with ``Retry-After`` honoured up to a cap;
uploads recover through the upload-status request instead (:mod:`.uploads`).

Plain http is used for loopback registries and those named in ``OPENZOO_OCI_PLAIN_HTTP``; every other
registry gets https.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from openzoo.config import Config
from openzoo.errors import (
    Conflict,
    DigestMismatch,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    TransferFailed,
    Unauthorized,
)
from openzoo.registry.oci.artifacts import ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES, OCI_INDEX, Descriptor, parse_index
from openzoo.registry.oci.reference import OciReference

__all__ = ["OciClient", "OciSettings", "RangeNotSatisfiable", "RegistryAuth", "UploadGone"]

RETRIED_STATUS = (429, 502, 503, 504)
AUTH_HINT = "set OPENZOO_OCI_TOKEN, or OPENZOO_OCI_USERNAME and OPENZOO_OCI_PASSWORD, for this registry"
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class OciSettings:
    """What the OCI transfer reads from :class:`~openzoo.config.Config`."""

    chunk_bytes: int = 16 << 20
    rate_limit: int = 0
    plain_http: tuple[str, ...] = ()
    token: str = ""
    username: str = ""
    password: str = ""
    retries: int = 3
    backoff: float = 0.5

    @classmethod
    def from_config(cls, config: Config) -> OciSettings:
        return cls(config.oci_chunk_bytes, config.oci_rate_limit, config.oci_plain_http, config.oci_token,
                   config.oci_username, config.oci_password)

    def scheme(self, host: str) -> str:
        """``http`` for loopback hosts and those listed in ``plain_http``, else ``https``."""
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.find("]")]
        if "*" in self.plain_http or host in self.plain_http or name in self.plain_http:
            return "http"
        if name == "localhost":
            return "http"
        try:
            return "http" if ipaddress.ip_address(name).is_loopback else "https"
        except ValueError:
            return "https"


class UploadGone(Exception):
    """The registry no longer knows an upload session (expired, or cancelled after an interrupted chunk)."""


class RangeNotSatisfiable(Exception):
    """A chunk did not start where the registry's upload ends (416)."""


class RegistryAuth(httpx.Auth):
    """Credentials for one registry host: a static bearer token, or the answer to its challenge —
    basic credentials, or a bearer token fetched from the challenge's realm (with basic credentials if set)."""

    def __init__(self, host: str, settings: OciSettings) -> None:
        self.host = host
        self.settings = settings
        self._header: str | None = f"Bearer {settings.token}" if settings.token else None

    def _basic(self) -> str | None:
        if not self.settings.username:
            return None
        raw = f"{self.settings.username}:{self.settings.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.netloc.decode().lower() != self.host:
            yield request  # a redirect elsewhere (e.g. blob storage) never gets the registry's credentials
            return
        if self._header:
            request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code != 401 or self.settings.token:
            return
        challenge = response.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self._basic():
            self._header = self._basic()
        elif scheme == "bearer":
            params = dict(_CHALLENGE.findall(challenge))
            realm = params.pop("realm", "")
            if not realm.startswith(("https://", "http://")):
                return
            token_request = httpx.Request("GET", realm, params=params)
            basic = self._basic()
            if basic:
                token_request.headers["Authorization"] = basic
            token_response = yield token_request
            token_response.read()
            if token_response.status_code != 200:
                return
            try:
                body = token_response.json()
                token = body.get("token") or body.get("access_token")
            except ValueError:
                return
            if not isinstance(token, str) or not token:
                return
            self._header = f"Bearer {token}"
        else:
            return
        request.headers["Authorization"] = self._header or ""
        yield request


class OciClient:
    """Requests to one registry. ``sleep`` is injectable so that retry back-off can be tested quickly."""

    def __init__(self, ref: OciReference, settings: OciSettings, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.ref = ref
        self.settings = settings
        self.base = f"{settings.scheme(ref.host)}://{ref.host}"
        self.http = httpx.Client(base_url=self.base, auth=RegistryAuth(ref.host, settings), transport=transport,
                                 timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True)
        self.sleep = time.sleep

    def close(self) -> None:
        self.http.close()

    def path(self, kind: str, reference: str = "") -> str:
        """``/v2/<repository>/<kind>/<reference>`` for this client's repository."""
        return f"/v2/{self.ref.repository}/{kind}/{reference}"

    # -- requests --------------------------------------------------------------------------------
    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; GET and HEAD are retried on connection errors and 429/502/503/504."""
        attempts = 1 + (self.settings.retries if method in ("GET", "HEAD") else 0)
        for attempt in range(attempts):
            try:
                resp = self.http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                if attempt + 1 >= attempts:
                    raise TransferFailed(f"cannot reach the registry at {self.base}: {exc}") from exc
                self.sleep(self.settings.backoff * 2 ** attempt)
                continue
            if resp.status_code in RETRIED_STATUS and attempt + 1 < attempts:
                self.sleep(_retry_after(resp, self.settings.backoff * 2 ** attempt))
                continue
            return resp
        raise AssertionError("unreachable")

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        with self.http.stream(method, url, **kwargs) as resp:
            yield resp

    def raise_for(self, resp: httpx.Response, what: str) -> None:
        """Map an error answer to openzoo's error tree, naming ``what`` was asked for."""
        if resp.status_code < 400:
            return
        message = _oci_message(resp)
        where = f"{what} at {self.base}"
        status = resp.status_code
        if status == 404:
            raise NotFound(f"{where} not found: {message}",
                           hint="check the registry, repository and tag; 'openzoo push NAME oci://...' publishes one")
        if status == 401:
            raise Unauthorized(f"the registry at {self.base} wants credentials for {what}: {message}", hint=AUTH_HINT)
        if status == 403:
            raise Forbidden(f"the registry at {self.base} refused {what}: {message}", hint=AUTH_HINT)
        if status == 413:
            raise PayloadTooLarge(f"the registry at {self.base} refused {what} as too large: {message}",
                                  hint="the registry limits what it accepts; raise its limit")
        if status == 409:
            raise Conflict(f"the registry at {self.base} refused {what}: {message}")
        if status in (400, 405, 415, 422):
            raise InvalidRequest(f"the registry at {self.base} refused {what}: {message}",
                                 hint="the registry does not accept this content; check its version and settings")
        raise TransferFailed(f"the registry at {self.base} answered {status} for {what}: {message}")

    # -- manifests -------------------------------------------------------------------------------
    def get_manifest(self, reference: str) -> tuple[bytes, str | None, str | None]:
        """(bytes, Content-Type, Docker-Content-Digest) of a manifest, read up to the size cap."""
        sep = "@" if reference.startswith("sha256:") else ":"
        what = f"manifest {self.ref.repository}{sep}{reference}"
        data, headers = self._get_capped(self.path("manifests", reference), MAX_MANIFEST_BYTES, what,
                                         headers={"Accept": ACCEPT_MANIFESTS})
        return data, headers.get("content-type"), headers.get("docker-content-digest")

    def _get_capped(self, url: str, limit: int, what: str, *, declared: bool = False,
                    headers: dict[str, str] | None = None) -> tuple[bytes, httpx.Headers]:
        """GET a small body into memory (retried like :meth:`send`), refusing it past ``limit`` bytes."""
        for attempt in range(1 + self.settings.retries):
            try:
                with self.http.stream("GET", url, headers=headers) as resp:
                    if resp.status_code in RETRIED_STATUS and attempt < self.settings.retries:
                        self.sleep(_retry_after(resp, self.settings.backoff * 2 ** attempt))
                        continue
                    if resp.status_code >= 400:
                        resp.read()
                        self.raise_for(resp, what)
                    return _read_capped(resp, limit, f"the {what} from {self.base}", declared=declared), resp.headers
            except httpx.HTTPError as exc:
                if attempt >= self.settings.retries:
                    raise TransferFailed(f"cannot reach the registry at {self.base}: {exc}") from exc
                self.sleep(self.settings.backoff * 2 ** attempt)
        raise TransferFailed(f"the registry at {self.base} kept answering busy for {what}")

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> httpx.Response:
        resp = self.send("PUT", self.path("manifests", reference), content=data,
                         headers={"Content-Type": media_type})
        self.raise_for(resp, f"manifest {self.ref.repository}:{reference}")
        return resp

    def referrers(self, digest: str) -> list[Descriptor] | None:
        """The referrers API's answer for ``digest`` (following pagination), or None when the registry has
        no referrers API (404, or an answer that is not an image index)."""
        url: str | None = self.path("referrers", digest)
        found: list[Descriptor] = []
        pages = 0
        while url is not None and pages < 20:
            resp = self.send("GET", url, headers={"Accept": OCI_INDEX})
            if pages == 0 and resp.status_code in (400, 404, 405):
                return None
            self.raise_for(resp, f"referrers of {digest[:19]}…")
            if pages == 0 and resp.headers.get("content-type", "").split(";")[0].strip() != OCI_INDEX:
                return None  # something answered, but not the referrers API
            found += parse_index(_capped(resp.content, f"the referrers of {digest[:19]}… from {self.base}"),
                                 f"{self.base} referrers of {digest[:19]}…")
            url = _next_link(resp)
            pages += 1
        return found

    # -- blobs -----------------------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        resp = self.send("HEAD", self.path("blobs", digest))
        if resp.status_code == 404:
            return False
        self.raise_for(resp, f"blob {digest[:19]}…")
        return True

    def get_small_blob(self, desc: Descriptor, limit: int) -> bytes:
        """A small blob (card, seal, proof) read into memory: its declared size must be under ``limit`` and
        the bytes must match size and digest."""
        from openzoo.facts.canonical import sha256_digest

        if desc.size > limit:
            raise PayloadTooLarge(f"blob {desc.digest[:19]}… ({desc.media_type}) declares {desc.size} bytes, over "
                                  f"the {limit}-byte limit for artifacts", hint="the registry is not serving "
                                  "an openzoo artifact; ask its publisher")
        what = f"blob {desc.digest[:19]}…"
        data, _ = self._get_capped(self.path("blobs", desc.digest), desc.size, what, declared=True)
        if len(data) != desc.size or sha256_digest(data) != desc.digest:
            raise DigestMismatch(f"{what} from {self.base} does not match its descriptor ({len(data)} of {desc.size} "
                                 "bytes, or another digest): refused, nothing stored",
                                 hint="the registry's copy is damaged or was tampered with; do not use it")
        return data

    # -- uploads ---------------------------------------------------------------------------------
    def start_upload(self) -> str:
        resp = self.send("POST", self.path("blobs", "uploads/"), headers={"Content-Length": "0"})
        self.raise_for(resp, "a blob upload")
        return self._location(resp)

    def upload_status(self, location: str) -> tuple[str, int]:
        """(next location, bytes the registry holds) of an upload session; :class:`UploadGone` if unknown."""
        resp = self.send("GET", location)
        if resp.status_code in (400, 404):
            raise UploadGone(_oci_message(resp))
        self.raise_for(resp, "the upload status")
        return self._location(resp, location), _range_end(resp) + 1 if _range_end(resp) > 0 else 0

    def patch(self, location: str, chunk: bytes, offset: int) -> tuple[str, int]:
        """Send one chunk at ``offset``; returns (next location, bytes the registry now holds)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                   "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        resp = self.send("PATCH", location, content=chunk, headers=headers)
        if resp.status_code == 416:
            raise RangeNotSatisfiable(_oci_message(resp))
        if resp.status_code in (400, 404) and "BLOB_UPLOAD" in resp.text:
            raise UploadGone(_oci_message(resp))
        self.raise_for(resp, "a blob chunk")
        end = _range_end(resp)
        return self._location(resp, location), end + 1 if end >= 0 else offset + len(chunk)

    def finish_upload(self, location: str, digest: str, body: bytes = b"") -> None:
        """Close an upload with its digest (the registry re-hashes what it holds); ``body`` is the last bytes
        (the whole blob, for a single-request upload)."""
        url = httpx.URL(location).copy_merge_params({"digest": digest})  # keep the session's own query (_state)
        headers = {"Content-Length": str(len(body)), "Content-Type": "application/octet-stream"}
        resp = self.send("PUT", str(url), content=body, headers=headers)
        if resp.status_code in (400, 404) and "BLOB_UPLOAD" in resp.text:
            raise UploadGone(_oci_message(resp))
        self.raise_for(resp, f"blob {digest[:19]}…")

    def _location(self, resp: httpx.Response, previous: str | None = None) -> str:
        location = str(resp.headers.get("location") or "")
        if not location:
            if previous is not None:
                return previous
            raise TransferFailed(f"the registry at {self.base} started an upload without a Location")
        return urljoin(self.base + "/", location)


def _retry_after(resp: httpx.Response, default: float) -> float:
    value = resp.headers.get("retry-after", "")
    return min(10.0, float(value)) if value.isdigit() else default


def _oci_message(resp: httpx.Response) -> str:
    """The registry's own words: the OCI error list's codes and messages, else the body's first line."""
    try:
        errors = resp.json().get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(f"{e.get('code', '')}: {e.get('message', '')}").strip(": ") for e in errors
                             if isinstance(e, dict))[:300]
    except (ValueError, AttributeError):
        pass
    text = resp.text.strip().splitlines()
    return text[0][:300] if text else f"HTTP {resp.status_code}"


def _range_end(resp: httpx.Response) -> int:
    """The last byte offset of an upload's ``Range: 0-<end>`` header, -1 when absent."""
    match = re.fullmatch(r"(?:bytes=)?0-(\d+)", resp.headers.get("range", "").strip())
    return int(match.group(1)) if match else -1


def _next_link(resp: httpx.Response) -> str | None:
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', resp.headers.get("link", ""))
    return match.group(1) if match else None


def _capped(data: bytes, what: str) -> bytes:
    if len(data) > MAX_MANIFEST_BYTES:
        raise PayloadTooLarge(f"{what} is over {MAX_MANIFEST_BYTES} bytes", hint="the registry is misbehaving")
    return data


def _read_capped(resp: httpx.Response, limit: int, what: str, *, declared: bool = False) -> bytes:
    """Read a response body, refusing it as soon as it passes ``limit`` bytes."""
    out = bytearray()
    for chunk in resp.iter_bytes():
        out += chunk
        if len(out) > limit:
            if declared:
                raise DigestMismatch(f"{what} is bigger than the {limit} bytes its descriptor declares: refused, "
                                     "nothing stored", hint="the registry's copy is damaged or was tampered with")
            raise PayloadTooLarge(f"{what} is over the {limit}-byte limit",
                                  hint="a model manifest is a few kilobytes; the registry is not serving one")
    return bytes(out)
