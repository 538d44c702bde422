"""The log and the witness on the C2SP wire: ``/zoo/log/checkpoint``, ``/zoo/log/tile/...`` (tlog-tiles) and
``/zoo/witness/add-checkpoint`` (tlog-witness). Thin over :mod:`openzoo.certify.tiles`,
:mod:`openzoo.certify.witnessing` and :mod:`openzoo.certify.witness`.

Errors use the ``/zoo`` envelope, except the witness's 409, whose body the spec fixes: the size it knows,
``text/x.tlog.size``. Also here: the thread of ``openzoo serve`` that asks this zoo's witnesses to cosign
each new checkpoint (:class:`Cosigner`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.api.periodic import PeriodicTask
from openzoo.certify.service import Certification
from openzoo.certify.tiles import parse_tile_path, read_tile
from openzoo.certify.witness import MAX_BODY_BYTES, SIZE_MEDIA_TYPE
from openzoo.errors import PayloadTooLarge, StaleCheckpoint

if TYPE_CHECKING:
    from openzoo.services import Services

router = APIRouter()
log = logging.getLogger("openzoo.witness")
TEXT = "text/plain; charset=utf-8"
IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=10"
CHECKPOINT = "no-cache, max-age=0"
RETRY_SECONDS = 5.0


def _cert(request: Request) -> Certification:
    return services_of(request).certification


@router.get("/zoo/log/checkpoint")
async def checkpoint(request: Request) -> Response:
    """The latest checkpoint: the log key's Ed25519 line, the zoo key's P-256 line, witnesses' cosignatures."""
    note = await _run(lambda c: c.witnesses.cosigned(), _cert(request))
    return Response(note, media_type=TEXT, headers={"Cache-Control": CHECKPOINT})


@router.get("/zoo/log/tile/{path:path}")
async def tile(request: Request, path: str) -> Response:
    """A hash tile or an entry bundle (404 past the tree, 400 for a path that is not a tile's)."""
    found = parse_tile_path(path)
    data = await _run(lambda c: read_tile(c.log, found), _cert(request))
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": IMMUTABLE if found.full else PARTIAL})


@router.post("/zoo/witness/add-checkpoint", openapi_extra={"requestBody": {"required": True, "content": {
    "text/plain": {"schema": {"type": "string", "description": "C2SP tlog-witness: old size, proof, checkpoint"}}}}})
async def add_checkpoint(request: Request) -> Response:
    """C2SP tlog-witness: cosign a checkpoint of a log this zoo witnesses if it extends the one cosigned before."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"an add-checkpoint request is at most {MAX_BODY_BYTES} bytes")
    source = f"witness:{request.client.host if request.client else '?'}"
    try:
        lines = await _run(lambda c: c.witness.add_checkpoint(bytes(body), source), _cert(request))
    except StaleCheckpoint as exc:
        return PlainTextResponse(f"{exc.size}\n", status_code=409, media_type=SIZE_MEDIA_TYPE)
    return PlainTextResponse(lines, media_type=TEXT)


@router.get("/zoo/witness/{origin_hash}/checkpoint")
async def witnessed(request: Request, origin_hash: str) -> Response:
    """The latest checkpoint this witness cosigned of the log whose origin hashes (SHA-256, hex) to the path."""
    note = await _run(lambda c: c.witness.checkpoint(origin_hash.lower()), _cert(request))
    return Response(note, media_type=TEXT, headers={"Cache-Control": CHECKPOINT})


class Cosigner(PeriodicTask):
    """Asks this zoo's witnesses to cosign whenever the log grew (every ``OPENZOO_WITNESS_INTERVAL``).

    Appends never wait for it: it notices a new size on its next look, and each witness gets at most
    ``OPENZOO_WITNESS_TIMEOUT`` per request.
    """

    name = "openzoo-cosigner"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.asked_size = -1
        self.asked_at = 0.0

    def interval(self) -> float:
        return self.services.config.witness_interval

    def run_once(self) -> None:
        self.ask_once()

    def ask_once(self) -> None:
        cert = self.services.certification
        witnesses = cert.witnesses
        size = cert.log.size()
        waited = time.monotonic() - self.asked_at
        if not witnesses.missing(size) or (size == self.asked_size and waited < RETRY_SECONDS):
            return  # nothing new; a witness that refused or was down is asked again after RETRY_SECONDS
        witnesses.ask(self.services.config.witness_timeout, self.services.config.remote_api_key or None)
        self.asked_size, self.asked_at = size, time.monotonic()


def start_cosigner(services: Services) -> Cosigner | None:
    """Start asking witnesses unless the interval is 0."""
    if services.config.witness_interval <= 0:
        return None
    return Cosigner(services).start()
