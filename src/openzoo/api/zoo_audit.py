"""Audit jobs over HTTP: ``POST /zoo/audits``, ``GET /zoo/audits[/{id}]``, ``GET /zoo/models/{name}/audits``.

An audit takes minutes, so ``POST`` validates the request (model, suites, data) and answers at once with
a job id; the job runs in the background (:mod:`openzoo.audit.jobs`: one at a time per server, recorded
in the catalog, so it survives a restart and every server sharing the catalog lists it).
``GET /zoo/audits/{id}`` answers the job's status as JSON, or with ``?stream=true`` streams its progress
as NDJSON (past events first, then live ones) and ends with the final status line; ``GET /zoo/audits``
lists jobs, newest first. Finished reports live in the store as AUDIT layers of the model and are listed
by ``GET /zoo/models/{name}/audits``.

``data`` in the body is the *content* of a data file (``{"name": "pairs.jsonl", "content": "..."}``),
never a path on the server: a client must not be able to make the server read its files.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from openzoo.api.bodies import JsonBodyRoute
from openzoo.api.deps import NDJSON, services_of
from openzoo.api.deps import run_blocking as _run
from openzoo.api.streaming import ClosingStreamingResponse, ndjson_line
from openzoo.audit.jobs import AuditJobs
from openzoo.errors import InvalidRequest

router = APIRouter(route_class=JsonBodyRoute)


class DataBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="File name; its extension (.jsonl or .txt) decides how it is read")
    content: str


class AuditBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field("", description="Model name, e.g. gemma3:270m")
    suite: str | list[str] | None = Field(None, description="Suites, comma-separated or a list; default all")
    suites: str | list[str] | None = None
    data: DataBody | None = None
    seed: int = 0
    judge: str | None = Field(None, description="A model of the store that judges safety replies")


def jobs_of(request: Request) -> AuditJobs:
    """The process's audit jobs (opened on first use, off the event loop: it reads the catalog)."""
    return services_of(request).audit_jobs


@router.post("/zoo/audits", status_code=202)
async def start_audit(request: Request, body: AuditBody) -> JSONResponse:
    """Validate and start an audit job; ``202`` with the job's status (``status: "queued"``)."""
    from openzoo.audit.runner import parse_suites

    if not body.model:
        raise InvalidRequest("model is required", param="model")
    services = services_of(request)
    await _run(services.models.resolve, body.model)  # 404 now, not in the job
    suites = parse_suites(body.suites if body.suites is not None else body.suite)
    if body.data is not None:
        if len(suites) != 1:
            raise InvalidRequest("data goes with exactly one suite; name it in suite", param="data")
        if not body.data.name.endswith((".jsonl", ".txt")):
            raise InvalidRequest("data.name must end in .jsonl or .txt", param="data")
    if body.judge is not None:
        if "safety" not in suites:
            raise InvalidRequest("a judge only applies to the safety suite", param="judge")
        await _run(services.models.resolve, body.judge)
    data = (body.data.name, body.data.content) if body.data is not None else None
    jobs = await _run(jobs_of, request)
    job = await _run(jobs.start, body.model, suites, body.seed, data, body.judge)
    return JSONResponse(job.to_json(), status_code=202)


@router.get("/zoo/audits")
async def audit_jobs(request: Request, model: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Audit jobs, newest first (of one model with ``?model=``), each with its latest progress."""
    jobs = await _run(jobs_of, request)
    listed = await _run(jobs.recent, model, max(1, min(limit, 1000)))
    return {"audits": [job.to_json() for job in listed]}


@router.get("/zoo/audits/{job_id}", response_model=None)
async def audit_status(request: Request, job_id: str, stream: bool = False) -> Response | dict[str, Any]:
    """The job's status; with ``?stream=true`` its progress as NDJSON, ending with the final status."""
    jobs = await _run(jobs_of, request)
    job = await _run(jobs.get, job_id)
    if not stream:
        return job.to_json()

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while True:
            fresh, now = await asyncio.to_thread(jobs.follow, job_id, sent)
            for line in fresh:
                yield ndjson_line(line)
            sent += len(fresh)
            if now.finished and sent >= len(now.events):
                yield ndjson_line(now.to_json())
                return

    return ClosingStreamingResponse(body(), media_type=NDJSON)


@router.get("/zoo/models/{name:path}/audits/{digest}")
async def stored_audit(request: Request, name: str, digest: str) -> dict[str, Any]:
    """One stored report (``report.json``) of a model, by digest."""
    from openzoo.audit.service import read_audit

    return await _run(read_audit, services_of(request), name, digest)


@router.get("/zoo/models/{name:path}/audits")
async def model_audits(request: Request, name: str) -> dict[str, Any]:
    """The audit reports stored on the model: digest, suites, seed, creation time."""
    from openzoo.audit.service import list_audits

    services = services_of(request)
    return {"model": name, "audits": await _run(list_audits, services, name)}
