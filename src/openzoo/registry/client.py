"""Pull from and push to another zoo.

``pull HOST:PORT/ns/name:tag``: fetch the manifest, download every missing blob with progress into a
resumable partial file (an interrupted transfer continues with an HTTP Range request), check each digest
(and, for a dataset, every row of its data files against its config), then fetch the seal's fresh log
receipt, the remote log head and its revocations, and verify the seal, the quorum and the inclusion proof
against the remote zoo's pinned key (``openzoo keys trust zoo-a zoo.pub``) before tagging. An
unverifiable model or dataset is refused unless ``insecure``; then it is tagged but recorded as
uncertified, and ``openzoo verify`` says so.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from openzoo import names
from openzoo.certify.log import LogReceipt
from openzoo.certify.requests import seal_predicate
from openzoo.certify.service import Certification
from openzoo.errors import (
    BadAnswer,
    DigestMismatch,
    Forbidden,
    InvalidRequest,
    NotFound,
    OpenzooError,
    TransferFailed,
    Unauthorized,
    VerificationFailed,
)
from openzoo.events import Progress
from openzoo.facts.canonical import b64decode, parse_json, sha256_digest
from openzoo.names import ModelName
from openzoo.registry.landing import check_content, fetch_blobs, land
from openzoo.registry.transfer import CHUNK, download_blob
from openzoo.registry.trust import SealEvidence, Verdict, verify_sealed
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

__all__ = ["RegistryClient", "pull_model", "push_model"]

LEAVES_PER_PAGE = 1000  # what /zoo/log/leaves and /zoo/gossip/leaves answer at most per request
_JSON_LIMIT = 4 << 20  # bytes of any JSON answer a monitor reads (a page of leaves is about 50 KB)


class RegistryClient:
    """HTTP access to another zoo's ``/v2`` registry and ``/zoo`` certification endpoints."""

    def __init__(self, host: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.base = host if host.startswith(("http://", "https://")) else f"http://{host}"
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base, headers=headers,
                                 timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.get(path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransferFailed(f"cannot reach the zoo at {self.base}: {exc}") from exc
        _raise_for(resp, self.base)
        return resp

    def manifest(self, repository: str, reference: str) -> bytes:
        return self._get(f"/v2/{repository}/manifests/{reference}",
                         headers={"Accept": mt.MANIFEST_MEDIA_TYPE}).content

    def seal(self, name: str) -> dict[str, Any]:
        data = self._get(f"/zoo/models/{name}/seal").json()
        if not isinstance(data, dict):
            raise VerificationFailed("the remote seal answer is not an object")
        return data

    def _get_limited(self, path: str, limit: int, params: dict[str, Any] | None = None) -> bytes:
        """GET ``path`` reading at most ``limit`` bytes of the answer (BadAnswer beyond that) within the
        client's timeout in all (TransferFailed after it), so a zoo that trickles bytes cannot hold a monitor."""
        deadline = time.monotonic() + self.timeout
        try:
            with self.http.stream("GET", path, params=params) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for(resp, self.base)
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise BadAnswer(f"{self.base}{path} answered more than {limit} bytes")
                    if time.monotonic() > deadline:
                        raise TransferFailed(f"{self.base}{path} took more than {self.timeout:g}s to answer")
                return bytes(body)
        except httpx.HTTPError as exc:
            raise TransferFailed(f"cannot reach the zoo at {self.base}: {exc}") from exc

    def _json_object(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            data = json.loads(self._get_limited(path, _JSON_LIMIT, params))
        except ValueError as exc:
            raise BadAnswer(f"{self.base}{path} did not answer JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadAnswer(f"{self.base}{path} did not answer a JSON object")
        return data

    def log_head(self) -> str:
        """The zoo's latest signed tree head (at most :data:`~openzoo.certify.gossip.MAX_NOTE_BYTES`)."""
        from openzoo.certify.gossip import MAX_NOTE_BYTES

        raw = self._get_limited("/zoo/log/head", MAX_NOTE_BYTES)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadAnswer(f"{self.base}/zoo/log/head is not UTF-8 text") from exc

    def log_leaves(self, start: int, count: int) -> list[bytes]:
        """Up to ``count`` leaf hashes of the zoo's own log from index ``start``."""
        return self._leaves("/zoo/log/leaves", start, count)

    def gossip_leaves(self, origin: str, start: int, count: int) -> list[bytes]:
        """Up to ``count`` leaf hashes of the zoo's copy of the log ``origin`` from ``start``."""
        return self._leaves("/zoo/gossip/leaves", start, count, origin=origin)

    def _leaves(self, path: str, start: int, count: int, **params: Any) -> list[bytes]:
        count = min(count, LEAVES_PER_PAGE)
        data = self._json_object(path, {**params, "start": start, "count": count})
        leaves = data.get("leaves")
        if data.get("start") != start or not isinstance(leaves, list) or len(leaves) > count:
            raise BadAnswer(f"{self.base}{path} answered leaves from another index or too many of them")
        out = []
        for leaf in leaves:
            raw = b64decode(leaf, "leaf hash") if isinstance(leaf, str) else b""
            if len(raw) != 32:
                raise BadAnswer(f"{self.base}{path} answered a leaf hash that is not 32 bytes of base64")
            out.append(raw)
        return out

    def gossip_heads(self, origin: str | None = None) -> list[object]:
        """The signed heads this zoo saw of other zoos' logs (notes only: the caller verifies each)."""
        return self._gossip("heads", "note", origin)

    def gossip_forks(self, origin: str | None = None) -> list[object]:
        """The fork evidence this zoo holds (raw: the caller verifies each against its pinned keys)."""
        return self._gossip("forks", "evidence", origin)

    def _gossip(self, kind: str, field: str, origin: str | None) -> list[object]:
        """``field`` of every record ``/zoo/gossip/{kind}`` lists (about ``origin``'s log, if given)."""
        path = f"/zoo/gossip/{kind}"
        data = self._json_object(path, {"origin": origin} if origin else None)
        records = data.get(kind)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BadAnswer(f"{self.base}{path} did not answer a list of {kind}")
        return [r.get(field) for r in records]

    def approval_receipts(self, bundle: Mapping[str, Any], size: int) -> list[LogReceipt]:
        """Inclusion receipts, under the tree of ``size``, of the logged approvals of the sealed request."""
        request_id = seal_predicate(bundle).get("requestId")
        entries = self._get("/zoo/log/entries", params={"kind": "approval", "limit": 1000}).json()["entries"]
        out = []
        for entry in entries:
            body = entry.get("body")
            if isinstance(body, dict) and body.get("request_id") == request_id and int(entry["index"]) < size:
                data = self._get("/zoo/log/proof/inclusion", params={"index": entry["index"], "size": size}).json()
                out.append(LogReceipt.from_json(data))
        return out

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        data = self._get("/zoo/log/proof/consistency", params={"old": old, "new": new}).json()
        return [b64decode(str(p), "proof hash") for p in data["proof"]]


def _raise_for(resp: httpx.Response, base: str) -> None:
    if resp.status_code < 400:
        return
    try:
        message = str(resp.json().get("error") or resp.text)
    except ValueError:
        message = resp.text
    if resp.status_code == 404:
        raise NotFound(f"{base}: {message}")
    if resp.status_code == 401:
        raise Unauthorized(f"the zoo at {base} needs an API key: {message}",
                           hint="set OPENZOO_REMOTE_API_KEY to the remote zoo's OPENZOO_API_KEY")
    if resp.status_code == 403:
        raise Forbidden(f"the zoo at {base} refused: {message}", hint="the remote zoo must set OPENZOO_API_KEY")
    raise TransferFailed(f"the zoo at {base} answered {resp.status_code}: {message}")


def _download(store: Store, client: RegistryClient, repository: str, digest: str, size: int) -> Iterator[Progress]:
    """Download one blob of another zoo into the store (resumable: :func:`.transfer.download_blob`)."""
    yield from download_blob(store, client.http, f"/v2/{repository}/blobs/{digest}", digest, size, source=client.base,
                             raise_for=lambda resp: _raise_for(resp, client.base))


def pull_model(cert: Certification, name: ModelName, *, insecure: bool = False, api_key: str | None = None
               ) -> Iterator[Progress]:
    """Pull ``name`` (with a host part) from another zoo, verify it and tag it; see the module docstring.
    ``api_key``: the other zoo's key, when it guards reads (the caller passes ``OPENZOO_REMOTE_API_KEY``)."""
    if not name.is_remote:
        raise InvalidRequest(f"{name.display} has no host to pull from")
    store = cert.store
    client = RegistryClient(name.host, api_key)
    reference = name.digest or name.tag
    try:
        yield Progress("pulling manifest")
        raw = client.manifest(name.repository, reference)
        if name.digest and sha256_digest(raw) != name.digest:
            raise DigestMismatch(f"manifest from {client.base} does not match {name.digest}")
        manifest = Manifest.from_bytes(raw)
        blobs = [(manifest.config.digest, manifest.config.size)] + [(x.digest, x.size) for x in manifest.layers]
        fetched: list[str] = []
        yield from fetch_blobs(store, cert, blobs,
                               lambda digest, size: _download(store, client, name.repository, digest, size), fetched)
        yield Progress("verifying sha256 digest")
        try:
            yield from check_content(store, manifest, name.display)
        except OpenzooError:  # refused content (rows, GGUF, text, media types): nothing of it stays
            store.remove_unreferenced(fetched)
            raise
        yield Progress(f"verifying the seal of {name.display}")
        verdict = _verify_remote(cert, client, name, manifest)
        if not verdict.certified:
            if not insecure:
                store.remove_unreferenced(fetched)
                raise VerificationFailed(f"refused {name.display}: {verdict.reason}",
                                         hint="pull with --insecure to keep it, marked uncertified")
            yield Progress(f"WARNING: {verdict.reason}; keeping it uncertified (--insecure)")
        else:
            yield Progress(f"verified against {verdict.zoo}: {verdict.reason}")
        yield from land(store, cert, name.with_host(name.host), manifest, source=name.host, verdict=verdict)
        yield Progress("success")
    finally:
        client.close()


def _verify_remote(cert: Any, client: RegistryClient, name: ModelName, manifest: Manifest) -> Verdict:
    """Fetch the seal's evidence from the other zoo (log head, fresh receipt, revocations, approval receipts
    and a consistency proof when needed) and verify it offline against the pinned zoo keys."""
    seal_layer = manifest.first(mt.SEAL)
    if seal_layer is None:
        return Verdict(False, None, "the model has no seal")
    zoo_keys = [k for k in cert.zoo_keys() if k.name != "zoo"] or cert.zoo_keys()
    try:
        bundle = parse_json(cert.store.blobs.read(seal_layer.digest), "seal")
        head = client.log_head()
        info = client.seal(f"{name.repository}:{name.tag}")
        evidence = SealEvidence(head, LogReceipt.from_json(info["receipt"]),
                                [r for r in info.get("revocations", []) if isinstance(r, dict)],
                                client.approval_receipts, client.consistency_proof)
    except (OpenzooError, KeyError, TypeError, ValueError) as exc:
        return Verdict(False, None, f"the seal cannot be verified: {exc}")
    if not isinstance(bundle, dict):
        return Verdict(False, None, "the seal layer is not a seal bundle")
    return verify_sealed(cert, manifest, bundle, evidence, zoo_keys)


def push_model(store: Store, model: str, destination: str | None, *, api_key: str | None = None
               ) -> Iterator[Progress]:
    """Send a model to another zoo's registry (``PUT``/``POST`` under ``/v2``, guarded by its API key: ``api_key``,
    which the caller takes from ``OPENZOO_REMOTE_API_KEY``)."""
    source = names.parse(model)
    target = names.parse(destination) if destination else source
    if not target.is_remote:
        raise InvalidRequest(f"say where to push {source.display}",
                             hint="use HOST:PORT/ns/name:tag, or --to HOST:PORT/ns/name:tag")
    local = store.catalog.find(source)
    if local is None and source.is_remote:
        source = names.parse(f"{source.namespace}/{source.model}:{source.tag}")
    stored = store.resolve(source)
    manifest = stored.manifest
    client = RegistryClient(target.host, api_key)
    try:
        yield Progress("preparing to push")
        for layer in [manifest.config, *manifest.layers]:
            status = f"pushing {layer.digest[7:19]}"
            try:
                head = client.http.head(f"/v2/{target.repository}/blobs/{layer.digest}")
            except httpx.HTTPError as exc:
                raise TransferFailed(f"cannot reach the zoo at {client.base}: {exc}") from exc
            if head.status_code == 200:
                yield Progress(status, digest=layer.digest, total=layer.size, completed=layer.size)
                continue
            start = client.http.post(f"/v2/{target.repository}/blobs/uploads/")
            _raise_for(start, client.base)
            location = start.headers.get("location", "")
            yield Progress(status, digest=layer.digest, total=layer.size, completed=0)
            with store.blobs.open(layer.digest) as f:
                def chunks() -> Iterator[bytes]:
                    while chunk := f.read(CHUNK):
                        yield chunk
                resp = client.http.put(location, params={"digest": layer.digest}, content=chunks(),
                                       headers={"Content-Type": "application/octet-stream"})
            _raise_for(resp, client.base)
            yield Progress(status, digest=layer.digest, total=layer.size, completed=layer.size)
        yield Progress("pushing manifest")
        resp = client.http.put(f"/v2/{target.repository}/manifests/{target.tag}", content=manifest.to_bytes(),
                               headers={"Content-Type": mt.MANIFEST_MEDIA_TYPE})
        _raise_for(resp, client.base)
        yield Progress("success")
    except httpx.HTTPError as exc:
        raise TransferFailed(f"push to {client.base} failed: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            client.close()
