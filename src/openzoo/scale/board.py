"""The board: where replicas report their state and pick up broadcasts.

Serve routes each handle call to one replica of its choosing, so the front cannot ask "every
replica" anything through the deployment handle. Instead every replica reports to this board (a
small Ray actor, no CPU) twice a second and whenever a request starts or ends; the answer carries
the broadcasts (load, unload, cold cache) posted since its last report, and the next report carries
their outcomes. The front reads replica state (``/api/ps``, ``/zoo/replicas``, ``/metrics``) and
waits for broadcast outcomes here. A replica that stops reporting (killed, crashed) counts as gone
after :data:`STALE_SECONDS`, so nobody waits for it.

The class is plain Python (``cluster.py`` wraps it with ``ray.remote``), so it is tested without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from openzoo.metrics import ReplicaInfo
from openzoo.scale.messages import Command, CommandName, Outcome

STALE_SECONDS = 5.0
COMMAND_TTL_SECONDS = 900.0


@dataclass(slots=True)
class _Replica:
    info: ReplicaInfo
    seen: float
    cursor: int  # the last command id this replica has been handed (or skipped, registering later)


@dataclass(slots=True)
class _Posted:
    command: Command
    expected: frozenset[str]
    posted: float
    outcomes: dict[str, Outcome] = field(default_factory=dict)


class Board:
    """Replica reports in, broadcasts out; state lives only as long as the front that created it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._replicas: dict[str, _Replica] = {}
        self._posted: dict[int, _Posted] = {}
        self._last_id = 0

    def report(self, info: ReplicaInfo, outcomes: dict[int, Outcome]) -> list[Command]:
        """Record a replica's state and outcomes; return the broadcasts it has not seen yet.

        A replica's first report registers it after every command posted so far: those were meant
        for the replicas that were live then.
        """
        now = self._clock()
        entry = self._replicas.get(info.id)
        if entry is None:
            entry = self._replicas[info.id] = _Replica(info, now, self._last_id)
        entry.info, entry.seen = info, now
        for command_id, outcome in outcomes.items():
            posted = self._posted.get(command_id)
            if posted is not None:
                posted.outcomes[info.id] = outcome
        new = [p.command for cid, p in sorted(self._posted.items())
               if cid > entry.cursor and info.id in p.expected]
        entry.cursor = self._last_id
        self._prune(now)
        return new

    def forget(self, replica_id: str) -> None:
        """A replica shutting down cleanly leaves at once instead of going stale."""
        self._replicas.pop(replica_id, None)

    def post(self, name: CommandName, args: tuple[Any, ...]) -> int:
        """Post a broadcast for the replicas live now; return its id."""
        now = self._clock()
        self._last_id += 1
        live = frozenset(r for r, entry in self._replicas.items() if now - entry.seen < STALE_SECONDS)
        self._posted[self._last_id] = _Posted(Command(self._last_id, name, args), live, now)
        return self._last_id

    def outcomes(self, command_id: int) -> tuple[dict[str, Outcome], list[str]]:
        """Outcomes of a broadcast so far, and the live replicas that still owe one."""
        posted = self._posted.get(command_id)
        if posted is None:
            return {}, []
        now = self._clock()
        pending = sorted(r for r in posted.expected if r not in posted.outcomes and r in self._replicas
                         and now - self._replicas[r].seen < STALE_SECONDS)
        return dict(posted.outcomes), pending

    def replicas(self) -> list[ReplicaInfo]:
        """Live replicas (sorted by id), each with how long ago it last reported."""
        now = self._clock()
        return [replace(entry.info, age_s=now - entry.seen) for _, entry in sorted(self._replicas.items())
                if now - entry.seen < STALE_SECONDS]

    def _prune(self, now: float) -> None:
        for cid in [cid for cid, p in self._posted.items() if now - p.posted > COMMAND_TTL_SECONDS]:
            del self._posted[cid]
        for rid in [rid for rid, e in self._replicas.items() if now - e.seen > 10 * STALE_SECONDS]:
            del self._replicas[rid]
