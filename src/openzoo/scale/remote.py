"""The front's side of scale-out: :class:`ReplicatedInference`, the inference seam over Serve replicas.

It satisfies :class:`~openzoo.inference.InferenceService`, so the Ollama and OpenAI handlers, the CLI
and audits run unchanged. A generation is a streaming call through the deployment handle
(``handle.options(stream=True)``): the replica answers with :class:`Started` once the request was
checked, loaded and submitted, so errors before the first byte still get a real HTTP status; events
follow. Serve's router picks the replica (power of two choices on queue length).

A replica that dies before a generation started is retried on another one (nothing was sent yet);
one that dies mid-stream ends the stream with a :class:`Failure`, which the surfaces render as their
own error envelope (NDJSON ``{"error": ...}``, OpenAI's SSE error event) instead of a cut connection.
Serve restarts the replica and stops routing to the dead one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from typing import Any, cast

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, RequestCancelledError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from openzoo.errors import ClientClosed, EngineError, OpenzooError, ServerBusy
from openzoo.events import Done, Event, Failure, TextChunk
from openzoo.inference import ChatRequest, CompletionRequest, Embeddings, KeepAlive, TokenText
from openzoo.metrics import Metrics, ReplicaInfo
from openzoo.models import Models, ModelSpec
from openzoo.runtime.base import EngineStats
from openzoo.runtime.scheduler import LoadedInfo
from openzoo.scale.messages import CommandName, Outcome, Started

log = logging.getLogger("openzoo.scale")

START_ATTEMPTS = 3
CALL_TIMEOUT_SECONDS = 600.0
BOARD_TIMEOUT_SECONDS = 30.0
BROADCAST_SECONDS = 330.0  # longer than a replica's own wait for a model to load


def replica_error(exc: BaseException) -> OpenzooError:
    """What a Ray or Serve failure means to a client, as one of openzoo's errors."""
    if isinstance(exc, OpenzooError):
        return exc
    if isinstance(exc, BackPressureError):
        return ServerBusy("every inference replica is at its limit of ongoing requests",
                          hint="try again shortly, or add replicas")
    if isinstance(exc, RequestCancelledError):
        return ClientClosed("the request was cancelled")
    if isinstance(exc, RayActorError | ActorUnavailableError):
        return EngineError(f"the inference replica stopped: {_first_line(exc)}",
                           hint="try again: Serve restarts the replica and routes to the others meanwhile")
    if isinstance(exc, RayTaskError):
        return EngineError(f"the inference replica failed: {_first_line(exc)}")
    return EngineError(f"inference replica call failed: {type(exc).__name__}: {_first_line(exc)}")


def retryable(exc: BaseException) -> bool:
    """A replica that died or cannot be reached: another one may take the request."""
    return isinstance(exc, RayActorError | ActorUnavailableError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RemoteGeneration:
    """A generation streaming from a replica; iterate for events, ``close`` to cancel it there.

    ``response`` yields the replica's events after :class:`Started`; ``cancel`` cancels the Serve
    request, which closes the generation on the replica and frees its engine slot.
    """

    def __init__(self, started: Started, response: Iterator[Any], cancel: Callable[[], None], model: TokenText,
                 metrics: Metrics, started_ns: int) -> None:
        self._started = started
        self._response = response
        self._cancel = cancel
        self._model = model
        self._metrics = metrics
        self._started_ns = started_ns
        self._finished = False
        self._closed = False

    @property
    def model_name(self) -> str:
        return self._started.model_name

    @property
    def prompt_tokens(self) -> int:
        return self._started.prompt_tokens

    @property
    def replica(self) -> str:
        return self._started.replica

    @property
    def model(self) -> TokenText:
        return self._model

    def __iter__(self) -> Iterator[Event]:
        try:
            for event in self._metrics.observe(self._events(), self._started_ns):
                self._finished = isinstance(event, Done | Failure)
                yield event
        except Exception as exc:
            self._finished = True
            if not self._closed:
                log.warning("generation on replica %s failed mid-stream: %s", self.replica, _first_line(exc))
            yield Failure(replica_error(exc))
        finally:
            self.close()

    def _events(self) -> Iterator[Event]:
        """The replica's events up to its Done or Failure; a stream that stops short is an error."""
        for item in self._response:
            if isinstance(item, TextChunk):
                yield item
            elif isinstance(item, Done | Failure):
                yield item
                return
        raise EngineError("the inference replica ended a generation without a result")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._finished:
            self._cancel()


class RemoteTokens:
    """``generation.model`` of a remote generation: token text answered by any replica."""

    def __init__(self, inference: ReplicatedInference, model: str) -> None:
        self._inference = inference
        self._name = model
        self._pieces: dict[int, bytes] = {}

    def detokenize(self, tokens: Sequence[int]) -> str:
        text: str = self._inference.call("detokenize", self._name, list(tokens))
        return text

    def token_bytes(self, token: int) -> bytes:
        if token not in self._pieces:
            self._pieces[token] = self._inference.call("token_bytes", self._name, [token])[0]
        return self._pieces[token]


class ReplicatedInference:
    """Inference handed to the replicas of a Serve deployment; see the module docstring.

    Blocking like :class:`~openzoo.inference.Inference`: the surfaces call it from worker threads.
    """

    def __init__(self, handle: DeploymentHandle[Any], board: Any, models: Models, metrics: Metrics) -> None:
        self._handle = handle
        self._stream = handle.options(stream=True)
        self._board = board
        self.models = models
        self.metrics = metrics

    # generation ------------------------------------------------------------------------------

    def completion(self, req: CompletionRequest) -> RemoteGeneration:
        return self._start("completion", req)

    def chat(self, req: ChatRequest) -> RemoteGeneration:
        return self._start("chat", req)

    def _start(self, kind: str, req: CompletionRequest | ChatRequest) -> RemoteGeneration:
        started_ns = time.perf_counter_ns()
        for attempt in range(1, START_ATTEMPTS + 1):
            response = cast(DeploymentResponseGenerator[Any], self._stream.generate.remote(kind, req))
            try:
                first = next(response)
            except StopIteration:
                raise EngineError("the inference replica ended a generation before starting it") from None
            except Exception as exc:
                if retryable(exc) and attempt < START_ATTEMPTS:
                    log.warning("replica unavailable (%s); trying another one", _first_line(exc))
                    continue
                raise replica_error(exc) from exc
            if isinstance(first, Outcome):
                first.unwrap()
            if not isinstance(first, Started):
                raise EngineError(f"the inference replica answered {type(first).__name__} before starting")
            self.metrics.request(kind)
            return RemoteGeneration(first, response, response.cancel, RemoteTokens(self, first.model_name),
                                    self.metrics, started_ns)
        raise EngineError("no inference replica answered")  # unreachable: the last attempt raises

    # one-replica calls -----------------------------------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``name`` on whichever replica Serve picks; a dead replica's call is retried elsewhere."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                outcome = self._handle.call.remote(name, args, kwargs).result(timeout_s=CALL_TIMEOUT_SECONDS)
            except Exception as exc:
                if retryable(exc) and attempt < START_ATTEMPTS:
                    continue
                raise replica_error(exc) from exc
            if not isinstance(outcome, Outcome):
                raise EngineError(f"the inference replica answered {type(outcome).__name__}")
            return outcome.unwrap()
        raise EngineError("no inference replica answered")  # unreachable

    def embed(self, model: str, inputs: Sequence[str], *, truncate: bool = True, normalize: bool = True,
              options: dict[str, Any] | None = None, keep_alive: KeepAlive = "default",
              dimensions: int | None = None) -> Embeddings:
        result: Embeddings = self.call("embed", model, list(inputs), truncate=truncate, normalize=normalize,
                                       options=options, keep_alive=keep_alive, dimensions=dimensions)
        return result

    def tokenize(self, model: str, text: str, *, add_special: bool = False) -> list[int]:
        tokens: list[int] = self.call("tokenize", model, text, add_special=add_special)
        return tokens

    def tokenizer_info(self, model: str) -> dict[str, Any]:
        info: dict[str, Any] = self.call("tokenizer_info", model)
        return info

    def detokenize(self, model: str, tokens: Sequence[int]) -> str:
        text: str = self.call("detokenize", model, list(tokens))
        return text

    # broadcasts ------------------------------------------------------------------------------

    def _board_get(self, ref: Any) -> Any:
        try:
            return ray.get(ref, timeout=BOARD_TIMEOUT_SECONDS)
        except Exception as exc:
            raise EngineError(f"the replica board did not answer: {_first_line(exc)}") from exc

    def broadcast(self, name: CommandName, *args: Any) -> list[Any]:
        """Run a command on every live replica and return their values (first error raised)."""
        command_id = self._board_get(self._board.post.remote(name, args))
        deadline = time.monotonic() + BROADCAST_SECONDS
        while True:
            outcomes, pending = self._board_get(self._board.outcomes.remote(command_id))
            if not pending:
                break
            if time.monotonic() > deadline:
                raise ServerBusy(f"replica(s) {', '.join(pending)} did not answer {name!r} in time")
            time.sleep(0.05)
        if not outcomes:
            raise ServerBusy("no inference replica is running",
                             hint="wait for Serve to restart the replicas, and check the server log")
        return [outcome.unwrap() for outcome in outcomes.values()]

    def load(self, model: str, keep_alive: KeepAlive = "default",
             options: dict[str, Any] | None = None) -> tuple[ModelSpec, int]:
        """Load (or with ``keep_alive`` 0 unload) ``model`` on every replica; the slowest load's time."""
        spec = self.models.resolve(model)
        return spec, max(self.broadcast("load", model, keep_alive, options))

    def unload(self, manifest_digest: str) -> bool:
        return any(self.broadcast("unload", manifest_digest))

    def cold_batch(self, model: str) -> int:
        """Every replica forgets its cached prefixes; a wave of the smallest slot count stays cold everywhere."""
        slots: list[int] = self.broadcast("cold_batch", model)
        return min(slots)

    # state -----------------------------------------------------------------------------------

    def replicas(self) -> list[ReplicaInfo]:
        found: list[ReplicaInfo] = self._board_get(self._board.replicas.remote())
        return found

    def loaded(self) -> list[LoadedInfo]:
        return merge_loaded(self.replicas())


def merge_loaded(replicas: Sequence[ReplicaInfo]) -> list[LoadedInfo]:
    """One entry per loaded model across replicas: memory, users and counters summed, replicas named.

    It expires when its last replica lets it go (never, if any keeps it for ever).
    """
    merged: dict[tuple[str, int], LoadedInfo] = {}
    for replica in replicas:
        for info in replica.models:
            key = info.spec.key
            seen = merged.get(key)
            if seen is None:
                merged[key] = LoadedInfo(info.spec, info.memory_bytes, info.expires_at, info.users, info.stats,
                                         (replica.id,))
                continue
            expires = None if seen.expires_at is None or info.expires_at is None else max(seen.expires_at,
                                                                                          info.expires_at)
            merged[key] = LoadedInfo(seen.spec, seen.memory_bytes + info.memory_bytes, expires,
                                     seen.users + info.users, _sum_stats(seen.stats, info.stats),
                                     (*seen.replicas, replica.id))
    far = float("inf")
    return sorted(merged.values(), key=lambda i: far if i.expires_at is None else i.expires_at, reverse=True)


def _sum_stats(a: EngineStats, b: EngineStats) -> EngineStats:
    """Two replicas' counters added up; a flag holds for the pair only if it holds for both."""
    return EngineStats(**{f.name: (getattr(a, f.name) and getattr(b, f.name)) if f.type in (bool, "bool")
                          else getattr(a, f.name) + getattr(b, f.name) for f in fields(EngineStats)})
