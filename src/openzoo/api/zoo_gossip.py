"""``/zoo/gossip/*``: what this zoo saw of other zoos' logs, for other monitors to compare with what they
saw, and the periodic monitor of ``openzoo serve`` (``OPENZOO_MONITOR_PEERS``). Thin over
:mod:`openzoo.certify.gossip_store` and :mod:`openzoo.registry.monitor`.

Everything served here is signed by the log it is about (heads, evidence) or checked against such a
signature by whoever reads it (leaves hash to a signed root), so serving it needs no trust in this zoo.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request

from openzoo.api.deps import run_blocking as _run
from openzoo.api.deps import services_of
from openzoo.api.periodic import PeriodicTask
from openzoo.certify.gossip_store import GossipStore
from openzoo.facts.canonical import b64encode
from openzoo.registry.client import LEAVES_PER_PAGE
from openzoo.services import Services

router = APIRouter()
log = logging.getLogger("openzoo.monitor")

MAX_HEADS = 256  # consistent heads per log in one answer (plus its forked heads, up to as many)


def _store(request: Request) -> GossipStore:
    return services_of(request).certification.gossip


@router.get("/zoo/gossip/heads")
async def heads(request: Request, origin: str | None = None, limit: int = 32) -> dict[str, Any]:
    """The largest ``limit`` consistent heads of each log this zoo watches, and every forked one it saw."""
    def read(store: GossipStore) -> dict[str, Any]:
        per_log = max(1, min(limit, MAX_HEADS))
        origins = [origin] if origin is not None else [v.origin for v in store.logs()]
        found = []
        for name in origins:
            found += store.heads(name, "consistent", per_log) + store.heads(name, "forked", MAX_HEADS)
        return {"heads": [{"origin": h.origin, "size": h.size, "root": b64encode(h.root), "status": h.status,
                           "first_seen": h.first_seen, "note": h.note} for h in found]}

    return await _run(read, _store(request))


@router.get("/zoo/gossip/leaves")
async def leaves(request: Request, origin: str, start: int = 0, count: int = LEAVES_PER_PAGE) -> dict[str, Any]:
    """This zoo's copy of the leaf hashes of the log ``origin`` (what its consistent heads are roots of)."""
    def read(store: GossipStore) -> dict[str, Any]:
        first = max(0, start)
        found = store.leaves(origin, first, max(0, min(count, LEAVES_PER_PAGE)))
        return {"start": first, "leaves": [b64encode(leaf) for leaf in found]}

    return await _run(read, _store(request))


@router.get("/zoo/gossip/forks")
async def forks(request: Request, origin: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Fork evidence on record; each item's ``evidence`` is what ``openzoo monitor verify-evidence`` checks."""
    def read(store: GossipStore) -> dict[str, Any]:
        return {"forks": [f.to_json() for f in store.forks(origin, max(1, min(limit, 1000)))]}

    return await _run(read, _store(request))


class PeriodicMonitor(PeriodicTask):
    """Checks ``OPENZOO_MONITOR_PEERS`` every ``OPENZOO_MONITOR_INTERVAL`` and logs what it found."""

    name = "openzoo-monitor"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.rounds = 0

    def interval(self) -> float:
        return self.services.config.monitor_interval

    def run_once(self) -> None:
        self.check_once()

    def check_once(self) -> None:
        from openzoo.registry.monitor import Monitor

        cert = self.services.certification
        for url in self.services.config.monitor_peers:
            if self.stop.is_set():
                return
            report = Monitor(cert, stop=self.stop, api_key=self.services.config.remote_api_key or None).check_zoo(url)
            for found in report.observations:
                name = report.names.get(found.origin or "", found.origin)
                if found.status == "fork":
                    log.warning("FORK in the log %s (%s), from %s: %s%s", found.origin, name, found.source,
                                found.detail, f"; evidence {found.evidence.id}" if found.evidence else "")
                elif found.status in ("unreachable", "rejected", "unverified"):
                    log.warning("monitor %s: %s: %s", url, found.status, found.detail)
                else:
                    log.debug("monitor %s: %s %s: %s", url, found.status, name, found.detail)
        self.rounds += 1


def start_monitor(services: Services) -> PeriodicMonitor | None:
    """Start the periodic monitor when peers are configured and the interval is not 0."""
    config = services.config
    if not config.monitor_peers or config.monitor_interval <= 0:
        return None
    log.info("monitoring %s every %gs", ", ".join(config.monitor_peers), config.monitor_interval)
    return PeriodicMonitor(services).start()
