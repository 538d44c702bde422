"""The front's side of scale-out without a cluster: event relay, error mapping, merged ``/api/ps``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.serve")

from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve.exceptions import BackPressureError, RequestCancelledError

from openzoo.errors import ClientClosed, EngineError, InvalidRequest, ServerBusy
from openzoo.events import Done, Failure, TextChunk
from openzoo.metrics import Metrics, ReplicaInfo
from openzoo.runtime.base import EngineStats
from openzoo.runtime.scheduler import LoadedInfo, LoadSpec
from openzoo.scale.messages import Outcome, Started, capture
from openzoo.scale.remote import RemoteGeneration, merge_loaded, replica_error, retryable


class Tokens:
    def detokenize(self, tokens: Any) -> str:
        return "".join(map(str, tokens))

    def token_bytes(self, token: int) -> bytes:
        return str(token).encode()


def generation(items: Iterator[Any], cancels: list[bool], metrics: Metrics | None = None) -> RemoteGeneration:
    return RemoteGeneration(Started("m:latest", 5, "r1"), items, lambda: cancels.append(True), Tokens(),
                            metrics or Metrics(), 0)


def test_events_pass_through_and_count_in_the_front_metrics() -> None:
    cancels: list[bool] = []
    metrics = Metrics()
    done = Done("length", prompt_tokens=5, completion_tokens=2, eval_ns=10**9)
    gen = generation(iter([TextChunk("a"), TextChunk("b"), done]), cancels, metrics)
    assert (gen.model_name, gen.prompt_tokens, gen.replica) == ("m:latest", 5, "r1")
    assert list(gen) == [TextChunk("a"), TextChunk("b"), done]
    assert cancels == []  # finished: nothing to cancel
    assert metrics.completion_tokens == 2 and metrics.ttft.n == 1 and metrics.errors == 0


def test_a_replica_dying_mid_stream_ends_with_a_failure_event() -> None:
    def dying() -> Iterator[Any]:
        yield TextChunk("a")
        raise ActorDiedError()

    metrics = Metrics()
    events = list(generation(dying(), [], metrics))
    assert events[0] == TextChunk("a")
    assert isinstance(events[1], Failure) and isinstance(events[1].error, EngineError)
    assert "replica stopped" in events[1].error.message and metrics.errors == 1


def test_a_stream_that_ends_without_done_is_a_failure() -> None:
    events = list(generation(iter([TextChunk("a")]), []))
    assert isinstance(events[-1], Failure) and "without a result" in events[-1].error.message


def test_close_before_the_end_cancels_on_the_replica_once() -> None:
    cancels: list[bool] = []
    gen = generation(iter([TextChunk("a")]), cancels)
    gen.close()
    gen.close()
    assert cancels == [True]


def test_ray_failures_map_to_openzoo_errors() -> None:
    assert isinstance(replica_error(BackPressureError(num_queued_requests=1, max_queued_requests=1)), ServerBusy)
    assert isinstance(replica_error(RequestCancelledError("x")), ClientClosed)
    assert isinstance(replica_error(ActorUnavailableError("gone", None)), EngineError)
    assert isinstance(replica_error(ValueError("bug")), EngineError)
    own = InvalidRequest("bad")
    assert replica_error(own) is own
    assert retryable(ActorDiedError()) and retryable(ActorUnavailableError("gone", None))
    assert not retryable(ValueError("bug"))


def test_capture_keeps_values_and_errors() -> None:
    assert capture(lambda: 3) == Outcome(3)
    err = InvalidRequest("no")

    def fail() -> None:
        raise err

    assert capture(fail).error is err
    bug = capture(lambda: 1 // 0)
    assert isinstance(bug.error, EngineError) and "ZeroDivisionError" in bug.error.message
    with pytest.raises(InvalidRequest):
        Outcome(error=err).unwrap()


def loaded(digest: str, memory: int, expires: float | None, busy: int) -> LoadedInfo:
    spec = LoadSpec(digest, f"{digest}:latest", Path("/w"), 2048)
    return LoadedInfo(spec, memory, expires, busy, EngineStats(busy, 4, 0, 10, 100, 50))


def test_ps_merges_a_model_loaded_on_several_replicas() -> None:
    replicas = [
        ReplicaInfo("r1", 1, "n", 3, 1, (loaded("a", 100, 50.0, 1), loaded("b", 10, 20.0, 0))),
        ReplicaInfo("r2", 2, "n", 4, 0, (loaded("a", 100, 60.0, 0),)),
        ReplicaInfo("r3", 3, "n", 0, 0, (loaded("a", 100, None, 0),)),
    ]
    merged = merge_loaded(replicas)
    assert [(m.spec.name, m.replicas) for m in merged] == [("a:latest", ("r1", "r2", "r3")), ("b:latest", ("r1",))]
    a = merged[0]
    assert a.memory_bytes == 300 and a.expires_at is None and a.users == 1
    assert a.stats == EngineStats(1, 12, 0, 30, 300, 150)
    assert merge_loaded(replicas[:2])[0].expires_at == 60.0


def test_ps_merge_says_batch_invariant_only_when_every_replica_is() -> None:
    fast = loaded("a", 100, 50.0, 0)
    fast = LoadedInfo(fast.spec, fast.memory_bytes, fast.expires_at, fast.users,
                      EngineStats(0, 4, 0, 0, 0, 0, batch_invariant=False))
    both = merge_loaded([ReplicaInfo("r1", 1, "n", 0, 0, (loaded("a", 100, 50.0, 0),)),
                         ReplicaInfo("r2", 2, "n", 0, 0, (fast,))])
    assert both[0].stats.batch_invariant is False and both[0].stats.total_slots == 8
    same = merge_loaded([ReplicaInfo(f"r{i}", i, "n", 0, 0, (loaded("a", 100, 50.0, 0),)) for i in (1, 2)])
    assert same[0].stats.batch_invariant is True
