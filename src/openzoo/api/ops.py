"""Operations routes: liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from openzoo.api.deps import services_of

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    services = services_of(request)
    scheduler = services.scheduler if "scheduler" in services.__dict__ else None  # never load the engine here
    return PlainTextResponse(services.metrics.render(scheduler), media_type="text/plain; version=0.0.4")
