"""``create_app(services)``: the ASGI app of ``openzoo serve``, with every router and middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openzoo import __version__
from openzoo.api import errors
from openzoo.api.security import SecurityMiddleware
from openzoo.services import Services
from openzoo.web.routes import web_router


def create_app(services: Services, *, close_on_shutdown: bool = True) -> FastAPI:
    """Build the app around already-constructed services (tests pass their own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from openzoo.api.zoo_gossip import start_monitor

        monitor = start_monitor(services)  # OPENZOO_MONITOR_PEERS: other zoos' logs, checked periodically
        app.state.monitor = monitor
        from openzoo.api.zoo_log import start_cosigner

        cosigner = start_cosigner(services)  # witnesses asked to cosign each new checkpoint (C2SP)
        try:
            yield
        finally:
            if cosigner is not None:
                await asyncio.to_thread(cosigner.close)
            if monitor is not None:
                await asyncio.to_thread(monitor.close)  # its current write ends before the catalog closes
            if close_on_shutdown:
                services.close()

    app = FastAPI(title="openzoo", version=__version__, lifespan=lifespan,
                  description="Ollama-compatible, OpenAI-compatible and openzoo's own API.")
    app.state.services = services
    errors.install(app)
    from openzoo.api import ollama, openai, ops

    app.include_router(ollama.router)
    app.include_router(openai.router)
    app.include_router(ops.router)
    from openzoo.api import registry, zoo_audit, zoo_certify, zoo_datasets, zoo_gossip

    app.include_router(zoo_certify.router)
    app.include_router(zoo_gossip.router)
    app.include_router(zoo_datasets.router)
    app.include_router(zoo_audit.router)
    app.include_router(registry.router)
    from openzoo.api import zoo_finetune

    app.include_router(zoo_finetune.router)
    from openzoo.api import zoo_log

    app.include_router(zoo_log.router)
    from openzoo.api import anthropic, responses

    app.include_router(responses.router)
    app.include_router(anthropic.router)
    app.include_router(web_router)
    app.add_middleware(SecurityMiddleware, config=services.config)
    return app
