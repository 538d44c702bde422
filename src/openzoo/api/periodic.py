"""A daemon thread that runs one piece of blocking work every few seconds for the life of ``openzoo serve``.

A thread rather than an asyncio task: the work (HTTP to other zoos, SQLite, hashing) blocks, and must
finish its current write before the server closes the catalog, which :meth:`PeriodicTask.close` waits for.
Used by the periodic monitor (:mod:`.zoo_gossip`) and the witness cosigner (:mod:`.zoo_log`).
"""

from __future__ import annotations

import logging
import threading
from typing import Self

from openzoo.services import Services

log = logging.getLogger("openzoo.serve")


class PeriodicTask:
    """Runs :meth:`run_once` now and then every :meth:`interval` seconds until :meth:`close`."""

    name = "openzoo-task"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)

    def interval(self) -> float:
        raise NotImplementedError

    def run_once(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self.thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bug must not end the task for the life of the server
                log.exception("%s failed", self.name)
            self.stop.wait(self.interval())
