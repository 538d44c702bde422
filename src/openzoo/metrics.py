"""Process metrics, rendered in the Prometheus text exposition format for ``GET /metrics``.

Counters and a histogram are updated by the domain layer (``inference.py``) as generations start,
produce their first token and finish; gauges (queue depth, busy slots, loaded models) are read from
the scheduler and engines at scrape time, so they are never stale.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from openzoo.events import Done, Event, Failure, TextChunk
from openzoo.runtime.scheduler import LoadedInfo

TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """One engine that serves requests: this process, or one Ray Serve replica (``serve --replicas``).

    ``requests`` counts generations started there, ``in_flight`` those running or queued now; ``age_s``
    is how long ago a remote replica last reported (always 0 for this process).
    """

    id: str
    pid: int
    node: str
    requests: int
    in_flight: int
    models: tuple[LoadedInfo, ...] = ()
    age_s: float = 0.0


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> Iterable[str]:
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            yield f'{name}_bucket{{le="{bound}"}} {running}'
        yield f'{name}_bucket{{le="+Inf"}} {self.n}'
        yield f"{name}_sum {self.total:.6f}"
        yield f"{name}_count {self.n}"


class Metrics:
    """Thread-safe counters for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.eval_seconds = 0.0
        self.ttft = Histogram(TTFT_BUCKETS)

    def request(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] = self.requests.get(kind, 0) + 1

    def started(self) -> int:
        """Generations started, all kinds together."""
        with self._lock:
            return sum(self.requests.values())

    def first_token(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def finished(self, prompt_tokens: int, completion_tokens: int, eval_seconds: float) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.eval_seconds += eval_seconds

    def failed(self) -> None:
        with self._lock:
            self.errors += 1

    def observe(self, events: Iterable[Event], started_ns: int) -> Iterator[Event]:
        """Pass a generation's events through, recording its first token, its tokens or its failure.

        ``started_ns`` is when the request arrived (``time.perf_counter_ns``); an exception raised by
        ``events`` counts as a failure and propagates. Local and replicated generations both use it.
        """
        first = True
        try:
            for event in events:
                if isinstance(event, TextChunk) and first:
                    first = False
                    self.first_token((time.perf_counter_ns() - started_ns) / 1e9)
                elif isinstance(event, Done):
                    self.finished(event.prompt_tokens, event.completion_tokens, event.eval_ns / 1e9)
                elif isinstance(event, Failure):
                    self.failed()
                yield event
        except Exception:
            self.failed()
            raise

    def render(self, loaded: Sequence[LoadedInfo], replicas: Sequence[ReplicaInfo] = ()) -> str:
        """The exposition text: this process's counters, gauges of ``loaded`` models and ``replicas``."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        with self._lock:
            metric("openzoo_requests_total", "counter", "Generation requests started, by kind.",
                   [f'openzoo_requests_total{{kind="{k}"}} {v}' for k, v in sorted(self.requests.items())])
            metric("openzoo_request_errors_total", "counter", "Generations that ended in an error.",
                   [f"openzoo_request_errors_total {self.errors}"])
            metric("openzoo_prompt_tokens_total", "counter", "Prompt tokens evaluated.",
                   [f"openzoo_prompt_tokens_total {self.prompt_tokens}"])
            metric("openzoo_completion_tokens_total", "counter", "Tokens generated.",
                   [f"openzoo_completion_tokens_total {self.completion_tokens}"])
            rate = self.completion_tokens / self.eval_seconds if self.eval_seconds else 0.0
            metric("openzoo_tokens_per_second", "gauge", "Mean decode rate per request over the process life.",
                   [f"openzoo_tokens_per_second {rate:.3f}"])
            metric("openzoo_time_to_first_token_seconds", "histogram", "Time from request to first token.",
                   list(self.ttft.lines("openzoo_time_to_first_token_seconds")))
        engines = [(info.spec.name, info.stats) for info in loaded]
        metric("openzoo_loaded_models", "gauge", "Models in memory.", [f"openzoo_loaded_models {len(loaded)}"])
        metric("openzoo_queue_depth", "gauge", "Requests waiting for a slot, per model.",
               [f'openzoo_queue_depth{{model="{name}"}} {s.queue_depth}' for name, s in engines])
        metric("openzoo_busy_slots", "gauge", "Sequences being decoded, per model.",
               [f'openzoo_busy_slots{{model="{name}"}} {s.busy_slots}' for name, s in engines])
        metric("openzoo_slots", "gauge", "Parallel sequences per model.",
               [f'openzoo_slots{{model="{name}"}} {s.total_slots}' for name, s in engines])
        metric("openzoo_replicas", "gauge", "Engines serving requests (Ray Serve replicas, or this process).",
               [f"openzoo_replicas {len(replicas)}"])
        metric("openzoo_replica_requests_total", "counter", "Generations started, per replica.",
               [f'openzoo_replica_requests_total{{replica="{r.id}",pid="{r.pid}"}} {r.requests}' for r in replicas])
        metric("openzoo_replica_in_flight", "gauge", "Generations running or queued, per replica.",
               [f'openzoo_replica_in_flight{{replica="{r.id}"}} {r.in_flight}' for r in replicas])
        metric("openzoo_draft_rows_total", "counter", "Guessed next tokens decoded in a step's spare rows.",
               [f'openzoo_draft_rows_total{{model="{name}"}} {s.draft_rows_total}' for name, s in engines])
        metric("openzoo_draft_tokens_total", "counter", "Right guesses: tokens generated without a step of their own.",
               [f'openzoo_draft_tokens_total{{model="{name}"}} {s.draft_tokens_total}' for name, s in engines])
        return "\n".join(out) + "\n"
