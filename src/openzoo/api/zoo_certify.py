"""``/zoo/*`` certification endpoints: the transparency log (head, entries, proofs), model cards and seals,
open certification requests (for the web catalog) and the zoo's public key. Thin over
:mod:`openzoo.certify.service`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from openzoo import names
from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.certify.service import Certification
from openzoo.errors import NotFound
from openzoo.facts.canonical import b64encode
from openzoo.registry.client import LEAVES_PER_PAGE

router = APIRouter()
T = TypeVar("T")


async def _with_cert(request: Request, read: Callable[[Certification], T]) -> T:
    """Run ``read`` on the store's certification service off the event loop (it reads SQLite and blobs)."""
    return await _run(read, services_of(request).certification)


@router.get("/zoo/log/head")
async def log_head(request: Request) -> PlainTextResponse:
    """The latest signed head with its witnesses' cosignatures (the same note as ``/zoo/log/checkpoint``)."""

    return PlainTextResponse(await _with_cert(request, lambda c: c.witnesses.cosigned()))


@router.get("/zoo/log/entries")
async def log_entries(request: Request, start: int = 0, limit: int = 100, kind: str | None = None) -> dict[str, Any]:
    def read(cert: Certification) -> dict[str, Any]:
        entries = cert.log.entries(max(0, start), max(1, min(limit, 1000)), kind)
        return {
            "size": cert.log.size(),
            "entries": [{"index": e.index, "kind": e.kind, "body": e.body, "timestamp": e.timestamp,
                         "leaf_hash": b64encode(e.leaf_hash)} for e in entries],
        }

    return await _with_cert(request, read)


@router.get("/zoo/log/leaves")
async def log_leaves(request: Request, start: int = 0, count: int = LEAVES_PER_PAGE) -> dict[str, Any]:
    """Leaf hashes only (32 bytes each, base64): what another zoo's monitor copies to check every head."""
    def read(cert: Certification) -> dict[str, Any]:
        first = max(0, start)
        leaves = cert.log.leaves(first, max(0, min(count, LEAVES_PER_PAGE)))
        return {"start": first, "leaves": [b64encode(leaf) for leaf in leaves]}

    return await _with_cert(request, read)


@router.get("/zoo/log/proof/inclusion")
async def inclusion(request: Request, index: int, size: int | None = None) -> dict[str, Any]:
    def prove(cert: Certification) -> dict[str, Any]:
        note = cert.head() if size is None else cert.log.checkpoint(size)
        return cert.log.receipt(index, note).to_json()

    return await _with_cert(request, prove)


@router.get("/zoo/log/proof/consistency")
async def consistency(request: Request, old: int, new: int | None = None) -> dict[str, Any]:
    def prove(cert: Certification) -> dict[str, Any]:
        new_size = cert.log.size() if new is None else new
        proof = cert.log.consistency_proof(old, new_size)
        return {"old_size": old, "new_size": new_size, "proof": [b64encode(p) for p in proof]}

    return await _with_cert(request, prove)


@router.get("/zoo/models/{name:path}/card")
async def card(request: Request, name: str) -> dict[str, Any]:
    def read(cert: Certification) -> dict[str, Any]:
        found, _ = cert.card_or_draft(name)
        return {"model": names.parse(name).display, "metadata": found.metadata, "markdown": found.render(),
                "html": found.html(), "digest": found.digest()}

    return await _with_cert(request, read)


@router.get("/zoo/models/{name:path}/seal")
async def seal(request: Request, name: str) -> dict[str, Any]:
    """The seal bundle, a fresh receipt for it under the latest signed head, and the logged revocations."""

    def read(cert: Certification) -> dict[str, Any]:
        bundle = cert.seal_bundle(name)
        from openzoo.certify.requests import seal_predicate

        index = seal_predicate(bundle).get("log", {}).get("index")
        witnesses = cert.witnesses
        head = witnesses.cosigned()  # the receipt is under the latest head witnesses cosigned, if one covers it
        witnessed = (witnesses.latest_cosigned(index) if isinstance(index, int) else None) or head
        receipt = cert.log.receipt(int(index), witnessed).to_json() if isinstance(index, int) else bundle["receipt"]
        return {"model": names.parse(name).display, "bundle": bundle, "receipt": receipt,
                "revocations": cert.revocations(after=index if isinstance(index, int) else -1), "head": head}

    return await _with_cert(request, read)


@router.get("/zoo/requests")
async def requests(request: Request, status: str | None = "open") -> dict[str, Any]:
    def read(cert: Certification) -> dict[str, Any]:
        return {"requests": [r.to_json() for r in cert.requests(status=None if status == "all" else status)]}

    return await _with_cert(request, read)


@router.get("/zoo/keys/zoo")
async def zoo_key(request: Request) -> PlainTextResponse:
    key = await _with_cert(request, Certification.zoo_public)
    if key is None:
        raise NotFound("no zoo key")
    return PlainTextResponse(key.pem().decode(), media_type="application/x-pem-file")
