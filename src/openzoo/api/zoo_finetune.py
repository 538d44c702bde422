"""``/zoo/finetunes``: start LoRA fine-tuning jobs and follow them (the web catalog shows these runs).

``POST /zoo/finetunes`` takes ``{"base", "name", "data", ...}`` where ``data`` (and ``eval``) is the name
of a stored dataset, the digest of a JSONL blob uploaded with ``POST /api/blobs/<digest>`` or an inline
list of records (a blob or records are stored as a dataset when the run succeeds), and
answers ``201 {"id", "status"}`` once every check that needs no training has passed (a bad data line,
an unknown base or a rank of 0 is a 400/404 here, with nothing started). ``GET /zoo/finetunes/{id}``
answers the job's state as JSON, or with ``Accept: application/x-ndjson`` (or ``?stream=true``) every
progress event so far and then new ones until the job ends.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from openzoo import names
from openzoo.api.bodies import JsonBodyRoute
from openzoo.api.deps import services_of
from openzoo.api.streaming import ClosingStreamingResponse, iterate_in_thread, ndjson_line
from openzoo.errors import BlobNotFound, InvalidRequest
from openzoo.finetune.jobs import Jobs

router = APIRouter(route_class=JsonBodyRoute)


class FinetuneBody(BaseModel):
    base: str
    name: str
    data: str | list[dict[str, Any]]
    eval: str | list[dict[str, Any]] | None = None
    epochs: int = 1
    lr: float = 2e-4
    rank: int = 16
    alpha: float = 32.0
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    dropout: float = 0.05
    batch_size: int = 4
    max_length: int = 256
    max_steps: int | None = None
    seed: int = 0
    data_license: str | None = None


def _jobs(request: Request) -> Jobs:
    return services_of(request).finetune_jobs


def _data_file(request: Request, value: str | list[dict[str, Any]], folder: Path, label: str) -> Path | str:
    path = folder / f"{label}.jsonl"
    if isinstance(value, list):
        path.write_text("".join(json.dumps(record) + "\n" for record in value))
        return path
    if not names.is_digest(value):
        return value  # a stored dataset's name
    digest = names.normalize_digest(value)
    blobs = services_of(request).store.blobs
    if not blobs.exists(digest):
        raise BlobNotFound(f"{label} blob {digest} not found; upload it first with POST /api/blobs/{digest}")
    path.write_bytes(blobs.read(digest))
    return path


@router.post("/zoo/finetunes", status_code=201)
async def start(request: Request, body: FinetuneBody) -> JSONResponse:
    from openzoo.finetune.lora import LoraSettings
    from openzoo.finetune.run import FinetuneRequest, finetune, prepare

    services = services_of(request)
    settings = LoraSettings(rank=body.rank, alpha=body.alpha, targets=tuple(body.targets), dropout=body.dropout,
                            lr=body.lr, epochs=body.epochs, max_steps=body.max_steps, batch_size=body.batch_size,
                            max_length=body.max_length, seed=body.seed)
    folder = Path(tempfile.mkdtemp(prefix="openzoo-ftjob-"))
    data = _data_file(request, body.data, folder, "data")
    eval_path = _data_file(request, body.eval, folder, "eval") if body.eval is not None else None
    req = FinetuneRequest(base=body.base, data=data, name=body.name, settings=settings, eval_data=eval_path,
                          data_license=body.data_license)
    prepare(services, req)  # every check that needs no training, answered with a real status
    if names.parse(body.name).key == names.parse(body.base).key:
        raise InvalidRequest("the fine-tuned model needs a new name")
    job = _jobs(request).start(names.parse(body.name).display, names.parse(body.base).display,
                               body.model_dump(exclude={"data", "eval"}),
                               lambda should_stop: finetune(services, req, should_stop))
    return JSONResponse({"id": job.id, "status": job.status, "name": job.name}, status_code=201)


@router.get("/zoo/finetunes")
async def list_jobs(request: Request) -> JSONResponse:
    return JSONResponse({"finetunes": _jobs(request).list()})


@router.get("/zoo/finetunes/{job_id}")
async def status(request: Request, job_id: str, stream: bool = False) -> Response:
    jobs = _jobs(request)
    job = jobs.get(job_id)
    if stream or "application/x-ndjson" in request.headers.get("accept", ""):
        lines = (ndjson_line(event) async for event in iterate_in_thread(jobs.follow(job.id)))
        return ClosingStreamingResponse(lines, media_type="application/x-ndjson")
    return JSONResponse(job.to_json())


@router.delete("/zoo/finetunes/{job_id}")
async def cancel(request: Request, job_id: str) -> JSONResponse:
    job = _jobs(request).get(job_id)
    job.cancel.set()
    return JSONResponse({"id": job.id, "status": "cancelling" if not job.done else job.status})
