"""One Ray Serve replica: openzoo's own ``Services`` and engine, serving the front over Serve handles.

Each replica opens the same ``OPENZOO_HOME`` (read-only use: no store recovery), loads the store's
GGUF through its own scheduler and answers three kinds of calls from ``remote.py``:

- ``generate(kind, request)``: an async generator that yields :class:`Started` (or the
  :class:`Outcome` of a request refused before it started) and then the domain events of the
  generation. The blocking engine iterator is pumped in a worker thread, so one replica serves many
  streams at once; a cancelled request (the client went away) closes the generation, which frees
  its engine slot at the next decode step.
- ``call(name, args, kwargs)``: embeddings and tokenizer calls, answered with an :class:`Outcome`.
- broadcasts from the board (load, unload, cold cache), run on a command thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Literal

import ray
from ray import serve

from openzoo.api.streaming import iterate_in_thread
from openzoo.config import Config
from openzoo.errors import InvalidRequest
from openzoo.events import Event
from openzoo.inference import ChatRequest, CompletionRequest, Generation
from openzoo.metrics import ReplicaInfo
from openzoo.scale.messages import CALLS, Command, Outcome, Started, capture
from openzoo.services import Services

log = logging.getLogger("openzoo.replica")

HEARTBEAT_SECONDS = 0.5
BOARD_TIMEOUT_SECONDS = 30.0


def replica_id() -> str:
    """Serve's id of the replica running this code (unique across restarts)."""
    context = serve.get_replica_context()
    ident = getattr(context, "replica_id", None)
    return str(getattr(ident, "unique_id", None) or getattr(context, "replica_tag", None) or f"pid-{os.getpid()}")


class EngineReplica:
    """The deployment class; ``cluster.py`` wraps it with ``serve.deployment``."""

    def __init__(self, config: Config, board_name: str, namespace: str) -> None:
        self.id = replica_id()
        self.services = Services(config, recover_store=False)
        self.inference = self.services.local_inference
        self._board = ray.get_actor(board_name, namespace=namespace)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._outcomes: dict[int, Outcome] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._commands = ThreadPoolExecutor(1, thread_name_prefix="openzoo-command")
        self._exchange()  # registered before the first request can arrive
        self._heart = threading.Thread(target=self._heartbeat, name="openzoo-heartbeat", daemon=True)
        self._heart.start()
        log.info("replica %s (pid %d) ready on %s", self.id, os.getpid(), config.home)

    # generation ------------------------------------------------------------------------------

    async def generate(self, kind: Literal["completion", "chat"],
                       request: CompletionRequest | ChatRequest) -> AsyncIterator[Started | Outcome | Event]:
        self._count(+1)
        try:
            outcome = await self._start(kind, request)
            if outcome.error is not None:
                yield outcome
                return
            generation: Generation = outcome.value
            yield Started(generation.model_name, generation.prompt_tokens, self.id)
            async for event in iterate_in_thread(generation, on_close=generation.close):
                yield event
        finally:
            self._count(-1)

    async def _start(self, kind: str, request: CompletionRequest | ChatRequest) -> Outcome:
        """Check, load and submit off the event loop; a request cancelled meanwhile is closed once started."""
        def start() -> Generation:
            if kind == "completion" and isinstance(request, CompletionRequest):
                return self.inference.completion(request)
            if kind == "chat" and isinstance(request, ChatRequest):
                return self.inference.chat(request)
            raise InvalidRequest(f"unknown generation kind {kind!r}")

        future = asyncio.get_running_loop().run_in_executor(None, capture, start)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_close_started)
            raise

    # one-replica calls -----------------------------------------------------------------------

    async def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        if name not in CALLS:
            return Outcome(error=InvalidRequest(f"unknown replica call {name!r}"))
        method: Callable[..., Any] = getattr(self.inference, name)
        return await asyncio.to_thread(capture, lambda: method(*args, **kwargs))

    # state and broadcasts --------------------------------------------------------------------

    def _count(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
        self._wake.set()

    def _info(self) -> ReplicaInfo:
        with self._lock:
            in_flight = self._in_flight
        return replace(self.inference.replicas()[0], id=self.id, in_flight=in_flight)

    def _exchange(self) -> None:
        """Report to the board, hand back finished outcomes and queue the broadcasts it returns."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, {}
        try:
            commands: list[Command] = ray.get(self._board.report.remote(self._info(), outcomes),
                                              timeout=BOARD_TIMEOUT_SECONDS)
        except BaseException:
            with self._lock:
                self._outcomes.update(outcomes)  # delivered with the next report
            raise
        for command in commands:
            self._commands.submit(self._run, command).add_done_callback(self._finished(command.id))

    def _finished(self, command_id: int) -> Callable[[Future[Outcome]], None]:
        def done(future: Future[Outcome]) -> None:
            with self._lock:
                self._outcomes[command_id] = future.result()
            self._wake.set()

        return done

    def _run(self, command: Command) -> Outcome:
        inference = self.inference
        if command.name == "load":
            model, keep_alive, options = command.args
            return capture(lambda: inference.load(model, keep_alive, options)[1])
        if command.name == "unload":
            return capture(lambda: inference.unload(command.args[0]))
        return capture(lambda: inference.cold_batch(command.args[0]))

    def _heartbeat(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(HEARTBEAT_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._exchange()
            except Exception as exc:  # the board goes away first when the front shuts down
                log.warning("replica %s could not report: %s", self.id, exc)

    def check_health(self) -> None:
        """Serve's health check: a replica whose reports stopped is replaced."""
        if not self._heart.is_alive():
            raise RuntimeError("the replica's heartbeat thread stopped")

    def __del__(self) -> None:
        """Serve's graceful shutdown: leave the board, stop the threads, unload the engine."""
        stop = getattr(self, "_stop", None)
        if stop is None or stop.is_set():  # a failed constructor, or already shut down
            return
        stop.set()
        self._wake.set()
        with contextlib.suppress(Exception):
            self._board.forget.remote(self.id)
        self._commands.shutdown(wait=False, cancel_futures=True)
        self.services.close()


def _close_started(future: asyncio.Future[Outcome]) -> None:
    if not future.cancelled() and future.exception() is None:
        value = future.result().value
        if isinstance(value, Generation):
            value.close()
