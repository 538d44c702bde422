"""Audit jobs over HTTP: ``POST /zoo/audits``, ``GET /zoo/audits/{id}``, ``GET /zoo/models/{name}/audits``.

An audit takes minutes, so ``POST`` validates the request (model, suites, data) and answers at once with
a job id; the audit runs in a background thread, one job at a time (they share the machine's cores
with the server's own requests). ``GET /zoo/audits/{id}`` answers the job's status as JSON, or with
``?stream=true`` streams its progress as NDJSON (past events first, then live ones) and ends with the
final status line. Jobs live in memory (they are restarted by asking again); finished reports live in
the store as AUDIT layers of the model and are listed by ``GET /zoo/models/{name}/audits``.

``data`` in the body is the *content* of a data file (``{"name": "pairs.jsonl", "content": "..."}``),
never a path on the server: a client must not be able to make the server read its files.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from openzoo.api.deps import services_of
from openzoo.api.ollama import NDJSON, _run, read_body
from openzoo.api.streaming import ClosingStreamingResponse, ndjson_line
from openzoo.errors import InvalidRequest, NotFound, OpenzooError
from openzoo.events import Progress
from openzoo.services import Services

router = APIRouter()

#: Finished jobs kept in memory for status queries.
MAX_FINISHED_JOBS = 100


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


@dataclass
class AuditJob:
    id: str
    model: str
    suites: list[str]
    seed: int
    judge: str | None = None
    created_at: float = field(default_factory=time.time)
    status: str = "queued"  # queued | running | succeeded | failed
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    report_digest: str | None = None
    manifest_digest: str | None = None
    finished_at: float | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "model": self.model, "suites": self.suites, "seed": self.seed,
                               "status": self.status, "created_at": _iso(self.created_at)}
        if self.events:
            out["progress"] = self.events[-1]
        if self.report_digest:
            out["report_digest"] = self.report_digest
            out["manifest_digest"] = self.manifest_digest
        if self.error:
            out["error"] = self.error
        if self.finished_at is not None:
            out["finished_at"] = _iso(self.finished_at)
        return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class AuditJobs:
    """The jobs of one server process; a single worker lock runs them one after another."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.jobs: dict[str, AuditJob] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()

    def start(self, model: str, suites: list[str], seed: int, data: DataBody | None,
              judge: str | None = None) -> AuditJob:
        job = AuditJob(id=f"audit-{uuid.uuid4().hex[:12]}", model=model, suites=suites, seed=seed, judge=judge)
        with self._lock:
            self.jobs[job.id] = job
            finished = [j for j in self.jobs.values() if j.finished]
            for old in finished[: max(0, len(finished) - MAX_FINISHED_JOBS)]:
                del self.jobs[old.id]
        threading.Thread(target=self._work, args=(job, data), name=f"openzoo-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> AuditJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"audit job {job_id} not found", hint="start one with POST /zoo/audits")
        return job

    def _update(self, job: AuditJob, **changes: Any) -> None:
        with job.changed:
            for key, value in changes.items():
                setattr(job, key, value)
            job.changed.notify_all()

    def _progress(self, job: AuditJob, event: Progress) -> None:
        line: dict[str, Any] = {"status": event.status}
        if event.total is not None:
            line["total"] = event.total
            line["completed"] = event.completed or 0
        if event.detail:
            line.update({k: v for k, v in event.detail.items() if isinstance(v, str | int | float)})
        with job.changed:
            job.events.append(line)
            job.changed.notify_all()

    def _work(self, job: AuditJob, data: DataBody | None) -> None:
        from openzoo.audit.engine_scorer import describe_failure
        from openzoo.audit.service import audit_model

        with self._run_lock, tempfile.TemporaryDirectory(prefix="openzoo-audit-") as tmp:
            self._update(job, status="running")
            try:
                path: Path | None = None
                if data is not None:
                    path = Path(tmp) / Path(data.name).name
                    path.write_text(data.content, encoding="utf-8")
                outcome = audit_model(self.services, job.model, job.suites, path, job.seed,
                                      lambda e: self._progress(job, e), judge=job.judge)
            except BaseException as exc:  # a failed job reports why; nothing was stored
                code = exc.code if isinstance(exc, OpenzooError) else "internal"
                self._update(job, status="failed", error={"code": code, "message": describe_failure(exc)},
                             finished_at=time.time())
                return
            self._update(job, status="succeeded", report_digest=outcome.digest,
                         manifest_digest=outcome.manifest_digest, finished_at=time.time())


def _wait(job: AuditJob, sent: int) -> tuple[list[dict[str, Any]], bool]:
    """Block (up to a second) until the job has events after the first ``sent``, or has finished."""
    with job.changed:
        if len(job.events) == sent and not job.finished:
            job.changed.wait(timeout=1.0)
        return list(job.events[sent:]), job.finished


def jobs_of(request: Request) -> AuditJobs:
    """The app's job registry, created on first use and kept on ``app.state``."""
    state = request.app.state
    jobs: AuditJobs | None = getattr(state, "audit_jobs", None)
    if jobs is None:
        jobs = AuditJobs(services_of(request))
        state.audit_jobs = jobs
    return jobs


@router.post("/zoo/audits", status_code=202)
async def start_audit(request: Request) -> JSONResponse:
    """Validate and start an audit job; ``202`` with the job's status (``status: "queued"``)."""
    from openzoo.audit.runner import parse_suites

    body = await read_body(request, AuditBody)
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
    job = jobs_of(request).start(body.model, suites, body.seed, body.data, body.judge)
    return JSONResponse(job.to_json(), status_code=202)


@router.get("/zoo/audits/{job_id}", response_model=None)
async def audit_status(request: Request, job_id: str, stream: bool = False) -> Response | dict[str, Any]:
    """The job's status; with ``?stream=true`` its progress as NDJSON, ending with the final status."""
    job = jobs_of(request).get(job_id)
    if not stream:
        return job.to_json()

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while True:
            fresh, finished = await asyncio.to_thread(_wait, job, sent)
            for line in fresh:
                yield ndjson_line(line)
            sent += len(fresh)
            if finished and sent == len(job.events):
                yield ndjson_line(job.to_json())
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
