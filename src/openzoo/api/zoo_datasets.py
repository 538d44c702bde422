"""``/zoo/datasets``: list, show, import, datasheet and remove datasets. Thin over :mod:`openzoo.datasets.service`.

``POST /zoo/datasets`` takes ``{"name", "files": {"train.jsonl": "sha256:…"}, "license"?, "datasheet"?,
"format"?}`` where every file was uploaded first with ``POST /api/blobs/<digest>``; it answers ``201`` once
every row has been checked and the dataset is tagged, or ``400``/``404``/``413`` with nothing stored.
Datasets never appear under ``/api/tags`` or ``/v1/models``: those list models only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from openzoo import names
from openzoo.api.bodies import JsonBodyRoute
from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.datasets.service import Source
from openzoo.errors import BlobNotFound, InvalidRequest
from openzoo.events import Progress
from openzoo.facts.datafiles import check_filename, detect_format

router = APIRouter(route_class=JsonBodyRoute)


class ImportBody(BaseModel):
    name: str
    files: dict[str, str] = Field(default_factory=dict)
    license: str | None = None
    datasheet: str | None = None
    format: str | None = None


@router.get("/zoo/datasets")
async def list_datasets(request: Request) -> dict[str, Any]:
    found = await _run(services_of(request).datasets.list_datasets)
    return {"datasets": [d.to_json() for d in found]}


@router.post("/zoo/datasets", status_code=201)
async def import_dataset(request: Request, body: ImportBody) -> JSONResponse:
    if not body.files:
        raise InvalidRequest('"files" must name at least one uploaded blob', param="files")
    services = services_of(request)
    sources = []
    for filename, digest in body.files.items():
        name = check_filename(filename)
        blob = names.normalize_digest(digest)
        if not services.store.blobs.exists(blob):
            raise BlobNotFound(f"blob {blob} ({name}) not found; upload it first with POST /api/blobs/{blob}")
        sources.append(Source(services.store.blobs.path(blob), name, detect_format(name, body.format), name))

    def run() -> Progress:
        plan = services.datasets.plan_sources(sources, body.name, license=body.license, datasheet=body.datasheet)
        return list(services.datasets.commit(plan))[-1]

    done = await _run(run)
    return JSONResponse({"digest": done.digest, **done.detail}, status_code=201)


@router.get("/zoo/datasets/{name:path}/card")
async def datasheet(request: Request, name: str) -> dict[str, Any]:
    """The datasheet as Hugging Face dataset-card markdown (and sanitized HTML) with its problems."""

    services = services_of(request)

    def read() -> dict[str, Any]:
        found = services.datasets.get(name)
        card = services.datasets.datasheet(name)
        cert = services.certification
        return {"name": found.display, "metadata": card.metadata, "markdown": card.render(), "html": card.html(),
                "digest": card.digest(), "problems": cert.card_problems(found.display, card)}

    return await _run(read)


@router.get("/zoo/datasets/{name:path}")
async def show_dataset(request: Request, name: str) -> dict[str, Any]:
    found = await _run(services_of(request).datasets.get, name)
    return found.to_json()


@router.delete("/zoo/datasets/{name:path}")
async def delete_dataset(request: Request, name: str) -> dict[str, Any]:
    services = services_of(request)
    display = (await _run(services.datasets.get, name)).display
    await _run(services.datasets.delete, name)
    return {"deleted": display}
