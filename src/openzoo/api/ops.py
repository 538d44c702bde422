"""Operations routes: liveness, Prometheus metrics and the engines (replicas) serving requests."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from openzoo.api.deps import services_of
from openzoo.metrics import ReplicaInfo
from openzoo.runtime.scheduler import LoadedInfo

router = APIRouter()


async def _engines(request: Request) -> tuple[list[LoadedInfo], list[ReplicaInfo]] | None:
    """Loaded models and replicas, or None before anything started the engine (never start it here)."""
    inference = services_of(request).started_inference()
    if inference is None:
        return None

    def read() -> tuple[list[LoadedInfo], list[ReplicaInfo]]:
        return inference.loaded(), inference.replicas()

    return await run_in_threadpool(read)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    loaded, replicas = await _engines(request) or ([], [])
    return PlainTextResponse(services_of(request).metrics.render(loaded, replicas),
                             media_type="text/plain; version=0.0.4")


@router.get("/zoo/replicas")
async def replicas(request: Request) -> dict[str, Any]:
    """Which engines serve requests, with per-replica counters (``openzoo ps`` and the scale-out tests)."""
    engines = await _engines(request)
    found = engines[1] if engines else []
    mode = "replicas" if any(r.id != "local" for r in found) else "local"
    return {"mode": mode, "replicas": [{
        "id": r.id, "pid": r.pid, "node": r.node, "requests": r.requests, "in_flight": r.in_flight,
        "models": [info.spec.name for info in r.models], "age_seconds": round(r.age_s, 3),
    } for r in found]}
