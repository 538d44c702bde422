"""The registry side of ``openzoo serve``: manifests and blobs (with HTTP ranges) for other zoos to pull,
and uploads for pushes, accepted only when this zoo runs with ``OPENZOO_API_KEY`` (the security
middleware then checks the bearer token on every request)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response, Security
from fastapi.responses import JSONResponse, StreamingResponse

from openzoo import names
from openzoo.api.deps import services_of
from openzoo.api.security import API_KEY_SCHEME
from openzoo.datasets.service import check_manifest
from openzoo.errors import BlobNotFound, Forbidden, InvalidRequest, NotFound, StoreCorrupt
from openzoo.facts.canonical import sha256_digest
from openzoo.store import manifests as mt
from openzoo.store.manifests import Manifest
from openzoo.store.store import Store

router = APIRouter()
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 1 << 20


def _name(namespace: str, model: str, reference: str) -> names.ModelName:
    if reference.startswith("sha256:"):
        return names.parse(f"{namespace}/{model}@{reference}")
    return names.parse(f"{namespace}/{model}:{reference}")


def _manifest_bytes(store: Store, namespace: str, model: str, reference: str) -> tuple[str, bytes]:
    name = _name(namespace, model, reference)
    if name.digest:
        row = store.catalog.connection.execute(
            "SELECT 1 FROM manifest_refs WHERE manifest_digest = ? LIMIT 1", (name.digest,)).fetchone()
        if row is None:
            raise NotFound(f"manifest {name.digest} not found")
        return name.digest, store.blobs.read(name.digest)
    stored = store.resolve(name)
    return stored.digest, store.blobs.read(stored.digest)


@router.get("/v2/")
async def base() -> dict[str, str]:
    return {}


@router.get("/v2/{namespace}/{model}/manifests/{reference}")
@router.head("/v2/{namespace}/{model}/manifests/{reference}")
async def get_manifest(request: Request, namespace: str, model: str, reference: str) -> Response:
    digest, data = _manifest_bytes(services_of(request).store, namespace, model, reference)
    headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(data))}
    body = b"" if request.method == "HEAD" else data
    return Response(body, media_type=mt.MANIFEST_MEDIA_TYPE, headers=headers)


def _file_range(path: str, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@router.get("/v2/{namespace}/{model}/blobs/{digest}")
@router.head("/v2/{namespace}/{model}/blobs/{digest}")
async def get_blob(request: Request, namespace: str, model: str, digest: str) -> Response:
    store = services_of(request).store
    digest = names.normalize_digest(digest)
    known = store.catalog.connection.execute("SELECT size FROM blobs WHERE digest = ?", (digest,)).fetchone()
    if known is None or not store.blobs.exists(digest):
        raise BlobNotFound(f"blob {digest} not found")
    size = store.blobs.size(digest)
    headers = {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes"}
    start, end, status = 0, size - 1, 200
    header = request.headers.get("range")
    if header:
        match = _RANGE.match(header.strip())
        if match is None or int(match.group(1)) >= max(size, 1):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(_file_range(str(store.blobs.path(digest)), start, end), status_code=status,
                             headers=headers, media_type="application/octet-stream")


def _require_push(request: Request) -> None:
    if not services_of(request).config.api_key:
        raise Forbidden("this zoo does not accept pushes", hint="start the receiving zoo with OPENZOO_API_KEY set")


@router.post("/v2/{namespace}/{model}/blobs/uploads/", dependencies=[Security(API_KEY_SCHEME)])
async def start_upload(request: Request, namespace: str, model: str) -> Response:
    _require_push(request)
    names.parse(f"{namespace}/{model}")
    location = f"/v2/{namespace}/{model}/blobs/uploads/{uuid.uuid4().hex}"
    return Response(status_code=202, headers={"Location": location, "Range": "0-0"})


@router.put("/v2/{namespace}/{model}/blobs/uploads/{upload_id}", dependencies=[Security(API_KEY_SCHEME)],
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                             "format": "binary"}}}}})
async def finish_upload(request: Request, namespace: str, model: str, upload_id: str) -> Response:
    _require_push(request)
    digest = names.normalize_digest(request.query_params.get("digest", ""))
    store = services_of(request).store
    with store.blobs.writer() as writer:
        async for chunk in request.stream():
            writer.write(chunk)
        info = writer.commit(digest)
    return Response(status_code=201, headers={"Docker-Content-Digest": info.digest,
                                              "Location": f"/v2/{namespace}/{model}/blobs/{info.digest}"})


@router.put("/v2/{namespace}/{model}/manifests/{reference}", dependencies=[Security(API_KEY_SCHEME)],
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/vnd.oci.image.manifest.v1+json": {"schema": {"type": "object"}}}}})
async def put_manifest(request: Request, namespace: str, model: str, reference: str) -> Response:
    _require_push(request)
    name = _name(namespace, model, reference)
    if name.digest:
        raise InvalidRequest("push a manifest to a tag, not a digest")
    data = await request.body()
    try:
        manifest = Manifest.from_bytes(data)
    except StoreCorrupt as exc:
        raise InvalidRequest(str(exc)) from exc
    store = services_of(request).store
    for blob in manifest.blob_digests():
        if not store.blobs.exists(blob):
            raise BlobNotFound(f"blob {blob} is not uploaded yet", hint="upload every blob before the manifest")
    if manifest.kind == "dataset":  # a pushed dataset is checked row by row, as an import is
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(check_manifest, store, manifest)
    digest = store.tag(name, manifest)
    if digest != sha256_digest(manifest.to_bytes()):
        raise InvalidRequest("manifest is not in canonical form")
    return JSONResponse({"digest": digest}, status_code=201, headers={"Docker-Content-Digest": digest})
