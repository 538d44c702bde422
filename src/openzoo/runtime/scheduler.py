"""Which models are in memory, for how long, and who is using them.

The scheduler loads a model on first use, shares it between every request for it (the engine batches
them), keeps it for ``keep_alive`` after the last request, unloads the least recently used idle model
when ``max_loaded`` is reached, and unloads everything on shutdown. Loading is serialized per model so
that two requests arriving together load it once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openzoo.errors import OpenzooError, ServerBusy
from openzoo.runtime.base import Backend, EngineStats, LoadedModel, LoadOptions

log = logging.getLogger("openzoo.scheduler")

LOAD_WAIT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What to load: the weights, adapters and context, keyed by manifest digest and context."""

    manifest_digest: str
    name: str
    weights: Path
    n_ctx: int
    adapters: tuple[tuple[Path, float], ...] = ()
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    size: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.manifest_digest, self.n_ctx)


@dataclass(slots=True)
class _Resident:
    spec: LoadSpec
    model: LoadedModel
    users: int = 0
    expires_at: float | None = None  # monotonic seconds; None = never
    expires_wall: float | None = None
    last_used: float = 0.0


@dataclass(frozen=True, slots=True)
class LoadedInfo:
    """A resident model, as ``/api/ps`` shows it.

    ``replicas`` names the Ray Serve replicas holding it when ``openzoo serve --replicas`` merged their
    entries into this one (memory and counters summed); empty for this process's own scheduler.
    """

    spec: LoadSpec
    memory_bytes: int
    expires_at: float | None  # wall-clock seconds; None = never
    users: int
    stats: EngineStats
    replicas: tuple[str, ...] = ()


class Scheduler:
    """Owns every loaded model of one process."""

    def __init__(self, backend: Backend, *, max_loaded: int = 3, num_parallel: int = 0,
                 max_queue: int = 512, num_threads: int = 0, keep_alive: float | None = 300.0,
                 guess_tokens: bool = True, batch_invariant: bool = True, prompt_cache_bytes: int = -1) -> None:
        self.backend = backend
        self.guess_tokens = guess_tokens
        self.batch_invariant = batch_invariant
        self.prompt_cache_bytes = prompt_cache_bytes
        self.max_loaded = max(1, max_loaded)
        self.num_parallel = num_parallel
        self.max_queue = max_queue
        self.num_threads = num_threads
        self.default_keep_alive = keep_alive
        self._resident: dict[tuple[str, int], _Resident] = {}
        self._cond = threading.Condition()
        self._loading: set[tuple[str, int]] = set()
        self._closed = False
        self._reaper = threading.Thread(target=self._reap, name="openzoo-keepalive", daemon=True)
        self._reaper.start()

    @contextmanager
    def use(self, spec: LoadSpec, keep_alive: float | str | None = "default") -> Iterator[tuple[LoadedModel, int]]:
        """Hold a loaded model for one request; yield it and the load time in nanoseconds.

        ``keep_alive``: seconds to stay loaded after this request, ``None`` for ever, ``0`` to unload
        as soon as no request uses it, or ``"default"`` for the server's setting.
        """
        resident, load_ns = self._acquire(spec)
        try:
            yield resident.model, load_ns
        finally:
            self._release(resident, self.default_keep_alive if keep_alive == "default" else keep_alive)

    def _acquire(self, spec: LoadSpec) -> tuple[_Resident, int]:
        key = spec.key
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        with self._cond:
            while True:
                if self._closed:
                    raise ServerBusy("the server is shutting down")
                resident = self._resident.get(key)
                if resident is not None:
                    resident.users += 1
                    resident.last_used = time.monotonic()
                    return resident, 0
                if key not in self._loading and self._make_room():
                    self._loading.add(key)
                    break
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise ServerBusy("timed out waiting for a model to unload; raise OPENZOO_MAX_LOADED_MODELS")
        start = time.perf_counter_ns()
        try:
            model = self.backend.load(spec.weights, LoadOptions(
                n_ctx=spec.n_ctx, n_parallel=self.num_parallel, n_threads=self.num_threads,
                max_queue=self.max_queue, adapters=spec.adapters, guess_tokens=self.guess_tokens,
                batch_invariant=self.batch_invariant,
                prompt_cache_bytes=self.prompt_cache_bytes))
        except BaseException:
            with self._cond:
                self._loading.discard(key)
                self._cond.notify_all()
            raise
        load_ns = time.perf_counter_ns() - start
        log.info("loaded %s (n_ctx %d) in %.2f s", spec.name, spec.n_ctx, load_ns / 1e9)
        with self._cond:
            self._loading.discard(key)
            resident = _Resident(spec, model, users=1, last_used=time.monotonic())
            self._resident[key] = resident
            self._cond.notify_all()
        return resident, load_ns

    def _make_room(self) -> bool:
        """With the lock held: unload idle models until one more fits; False when all are busy."""
        while len(self._resident) + len(self._loading) >= self.max_loaded:
            idle = [r for r in self._resident.values() if r.users == 0]
            if not idle:
                return False
            victim = min(idle, key=lambda r: r.last_used)
            self._unload_locked(victim)
        return True

    def _release(self, resident: _Resident, keep_alive: float | str | None) -> None:
        with self._cond:
            resident.users -= 1
            resident.last_used = time.monotonic()
            if resident.users == 0:
                if keep_alive is None:
                    resident.expires_at = resident.expires_wall = None
                else:
                    seconds = float(keep_alive)
                    resident.expires_at = time.monotonic() + seconds
                    resident.expires_wall = time.time() + seconds
                    if seconds <= 0:
                        self._unload_locked(resident)
            self._cond.notify_all()

    def touch(self, spec: LoadSpec, keep_alive: float | str | None = "default") -> int:
        """Load a model (or refresh its expiry) without running anything; return load nanoseconds."""
        with self.use(spec, keep_alive) as (_, load_ns):
            return load_ns

    def unload(self, manifest_digest: str) -> bool:
        """Unload every instance of a model that no request is using; True if any was resident."""
        with self._cond:
            found = [r for r in self._resident.values() if r.spec.manifest_digest == manifest_digest]
            for resident in found:
                if resident.users == 0:
                    self._unload_locked(resident)
                else:
                    resident.expires_at = resident.expires_wall = 0.0
            self._cond.notify_all()
            return bool(found)

    def _unload_locked(self, resident: _Resident) -> None:
        if self._resident.get(resident.spec.key) is resident:
            del self._resident[resident.spec.key]
        try:
            resident.model.close()
        except OpenzooError as exc:  # closing must never take the server down
            log.warning("unloading %s failed: %s", resident.spec.name, exc)
        log.info("unloaded %s", resident.spec.name)

    def loaded(self) -> list[LoadedInfo]:
        with self._cond:
            infos = [LoadedInfo(r.spec, r.model.memory_bytes, r.expires_wall if r.users == 0 else None, r.users,
                                r.model.stats()) for r in self._resident.values()]
        far = float("inf")
        return sorted(infos, key=lambda i: far if i.expires_at is None else i.expires_at, reverse=True)

    def _reap(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                for resident in list(self._resident.values()):
                    if resident.users == 0 and resident.expires_at is not None and resident.expires_at <= now:
                        self._unload_locked(resident)
                self._cond.notify_all()
                pending = [r.expires_at for r in self._resident.values()
                           if r.users == 0 and r.expires_at is not None]
                self._cond.wait(timeout=min([max(0.05, t - now) for t in pending] + [5.0]))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for resident in list(self._resident.values()):
                self._unload_locked(resident)
            self._cond.notify_all()
        self._reaper.join(timeout=5)
