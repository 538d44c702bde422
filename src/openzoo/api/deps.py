"""Request-scoped access to the process's services (kept on ``app.state``, never in globals)."""

from __future__ import annotations

from fastapi import Request

from openzoo.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
