"""What every suite returns, and the progress plumbing they share.

Why a common result type: the runner, the JSON report and the HTML report handle all suites alike; a
suite only decides which metrics and items it produces. Metric names are flat and dotted
(``"bbq.s_amb.gender"``): machines match them exactly, and the report groups them by prefix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from openzoo.audit.metrics import Metric
from openzoo.events import Progress

ProgressCallback = Callable[[Progress], None]
T = TypeVar("T")

# Items per call to the scorer: small enough for steady progress, large enough for engine batching.
SCORE_BATCH = 32
GENERATE_BATCH = 8


@dataclass(slots=True)
class SuiteResult:
    """A suite's scores (each with its interval), its per-item results and the digest of its data."""

    name: str
    metrics: dict[str, Metric]
    items: list[dict[str, Any]]
    data_digest: str
    data_files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"metrics": {name: {...}}, "items": [...], "data_digest": ...}`` as issue 5 specifies."""
        return {
            "metrics": {k: m.to_json() for k, m in sorted(self.metrics.items())},
            "items": [json_safe(i) for i in self.items],
            "data_digest": self.data_digest,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> SuiteResult:
        """Read a suite back from a stored report (per-file digests are not part of the JSON)."""
        metrics = {k: Metric.from_json(v) for k, v in data["metrics"].items()}
        return cls(name, metrics, list(data["items"]), str(data["data_digest"]))


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities (a -inf log-probability is possible) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class Tracker:
    """Reports ``Progress(status="<suite>: <task>", total, completed)`` to an optional callback."""

    def __init__(self, suite: str, callback: ProgressCallback | None, total: int) -> None:
        """Track ``total`` units of work for ``suite``."""
        self.suite = suite
        self.callback = callback
        self.total = total
        self.completed = 0

    def advance(self, n: int, task: str) -> None:
        """Count ``n`` more units of work done on ``task`` and tell the callback."""
        self.completed += n
        if self.callback is not None:
            self.callback(
                Progress(
                    status=f"{self.suite}: {task}",
                    total=self.total,
                    completed=min(self.completed, self.total),
                    detail={"suite": self.suite, "task": task},
                )
            )


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def batched_call(
    fn: Callable[[Sequence[T]], list[Any]],
    inputs: Sequence[T],
    tracker: Tracker,
    task: str,
    size: int = SCORE_BATCH,
) -> list[Any]:
    """Call a scorer method chunk by chunk, reporting progress; checks the scorer answered in full."""
    out: list[Any] = []
    for part in chunks(inputs, size):
        res = fn(part)
        if len(res) != len(part):
            raise RuntimeError(f"scorer returned {len(res)} results for {len(part)} inputs")
        out.extend(res)
        tracker.advance(len(part), task)
    return out


def add_grouped(metrics: dict[str, Metric], prefix: str, groups: dict[str, dict[str, Metric]]) -> None:
    """Store per-group metric dicts as ``<prefix>.<metric>.<group>``."""
    for group, ms in sorted(groups.items()):
        for name, m in ms.items():
            metrics[f"{prefix}.{name}.{group}"] = m
