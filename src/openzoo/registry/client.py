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
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from openzoo import names
from openzoo.certify.canonical import b64decode, sha256_digest
from openzoo.certify.checkpoint import verify_checkpoint
from openzoo.certify.log import LogReceipt
from openzoo.certify.merkle import verify_consistency
from openzoo.certify.requests import seal_predicate
from openzoo.certify.service import certification
from openzoo.certify.verification import check_logged_approvals
from openzoo.datasets.service import check_manifest
from openzoo.errors import (
    DigestMismatch,
    Forbidden,
    InvalidData,
    InvalidRequest,
    NotFound,
    OpenzooError,
    Unauthorized,
    VerificationFailed,
)
from openzoo.events import Progress
from openzoo.names import ModelName
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

__all__ = ["RegistryClient", "TransferFailed", "pull_model", "push_model"]

API_KEY_ENV = "OPENZOO_REMOTE_API_KEY"
_CHUNK = 1 << 20


class TransferFailed(OpenzooError):
    """The remote zoo could not be reached or the transfer broke off (a new pull resumes it)."""

    code = "transfer_failed"
    http_status = 502
    hint = "run the same pull again: it resumes where it stopped"


class RegistryClient:
    """HTTP access to another zoo's ``/v2`` registry and ``/zoo`` certification endpoints."""

    def __init__(self, host: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.base = host if host.startswith(("http://", "https://")) else f"http://{host}"
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

    def log_head(self) -> str:
        return self._get("/zoo/log/head").text

    def approval_receipts(self, bundle: dict[str, Any], size: int) -> list[LogReceipt]:
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
                           hint=f"set {API_KEY_ENV} to the remote zoo's OPENZOO_API_KEY")
    if resp.status_code == 403:
        raise Forbidden(f"the zoo at {base} refused: {message}", hint="the remote zoo must set OPENZOO_API_KEY")
    raise TransferFailed(f"the zoo at {base} answered {resp.status_code}: {message}")


def _download(store: Store, client: RegistryClient, repository: str, digest: str, size: int) -> Iterator[Progress]:
    """Download one blob into ``downloads/`` (resuming a partial file), check its digest, move it in place."""
    hexdigest = names.normalize_digest(digest)[7:]
    folder = Path(store.home) / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"sha256-{hexdigest}.partial"
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        part.unlink()
        offset = 0
    hasher = hashlib.sha256()
    if offset:
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                hasher.update(chunk)
    status = f"pulling {hexdigest[:12]}"
    if offset:
        yield Progress(f"resuming {hexdigest[:12]} at {offset} of {size} bytes", digest=digest)
    yield Progress(status, digest=digest, total=size, completed=offset)
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    completed = offset
    last = 0.0
    try:
        with client.http.stream("GET", f"/v2/{repository}/blobs/{digest}", headers=headers) as resp:
            if resp.status_code >= 400:
                resp.read()
                _raise_for(resp, client.base)
            if offset and resp.status_code != 206:
                hasher, completed, mode = hashlib.sha256(), 0, "wb"
            else:
                mode = "ab"
            with part.open(mode) as f:
                for chunk in resp.iter_bytes(_CHUNK):
                    f.write(chunk)
                    hasher.update(chunk)
                    completed += len(chunk)
                    now = time.monotonic()
                    if now - last > 0.1:
                        last = now
                        yield Progress(status, digest=digest, total=size, completed=completed)
                f.flush()
                os.fsync(f.fileno())
    except httpx.HTTPError as exc:
        raise TransferFailed(f"the transfer of {digest[:19]}… from {client.base} broke off at {completed} of "
                             f"{size} bytes: {exc}") from exc
    actual = "sha256:" + hasher.hexdigest()
    if completed < size:
        raise TransferFailed(f"the transfer of {digest[:19]}… from {client.base} stopped at {completed} of "
                             f"{size} bytes")
    if actual != names.normalize_digest(digest) or completed != size:
        part.unlink()
        raise DigestMismatch(f"blob {digest[:19]}… from {client.base} does not match its digest (it hashes to "
                             f"{actual[:19]}…): refused")
    os.replace(part, store.blobs.path(digest))
    yield Progress(status, digest=digest, total=size, completed=size)


def pull_model(store: Store, name: ModelName, *, insecure: bool = False) -> Iterator[Progress]:
    """Pull ``name`` (with a host part) from another zoo, verify it and tag it; see the module docstring."""
    if not name.is_remote:
        raise InvalidRequest(f"{name.display} has no host to pull from")
    cert = certification(store)
    client = RegistryClient(name.host, os.environ.get(API_KEY_ENV) or None)
    reference = name.digest or name.tag
    try:
        yield Progress("pulling manifest")
        raw = client.manifest(name.repository, reference)
        if name.digest and sha256_digest(raw) != name.digest:
            raise DigestMismatch(f"manifest from {client.base} does not match {name.digest}")
        manifest = Manifest.from_bytes(raw)
        blobs = [(manifest.config.digest, manifest.config.size)] + [(x.digest, x.size) for x in manifest.layers]
        fetched: list[str] = []
        for digest, size in blobs:
            if store.blobs.exists(digest):
                if cert._check_blob(digest):
                    store.blobs.delete(digest)
                else:
                    yield Progress(f"pulling {digest[7:19]}", digest=digest, total=size, completed=size)
                    continue
            yield from _download(store, client, name.repository, digest, size)
            fetched.append(digest)
        yield Progress("verifying sha256 digest")
        if manifest.kind == "dataset":
            yield Progress(f"checking every row of {name.display}")
            try:
                check_manifest(store, manifest)
            except InvalidData as exc:
                store.remove_unreferenced(fetched)
                raise VerificationFailed(f"refused {name.display}: {exc.message}") from exc
        yield Progress(f"verifying the seal of {name.display}")
        certified, zoo, reason, receipt, revocations, head = _verify_remote(cert, client, name, manifest)
        if not certified:
            if not insecure:
                store.remove_unreferenced(fetched)
                raise VerificationFailed(f"refused {name.display}: {reason}",
                                         hint="pull with --insecure to keep it, marked uncertified")
            yield Progress(f"WARNING: {reason}; keeping it uncertified (--insecure)")
        else:
            yield Progress(f"verified against {zoo}: {reason}")
        yield Progress("writing manifest")
        tagged = [name.with_host(name.host)]
        short = names.parse(f"{name.namespace}/{name.model}:{name.tag}")
        if _may_take_short_name(store, cert, short, name.host, manifest):
            tagged.append(short)
        for target in tagged:
            digest = store.tag(ModelName(target.host, target.namespace, target.model, target.tag), manifest)
            cert.record_pull(target, source=name.host, zoo=zoo, certified=certified, manifest_digest=digest,
                             receipt=receipt, revocations=revocations, head=head)
        now = time.time()
        for digest, _ in blobs:
            store.catalog.mark_verified(digest, now)
        yield Progress("tagged as certified" if certified else "tagged as uncertified")
        yield Progress("success")
    finally:
        client.close()


def _may_take_short_name(store: Store, cert: Any, short: ModelName, source: str, manifest: Manifest) -> bool:
    """Tag the pulled model under its short name too (``gemma3:270m``) when that name is free, came from the
    same zoo before, or holds an unsealed model with the very same weights (e.g. the embedded default)."""
    entry = store.catalog.find(short)
    if entry is None:
        return True
    pulled = cert.pulled(short)
    if pulled is not None and pulled["source"] == source:
        return True
    local = store.load_manifest(entry.manifest_digest)
    weights, theirs = local.first(mt.MODEL), manifest.first(mt.MODEL)
    return (local.first(mt.SEAL) is None and weights is not None and theirs is not None
            and weights.digest == theirs.digest)


def _verify_remote(cert: Any, client: RegistryClient, name: ModelName, manifest: Manifest
                   ) -> tuple[bool, str | None, str, LogReceipt | None, list[dict[str, Any]], str | None]:
    """(certified, zoo name, reason, receipt, revocations, head) for a downloaded manifest."""
    seal_layer = manifest.first(mt.SEAL)
    if seal_layer is None:
        return False, None, "the model has no seal", None, [], None
    zoo_keys = [k for k in cert.zoo_keys() if k.name != "zoo"] or cert.zoo_keys()
    try:
        head = client.log_head()
        cp = None
        signer = None
        for key in zoo_keys:
            try:
                cp = verify_checkpoint(head, [key])
                signer = key
                break
            except OpenzooError:
                continue
        if cp is None or signer is None:
            return False, None, "the remote log head is not signed by a trusted zoo key (run 'openzoo keys trust')", \
                None, [], head
        info = client.seal(f"{name.repository}:{name.tag}")
        receipt = LogReceipt.from_json(info["receipt"])
        revocations = [r for r in info.get("revocations", []) if isinstance(r, dict)]
        if receipt.size != cp.size:
            from openzoo.certify.checkpoint import Checkpoint, parse_note

            rcp = Checkpoint.parse_body(parse_note(receipt.checkpoint).text)
            proof = client.consistency_proof(rcp.size, cp.size) if rcp.size < cp.size else []
            if not verify_consistency(rcp.size, cp.size, rcp.root_hash, cp.root_hash, proof):
                return False, signer.name, "the remote log head is not consistent with the seal receipt (fork)", \
                    None, [], head
        bundle = cert.store.blobs.read(seal_layer.digest)
        from openzoo.certify.canonical import parse_json

        bundle_json = parse_json(bundle, "seal")
        checks, _ = cert.check_seal(manifest, bundle_json, receipt, revocations, zoo_keys=[signer])
        checks.append(check_logged_approvals(bundle_json, client.approval_receipts(bundle_json, cp.size), [signer]))
    except (OpenzooError, KeyError, TypeError, ValueError) as exc:
        return False, None, f"the seal cannot be verified: {exc}", None, [], None
    failed = [c for c in checks if not c.ok]
    if failed:
        return False, signer.name, "; ".join(f"{c.name}: {c.reason}" for c in failed), receipt, revocations, head
    quorum = next((c.reason for c in checks if c.name == "quorum"), "")
    return True, signer.name, f"seal, quorum ({quorum}) and log inclusion verified", receipt, revocations, head


def push_model(store: Store, model: str, destination: str | None, *, api_key: str | None = None
               ) -> Iterator[Progress]:
    """Send a model to another zoo's registry (``PUT``/``POST`` under ``/v2``, guarded by its API key)."""
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
    client = RegistryClient(target.host, api_key or os.environ.get(API_KEY_ENV) or None)
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
                    while chunk := f.read(_CHUNK):
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
